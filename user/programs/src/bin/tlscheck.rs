//! Checks that the thread pointer is the task's own: TPIDR_EL0 and
//! TPIDRRO_EL0 are zero at start (nothing of the task that ran before on
//! this core), and a tag set in TPIDR_EL0 (x0 at start) survives yields and
//! preemption while other tasks set theirs. Uses no FP/SIMD register, so
//! the kernel never has to load its FP/SIMD state. Exits with the number
//! of checks that failed.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::selftest::{read_only_thread_pointer, set_thread_pointer, thread_pointer};
use folio_rt::{start_arguments, yield_now};

fn main() -> u64 {
    let [tag, rounds] = start_arguments();
    let mut failed = u64::from(thread_pointer() != 0) + u64::from(read_only_thread_pointer() != 0);
    set_thread_pointer(tag);
    for round in 0..rounds {
        if round % 2 == 0 {
            yield_now();
        }
        // Long enough for the timer to preempt it now and then.
        let mut spins = 300_000u64;
        while core::hint::black_box(spins) != 0 {
            spins -= 1;
        }
        failed += u64::from(thread_pointer() != tag);
    }
    failed
}

folio_rt::entry!(main);
