//! Host tests of the engine on simulated memory: random operation sequences
//! against a reference model, with the descriptor checker and the TLB model
//! judging every step; plus targeted tests of units, errors and the
//! maintenance each operation issues.

use alloc::vec::Vec;

use super::checker;
use super::engine::*;
use super::sim::SimMachine;
use super::{Attributes, MemoryType};
use crate::mm::Granule;

const GIB: u64 = 1 << 30;
const UPPER: u64 = 0xFFFF_0000_0000_0000;

fn table(granule: Granule, half: Half) -> PageTable<SimMachine> {
    let mut t = PageTable::new(SimMachine::new(granule, half == Half::Upper), granule, half, Some(7)).unwrap();
    let root = t.root();
    t.hw().set_root(root);
    t
}

/// Runs the checker and the TLB model; panics with what they found.
fn judge(t: &mut PageTable<SimMachine>, step: &str) {
    let root = t.root();
    let granule = t.granule();
    let sim = t.hw();
    sim.check_quiescent();
    let sim: &SimMachine = sim;
    let violations =
        checker::check(granule, root, sim.upper_half(), &mut |tb, i| sim.read(tb, i), &|pa| sim.is_ram(pa));
    assert!(violations.is_empty(), "{step}: checker: {violations:?}");
    assert!(sim.violations.is_empty(), "{step}: TLB model: {:?}", sim.violations);
    if let Err(e) = t.check_valid_counts() {
        panic!("{step}: valid counts: {e}");
    }
}

/// Maximal extents (va, pa, size, attributes): contiguous in VA and PA with
/// equal attributes merged.
fn normalize(mut extents: Vec<(u64, u64, u64, Attributes)>) -> Vec<(u64, u64, u64, Attributes)> {
    extents.sort_by_key(|e| e.0);
    let mut out: Vec<(u64, u64, u64, Attributes)> = Vec::new();
    for e in extents {
        if let Some(last) = out.last_mut()
            && last.0 as u128 + last.2 as u128 == e.0 as u128
            && last.1 + last.2 == e.1
            && last.3 == e.3
        {
            last.2 += e.2;
            continue;
        }
        out.push(e);
    }
    out
}

/// The reference model: what is mapped, as extents.
#[derive(Default)]
struct Model(Vec<(u64, u64, u64, Attributes)>);

impl Model {
    // Ends are computed in u128: a range may end at the top of the address space.
    fn overlaps(&self, va: u64, size: u64) -> bool {
        self.0.iter().any(|e| (e.0 as u128) < va as u128 + size as u128 && (va as u128) < e.0 as u128 + e.2 as u128)
    }
    fn covers(&self, va: u64, size: u64) -> bool {
        let mut covered = 0u128;
        for e in &self.0 {
            let (s, t) = ((e.0 as u128).max(va as u128), (e.0 as u128 + e.2 as u128).min(va as u128 + size as u128));
            if s < t {
                covered += t - s;
            }
        }
        covered == size as u128
    }
    /// Removes [va, va + size), splitting extents.
    fn cut(&mut self, va: u64, size: u64) -> Vec<(u64, u64, u64, Attributes)> {
        let mut kept = Vec::new();
        let mut removed = Vec::new();
        for e in self.0.drain(..) {
            let end = e.0 as u128 + e.2 as u128;
            let (s, t) = ((e.0 as u128).max(va as u128), end.min(va as u128 + size as u128));
            if s >= t {
                kept.push(e);
                continue;
            }
            let (s64, t_off) = (s as u64, (t - e.0 as u128) as u64);
            if e.0 < s64 {
                kept.push((e.0, e.1, s64 - e.0, e.3));
            }
            if t < end {
                kept.push((t as u64, e.1 + t_off, (end - t) as u64, e.3));
            }
            removed.push((s64, e.1 + (s64 - e.0), (t - s) as u64, e.3));
        }
        self.0 = kept;
        removed
    }
}

fn engine_extents(t: &mut PageTable<SimMachine>, base: u64) -> Vec<(u64, u64, u64, Attributes)> {
    let g = t.granule();
    let span = if base >= UPPER { u64::MAX - base + 1 } else { 1 << 48 };
    normalize(t.mappings(base, span).into_iter().map(|m| (m.va, m.pa, m.unit.size(g), m.attributes)).collect())
}

use crate::testing::Rng;

/// Regions spread over the whole half: the bottom, the 16K L0 boundary at
/// 128 TiB, the 64K L1 boundaries every 4 TiB, and the top.
fn regions(half: Half) -> Vec<u64> {
    let lower = [0, 0x3_FFF8_0000_0000 & ((1 << 48) - 1), 0x7FF8_0000_0000, 0x8000_0000_0000, 0xFFF8_0000_0000];
    lower.iter().map(|&r| if half == Half::Upper { r | UPPER } else { r }).collect()
}

