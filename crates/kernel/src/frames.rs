//! The kernel's frame pool: the one [`FramePool`] every kernel allocation of
//! physical frames comes from, once boot has set it up.
//!
//! Owns: the lock around the pool. Lock order: take it only for the
//! allocation itself; never hold it while calling the page-table engine
//! (which takes it to allocate table frames).

use folio_core::mm::FramePool;

use crate::sync::SpinLock;

pub static KERNEL_FRAMES: SpinLock<Option<FramePool>> = SpinLock::new(None);

/// Frames free in the pool now (0 before boot set it up).
pub fn free_frames() -> u64 {
    KERNEL_FRAMES.lock().as_ref().map_or(0, |f| f.free_frames())
}
