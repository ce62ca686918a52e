//! What boot learned: the machine, its memory map, where the image is and
//! the granule in force. `kernel.rs` fills it in once; the in-kernel tests,
//! the benchmarks and the memory service's run read it.
//!
//! Owns: nothing mutable. Must never: depend on the modules that read it
//! (so the boot sequence can call them without an import cycle).

use folio_core::dtb::Machine;
use folio_core::mm::{Granule, MemoryMap, PhysRange};

/// What boot learned, handed to the in-kernel tests, the benchmarks and the
/// memory service's run.
pub struct BootInfo {
    pub machine: Machine,
    pub memory_map: MemoryMap,
    pub image: PhysRange,
    pub granule: Granule,
}

/// A kernel address no mapping ever covers: the upper half below the image.
pub const UNMAPPED_ADDRESS: u64 = 0xFFFF_7FFF_DEAD_0000;
