//! The Rust side of the exception vectors.
//!
//! Owns: what happens on every exception. At this stage of folio every
//! exception is unexpected except one a kernel test announced with
//! [`catch_fault`]: an unexpected one prints a decoded report
//! ([`folio_core::exception::ExceptionReport`]) and ends the machine with a
//! failure status. Nothing hangs silently.
//! Must never: return into an instruction that will fault again.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::sync::SpinLock;
use folio_core::exception::{ExceptionReport, ReportFields, Vector, VectorKind};

/// The interrupted context as `vectors.s` saved it: on the kernel stack for
/// an exception from EL1, in the running task's own save area for one from
/// EL0. A task's FP/SIMD registers are not here: they are saved lazily
/// ([`super::fpsimd`]).
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
    /// The task's thread pointer (saved and restored on EL0 entries only).
    pub tpidr_el0: u64,
}

const _: () = assert!(core::mem::size_of::<TrapFrame>() == 304);
const _: () = assert!(core::mem::offset_of!(TrapFrame, tpidr_el0) == 296);

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

/// Where exceptions from EL0 go (the task layer); none until tasks exist.
/// It gets the running task's save area, the registers just saved, and
/// returns the save area to resume at EL0: the same one, or the next
/// task's (a task switch). Kept as the function's address in an atomic (0:
/// none), so that every trap does not take a lock to find it.
static USER_TRAP_HANDLER: AtomicUsize = AtomicUsize::new(0);

/// See [`USER_TRAP_HANDLER`].
pub type UserTrapHandler = fn(*mut TrapFrame) -> *mut TrapFrame;

/// Sets (or with `None` removes) the handler of exceptions from EL0.
pub fn set_user_trap_handler(handler: Option<UserTrapHandler>) {
    USER_TRAP_HANDLER.store(handler.map_or(0, |h| h as usize), Ordering::Release);
}

/// The kernel's registers while a task runs (see `enter_user` in vectors.s).
#[repr(C)]
#[derive(Default)]
pub struct KernelContext {
    callee_saved: [u64; 12],
    sp: u64,
}

unsafe extern "C" {
    fn enter_user(frame: *mut TrapFrame, kernel: *mut KernelContext);
    fn return_to_kernel(kernel: *const KernelContext) -> !;
}

/// Runs tasks from `first`, the save area of the task to run: returns when
/// the task layer calls [`leave_user_mode`] with the same context. From
/// here until then the EL0 vectors save into `first` (and into whatever
/// save area the handler returns), so it must stay in place and be touched
/// by nobody else while its task runs.
pub fn run_user(first: *mut TrapFrame, kernel: &mut KernelContext) {
    // SAFETY: `first` is a complete EL0 frame (EL0t SPSR, entry ELR, user
    // SP) in a save area the task layer keeps in place while the task runs;
    // enter_user saves the kernel's context in `kernel`, which outlives the
    // call because return_to_kernel comes back here through it.
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
        TrapFrame { x, sp_el0: sp, elr: entry, spsr: 0x340, esr: 0, far: 0, vector_index: 0, tpidr_el0: 0 }
    }
}

/// Every exception from EL0 (`trap_user` in vectors.s): the task layer's,
/// or unexpected while no task set runs.
#[unsafe(no_mangle)]
extern "C" fn handle_user_exception(frame: *mut TrapFrame) -> *mut TrapFrame {
    match USER_TRAP_HANDLER.load(Ordering::Acquire) {
        // SAFETY: the vectors just saved a whole frame at `frame`.
        0 => unexpected(unsafe { &*frame }, None),
        address => {
            // SAFETY: a non-zero value was stored by set_user_trap_handler
            // from a `UserTrapHandler`, so it is that function's address.
            let handler = unsafe { core::mem::transmute::<usize, UserTrapHandler>(address) };
            handler(frame)
        }
    }
}

/// Every exception from EL1 (`trap_kernel` in vectors.s).
#[unsafe(no_mangle)]
extern "C" fn handle_exception(frame: &mut TrapFrame) {
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
    unexpected(frame, report)
}

/// Reports an exception nobody expected and ends the machine.
fn unexpected(frame: &TrapFrame, report: Option<ExceptionReport>) -> ! {
    let report = report.or_else(|| {
        Vector::from_index(frame.vector_index).map(|vector| ExceptionReport {
            vector,
            esr: frame.esr,
            far: frame.far,
            elr: frame.elr,
            spsr: frame.spsr,
        })
    });
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
