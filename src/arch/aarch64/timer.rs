//! The architected generic timer, virtual view (CNTV*): what a guest uses.

use aarch64_cpu::registers::{CNTFRQ_EL0, CNTVCT_EL0, Readable};

/// Ticks per second, as the firmware programmed CNTFRQ_EL0. Never assumed.
pub fn frequency() -> u64 {
    CNTFRQ_EL0.get()
}

/// The virtual counter.
pub fn counter() -> u64 {
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    CNTVCT_EL0.get()
}

/// The clock the console's log timestamps use.
pub fn clock() -> (u64, u64) {
    (counter(), frequency())
}
