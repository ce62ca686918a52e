//! The pool: free folios by order, every one described in the vmemmap and
//! kept optimized where its order is eligible for HVO.
//!
//! Owns: which folios are free, the blocks the pool was adopted as, and
//! the pool memory carved into vmemmap frames.
//! Must never: hand out a folio that is still on a free list, merge pieces
//! past the block they were adopted as, or give carved memory back to the
//! pool while the vmemmap may use it.
//!
//! At start every pool range is cut into blocks (the folio size the kernel
//! names for a `hugepages=` range, else the largest huge-page sizes that
//! fit) and each block is adopted born optimized: one private vmemmap
//! page, the rest mapped to its (zone, order)'s shared tail, whole
//! last-level tables of tail linked shared. So the full vmemmap is never
//! populated. A request for a size with no free folio of it splits a
//! larger one a mapping size at a time, then in halves down to the size
//! asked for, which may be any power of two from the base page up
//! (demote: the pieces stay optimized where eligible); a freed folio is
//! optimized again if it was not, and later merges with its free
//! neighbours back up to the block it was adopted as ([`crate::merging`]:
//! off the request path).
//!
//! The vmemmap's frames come from the small frames the kernel granted.
//! When the engine runs out, the smallest free folio is carved: it stays
//! described (owned by [`CARVED`]) and its frames go to the vmemmap's
//! allocator for good, so the pool shrinks by it. Every engine call that
//! can allocate goes through [`MemoryService::engine`], which carves and
//! retries (the engine changes nothing when it runs out of memory).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use folio_core::mm::{Granule, PhysRange};
use folio_hvo::{Folio, Hvo, HvoError, VmemmapHw};

use crate::free_lists::FreeLists;
use crate::ranges::RangeSet;
use crate::{MemoryService, PoolRange, StartError, supported_size_shifts};

/// Owner recorded in the head of a free folio (no client has badge 0).
pub const FREE: u64 = 0;
/// Owner recorded in the head of a folio carved into vmemmap frames.
pub const CARVED: u64 = u64::MAX;
/// Free vmemmap frames below which the service carves before an engine
/// operation, so the split that carving needs has frames to run on.
pub const LOW_WATER: u64 = 64;

#[derive(Default)]
pub(crate) struct Pool {
    /// Free folios by order: their head frame numbers.
    pub(crate) free: FreeLists,
    /// The blocks the pool was adopted as: head frame -> order. A freed
    /// folio merges back up to its block, never past it.
    blocks: BTreeMap<u64, u32>,
    free_bytes: u64,
    pub(crate) total_bytes: u64,
    carved_bytes: u64,
    /// Free frames known to be zero (`zeroing`): never a client's since
    /// they were zeroed.
    pub(crate) zero: RangeSet,
    /// Free frames a client had: to be zeroed before anyone sees them.
    pub(crate) dirty: RangeSet,
    /// Folios freed and not yet merged with their free neighbours, oldest
    /// first ([`crate::merging`]).
    pub(crate) unmerged: alloc::collections::VecDeque<Folio>,
}

impl Pool {
    pub(crate) fn free_bytes(&self) -> u64 {
        self.free_bytes
    }

    pub(crate) fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    pub(crate) fn carved_bytes(&self) -> u64 {
        self.carved_bytes
    }

    pub(crate) fn largest_free_order(&self) -> Option<u32> {
        self.free.largest()
    }

    pub(crate) fn has_free_at_least(&self, order: u32) -> bool {
        self.free.smallest_at_least(order).is_some()
    }

    pub(crate) fn free_list(&self) -> Vec<Folio> {
        self.free.orders().flat_map(|order| self.free.of(order).map(move |pfn| Folio { pfn, order })).collect()
    }

    /// Free folios of each order: (order, count).
    pub(crate) fn free_counts(&self) -> Vec<(u32, u64)> {
        self.free.orders().map(|o| (o, self.free.count(o) as u64)).collect()
    }

    fn insert(&mut self, pfn: u64, order: u32, page_shift: u32) {
        if self.free.insert(order, pfn) {
            self.free_bytes += 1 << (order + page_shift);
        }
    }

    fn remove(&mut self, pfn: u64, order: u32, page_shift: u32) -> bool {
        let removed = self.free.remove(order, pfn);
        if removed {
            self.free_bytes -= 1 << (order + page_shift);
        }
        removed
    }

    /// Free pages in the block of `order` at `base`.
    fn free_pages_in(&self, base: u64, order: u32) -> u64 {
        let end = base + (1u64 << order);
        let orders = self.free.orders().take_while(|&o| o <= order);
        orders.map(|o| (self.free.of_in(o, base, end).count() as u64) << o).sum()
    }