/// Runs one random sequence; returns how many maps, splits and coalesces
/// succeeded.
fn random_sequence(granule: Granule, half: Half, seed: u64, steps: usize) -> (usize, usize, usize) {
    let mut rng = Rng(seed);
    let mut t = table(granule, half);
    let mut model = Model::default();
    let units: Vec<Unit> = Unit::all_largest_first(granule).collect();
    let attrs = if half == Half::Upper {
        [Attributes::KERNEL_RW, Attributes::KERNEL_RO, Attributes::KERNEL_RX, Attributes::DEVICE]
    } else {
        [Attributes::USER_RW, Attributes::USER_RO, Attributes::USER_RX, Attributes::KERNEL_RW]
    };
    let base = if half == Half::Upper { UPPER } else { 0 };
    let region_size = 32 * GIB;
    // (maps, splits, coalesces) that succeeded: the sequence must exercise them.
    let mut done = (0, 0, 0);
    // Units split so far: coalescing them back must work while untouched.
    let mut split_units: Vec<(u64, Unit)> = Vec::new();
    for step in 0..steps {
        let unit = rng.pick(&units);
        let us = unit.size(granule);
        let count = if unit.level == 3 { 1 + rng.below(24) } else { 1 + rng.below(2) };
        let size = (us * count).min(region_size);
        let region = rng.pick(&regions(half));
        let va = region + rng.below((region_size - size) / us + 1) * us;
        let a = rng.pick(&attrs);
        let what;
        match rng.below(6) {
            0 | 1 => {
                let pa = rng.below((1 << 40) / us) * us;
                let policy = if rng.below(2) == 0 { Policy::Largest } else { Policy::Force(unit) };
                what = format!("map {va:#x}+{size:#x} -> {pa:#x} {a} {policy:?}");
                let r = t.map(va, pa, size, a, policy);
                if model.overlaps(va, size) {
                    // The error names the first address already mapped.
                    let first = model
                        .0
                        .iter()
                        .filter(|&&(v, _, s, _)| v <= va + (size - 1) && va <= v + (s - 1))
                        .map(|&(v, ..)| v.max(va));
                    assert_eq!(r, Err(PagingError::AlreadyMapped { va: first.min().unwrap() }), "{what}");
                } else {
                    assert_eq!(r, Ok(()), "{what}");
                    model.0.push((va, pa, size, a));
                    done.0 += 1;
                }
            }
            2 => {
                what = format!("unmap {va:#x}+{size:#x}");
                t.unmap(va, size).unwrap();
                model.cut(va, size);
            }
            3 => {
                what = format!("protect {va:#x}+{size:#x} {a}");
                let r = t.protect(va, size, a);
                if model.covers(va, size) {
                    assert_eq!(r, Ok(()), "{what}");
                    for (v, p, s, _) in model.cut(va, size) {
                        model.0.push((v, p, s, a));
                    }
                } else {
                    assert!(matches!(r, Err(PagingError::NotMapped { .. })), "{what}: {r:?}");
                }
            }
            4 => {
                // Split a mapping, or coalesce it into the next larger unit.
                let maps = t.mappings(base, if half == Half::Upper { u64::MAX - base + 1 } else { 1 << 48 });
                if maps.is_empty() {
                    continue;
                }
                let m = maps[rng.below(maps.len() as u64) as usize];
                let bigger = units.iter().rev().find(|u| u.size(granule) > m.unit.size(granule)).copied();
                if rng.below(2) == 0 || bigger.is_none() {
                    what = format!("split {:#x} ({})", m.va, m.unit);
                    let r = t.split(m.va);
                    if m.unit == Unit::PAGE {
                        assert_eq!(r, Err(PagingError::CannotSplit { va: m.va }), "{what}");
                    } else {
                        assert!(r.is_ok(), "{what}: {r:?}");
                        done.1 += 1;
                        split_units.push((m.va, m.unit));
                    }
                } else {
                    let (start, target) = match split_units.pop() {
                        Some(split) if rng.below(4) != 0 => split,
                        _ => {
                            let target = bigger.unwrap_or(m.unit);
                            (m.va & !(target.size(granule) - 1), target)
                        }
                    };
                    what = format!("coalesce {start:#x} into {target}");
                    done.2 += t.coalesce(start, target).is_ok() as usize;
                }
            }
            _ => {
                let maps = t.mappings(base, if half == Half::Upper { u64::MAX - base + 1 } else { 1 << 48 });
                if maps.is_empty() {
                    continue;
                }
                let m = maps[rng.below(maps.len() as u64) as usize];
                let s = m.unit.size(granule);
                let pa = rng.below((1 << 40) / s) * s;
                what = format!("remap {:#x} ({}) -> {pa:#x}", m.va, m.unit);
                t.remap(&[Remap { va: m.va, pa, attributes: a }]).unwrap();
                model.cut(m.va, s);
                model.0.push((m.va, pa, s, a));
            }
        }
        judge(&mut t, &format!("seed {seed} step {step}: {what}"));
        assert_eq!(engine_extents(&mut t, base), normalize(model.0.clone()), "seed {seed} step {step}: {what}");
    }
    assert!(done.0 >= steps / 8, "seed {seed}: too few maps succeeded: {done:?}");
    // Unmapping everything frees every table but the root.
    let span = if half == Half::Upper { u64::MAX - base + 1 } else { 1 << 48 };
    t.unmap(base, span).unwrap();
    judge(&mut t, "final unmap");
    assert_eq!(t.stats().tables_in_use, 1);
    let sim = t.destroy();
    assert_eq!(sim.live_tables(), 0, "table frames leaked");
    done
}

