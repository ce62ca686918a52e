//! folio's EL0 runtime: what an EL0 program links against.
//!
//! Owns: the program entry point (`entry!`), the system-call instruction
//! (numbers, registers and status codes as `folio-abi` defines them; the
//! kernel's side is `crates/core/src/syscall.rs` and
//! `crates/kernel/src/task.rs`), a console that writes through the kernel,
//! the heap (feature `heap`), and safe access to what EL0 may use of the
//! hardware: memory mapped for the task ([`memory`]), DC ZVA, the counters,
//! and register-level checks for test programs ([`selftest`]). Besides the
//! kernel, the only crate with `unsafe`: programs and the memory service
//! forbid it. Must never: assume anything about memory beyond its own
//! segments and stack, or let a safe function reach a Rust object through
//! a raw address.
#![no_std]

use core::arch::asm;
use core::fmt::{self, Write};

/// The system-call numbers and status codes: the kernel's own crate.
pub use folio_abi as abi;
pub use folio_abi::{nr, status};

/// The memory service's protocol, from the same crate.
pub use folio_abi::memsvc;

#[cfg(feature = "heap")]
pub mod heap;
pub mod long;
pub mod memory;
pub mod selftest;

/// x0 and x1 at start: what the kernel set up for this task (the memory
/// service's quota and client count; 0 for other programs).
static START_ARGUMENTS: [core::sync::atomic::AtomicU64; 2] =
    [core::sync::atomic::AtomicU64::new(0), core::sync::atomic::AtomicU64::new(0)];

/// What the entry point does before `main`: keeps the start arguments and
/// sets up the heap (feature `heap`).
#[doc(hidden)]
pub fn start(a0: u64, a1: u64, flags: u64) {
    START_ARGUMENTS[0].store(a0, core::sync::atomic::Ordering::Relaxed);
    START_ARGUMENTS[1].store(a1, core::sync::atomic::Ordering::Relaxed);
    CYCLE_COUNTER.store(flags & abi::task::START_CYCLE_COUNTER != 0, core::sync::atomic::Ordering::Relaxed);
    #[cfg(feature = "heap")]
    heap::init();
}

pub fn start_arguments() -> [u64; 2] {
    START_ARGUMENTS.each_ref().map(|a| a.load(core::sync::atomic::Ordering::Relaxed))
}

/// The virtual counter and its frequency (EL0 may read them).
pub fn counter() -> (u64, u64) {
    let (count, frequency): (u64, u64);
    // SAFETY: the kernel lets EL0 read the virtual counter (CNTKCTL_EL1.EL0VCTEN).
    unsafe {
        asm!("isb", "mrs {}, cntvct_el0", "mrs {}, cntfrq_el0", out(reg) count, out(reg) frequency, options(nostack))
    };
    (count, frequency)
}

