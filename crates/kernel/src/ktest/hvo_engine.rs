//! In-kernel tests of the kernel's HVO engine over the real MMU: every
//! size optimized and restored, a write to a shared tail caught, batches,
//! demotion, and the boot-time pools.

use super::memory::{check_probes, expect_permission_fault, pattern};
use super::*;

pub(super) const TESTS: &[(&str, KernelTest)] = &[
    ("hvo_every_size_optimizes_and_restores", hvo_every_size_optimizes_and_restores),
    ("hvo_write_to_a_shared_tail_is_a_violation", hvo_write_to_a_shared_tail_is_a_violation),
    ("hvo_batch_synchronises_once", hvo_batch_synchronises_once),
    ("hvo_demote_every_size", hvo_demote_every_size),
    ("hvo_boot_pool_is_born_optimized", hvo_boot_pool_is_born_optimized),
];

fn hvo_err(e: folio_hvo::HvoError) -> String {
    format!("{e}")
}

/// Every eligible huge size that fits: optimize, read every tail's head
/// through the remapped vmemmap, check the allocator gained exactly what the
/// accounting says, keep the folio's data, restore, free, and end with the
/// free count where it started.
fn hvo_every_size_optimizes_and_restores(k: &mut BootInfo) -> TestResult {
    let granule = k.granule;
    let min = hvo::min_optimizable_order(granule);
    let mut exercised = 0;
    let mut orders: Vec<(u32, String)> = huge::huge_units(granule)
        .into_iter()
        .map(|u| (huge::order_of(granule, u), format!("{u}")))
        .filter(|(order, _)| *order >= min)
        .collect();
    // When no huge size fits (64K on a 960 MiB Pi), the smallest eligible
    // folio still exercises the engine.
    orders.push((min, "minimum eligible order".into()));
    for (order, unit) in orders {
        if exercised > 0 && unit == "minimum eligible order" {
            break;
        }
        let start = huge::free_frames();
        let Some(mut region) = FolioRegion::new(granule, order, &k.memory_map.banks).map_err(hvo_err)? else {
            result!("ktest.hvo.order", true, order = order, unit = unit, ran = "no", why = "no room in this much RAM");
            continue;
        };
        let result = hvo_round_trip(&mut region, order);
        region.finish();
        result.map_err(|e| format!("order {order}: {e}"))?;
        check(huge::free_frames() == start, || {
            format!("order {order}: free frames {} != {start}", huge::free_frames())
        })?;
        // Optimized, every tail found its head, restored, freed.
        result!("ktest.hvo.order", true, order = order, unit = unit, ran = "yes");
        exercised += 1;
    }
    check(exercised > 0, || "no eligible size fits".into())
}

fn hvo_round_trip(region: &mut FolioRegion, order: u32) -> TestResult {
    let (pa, pfn) = (region.pa, region.pfn());
    let size = region.hvo.granule().size() << order;
    let probes = [0, size / 2 + 8, size - 8];
    for (i, &off) in probes.iter().enumerate() {
        let va = layout::linear(pa + off).ok_or("beyond the linear map")?;
        // SAFETY: the folio's frames are ours, mapped by the linear map, 8-aligned.
        unsafe { core::ptr::write_volatile(va as *mut u64, pattern(i as u64)) };
    }
    let f = region.hvo.create_folio(pfn, order, 7, false).map_err(hvo_err)?;
    huge::check_every_tail(&mut region.hvo, f)?;
    let before = huge::free_frames();
    let acc0 = region.hvo.accounting();
    region.hvo.optimize(&[f]).map_err(hvo_err)?;
    let acc = region.hvo.accounting();
    let gained = huge::free_frames() as i64 - before as i64;
    let expected = (acc.freed_by_hvo - acc0.freed_by_hvo) as i64 - (acc.shared_tails - acc0.shared_tails) as i64;
    check(gained == expected, || format!("allocator gained {gained}, accounting says {expected}"))?;
    check(region.hvo.is_optimized(f), || "not optimized".into())?;
    huge::check_every_tail(&mut region.hvo, f)?;
    check_probes(pa | layout::LINEAR_BASE, pa, &probes)?;
    region.hvo.restore(&[f]).map_err(hvo_err)?;
    check(huge::free_frames() == before, || "restore did not take back exactly what optimize gave".into())?;
    huge::check_every_tail(&mut region.hvo, f)?;
    check_probes(pa | layout::LINEAR_BASE, pa, &probes)?;
    region.hvo.release_folio(f).map_err(hvo_err)
}

