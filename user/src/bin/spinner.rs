//! Spins for 200 ms of the virtual counter without a system call: only
//! timer preemption lets anything else run meanwhile.
#![no_std]
#![no_main]

use folio_user::println;

fn counter() -> (u64, u64) {
    let (count, frequency): (u64, u64);
    // SAFETY: the kernel lets EL0 read the virtual counter (CNTKCTL_EL1.EL0VCTEN).
    unsafe {
        core::arch::asm!("isb", "mrs {}, cntvct_el0", "mrs {}, cntfrq_el0", out(reg) count, out(reg) frequency, options(nostack))
    };
    (count, frequency)
}

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
