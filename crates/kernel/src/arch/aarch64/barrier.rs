//! Barriers and event signals, named for what they guarantee.
//!
//! Owns: `dsb`, `sev`. Must never: be replaced by a compiler fence where
//! another observer (a core, a walker, a device) must see the effect.

use core::arch::asm;

/// `dsb ish` then `sev`: every store so far is visible to the inner
/// shareable domain before the cores waiting in WFE wake to look.
pub fn publish_and_wake() {
    // SAFETY: a barrier and an event signal; no memory is accessed.
    unsafe { asm!("dsb ish", "sev", options(nostack)) };
}

/// `sev`: wakes every core waiting in WFE.
pub fn wake_all() {
    // SAFETY: an event signal; no memory is accessed.
    unsafe { asm!("sev", options(nostack)) };
}
