//! Long messages (`folio_abi::ipc`): up to 64 words, the first four in
//! registers, the rest through this task's IPC buffer.
//!
//! Owns: the only access to the IPC buffer (`folio_abi::task::IPC_BUFFER`,
//! a page the kernel maps for every task) and the long forms of `call`,
//! `recv` and `reply_recv`.

use core::arch::asm;

use folio_abi::ipc::{LONG, MAX_MESSAGE_WORDS, REGISTER_WORDS};
use folio_abi::{nr, task};

const MAX: usize = MAX_MESSAGE_WORDS as usize;
const IN_REGISTERS: usize = REGISTER_WORDS as usize;

/// What a long receive got: the status (0, or `TRUNCATED` when the sender
/// sent more than was accepted), the sender's badge, and how many words it
/// sent (the first `min(sent, accepted)` are in the message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    pub status: u64,
    pub badge: u64,
    pub sent: usize,
}

/// A system call with x0..x6 (the long forms read and write x6).
#[inline(always)]
pub fn syscall7(number: u64, args: [u64; 7]) -> [u64; 7] {
    let mut r = args;
    // SAFETY: SVC enters the kernel, which validates every argument and
    // writes only x0..x6 of this task (and its IPC buffer).
    unsafe {
        asm!(
            "svc #0",
            inout("x0") r[0], inout("x1") r[1], inout("x2") r[2], inout("x3") r[3],
            inout("x4") r[4], inout("x5") r[5], inout("x6") r[6],
            in("x8") number,
            options(nostack),
        );
    }
    r
}

fn buffer() -> *mut u64 {
    task::IPC_BUFFER as *mut u64
}

/// Puts `msg` (at most 64 words) where a long send takes it: words 4.. in
/// the IPC buffer; returns the register words and the length.
fn stage(msg: &[u64]) -> ([u64; 4], u64) {
    let len = msg.len().min(MAX);
    let mut regs = [0; 4];
    regs[..len.min(IN_REGISTERS)].copy_from_slice(&msg[..len.min(IN_REGISTERS)]);
    for (i, &word) in msg.iter().enumerate().take(len).skip(IN_REGISTERS) {
        // SAFETY: the kernel maps this task's IPC buffer (a page, at least
        // 64 words) read-write at IPC_BUFFER; i < 64. Volatile: the kernel
        // reads it during the system call.
        unsafe { buffer().add(i).write_volatile(word) };
    }
    (regs, msg.len() as u64)
}

/// Copies a received message into `into`: the register words, then what
/// arrived in the IPC buffer (`arrived` words in all, at most 64).
fn collect(r: &[u64; 7], into: &mut [u64], arrived: usize) {
    for (i, slot) in into.iter_mut().enumerate().take(arrived) {
        *slot = if i < IN_REGISTERS {
            r[1 + i]
        } else {
            // SAFETY: as in `stage`; the kernel wrote it during the call.
            unsafe { buffer().add(i).read_volatile() }
        };
    }
}

/// The outcome of a long call; x6 is meaningful when a message arrived.
fn received(r: &[u64; 7]) -> Received {
    let arrived = r[0] == folio_abi::status::OK || r[0] == folio_abi::status::TRUNCATED;
    Received { status: r[0], badge: r[5], sent: if arrived { r[6] as usize } else { 0 } }
}

/// Calls `handle` with `msg` (up to 64 words; longer is refused with
/// `INVALID_ARGUMENT`) and receives the reply into `reply` (accepting
/// `reply.len()` words, at most 64).
pub fn call_long(handle: u64, msg: &[u64], reply: &mut [u64]) -> Received {
    long_form(nr::CALL, handle, msg, reply)
}

/// Waits for a call on `handle`, accepting `into.len()` words (at most 64).
pub fn recv_long(handle: u64, into: &mut [u64]) -> Received {
    long_form(nr::RECV, handle, &[], into)
}

/// Replies `reply` (up to 64 words) to the caller owed, then waits for the
/// next call on `handle`, accepting `into.len()` words.
pub fn reply_recv_long(handle: u64, reply: &[u64], into: &mut [u64]) -> Received {
    long_form(nr::REPLY_RECV, handle, reply, into)
}

/// The long form of call `number`: sends `send` (nothing for `recv`),
/// accepts `into.len()` words (at least 1, since 0 means the most, and at
/// most 64) and collects what arrived.
fn long_form(number: u64, handle: u64, send: &[u64], into: &mut [u64]) -> Received {
    let (regs, len) = stage(send);
    let accepts = into.len().clamp(1, MAX);
    let r = syscall7(number | LONG, [handle, regs[0], regs[1], regs[2], regs[3], len, accepts as u64]);
    let got = received(&r);
    collect(&r, into, got.sent.min(accepts));
    got
}

/// Sends `len` words with a long call whose message the caller staged
/// itself (for tests of the bounds): x5 = `len` as given.
pub fn call_long_raw(handle: u64, len: u64) -> u64 {
    syscall7(nr::CALL | LONG, [handle, 0, 0, 0, 0, len, 0])[0]
}

/// Writes `word` at index `i` (< 64) of this task's IPC buffer.
pub fn buffer_write(i: usize, word: u64) {
    if i < MAX {
        // SAFETY: as in `stage`.
        unsafe { buffer().add(i).write_volatile(word) };
    }
}

/// Reads index `i` (< 64) of this task's IPC buffer.
pub fn buffer_read(i: usize) -> u64 {
    if i < MAX {
        // SAFETY: as in `stage`.
        unsafe { buffer().add(i).read_volatile() }
    } else {
        0
    }
}
