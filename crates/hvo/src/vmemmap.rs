//! The vmemmap: a virtually contiguous array of descriptors indexed by frame
//! number, the hardware it is built on ([`VmemmapHw`]), its zones, shared
//! tail pages and accounting, and reading descriptors back.

use alloc::vec::Vec;

use folio_core::mm::{Granule, PhysRange};

use crate::HvoError;
use crate::descriptor::*;

/// What the engine needs from the machine: frames for vmemmap pages,
/// physical access to fill them, mappings of vmemmap pages (made, changed
/// with break-before-make in batches, removed), and access to descriptors
/// through the vmemmap's virtual addresses.
pub trait VmemmapHw {
    /// One frame of the granule, or `None` when memory is out.
    fn alloc_frame(&mut self) -> Option<u64>;
    fn free_frame(&mut self, pa: u64);
    /// Frees many frames at once (the old vmemmap pages of a batch).
    fn free_frames(&mut self, frames: &mut [u64]) {
        for &pa in frames.iter() {
            self.free_frame(pa);
        }
    }
    /// How many frames `alloc_frame` could still hand out, where the
    /// hardware can tell (to check the accounting against the allocator).
    fn free_frame_count(&self) -> Option<u64> {
        None
    }
    /// Fills the frame at `pa` with `f(index)` for each descriptor slot.
    fn fill_frame(&mut self, pa: u64, f: &mut dyn FnMut(usize) -> PageDescriptor);
    /// Maps unmapped vmemmap pages: (va, pa, writable).
    fn map_pages(&mut self, pages: &[(u64, u64, bool)]) -> Result<(), HvoError>;
    /// Maps `pages` unmapped vmemmap pages from `va` read-only to the one
    /// frame `pa` (a shared tail).
    fn map_shared(&mut self, va: u64, pa: u64, pages: u64) -> Result<(), HvoError>;
    /// Maps `tables` unmapped, consecutive last-level-table spans from `va`
    /// (aligned to one) by linking each to one shared last-level table
    /// whose every entry maps the frame `pa` read-only: wherever a whole
    /// table's range would map nothing but one shared tail. The tables live
    /// while linked (the page tables free them with their last link).
    fn link_shared_tables(&mut self, va: u64, tables: u64, pa: u64) -> Result<(), HvoError>;
    /// Gives the frame allocator the frames of `range` (pool memory the
    /// owner carved for the vmemmap). `false`: this hardware cannot.
    fn add_frames(&mut self, _range: PhysRange) -> bool {
        false
    }
    /// Points mapped vmemmap pages at new frames: one break-before-make
    /// batch. Returns the frames they mapped before, in order.
    fn remap_pages(&mut self, pages: &[(u64, u64, bool)]) -> Result<Vec<u64>, HvoError>;
    fn unmap_pages(&mut self, va: u64, size: u64) -> Result<(), HvoError>;
    /// The frame mapped at a vmemmap page.
    fn frame_of(&mut self, va: u64) -> Option<u64>;
    fn read(&mut self, va: u64) -> PageDescriptor;
    /// Writes through the vmemmap mapping. On a read-only page this faults
    /// in the kernel; the simulation reports it as an error.
    fn write(&mut self, va: u64, d: &PageDescriptor) -> Result<(), HvoError>;
    /// Page-table frames in use by the whole tree the vmemmap lives in.
    fn table_frames(&mut self) -> u64;
}

/// Accounting for one (zone, order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrderStats {
    pub zone: u8,
    pub order: u32,
    pub folios: u64,
    pub optimized: u64,
    /// Vmemmap pages these folios' descriptors span.
    pub vmemmap_pages_before: u64,
    /// Vmemmap pages they use now: private pages, plus the shared tail.
    pub vmemmap_pages_after: u64,
    pub shared_tail: bool,
}

/// Accounting for the whole vmemmap. The frames it holds are exactly
/// `populated + private_copies + shared_tails - freed_by_hvo + restored`,
/// which the tests compare with the frame allocator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accounting {
    /// Frames that back the vmemmap right now (all of the above, netted).
    pub vmemmap_frames: u64,
    /// Frames given back by HVO (net of what restores took).
    pub freed_by_hvo: u64,
    pub shared_tails: u64,
    /// Page-table frames the vmemmap's mappings added to the tree.
    pub table_frames: u64,
    /// Vmemmap pages a plain vmemmap would have needed for folios adopted
    /// born optimized, and which were never allocated.
    pub never_populated: u64,
}

pub(crate) struct SharedTail {
    pub(crate) zone: u8,
    pub(crate) order: u32,
    pub(crate) pa: u64,
    pub(crate) users: u64,
}

/// One zone: a RAM bank (or NUMA node).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Zone {
    pub id: u8,
    pub range: PhysRange,
}

/// The vmemmap of some zones and the HVO engine over it.
pub struct Hvo<B: VmemmapHw> {
    pub(crate) hw: B,
    pub(crate) granule: Granule,
    pub(crate) base: u64,
    pub(crate) zones: Vec<Zone>,
    pub(crate) tails: Vec<SharedTail>,
    pub(crate) stats: Vec<OrderStats>,
    pub(crate) accounting: Accounting,
    /// Vmemmap ranges [start, end) this engine mapped and must unmap.
    pub(crate) owned: Vec<(u64, u64)>,
}

