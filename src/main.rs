//! The folio kernel binary: wires the library's pieces together at boot.
//!
//! `boot.s` enters [`kernel_start`] at the upper-half address with the MMU
//! and caches on. From there: heap, device tree (or the Pi's defaults),
//! console, log, boot arguments, memory map, frame allocator, then the
//! in-kernel tests when the command line asks for them, then exit.
//!
//! On the host this file builds to a program that explains how to build the
//! kernel, so `cargo test` can build every target of the package.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("folio is a kernel: build it with `make` (target aarch64-unknown-none) and boot it with `make run`.");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod bench;
#[cfg(target_os = "none")]
mod huge;
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
#[cfg(target_os = "none")]
mod task;
