//! Spins for 200 ms of the virtual counter without a system call: only
//! timer preemption (or a reschedule SGI) lets anything else run on its
//! core meanwhile. With x0 = N at start it first signals its handles
//! 0..N (notifications), to tell waiting tasks it is about to spin.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::{counter, println, signal, start_arguments};

fn main() -> u64 {
    let [notify, _] = start_arguments();
    for handle in 0..notify {
        signal(handle);
    }
    let (start, frequency) = counter();
    let mut spins = 0u64;
    while counter().0 - start < frequency / 5 {
        spins += 1;
    }
    println!("spinner: spun 200 ms ({spins} reads of the counter)");
    0
}

folio_rt::entry!(main);
