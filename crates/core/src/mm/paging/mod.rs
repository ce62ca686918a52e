//! Stage-1 translation: descriptor encoding, the granule-generic engine, and
//! an independent descriptor checker.
//!
//! Owns: everything about building and changing translation tables. The
//! engine reaches memory, frames and TLB maintenance only through
//! [`PageTableHw`], so the same code runs against simulated memory on the
//! host (with a TLB model that flags missing break-before-make) and against
//! the real MMU in the kernel.

pub mod checker;
pub mod descriptor;
pub mod engine;
pub mod registers;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
#[cfg(test)]
mod tests;

pub use descriptor::{Attributes, MemoryType};
pub use engine::{Barrier, Half, Mapping, PageTable, PageTableHw, PagingError, Policy, Remap, Stats, Tlbi, Unit};

use super::Granule;

/// The huge-page sizes of a granule as a mask of size shifts: every mapping
/// unit above a page (contiguous runs and blocks).
pub fn huge_page_size_shifts(granule: Granule) -> u64 {
    Unit::all_largest_first(granule)
        .filter(|u| *u != Unit::PAGE)
        .fold(0, |mask, u| mask | 1 << u.size(granule).trailing_zeros())
}
