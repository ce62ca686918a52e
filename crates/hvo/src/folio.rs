//! Folios: creating one (plain, or born optimized), checking one, releasing
//! it, and demoting it into smaller folios.

use alloc::vec::Vec;

use crate::descriptor::*;
use folio_core::mm::PhysRange;

use crate::{Hvo, HvoError, VmemmapHw, Zone};

/// A folio: its head frame number and order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Folio {
    pub pfn: u64,
    pub order: u32,
}

impl<B: VmemmapHw> Hvo<B> {
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
            self.map_tail_range(tail_pa, va0 + page, va0 + n * page).inspect_err(|_| {
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
        self.count_new_optimized_folio(zone, order, n);
        Ok(folio)
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

    pub(crate) fn count_new_folio(&mut self, zone: u8, order: u32, n: u64) {
        let s = self.stats_for(zone, order);
        s.folios += 1;
        s.vmemmap_pages_before += n;
        s.vmemmap_pages_after += n;
    }

    /// Counts a folio of `order` described already optimized: `n` vmemmap
    /// pages a plain one would use, one it uses.
    fn count_new_optimized_folio(&mut self, zone: u8, order: u32, n: u64) {
        let s = self.stats_for(zone, order);
        s.folios += 1;
        s.optimized += 1;
        s.vmemmap_pages_before += n;
        s.vmemmap_pages_after += 1;
    }

    pub(crate) fn check_folio(&self, pfn: u64, order: u32) -> Result<u8, HvoError> {
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

    pub(crate) fn write_descriptors(&mut self, folio: Folio, head: &PageDescriptor, zone: u8) -> Result<(), HvoError> {
        let va = self.descriptor_va(folio.pfn);
        self.hw.write(va, head)?;
        let tail = PageDescriptor::tail(folio.order, zone);
        for i in 1..(1u64 << folio.order) {
            self.hw.write(va + (i << DESCRIPTOR_SHIFT), &tail)?;
        }
        Ok(())
    }

    pub(crate) fn head_of(&mut self, folio: Folio) -> Result<PageDescriptor, HvoError> {
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

    /// Gives the folio a new owner (its head, in the private page 0).
    pub fn set_owner(&mut self, folio: Folio, owner: u64) -> Result<(), HvoError> {
        let head = self.head_of(folio)?;
        self.hw.write(self.descriptor_va(folio.pfn), &PageDescriptor { owner, ..head })
    }

    // ---- merge --------------------------------------------------------------

    /// Merges `pieces`, every folio of the aligned block of order `to` that
    /// holds them, in address order and all of one order and state, back
    /// into one folio of order `to` owned by `owner`: the reverse of
    /// [`demote`](Self::demote). Optimized pieces become one optimized
    /// folio in one break-before-make batch: the pieces' pages 0 (but the
    /// first) and every tail page are pointed at the shared tail of the
    /// larger order, then the first page 0 is rewritten in place, and the
    /// other pages 0 are freed once the TLB is clean. Plain pieces get the
    /// larger folio's descriptors written. If memory runs out (the larger
    /// order's shared tail) nothing changes.
    pub fn merge(&mut self, pieces: &[Folio], to: u32, owner: u64) -> Result<Folio, HvoError> {
        let first = *pieces.first().ok_or(HvoError::BadFolio { pfn: 0, order: to })?;
        let order = first.order;
        let bad = HvoError::BadFolio { pfn: first.pfn, order: to };
        if to <= order || to - order >= 32 || pieces.len() as u64 != 1 << (to - order) {
            return Err(bad);
        }
        let zone = self.check_folio(first.pfn, to)?;
        let mut optimized = None;
        for (k, p) in pieces.iter().enumerate() {
            if p.order != order || p.pfn != first.pfn + ((k as u64) << order) {
                return Err(bad);
            }
            let state = self.head_of(*p)?.flags & FLAG_OPTIMIZED != 0;
            if *optimized.get_or_insert(state) != state {
                return Err(bad);
            }
        }
        let folio = Folio { pfn: first.pfn, order: to };
        let head = PageDescriptor { flags: FLAG_HEAD, owner, refcount: 1, order: to as u8, zone, ..Default::default() };
        let count = pieces.len() as u64;
        let (n, m) = (self.pages_of(to), self.pages_of(order));
        if optimized != Some(true) {
            self.write_descriptors(folio, &head, zone)?;
            let s = self.stats_for(zone, order);
            s.folios -= count;
            s.vmemmap_pages_before -= count * m;
            s.vmemmap_pages_after -= count * m;
            self.count_new_folio(zone, to, n);
            return Ok(folio);
        }
        let tail_pa = self.shared_tail(zone, to).ok_or(HvoError::OutOfMemory)?;
        let page = self.page_size();
        let mut remaps = Vec::with_capacity(n as usize - 1);
        for (k, p) in pieces.iter().enumerate() {
            let va0 = self.descriptor_va(p.pfn);
            for j in (k == 0) as u64..m {
                remaps.push((va0 + j * page, tail_pa, false));
            }
        }
        let mut old = match self.hw.remap_pages(&remaps) {
            Ok(old) => old,
            Err(e) => {
                self.drop_tail_user(zone, to);
                return Err(e);
            }
        };
        // Only the pieces' own pages 0 were private; the TLB is clean now.
        old.retain(|&pa| !self.tails.iter().any(|t| t.pa == pa));
        self.hw.free_frames(&mut old);
        let tail = PageDescriptor::tail(to, zone);
        let head = PageDescriptor { flags: FLAG_HEAD | FLAG_OPTIMIZED, ..head };
        let va0 = self.descriptor_va(folio.pfn);
        for i in 0..(page >> DESCRIPTOR_SHIFT) {
            self.hw.write(va0 + (i << DESCRIPTOR_SHIFT), if i == 0 { &head } else { &tail })?;
        }
        for _ in pieces {
            self.drop_tail_user(zone, order);
        }
        self.accounting.vmemmap_frames -= count - 1;
        self.accounting.freed_by_hvo += count - 1;
        let s = self.stats_for(zone, order);
        s.folios -= count;
        s.optimized -= count;
        s.vmemmap_pages_before -= count * m;
        s.vmemmap_pages_after -= count;
        self.count_new_optimized_folio(zone, to, n);
        Ok(folio)
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

    pub(crate) fn demote_optimized(
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
}
