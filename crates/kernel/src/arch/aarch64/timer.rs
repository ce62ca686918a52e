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

/// Arms the virtual timer to fire in `ticks` (CNTV_TVAL_EL0), enabled and
/// unmasked (CNTV_CTL_EL0 = 1).
pub fn arm_virtual(ticks: u64) {
    // SAFETY: the virtual timer registers of this core only.
    unsafe {
        core::arch::asm!("msr cntv_tval_el0, {}", "mov {t}, #1", "msr cntv_ctl_el0, {t}", "isb", in(reg) ticks, t = out(reg) _, options(nostack))
    };
}

/// Whether the virtual timer's condition holds now: enabled and expired
/// (CNTV_CTL_EL0.ENABLE and .ISTATUS). A timer interrupt taken while it
/// does not is a stale copy of one already handled.
pub fn condition_met() -> bool {
    let ctl: u64;
    // SAFETY: reading this core's virtual timer control register.
    unsafe { core::arch::asm!("mrs {}, cntv_ctl_el0", out(reg) ctl, options(nomem, nostack, preserves_flags)) };
    ctl & 0b101 == 0b101
}

/// Stops the virtual timer (CNTV_CTL_EL0.ENABLE = 0).
pub fn stop_virtual() {
    // SAFETY: as above.
    unsafe { core::arch::asm!("msr cntv_ctl_el0, xzr", "isb", options(nostack)) };
}

/// Lets EL0 read the virtual counter (CNTKCTL_EL1.EL0VCTEN), nothing else.
pub fn allow_el0_counter_reads() {
    // SAFETY: a timer access-control register of this core.
    unsafe { core::arch::asm!("mov {t}, #2", "msr cntkctl_el1, {t}", "isb", t = out(reg) _, options(nostack)) };
}
