//! Spins for 200 ms of the virtual counter without a system call: only
//! timer preemption lets anything else run meanwhile.
#![no_std]
#![no_main]

use folio_user::{counter, println};

fn main() -> u64 {
    let (start, frequency) = counter();
    let mut spins = 0u64;
    while counter().0 - start < frequency / 5 {
        spins += 1;
    }
    println!("spinner: spun 200 ms ({spins} reads of the counter)");
    0
}

folio_user::entry!(main);