/// Four seeds per half; the sequences together must have split and coalesced.
fn random_sequences(granule: Granule) {
    let mut total = (0, 0, 0);
    for seed in 1..=4 {
        for (half, salt) in [(Half::Lower, 7919), (Half::Upper, 104_729)] {
            let done = random_sequence(granule, half, seed * salt, 80);
            total = (total.0 + done.0, total.1 + done.1, total.2 + done.2);
        }
    }
    assert!(total.1 > 0 && total.2 > 0, "{granule}: splits and coalesces never succeeded: {total:?}");
}

#[test]
fn random_sequences_match_the_model_4k() {
    random_sequences(Granule::K4);
}

#[test]
fn random_sequences_match_the_model_16k() {
    random_sequences(Granule::K16);
}

#[test]
fn random_sequences_match_the_model_64k() {
    random_sequences(Granule::K64);
}

#[test]
fn largest_units_are_chosen_where_aligned() {
    // 4K: 1 GiB + 32 MiB + 2 MiB + 64 KiB + 4 KiB, all aligned.
    let mut t = table(Granule::K4, Half::Lower);
    let size = GIB + (32 << 20) + (2 << 20) + (64 << 10) + 4096;
    t.map(GIB, 0x80_0000_0000, size, Attributes::USER_RW, Policy::Largest).unwrap();
    let units: Vec<Unit> = t.mappings(0, 1 << 48).iter().map(|m| m.unit).collect();
    assert_eq!(
        units,
        [
            Unit { level: 1, contiguous: false },
            Unit { level: 2, contiguous: true },
            Unit { level: 2, contiguous: false },
            Unit { level: 3, contiguous: true },
            Unit { level: 3, contiguous: false },
        ]
    );
    judge(&mut t, "largest");
    // Misaligned physical address: pages only.
    let mut t = table(Granule::K64, Half::Lower);
    t.map(0x2000_0000, 0x1_0001_0000, 1 << 21, Attributes::USER_RO, Policy::Largest).unwrap();
    assert!(t.mappings(0, 1 << 48).iter().all(|m| m.unit == Unit::PAGE));
    judge(&mut t, "misaligned pa");
}

#[test]
fn bad_requests_are_typed_errors_and_change_nothing() {
    let mut t = table(Granule::K16, Half::Lower);
    let rwx = Attributes { user_exec: true, ..Attributes::USER_RW };
    assert_eq!(t.map(0, 0, 0x4000, rwx, Policy::Largest), Err(PagingError::ForbiddenAttributes));
    assert_eq!(
        t.map(0x1000, 0, 0x4000, Attributes::USER_RW, Policy::Largest),
        Err(PagingError::Misaligned { value: 0x1000 })
    );
    assert_eq!(
        t.map(UPPER, 0, 0x4000, Attributes::USER_RW, Policy::Largest),
        Err(PagingError::OutOfRange { address: UPPER })
    );
    let l1_block = Unit { level: 1, contiguous: false };
    assert_eq!(
        t.map(0, 0, GIB, Attributes::USER_RW, Policy::Force(l1_block)),
        Err(PagingError::UnsupportedUnit(l1_block))
    );
    t.map(0x100_0000, 0x100_0000, 0x8000, Attributes::USER_RW, Policy::Largest).unwrap();
    assert_eq!(
        t.map(0xFF_C000, 0, 0x8000, Attributes::USER_RW, Policy::Largest),
        Err(PagingError::AlreadyMapped { va: 0x100_0000 })
    );
    assert_eq!(t.protect(0x100_0000, 0xC000, Attributes::USER_RO), Err(PagingError::NotMapped { va: 0x100_8000 }));
    assert_eq!(t.split(0x100_0000), Err(PagingError::CannotSplit { va: 0x100_0000 }));
    assert_eq!(
        t.remap(&[Remap { va: 0x200_0000, pa: 0, attributes: Attributes::USER_RW }]),
        Err(PagingError::NotMapped { va: 0x200_0000 })
    );
    judge(&mut t, "errors");
    assert_eq!(t.mappings(0, 1 << 48).len(), 2);
}

