//! Page descriptors, the vmemmap, huge folios, and HVO (Hugepage Vmemmap
//! Optimization) on arm64.
//!
//! Owns: one vmemmap (a virtually contiguous array of 64-byte
//! [`PageDescriptor`]s indexed by frame number), the folios described in it,
//! the shared tail pages, and the accounting of every vmemmap frame.
//! Must never: touch page tables or frames except through [`VmemmapHw`]
//! (so the memory service can run the same engine in its own address
//! space), write a tail descriptor of an optimized folio, or target a tail
//! descriptor with an atomic instruction (on arm64 even a failing
//! compare-and-swap needs write permission, and tails are read-only).
//!
//! # The mechanism
//!
//! A folio of order N spans 2^N frames, so 2^N descriptors in
//! n = 2^N x 64 / PAGE_SIZE vmemmap pages. Its head descriptor carries the
//! order, owner, reference count and flags; every tail carries only
//! `compound_info = GENMASK(63, N + 6) | 1`, so the head is
//! `tail_address & !1 & compound_info` and all tails of one order (and zone)
//! are byte-identical. HVO keeps vmemmap page 0 private (a fresh copy, so the
//! old pages free as one run), points pages 1..n-1 read-only at the zone's
//! shared tail page for that order, and frees the old pages only after the
//! TLB is clean. Restore reverses it. Every remap is break-before-make,
//! batched with one synchronisation per batch.
//!
//! # Nobody in the window
//!
//! While the engine remaps a folio's vmemmap pages, nothing else reads or
//! writes those descriptors: the engine is the only code that holds this
//! [`Hvo`] (it is owned, not shared; the kernel keeps it behind one lock and
//! the memory service is its only owner), a folio being optimized or
//! restored is owned by the caller of that operation and not handed out,
//! and nothing else in folio reads descriptors at all. So during the
//! break-before-make window an access to those addresses cannot happen, and
//! the full architectural sequence can run: the gap that made Linux turn
//! HVO off on arm64.
#![cfg_attr(not(any(test, feature = "sim")), no_std)]

extern crate alloc;

use alloc::vec::Vec;
use core::fmt;

use folio_core::mm::{Granule, PhysRange};

#[cfg(any(test, feature = "sim"))]
pub mod sim;
#[cfg(test)]
mod tests;

/// The most vmemmap pages one optimize or restore sub-batch remaps (see
/// [`Hvo::optimize`]): four 1 GiB folios on 4K, 64 on 16K.
pub const MAX_BATCH_PAGES: u64 = 16384;

/// Head descriptor flags.
pub const FLAG_HEAD: u64 = 1 << 0;
pub const FLAG_OPTIMIZED: u64 = 1 << 1;

/// One frame's descriptor: 64 bytes, a power of two.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageDescriptor {
    /// Head only: [`FLAG_HEAD`], [`FLAG_OPTIMIZED`].
    pub flags: u64,
    /// Tails only: the order-encoded mask | 1; 0 elsewhere.
    pub compound_info: u64,
    /// Head only: who allocated the folio.
    pub owner: u64,
    /// Head only. Never updated atomically on a tail (tails are read-only).
    pub refcount: u32,
    /// Head only: the folio's order.
    pub order: u8,
    /// Every descriptor: the zone (RAM bank) of its frame.
    pub zone: u8,
    pub reserved0: u16,
    pub reserved: [u64; 4],
}

const _: () = assert!(core::mem::size_of::<PageDescriptor>() == 64);
const _: () = assert!(core::mem::size_of::<PageDescriptor>().is_power_of_two());
pub const DESCRIPTOR_SHIFT: u32 = 6;

impl PageDescriptor {
    /// The tail descriptor of every folio of `order` in `zone`.
    pub fn tail(order: u32, zone: u8) -> PageDescriptor {
        PageDescriptor { compound_info: compound_info(order), zone, ..PageDescriptor::default() }
    }

    pub fn free(zone: u8) -> PageDescriptor {
        PageDescriptor { zone, ..PageDescriptor::default() }
    }

    pub fn is_tail(&self) -> bool {
        self.compound_info & 1 != 0
    }
}

