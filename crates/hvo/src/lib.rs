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
//!
//! # Rooms
//!
//! - `descriptor`: the 64-byte page descriptor and the compound encoding.
//! - `vmemmap`: [`Hvo`] itself, the [`VmemmapHw`] it runs on, zones, shared
//!   tails, accounting, reading descriptors.
//! - `folio`: creating, checking, releasing and demoting folios.
//! - `batch`: optimize and restore, in break-before-make batches.
//! - `violation`: naming a write that hit a shared tail.
//! - [`sim`] (feature `sim`): the simulated hardware the host tests use.
#![forbid(unsafe_code)]
#![cfg_attr(not(any(test, feature = "sim")), no_std)]

extern crate alloc;

use core::fmt;

mod batch;
mod descriptor;
mod folio;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
#[cfg(test)]
mod tests;
mod violation;
mod vmemmap;

pub use batch::BatchReport;
pub use descriptor::*;
pub use folio::Folio;
pub use violation::{HvoViolation, classify_write};
pub use vmemmap::{Accounting, Hvo, OrderStats, VmemmapHw, Zone};

/// The most vmemmap pages one optimize or restore sub-batch remaps (see
/// [`Hvo::optimize`]): four 1 GiB folios on 4K, 64 on 16K.
pub const MAX_BATCH_PAGES: u64 = 16384;

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