impl<B: VmemmapHw> Hvo<B> {
    /// Builds the vmemmap at `base` (aligned to the descriptor span of the
    /// largest folio) for `zones`, mapped with base pages, every descriptor
    /// initialised as free. On failure nothing stays allocated.
    pub fn new(mut hw: B, granule: Granule, base: u64, zones: &[Zone]) -> Result<Self, HvoError> {
        let tables_before = hw.table_frames();
        let mut engine = Self::new_unpopulated(hw, granule, base, zones);
        for zone in zones {
            if let Err(e) = engine.populate(zone) {
                engine.teardown();
                return Err(e);
            }
        }
        engine.accounting.table_frames = engine.hw.table_frames() - tables_before;
        Ok(engine)
    }

    /// A vmemmap for `zones` with nothing populated yet: for huge-page pools
    /// whose folios are adopted born optimized ([`Hvo::adopt_optimized`]), so
    /// the full vmemmap is never allocated or initialised.
    pub fn new_unpopulated(hw: B, granule: Granule, base: u64, zones: &[Zone]) -> Self {
        Hvo {
            hw,
            granule,
            base,
            zones: zones.to_vec(),
            tails: Vec::new(),
            stats: Vec::new(),
            accounting: Accounting::default(),
            owned: Vec::new(),
        }
    }

    /// Maps [start, end) of the vmemmap read-only to the shared tail at
    /// `tail_pa`: whole last-level-table ranges by linking the shared table
    /// of read-only references to it (so a large pool costs a handful of
    /// tables), the ends page by page.
    pub(crate) fn map_tail_range(&mut self, tail_pa: u64, start: u64, end: u64) -> Result<(), HvoError> {
        let span = self.granule.level_size(2);
        let page = self.page_size();
        let (first_whole, end_whole) = (start.next_multiple_of(span), end & !(span - 1));
        if first_whole >= end_whole {
            return self.hw.map_shared(start, tail_pa, (end - start) / page);
        }
        let mut done: Vec<(u64, u64)> = Vec::new();
        let pieces = [(start, first_whole, false), (first_whole, end_whole, true), (end_whole, end, false)];
        for (from, to, whole) in pieces {
            if from == to {
                continue;
            }
            let r = if whole {
                self.hw.link_shared_tables(from, (to - from) / span, tail_pa)
            } else {
                self.hw.map_shared(from, tail_pa, (to - from) / page)
            };
            if let Err(e) = r {
                for (from, to) in done {
                    let _ = self.hw.unmap_pages(from, to - from);
                }
                return Err(e);
            }
            done.push((from, to));
        }
        Ok(())
    }

    pub(crate) fn page_size(&self) -> u64 {
        self.granule.size()
    }

    /// The vmemmap address of frame `pfn`'s descriptor.
    pub fn descriptor_va(&self, pfn: u64) -> u64 {
        self.base + (pfn << DESCRIPTOR_SHIFT)
    }

    pub(crate) fn zone_of(&self, pfn: u64) -> Option<u8> {
        let pa = pfn << self.granule.shift();
        self.zones.iter().find(|z| z.range.contains(pa)).map(|z| z.id)
    }

    /// Maps and initialises the vmemmap pages of one zone.
    pub(crate) fn populate(&mut self, zone: &Zone) -> Result<(), HvoError> {
        let shift = self.granule.shift();
        let (first_pfn, end_pfn) = (zone.range.start() >> shift, zone.range.end() >> shift);
        let page = self.page_size();
        let first_va = self.descriptor_va(first_pfn) & !(page - 1);
        let end_va = self.descriptor_va(end_pfn).next_multiple_of(page);
        let mut va = first_va;
        let mut batch = Vec::new();
        let zones = self.zones.clone();
        while va < end_va {
            if self.hw.frame_of(va).is_none() {
                let pa = self.hw.alloc_frame().ok_or(HvoError::OutOfMemory)?;
                self.accounting.vmemmap_frames += 1;
                self.own(va, page);
                let first = (va - self.base) >> DESCRIPTOR_SHIFT;
                self.hw.fill_frame(pa, &mut |i| {
                    let pa_of = (first + i as u64) << shift;
                    // Only a page at a zone's edge can describe another zone's frames.
                    let id = if zone.range.contains(pa_of) {
                        zone.id
                    } else {
                        zones.iter().find(|z| z.range.contains(pa_of)).map_or(0, |z| z.id)
                    };
                    PageDescriptor::free(id)
                });
                batch.push((va, pa, true));
                if batch.len() == 512 {
                    self.map_batch(&mut batch)?;
                }
            }
            va += page;
        }
        self.map_batch(&mut batch)
    }

    pub(crate) fn map_batch(&mut self, batch: &mut Vec<(u64, u64, bool)>) -> Result<(), HvoError> {
        let result = self.hw.map_pages(batch);
        if result.is_err() {
            for &(_, pa, _) in batch.iter() {
                self.hw.free_frame(pa);
                self.accounting.vmemmap_frames -= 1;
            }
        }
        batch.clear();
        result
    }