#[test]
fn allocation_failure_at_every_point_leaves_nothing_behind() {
    for granule in Granule::ALL {
        let size = granule.level_size(2) * 3 + granule.size() * 5;
        let mut succeeded = false;
        for limit in 0..16 {
            let mut t = table(granule, Half::Upper);
            t.hw().allocations_left = Some(limit);
            // Straddles an L1 boundary (and, on 16K, the L0 one) to need many tables.
            let va = UPPER | 0x7FFF_FFE0_0000_0000 & ((1 << 48) - 1) & !(granule.level_size(2) - 1);
            let r = t.map(va, 0x4000_0000, size, Attributes::KERNEL_RW, Policy::Largest);
            judge(&mut t, &format!("{granule} limit {limit}"));
            match r {
                Ok(()) => {
                    succeeded = true;
                    break;
                }
                Err(e) => {
                    assert_eq!(e, PagingError::OutOfTableFrames);
                    assert!(t.mappings(UPPER, u64::MAX - UPPER + 1).is_empty(), "{granule} limit {limit}: left mapped");
                    assert_eq!(t.stats().tables_in_use, 1, "{granule} limit {limit}: tables leaked");
                    assert_eq!(t.hw().live_tables(), 1);
                }
            }
        }
        assert!(succeeded, "{granule}: never succeeded");
    }
}

#[test]
fn split_and_coalesce_keep_the_translation() {
    for granule in Granule::ALL {
        let mut t = table(granule, Half::Lower);
        let run = Unit { level: 2, contiguous: true };
        let size = run.size(granule);
        let pa = size * 3;
        t.map(size, pa, size, Attributes::USER_RW, Policy::Force(run)).unwrap();
        let probe = size + granule.level_size(2) + 5 * granule.size();
        let before = t.translate(probe).map(|m| m.pa + (probe - m.va));
        // contiguous L2 run -> L2 blocks -> contiguous L3 runs -> pages, and back.
        let chain = [Unit { level: 2, contiguous: false }, Unit { level: 3, contiguous: true }, Unit::PAGE];
        for expect in chain {
            assert_eq!(t.split(probe), Ok(expect));
            judge(&mut t, "split");
            assert_eq!(t.translate(probe).map(|m| m.pa + (probe - m.va)), before);
            assert_eq!(t.translate(probe).map(|m| m.unit), Some(expect));
        }
        let l3_run = Unit { level: 3, contiguous: true };
        let run_base = probe & !(l3_run.size(granule) - 1);
        t.coalesce(run_base, l3_run).unwrap();
        judge(&mut t, "coalesce run");
        let block = Unit { level: 2, contiguous: false };
        let block_base = probe & !(block.size(granule) - 1);
        // The rest of the block is still contiguous runs: coalesce to a block.
        t.coalesce(block_base, block).unwrap();
        judge(&mut t, "coalesce block");
        t.coalesce(size, run).unwrap();
        judge(&mut t, "coalesce L2 run");
        assert_eq!(t.translate(probe).map(|m| (m.unit, m.pa + (probe - m.va))), Some((run, before.unwrap())));
        assert_eq!(
            t.stats().tables_in_use,
            3 - (granule == Granule::K64) as u64,
            "{granule}: the emptied L3 table was freed"
        );
    }
}

/// Unmapping from a contiguous run's first entry to its middle, from its
/// middle to its end, its middle alone, the whole run, and the run with its
/// neighbours: what lies outside the range stays mapped where it was, and
/// the checker and the TLB model find nothing, on every granule, for runs
/// of pages and of blocks.
#[test]
fn unmapping_part_of_a_contiguous_run_keeps_the_rest() {
    for granule in Granule::ALL {
        for level in [2u8, 3] {
            let run = Unit { level, contiguous: true };
            let (size, entry) = (run.size(granule), granule.level_size(level));
            // Three runs side by side; the middle one is cut.
            let (va, pa) = (4 * size, 16 * size);
            let cuts = [
                (va + size, 2 * entry),
                (va + 2 * size - 3 * entry, 3 * entry),
                (va + size + entry, entry),
                (va + size, size),
                (va + size - entry, size + 2 * entry),
            ];
            for (start, length) in cuts {
                let mut t = table(granule, Half::Lower);
                t.map(va, pa, 3 * size, Attributes::USER_RW, Policy::Force(run)).unwrap();
                t.unmap(start, length).unwrap();
                let what = format!("{granule} L{level} run: unmap {start:#x}+{length:#x}");
                judge(&mut t, &what);
                for probe in (va..va + 3 * size).step_by(entry as usize) {
                    let inside = probe >= start && probe < start + length;
                    let got = t.translate(probe).map(|m| m.pa + (probe - m.va));
                    assert_eq!(got, (!inside).then_some(pa + (probe - va)), "{what}: at {probe:#x}");
                }
            }
        }
    }
}

