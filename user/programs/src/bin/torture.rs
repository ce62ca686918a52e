//! Reads and writes two counters in a 2 MiB region (one in its first page,
//! one 1 MiB in) while the kernel, on another core, keeps changing the
//! region's mappings under it with break-before-make: moving the first
//! page to another frame and back, splitting and coalescing the region,
//! making it read-only for a moment. Every increment must land: at the end
//! both counters equal the number of rounds (x0 at start). A read through
//! a stale translation would see the poison the kernel leaves in a frame it
//! moved the page away from. Exits with a bit per counter that is wrong.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::memory::Mapped;
use folio_rt::start_arguments;

/// Where the kernel maps the region (2 MiB aligned, in every granule's
/// lower half).
const REGION: u64 = 0x10_0000_0000;
const POISON: u64 = 0x7070_7070_7070_7070;

fn main() -> u64 {
    let [rounds, _] = start_arguments();
    // The kernel maps [REGION, REGION + 2 MiB) read/write for this task
    // before it starts and keeps it mapped (a fault in a change window is
    // retried).
    let region = Mapped::new(REGION, 2 << 20);
    let (first, second) = (0, 1 << 20);
    let mut poisoned = 0;
    for _ in 0..rounds {
        let a = region.read_u64(first);
        poisoned |= (a == POISON) as u64;
        region.write_u64(first, a + 1);
        let b = region.read_u64(second);
        region.write_u64(second, b + 1);
    }
    let (a, b) = (region.read_u64(first), region.read_u64(second));
    (a != rounds) as u64 | ((b != rounds) as u64) << 1 | poisoned << 2
}

folio_rt::entry!(main);
