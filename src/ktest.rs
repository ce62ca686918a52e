//! The in-kernel test runner: tests that need the real CPU, MMU and memory.
//!
//! One line per test (`ktest NAME ... ok` or `... FAILED: why`) and a closing
//! `N passed, N failed` line; the exit status is the number of failures
//! (capped at 1 so it never collides with the fault and panic statuses).
//! `ktest=NAME` runs the tests whose name contains NAME.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use folio::arch::aarch64::early_map::{self, Memory};
use folio::arch::aarch64::{exception::catch_fault, timer};
use folio::println;

use crate::kernel::{Kernel, UNMAPPED_ADDRESS};

type TestResult = Result<(), String>;
type KernelTest = fn(&mut Kernel) -> TestResult;

const TESTS: &[(&str, KernelTest)] = &[
    ("frames_round_trip_exactly", frames_round_trip_exactly),
    ("frames_avoid_reserved_memory", frames_avoid_reserved_memory),
    ("frame_exhaustion_is_an_error", frame_exhaustion_is_an_error),
    ("heap_allocates_and_frees", heap_allocates_and_frees),
    ("virtual_counter_advances", virtual_counter_advances),
    ("unmapped_read_is_a_translation_fault", unmapped_read_is_a_translation_fault),
    ("write_to_read_only_dtb_is_a_permission_fault", write_to_read_only_dtb_is_a_permission_fault),
    ("brk_is_reported_with_its_class", brk_is_reported_with_its_class),
    ("memory_map_matches_the_machine", memory_map_matches_the_machine),
];

