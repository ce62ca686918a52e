//! folio: a Rust microkernel for arm64.
//!
//! # Orientation
//!
//! The crate is split the way the hardware boundary runs:
//!
//! - Architecture-independent logic builds for the host too and is unit-tested
//!   there with `cargo test`: device-tree discovery ([`dtb`]), the boot command
//!   line ([`bootargs`]), the physical memory map and frame allocator ([`mm`]),
//!   exception decoding ([`exception`]), the board descriptions
//!   ([`board`], with the per-board facts under `platform/`), the spin lock
//!   ([`sync`]) and the console formatting ([`console`]).
//! - Hardware access lives in [`arch`] (`cfg(target_arch = "aarch64")`, and
//!   the `kernel` feature, on by default: the memory service links this crate
//!   without it, for the HVO engine and the protocol) and in
//!   the MMIO drivers of [`drivers`]; it is exercised by the QEMU integration
//!   tests in `tests/`, where the real page-table walker and fault logic judge it.
//! - The kernel binary (`src/main.rs`) only wires the pieces together.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod abi;
#[cfg(all(target_arch = "aarch64", feature = "kernel"))]
pub mod arch;
pub mod board;
pub mod bootargs;
pub mod console;
pub mod drivers;
pub mod dtb;
pub mod elf;
pub mod exception;
pub mod hvo;
pub mod ipc;
pub mod memsvc;
pub mod mm;
pub mod sync;
pub mod syscall;
#[cfg(test)]
pub mod testing;

/// Board-specific facts and code for QEMU's `virt` machine.
#[path = "../platform/qemu-virt/board.rs"]
pub mod qemu_virt;
/// Board-specific facts and code for the Raspberry Pi 4 (and QEMU `raspi4b`).
#[path = "../platform/rpi4/board.rs"]
pub mod rpi4;
