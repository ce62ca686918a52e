//! The folio kernel image.
//!
//! # Orientation
//!
//! `arch/aarch64/boot.s` enters `kernel::kernel_start` at the upper-half
//! address with the MMU and caches on. From there ([`kernel`]): heap, device
//! tree (or the Pi's defaults), console, log, boot arguments, memory map,
//! frame allocator, the kernel's own tables, the other cores ([`smp`]), then
//! the in-kernel tests when the command line asks for them ([`ktest`]), the
//! memory service's run ([`memory_service`]), and exit.
//!
//! What lives here is what needs the hardware: the architecture layer
//! ([`arch`]: every system register, barrier and assembly instruction), the
//! MMIO drivers ([`drivers`]), the console, the lock ([`sync`]), and the
//! kernel objects that run on them (tasks and the trap path in [`task`],
//! the memory service's start in [`memory_service`]). The decisions they carry out
//! (page tables, IPC states, discovery, checks) are `folio-core`'s, tested
//! on the host.
//!
//! On the host this crate builds to a program that explains how to build the
//! kernel, plus the host tests of the lock and the console's format.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("folio is a kernel: build it with `make` (target aarch64-unknown-none) and boot it with `make run`.");
    std::process::exit(2);
}

extern crate alloc;

#[cfg(target_os = "none")]
mod arch;
#[cfg(target_os = "none")]
mod bench;
#[cfg(target_os = "none")]
mod boot_info;
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
mod console;
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
mod drivers;
#[cfg(target_os = "none")]
mod frames;
#[cfg(target_os = "none")]
#[cfg(target_os = "none")]
mod kernel;
#[cfg(target_os = "none")]
mod ktest;
#[cfg(target_os = "none")]
mod memory_service;
#[cfg(target_os = "none")]
mod programs;
#[cfg(target_os = "none")]
mod smp;
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
mod sync;
#[cfg(target_os = "none")]
mod task;
