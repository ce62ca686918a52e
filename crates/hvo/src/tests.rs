//! Host tests of the HVO engine on the simulated machine: the savings
//! table, the descriptor encoding, optimize / restore / batches with the
//! checker and TLB model after each step, allocation failure at every point,
//! and random sequences against a model with exact frame accounting.

use alloc::vec::Vec;

use super::sim::{SimVmemmap, VMEMMAP_BASE};
use super::*;
use folio_core::mm::{FramePool, Granule, PhysRange};

const ZONE_BASE: u64 = 0x4000_0000;

/// The savings table of hvo-facts.md: (granule, order, vmemmap pages x64
/// before, eligible).
const TABLE: [(Granule, u32, u64, bool); 10] = [
    (Granule::K4, 4, 16, false),        // 64 KiB, contiguous PTE: 1/4 page
    (Granule::K4, 9, 8 * 64, true),     // 2 MiB: 8 -> 1
    (Granule::K4, 13, 128 * 64, true),  // 32 MiB: 128 -> 1
    (Granule::K4, 18, 4096 * 64, true), // 1 GiB: 4096 -> 1
    (Granule::K16, 7, 32, false),       // 2 MiB: 1/2 page
    (Granule::K16, 11, 8 * 64, true),   // 32 MiB: 8 -> 1
    (Granule::K16, 16, 256 * 64, true), // 1 GiB: 256 -> 1
    (Granule::K64, 5, 2, false),        // 2 MiB: 1/32 page
    (Granule::K64, 13, 8 * 64, true),   // 512 MiB: 8 -> 1
    (Granule::K64, 18, 256 * 64, true), // 16 GiB: 256 -> 1
];

#[test]
fn the_savings_table_for_every_granule() {
    assert_eq!(Granule::ALL.map(min_optimizable_order), [7, 9, 11]);
    for (granule, order, pages_x64, eligible) in TABLE {
        assert_eq!(vmemmap_pages_x64(granule, order), pages_x64, "{granule} order {order}");
        assert_eq!(order >= min_optimizable_order(granule), eligible, "{granule} order {order}");
        if eligible {
            // Freed: n - 1 pages, of the granule's size.
            let freed = pages_x64 / 64 - 1;
            let bytes = freed * granule.size();
            match (granule, order) {
                (Granule::K4, 9) => assert_eq!(bytes, 28 << 10),
                (Granule::K4, 18) => assert_eq!(freed, 4095),
                (Granule::K16, 11) => assert_eq!(bytes, 112 << 10),
                (Granule::K64, 13) => assert_eq!(bytes, 448 << 10),
                _ => {}
            }
        }
    }
}

#[test]
fn descriptors_are_64_bytes_and_tails_of_one_order_are_identical() {
    assert_eq!(core::mem::size_of::<PageDescriptor>(), 64);
    assert_eq!(compound_info(9), 0xFFFF_FFFF_FFFF_8001);
    assert_eq!(PageDescriptor::tail(9, 2), PageDescriptor::tail(9, 2));
    assert_ne!(PageDescriptor::tail(9, 2), PageDescriptor::tail(10, 2));
    // A tail finds its head from its own address.
    let head = VMEMMAP_BASE + (0x4_0000 << 6);
    let tail_va = head + 300 * 64;
    assert_eq!(compound_head(tail_va, &PageDescriptor::tail(9, 0)), head);
    assert_eq!(compound_head(head, &PageDescriptor::default()), head);
}

struct Setup {
    hvo: Hvo<SimVmemmap>,
    pool: FramePool,
}

/// A vmemmap over one zone of `zone_frames` frames, and a pool handing out
/// that zone's frames as folios.
fn setup(granule: Granule, zone_frames: u64) -> Setup {
    let zone = PhysRange::from_start_size(ZONE_BASE, zone_frames * granule.size()).unwrap();
    let sim = SimVmemmap::new(granule, 1 << 14);
    let hvo = Hvo::new(sim, granule, VMEMMAP_BASE, &[Zone { id: 3, range: zone }]).unwrap();
    let mut pool = FramePool::new(granule);
    pool.add_range(zone).unwrap();
    Setup { hvo, pool }
}