    /// The order of the block `pfn` was adopted in.
    fn block_order(&self, pfn: u64) -> Option<u32> {
        let (&start, &order) = self.blocks.range(..=pfn).next_back()?;
        (pfn - start < 1 << order).then_some(order)
    }
}

/// The granule's mapping sizes above a page, as orders: bit `o` set for
/// each. Computed once at start; the request path asks it bit operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Orders(u64);

impl Orders {
    pub(crate) fn of(granule: Granule) -> Orders {
        Orders(supported_size_shifts(granule) >> granule.shift())
    }

    /// As SIZES reports them: size shifts, bit `order + page_shift` each.
    pub(crate) fn as_size_shifts(self, page_shift: u32) -> u64 {
        self.0 << page_shift
    }

    pub(crate) fn contains(self, order: u32) -> bool {
        order < 64 && self.0 & (1 << order) != 0
    }

    /// The `n`-th smallest, or the largest when there are fewer.
    pub(crate) fn nth_or_largest(self, n: usize) -> u32 {
        let mut bits = self.0;
        for _ in 0..n {
            let rest = bits & bits.wrapping_sub(1);
            if rest == 0 {
                break;
            }
            bits = rest;
        }
        bits.trailing_zeros()
    }

    /// The largest.
    pub(crate) fn largest(self) -> u32 {
        63 - self.0.leading_zeros()
    }

    /// The largest in [low, high).
    pub(crate) fn largest_in(self, low: u32, high: u32) -> Option<u32> {
        let bits = self.0 & below(high) & !below(low);
        (bits != 0).then(|| 63 - bits.leading_zeros())
    }

    /// The smallest in (low, high].
    pub(crate) fn smallest_in(self, low: u32, high: u32) -> Option<u32> {
        let bits = self.0 & below(high.saturating_add(1)) & !below(low.saturating_add(1));
        (bits != 0).then(|| bits.trailing_zeros())
    }
}

/// The bits below `order`.
fn below(order: u32) -> u64 {
    if order >= 64 { u64::MAX } else { (1 << order) - 1 }
}

/// The blocks a pool range is cut into: (head frame, order).
fn blocks_of(range: &PoolRange, page_shift: u32, orders: Orders) -> Result<Vec<(u64, u32)>, StartError> {
    let (mut pfn, end) = (range.range.start() >> page_shift, range.range.end() >> page_shift);
    let mut out = Vec::new();
    if let Some(shift) = range.folio_shift {
        let order = shift.checked_sub(page_shift).filter(|&o| orders.contains(o)).ok_or(StartError::BadPool)?;
        if pfn % (1 << order) != 0 || (end - pfn) % (1 << order) != 0 {
            return Err(StartError::BadPool);
        }
        while pfn < end {
            out.push((pfn, order));
            pfn += 1 << order;
        }
        return Ok(out);
    }
    while pfn < end {
        let fits = |o: u32| pfn % (1 << o) == 0 && pfn + (1 << o) <= end;
        let order = (0..=orders.largest()).rev().find(|&o| orders.contains(o) && fits(o));
        let Some(order) = order else { return Err(StartError::BadPool) };
        out.push((pfn, order));
        pfn += 1 << order;
    }
    Ok(out)
}

impl<B: VmemmapHw> MemoryService<B> {
    /// Cuts the ranges into blocks and adopts every block born optimized,
    /// free. Blocks are adopted largest first; when the vmemmap's frames
    /// run out, the smallest block not yet adopted is carved.
    pub(crate) fn adopt_pool(&mut self, ranges: &[PoolRange]) -> Result<(), StartError> {
        let shift = self.granule.shift();
        let mut todo = Vec::new();
        for r in ranges {
            todo.extend(blocks_of(r, shift, self.orders)?);
        }
        // Largest last, so `pop` adopts them first and the smallest stay
        // at the front to be carved.
        todo.sort_unstable_by_key(|&(pfn, order)| (order, core::cmp::Reverse(pfn)));
        while let Some(&(pfn, order)) = todo.last() {
            match self.hvo.adopt_optimized(pfn, order, FREE) {
                Ok(_) => {
                    todo.pop();
                    self.pool.blocks.insert(pfn, order);
                    self.pool.insert(pfn, order, shift);
                    self.pool.total_bytes += 1 << (order + shift);
                }
                Err(HvoError::OutOfMemory) if todo.len() > 1 => {
                    // The smallest block left (never adopted, never mapped)
                    // becomes vmemmap frames.
                    let (cpfn, corder) = todo.remove(0);
                    let range = PhysRange::saturating(cpfn << shift, 1 << (corder + shift));
                    if !self.hvo.hw().add_frames(range) {
                        return Err(StartError::Vmemmap(HvoError::OutOfMemory));
                    }
                    self.pool.carved_bytes += range.size();
                }
                Err(e) => return Err(StartError::Vmemmap(e)),
            }
        }
        Ok(())
    }

