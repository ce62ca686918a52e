//! Keeps a tag (x0 at start) in all 32 FP/SIMD registers across a system
//! call and a long busy loop (where the timer preempts it and other
//! instances run), and counts the registers that came back changed: the
//! kernel must keep each task's FP/SIMD state as its own. Exits with the
//! count.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::selftest::simd_registers_survive;
use folio_rt::start_arguments;

fn main() -> u64 {
    let [tag, rounds] = start_arguments();
    (0..rounds).map(|_| simd_registers_survive(tag, 3_000_000)).sum()
}

folio_rt::entry!(main);