impl Setup {
    fn meta_free(&self) -> u64 {
        self.hvo.hw_ref().frames.free_frames()
    }
    fn folio(&mut self, order: u32, optimize: bool) -> Folio {
        let pa = self.pool.alloc(order).unwrap();
        let pfn = pa >> self.hvo.granule().shift();
        self.hvo.create_folio(pfn, order, 42, optimize).unwrap()
    }
    fn check_every_tail(&mut self, f: Folio) {
        for i in 0..(1u64 << f.order) {
            assert_eq!(self.hvo.compound_head(f.pfn + i), f.pfn, "frame {i} of {f:?}");
        }
        let head = self.hvo.descriptor(f.pfn);
        assert_eq!((head.flags & FLAG_HEAD, head.order as u32, head.owner, head.zone), (FLAG_HEAD, f.order, 42, 3));
    }
}

#[test]
fn optimize_and_restore_move_exactly_the_accounted_frames() {
    for granule in Granule::ALL {
        let min = min_optimizable_order(granule);
        let mut s = setup(granule, 1 << (min + 4));
        let start = s.meta_free();
        let acc0 = s.hvo.accounting();
        let order = min + 2;
        let n = (1u64 << order) * 64 / granule.size();
        let f = s.folio(order, false);
        s.check_every_tail(f);
        s.hvo.optimize(&[f]).unwrap();
        s.hvo.hw().judge("optimize");
        s.check_every_tail(f);
        let acc = s.hvo.accounting();
        assert_eq!(acc.freed_by_hvo, n - 1);
        assert_eq!(acc.shared_tails, 1);
        // n old pages freed, one private page 0 and one shared tail taken.
        assert_eq!(s.meta_free(), start + (n - 1) - 1, "{granule}");
        assert_eq!(acc.vmemmap_frames + acc.shared_tails, acc0.vmemmap_frames + 1 - (n - 1));
        let stats = s.hvo.order_stats().iter().find(|st| st.order == order).copied().unwrap();
        assert_eq!((stats.vmemmap_pages_before, stats.vmemmap_pages_after, stats.shared_tail), (n, 1, true));

        s.hvo.restore(&[f]).unwrap();
        s.hvo.hw().judge("restore");
        s.check_every_tail(f);
        assert_eq!(s.meta_free(), start, "{granule}: restore gives the pages back, the tail is freed");
        s.hvo.release_folio(f).unwrap();
        let sim = s.hvo.destroy();
        assert_eq!(sim.frames.free_frames(), sim.frames.total_frames(), "{granule}: every frame back");
        assert_eq!(sim.tables.stats().tables_in_use, 1);
    }
}

#[test]
fn born_optimized_folios_never_write_their_tails() {
    let mut s = setup(Granule::K4, 1 << 12);
    let f = s.folio(9, true);
    assert!(s.hvo.is_optimized(f));
    s.check_every_tail(f);
    s.hvo.hw().judge("born optimized");
    // Small folios are served, not optimized.
    let small = s.folio(4, true);
    assert!(!s.hvo.is_optimized(small));
    s.check_every_tail(small);
    assert_eq!(s.hvo.optimize(&[small]), Ok(BatchReport { changed: 0, not_eligible: 1 }));
}