/// `GENMASK(63, order + 6) | 1`.
pub fn compound_info(order: u32) -> u64 {
    (!0u64 << (order + DESCRIPTOR_SHIFT)) | 1
}

/// The head descriptor's address for a descriptor at `va` holding `d`.
pub fn compound_head(va: u64, d: &PageDescriptor) -> u64 {
    if d.is_tail() { va & d.compound_info & !1 } else { va }
}

/// The smallest order whose descriptors fill two vmemmap pages: 7, 9, 11.
pub fn min_optimizable_order(granule: Granule) -> u32 {
    granule.shift() - DESCRIPTOR_SHIFT + 1
}

/// Vmemmap pages holding the descriptors of a folio of `order`, in units
/// of 1/64 page (so sub-page folios show as fractions).
pub fn vmemmap_pages_x64(granule: Granule, order: u32) -> u64 {
    ((1u64 << order) << DESCRIPTOR_SHIFT) * 64 / granule.size()
}

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
    /// Fills the frame at `pa` with `f(index)` for each descriptor slot.
    fn fill_frame(&mut self, pa: u64, f: &mut dyn FnMut(usize) -> PageDescriptor);
    /// Maps unmapped vmemmap pages: (va, pa, writable).
    fn map_pages(&mut self, pages: &[(u64, u64, bool)]) -> Result<(), HvoError>;
    /// Maps `pages` unmapped vmemmap pages from `va` read-only to the one
    /// frame `pa` (a shared tail).
    fn map_shared(&mut self, va: u64, pa: u64, pages: u64) -> Result<(), HvoError>;
    /// A last-level table mapping every slot read-only to `pa`, to be linked
    /// wherever a whole table's range would map nothing but that page.
    fn create_shared_table(&mut self, pa: u64) -> Result<u64, HvoError>;
    /// Links a shared table for the (unmapped) table-sized range at `va`.
    fn link_shared_table(&mut self, va: u64, table: u64) -> Result<(), HvoError>;
    /// Frees a shared table no range links any more.
    fn release_shared_table(&mut self, table: u64);
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HvoError {
    /// No frame for a vmemmap page or a shared tail. Nothing changed.
    OutOfMemory,
    /// The folio is below the minimum order for HVO (it is still served).
    NotEligible {
        order: u32,
    },
    /// The folio is already in the requested state.
    AlreadyOptimized,
    NotOptimized,
    /// Not a folio head known to this vmemmap.
    NotAFolio {
        pfn: u64,
    },
    /// The folio lies outside every zone, or is misaligned for its order.
    BadFolio {
        pfn: u64,
        order: u32,
    },
    /// A write to a read-only (shared tail) descriptor.
    ReadOnly {
        va: u64,
    },
    /// The page tables refused a change.
    Paging,
}

impl fmt::Display for HvoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HvoError::OutOfMemory => write!(f, "out of memory for vmemmap pages"),
            HvoError::NotEligible { order } => write!(f, "order {order} is below the minimum order for HVO"),
            HvoError::AlreadyOptimized => write!(f, "already optimized"),
            HvoError::NotOptimized => write!(f, "not optimized"),
            HvoError::NotAFolio { pfn } => write!(f, "frame {pfn:#x} is not a folio head"),
            HvoError::BadFolio { pfn, order } => write!(f, "no folio of order {order} can start at frame {pfn:#x}"),
            HvoError::ReadOnly { va } => write!(f, "write to read-only descriptor at {va:#x}"),
            HvoError::Paging => write!(f, "page-table change refused"),
        }
    }
}

/// A folio: its head frame number and order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Folio {
    pub pfn: u64,
    pub order: u32,
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

struct SharedTail {
    zone: u8,
    order: u32,
    pa: u64,
    users: u64,
    /// The shared last-level table of read-only references to `pa`, once a
    /// born-optimized folio needed one.
    table: Option<u64>,
}

/// One zone: a RAM bank (or NUMA node).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Zone {
    pub id: u8,
    pub range: PhysRange,
}

