//! The program's heap (feature `heap`): a buddy allocator over an arena in
//! .bss, installed as the global allocator and set up by the entry point
//! before `main` runs.
//!
//! Owns: the arena. Must never: be set up twice, or after an allocation.

use buddy_system_allocator::LockedHeap;

/// The arena's size: the memory service's bookkeeping (batches, clients,
/// folios) fits with room to spare on the machines folio is tested on.
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