#[test]
fn coalesce_refuses_what_is_not_uniform() {
    let mut t = table(Granule::K4, Half::Lower);
    t.map(0, 0x20_0000, 0x10000, Attributes::USER_RW, Policy::Force(Unit::PAGE)).unwrap();
    t.protect(0x3000, 0x1000, Attributes::USER_RO).unwrap();
    let run = Unit { level: 3, contiguous: true };
    assert_eq!(t.coalesce(0, run), Err(PagingError::NotUniform { va: 0x3000 }));
    t.protect(0x3000, 0x1000, Attributes::USER_RW).unwrap();
    t.coalesce(0, run).unwrap();
    judge(&mut t, "coalesce");
}

#[test]
fn maintenance_is_one_invalidation_per_unit_and_one_sync_per_batch() {
    let mut t = table(Granule::K4, Half::Upper);
    let block = UPPER + 4 * GIB;
    t.map(block, 0x4000_0000, 2 << 20, Attributes::KERNEL_RW, Policy::Largest).unwrap();
    let s0 = t.stats();
    t.unmap(block, 2 << 20).unwrap();
    let s1 = t.stats();
    // One block: one by-VA invalidation of all levels, which also covers the
    // walk-cache entries of the tables emptied with it.
    assert_eq!(s1.tlbi - s0.tlbi, 1, "{s0:?} -> {s1:?}");
    assert_eq!(t.hw().tlbis.last(), Some(&Tlbi::Va { va: block, asid: None, leaf_only: false }));
    judge(&mut t, "block unmap");

    // A contiguous run of 16 pages: one invalidation per descriptor.
    let mut t = table(Granule::K4, Half::Lower);
    t.map(0x10_0000, 0x4000_0000, 64 << 10, Attributes::USER_RW, Policy::Largest).unwrap();
    let s0 = t.stats();
    t.protect(0x10_0000, 64 << 10, Attributes::USER_RO).unwrap();
    assert_eq!(t.stats().tlbi - s0.tlbi, 16);
    assert!(t.hw().tlbis.iter().all(|op| matches!(op, Tlbi::Va { asid: Some(7), .. })));

    // 1 GiB of pages: above the threshold, one ASID-wide invalidation.
    let mut t = table(Granule::K4, Half::Lower);
    t.map(GIB, 0x4000_0000, GIB, Attributes::USER_RW, Policy::Force(Unit::PAGE)).unwrap();
    let s0 = t.stats();
    t.unmap(GIB, GIB).unwrap();
    assert_eq!(t.stats().tlbi - s0.tlbi, 1);
    assert_eq!(t.hw().tlbis.last(), Some(&Tlbi::Asid(7)));
    judge(&mut t, "1 GiB unmap");
    assert_eq!(t.stats().tables_in_use, 1);

    // A batch of 64 remaps: 64 invalidations, three barriers in all.
    let mut t = table(Granule::K4, Half::Upper);
    t.map(UPPER, 0x4000_0000, 64 * 4096, Attributes::KERNEL_RW, Policy::Force(Unit::PAGE)).unwrap();
    let s0 = t.stats();
    let batch: Vec<Remap> =
        (0..64).map(|i| Remap { va: UPPER + i * 4096, pa: 0x9000_0000, attributes: Attributes::KERNEL_RO }).collect();
    t.remap(&batch).unwrap();
    let s1 = t.stats();
    assert_eq!((s1.tlbi - s0.tlbi, s1.dsb - s0.dsb, s1.isb - s0.isb), (64, 3, 1));
    judge(&mut t, "batch");
}

#[test]
fn tlbi_operand_masks_the_upper_half_sign_bits() {
    // VA[55:12] in bits [43:0]: the upper half's ones in VA[55:48] stay.
    assert_eq!(Tlbi::operand(0xFFFF_8000_1234_5000, Some(5)), (5 << 48) | 0xFF8_0001_2345);
    assert_eq!(Tlbi::operand(0x0000_0000_0040_0000, None), 0x400);
    // Upper-half bits 63:56 never reach the TTL field (bits 47:44).
    assert_eq!(Tlbi::operand(!0xfff, None) >> 44, 0);
}

#[test]
fn device_memory_is_never_contiguous_with_normal() {
    let mut t = table(Granule::K4, Half::Upper);
    t.map(UPPER, 0x900_0000, 0x10000, Attributes::DEVICE, Policy::Largest).unwrap();
    let m = t.translate(UPPER).unwrap();
    assert_eq!(m.attributes.memory, MemoryType::Device);
    assert_eq!(m.unit, Unit { level: 3, contiguous: true });
    judge(&mut t, "device");
}