/// Whether the kernel lets this task read the cycle counter (x2 at start).
static CYCLE_COUNTER: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Whether [`cycles`] reads the PMU cycle counter (instructions under QEMU
/// -icount) rather than the virtual counter.
pub fn has_cycle_counter() -> bool {
    CYCLE_COUNTER.load(core::sync::atomic::Ordering::Relaxed)
}

/// Permission to read the PMU cycle counter, checked once: benchmarks hold
/// one so each read is just the `isb; mrs` pair.
#[derive(Clone, Copy, Debug)]
pub struct CycleCounter(());

impl CycleCounter {
    /// The counter, where the kernel lets this task read it.
    pub fn get() -> Option<CycleCounter> {
        has_cycle_counter().then_some(CycleCounter(()))
    }

    /// PMCCNTR_EL0 (instructions under QEMU -icount).
    #[inline(always)]
    pub fn read(&self) -> u64 {
        let c: u64;
        // SAFETY: a CycleCounter exists only where the kernel said at start
        // that PMCCNTR_EL0 is readable at EL0; reading it has no side effects.
        unsafe { asm!("isb", "mrs {}, pmccntr_el0", out(reg) c, options(nostack)) };
        c
    }
}

/// The cycle counter (instructions under QEMU -icount) where the kernel
/// lets this task read it (PMUSERENR_EL0.CR, only on a CPU with a PMU);
/// otherwise the virtual counter, which never traps.
pub fn cycles() -> u64 {
    match CycleCounter::get() {
        Some(c) => c.read(),
        None => counter().0,
    }
}

/// Names [va, va + size) of this task's address space for the kernel's
/// fault reports; `when` is `abi::label::ON_ANY_FAULT` or
/// `ON_WRITE_TO_READ_ONLY`. Returns 0 or an error status.
pub fn label(va: u64, size: u64, when: u64, text: &str) -> u64 {
    syscall(nr::LABEL, [va, size, when, text.as_ptr() as u64, text.len() as u64, 0])[0]
}

/// ORs this handle's badge into its notification.
pub fn signal(handle: u64) -> u64 {
    syscall(nr::SIGNAL, [handle, 0, 0, 0, 0, 0])[0]
}

/// Waits until the notification's word is non-zero; returns (status, word).
pub fn wait(handle: u64) -> (u64, u64) {
    let r = syscall(nr::WAIT, [handle, 0, 0, 0, 0, 0]);
    (r[0], r[1])
}

/// `recv` that returns at once (status 6, WouldBlock) when nobody called.
pub fn recv_nonblocking(handle: u64) -> (u64, u64, Message) {
    let r = syscall(nr::RECV_NONBLOCKING, [handle, 0, 0, 0, 0, 0]);
    (r[0], r[5], [r[1], r[2], r[3], r[4]])
}

/// `recv` that gives up (status 5, TimedOut) after `ticks` of the virtual counter.
pub fn recv_timed(handle: u64, ticks: u64) -> (u64, u64, Message) {
    let r = syscall(nr::RECV_TIMED, [handle, ticks, 0, 0, 0, 0]);
    (r[0], r[5], [r[1], r[2], r[3], r[4]])
}

/// Sleeps about `ms` milliseconds of the virtual counter: a timed
/// receive on `handle`, an endpoint of the caller's own that nobody calls.
/// Returns the status (5, TimedOut, when it slept the whole time).
pub fn nap(handle: u64, ms: u64) -> u64 {
    let (_, frequency) = counter();
    recv_timed(handle, frequency / 1000 * ms).0
}

/// Raw system call: number in x8, arguments in x0..x5, results in x0..x5.
#[inline(always)]
pub fn syscall(number: u64, args: [u64; 6]) -> [u64; 6] {
    let mut r = args;
    // SAFETY: SVC enters the kernel, which validates every argument and
    // writes only x0..x5 of this task.
    unsafe {
        asm!(
            "svc #0",
            inout("x0") r[0], inout("x1") r[1], inout("x2") r[2],
            inout("x3") r[3], inout("x4") r[4], inout("x5") r[5],
            in("x8") number,
            options(nostack),
        );
    }
    r
}

/// Ends this task with `status`.
pub fn exit(status: u64) -> ! {
    syscall(nr::EXIT, [status, 0, 0, 0, 0, 0]);
    // The kernel never returns from exit; spin if it somehow did.
    loop {
        core::hint::spin_loop();
    }
}

/// Writes bytes to the console; returns the kernel's result (0 or an error).
pub fn write(bytes: &[u8]) -> u64 {
    syscall(nr::WRITE, [bytes.as_ptr() as u64, bytes.len() as u64, 0, 0, 0, 0])[0]
}

pub fn yield_now() {
    syscall(nr::YIELD, [0; 6]);
}

/// Sets this task's priority (at most the one it was started with) and
/// yields; returns the status (15, InvalidArgument, above it).
pub fn set_priority(priority: u64) -> u64 {
    syscall(nr::SET_PRIORITY, [priority, 0, 0, 0, 0, 0])[0]
}

/// Starts packaged program `program` as a new task with `priority` (only
/// the launcher may; `abi::spawn`). `handles` become the child's handles
/// 0, 1, ... (at most `abi::spawn::MAX_HANDLES`): handle numbers of this
/// task's to pass, or `abi::spawn::OWN_ENDPOINT`. `arguments` are the
/// child's x0 and x1 at start. Returns the child's badge, or the status.
pub fn spawn(program: u64, priority: u64, handles: &[u64], arguments: [u64; 2]) -> Result<u64, u64> {
    let mut packed = 0;
    for i in (0..abi::spawn::MAX_HANDLES).rev() {
        packed = packed << 8 | handles.get(i).map_or(abi::spawn::NO_HANDLE, |&h| h.min(abi::spawn::NO_HANDLE));
    }
    let r = syscall(nr::SPAWN, [program, priority, packed, arguments[0], arguments[1], 0]);
    if r[0] == 0 { Ok(r[1]) } else { Err(r[0]) }
}

/// A short message: four words in registers.
pub type Message = [u64; 4];

/// Sends `msg` on endpoint handle `handle` and waits for the reply.
/// Returns (status, reply words); status 0 is success.
pub fn call(handle: u64, msg: Message) -> (u64, Message) {
    let r = syscall(nr::CALL, [handle, msg[0], msg[1], msg[2], msg[3], 0]);
    (r[0], [r[1], r[2], r[3], r[4]])
}

/// Waits for a call on `handle`. Returns (status, badge of the caller, message).
pub fn recv(handle: u64) -> (u64, u64, Message) {
    let r = syscall(nr::RECV, [handle, 0, 0, 0, 0, 0]);
    (r[0], r[5], [r[1], r[2], r[3], r[4]])
}

/// Replies to the last caller, then waits for the next call on `handle`.
pub fn reply_recv(handle: u64, reply: Message) -> (u64, u64, Message) {
    let r = syscall(nr::REPLY_RECV, [handle, reply[0], reply[1], reply[2], reply[3], 0]);
    (r[0], r[5], [r[1], r[2], r[3], r[4]])
}

/// Replies to the last caller, then takes a request that already waits;
/// with none, the caller drops to `idle_priority` and yields, and gets
/// `WOULD_BLOCK` when it runs again (`abi::nr::REPLY_POLL`).
pub fn reply_poll(handle: u64, reply: Message, idle_priority: u64) -> (u64, u64, Message) {
    let r = syscall(nr::REPLY_POLL, [handle, reply[0], reply[1], reply[2], reply[3], idle_priority]);
    (r[0], r[5], [r[1], r[2], r[3], r[4]])
}

/// Replies to the last caller.
pub fn reply(msg: Message) -> u64 {
    syscall(nr::REPLY, [msg[0], msg[1], msg[2], msg[3], 0, 0])[0]
}

/// Collects a line and writes it with one system call, so lines of tasks
/// preempted mid-print do not interleave.
pub struct Line {
    buffer: [u8; 512],
    len: usize,
}

impl Line {
    pub const fn new() -> Line {
        Line { buffer: [0; 512], len: 0 }
    }

    pub fn flush(&mut self) {
        write(&self.buffer[..self.len]);
        self.len = 0;
    }
}

impl Default for Line {
    fn default() -> Self {
        Line::new()
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buffer.len() {
                self.flush();
            }
            self.buffer[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        use core::fmt::Write;
        let mut line = $crate::Line::new();
        let _ = writeln!(line, $($arg)*);
        line.flush();
    }};
}

/// Prints a structured result line (`folio_abi::report`) with one system
/// call: `result!(NAME, PASSED, key = value, ...)` prints
/// `result NAME pass|fail key=value ...`.
#[macro_export]
macro_rules! result {
    ($name:expr, $passed:expr $(, $key:ident = $value:expr)* $(,)?) => {{
        use core::fmt::Write;
        let mut line = $crate::Line::new();
        let _ = writeln!(
            line,
            "{}{} {}{}",
            $crate::abi::report::PREFIX,
            $name,
            $crate::abi::report::verdict($passed),
            $crate::abi::report::Fields(&[$((stringify!($key), &$value as &dyn core::fmt::Display)),*])
        );
        line.flush();
    }};
}

/// Declares the program's main: `entry!(main)` with `fn main() -> u64`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(no_mangle)]
        #[unsafe(link_section = ".text.entry")]
        pub extern "C" fn _start(a0: u64, a1: u64, flags: u64) -> ! {
            $crate::start(a0, a1, flags);
            let status: u64 = $main();
            $crate::exit(status)
        }

        #[panic_handler]
        fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
            $crate::println!("panic: {}", info.message());
            $crate::exit(101)
        }
    };
}