fn hvo_write_to_a_shared_tail_is_a_violation(k: &mut BootInfo) -> TestResult {
    let granule = k.granule;
    let order = hvo::min_optimizable_order(granule);
    let mut region = FolioRegion::new(granule, order, &k.memory_map.banks).map_err(hvo_err)?.ok_or("no room")?;
    let pfn = region.pfn();
    let result = (|| {
        let f = region.hvo.create_folio(pfn, order, 7, true).map_err(hvo_err)?;
        // A tail in vmemmap page 1: the shared, read-only tail page.
        let per_page = granule.size() >> hvo::DESCRIPTOR_SHIFT;
        let tail_va = region.hvo.descriptor_va(pfn + per_page + 3);
        let report = catch_fault(|| {
            // SAFETY: the shared tail page is mapped read-only: the write
            // faults and is resumed after; nothing is written.
            unsafe { core::ptr::write_volatile(tail_va as *mut u64, 0) };
        });
        expect_permission_fault(report, true)?;
        let v = last_caught_hvo_violation().ok_or("the fault was not named an HVO violation")?;
        check(v.head_pfn == pfn && v.order == order, || format!("{v}"))?;
        result!(
            "ktest.hvo.caught",
            true,
            label = "hvo-violation",
            order = v.order,
            head_pfn = Hex(v.head_pfn),
            zone = v.zone
        );
        huge::check_every_tail(&mut region.hvo, f)?;
        region.hvo.release_folio(f).map_err(hvo_err)
    })();
    region.finish();
    result
}

/// Up to 64 folios of the minimum order, optimized and restored as batches:
/// one break-before-make synchronisation (three DSBs) per batch.
fn hvo_batch_synchronises_once(k: &mut BootInfo) -> TestResult {
    let granule = k.granule;
    let order = hvo::min_optimizable_order(granule);
    // As many folios as the RAM allows, up to 64, in one region.
    let ram = k.memory_map.total_ram() >> granule.shift();
    let count_log2 = (6u32).min((ram >> 2).ilog2().saturating_sub(order));
    let count = 1u64 << count_log2;
    let mut region =
        FolioRegion::new(granule, order + count_log2, &k.memory_map.banks).map_err(hvo_err)?.ok_or("no room")?;
    let base = region.pfn();
    let result = (|| {
        let folios: Vec<Folio> = (0..count)
            .map(|i| region.hvo.create_folio(base + (i << order), order, 7, false))
            .collect::<Result<_, _>>()
            .map_err(hvo_err)?;
        for (what, optimize) in [("optimize", true), ("restore", false)] {
            let dsb = tables(|t| t.stats().dsb)?;
            let r = if optimize { region.hvo.optimize(&folios) } else { region.hvo.restore(&folios) };
            check(r.map_err(hvo_err)?.changed == count, || format!("{what}: not all changed"))?;
            let synced = tables(|t| t.stats().dsb)? - dsb;
            check(synced == 3, || format!("{what} of {count} folios issued {synced} DSBs"))?;
        }
        result!("ktest.hvo.batch", true, folios = count, order = order, dsbs_each = 3);
        for f in folios {
            region.hvo.release_folio(f).map_err(hvo_err)?;
        }
        Ok(())
    })();
    region.finish();
    result
}