#[test]
fn a_write_to_a_shared_tail_is_refused_and_classified() {
    let mut s = setup(Granule::K16, 1 << 13);
    let f = s.folio(11, true);
    let tail_va = s.hvo.descriptor_va(f.pfn + 700);
    let before = s.hvo.descriptor(f.pfn + 700);
    assert_eq!(s.hvo.hw().write(tail_va, &PageDescriptor::default()), Err(HvoError::ReadOnly { va: tail_va }));
    assert_eq!(s.hvo.descriptor(f.pfn + 700), before);
    let v = s.hvo.classify_write(tail_va + 8).unwrap();
    assert_eq!(v, HvoViolation { head_pfn: f.pfn, order: 11, zone: 3 });
    assert!(v.to_string().starts_with("HVO violation"));
    // Page 0 is private: no violation there.
    assert_eq!(s.hvo.classify_write(s.hvo.descriptor_va(f.pfn) + 64), None);
}

#[test]
fn restore_failing_at_every_point_leaves_the_folio_optimized_and_nothing_leaked() {
    let mut s = setup(Granule::K64, 1 << 14);
    let order = 13; // 8 vmemmap pages: restore needs 7
    let f = s.folio(order, true);
    for fail_after in 0..7 {
        let free = s.meta_free();
        let acc = s.hvo.accounting();
        s.hvo.hw().allocations_left = Some(fail_after);
        assert_eq!(s.hvo.restore(&[f]), Err(HvoError::OutOfMemory), "fail after {fail_after}");
        assert!(s.hvo.is_optimized(f));
        assert_eq!((s.meta_free(), s.hvo.accounting()), (free, acc), "fail after {fail_after}: leaked");
        s.check_every_tail(f);
        s.hvo.hw().judge("failed restore");
        // Freeing needs a restore, so it fails the same way and keeps the folio.
        s.hvo.hw().allocations_left = Some(fail_after);
        assert_eq!(s.hvo.release_folio(f), Err(HvoError::OutOfMemory));
        assert!(s.hvo.is_optimized(f));
    }
    s.hvo.hw().allocations_left = None;
    s.hvo.release_folio(f).unwrap();
    let sim = s.hvo.destroy();
    assert_eq!(sim.frames.free_frames(), sim.frames.total_frames());
}

#[test]
fn a_batch_synchronises_once_and_fails_cleanly_part_way() {
    let mut s = setup(Granule::K4, 1 << 16);
    let folios: Vec<Folio> = (0..64).map(|_| s.folio(7, false)).collect();
    let dsb_before = s.hvo.hw().tables.stats().dsb;
    let r = s.hvo.optimize(&folios).unwrap();
    assert_eq!(r.changed, 64);
    // One break-before-make batch: dsb ishst, dsb ish, dsb ishst.
    assert_eq!(s.hvo.hw().tables.stats().dsb - dsb_before, 3);
    s.hvo.hw().judge("batch optimize");
    for &f in &folios {
        s.check_every_tail(f);
    }
    // Restore with memory for 10 folios (one page each): 10 restored, 54 stay optimized.
    s.hvo.hw().allocations_left = Some(10);
    assert_eq!(s.hvo.restore(&folios), Err(HvoError::OutOfMemory));
    s.hvo.hw().allocations_left = None;
    let optimized: Vec<bool> = folios.iter().map(|&f| s.hvo.is_optimized(f)).collect();
    assert_eq!(optimized.iter().filter(|&&o| o).count(), 54);
    assert!(optimized[..10].iter().all(|&o| !o) && optimized[10..].iter().all(|&o| o));
    s.hvo.hw().judge("partial restore");
    for &f in &folios {
        s.check_every_tail(f);
        s.hvo.release_folio(f).unwrap();
    }
    let sim = s.hvo.destroy();
    assert_eq!(sim.frames.free_frames(), sim.frames.total_frames());
}

