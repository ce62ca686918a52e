//! The system calls, one function each (Hubris's and seL4's shape): a plain
//! function over the system and the calling task that returns what happens
//! next, or the error.
//!
//! Owns: the system-call table ([`dispatch`]), what each call reads of the
//! caller's argument registers, and the one function that writes result
//! registers ([`set_result_registers`]), for a call's own outcome and for
//! the IPC results other tasks' calls produce.
//! Must never: touch a task's memory except through its own translations
//! (`syscall::user_buffer_up_to`); print while the system lock is held
//! (a `write` returns its bytes in [`Next::Print`]).
//!
//! The numbers and registers are `folio_core::syscall`'s table; every
//! error is one [`SysError`], a status code of `folio_abi::status`.

use alloc::vec::Vec;

use folio_core::ipc::{Form, TaskId};
use folio_core::labels;
use folio_core::mm::layout;
use folio_core::syscall::{self, SysError};

use super::{System, end_task, memory};
use crate::arch::aarch64::timer;

/// What happens after a system call that did not fail.
pub(super) enum Next {
    /// The caller goes on with x0 = 0 and these in x1..x5.
    Continue([u64; 5]),
    /// As `Continue([0; 5])`; the bytes are printed once the system lock
    /// is released (a slow UART stalls nobody else).
    Print(Vec<u8>),
    /// IPC decided: the caller goes on or is blocked, and its registers
    /// come with IPC's results ([`folio_core::ipc::Ipc::deliver_results`]).
    Ipc,
    /// As `Ipc`, and the caller gives up the rest of its time slice.
    IpcYield,
    /// The caller gives up the rest of its time slice (x0 = 0).
    Yield,
    /// The caller ended.
    Exit,
}

/// Runs system call `number` for `task` with its argument registers x0..x4.
/// (Inlined into the trap handler: a table of calls, most of them one
/// line.)
#[inline(always)]
pub(super) fn dispatch(system: &mut System, task: TaskId, number: u64, x: [u64; 5]) -> Result<Next, SysError> {
    let msg = [x[1], x[2], x[3], x[4]];
    match number {
        syscall::EXIT => {
            end_task(system, task, x[0]);
            Ok(Next::Exit)
        }
        syscall::WRITE => read_task_buffer(system, task, x[0], x[1], syscall::MAX_WRITE).map(Next::Print),
        syscall::LABEL => label(system, task, x),
        syscall::YIELD => Ok(Next::Yield),
        syscall::SET_PRIORITY => system.ipc.set_priority(task, x[0]).map(|()| Next::Yield),
        syscall::SPAWN => super::lifetime::spawn(system, task, x),
        syscall::CALL => system.ipc.call(task, x[0], msg).map(|()| Next::Ipc),
        syscall::RECV => system.ipc.recv(task, x[0]).map(|()| Next::Ipc),
        syscall::REPLY => system.ipc.reply(task, [x[0], x[1], x[2], x[3]]).map(|()| Next::Ipc),
        syscall::REPLY_RECV => system.ipc.reply_recv(task, x[0], msg).map(|()| Next::Ipc),
        syscall::SIGNAL => system.ipc.signal(task, x[0]).map(|()| Next::Ipc),
        syscall::WAIT => system.ipc.wait(task, x[0]).map(|()| Next::Ipc),
        syscall::REPLY_POLL => {
            let idle = system.tasks[task].frame.x[5];
            let taken = system.ipc.reply_poll(task, x[0], msg, idle)?;
            Ok(if taken { Next::Ipc } else { Next::IpcYield })
        }
        syscall::RECV_NONBLOCKING => system.ipc.recv_nonblocking(task, x[0]).map(|()| Next::Ipc),
        syscall::RECV_TIMED => {
            let deadline = timer::counter().saturating_add(x[1]);
            system.ipc.recv_timed(task, x[0], deadline).map(|()| Next::Ipc)
        }
        syscall::MEM_CAP..=syscall::TABLE_FRAMES | syscall::LINK_SHARED_SELF | syscall::GROW_HEAP => {
            // (Word by word: moved whole, the five words went through a
            // `memcpy` call.)
            memory::call(system, task, number, [x[0], x[1], x[2], x[3]])
                .map(|[a, b, c, d, e]| Next::Continue([a, b, c, d, e]))
        }
        CALL_LONG | RECV_LONG | REPLY_RECV_LONG => long_message(system, task, number, x[0], msg),
        _ => Err(SysError::Unknown),
    }
}