/// The largest eligible huge size that fits, demoted into every smaller
/// huge size: each piece's tails find the piece's head, pieces that are
/// eligible stay optimized, the allocator moves by exactly the accounting,
/// and everything is freed in the end.
fn hvo_demote_every_size(k: &mut BootInfo) -> TestResult {
    let granule = k.granule;
    let min = hvo::min_optimizable_order(granule);
    let units = huge::huge_units(granule);
    let fitting =
        units.iter().rev().map(|&u| (u, huge::order_of(granule, u))).filter(|&(_, o)| o >= min).find(|&(_, o)| {
            let fits = KERNEL_FRAMES.lock().as_mut().and_then(|f| f.alloc(o).ok());
            if let (Some(pa), Some(f)) = (fits, KERNEL_FRAMES.lock().as_mut()) {
                let _ = f.free(pa, o);
            }
            fits.is_some()
        });
    let Some((_, big)) = fitting else {
        result!("ktest.hvo.demote", true, ran = "no", why = "no eligible huge size fits in this much RAM");
        return Ok(());
    };
    let start = huge::free_frames();
    for small_unit in units.iter().copied().filter(|u| huge::order_of(granule, *u) < big) {
        let small = huge::order_of(granule, small_unit);
        let mut region = FolioRegion::new(granule, big, &k.memory_map.banks).map_err(hvo_err)?.ok_or("no room")?;
        let pfn = region.pfn();
        let result = (|| {
            let f = region.hvo.create_folio(pfn, big, 7, true).map_err(hvo_err)?;
            let before = huge::free_frames();
            let acc0 = region.hvo.accounting();
            let pieces = region.hvo.demote(f, small).map_err(hvo_err)?;
            let acc = region.hvo.accounting();
            let held = |a: folio_hvo::Accounting| (a.vmemmap_frames + a.shared_tails) as i64;
            let moved = before as i64 - huge::free_frames() as i64;
            check(moved == held(acc) - held(acc0), || {
                format!("allocator moved {moved}, accounting {}", held(acc) - held(acc0))
            })?;
            check(pieces.len() as u64 == 1 << (big - small), || "wrong piece count".into())?;
            let eligible = small >= min;
            for &p in &pieces {
                check(region.hvo.is_optimized(p) == eligible, || format!("piece at {:#x}: optimized?", p.pfn))?;
                huge::check_every_tail(&mut region.hvo, p)?;
            }
            if eligible {
                region.hvo.restore(&pieces).map_err(hvo_err)?;
            }
            for p in pieces {
                region.hvo.release_folio(p).map_err(hvo_err)?;
            }
            // Every tail found its head; restored and freed.
            result!(
                "ktest.hvo.demote",
                true,
                from = Size(granule.size() << big),
                to = Size(granule.size() << small),
                pieces = 1u64 << (big - small),
                optimized = if eligible { "yes" } else { "no" }
            );
            Ok::<(), String>(())
        })();
        region.finish();
        result?;
    }
    check(huge::free_frames() == start, || format!("free frames {} != {start}", huge::free_frames()))
}

/// The pools `hugepages=` reserved (if any): every folio optimized, its
/// tails find its head, and none of its vmemmap beyond page 0 is private.
fn hvo_boot_pool_is_born_optimized(_: &mut BootInfo) -> TestResult {
    let mut guard = huge::HUGEPAGE_POOL.lock();
    let Some((hvo, folios)) = guard.as_mut() else {
        result!("ktest.hvo.pool", true, folios = 0);
        return Ok(());
    };
    for &f in folios.iter() {
        check(hvo.is_optimized(f), || format!("pool folio at {:#x} not optimized", f.pfn))?;
        huge::check_every_tail(hvo, f)?;
    }
    let acc = hvo.accounting();
    check(acc.vmemmap_frames == folios.len() as u64, || {
        format!("{} private pages for {} folios", acc.vmemmap_frames, folios.len())
    })?;
    // Optimized from birth, every tail found its head.
    result!("ktest.hvo.pool", true, folios = folios.len(), born_optimized = "yes");
    Ok(())
}
