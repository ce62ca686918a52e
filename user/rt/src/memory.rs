//! Memory the kernel or the memory service mapped for this task (huge
//! pages, the service's windows, test regions), reached with volatile
//! accesses through safe functions.
//!
//! Owns: the rule that makes these accesses sound. Such memory is never a
//! Rust object of this program: every address given here must lie outside
//! the program's image and stack (checked; a violation is a bug and
//! panics). An access to such an address that nothing maps, or that is
//! mapped read-only, faults, and the kernel stops the task and reports the
//! fault: the program never observes a value it should not.
//! Must never: hand out a reference into that memory (its contents change
//! under the program: the service remaps, the kernel moves pages).

use core::arch::asm;

use folio_abi::memsvc::layout::SERVICE_HEAP_WINDOW;
use folio_abi::task::{STACK_SIZE, STACK_TOP};

unsafe extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

/// Whether [va, va + len) overlaps memory Rust owns in this program: its
/// image (code, data, the heap's arena, statics), its stack, or its heap
/// window (where GROW_HEAP puts the heap's growth).
fn overlaps_own_memory(va: u64, len: u64) -> bool {
    let image = (core::ptr::addr_of!(__image_start) as u64, core::ptr::addr_of!(__image_end) as u64);
    let stack = (STACK_TOP - STACK_SIZE, STACK_TOP);
    let heap = (SERVICE_HEAP_WINDOW, SERVICE_HEAP_WINDOW + folio_abi::heap::MAX_BYTES);
    let end = va.saturating_add(len.max(1));
    [image, stack, heap].iter().any(|&(start, stop)| va < stop && start < end)
}

fn check(va: u64, len: u64, align: u64) {
    assert!(va.is_multiple_of(align), "folio_rt::memory: {va:#x} is not {align}-byte aligned");
    assert!(!overlaps_own_memory(va, len), "folio_rt::memory: [{va:#x}, +{len:#x}) is this program's own memory");
}

/// A range of such memory, checked once: accesses through it check only
/// that they stay inside (for loops where an access is a few instructions).
#[derive(Clone, Copy, Debug)]
pub struct Mapped {
    start: u64,
    len: u64,
}

impl Mapped {
    /// [start, start + len), 8-byte aligned, outside this program's own
    /// memory (panics otherwise).
    pub fn new(start: u64, len: u64) -> Mapped {
        check(start, len, 8);
        Mapped { start, len }
    }

    fn at(&self, offset: u64, bytes: u64) -> u64 {
        assert!(
            offset.is_multiple_of(8) && offset <= self.len && bytes <= self.len - offset,
            "folio_rt::memory: offset {offset:#x} outside {self:?}"
        );
        self.start + offset
    }

    /// Reads `N` words at `offset` (8-byte aligned) with one volatile access.
    pub fn read_words<const N: usize>(&self, offset: u64) -> [u64; N] {
        let va = self.at(offset, 8 * N as u64);
        // SAFETY: inside a range checked to be aligned and outside every
        // Rust object of this program, so the read aliases nothing the
        // compiler knows of; any bit pattern is a valid [u64; N]; if nothing
        // is mapped there the kernel stops the task at the fault.
        unsafe { core::ptr::read_volatile(va as *const [u64; N]) }
    }

    /// Writes `N` words at `offset` (8-byte aligned) with one volatile access.
    pub fn write_words<const N: usize>(&self, offset: u64, words: [u64; N]) {
        let va = self.at(offset, 8 * N as u64);
        // SAFETY: as in `read_words`.
        unsafe { core::ptr::write_volatile(va as *mut [u64; N], words) };
    }

    pub fn read_u64(&self, offset: u64) -> u64 {
        self.read_words::<1>(offset)[0]
    }

    /// Reads `N` words at `offset` (8-byte aligned) with plain loads, which
    /// the compiler may widen or merge (e.g. into 128-bit pairs). For memory
    /// nothing else changes while the program looks at it; a system call
    /// (which clobbers memory) orders these against the kernel's changes.
    pub fn load<const N: usize>(&self, offset: u64) -> [u64; N] {
        let va = self.at(offset, 8 * N as u64);
        // SAFETY: as in `read_words`: inside a checked range that is no Rust
        // object of this program, aligned, every bit pattern valid.
        unsafe { core::ptr::read(va as *const [u64; N]) }
    }

