//! The savings table of hvo-facts.md for the running granule, each row
//! measured on a real folio of the service's own pool: a free folio of the
//! row's size is taken from the pool (split from a larger one if need be),
//! restored to a plain vmemmap, optimized again (the accounting's gain
//! checked against the frame allocator where the hardware can tell), and
//! given back.
//!
//! Owns: nothing between calls. Must never: keep a folio out of the pool
//! after a row is measured, whether it worked or not.

use alloc::vec::Vec;

use folio_core::mm::paging::huge_page_size_shifts;
use folio_hvo::{HvoError, VmemmapHw, min_optimizable_order, vmemmap_pages_x64};

use crate::MemoryService;

/// One row: a huge-page size of the granule and what HVO saves on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SavingsRow {
    pub size: u64,
    pub order: u32,
    /// Descriptors of one folio (frames in it).
    pub descriptors: u64,
    /// Vmemmap pages its descriptors span, times 64 (below 64: part of a page).
    pub vmemmap_pages_x64: u64,
    pub outcome: Savings,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Savings {
    /// Below HVO's minimum order: nothing to share.
    NotEligible {
        min_order: u32,
    },
    /// The pool has no free block of this size now.
    NoFreeBlock,
    /// Measured: vmemmap pages after HVO, pages freed by the accounting,
    /// and what the frame allocator gained (None: the hardware cannot tell).
    Measured {
        after: u64,
        freed: u64,
        allocator_gain: Option<u64>,
    },
    Failed(HvoError),
}

impl<B: VmemmapHw> MemoryService<B> {
    /// Measures every row, smallest size first.
    pub fn measure_savings(&mut self) -> Vec<SavingsRow> {
        let granule = self.granule;
        let min_order = min_optimizable_order(granule);
        let shifts = huge_page_size_shifts(granule);
        (0..64u32)
            .filter(|s| shifts & (1 << s) != 0)
            .map(|shift| {
                let order = shift - granule.shift();
                let outcome =
                    if order < min_order { Savings::NotEligible { min_order } } else { self.measure_row(order) };
                SavingsRow {
                    size: 1 << shift,
                    order,
                    descriptors: 1 << order,
                    vmemmap_pages_x64: vmemmap_pages_x64(granule, order),
                    outcome,
                }
            })
            .collect()
    }

    fn measure_row(&mut self, order: u32) -> Savings {
        let folio = match self.take(order) {
            Ok(Some(f)) => f,
            Ok(None) => return Savings::NoFreeBlock,
            Err(e) => return Savings::Failed(e),
        };
        let outcome = (|| {
            if self.hvo.is_optimized(folio) {
                self.engine(|h| h.restore(&[folio]))?;
            }
            let hvo = &mut self.hvo;
            let zone = hvo.descriptor(folio.pfn).zone;
            let pages_used = |hvo: &mut folio_hvo::Hvo<B>| {
                hvo.order_stats()
                    .iter()
                    .find(|s| s.zone == zone && s.order == order)
                    .map_or(0, |s| s.vmemmap_pages_after)
            };
            let before = (hvo.accounting(), hvo.hw_ref().free_frame_count(), pages_used(hvo));
            let optimized = hvo.optimize(&[folio]);
            let after = (hvo.accounting(), hvo.hw_ref().free_frame_count(), pages_used(hvo));
            optimized?;
            // The folio's own pages: all of them before, less what it gave up.
            let plain_pages = vmemmap_pages_x64(self.granule, order) / 64;
            let pages_after = plain_pages - (before.2 - after.2);
            let freed = after.0.freed_by_hvo - before.0.freed_by_hvo;
            let new_tails = after.0.shared_tails - before.0.shared_tails;
            let allocator_gain = match (before.1, after.1) {
                (Some(b), Some(a)) => Some((a + new_tails).saturating_sub(b)),
                _ => None,
            };
            Ok(Savings::Measured { after: pages_after, freed, allocator_gain })
        })();
        self.give_back(folio);
        outcome.unwrap_or_else(Savings::Failed)
    }
}