#[test]
fn random_sequences_end_with_every_frame_back() {
    for granule in Granule::ALL {
        let min = min_optimizable_order(granule);
        let mut s = setup(granule, 1 << (min + 5));
        let start = s.meta_free();
        let mut rng = 0x2545_f491_4f6c_dd1du64 ^ granule.size();
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut live: Vec<(Folio, u64)> = Vec::new();
        for step in 0..300 {
            match next() % 5 {
                0 | 1 => {
                    let order = min - 2 + (next() % 5) as u32;
                    if let Ok(pa) = s.pool.alloc(order) {
                        let optimize = next() % 2 == 0;
                        let f = s.hvo.create_folio(pa >> granule.shift(), order, 42, optimize).unwrap();
                        live.push((f, pa));
                    }
                }
                2 if !live.is_empty() => {
                    let (f, _) = live[(next() % live.len() as u64) as usize];
                    let _ = s.hvo.optimize(&[f]);
                }
                3 if !live.is_empty() => {
                    let (f, _) = live[(next() % live.len() as u64) as usize];
                    let _ = s.hvo.restore(&[f]);
                }
                _ if !live.is_empty() => {
                    let (f, pa) = live.swap_remove((next() % live.len() as u64) as usize);
                    s.hvo.release_folio(f).unwrap();
                    s.pool.free(pa, f.order).unwrap();
                }
                _ => {}
            }
            // The accounting says exactly what the frame allocator saw.
            let acc = s.hvo.accounting();
            let total = s.hvo.hw_ref().frames.total_frames();
            assert_eq!(s.meta_free() + acc.vmemmap_frames + acc.shared_tails, total, "{granule} step {step}");
            if step % 50 == 0 {
                s.hvo.hw().judge("random");
                for &(f, _) in &live {
                    s.check_every_tail(f);
                }
            }
        }
        for (f, pa) in live.drain(..) {
            s.hvo.release_folio(f).unwrap();
            s.pool.free(pa, f.order).unwrap();
        }
        assert_eq!(s.meta_free(), start, "{granule}");
        assert_eq!(s.pool.free_frames(), s.pool.total_frames());
        let sim = s.hvo.destroy();
        assert_eq!(sim.frames.free_frames(), sim.frames.total_frames());
    }
}

/// The invariant every test keeps: frames held by the vmemmap are exactly
/// what the allocator is missing.
fn assert_exact(s: &Setup, what: &str) {
    let acc = s.hvo.accounting();
    let frames = &s.hvo.hw_ref().frames;
    assert_eq!(frames.free_frames() + acc.vmemmap_frames + acc.shared_tails, frames.total_frames(), "{what}");
}

#[test]
fn demote_keeps_hvo_on_eligible_pieces() {
    for granule in Granule::ALL {
        let min = min_optimizable_order(granule);
        let (big, small) = (min + 4, min + 1);
        let mut s = setup(granule, 1 << (big + 1));
        let f = s.folio(big, true);
        assert_exact(&s, "before demote");
        let pieces = s.hvo.demote(f, small).unwrap();
        s.hvo.hw().judge("demote");
        assert_eq!(pieces.len(), 8);
        for &p in &pieces {
            assert!(s.hvo.is_optimized(p), "{granule}: piece {p:?}");
            s.check_every_tail(p);
        }
        assert_exact(&s, "after demote");
        let acc = s.hvo.accounting();
        // Each piece saves m - 1 pages; the big shared tail is gone, one small one exists.
        let m = (1u64 << small) * 64 / granule.size();
        assert_eq!((acc.freed_by_hvo, acc.shared_tails), (8 * (m - 1), 1), "{granule}");
        for p in pieces {
            s.hvo.release_folio(p).unwrap();
        }
        assert_exact(&s, "after release");
        let sim = s.hvo.destroy();
        assert_eq!(sim.frames.free_frames(), sim.frames.total_frames());
    }
}

#[test]
fn demote_into_ineligible_pieces_restores_first_and_fails_cleanly() {
    let mut s = setup(Granule::K4, 1 << 12);
    let f = s.folio(9, true);
    // Restoring needs 7 pages: with 3, the folio stays as it was.
    s.hvo.hw().allocations_left = Some(3);
    assert_eq!(s.hvo.demote(f, 4), Err(HvoError::OutOfMemory));
    assert!(s.hvo.is_optimized(f));
    s.check_every_tail(f);
    assert_exact(&s, "failed demote");
    s.hvo.hw().allocations_left = None;
    let pieces = s.hvo.demote(f, 4).unwrap();
    assert_eq!(pieces.len(), 32);
    for &p in &pieces {
        assert!(!s.hvo.is_optimized(p));
        s.check_every_tail(p);
    }
    s.hvo.hw().judge("demote to small");
    assert_exact(&s, "demote to small");
}