pub fn run(kernel: &mut Kernel, filter: &str) -> u32 {
    let (mut passed, mut failed) = (0u32, 0u32);
    for (name, test) in TESTS.iter().filter(|(name, _)| name.contains(filter)) {
        match test(kernel) {
            Ok(()) => {
                passed += 1;
                println!("ktest {name} ... ok");
            }
            Err(why) => {
                failed += 1;
                println!("ktest {name} ... FAILED: {why}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    failed.min(1)
}

fn check(condition: bool, why: impl FnOnce() -> String) -> TestResult {
    if condition { Ok(()) } else { Err(why()) }
}

fn frames_round_trip_exactly(k: &mut Kernel) -> TestResult {
    let before = k.frames.free_frames();
    let granule = k.frames.granule().size();
    let mut held = Vec::new();
    for order in [0u32, 1, 4, 9] {
        let address = k.frames.alloc(order).map_err(|e| format!("order {order}: {e}"))?;
        check(address % (granule << order) == 0, || format!("order {order} block {address:#x} misaligned"))?;
        held.push((address, order));
    }
    let used: u64 = held.iter().map(|(_, o)| 1u64 << o).sum();
    check(k.frames.free_frames() == before - used, || {
        format!("free count {} != {} - {used}", k.frames.free_frames(), before)
    })?;
    for (address, order) in held {
        k.frames.free(address, order).map_err(|e| format!("{e}"))?;
    }
    check(k.frames.free_frames() == before, || {
        format!("free count {} != {before} after freeing", k.frames.free_frames())
    })
}

fn frames_avoid_reserved_memory(k: &mut Kernel) -> TestResult {
    let granule = k.frames.granule().size();
    let mut held = Vec::new();
    let mut result = Ok(());
    for _ in 0..256 {
        let Ok(address) = k.frames.alloc(0) else { break };
        held.push(address);
        let frame = PhysRangeCheck { start: address, end: address + granule };
        if let Some((range, source)) = k.memory_map.reserved.iter().find(|(r, _)| frame.overlaps(r.start(), r.end())) {
            result = Err(format!("frame {address:#x} overlaps reserved {range} ({source})"));
        }
        if !k.memory_map.banks.iter().any(|b| b.start() <= address && address + granule <= b.end()) {
            result = Err(format!("frame {address:#x} is outside every RAM bank"));
        }
    }
    for address in held {
        k.frames.free(address, 0).map_err(|e| format!("{e}"))?;
    }
    result
}

struct PhysRangeCheck {
    start: u64,
    end: u64,
}

impl PhysRangeCheck {
    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.start < end && start < self.end
    }
}

fn frame_exhaustion_is_an_error(k: &mut Kernel) -> TestResult {
    // More than all RAM in one block can never be satisfied.
    let ram_frames = k.memory_map.total_ram() >> k.frames.granule().shift();
    let order = 64 - ram_frames.leading_zeros();
    let before = k.frames.free_frames();
    check(k.frames.alloc(order).is_err(), || format!("order {order} (> all RAM) was granted"))?;
    check(k.frames.free_frames() == before, || "a failed allocation changed the free count".into())
}

fn heap_allocates_and_frees(_: &mut Kernel) -> TestResult {
    let v: Vec<u64> = (0..100_000).collect();
    let boxed = Box::new([7u8; 4096]);
    check(v.iter().sum::<u64>() == 4_999_950_000 && boxed.iter().all(|&b| b == 7), || "heap contents wrong".into())
}

fn virtual_counter_advances(_: &mut Kernel) -> TestResult {
    let frequency = timer::frequency();
    check(frequency != 0, || "CNTFRQ_EL0 is 0".into())?;
    let a = timer::counter();
    let mut b = a;
    for _ in 0..1_000_000 {
        b = timer::counter();
        if b > a {
            break;
        }
    }
    check(b > a, || format!("CNTVCT stuck at {a}"))
}

fn unmapped_read_is_a_translation_fault(_: &mut Kernel) -> TestResult {
    let report = catch_fault(|| {
        // SAFETY: the address is never mapped; the read faults and the
        // handler, told by catch_fault, resumes after it.
        let _ = unsafe { core::ptr::read_volatile(UNMAPPED_ADDRESS as *const u64) };
    })
    .ok_or("the read did not fault")?;
    check(report.exception_class() == 0x25, || {
        format!("class {:#x}, expected a same-EL data abort", report.exception_class())
    })?;
    check(report.far == UNMAPPED_ADDRESS, || format!("FAR {:#x}", report.far))?;
    let fsc = report.esr & 0x3f;
    check((4..=7).contains(&fsc) && !report.is_write(), || {
        format!("FSC {fsc:#x}, expected a translation fault on a read")
    })
}

fn write_to_read_only_dtb_is_a_permission_fault(k: &mut Kernel) -> TestResult {
    // The DTB is mapped read-only; without one, map a read-only page of RAM.
    let target = match k.dtb_virtual {
        Some(va) => va,
        None => early_map::map(k.image.start(), 8, Memory::NormalReadOnly).map_err(|e| format!("{e:?}"))?,
    };
    let before = unsafe_read(target);
    let report = catch_fault(|| {
        // SAFETY: the target is mapped read-only, so the write faults and the
        // handler resumes after it; nothing is written.
        unsafe { core::ptr::write_volatile(target as *mut u8, !before) };
    })
    .ok_or("the write to a read-only mapping did not fault")?;
    let fsc = report.esr & 0x3f;
    check((0xc..=0xf).contains(&fsc) && report.is_write(), || {
        format!("FSC {fsc:#x}, expected a permission fault on a write")
    })?;
    check(unsafe_read(target) == before, || "the read-only byte changed".into())
}

fn unsafe_read(address: usize) -> u8 {
    // SAFETY: only called on addresses the early map mapped readable.
    unsafe { core::ptr::read_volatile(address as *const u8) }
}

fn brk_is_reported_with_its_class(_: &mut Kernel) -> TestResult {
    let report = catch_fault(|| {
        // SAFETY: BRK raises a synchronous exception that catch_fault's
        // handler records, resuming at the next instruction.
        unsafe { core::arch::asm!("brk #0x42") };
    })
    .ok_or("brk did not trap")?;
    check(report.exception_class() == 0x3c && report.esr & 0xffff == 0x42, || format!("ESR {:#x}", report.esr))
}

fn memory_map_matches_the_machine(k: &mut Kernel) -> TestResult {
    let banks: Vec<_> = k.machine.memory.iter().map(|b| b.range).collect();
    check(banks == k.memory_map.banks, || "memory map banks differ from the DTB's".into())?;
    check(k.memory_map.banks.iter().any(|b| b.contains_range(&k.image)), || {
        format!("kernel image {} not in RAM", k.image)
    })?;
    let free_bytes: u64 = k.memory_map.free_ranges(k.frames.granule()).iter().map(|r| r.size()).sum();
    check(k.frames.total_frames() << k.frames.granule().shift() == free_bytes, || {
        "allocator total differs from the free map".into()
    })
}
