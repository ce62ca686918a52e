//! Host benchmarks of folio against its peers; the code is in `benches/`
//! (`make bench` runs them after the QEMU figures).
#![no_std]