/// The TLB model must catch an engine that skips break-before-make; this
/// is the test of the test.
#[test]
fn the_tlb_model_catches_a_live_change_without_break_before_make() {
    let mut t = table(Granule::K4, Half::Lower);
    t.map(0x20_0000, 0x4000_0000, 4096, Attributes::USER_RW, Policy::Largest).unwrap();
    // Find the descriptor and change its output address in place.
    let sim = t.hw();
    let (leaf_table, index) = sim.leaf_table_for_tests().unwrap();
    let old = sim.read(leaf_table, index);
    sim.write_entry(leaf_table, index, (old & !0xFFFF_FFFF_F000) | 0x5000_0000);
    assert!(sim.violations.iter().any(|v| v.contains("break-before-make missing")), "{:?}", sim.violations);

    // And a missing invalidation after an unmap-like clear.
    let mut t = table(Granule::K4, Half::Lower);
    t.map(0x20_0000, 0x4000_0000, 4096, Attributes::USER_RW, Policy::Largest).unwrap();
    let sim = t.hw();
    let (leaf_table, index) = sim.leaf_table_for_tests().unwrap();
    sim.write_entry(leaf_table, index, 0);
    sim.barrier(Barrier::DsbIsh);
    sim.check_quiescent();
    assert!(sim.violations.iter().any(|v| v.contains("stale TLB entry")), "{:?}", sim.violations);
}

#[test]
fn shared_last_level_tables_are_linked_copied_on_change_and_freed_with_their_last_link() {
    for granule in Granule::ALL {
        let mut t = table(granule, Half::Upper);
        let span = granule.level_size(2);
        let page = granule.size();
        let base = UPPER + 64 * span;
        assert_eq!(t.link_shared(base, 0x7000_0000, Attributes::KERNEL_RW), Err(PagingError::ForbiddenAttributes));
        assert!(matches!(
            t.link_shared(base + page, 0x7000_0000, Attributes::KERNEL_RO),
            Err(PagingError::Misaligned { .. })
        ));
        assert_eq!(t.shared_tables(), 0, "{granule}: nothing made by a refused link");
        for k in 0..4 {
            t.link_shared(base + k * span, 0x7000_0000, Attributes::KERNEL_RO).unwrap();
        }
        assert_eq!(t.shared_tables(), 1, "{granule}: one table for one page and attributes");
        judge(&mut t, "linked");
        let tables_linked = t.stats().tables_in_use;
        for k in 0..4 {
            let m = t.translate(base + k * span + 5 * page).unwrap();
            assert_eq!((m.pa, m.attributes), (0x7000_0000, Attributes::KERNEL_RO), "{granule}");
        }
        assert!(matches!(
            t.map(base + span, 0, page, Attributes::KERNEL_RW, Policy::Largest),
            Err(PagingError::AlreadyMapped { .. })
        ));
        assert!(matches!(
            t.link_shared(base, 0x7000_0000, Attributes::KERNEL_RO),
            Err(PagingError::AlreadyMapped { .. })
        ));
        // Unmapping slot 0 whole and half of slot 1: slot 1 gets a private copy.
        t.unmap(base, span + span / 2).unwrap();
        judge(&mut t, "unmap across");
        assert!(t.translate(base + span / 2).is_none() && t.translate(base + span + span / 4).is_none());
        assert_eq!(t.translate(base + span + span / 2 + page).map(|m| m.pa), Some(0x7000_0000));
        // A remap inside slot 2 copies that table; slot 3 still shares.
        t.remap(&[Remap { va: base + 2 * span + page, pa: 0x7100_0000, attributes: Attributes::KERNEL_RO }]).unwrap();
        judge(&mut t, "remap inside");
        assert_eq!(t.translate(base + 2 * span + page).map(|m| m.pa), Some(0x7100_0000));
        assert_eq!(t.translate(base + 3 * span + page).map(|m| m.pa), Some(0x7000_0000));
        assert_eq!(t.stats().tables_in_use, tables_linked + 2, "{granule}: private copies for slots 1 and 2");
        assert_eq!(t.shared_tables(), 1, "{granule}: slot 3 still links it");
        // The last link goes: the shared table is freed with it, after the
        // invalidation (the TLB model judges the order).
        t.unmap(base + 3 * span, span).unwrap();
        judge(&mut t, "last link");
        assert_eq!(t.shared_tables(), 0, "{granule}");
        t.unmap(base, 4 * span).unwrap();
        judge(&mut t, "unmap all");
        assert_eq!(t.stats().tables_in_use, 1, "{granule}");
        let sim = t.destroy();
        assert_eq!(sim.live_tables(), 0);
    }
}

