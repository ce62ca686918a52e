//! In-kernel tests of memory: the frame allocator, the heap, the counter,
//! faults and their reports, the memory map, the kernel's own tables (the
//! checker over the live tree, section permissions), and every mapping unit
//! through the real walker.

use super::*;

pub(super) const TESTS: &[(&str, KernelTest)] = &[
    ("frames_round_trip_exactly", frames_round_trip_exactly),
    ("frames_avoid_reserved_memory", frames_avoid_reserved_memory),
    ("frame_exhaustion_is_an_error", frame_exhaustion_is_an_error),
    ("heap_allocates_and_frees", heap_allocates_and_frees),
    ("virtual_counter_advances", virtual_counter_advances),
    ("unmapped_read_is_a_translation_fault", unmapped_read_is_a_translation_fault),
    ("brk_is_reported_with_its_class", brk_is_reported_with_its_class),
    ("memory_map_matches_the_machine", memory_map_matches_the_machine),
    ("kernel_tables_pass_the_checker", kernel_tables_pass_the_checker),
    ("kernel_sections_keep_their_permissions", kernel_sections_keep_their_permissions),
    ("every_unit_maps_splits_and_coalesces", every_unit_maps_splits_and_coalesces),
];

fn frames_round_trip_exactly(_: &mut BootInfo) -> TestResult {
    frames(|pool| {
        let before = pool.free_frames();
        let granule = pool.granule().size();
        let mut held = Vec::new();
        for order in [0u32, 1, 4, 9] {
            let address = pool.alloc(order).map_err(|e| format!("order {order}: {e}"))?;
            check(address % (granule << order) == 0, || format!("order {order} block {address:#x} misaligned"))?;
            held.push((address, order));
        }
        let used: u64 = held.iter().map(|(_, o)| 1u64 << o).sum();
        check(pool.free_frames() == before - used, || {
            format!("free count {} != {before} - {used}", pool.free_frames())
        })?;
        for (address, order) in held {
            pool.free(address, order).map_err(|e| format!("{e}"))?;
        }
        check(pool.free_frames() == before, || format!("free count {} != {before} after freeing", pool.free_frames()))
    })?
}

fn frames_avoid_reserved_memory(k: &mut BootInfo) -> TestResult {
    frames(|pool| {
        let granule = pool.granule().size();
        let mut held = Vec::new();
        let mut result = Ok(());
        for _ in 0..256 {
            let Ok(address) = pool.alloc(0) else { break };
            held.push(address);
            let (start, end) = (address, address + granule);
            if let Some((range, source)) =
                k.memory_map.reserved.iter().find(|(r, _)| start < r.end() && r.start() < end)
            {
                result = Err(format!("frame {address:#x} overlaps reserved {range} ({source})"));
            }
            if !k.memory_map.banks.iter().any(|b| b.start() <= start && end <= b.end()) {
                result = Err(format!("frame {address:#x} is outside every RAM bank"));
            }
        }
        for address in held {
            pool.free(address, 0).map_err(|e| format!("{e}"))?;
        }
        result
    })?
}

fn frame_exhaustion_is_an_error(k: &mut BootInfo) -> TestResult {
    // More than all RAM in one block can never be satisfied.
    let ram_frames = k.memory_map.total_ram() >> k.granule.shift();
    let order = 64 - ram_frames.leading_zeros();
    frames(|pool| {
        let before = pool.free_frames();
        check(pool.alloc(order).is_err(), || format!("order {order} (> all RAM) was granted"))?;
        check(pool.free_frames() == before, || "a failed allocation changed the free count".into())
    })?
}

fn heap_allocates_and_frees(_: &mut BootInfo) -> TestResult {
    let v: Vec<u64> = (0..100_000).collect();
    let boxed = Box::new([7u8; 4096]);
    check(v.iter().sum::<u64>() == 4_999_950_000 && boxed.iter().all(|&b| b == 7), || "heap contents wrong".into())
}

