//! Merging off the request path: a freed folio goes back on its free list
//! at once, and its merge with its free neighbours (one HVO engine batch
//! per merge: the vmemmap pages that become shared are remapped with
//! break-before-make) waits for the background, as zeroing does. Linux
//! defers the vmemmap work of freeing a huge page to a workqueue for the
//! same reason.
//!
//! Owns: the queue of folios freed and not yet merged, and its bound.
//! Must never: let a request fail for want of a merge (ALLOC, SIZES, POOL
//! and STATS merge what is queued first when it matters), or let the
//! queue grow without bound (past [`MAX_UNMERGED`] the oldest is merged on
//! the request path).
//!
//! The service's main loop calls [`MemoryService::background_step`]
//! while [`MemoryService::background_work`] says there is work and no
//! request is waiting: queued merges first, then zeroing.

use folio_hvo::{Folio, VmemmapHw};

use crate::{ClientMemory, MemoryService};

/// Folios a run of FREEs may leave unmerged before the oldest is merged
/// on the request path (each entry is 16 bytes of the service's heap).
pub const MAX_UNMERGED: usize = 4096;

impl<B: VmemmapHw> MemoryService<B> {
    /// Queues free folio `folio` to merge with its neighbours later.
    pub(crate) fn queue_merge(&mut self, folio: Folio) {
        if self.pool.unmerged.len() >= MAX_UNMERGED
            && let Some(oldest) = self.pool.unmerged.pop_front()
        {
            self.merge_up(oldest);
        }
        self.pool.unmerged.push_back(folio);
    }

    /// Folios waiting to merge.
    pub fn merges_pending(&self) -> usize {
        self.pool.unmerged.len()
    }

    /// Merges the oldest queued folio with its free neighbours. `false`:
    /// nothing was queued.
    pub fn merge_step(&mut self) -> bool {
        match self.pool.unmerged.pop_front() {
            Some(folio) => {
                self.merge_up(folio);
                true
            }
            None => false,
        }
    }

    /// Merges everything queued: before an answer that depends on how the
    /// free memory is cut (the largest free folio, the folios of each
    /// size), and before ALLOC finds nothing large enough.
    pub fn merge_pending(&mut self) {
        while self.merge_step() {}
    }

    /// Whether a background step would do something.
    pub fn background_work(&self) -> bool {
        !self.pool.unmerged.is_empty() || self.zeroing_work()
    }

    /// One background step: one queued merge, else one zeroing step of at
    /// most `max_bytes`. `false`: nothing to do.
    pub fn background_step(&mut self, mem: &mut dyn ClientMemory, max_bytes: u64) -> bool {
        self.merge_step() || self.zero_step(mem, max_bytes)
    }
}