#[test]
fn a_tree_destroyed_with_shared_tables_linked_frees_them() {
    for granule in Granule::ALL {
        let mut t = table(granule, Half::Lower);
        let span = granule.level_size(2);
        for k in 0..3 {
            t.link_shared(16 * span + k * span, 0x7000_0000, Attributes::USER_RO).unwrap();
        }
        t.link_shared(32 * span, 0x7200_0000, Attributes::USER_RO).unwrap();
        assert_eq!(t.shared_tables(), 2);
        let sim = t.destroy();
        assert_eq!(sim.live_tables(), 0, "{granule}");
    }
}

/// A dead task's tree is emptied in place: every table but the root goes
/// (shared ones too), the root maps nothing, and destroying it later frees
/// just the root.
#[test]
fn an_emptied_tree_keeps_only_its_root() {
    for granule in Granule::ALL {
        let mut t = table(granule, Half::Lower);
        let (page, span) = (granule.size(), granule.level_size(2));
        t.map(0x40_0000, 0x8000_0000, 16 * page, Attributes::USER_RW, Policy::Force(Unit::PAGE)).unwrap();
        t.map(0x7f_0000_0000 - 4 * page, 0x9000_0000, 4 * page, Attributes::USER_RW, Policy::Force(Unit::PAGE))
            .unwrap();
        t.link_shared(16 * span, 0x7000_0000, Attributes::USER_RO).unwrap();
        assert!(t.stats().tables_in_use > 2, "{granule}");
        t.empty();
        assert_eq!(t.stats().tables_in_use, 1, "{granule}");
        assert_eq!(t.shared_tables(), 0, "{granule}");
        assert_eq!(t.translate(0x40_0000), None, "{granule}");
        assert_eq!(t.translate(16 * span), None, "{granule}");
        let sim = t.destroy();
        assert_eq!(sim.live_tables(), 0, "{granule}");
    }
}

/// Whether a table is left empty is known from its count, not by reading
/// its other entries: unmapping a page next to others, the last page of a
/// table, and a whole task's tree read a handful of descriptors per level,
/// `unmap_keeping_tables` leaves the tables a range emptied in the tree, at
/// most `keep` of them (past that, the range's are freed as `unmap` frees
/// them), and the next map in a kept table's region makes no table; the
/// checker, the counts and the TLB model judge every step.
#[test]
fn unmapping_keeps_at_most_the_asked_empty_tables_and_maps_reuse_them() {
    for granule in Granule::ALL {
        let page = granule.size();
        let span = granule.level_size(2);
        let mut t = table(granule, Half::Lower);
        // A page in each of four last-level tables, under one level-2 table.
        let vas: Vec<u64> = (0..4).map(|i| 4 * span + i * span).collect();
        for (i, &va) in vas.iter().enumerate() {
            let pa = 0x8000_0000 + i as u64 * page;
            t.map(va, pa, page, Attributes::USER_RW, Policy::Force(Unit::PAGE)).unwrap();
        }
        let in_use = t.stats().tables_in_use;
        for (i, &va) in vas.iter().enumerate() {
            t.unmap_keeping_tables(va, page, 2).unwrap();
            judge(&mut t, &format!("{granule}: unmap {i} keeping 2"));
            assert!(t.translate(va).is_none());
            assert_eq!(t.empty_tables(), (i + 1).min(2), "{granule}: after unmap {i}");
        }
        assert_eq!(t.stats().tables_in_use, in_use - 2, "{granule}: the two past the bound are freed");
        // Into a kept table: nothing made.
        t.map(vas[0], 0x8000_0000, page, Attributes::USER_RW, Policy::Force(Unit::PAGE)).unwrap();
        judge(&mut t, &format!("{granule}: map into a kept table"));
        assert_eq!((t.stats().tables_in_use, t.empty_tables()), (in_use - 2, 1), "{granule}");
        // Keeping none frees this range's; the other kept one stays.
        t.unmap_keeping_tables(vas[0], page, 0).unwrap();
        judge(&mut t, &format!("{granule}: unmap keeping none"));
        assert_eq!(t.empty_tables(), 1, "{granule}");
        // A block where a kept table hangs: the table goes first (break-
        // before-make), none is leaked.
        let block = Unit::all_largest_first(granule).find(|u| u.level == 2 && !u.contiguous).unwrap();
        let before = t.stats().tables_in_use;
        t.map(vas[1], 0x8000_0000 + span, span, Attributes::USER_RW, Policy::Force(block)).unwrap();
        judge(&mut t, &format!("{granule}: a block over a kept table"));
        assert_eq!((t.stats().tables_in_use, t.empty_tables()), (before - 1, 0), "{granule}");
        t.unmap_keeping_tables(vas[1], span, 8).unwrap();
        judge(&mut t, &format!("{granule}: the block unmapped"));
        // A plain unmap over a kept table frees it and what it leaves empty.
        t.unmap(vas[1], span).unwrap();
        judge(&mut t, &format!("{granule}: plain unmap over a kept table"));
        assert_eq!((t.stats().tables_in_use, t.empty_tables()), (1, 0), "{granule}");
    }
}

