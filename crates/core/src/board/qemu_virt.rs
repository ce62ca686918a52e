//! QEMU `virt`: the facts folio needs before (or without) its DTB.
//!
//! QEMU always passes `virt` a DTB when it boots an arm64 Image, so the only
//! use of these constants is the error message when there is none (an ELF
//! kernel gets x0 = 0): without a DTB folio cannot know the machine's memory
//! and stops.

/// RAM starts at 1 GiB; the image is loaded at RAM + 0x80000.
pub const RAM_BASE: u64 = 0x4000_0000;
/// The PL011 QEMU always puts at this address; used only to report a missing DTB.
pub const PL011_BASE: u64 = 0x0900_0000;