#[test]
fn demote_failing_at_every_allocation_leaves_the_folio_whole() {
    let mut s = setup(Granule::K16, 1 << 15);
    let f = s.folio(13, true);
    // 4 pieces of order 11: one shared tail and 3 page 0s.
    for limit in 0..4 {
        s.hvo.hw().allocations_left = Some(limit);
        assert_eq!(s.hvo.demote(f, 11), Err(HvoError::OutOfMemory), "limit {limit}");
        assert!(s.hvo.is_optimized(f));
        s.check_every_tail(f);
        assert_exact(&s, "failed demote");
        s.hvo.hw().judge("failed demote");
    }
    s.hvo.hw().allocations_left = None;
    assert_eq!(s.hvo.demote(f, 11).unwrap().len(), 4);
    assert_exact(&s, "demote");
}

#[test]
fn merge_undoes_demote_optimized_or_plain_and_frees_the_pieces_pages() {
    for granule in Granule::ALL {
        let min = min_optimizable_order(granule);
        for (big, small, optimize) in [(min + 3, min + 1, true), (min + 3, min + 1, false), (min + 1, min - 2, true)] {
            let mut s = setup(granule, 1 << (big + 1));
            let f = s.folio(big, optimize);
            let before = s.hvo.accounting();
            let pieces = s.hvo.demote(f, small).unwrap();
            s.hvo.hw().judge("demote");
            let merged = s.hvo.merge(&pieces, big, 42).unwrap();
            s.hvo.hw().judge("merge");
            assert_eq!(merged, f, "{granule}");
            s.check_every_tail(merged);
            s.hvo.set_owner(merged, 7).unwrap();
            assert_eq!(s.hvo.descriptor(f.pfn).owner, 7);
            let optimized_pieces = optimize && small >= min;
            assert_eq!(s.hvo.is_optimized(merged), optimized_pieces, "{granule} {big}->{small}");
            if optimized_pieces {
                assert_eq!(s.hvo.accounting(), before, "{granule}: back to one page 0 and one shared tail");
            }
            assert_exact(&s, "after merge");
            let stats: Vec<_> = s.hvo.order_stats().iter().filter(|st| st.folios > 0).copied().collect();
            assert_eq!(stats.len(), 1, "{granule}: only the merged folio is counted: {stats:?}");
            s.hvo.release_folio(merged).unwrap();
            assert_exact(&s, "after release");
            let sim = s.hvo.destroy();
            assert_eq!(sim.frames.free_frames(), sim.frames.total_frames());
        }
    }
}

#[test]
fn merge_refuses_pieces_that_are_not_one_whole_block() {
    let granule = Granule::K4;
    let mut s = setup(granule, 1 << 12);
    let f = s.folio(11, true);
    let pieces = s.hvo.demote(f, 9).unwrap();
    s.hvo.optimize(&[]).unwrap();
    let refused = HvoError::BadFolio { pfn: f.pfn, order: 11 };
    assert_eq!(s.hvo.merge(&pieces[..3], 11, 1), Err(refused), "a piece missing");
    let mut shuffled = pieces.clone();
    shuffled.swap(1, 2);
    assert_eq!(s.hvo.merge(&shuffled, 11, 1), Err(refused), "out of order");
    s.hvo.restore(&[pieces[1]]).unwrap();
    assert_eq!(s.hvo.merge(&pieces, 11, 1), Err(refused), "mixed states");
    s.hvo.optimize(&[pieces[1]]).unwrap();
    assert_eq!(s.hvo.merge(&pieces, 11, 1).map(|m| m.order), Ok(11));
    s.hvo.hw().judge("merge");
    assert_exact(&s, "merge");
}

