//! Naming a write that hit a shared read-only tail: decided from the
//! descriptors alone, so a fault handler can call it.

use core::fmt;

use folio_core::mm::Granule;

use crate::descriptor::*;
use crate::{Hvo, VmemmapHw};

impl<B: VmemmapHw> Hvo<B> {
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