/// The vmemmap of some zones and the HVO engine over it.
pub struct Hvo<B: VmemmapHw> {
    hw: B,
    granule: Granule,
    base: u64,
    zones: Vec<Zone>,
    tails: Vec<SharedTail>,
    stats: Vec<OrderStats>,
    accounting: Accounting,
    /// Vmemmap ranges [start, end) this engine mapped and must unmap.
    owned: Vec<(u64, u64)>,
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

    /// Describes [pfn, pfn + 2^order), whose vmemmap is not populated, as a
    /// folio born optimized: one fresh private page 0 and pages 1..n-1
    /// mapped read-only to the shared tail. The other n-1 pages are never
    /// allocated. Folios below the minimum order get their pages populated
    /// the ordinary way. On failure nothing stays allocated or mapped.
    pub fn adopt_optimized(&mut self, pfn: u64, order: u32, owner: u64) -> Result<Folio, HvoError> {
        let zone = self.check_folio(pfn, order)?;
        let folio = Folio { pfn, order };
        let n = self.pages_of(order);
        if !self.is_eligible(order) {
            let range = PhysRange::saturating(pfn << self.granule.shift(), self.page_size() << order);
            self.populate(&Zone { id: zone, range })?;
            return self.create_folio(pfn, order, owner, false);
        }
        let va0 = self.descriptor_va(pfn);
        let page = self.page_size();
        if self.hw.frame_of(va0).is_some() {
            return Err(HvoError::BadFolio { pfn, order });
        }
        let tail_pa = self.shared_tail(zone, order).ok_or(HvoError::OutOfMemory)?;
        let Some(page0) = self.hw.alloc_frame() else {
            self.drop_tail_user(zone, order);
            return Err(HvoError::OutOfMemory);
        };
        let head = PageDescriptor {
            flags: FLAG_HEAD | FLAG_OPTIMIZED,
            owner,
            refcount: 1,
            order: order as u8,
            zone,
            ..Default::default()
        };
        let tail = PageDescriptor::tail(order, zone);
        self.hw.fill_frame(page0, &mut |i| if i == 0 { head } else { tail });
        let mapped = self.hw.map_pages(&[(va0, page0, true)]).and_then(|_| {
            self.map_tail_range(zone, order, tail_pa, va0 + page, va0 + n * page).inspect_err(|_| {
                let _ = self.hw.unmap_pages(va0, n * page);
            })
        });
        if let Err(e) = mapped {
            self.hw.free_frame(page0);
            self.drop_tail_user(zone, order);
            return Err(e);
        }
        self.own(va0, n * page);
        self.accounting.vmemmap_frames += 1;
        self.accounting.never_populated += n - 1;
        // As if populated and then optimized, so restore and demote account alike.
        self.accounting.freed_by_hvo += n - 1;
        let s = self.stats_for(zone, order);
        s.folios += 1;
        s.optimized += 1;
        s.vmemmap_pages_before += n;
        s.vmemmap_pages_after += 1;
        Ok(folio)
    }

    /// Maps [start, end) of the vmemmap read-only to the shared tail: whole
    /// last-level-table ranges by linking the tail's shared table (so a large
    /// pool costs a handful of tables), the rest page by page.
    fn map_tail_range(&mut self, zone: u8, order: u32, tail_pa: u64, start: u64, end: u64) -> Result<(), HvoError> {
        let span = self.granule.level_size(2);
        let page = self.page_size();
        let mut at = start;
        while at < end {
            let next = (at + 1).next_multiple_of(span).min(end);
            if at.is_multiple_of(span) && next - at == span {
                let table = self.shared_tail_table(zone, order, tail_pa)?;
                self.hw.link_shared_table(at, table)?;
            } else {
                self.hw.map_shared(at, tail_pa, (next - at) / page)?;
            }
            at = next;
        }
        Ok(())
    }

    fn shared_tail_table(&mut self, zone: u8, order: u32, tail_pa: u64) -> Result<u64, HvoError> {
        let i = self.tails.iter().position(|t| t.zone == zone && t.order == order).ok_or(HvoError::OutOfMemory)?;
        if let Some(table) = self.tails[i].table {
            return Ok(table);
        }
        let table = self.hw.create_shared_table(tail_pa)?;
        self.tails[i].table = Some(table);
        Ok(table)
    }

