//! The PMU cycle counter, as an instruction counter under QEMU's
//! `-icount shift=0` (each instruction advances the clock by one cycle).
//!
//! Owns: probing for an architected PMU (ID_AA64DFR0_EL1.PMUVer) before
//! any PMU access, enabling PMCCNTR_EL0 on each core, reading it with the
//! barriers that keep the read in program order, and what EL0 may do with
//! it. Must never: touch a PMU register on a CPU without an architected PMU
//! (a vCPU without one, common under KVM, makes every PMU access UNDEFINED),
//! give EL0 more than cycle-counter reads, or be relied on for wall time.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};

static PRESENT: AtomicBool = AtomicBool::new(false);

/// Reads ID_AA64DFR0_EL1.PMUVer (bits 11:8) once: 0 is no PMU, 0xF an
/// IMPLEMENTATION DEFINED one; both count as absent. Safe before anything
/// else runs: an ID register read never traps at EL1.
pub fn probe() -> bool {
    let dfr0: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe { asm!("mrs {}, id_aa64dfr0_el1", out(reg) dfr0, options(nomem, nostack, preserves_flags)) };
    let version = (dfr0 >> 8) & 0xf;
    let present = version != 0 && version != 0xf;
    PRESENT.store(present, Ordering::Relaxed);
    present
}

/// Whether this CPU has an architected PMU (after [`probe`]).
pub fn present() -> bool {
    PRESENT.load(Ordering::Relaxed)
}

/// Zeroes and starts this core's cycle counter (PMCR_EL0.C resets it),
/// counting at every EL; nothing without a PMU.
pub fn reset_and_enable() {
    if !present() {
        return;
    }
    // SAFETY: PMU configuration registers of this core, which has a PMU;
    // no memory is touched.
    unsafe {
        asm!(
            "msr pmccfiltr_el0, xzr",
            "mrs {t}, pmcr_el0",
            "orr {t}, {t}, #1",
            "orr {t}, {t}, #4",
            "msr pmcr_el0, {t}",
            "mov {t}, #(1 << 31)",
            "msr pmcntenset_el0, {t}",
            "isb",
            t = out(reg) _,
            options(nostack),
        );
    }
}

/// Proof that this CPU has a PMU, so each read is just `isb; mrs`
/// (benchmarks hold one).
#[derive(Clone, Copy, Debug)]
pub struct CycleCounter(());

impl CycleCounter {
    pub fn get() -> Option<CycleCounter> {
        present().then_some(CycleCounter(()))
    }

    /// Reads the counter after every earlier instruction has completed.
    #[inline(always)]
    pub fn read(&self) -> u64 {
        let value: u64;
        // SAFETY: a CycleCounter exists only on a CPU with a PMU; reading
        // PMCCNTR_EL0 has no side effects.
        unsafe { asm!("isb", "mrs {}, pmccntr_el0", out(reg) value, options(nostack)) };
        value
    }

    /// The counter's own cost: two reads back to back.
    pub fn overhead(&self) -> u64 {
        (0..4)
            .map(|_| {
                let a = self.read();
                let b = self.read();
                b - a
            })
            .min()
            .unwrap_or(0)
    }
}

/// Reads the counter; 0 without a PMU.
pub fn read() -> u64 {
    CycleCounter::get().map_or(0, |c| c.read())
}

/// Lets EL0 read the cycle counter and nothing else of the PMU
/// (PMUSERENR_EL0.CR alone: EN would let a task reset or reprogram the
/// counters the kernel relies on and count other tasks' events), or not.
/// Tasks may measure themselves, as sel4bench does. Nothing without a PMU.
pub fn allow_el0_cycle_counter(allow: bool) {
    if !present() {
        return;
    }
    const CR: u64 = 1 << 2;
    let value: u64 = if allow { CR } else { 0 };
    // SAFETY: a PMU access-control register of this core, which has a PMU.
    unsafe { asm!("msr pmuserenr_el0, {}", "isb", in(reg) value, options(nostack)) };
}
