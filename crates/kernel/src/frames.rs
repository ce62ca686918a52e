//! The kernel's frame pool: the one [`FramePool`] every kernel allocation of
//! physical frames comes from, once boot has set it up.
//!
//! Owns: the lock around the pool. Lock order: take it only for the
//! allocation itself; never hold it while calling the page-table engine
//! (which takes it to allocate table frames).

use folio_core::mm::FramePool;

use crate::sync::SpinLock;

pub static KERNEL_FRAMES: SpinLock<Option<FramePool>> = SpinLock::new(None);
