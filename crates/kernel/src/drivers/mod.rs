//! MMIO device drivers. Each owns one device's register block, described with
//! `register_structs!`, and nothing else.

#[cfg(target_os = "none")]
pub mod bcm2711_gpio;
#[cfg(target_os = "none")]
pub mod gic;
#[cfg(target_os = "none")]
pub mod ns16550;
pub mod pl011;
