//! The kernel's virtual address layout (upper half, TTBR1, 48-bit VA).
//!
//! | region | start | what |
//! |---|---|---|
//! | linear map | `LINEAR_BASE` | all RAM at `LINEAR_BASE + pa`, largest units |
//! | device map | `DEVICE_BASE` | MMIO at `DEVICE_BASE + pa`, device memory |
//! | test window | `TEST_BASE` | scratch mappings for the in-kernel tests |
//! | vmemmap | `VMEMMAP_BASE` | page descriptors (64 bytes per frame), HVO |
//! | kernel image | `KERNEL_BASE` | text (RX), rodata (RO), data and bss (RW), as linked |
//!
//! The lower half (TTBR0) belongs to tasks.

pub const LINEAR_BASE: u64 = 0xFFFF_0000_0000_0000;
/// Physical addresses the linear and device maps can hold: 32 TiB each.
pub const MAP_SPAN: u64 = 1 << 45;
pub const DEVICE_BASE: u64 = LINEAR_BASE + MAP_SPAN;
pub const TEST_BASE: u64 = DEVICE_BASE + MAP_SPAN;
/// The vmemmap: 64-byte descriptors at `VMEMMAP_BASE + (pa >> granule shift) * 64`.
pub const VMEMMAP_BASE: u64 = TEST_BASE + MAP_SPAN;
pub const KERNEL_BASE: u64 = 0xFFFF_8000_0000_0000;

/// The linear-map address of a physical address, if the map can hold it.
pub const fn linear(pa: u64) -> Option<u64> {
    if pa < MAP_SPAN { Some(LINEAR_BASE + pa) } else { None }
}

/// The device-map address of an MMIO physical address.
pub const fn device(pa: u64) -> Option<u64> {
    if pa < MAP_SPAN { Some(DEVICE_BASE + pa) } else { None }
}

const _: () = assert!(VMEMMAP_BASE + MAP_SPAN <= KERNEL_BASE);
