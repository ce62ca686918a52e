//! MMIO device drivers. Each owns one device's register block, described with
//! `register_structs!`, and nothing else.

#[cfg(target_os = "none")]
pub mod bcm2711_gpio;
#[cfg(target_os = "none")]
pub mod gic;
pub mod pl011;
