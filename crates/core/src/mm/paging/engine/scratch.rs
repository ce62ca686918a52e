//! The buffers a change is planned and applied in, kept between changes.
//!
//! Owns: the slot-write, pending-write, doomed-table and invalidation
//! lists' memory while no change uses it.
//! Must never: hold anything from one change into the next (every buffer
//! comes back empty), or keep a large change's memory (past [`KEPT`]
//! entries a buffer is dropped after use).
//!
//! An unmap of one unit plans a few slot writes, frees a table or two and
//! queues an invalidation or two: four small vectors. Allocating and
//! freeing them on every change was a sixth of a one-page unmap.

use alloc::vec::Vec;

use super::bbm::{Invalidation, SlotWrite};
use crate::mm::Granule;

/// Entries a kept buffer may have room for: the largest contiguous run's
/// descriptors (128, a 2 MiB run of 16K pages), so unmapping one run
/// reuses them too; a larger change's lists go back to the heap. At most
/// about 7 KiB per tree.
pub(super) const KEPT: usize = 128;
const _: () = assert!(match Granule::K16.contiguous_entries(3) {
    Some(run) => run <= KEPT,
    None => false,
});

#[derive(Default)]
pub(super) struct Scratch {
    pub(super) writes: Vec<SlotWrite>,
    /// Index into the change's writes, and what its slot holds by then.
    pub(super) pending: Vec<(usize, u64)>,
    /// Table frames to free after the invalidation, with their levels.
    pub(super) doomed: Vec<(u64, u8)>,
    pub(super) invalidations: Vec<Invalidation>,
}

/// Entries each buffer gets room for when a tree is made: a small
/// change's (a block over a kept table: one write, one pending, one table
/// freed, one invalidation), so even a tree's first such change allocates
/// nothing on its request path.
const FIRST_ROOM: usize = 4;

impl Scratch {
    /// Buffers with room for a small change (left empty when the heap
    /// cannot give it: they grow on first use then).
    pub(super) fn with_room() -> Scratch {
        let mut s = Scratch::default();
        let _ = s.writes.try_reserve_exact(FIRST_ROOM);
        let _ = s.pending.try_reserve_exact(FIRST_ROOM);
        let _ = s.doomed.try_reserve_exact(FIRST_ROOM);
        let _ = s.invalidations.try_reserve_exact(FIRST_ROOM);
        s
    }

    /// Each buffer's room and length, for the tests.
    #[cfg(test)]
    pub(crate) fn kept(&self) -> [(usize, usize); 4] {
        [
            (self.writes.capacity(), self.writes.len()),
            (self.pending.capacity(), self.pending.len()),
            (self.doomed.capacity(), self.doomed.len()),
            (self.invalidations.capacity(), self.invalidations.len()),
        ]
    }
}

/// Puts `used` back in `slot`, empty, unless it grew past [`KEPT`].
pub(super) fn keep<T>(slot: &mut Vec<T>, mut used: Vec<T>) {
    if used.capacity() <= KEPT && used.capacity() >= slot.capacity() {
        used.clear();
        *slot = used;
    }
}
