//! The in-kernel test runner: tests that need the real CPU, MMU and memory.
//!
//! One line per test (`ktest NAME ... ok` or `... FAILED: why`) and a closing
//! `N passed, N failed` line; the exit status is 1 when any failed.
//! `ktest=NAME` runs the tests whose name contains NAME.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::arch::aarch64::exception::catch_fault;
use crate::arch::aarch64::mmu::{KERNEL_TABLES, KernelHw};
use crate::arch::aarch64::timer;
use crate::frames::KERNEL_FRAMES;
use crate::{println, result};
use folio_abi::report::Hex;
use folio_core::exception::ExceptionReport;
use folio_core::mm::FramePool;
use folio_core::mm::layout::{self, TEST_BASE};
use folio_core::mm::memmap::Size;
use folio_core::mm::paging::{Attributes, PageTable, PageTableHw, PagingError, Policy, Unit, checker};

mod memory;
mod smp;
mod tasks;
mod torture;

use crate::boot_info::{BootInfo, UNMAPPED_ADDRESS};
use folio_core::ipc::Object;

type TestResult = Result<(), String>;
type KernelTest = fn(&mut BootInfo) -> TestResult;

/// Client lifetimes the test of tasks that come and go runs (`lifetimes=`).
pub static LIFETIMES: core::sync::atomic::AtomicU64 =
    core::sync::atomic::AtomicU64::new(folio_core::bootargs::DEFAULT_LIFETIMES);

pub fn run(kernel: &mut BootInfo, filter: &str) -> u32 {
    let (mut passed, mut failed) = (0u32, 0u32);
    let tests = [memory::TESTS, tasks::TESTS, smp::TESTS];
    for (name, test) in tests.iter().flat_map(|t| t.iter()).filter(|(name, _)| name.contains(filter)) {
        match test(kernel) {
            Ok(()) => {
                passed += 1;
                result!(format_args!("ktest.{name}"), true);
            }
            Err(why) => {
                failed += 1;
                result!(format_args!("ktest.{name}"), false, why = why);
            }
        }
    }
    result!("ktests", failed == 0, passed = passed, failed = failed);
    failed.min(1)
}

fn check(condition: bool, why: impl FnOnce() -> String) -> TestResult {
    if condition { Ok(()) } else { Err(why()) }
}

/// Runs `f` on the kernel's frame pool.
fn frames<R>(f: impl FnOnce(&mut FramePool) -> R) -> Result<R, String> {
    KERNEL_FRAMES.lock().as_mut().map(f).ok_or_else(|| "no frame pool".into())
}

/// Runs `f` on the kernel's page tables (which take the frame pool's lock
/// themselves: never call this from inside `frames`).
fn tables<R>(f: impl FnOnce(&mut PageTable<KernelHw>) -> R) -> Result<R, String> {
    KERNEL_TABLES.lock().as_mut().map(f).ok_or_else(|| "no kernel page tables".into())
}

/// Task names as one result value: `a,b,c`.
fn names(names: &[&str]) -> String {
    names.join(",")
}

/// Task exit statuses as one result value: `name:status,...` (`none`
/// where the task never ended).
fn statuses(statuses: &[(&str, Option<u64>)]) -> String {
    crate::task::statuses_value(statuses)
}

fn paging(e: PagingError) -> String {
    format!("{e}")
}
