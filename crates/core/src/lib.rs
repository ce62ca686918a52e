//! folio-core: the logic the kernel is made of, host-tested.
//!
//! # Orientation
//!
//! Everything here is architecture-independent and builds for the host,
//! where `cargo test` exercises it: device-tree discovery ([`dtb`]), the boot
//! command line ([`bootargs`]), which board this is and its defaults
//! ([`board`]), physical memory, the frame and ASID allocators and the
//! page-table engine with its checker ([`mm`]), the IPC state machine
//! ([`ipc`]), the capability checks of the memory calls ([`syscall`]), ELF
//! checks ([`elf`]) and exception decoding ([`exception`]).
//!
//! The hardware is reached only through traits (the engine's
//! `PageTableHw`), so the same code runs over the simulated machine here
//! (the `sim` feature exports it, with its TLB model, to the crates that test
//! over it) and over the real MMU in the kernel (`crates/kernel`).
#![forbid(unsafe_code)]
#![cfg_attr(not(any(test, feature = "sim")), no_std)]

extern crate alloc;

pub mod board;
pub mod bootargs;
pub mod dtb;
pub mod elf;
pub mod exception;
pub mod gic;
pub mod ipc;
pub mod labels;
pub mod mm;
pub mod syscall;
#[cfg(any(test, feature = "sim"))]
pub mod testing;
