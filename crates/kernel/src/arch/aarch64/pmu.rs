//! The PMU cycle counter, as an instruction counter under QEMU's
//! `-icount shift=0` (each instruction advances the clock by one cycle).
//!
//! Owns: enabling PMCCNTR_EL0 and reading it with the barriers that keep
//! the read in program order. Must never: be relied on for wall-clock time.

use core::arch::asm;

/// Zeroes and starts the cycle counter (PMCR_EL0.C resets it).
pub fn reset_and_enable() {
    // SAFETY: PMU configuration registers; no memory is touched.
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

/// Reads the counter after every earlier instruction has completed.
#[inline(always)]
pub fn read() -> u64 {
    let value: u64;
    // SAFETY: reading PMCCNTR_EL0 has no side effects.
    unsafe { asm!("isb", "mrs {}, pmccntr_el0", out(reg) value, options(nostack)) };
    value
}

/// The counter's own cost: two reads back to back.
pub fn overhead() -> u64 {
    (0..4)
        .map(|_| {
            let a = read();
            let b = read();
            b - a
        })
        .min()
        .unwrap_or(0)
}

/// Lets EL0 read the cycle counter (PMUSERENR_EL0.EN and .CR), or not:
/// tasks may measure themselves, as sel4bench does.
pub fn allow_el0_cycle_counter(allow: bool) {
    let value: u64 = if allow { 0b101 } else { 0 };
    // SAFETY: a PMU access-control register of this core.
    unsafe { asm!("msr pmuserenr_el0, {}", "isb", in(reg) value, options(nostack)) };
}
