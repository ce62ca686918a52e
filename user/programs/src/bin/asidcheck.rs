//! Keeps a word of its own (a tag the kernel passes in x0) in its data
//! segment and on its stack, at the same addresses as every other
//! instance, and checks after every yield that it still reads its own: a
//! stale translation of another address space (an ASID handed out twice)
//! would show another instance's tag. Exits with the number of mismatches.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};

use folio_rt::{start_arguments, yield_now};

static MINE: AtomicU64 = AtomicU64::new(0);

fn main() -> u64 {
    let [tag, rounds] = start_arguments();
    let on_stack = core::hint::black_box([tag; 8]);
    MINE.store(tag, Ordering::Relaxed);
    let mut wrong = 0;
    for _ in 0..rounds {
        yield_now();
        let stacked = folio_rt::memory::read_own(&on_stack[3]);
        wrong += (MINE.load(Ordering::Relaxed) != tag) as u64 + (stacked != tag) as u64;
    }
    wrong
}

folio_rt::entry!(main);
