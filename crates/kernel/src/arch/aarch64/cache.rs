//! Cache maintenance by virtual address, with the line sizes the CPU
//! reports (CTR_EL0), never an assumed 64 bytes.
//!
//! Owns: the `dc`/`ic` loops and the barriers that complete them.
//! Must never: be used on an address the current tables do not map (a `dc`
//! to an unmapped address faults).

use core::arch::asm;

/// CTR_EL0, the cache type register (aarch64-cpu does not name it).
fn ctr_el0() -> u64 {
    let value: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// The smallest data-cache line of any cache the maintenance reaches, in
/// bytes (CTR_EL0.DminLine, bits 19:16, is log2 of the number of 4-byte
/// words), as `boot.s` reads it too.
pub fn dcache_line() -> u64 {
    4 << ((ctr_el0() >> 16) & 0xf)
}

/// Every data-cache line that holds a byte of [va, va + len).
fn lines(va: u64, len: u64, line: u64) -> impl Iterator<Item = u64> {
    let first = va & !(line - 1);
    (first..va.saturating_add(len)).step_by(line as usize)
}

/// Cleans and invalidates [va, va + len) to the point of coherency and
/// waits (`dsb sy`): an observer with its MMU or caches off (a core just
/// started, a device) then reads what this core wrote.
pub fn clean_invalidate_to_poc(va: u64, len: u64) {
    for line in lines(va, len, dcache_line()) {
        // SAFETY: cache maintenance on a mapped address changes no data.
        unsafe { asm!("dc civac, {}", in(reg) line, options(nostack)) };
    }
    // SAFETY: a barrier.
    unsafe { asm!("dsb sy", options(nostack)) };
}

/// Cleans [va, va + len) to the point of coherency (no invalidation) and
/// waits (`dsb sy`).
pub fn clean_to_poc(va: u64, len: u64) {
    for line in lines(va, len, dcache_line()) {
        // SAFETY: cache maintenance on a mapped address changes no data.
        unsafe { asm!("dc cvac, {}", in(reg) line, options(nostack)) };
    }
    // SAFETY: a barrier.
    unsafe { asm!("dsb sy", options(nostack)) };
}

/// Makes instructions written through a data mapping of [va, va + len)
/// visible to instruction fetch on every core: clean to the point of
/// unification, `dsb ish`, invalidate all instruction caches (inner
/// shareable), `dsb ish`, `isb`.
pub fn sync_icache(va: u64, len: u64) {
    for line in lines(va, len, dcache_line()) {
        // SAFETY: cache maintenance on a mapped address changes no data.
        unsafe { asm!("dc cvau, {}", in(reg) line, options(nostack)) };
    }
    // SAFETY: barriers and instruction-cache invalidation only.
    unsafe { asm!("dsb ish", "ic ialluis", "dsb ish", "isb", options(nostack)) };
}

/// Zeroes [va, va + size) of Normal memory mapped read/write (the MMU on:
/// DC ZVA to Device memory faults) a block of DCZID_EL0's size at a time
/// with DC ZVA where the CPU allows it (DCZID_EL0.DZP clear) and the range
/// is aligned to it, else with plain stores. DC ZVA orders as stores do, so
/// the barriers that publish a store publish these.
///
/// # Safety
/// [va, va + size) must be mapped read/write as Normal memory and owned
/// by the caller: nothing else may hold a reference into it.
pub unsafe fn zero(va: u64, size: u64) {
    let dczid: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe { asm!("mrs {}, dczid_el0", out(reg) dczid, options(nomem, nostack, preserves_flags)) };
    let block = 4u64 << (dczid & 0xf);
    if dczid & (1 << 4) != 0 || !va.is_multiple_of(block) || !size.is_multiple_of(block) {
        // SAFETY: the caller's range, mapped read/write and its own.
        unsafe { core::ptr::write_bytes(va as *mut u8, 0, size as usize) };
        return;
    }
    let (mut at, end) = (va, va + size);
    // Four blocks a step where the range allows (a page table is 64 or
    // more): one loop test per four, not per block.
    while end - at >= 4 * block {
        // SAFETY: the four blocks from `at` lie inside the caller's mapped,
        // writable range; each DC ZVA writes exactly its block.
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
                options(nostack, preserves_flags)
            )
        };
    }
    while at < end {
        // SAFETY: `at` is a block inside the caller's mapped, writable
        // range; DC ZVA writes exactly that block.
        unsafe { asm!("dc zva, {}", in(reg) at, options(nostack, preserves_flags)) };
        at += block;
    }
}
