//! The program's heap (feature `heap`): a buddy allocator over an arena in
//! .bss, installed as the global allocator and set up by the entry point
//! before `main` runs, and grown at run time with pool frames the program
//! holds ([`grow`]: the memory service's heap grows from its own pool).
//!
//! Owns: the arena and the heap window's memory once GROW_HEAP put it
//! there. Must never: be set up twice, or after an allocation; take memory
//! into the heap that anything else can reach. The kernel guarantees that
//! for what GROW_HEAP moves (mapped only in the heap window, taken out of
//! the caller's capabilities, never mapped into a client), and
//! [`crate::memory`] refuses every address of the heap window.

use buddy_system_allocator::LockedHeap;

use crate::{nr, syscall};
use folio_abi::memsvc::layout::SERVICE_HEAP_WINDOW;

/// The arena's size: what a program needs before it can grow its heap.
pub const HEAP_SIZE: usize = 4 << 20;

#[repr(align(4096))]
#[allow(dead_code)] // only its address is used
struct Arena([u8; HEAP_SIZE]);

static mut ARENA: Arena = Arena([0; HEAP_SIZE]);

#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::empty();

/// Called once by the entry point, before `main`.
pub(crate) fn init() {
    // SAFETY: the arena is used by nothing but the heap, and the entry
    // point calls this once, before anything can allocate.
    unsafe { HEAP.lock().init(core::ptr::addr_of_mut!(ARENA) as usize, HEAP_SIZE) };
}

/// Moves the pool frames [pa, pa + size) into the heap (GROW_HEAP, see
/// [`folio_abi::heap`]): from now on they are this program's heap and
/// nothing else. Errors are the kernel's status, and change nothing.
pub fn grow(pa: u64, size: u64) -> Result<(), u64> {
    let r = syscall(nr::GROW_HEAP, [pa, size, 0, 0, 0, 0]);
    if r[0] != 0 {
        return Err(r[0]);
    }
    let va = r[1];
    let inside = va >= SERVICE_HEAP_WINDOW
        && va.checked_add(size).is_some_and(|end| end <= SERVICE_HEAP_WINDOW + folio_abi::heap::MAX_BYTES);
    assert!(inside, "folio_rt::heap: GROW_HEAP answered {va:#x}, outside the heap window");
    // SAFETY: the kernel has just mapped [va, va + size) read/write in this
    // program's heap window, and only there; no memory call can unmap it
    // or map its frames anywhere else (they left the capabilities), and
    // `memory` refuses heap-window addresses. So the range is memory no
    // one else uses, for the rest of the program's life.
    unsafe { HEAP.lock().add_to_heap(va as usize, (va + size) as usize) };
    Ok(())
}

/// Bytes the heap could still hand out (in blocks of all sizes).
pub fn free_bytes() -> u64 {
    let heap = HEAP.lock();
    (heap.stats_total_bytes() - heap.stats_alloc_actual()) as u64
}

/// Bytes the heap manages: the arena and what [`grow`] added.
pub fn total_bytes() -> u64 {
    HEAP.lock().stats_total_bytes() as u64
}