/// A new tree's change buffers have room for a small change; a small
/// change's buffers are kept for the next, always empty; a large change's
/// are not kept.
#[test]
fn change_buffers_are_kept_empty_and_small() {
    for granule in Granule::ALL {
        let page = granule.size();
        let mut t = table(granule, Half::Lower);
        let made = t.scratch_kept();
        assert!(made.iter().all(|&(room, len)| room > 0 && len == 0), "{granule}: a new tree's buffers: {made:?}");
        let va = 3 * granule.level_size(2);
        t.map(va, 0x8000_0000, 2 * page, Attributes::USER_RW, Policy::Force(Unit::PAGE)).unwrap();
        t.unmap(va, page).unwrap();
        let kept = t.scratch_kept();
        assert!(kept.iter().all(|&(_, len)| len == 0), "{granule}: {kept:?}");
        assert!(kept[0].0 > 0 && kept[1].0 > 0, "{granule}: a small change's buffers are kept: {kept:?}");
        t.unmap(va + page, page).unwrap();
        // 200 pages, one slot write each: more than a buffer keeps room for.
        t.map(va, 0x8000_0000, 200 * page, Attributes::USER_RW, Policy::Force(Unit::PAGE)).unwrap();
        t.protect(va, 200 * page, Attributes::USER_RO).unwrap();
        t.unmap(va, 200 * page).unwrap();
        judge(&mut t, &format!("{granule}"));
        let kept = t.scratch_kept();
        assert!(kept.iter().all(|&(room, len)| len == 0 && room <= 128), "{granule}: {kept:?}");
    }
}

/// wherever in its table the page lies, on every granule (a 64K last-level
/// table has 8,192 entries).
#[test]
fn unmapping_reads_no_more_descriptors_than_the_walk_and_the_unmapped_slots() {
    for granule in Granule::ALL {
        let page = granule.size();
        let table_span = granule.level_size(2);
        for slot in [0, 2, granule.entries(3) as u64 - 2] {
            let mut t = table(granule, Half::Lower);
            let va = 3 * table_span + slot * page;
            t.map(va, 0x8000_0000, 2 * page, Attributes::USER_RW, Policy::Force(Unit::PAGE)).unwrap();
            for (at, what) in [(va, "a page beside another"), (va + page, "the last page of its table")] {
                t.hw().reads = 0;
                t.unmap(at, page).unwrap();
                let reads = t.hw().reads;
                judge(&mut t, &format!("{granule} slot {slot}: {what}"));
                assert!(reads <= 40, "{granule} slot {slot}: unmapping {what} read {reads} descriptors");
            }
            assert_eq!(t.stats().tables_in_use, 1, "{granule}: the emptied tables are freed");
            t.map(va, 0x8000_0000, 2 * page, Attributes::USER_RW, Policy::Force(Unit::PAGE)).unwrap();
            t.hw().reads = 0;
            t.empty();
            let reads = t.hw().reads;
            assert!(reads <= 16, "{granule} slot {slot}: emptying the tree read {reads} descriptors");
            // (No TLB judgement: a tree is emptied only once no walker uses it.)
            assert_eq!(t.stats().tables_in_use, 1, "{granule}");
            t.check_valid_counts().unwrap();
        }
    }
}

/// An unmap over pages with holes between them (a table that keeps other
/// mappings, or is kept empty) breaks and invalidates each page: the
/// invalidations of consecutive clears are listed a stretch at a time, and
/// a hole ends a stretch. Every granule; the TLB model finds a stale entry
/// if one page is left out.
#[test]
fn unmapping_pages_with_holes_invalidates_each() {
    for granule in Granule::ALL {
        for keep in [false, true] {
            let mut t = table(granule, Half::Lower);
            let p = granule.size();
            let va = 64 * granule.level_size(2);
            for (k, pa) in
                [(0, 0x8000_0000u64), (1, 0x8800_0000), (2, 0x9000_0000), (5, 0xa000_0000), (10, 0xb000_0000)]
            {
                t.map(va + k * p, pa, p, Attributes::USER_RW, Policy::Largest).unwrap();
            }
            judge(&mut t, "mapped");
            if keep {
                t.unmap_keeping_tables(va, 8 * p, 8).unwrap();
            } else {
                t.unmap(va, 8 * p).unwrap();
            }
            judge(&mut t, &format!("{granule}: pages with holes unmapped (keeping tables: {keep})"));
            assert_eq!(t.translate(va + 10 * p).map(|m| m.pa), Some(0xb000_0000));
            assert!(t.first_mapped(va, va + (8 * p - 1)).is_none());
        }
    }
}
