//! HVO proper: optimizing and restoring folios in batches, each batch one
//! break-before-make remap with one synchronisation.

use alloc::vec::Vec;

use crate::descriptor::*;
use crate::{Folio, Hvo, HvoError, MAX_BATCH_PAGES, VmemmapHw};

/// What a batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub changed: u64,
    pub not_eligible: u64,
}

impl<B: VmemmapHw> Hvo<B> {
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
    pub(crate) fn chunks(&self, folios: &[Folio]) -> Vec<core::ops::Range<usize>> {
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
    pub(crate) fn optimize_batch_with_heads(
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

    pub(crate) fn restore_batch(&mut self, folios: &[Folio]) -> Result<BatchReport, HvoError> {
        // Every folio is checked before any frame is taken, so a refused
        // batch holds nothing.
        let mut heads = Vec::with_capacity(folios.len());
        for &folio in folios {
            let head = self.head_of(folio)?;
            if head.flags & FLAG_OPTIMIZED == 0 {
                return Err(HvoError::NotOptimized);
            }
            heads.push(head);
        }
        let mut report = BatchReport::default();
        let mut remaps = Vec::new();
        let mut done = Vec::new();
        let mut failure = None;
        for (&folio, &head) in folios.iter().zip(&heads) {
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
}
