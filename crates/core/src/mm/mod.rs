//! Physical memory: translation granules, the memory map built from the
//! device tree, and the frame allocator.
//!
//! Owns: which physical ranges are RAM, which are reserved, and which frames
//! are free. Must never: assume a 4 KiB frame (the granule is a boot
//! argument), or hand out a frame that overlaps the kernel image, the DTB or
//! a reserved region.

pub mod asid;
pub mod frame;
pub mod granule;
pub mod layout;
pub mod memmap;
pub mod paging;

pub use frame::{FrameError, FramePool};
pub use granule::Granule;
pub use memmap::{MemoryMap, PhysRange};