#[test]
fn born_optimized_pools_never_populate_the_full_vmemmap() {
    let granule = Granule::K4;
    let order = 13; // 32 MiB folios: 128 vmemmap pages each
    let zone = PhysRange::from_start_size(ZONE_BASE, 4 << (order + 12)).unwrap();
    let sim = SimVmemmap::new(granule, 1 << 12);
    let mut hvo = Hvo::new_unpopulated(sim, granule, VMEMMAP_BASE, &[Zone { id: 1, range: zone }]);
    let pfn0 = ZONE_BASE >> 12;
    let folios: Vec<Folio> = (0..4).map(|k| hvo.adopt_optimized(pfn0 + (k << order), order, 9).unwrap()).collect();
    hvo.hw().judge("adopt");
    let acc = hvo.accounting();
    assert_eq!((acc.vmemmap_frames, acc.shared_tails, acc.never_populated), (4, 1, 4 * 127));
    let frames = &hvo.hw_ref().frames;
    assert_eq!(frames.total_frames() - frames.free_frames(), 5, "4 private pages and one shared tail, nothing else");
    for &f in &folios {
        assert!(hvo.is_optimized(f));
        for i in 0..(1u64 << order) {
            assert_eq!(hvo.compound_head(f.pfn + i), f.pfn);
        }
    }
    // A pool folio can still be demoted, restored and freed.
    let pieces = hvo.demote(folios[0], 9).unwrap();
    assert_eq!(pieces.len(), 16);
    hvo.restore(&[folios[1]]).unwrap();
    hvo.release_folio(folios[1]).unwrap();
    hvo.hw().judge("pool changes");
    let sim = hvo.destroy();
    assert_eq!(sim.frames.free_frames(), sim.frames.total_frames());
}

#[test]
fn a_large_born_optimized_pool_shares_its_all_tail_tables() {
    let granule = Granule::K4;
    let order = 18; // 1 GiB: 4096 vmemmap pages, 8 last-level tables' worth
    let zone = PhysRange::from_start_size(1 << 32, 4 << 30).unwrap();
    let sim = SimVmemmap::new(granule, 1 << 13);
    let mut hvo = Hvo::new_unpopulated(sim, granule, VMEMMAP_BASE, &[Zone { id: 0, range: zone }]);
    let tables_before = hvo.hw().tables.stats().tables_in_use;
    let pfn0 = (1u64 << 32) >> 12;
    let folios: Vec<Folio> = (0..4).map(|k| hvo.adopt_optimized(pfn0 + (k << order), order, 1).unwrap()).collect();
    hvo.count_table_frames(tables_before);
    hvo.hw().judge("large pool");
    let acc = hvo.accounting();
    // 4 private pages, one shared tail; tables: each folio's first last-level
    // table is private, its other 7 link one shared table.
    assert_eq!((acc.vmemmap_frames, acc.shared_tails), (4, 1));
    assert!(acc.table_frames <= 4 + 1 + 2, "a handful of tables, not 32: {}", acc.table_frames);
    for &f in &folios {
        for i in (0..(1u64 << order)).step_by(97) {
            assert_eq!(hvo.compound_head(f.pfn + i), f.pfn);
        }
    }
    // Restore copies the shared tables it changes; everything is freed at the end.
    hvo.restore(&[folios[2]]).unwrap();
    hvo.hw().judge("restore in a shared range");
    for i in (0..(1u64 << order)).step_by(89) {
        assert_eq!(hvo.compound_head(folios[2].pfn + i), folios[2].pfn);
    }
    let mut sim = hvo.destroy();
    assert_eq!(sim.frames.free_frames(), sim.frames.total_frames());
    assert_eq!(sim.tables.stats().tables_in_use, 1, "every table but the root freed");
    sim.judge("destroyed");
}

