//! Zeroing off the request path: free memory is zeroed after a client
//! frees it and before anyone can see it again, in the background, so
//! ALLOC mostly finds a folio that is zero already.
//!
//! Owns: which free frames are known zero and which a client dirtied
//! (the pool's two [`RangeSet`](crate::ranges::RangeSet)s), the bound on
//! the zeroed stock, and the counts of bytes zeroed inline and in the
//! background.
//! Must never: hand a client a byte a previous owner wrote (ALLOC zeroes
//! inline whatever of its folio is not known zero), or make a large pool
//! resident by zeroing memory no client touched beyond the stock.
//!
//! Three kinds of free memory: known zero; dirty (a client had it, so it
//! is resident anyway); and unknown (no client had it since start: the
//! pool counts as not zeroed at start). The service's main loop calls
//! [`MemoryService::zero_step`] while [`MemoryService::zeroing_work`] says
//! there is work and no request is waiting, at a priority below its
//! clients'. A step zeroes at most the bytes it is given: dirty memory
//! first, all of it; then unknown memory, smallest free folios first,
//! until the known-zero free memory reaches [`MemoryService::zero_stock_bytes`].

use folio_hvo::{Folio, VmemmapHw};

use crate::{ClientMemory, MemoryService};

/// The zeroed stock never exceeds this, whatever the pool's size.
pub const ZERO_STOCK_MAX: u64 = 64 << 20;
/// Candidates [`MemoryService::zeroed_block`] looks at before giving up
/// (ALLOC then zeroes inline): bounds the search on a fragmented pool.
const SEARCH: usize = 64;

/// Free memory by kind, and bytes zeroed so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZeroingCounts {
    /// Free bytes known zero.
    pub zero: u64,
    /// Free bytes a client dirtied, waiting for the background.
    pub dirty: u64,
    /// Free bytes no client had since start, not zeroed.
    pub unknown: u64,
    /// Bytes ALLOC zeroed while its client waited.
    pub inline: u64,
    /// Bytes zeroed in the background.
    pub background: u64,
}

impl<B: VmemmapHw> MemoryService<B> {
    /// The first frame of an aligned block of `order` frames that is known
    /// zero and lies in one free folio, `None` when none is among the first
    /// candidates. In this order of preference:
    /// 1. a free folio of that order at the top of a known-zero range:
    ///    taken off by lowering the range's end in place (background
    ///    zeroing works upwards, so the ranges' tops are where it stopped);
    /// 2. any known-zero free folio of that order (from elsewhere in a
    ///    range, the range set splits or re-keys it);
    /// 3. the highest block of a larger free folio inside a known-zero
    ///    range (the folio is split).
    pub(crate) fn zeroed_block(&self, order: u32) -> Option<u64> {
        let size = 1u64 << order;
        let zero = &self.pool.zero;
        let top_block = |(start, end): (u64, u64)| Some(end.checked_sub(size)? & !(size - 1)).filter(|&b| b >= start);
        let free = &self.pool.free;
        if let Some(block) = zero.iter().take(SEARCH).filter_map(top_block).find(|&b| free.contains(order, b)) {
            return Some(block);
        }
        if let Some(head) = free.of(order).take(SEARCH).find(|&h| zero.covers(h, h + size)) {
            return Some(head);
        }
        zero.iter().take(SEARCH).filter_map(top_block).find(|&block| self.free_folio_holding(block, order).is_some())
    }

    /// ALLOC's part, the client waiting: zeroes whatever of `folio` is not
    /// known zero, and takes it out of both sets (it is the client's now).
    pub(crate) fn zero_for_client(&mut self, folio: Folio, mem: &mut dyn ClientMemory) {
        let shift = self.granule.shift();
        let (start, end) = (folio.pfn, folio.pfn + (1 << folio.order));
        if !self.pool.zero.covers(start, end) {
            for (s, e) in self.pool.zero.gaps(start, end) {
                mem.zero(s << shift, (e - s) << shift);
                self.zeroed_inline += (e - s) << shift;
            }
            self.pool.dirty.remove(start, end);
        }
        // (Known-zero and dirty never overlap: a folio all known zero has
        // nothing dirty to take out.)
        self.pool.zero.remove(start, end);
    }

    /// FREE's and a death's part: a client had `folio`.
    pub(crate) fn dirtied(&mut self, folio: Folio) {
        // It was held, so none of it is known zero (that set is free
        // memory only; the host tests check both sets after every step).
        self.pool.dirty.insert(folio.pfn, folio.pfn + (1 << folio.order));
    }

    /// The bound on known-zero free memory that background zeroing makes
    /// of memory no client had: a sixteenth of the pool, at most
    /// [`ZERO_STOCK_MAX`].
    pub fn zero_stock_bytes(&self) -> u64 {
        (self.pool_total_bytes() / 16).min(ZERO_STOCK_MAX)
    }

    /// Free memory by kind, and what was zeroed where.
    pub fn zeroing_counts(&self) -> ZeroingCounts {
        let shift = self.granule.shift();
        let zero = self.pool.zero.frames() << shift;
        let dirty = self.pool.dirty.frames() << shift;
        ZeroingCounts {
            zero,
            dirty,
            unknown: self.pool_free_bytes() - zero - dirty,
            inline: self.zeroed_inline,
            background: self.zeroed_background,
        }
    }

    /// Bytes the background has to zero now: everything dirty, and unknown
    /// memory up to the stock.
    pub fn zeroing_pending(&self) -> u64 {
        let c = self.zeroing_counts();
        c.dirty + c.unknown.min(self.zero_stock_bytes().saturating_sub(c.zero))
    }

    /// Whether a background step would zero something.
    pub fn zeroing_work(&self) -> bool {
        self.zeroing_pending() > 0
    }

    /// One background step: zeroes at most `max_bytes` (rounded to whole
    /// pages) of dirty memory, else of unknown memory while the stock is
    /// short. `false`: nothing to do.
    pub fn zero_step(&mut self, mem: &mut dyn ClientMemory, max_bytes: u64) -> bool {
        let shift = self.granule.shift();
        let max_frames = (max_bytes >> shift).max(1);
        let target = match self.pool.dirty.first() {
            Some(range) => Some(range),
            None if self.zeroing_work() => self.first_unknown(),
            None => None,
        };
        let Some((start, end)) = target else { return false };
        let end = end.min(start + max_frames);
        mem.zero(start << shift, (end - start) << shift);
        self.zeroed_background += (end - start) << shift;
        self.pool.dirty.remove(start, end);
        self.pool.zero.insert(start, end);
        true
    }

    /// The first range of free memory neither known zero nor dirty,
    /// smallest free folios first (so every size gets some stock before
    /// the largest take it all).
    fn first_unknown(&self) -> Option<(u64, u64)> {
        self.pool.free.orders().find_map(|order| {
            self.pool.free.of(order).find_map(|head| {
                let gap = self.pool.zero.gaps(head, head + (1 << order)).first().copied()?;
                self.pool.dirty.gaps(gap.0, gap.1).first().copied()
            })
        })
    }
}
