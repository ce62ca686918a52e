//! The smallest EL0 program: prints and exits with status 7.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::println;

fn main() -> u64 {
    println!("hello from EL0");
    let counter = if folio_rt::has_cycle_counter() { "pmu" } else { "virtual" };
    folio_rt::result!("hello", true, el = 0, cycles_from = counter);
    7
}

folio_rt::entry!(main);
