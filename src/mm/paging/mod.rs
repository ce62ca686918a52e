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
#[cfg(test)]
pub mod sim;
#[cfg(test)]
mod tests;

pub use descriptor::{Attributes, MemoryType};
pub use engine::{Barrier, Half, Mapping, PageTable, PageTableHw, PagingError, Policy, Remap, Stats, Tlbi, Unit};