    /// Records that this engine mapped [va, va + size) of the vmemmap (kept
    /// as merged ranges: another engine may own the pages around them).
    pub(crate) fn own(&mut self, va: u64, size: u64) {
        match self.owned.last_mut() {
            Some(last) if last.1 == va => last.1 += size,
            _ => self.owned.push((va, va + size)),
        }
    }

    /// Unmaps the vmemmap pages this engine mapped and frees every frame it holds.
    pub(crate) fn teardown(&mut self) {
        let page = self.page_size();
        for (first_va, end_va) in core::mem::take(&mut self.owned) {
            let mut frames = Vec::new();
            let mut va = first_va;
            while va < end_va {
                if let Some(pa) = self.hw.frame_of(va)
                    && !self.tails.iter().any(|t| t.pa == pa)
                {
                    frames.push(pa);
                }
                va += page;
            }
            // One unmap for the range: shared tables go with their slots.
            let _ = self.hw.unmap_pages(first_va, end_va - first_va);
            self.accounting.vmemmap_frames -= frames.len() as u64;
            self.hw.free_frames(&mut frames);
        }
        for t in core::mem::take(&mut self.tails) {
            self.hw.free_frame(t.pa);
            self.accounting.shared_tails -= 1;
        }
    }

    /// Updates the page-table frame count after the caller changed the
    /// vmemmap's extent (adoptions map pages outside `new`).
    pub fn count_table_frames(&mut self, before: u64) {
        self.accounting.table_frames = self.hw.table_frames().saturating_sub(before);
    }

    /// Tears the vmemmap down and returns the hardware. Folios still
    /// allocated are forgotten (their frames belong to the caller).
    pub fn destroy(mut self) -> B {
        self.teardown();
        self.hw
    }

    pub fn accounting(&self) -> Accounting {
        self.accounting
    }

    pub fn order_stats(&self) -> &[OrderStats] {
        &self.stats
    }

    pub fn hw(&mut self) -> &mut B {
        &mut self.hw
    }

    pub fn hw_ref(&self) -> &B {
        &self.hw
    }

    /// The zones this vmemmap describes.
    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    pub fn granule(&self) -> Granule {
        self.granule
    }

    pub(crate) fn stats_for(&mut self, zone: u8, order: u32) -> &mut OrderStats {
        let i = match self.stats.iter().position(|s| s.zone == zone && s.order == order) {
            Some(i) => i,
            None => {
                self.stats.push(OrderStats { zone, order, ..OrderStats::default() });
                self.stats.len() - 1
            }
        };
        &mut self.stats[i]
    }

    /// Vmemmap pages a folio of `order` spans (at least 1).
    pub(crate) fn pages_of(&self, order: u32) -> u64 {
        (((1u64 << order) << DESCRIPTOR_SHIFT) / self.page_size()).max(1)
    }

    pub(crate) fn is_eligible(&self, order: u32) -> bool {
        order >= min_optimizable_order(self.granule)
    }

    /// Reads the descriptor of frame `pfn` through the vmemmap.
    pub fn descriptor(&mut self, pfn: u64) -> PageDescriptor {
        let va = self.descriptor_va(pfn);
        self.hw.read(va)
    }

    /// The head frame of the folio holding `pfn`, computed from the tail's
    /// own address and its compound_info: never a stored pointer.
    pub fn compound_head(&mut self, pfn: u64) -> u64 {
        let va = self.descriptor_va(pfn);
        let d = self.hw.read(va);
        (compound_head(va, &d) - self.base) >> DESCRIPTOR_SHIFT
    }

    /// The shared tail page of (zone, order), created on first use, with
    /// one more user.
    pub(crate) fn shared_tail(&mut self, zone: u8, order: u32) -> Option<u64> {
        if let Some(t) = self.tails.iter_mut().find(|t| t.zone == zone && t.order == order) {
            t.users += 1;
            return Some(t.pa);
        }
        let pa = self.hw.alloc_frame()?;
        let tail = PageDescriptor::tail(order, zone);
        self.hw.fill_frame(pa, &mut |_| tail);
        self.tails.push(SharedTail { zone, order, pa, users: 1 });
        self.accounting.shared_tails += 1;
        self.stats_for(zone, order).shared_tail = true;
        Some(pa)
    }

    /// One user fewer; the last one frees the page (it is no longer mapped).
    pub(crate) fn drop_tail_user(&mut self, zone: u8, order: u32) {
        let Some(i) = self.tails.iter().position(|t| t.zone == zone && t.order == order) else { return };
        self.tails[i].users -= 1;
        if self.tails[i].users == 0 {
            // No folio uses the tail, so nothing maps it any more, and no
            // slot links a shared table of it (the page tables freed that
            // with its last link).
            let t = self.tails.swap_remove(i);
            self.hw.free_frame(t.pa);
            self.accounting.shared_tails -= 1;
            self.stats_for(zone, order).shared_tail = false;
        }
    }
}