    /// Runs an engine operation. Below [`LOW_WATER`] free vmemmap frames it
    /// carves first; when the operation runs out of memory it carves and
    /// tries again, each retry carving a larger size, so an operation that
    /// needs many frames (restoring a 1 GiB folio: 4,095) is served in a
    /// few carves and never takes more than about twice what it needs.
    pub(crate) fn engine<T>(&mut self, mut op: impl FnMut(&mut Hvo<B>) -> Result<T, HvoError>) -> Result<T, HvoError> {
        if self.carving {
            return op(&mut self.hvo);
        }
        if self.hvo.hw_ref().free_frame_count().is_some_and(|n| n < LOW_WATER) {
            self.carve(0);
        }
        let mut size = 0;
        loop {
            match op(&mut self.hvo) {
                Err(HvoError::OutOfMemory) if self.carve(size) => size += 1,
                r => return r,
            }
        }
    }

    /// Carves one free folio into vmemmap frames: of the `size`-th smallest
    /// huge-page size (or the largest there is), split from a larger free
    /// folio if need be, else the smallest free folio whole. `false`:
    /// nothing left to carve.
    fn carve(&mut self, size: usize) -> bool {
        let shift = self.granule.shift();
        let want = self.orders.nth_or_largest(size);
        self.carving = true;
        let split = self.take(want);
        self.carving = false;
        let folio = match split {
            Ok(Some(f)) => f,
            // Too few frames left to split: the smallest free folio whole.
            _ => {
                let smallest = self.pool.free.orders().next();
                let Some((order, pfn)) = smallest.and_then(|o| Some((o, self.pool.free.of(o).next_back()?))) else {
                    return false;
                };
                self.pool.remove(pfn, order, shift);
                Folio { pfn, order }
            }
        };
        let range = PhysRange::saturating(folio.pfn << shift, 1 << (folio.order + shift));
        if !self.hvo.hw().add_frames(range) {
            self.pool.insert(folio.pfn, folio.order, shift);
            return false;
        }
        self.pool.total_bytes -= range.size();
        self.pool.carved_bytes += range.size();
        // Vmemmap frames now: no longer free pool memory of either kind.
        let end = folio.pfn + (1 << folio.order);
        self.pool.zero.remove(folio.pfn, end);
        self.pool.dirty.remove(folio.pfn, end);
        // Still described, now the service's own.
        let _ = self.hvo.set_owner(folio, CARVED);
        true
    }

    /// Takes a free folio of `order` off the pool: one known to be zero
    /// where there is one (`zeroing`), else the first of the smallest
    /// order there is, split when larger. `None`: no free folio that large.
    /// On an engine failure the pool keeps every byte (pieces already split
    /// stay free).
    pub(crate) fn take(&mut self, order: u32) -> Result<Option<Folio>, HvoError> {
        let base = self.zeroed_block(order).or_else(|| self.pool.free.first_at_least(order).map(|(_, head)| head));
        match base {
            Some(base) => self.take_at(base, order),
            None => Ok(None),
        }
    }

    /// The free folio that holds frame `pfn`, of `order` or larger.
    pub(crate) fn free_folio_holding(&self, pfn: u64, order: u32) -> Option<Folio> {
        self.pool.free.orders().filter(|&o| o >= order).find_map(|o| {
            let head = pfn & !((1u64 << o) - 1);
            self.pool.free.contains(o, head).then_some(Folio { pfn: head, order: o })
        })
    }

    /// Takes the folio of `order` at frame `base` off the pool, splitting
    /// the free folio that holds it: a mapping size at a time, then in
    /// halves, the pieces around it staying free.
    pub(crate) fn take_at(&mut self, base: u64, order: u32) -> Result<Option<Folio>, HvoError> {
        let shift = self.granule.shift();
        let Some(mut folio) = self.free_folio_holding(base, order) else { return Ok(None) };
        self.pool.remove(folio.pfn, folio.order, shift);
        while folio.order > order {
            // A mapping size at a time (one demote each); below the last
            // one, in halves, so a size no mapping unit has leaves one free
            // folio of each order between instead of many of its own.
            let next = self.orders.largest_in(order, folio.order);
            let next = next.unwrap_or(folio.order - 1);
            let pieces = match self.engine(|h| h.demote(folio, next)) {
                Ok(p) => p,
                Err(e) => {
                    self.pool.insert(folio.pfn, folio.order, shift);
                    return Err(e);
                }
            };
            let keep = ((base - folio.pfn) >> next) as usize;
            for (i, p) in pieces.iter().enumerate() {
                if i != keep {
                    self.pool.insert(p.pfn, p.order, shift);
                }
            }
            folio = pieces[keep];
        }
        Ok(Some(folio))
    }