    fn page_size(&self) -> u64 {
        self.granule.size()
    }

    /// The vmemmap address of frame `pfn`'s descriptor.
    pub fn descriptor_va(&self, pfn: u64) -> u64 {
        self.base + (pfn << DESCRIPTOR_SHIFT)
    }

    fn zone_of(&self, pfn: u64) -> Option<u8> {
        let pa = pfn << self.granule.shift();
        self.zones.iter().find(|z| z.range.contains(pa)).map(|z| z.id)
    }

    /// Maps and initialises the vmemmap pages of one zone.
    fn populate(&mut self, zone: &Zone) -> Result<(), HvoError> {
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

    fn map_batch(&mut self, batch: &mut Vec<(u64, u64, bool)>) -> Result<(), HvoError> {
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
    fn own(&mut self, va: u64, size: u64) {
        match self.owned.last_mut() {
            Some(last) if last.1 == va => last.1 += size,
            _ => self.owned.push((va, va + size)),
        }
    }

    /// Unmaps the vmemmap pages this engine mapped and frees every frame it holds.
    fn teardown(&mut self) {
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
            if let Some(table) = t.table {
                self.hw.release_shared_table(table);
            }
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

    pub fn granule(&self) -> Granule {
        self.granule
    }

    fn stats_for(&mut self, zone: u8, order: u32) -> &mut OrderStats {
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
    fn pages_of(&self, order: u32) -> u64 {
        (((1u64 << order) << DESCRIPTOR_SHIFT) / self.page_size()).max(1)
    }

    fn is_eligible(&self, order: u32) -> bool {
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

    // ---- folios -----------------------------------------------------------

    /// Describes the frames [pfn, pfn + 2^order) as one folio owned by
    /// `owner`. With `optimize` and an eligible order the folio is born
    /// optimized: its tails are never written, only vmemmap page 0 (a fresh
    /// private page) and the remap of pages 1..n-1 to the shared tail.
    pub fn create_folio(&mut self, pfn: u64, order: u32, owner: u64, optimize: bool) -> Result<Folio, HvoError> {
        let zone = self.check_folio(pfn, order)?;
        if self.descriptor(pfn).flags & FLAG_HEAD != 0 {
            return Err(HvoError::BadFolio { pfn, order });
        }
        let folio = Folio { pfn, order };
        let head =
            PageDescriptor { flags: FLAG_HEAD, owner, refcount: 1, order: order as u8, zone, ..Default::default() };
        let n = self.pages_of(order);
        if optimize && self.is_eligible(order) {
            self.optimize_batch_with_heads(&[folio], &[head], true)?;
        } else {
            // Head and every tail, through the vmemmap.
            self.write_descriptors(folio, &head, zone)?;
            self.count_new_folio(zone, order, n);
        }
        Ok(folio)
    }

    fn count_new_folio(&mut self, zone: u8, order: u32, n: u64) {
        let s = self.stats_for(zone, order);
        s.folios += 1;
        s.vmemmap_pages_before += n;
        s.vmemmap_pages_after += n;
    }

    fn check_folio(&self, pfn: u64, order: u32) -> Result<u8, HvoError> {
        let bad = HvoError::BadFolio { pfn, order };
        if order > 32 || pfn & ((1u64 << order) - 1) != 0 {
            return Err(bad);
        }
        let zone = self.zone_of(pfn).ok_or(bad)?;
        if self.zone_of(pfn + (1 << order) - 1) != Some(zone) {
            return Err(bad);
        }
        Ok(zone)
    }

    fn write_descriptors(&mut self, folio: Folio, head: &PageDescriptor, zone: u8) -> Result<(), HvoError> {
        let va = self.descriptor_va(folio.pfn);
        self.hw.write(va, head)?;
        let tail = PageDescriptor::tail(folio.order, zone);
        for i in 1..(1u64 << folio.order) {
            self.hw.write(va + (i << DESCRIPTOR_SHIFT), &tail)?;
        }
        Ok(())
    }

    fn head_of(&mut self, folio: Folio) -> Result<PageDescriptor, HvoError> {
        let head = self.descriptor(folio.pfn);
        if head.flags & FLAG_HEAD == 0 || head.order as u32 != folio.order {
            return Err(HvoError::NotAFolio { pfn: folio.pfn });
        }
        Ok(head)
    }

    pub fn is_optimized(&mut self, folio: Folio) -> bool {
        self.head_of(folio).is_ok_and(|h| h.flags & FLAG_OPTIMIZED != 0)
    }

    /// Restores the folio if it is optimized, then marks its descriptors
    /// free. If the restore cannot get memory the folio stays allocated and
    /// optimized, and the error says so.
    pub fn release_folio(&mut self, folio: Folio) -> Result<(), HvoError> {
        let head = self.head_of(folio)?;
        let optimized = head.flags & FLAG_OPTIMIZED != 0;
        if optimized {
            self.restore(&[folio])?;
        }
        let zone = head.zone;
        let free = PageDescriptor::free(zone);
        let va = self.descriptor_va(folio.pfn);
        for i in 0..(1u64 << folio.order) {
            self.hw.write(va + (i << DESCRIPTOR_SHIFT), &free)?;
        }
        let n = self.pages_of(folio.order);
        let s = self.stats_for(zone, folio.order);
        s.folios -= 1;
        s.vmemmap_pages_before -= n;
        s.vmemmap_pages_after -= n;
        Ok(())
    }

    // ---- demote -------------------------------------------------------------

    /// Splits `folio` into folios of order `to`, owned by the same owner.
    /// An optimized folio's pieces stay optimized where they are eligible:
    /// each piece gets a private page 0 (the first reuses the folio's) and
    /// its other pages point at the shared tail of the smaller order, all in
    /// one break-before-make batch. Pieces below the minimum order need the
    /// folio restored first. If memory runs out the folio stays as it was.
    pub fn demote(&mut self, folio: Folio, to: u32) -> Result<Vec<Folio>, HvoError> {
        let head = self.head_of(folio)?;
        if to >= folio.order {
            return Err(HvoError::BadFolio { pfn: folio.pfn, order: to });
        }
        let optimized = head.flags & FLAG_OPTIMIZED != 0;
        if optimized && !self.is_eligible(to) {
            self.restore(&[folio])?;
        }
        let pieces: Vec<Folio> =
            (0..1u64 << (folio.order - to)).map(|k| Folio { pfn: folio.pfn + (k << to), order: to }).collect();
        let piece_head = PageDescriptor { order: to as u8, flags: head.flags & !FLAG_OPTIMIZED, ..head };
        let zone = head.zone;
        let (n, m) = (self.pages_of(folio.order), self.pages_of(to));
        if optimized && self.is_eligible(to) {
            self.demote_optimized(folio, &pieces, &piece_head)?;
        } else {
            for &p in &pieces {
                self.write_descriptors(p, &piece_head, zone)?;
            }
        }
        let was_optimized = optimized && self.is_eligible(to);
        let count = pieces.len() as u64;
        let s = self.stats_for(zone, folio.order);
        s.folios -= 1;
        s.vmemmap_pages_before -= n;
        s.vmemmap_pages_after -= if was_optimized { 1 } else { n };
        s.optimized -= was_optimized as u64;
        let s = self.stats_for(zone, to);
        s.folios += count;
        s.vmemmap_pages_before += count * m;
        s.vmemmap_pages_after += if was_optimized { count } else { count * m };
        s.optimized += if was_optimized { count } else { 0 };
        Ok(pieces)
    }

    fn demote_optimized(
        &mut self,
        folio: Folio,
        pieces: &[Folio],
        piece_head: &PageDescriptor,
    ) -> Result<(), HvoError> {
        let zone = piece_head.zone;
        let to = pieces[0].order;
        let page = self.page_size();
        let m = self.pages_of(to);
        // Everything that can fail first: the shared tail and the new page 0s.
        let mut tail_pa = None;
        for _ in pieces {
            match self.shared_tail(zone, to) {
                Some(pa) => tail_pa = Some(pa),
                None => {
                    for _ in 0..pieces.len() {
                        self.drop_tail_user(zone, to);
                    }
                    return Err(HvoError::OutOfMemory);
                }
            }
        }
        let tail_pa = tail_pa.ok_or(HvoError::OutOfMemory)?;
        let head = PageDescriptor { flags: piece_head.flags | FLAG_OPTIMIZED, ..*piece_head };
        let tail = PageDescriptor::tail(to, zone);
        let mut fresh = Vec::with_capacity(pieces.len() - 1);
        for _ in 1..pieces.len() {
            match self.hw.alloc_frame() {
                Some(pa) => {
                    self.hw.fill_frame(pa, &mut |i| if i == 0 { head } else { tail });
                    fresh.push(pa);
                }
                None => {
                    for pa in fresh {
                        self.hw.free_frame(pa);
                    }
                    // Users were counted once per piece, including the failed ones.
                    for _ in pieces {
                        self.drop_tail_user(zone, to);
                    }
                    return Err(HvoError::OutOfMemory);
                }
            }
        }
        let mut remaps = Vec::new();
        for (k, p) in pieces.iter().enumerate() {
            let va0 = self.descriptor_va(p.pfn);
            if k > 0 {
                remaps.push((va0, fresh[k - 1], true));
            }
            for j in 1..m {
                remaps.push((va0 + j * page, tail_pa, false));
            }
        }
        if let Err(e) = self.hw.remap_pages(&remaps) {
            for pa in fresh {
                self.hw.free_frame(pa);
            }
            for _ in pieces {
                self.drop_tail_user(zone, to);
            }
            return Err(e);
        }
        // Piece 0 keeps the folio's private page 0: rewrite it in place.
        let va0 = self.descriptor_va(folio.pfn);
        for i in 0..(page >> DESCRIPTOR_SHIFT) {
            self.hw.write(va0 + (i << DESCRIPTOR_SHIFT), if i == 0 { &head } else { &tail })?;
        }
        self.drop_tail_user(zone, folio.order);
        let added = pieces.len() as u64 - 1;
        self.accounting.vmemmap_frames += added;
        self.accounting.freed_by_hvo -= added;
        Ok(())
    }

    // ---- optimize and restore -----------------------------------------------

    /// Optimizes every folio in `folios` with one synchronisation. Folios
    /// below the minimum order are skipped and reported in the result.
    /// If memory runs out part-way, the folios before the failure are
    /// optimized, the rest are untouched, and the error is returned.
    pub fn optimize(&mut self, folios: &[Folio]) -> Result<BatchReport, HvoError> {
        let mut heads = Vec::with_capacity(folios.len());
        for &f in folios {
            let head = self.head_of(f)?;
            if head.flags & FLAG_OPTIMIZED != 0 {
                return Err(HvoError::AlreadyOptimized);
            }
            heads.push(head);
        }
        let mut report = BatchReport::default();
        for (chunk, heads) in self.chunks(folios).into_iter().map(|r| (&folios[r.clone()], &heads[r])) {
            let r = self.optimize_batch_with_heads(chunk, heads, false)?;
            report.changed += r.changed;
            report.not_eligible += r.not_eligible;
        }
        Ok(report)
    }

    /// Splits a batch so that no sub-batch remaps more than
    /// [`MAX_BATCH_PAGES`] vmemmap pages: its bookkeeping then fits the
    /// kernel heap whatever the caller asks. Each sub-batch synchronises
    /// once; a batch within the bound is one sub-batch.
    fn chunks(&self, folios: &[Folio]) -> Vec<core::ops::Range<usize>> {
        let mut out = Vec::new();
        let (mut start, mut pages) = (0, 0u64);
        for (i, f) in folios.iter().enumerate() {
            let n = self.pages_of(f.order);
            if pages > 0 && pages + n > MAX_BATCH_PAGES {
                out.push(start..i);
                (start, pages) = (i, 0);
            }
            pages += n;
        }
        out.push(start..folios.len());
        out
    }

    /// The optimize batch: `heads[i]` is written as folio i's head in its
    /// fresh page 0 (for a folio being born, `new`, no old descriptors matter).
    fn optimize_batch_with_heads(
        &mut self,
        folios: &[Folio],
        heads: &[PageDescriptor],
        new: bool,
    ) -> Result<BatchReport, HvoError> {
        let mut report = BatchReport::default();
        let mut remaps = Vec::new();
        let mut done = Vec::new();
        let mut failure = None;
        for (&folio, head) in folios.iter().zip(heads) {
            if !self.is_eligible(folio.order) {
                report.not_eligible += 1;
                continue;
            }
            let zone = head.zone;
            let Some(tail_pa) = self.shared_tail(zone, folio.order) else {
                failure = Some(HvoError::OutOfMemory);
                break;
            };
            let Some(page0) = self.hw.alloc_frame() else {
                self.drop_tail_user(zone, folio.order);
                failure = Some(HvoError::OutOfMemory);
                break;
            };
            // Page 0: the head and the tails that share its page.
            let head = PageDescriptor { flags: head.flags | FLAG_OPTIMIZED, ..*head };
            let tail = PageDescriptor::tail(folio.order, zone);
            self.hw.fill_frame(page0, &mut |i| if i == 0 { head } else { tail });
            let va0 = self.descriptor_va(folio.pfn);
            let page = self.page_size();
            remaps.push((va0, page0, true));
            for k in 1..self.pages_of(folio.order) {
                remaps.push((va0 + k * page, tail_pa, false));
            }
            done.push((folio, zone, page0));
        }
        let mut old_frames = match self.hw.remap_pages(&remaps) {
            Ok(old) => old,
            Err(e) => {
                // Undo the preparations; the folios are as they were.
                for &(folio, zone, page0) in &done {
                    self.hw.free_frame(page0);
                    self.drop_tail_user(zone, folio.order);
                }
                return Err(e);
            }
        };
        // The TLB is clean now (remap_pages synchronised): free the old pages
        // (not page 0's replacement, nor the shared tails just mapped).
        old_frames.retain(|&pa| !self.tails.iter().any(|t| t.pa == pa));
        self.hw.free_frames(&mut old_frames);
        for (folio, zone, _) in done {
            let n = self.pages_of(folio.order);
            self.accounting.vmemmap_frames -= n - 1;
            self.accounting.freed_by_hvo += n - 1;
            if new {
                self.count_new_folio(zone, folio.order, n);
            }
            let s = self.stats_for(zone, folio.order);
            s.optimized += 1;
            s.vmemmap_pages_after -= n - 1;
            report.changed += 1;
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Restores every folio in `folios`: n-1 fresh pages each, filled with
    /// tail descriptors, mapped writable, with one synchronisation. A folio
    /// whose pages cannot all be allocated stays optimized (as do those
    /// after it), and nothing leaks.
    pub fn restore(&mut self, folios: &[Folio]) -> Result<BatchReport, HvoError> {
        let mut report = BatchReport::default();
        for range in self.chunks(folios) {
            report.changed += self.restore_batch(&folios[range])?.changed;
        }
        Ok(report)
    }

    fn restore_batch(&mut self, folios: &[Folio]) -> Result<BatchReport, HvoError> {
        let mut report = BatchReport::default();
        let mut remaps = Vec::new();
        let mut done = Vec::new();
        let mut failure = None;
        for &folio in folios {
            let head = self.head_of(folio)?;
            if head.flags & FLAG_OPTIMIZED == 0 {
                return Err(HvoError::NotOptimized);
            }
            let n = self.pages_of(folio.order);
            let mut fresh = Vec::with_capacity(n as usize - 1);
            for _ in 1..n {
                match self.hw.alloc_frame() {
                    Some(pa) => fresh.push(pa),
                    None => break,
                }
            }
            if fresh.len() as u64 != n - 1 {
                for pa in fresh {
                    self.hw.free_frame(pa);
                }
                failure = Some(HvoError::OutOfMemory);
                break;
            }
            let tail = PageDescriptor::tail(folio.order, head.zone);
            let va0 = self.descriptor_va(folio.pfn);
            for (k, &pa) in fresh.iter().enumerate() {
                self.hw.fill_frame(pa, &mut |_| tail);
                remaps.push((va0 + (k as u64 + 1) * self.page_size(), pa, true));
            }
            done.push((folio, head, fresh));
        }
        if let Err(e) = self.hw.remap_pages(&remaps) {
            for (_, _, fresh) in done {
                for pa in fresh {
                    self.hw.free_frame(pa);
                }
            }
            return Err(e);
        }
        for (folio, head, _) in done {
            // Page 0 is private and writable: clear the flag in place.
            let cleared = PageDescriptor { flags: head.flags & !FLAG_OPTIMIZED, ..head };
            self.hw.write(self.descriptor_va(folio.pfn), &cleared)?;
            self.drop_tail_user(head.zone, folio.order);
            let n = self.pages_of(folio.order);
            self.accounting.vmemmap_frames += n - 1;
            self.accounting.freed_by_hvo -= n - 1;
            let s = self.stats_for(head.zone, folio.order);
            s.optimized -= 1;
            s.vmemmap_pages_after += n - 1;
            report.changed += 1;
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// The shared tail page of (zone, order), created on first use, with
    /// one more user.
    fn shared_tail(&mut self, zone: u8, order: u32) -> Option<u64> {
        if let Some(t) = self.tails.iter_mut().find(|t| t.zone == zone && t.order == order) {
            t.users += 1;
            return Some(t.pa);
        }
        let pa = self.hw.alloc_frame()?;
        let tail = PageDescriptor::tail(order, zone);
        self.hw.fill_frame(pa, &mut |_| tail);
        self.tails.push(SharedTail { zone, order, pa, users: 1, table: None });
        self.accounting.shared_tails += 1;
        self.stats_for(zone, order).shared_tail = true;
        Some(pa)
    }

    /// One user fewer; the last one frees the page (it is no longer mapped).
    fn drop_tail_user(&mut self, zone: u8, order: u32) {
        let Some(i) = self.tails.iter().position(|t| t.zone == zone && t.order == order) else { return };
        self.tails[i].users -= 1;
        if self.tails[i].users == 0 {
            // No folio uses the tail, so no range links its table any more
            // (remaps gave every linked range a private copy).
            let t = self.tails.swap_remove(i);
            if let Some(table) = t.table {
                self.hw.release_shared_table(table);
            }
            self.hw.free_frame(t.pa);
            self.accounting.shared_tails -= 1;
            self.stats_for(zone, order).shared_tail = false;
        }
    }

    /// If `va` is a descriptor in a shared tail page, which folio and zone a
    /// write there would have corrupted.
    pub fn classify_write(&mut self, va: u64) -> Option<HvoViolation> {
        let (base, granule) = (self.base, self.granule);
        classify_write(base, granule, va, &mut |at| self.hw.read(at))
    }
}

/// Whether a write to vmemmap address `va` hit a shared tail page, decided
/// from the descriptors alone (no lock, no page-table walk), so the fault
/// handler can call it: `read` must only be called on mapped descriptors,
/// which a permission fault at `va` guarantees for `va`, and the head lies
/// in the folio's private page 0.
pub fn classify_write(
    base: u64,
    granule: Granule,
    va: u64,
    read: &mut dyn FnMut(u64) -> PageDescriptor,
) -> Option<HvoViolation> {
    let slot = va & !((1 << DESCRIPTOR_SHIFT) - 1);
    let d = read(slot);
    if !d.is_tail() {
        return None;
    }
    let head_va = compound_head(slot, &d);
    if slot - head_va < granule.size() {
        return None; // page 0: private and writable
    }
    let head = read(head_va);
    if head.flags & (FLAG_HEAD | FLAG_OPTIMIZED) != FLAG_HEAD | FLAG_OPTIMIZED {
        return None;
    }
    Some(HvoViolation { head_pfn: (head_va - base) >> DESCRIPTOR_SHIFT, order: head.order as u32, zone: d.zone })
}

/// What a batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub changed: u64,
    pub not_eligible: u64,
}

/// A write that hit a shared tail page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HvoViolation {
    pub head_pfn: u64,
    pub order: u32,
    pub zone: u8,
}

impl fmt::Display for HvoViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "HVO violation: write to a shared read-only tail descriptor of the order-{} folio with head frame {:#x}, zone {}",
            self.order, self.head_pfn, self.zone
        )
    }
}