#[test]
fn adoption_failing_at_every_allocation_leaves_nothing_behind() {
    let granule = Granule::K4;
    let order = 18;
    let zone = PhysRange::from_start_size(1 << 32, 2 << 30).unwrap();
    let pfn = (1u64 << 32) >> 12;
    // Allocations: the shared tail, page 0 (tables come from the page-table side).
    for limit in 0..2 {
        let mut sim = SimVmemmap::new(granule, 1 << 8);
        sim.allocations_left = Some(limit);
        let mut hvo = Hvo::new_unpopulated(sim, granule, VMEMMAP_BASE, &[Zone { id: 0, range: zone }]);
        assert_eq!(hvo.adopt_optimized(pfn, order, 1), Err(HvoError::OutOfMemory), "limit {limit}");
        hvo.hw().judge("failed adoption");
        assert_eq!(hvo.accounting(), Accounting::default(), "limit {limit}");
        let va = hvo.descriptor_va(pfn);
        assert!(hvo.hw().frame_of(va).is_none(), "nothing mapped");
        let sim = hvo.destroy();
        assert_eq!(sim.frames.free_frames(), sim.frames.total_frames(), "limit {limit}: leaked");
    }
    // Page-table frames running out part-way: the mapping is undone.
    for tables in 0..6 {
        let sim = SimVmemmap::new(granule, 1 << 8);
        let mut hvo = Hvo::new_unpopulated(sim, granule, VMEMMAP_BASE, &[Zone { id: 0, range: zone }]);
        hvo.hw().tables.hw().allocations_left = Some(tables);
        match hvo.adopt_optimized(pfn, order, 1) {
            Ok(f) => {
                assert!(hvo.is_optimized(f));
                break;
            }
            Err(e) => {
                assert!(matches!(e, HvoError::Paging | HvoError::OutOfMemory), "{e:?}");
                hvo.hw().tables.hw().allocations_left = None;
                hvo.hw().judge("failed adoption (tables)");
                let va = hvo.descriptor_va(pfn);
                assert!(hvo.hw().frame_of(va).is_none());
                let sim = hvo.destroy();
                assert_eq!(sim.frames.free_frames(), sim.frames.total_frames(), "tables {tables}: leaked");
            }
        }
    }
}

/// The word form is the `repr(C)` layout, field for field, and round-trips.
#[test]
fn descriptors_round_trip_through_words() {
    let d = PageDescriptor {
        flags: FLAG_HEAD | FLAG_OPTIMIZED,
        compound_info: compound_info(9),
        owner: 0x1234_5678_9abc_def0,
        refcount: 0xdead_beef,
        order: 18,
        zone: 3,
        reserved0: 0xa55a,
        reserved: [1, 2, 3, u64::MAX],
    };
    let w = d.to_words();
    assert_eq!(PageDescriptor::from_words(w), d);
    assert_eq!(w[3], 0xa55a_0312_dead_beef);
    assert_eq!(PageDescriptor::from_words([0; 8]), PageDescriptor::default());
}

/// A restore batch that names a plain folio after an optimized one is
/// refused before anything is allocated: nothing leaks, nothing changes.
#[test]
fn a_restore_batch_mixing_optimized_and_plain_folios_leaks_nothing() {
    for granule in Granule::ALL {
        let min = min_optimizable_order(granule);
        let mut s = setup(granule, 1 << (min + 3));
        let optimized = s.folio(min + 1, true);
        let plain = s.folio(min + 1, false);
        let before = s.hvo.accounting();
        assert_eq!(s.hvo.restore(&[optimized, plain]), Err(HvoError::NotOptimized), "{granule}");
        assert_eq!(s.hvo.accounting(), before, "{granule}");
        assert!(s.hvo.is_optimized(optimized));
        assert_exact(&s, "mixed restore");
        s.hvo.hw().judge("mixed restore");
    }
}
