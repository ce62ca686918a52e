//! A task's FP/SIMD registers, saved and restored lazily.
//!
//! Owns: the FP/SIMD save area ([`FpState`]), the two routines that move it
//! to and from the registers (`fpsimd.s`), and CPACR_EL1's FP/SIMD trap for
//! EL0. The kernel itself is soft-float: it never uses these registers, so
//! a task's values stay in them while the kernel runs, and EL1 never traps
//! (FPEN is 0b01 or 0b11). SVE and SME stay trapped at both levels
//! (CPACR_EL1.ZEN and SMEN are 0), so a task that uses them takes an
//! exception and is stopped.
//! Must never: decide when to save or restore (the task layer does: at a
//! task's first FP/SIMD use after it was switched in, and at its
//! switch-out if it used them).

/// q0..q31, FPCR and FPSR: what a task's FP/SIMD context is.
#[repr(C, align(16))]
#[derive(Clone, Copy)]
pub struct FpState {
    pub v: [u128; 32],
    pub fpcr: u64,
    pub fpsr: u64,
}

const _: () = assert!(core::mem::offset_of!(FpState, fpcr) == 512);
const _: () = assert!(core::mem::offset_of!(FpState, fpsr) == 520);

impl FpState {
    /// A task's state at start: every register zero, default FPCR.
    pub const ZERO: FpState = FpState { v: [0; 32], fpcr: 0, fpsr: 0 };
}

unsafe extern "C" {
    fn fpsimd_save(state: *mut FpState);
    fn fpsimd_restore(state: *const FpState);
}

core::arch::global_asm!(include_str!("fpsimd.s"), options(raw));

/// Copies the FP/SIMD registers into `state`.
pub fn save(state: &mut FpState) {
    // SAFETY: `state` is a valid, exclusive, 16-byte aligned FpState; the
    // routine writes exactly its 528 bytes and clobbers x1, x2 (caller-saved
    // in the C ABI). EL1 never traps FP/SIMD (FPEN is never 0b00 after boot).
    unsafe { fpsimd_save(state) }
}

/// Loads the FP/SIMD registers from `state`.
pub fn restore(state: &FpState) {
    // SAFETY: as in `save`; the routine only reads `state`. The registers
    // it writes are nobody's while the kernel runs (the kernel is
    // soft-float).
    unsafe { fpsimd_restore(state) }
}

/// CPACR_EL1 with EL0's FP/SIMD use trapped (FPEN 0b01) or allowed (0b11);
/// SVE (ZEN) and SME (SMEN) trapped at EL0 and EL1 either way.
const CPACR_EL0_TRAPPED: u64 = 1 << 20;
const CPACR_EL0_ALLOWED: u64 = 3 << 20;

/// Whether EL0 may use FP/SIMD without a trap. The ERET back to EL0 is the
/// context synchronization the change needs; EL1 is not affected.
pub fn allow_el0(allowed: bool) {
    let value = if allowed { CPACR_EL0_ALLOWED } else { CPACR_EL0_TRAPPED };
    // SAFETY: only the FP/SIMD, SVE and SME trap controls change, and
    // only for EL0 (EL1 keeps FP/SIMD access, which it uses in `save` and
    // `restore` only).
    unsafe { core::arch::asm!("msr cpacr_el1, {v}", v = in(reg) value, options(nomem, nostack, preserves_flags)) };
}

/// The exception class of an FP/SIMD access trapped by CPACR_EL1.FPEN.
pub const EC_FP_SIMD_TRAPPED: u64 = 0x07;