fn virtual_counter_advances(_: &mut BootInfo) -> TestResult {
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

fn unmapped_read_is_a_translation_fault(_: &mut BootInfo) -> TestResult {
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

fn brk_is_reported_with_its_class(_: &mut BootInfo) -> TestResult {
    let report = catch_fault(crate::arch::aarch64::cpu::breakpoint_0x42).ok_or("brk did not trap")?;
    check(report.exception_class() == 0x3c && report.esr & 0xffff == 0x42, || format!("ESR {:#x}", report.esr))
}

fn memory_map_matches_the_machine(k: &mut BootInfo) -> TestResult {
    let banks: Vec<_> = k.machine.memory.iter().map(|b| b.range).collect();
    check(banks == k.memory_map.banks, || "memory map banks differ from the DTB's".into())?;
    check(k.memory_map.banks.iter().any(|b| b.contains_range(&k.image)), || {
        format!("kernel image {} not in RAM", k.image)
    })
}

/// The descriptor checker over the whole live kernel tree.
pub(super) fn check_kernel_tree(k: &BootInfo) -> TestResult {
    let banks = k.memory_map.banks.clone();
    let granule = k.granule;
    let violations = tables(|t| {
        let root = t.root();
        let hw = t.hw();
        checker::check(granule, root, true, &mut |table, index| hw.read_entry(table, index), &|pa| {
            banks.iter().any(|b| b.contains(pa))
        })
    })?;
    check(violations.is_empty(), || format!("{} violations, first {:?}", violations.len(), violations.first()))
}

fn kernel_tables_pass_the_checker(k: &mut BootInfo) -> TestResult {
    check_kernel_tree(k)
}

unsafe extern "C" {
    static __image_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
}

fn kernel_sections_keep_their_permissions(_: &mut BootInfo) -> TestResult {
    let text = core::ptr::addr_of!(__image_start) as u64;
    let rodata = core::ptr::addr_of!(__text_end) as u64;
    let data = core::ptr::addr_of!(__rodata_end) as u64;
    for (va, expect) in [(text, Attributes::KERNEL_RX), (rodata, Attributes::KERNEL_RO), (data, Attributes::KERNEL_RW)]
    {
        let found = tables(|t| t.translate(va))?.ok_or_else(|| format!("{va:#x} not mapped"))?;
        check(found.attributes == expect, || format!("{va:#x}: {} instead of {expect}", found.attributes))?;
    }
    // Writing to text faults with a permission fault.
    let report = catch_fault(|| {
        // SAFETY: text is mapped read-only+executable, so the write faults
        // and is resumed after; nothing is written.
        unsafe { core::ptr::write_volatile(text as *mut u32, 0) };
    });
    expect_permission_fault(report, true)
}

pub(super) fn expect_permission_fault(report: Option<ExceptionReport>, write: bool) -> TestResult {
    let report = report.ok_or("no fault")?;
    let fsc = report.esr & 0x3f;
    check((0xc..=0xf).contains(&fsc), || format!("FSC {fsc:#x}, expected a permission fault"))?;
    check(report.is_write() == write, || format!("write flag {} (ESR {:#x})", report.is_write(), report.esr))
}

/// Maps a test region with every unit of the running granule that fits in
/// memory, and checks the real walker agrees with the engine.
fn every_unit_maps_splits_and_coalesces(k: &mut BootInfo) -> TestResult {
    let granule = k.granule;
    let mut exercised = 0;
    for unit in Unit::all_largest_first(granule) {
        let size = unit.size(granule);
        let order = (size / granule.size()).trailing_zeros();
        let Ok(pa) = frames(|f| f.alloc(order))? else {
            result!(
                "ktest.unit",
                true,
                unit = unit,
                size = Size(size),
                ran = "no",
                why = "no free aligned block in this much RAM"
            );
            continue;
        };
        let result = exercise_unit(k, unit, pa, size);
        frames(|f| f.free(pa, order))?.map_err(|e| format!("{e}"))?;
        result.map_err(|e| format!("{unit}: {e}"))?;
        // Mapped, written, split, coalesced, protected.
        result!("ktest.unit", true, unit = unit, size = Size(size), ran = "yes", at = Hex(pa));
        exercised += 1;
    }
    check(exercised >= 2, || "fewer than two units fit".into())
}

pub(super) fn pattern(i: u64) -> u64 {
    0x5eed_0000_0000_0000 | i.wrapping_mul(0x9e37_79b9)
}

/// Checks each probe reads its pattern through the test mapping and through
/// the linear map.
pub(super) fn check_probes(va: u64, pa: u64, probes: &[u64]) -> TestResult {
    for (i, &off) in probes.iter().enumerate() {
        let linear = layout::linear(pa + off).ok_or("beyond the linear map")?;
        // SAFETY: both addresses map the same live RAM (the test mapping is
        // installed, the linear map always is), aligned to 8.
        let (through_test, through_linear) = unsafe {
            (core::ptr::read_volatile((va + off) as *const u64), core::ptr::read_volatile(linear as *const u64))
        };
        check(through_test == pattern(i as u64) && through_linear == pattern(i as u64), || {
            format!("offset {off:#x}: {through_test:#x} via the mapping, {through_linear:#x} via the linear map")
        })?;
    }
    Ok(())
}

fn exercise_unit(k: &BootInfo, unit: Unit, pa: u64, size: u64) -> TestResult {
    let granule = k.granule;
    let va = TEST_BASE;
    let tables_before = tables(|t| t.stats().tables_in_use)?;
    tables(|t| t.map(va, pa, size, Attributes::KERNEL_RW, Policy::Force(unit)))?.map_err(paging)?;
    check(tables(|t| t.translate(va).map(|m| m.unit))? == Some(unit), || "translate disagrees".into())?;
    let probes = [0, size / 2 + 8, size - 8];
    for (i, &off) in probes.iter().enumerate() {
        // SAFETY: `va + off` lies in the mapping just made (read/write), 8-aligned.
        unsafe { core::ptr::write_volatile((va + off) as *mut u64, pattern(i as u64)) };
    }
    check_probes(va, pa, &probes)?;
    check_kernel_tree(k)?;

    // Split down to pages around the middle probe; the data stays put.
    let middle = va + probes[1];
    loop {
        match tables(|t| t.split(middle))? {
            Ok(_) => check_probes(va, pa, &probes)?,
            Err(PagingError::CannotSplit { .. }) => break,
            Err(e) => return Err(paging(e)),
        }
    }
    check(tables(|t| t.translate(middle).map(|m| m.unit))? == Some(Unit::PAGE), || "not split to a page".into())?;
    check_kernel_tree(k)?;
    // Coalesce back up, smallest unit first.
    let mut ups: Vec<Unit> =
        Unit::all_largest_first(granule).filter(|u| u.size(granule) <= size && *u != Unit::PAGE).collect();
    ups.reverse();
    for u in ups {
        match tables(|t| t.coalesce(middle & !(u.size(granule) - 1), u))? {
            Ok(()) | Err(PagingError::NotUniform { .. }) => check_probes(va, pa, &probes)?,
            Err(e) => return Err(format!("coalesce into {u}: {e}")),
        }
    }
    check(tables(|t| t.translate(middle).map(|m| m.unit))? == Some(unit), || "not coalesced back".into())?;
    check_kernel_tree(k)?;

    // Read-only: a write faults and changes nothing; no execute ever.
    tables(|t| t.protect(va, size, Attributes::KERNEL_RO))?.map_err(paging)?;
    let report = catch_fault(|| {
        // SAFETY: the mapping is read-only now: the write faults, is resumed after.
        unsafe { core::ptr::write_volatile(middle as *mut u64, 0) };
    });
    expect_permission_fault(report, true)?;
    check_probes(va, pa, &probes)?;
    let report = catch_fault(|| {
        // SAFETY: the mapping is never executable (PXN): the branch takes an
        // instruction abort and the handler returns to after this call.
        let f: extern "C" fn() = unsafe { core::mem::transmute(va as usize) };
        f();
    })
    .ok_or("executing a non-executable mapping did not fault")?;
    check(report.exception_class() == 0x21 && (0xc..=0xf).contains(&(report.esr & 0x3f)), || {
        format!("ESR {:#x}, expected an instruction permission fault", report.esr)
    })?;

    tables(|t| t.unmap(va, size))?.map_err(paging)?;
    check(tables(|t| t.translate(va))?.is_none(), || "still mapped after unmap".into())?;
    let tables_after = tables(|t| t.stats().tables_in_use)?;
    check(tables_after == tables_before, || format!("table frames {tables_before} -> {tables_after}"))?;
    Ok(())
}