    /// Writes `N` words at `offset` (8-byte aligned) with plain stores (see
    /// [`load`](Self::load)).
    pub fn store<const N: usize>(&self, offset: u64, words: [u64; N]) {
        let va = self.at(offset, 8 * N as u64);
        // SAFETY: as in `write_words`.
        unsafe { core::ptr::write(va as *mut [u64; N], words) };
    }

    pub fn write_u64(&self, offset: u64, value: u64) {
        self.write_words::<1>(offset, [value]);
    }
}

/// Reads `N` words at `va` (8-byte aligned) with one volatile access.
pub fn read_words<const N: usize>(va: u64) -> [u64; N] {
    Mapped::new(va, 8 * N as u64).read_words(0)
}

/// Writes `N` words at `va` (8-byte aligned) with one volatile access.
pub fn write_words<const N: usize>(va: u64, words: [u64; N]) {
    Mapped::new(va, 8 * N as u64).write_words(0, words);
}

/// Reads one word at `va` (8-byte aligned).
pub fn read_u64(va: u64) -> u64 {
    read_words::<1>(va)[0]
}

/// Writes one word at `va` (8-byte aligned).
pub fn write_u64(va: u64, value: u64) {
    write_words::<1>(va, [value]);
}

/// Fills [va, va + len) with `byte`.
pub fn fill(va: u64, len: u64, byte: u8) {
    check(va, len, 1);
    // SAFETY: the range is checked to lie outside every Rust object of this
    // program; a byte it does not map faults and the kernel stops the task.
    unsafe { core::ptr::write_bytes(va as *mut u8, byte, len as usize) };
}

/// DCZID_EL0: the DC ZVA block size and whether EL0 may use it.
fn dczid() -> u64 {
    let value: u64;
    // SAFETY: DCZID_EL0 is readable at EL0 and has no side effects.
    unsafe { asm!("mrs {}, dczid_el0", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// Zeroes [va, va + size) (64-byte aligned): DC ZVA a block at a time when
/// EL0 may use it (the kernel sets SCTLR_EL1.DZE) and `size` is a multiple
/// of the block, otherwise 64-byte stores.
pub fn zero(va: u64, size: u64) {
    check(va, size, 64);
    let dczid = dczid();
    let block = 4u64 << (dczid & 0xf);
    let mut at = va;
    let end = va + size;
    if dczid & (1 << 4) == 0 && size.is_multiple_of(block) && va.is_multiple_of(block) {
        // Four blocks a step where the range allows: one loop test per four.
        while end - at >= 4 * block {
            // SAFETY: the four blocks from `at` lie inside the checked
            // range; each DC ZVA writes exactly its block (faulting like a
            // store if unmapped).
            unsafe {
                asm!(
                    "dc zva, {a}",
                    "add {a}, {a}, {b}",
                    "dc zva, {a}",
                    "add {a}, {a}, {b}",
                    "dc zva, {a}",
                    "add {a}, {a}, {b}",
                    "dc zva, {a}",
                    "add {a}, {a}, {b}",
                    a = inout(reg) at,
                    b = in(reg) block,
                    options(nostack)
                )
            };
        }
        while at < end {
            // SAFETY: `at` is a block inside the checked range; DC ZVA
            // writes exactly that block (faulting like a store if unmapped).
            unsafe { asm!("dc zva, {}", in(reg) at, options(nostack)) };
            at += block;
        }
    } else {
        while at < end {
            // SAFETY: 64 bytes inside the checked range.
            unsafe { core::ptr::write_volatile(at as *mut [u64; 8], [0; 8]) };
            at += 64;
        }
    }
}

/// Reads a value of this program's own through a reference, as a volatile
/// access: the compiler must load it from memory (e.g. after a system call
/// that another task's run could have disturbed).
pub fn read_own<T: Copy>(value: &T) -> T {
    // SAFETY: a reference is valid, aligned and initialised for reads.
    unsafe { core::ptr::read_volatile(value) }
}
