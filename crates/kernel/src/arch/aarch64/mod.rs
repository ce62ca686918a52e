//! arm64 at EL1: boot, exception vectors, early mappings, system registers,
//! timer, and the ways to end the machine (PSCI, semihosting, halt).
//!
//! Owns: every instruction that touches a system register or needs a
//! barrier. Must never: hold policy; it does what `main.rs` asks.

pub mod barrier;
pub mod cache;
pub mod cpu;
pub mod early_map;
pub mod exception;
pub mod exit;
pub mod fpsimd;
pub mod mmu;
pub mod pmu;
pub mod psci;
pub mod timer;

core::arch::global_asm!(include_str!("boot.s"), options(raw));
core::arch::global_asm!(include_str!("vectors.s"), options(raw));
