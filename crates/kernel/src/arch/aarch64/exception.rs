//! The Rust side of the exception vectors.
//!
//! Owns: what happens on every exception. At this stage of folio every
//! exception is unexpected except one a kernel test announced with
//! [`catch_fault`]: an unexpected one prints a decoded report
//! ([`folio_core::exception::ExceptionReport`]) and ends the machine with a
//! failure status. Nothing hangs silently.
//! Must never: return into an instruction that will fault again.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::sync::SpinLock;
use folio_core::exception::{ExceptionReport, ReportFields, Vector, VectorKind};

/// The interrupted context as `vectors.s` saved it.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TrapFrame {
    pub x: [u64; 31],
    pub sp_el0: u64,
    pub elr: u64,
    pub spsr: u64,
    pub esr: u64,
    pub far: u64,
    pub vector_index: u64,
    _padding: u64,
    pub fpcr: u64,
    pub fpsr: u64,
    /// q0..q31: a task's FP/SIMD registers are its context too.
    pub v: [u128; 32],
}

const _: () = assert!(core::mem::size_of::<TrapFrame>() == 832);
const _: () = assert!(core::mem::offset_of!(TrapFrame, v) == 320);

/// Status the machine exits with after an unexpected exception.
pub const FAULT_EXIT_STATUS: u32 = 3;
/// Exit status of a fault or panic when there was no console yet (the
/// report went to the board's own UART, if the fallback could reach it).
pub const NO_CONSOLE_EXIT_STATUS: u32 = 5;

static EXPECTING_FAULT: AtomicBool = AtomicBool::new(false);
static CAUGHT: SpinLock<Option<ExceptionReport>> = SpinLock::new(None);

/// Runs `f`, which is expected to take one synchronous exception at EL1 (a
/// data or instruction abort, or a BRK). The handler records it and resumes
/// after the faulting instruction. Returns the report, or `None` when `f`
/// did not fault.
pub fn catch_fault(f: impl FnOnce()) -> Option<ExceptionReport> {
    *CAUGHT.lock() = None;
    EXPECTING_FAULT.store(true, Ordering::SeqCst);
    f();
    EXPECTING_FAULT.store(false, Ordering::SeqCst);
    CAUGHT.lock().take()
}

/// Where exceptions from EL0 go (the task layer); `None` until tasks exist.
pub static USER_TRAP_HANDLER: SpinLock<Option<fn(&mut TrapFrame)>> = SpinLock::new(None);

/// The kernel's registers while a task runs (see `enter_user` in vectors.s).
#[repr(C)]
#[derive(Default)]
pub struct KernelContext {
    callee_saved: [u64; 12],
    sp: u64,
}

unsafe extern "C" {
    fn enter_user(frame: *const TrapFrame, kernel: *mut KernelContext);
    fn return_to_kernel(kernel: *const KernelContext) -> !;
}

/// Runs tasks from `first`: returns when the task layer calls
/// [`leave_user_mode`] with the same context.
pub fn run_user(first: &TrapFrame, kernel: &mut KernelContext) {
    // SAFETY: `first` is a complete EL0 frame (EL0t SPSR, entry ELR, user
    // SP); enter_user saves the kernel's context in `kernel`, which outlives
    // the call because return_to_kernel comes back here through it.
    unsafe { enter_user(first, kernel) }
}

/// From an EL0 exception handler: abandons the exception and returns from
/// the `run_user` that saved `kernel`.
///
/// # Safety
/// `kernel` must be the context a still-running `run_user` on this stack
/// filled, and nothing may hold a lock or borrow that the abandoned frames
/// would have released.
pub unsafe fn leave_user_mode(kernel: *const KernelContext) -> ! {
    // SAFETY: the caller guarantees `kernel` is live and the frames above it
    // (run_user's caller) are still on this stack.
    unsafe { return_to_kernel(kernel) }
}

impl TrapFrame {
    /// A frame that starts EL0 at `entry` with stack `sp`: EL0t, IRQs
    /// unmasked (for timer preemption), debug, SError and FIQ masked.
    /// A task's first frame: x2 holds its start flags (`folio_abi::task`).
    pub fn user(entry: u64, sp: u64, flags: u64) -> TrapFrame {
        let mut x = [0; 31];
        x[2] = flags;
        TrapFrame {
            x,
            sp_el0: sp,
            elr: entry,
            spsr: 0x340,
            esr: 0,
            far: 0,
            vector_index: 0,
            _padding: 0,
            fpcr: 0,
            fpsr: 0,
            v: [0; 32],
        }
    }
}

impl TrapFrame {
    /// Copies a whole frame 32 bytes at a time (a task switch moves two of
    /// them; a general memcpy moves 8 bytes per step).
    pub fn copy_from(&mut self, src: &TrapFrame) {
        const _: () = assert!(core::mem::size_of::<TrapFrame>().is_multiple_of(32));
        // SAFETY: both frames are valid, 16-byte aligned (u128 fields) and
        // distinct (`&mut` and `&`); exactly size_of::<TrapFrame>() bytes
        // are read and written. q0/q1 are scratch: a task's own FP/SIMD
        // state lives in its frame, not in the registers, while the kernel
        // runs.
        unsafe {
            core::arch::asm!(
                "2:",
                "ldp q0, q1, [{src}], #32",
                "stp q0, q1, [{dst}], #32",
                "subs {n}, {n}, #1",
                "b.ne 2b",
                src = inout(reg) src as *const TrapFrame => _,
                dst = inout(reg) self as *mut TrapFrame => _,
                n = inout(reg) core::mem::size_of::<TrapFrame>() / 32 => _,
                out("v0") _, out("v1") _,
                options(nostack),
            );
        }
    }
}

#[unsafe(no_mangle)]
extern "C" fn handle_exception(frame: &mut TrapFrame) {
    if (8..16).contains(&frame.vector_index) {
        let handler = *USER_TRAP_HANDLER.lock();
        if let Some(handler) = handler {
            return handler(frame);
        }
    }
    let vector = Vector::from_index(frame.vector_index);
    let report = vector.map(|vector| ExceptionReport {
        vector,
        esr: frame.esr,
        far: frame.far,
        elr: frame.elr,
        spsr: frame.spsr,
    });
    if let Some(report) = report {
        let expectable =
            matches!(report.exception_class(), 0x21 | 0x25 | 0x3c) && report.vector.kind == VectorKind::Synchronous;
        if expectable && EXPECTING_FAULT.swap(false, Ordering::SeqCst) {
            *CAUGHT.lock() = Some(report);
            // Resume after the faulting instruction; an instruction abort has
            // no such instruction, so return to the caller of the function
            // that was branched to (`f` must reach it with a call).
            frame.elr = if report.exception_class() == 0x21 { frame.x[30] } else { frame.elr + 4 };
            return;
        }
    }
    let had_console = crate::console::has_console();
    crate::console::emergency_print(format_args!("\n*** folio: unexpected exception\n"));
    match report {
        Some(report) => {
            crate::console::emergency_print(format_args!("result exception fail{}\n", ReportFields(&report)));
            crate::console::emergency_print(format_args!("{report}"))
        }
        None => crate::console::emergency_print(format_args!(
            "result exception fail vector={} why=\"not one of the 16 vectors\"\n",
            frame.vector_index
        )),
    }
    super::exit::exit(if had_console { FAULT_EXIT_STATUS } else { NO_CONSOLE_EXIT_STATUS })
}