    /// Puts a folio nobody holds back on the free lists, optimized again
    /// where eligible (left plain if the engine cannot). Its merge with
    /// its free neighbours waits for the background ([`crate::merging`]).
    pub(crate) fn give_back(&mut self, folio: Folio) {
        let shift = self.granule.shift();
        if self.eligible(folio.order) && !self.hvo.is_optimized(folio) {
            let _ = self.engine(|h| h.optimize(&[folio]));
        }
        let _ = self.hvo.set_owner(folio, FREE);
        self.pool.insert(folio.pfn, folio.order, shift);
        self.queue_merge(folio);
    }

    /// Merges free folio `folio` (if it is still one) with its free
    /// neighbours up to the block it was adopted in: to the next mapping
    /// size where that whole block is free, else (below a mapping size)
    /// with its buddy, one order up. A block that is free but cut into
    /// folios of several orders (any-order allocations) is put together
    /// first.
    pub(crate) fn merge_up(&mut self, folio: Folio) {
        if !self.pool.free.contains(folio.order, folio.pfn) {
            // Taken again, or merged into a larger one already.
            return;
        }
        let mut folio = folio;
        let orders = self.orders;
        let limit = self.pool.block_order(folio.pfn).unwrap_or(folio.order);
        'up: loop {
            let jump = orders.smallest_in(folio.order, limit);
            // Pairwise only below a mapping size: folios of a mapping size
            // wait until the whole next size is free and merge in one go
            // (512 x 2 MiB back into 1 GiB: 33 engine merges, not 511).
            let buddy = (folio.order < limit && !orders.contains(folio.order)).then_some(folio.order + 1);
            for next in [jump, buddy].into_iter().flatten() {
                let base = folio.pfn & !((1u64 << next) - 1);
                if self.pool.free_pages_in(base, next) == 1 << next
                    && let Some(merged) = self.assemble(base, next)
                {
                    folio = merged;
                    continue 'up;
                }
            }
            break;
        }
    }

    /// Puts the wholly free block of `order` at `base` together into one
    /// free folio: in one merge where it is cut into folios of one order,
    /// else its two halves first. `None` when the engine could not (every
    /// piece stays free, as it was).
    fn assemble(&mut self, base: u64, order: u32) -> Option<Folio> {
        let at_base = self.pool.free.orders().find(|&o| self.pool.free.contains(o, base))?;
        if at_base == order {
            return Some(Folio { pfn: base, order });
        }
        if let Some(merged) = self.merge_free(Folio { pfn: base, order: at_base }, order) {
            return Some(merged);
        }
        let half = 1u64 << (order - 1);
        let low = self.assemble(base, order - 1)?;
        self.assemble(base + half, order - 1)?;
        self.merge_free(low, order)
    }

    /// Merges the free folios of `folio`'s order that make up the block of
    /// order `next` around it, if all of them are free, into one free folio
    /// (optimized where eligible). `None`: not all free, or the engine
    /// could not (everything stays as it was).
    fn merge_free(&mut self, folio: Folio, next: u32) -> Option<Folio> {
        let shift = self.granule.shift();
        let base = folio.pfn & !((1u64 << next) - 1);
        let pieces: Vec<Folio> = (0..1u64 << (next - folio.order))
            .map(|k| Folio { pfn: base + (k << folio.order), order: folio.order })
            .collect();
        if !pieces.iter().all(|p| self.pool.free.contains(p.order, p.pfn)) {
            return None;
        }
        // Off the free lists before the engine runs: carving (which the
        // engine call may do first) must not take one of them.
        for p in &pieces {
            self.pool.remove(p.pfn, p.order, shift);
        }
        let Ok(merged) = self.engine(|h| h.merge(&pieces, next, FREE)) else {
            for p in &pieces {
                self.pool.insert(p.pfn, p.order, shift);
            }
            return None;
        };
        if self.eligible(next) && !self.hvo.is_optimized(merged) {
            let _ = self.engine(|h| h.optimize(&[merged]));
        }
        self.pool.insert(merged.pfn, merged.order, shift);
        Some(merged)
    }
}