/// The long forms of `call`, `recv` and `reply_recv`, out of line (the
/// short forms are the common case).
#[inline(never)]
fn long_message(system: &mut System, task: TaskId, number: u64, handle: u64, msg: [u64; 4]) -> Result<Next, SysError> {
    let form = long_form(system, task)?;
    match number {
        CALL_LONG => system.ipc.call_long(task, handle, msg, form),
        RECV_LONG => system.ipc.recv_long(task, handle, form),
        _ => system.ipc.reply_recv_long(task, handle, msg, form),
    }
    .map(|()| Next::Ipc)
}

/// The long forms of `call`, `recv` and `reply_recv` (`folio_abi::ipc`).
const CALL_LONG: u64 = syscall::CALL | folio_abi::ipc::LONG;
const RECV_LONG: u64 = syscall::RECV | folio_abi::ipc::LONG;
const REPLY_RECV_LONG: u64 = syscall::REPLY_RECV | folio_abi::ipc::LONG;

/// A long-form call's x5 (words sent) and x6 (words accepted).
fn long_form(system: &System, task: TaskId) -> Result<Form, SysError> {
    let x = &system.tasks[task].frame.x;
    Form::long(x[5], x[6])
}

/// Copies words 4..`words` of a long message from one task's IPC buffer
/// to another's, at the same index (the registers carried words 0..4).
/// Nothing else of either buffer is read or written.
pub(super) fn copy_message(from: u64, to: u64, words: u8) {
    let first = folio_abi::ipc::REGISTER_WORDS as usize;
    let words = (words as usize).min(folio_core::ipc::MAX_MESSAGE_WORDS as usize);
    // 0: a task cleaned up after its death has no buffer any more (a copy
    // is delivered in the trap that made it, so none should name one).
    if words <= first || from == 0 || to == 0 {
        return;
    }
    let (Some(src), Some(dst)) = (layout::linear(from), layout::linear(to)) else { return };
    // SAFETY: both are IPC buffer frames (one page each, at least 512
    // bytes on every granule) that their tasks own and the linear map
    // covers; words 4..64 lie inside them; the tasks differ (a task cannot
    // call itself: it would wait for its own reply), and even if not, `copy`
    // allows overlap.
    unsafe {
        core::ptr::copy((src as *const u64).add(first), (dst as *mut u64).add(first), words - first);
    }
}

/// The one writer of result registers: x0 = status, x1..x5. Six plain
/// stores (a 48-byte copy would be a call to the soft-float target's
/// byte-wise memcpy).
pub(super) fn set_result_registers(x: &mut [u64; 31], result: &[u64; 6]) {
    [x[0], x[1], x[2], x[3], x[4], x[5]] = *result;
}

/// The registers a call's outcome leaves in the caller, if it sets any
/// itself (IPC's results come separately).
#[inline(always)]
pub(super) fn result_registers(outcome: &Result<Next, SysError>) -> Option<[u64; 6]> {
    match outcome {
        Ok(Next::Continue([a, b, c, d, e])) => Some([0, *a, *b, *c, *d, *e]),
        Ok(Next::Print(_) | Next::Yield) => Some([0; 6]),
        Ok(Next::Ipc | Next::IpcYield | Next::Exit) => None,
        Err(e) => Some([*e as u64, 0, 0, 0, 0, 0]),
    }
}

/// Copies the task's buffer [va, va + len) (at most `max` bytes) in through
/// its own user mappings: what `write` and `label` read.
fn read_task_buffer(system: &mut System, task: TaskId, va: u64, len: u64, max: u64) -> Result<Vec<u8>, SysError> {
    let granule = system.granule;
    let tables = &mut system.tasks[task].tables;
    let pieces = syscall::user_buffer_up_to(va, len, max, granule.size(), &mut |page| {
        tables.translate(page).filter(|m| m.attributes.user).map(|m| m.pa + (page - m.va))
    })?;
    let mut bytes = Vec::with_capacity(len as usize);
    for (pa, n) in pieces {
        let src = layout::linear(pa).ok_or(SysError::BadAddress)?;
        // SAFETY: the range was translated through the task's own user
        // mappings and lies in RAM the linear map covers.
        bytes.extend_from_slice(unsafe { core::slice::from_raw_parts(src as *const u8, n as usize) });
    }
    Ok(bytes)
}

/// LABEL: the text comes in through the task's own mappings; the label
/// goes to the task's bounded table.
fn label(system: &mut System, task: TaskId, [va, size, when, text, len]: [u64; 5]) -> Result<Next, SysError> {
    let bytes = read_task_buffer(system, task, text, len, labels::MAX_LEN)?;
    system.tasks[task].labels.add(va, size, when, &bytes)?;
    Ok(Next::Continue([0; 5]))
}
