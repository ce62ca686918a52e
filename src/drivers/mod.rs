//! MMIO device drivers. Each owns one device's register block, described with
//! `register_structs!`, and nothing else.

pub mod gic;
pub mod pl011;
