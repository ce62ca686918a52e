//! A simulated machine for host tests of the page-table engine: table
//! memory, a frame allocator that can be told to fail, and a model of the
//! TLB and walk cache that flags architecturally wrong sequences.
//!
//! The TLB model is pessimistic, as hardware may be: any valid leaf may be
//! cached the moment it is written (per descriptor, and per contiguous run),
//! and stays cached until a TLB invalidation covering it completes (at the
//! next `dsb ish`). It reports:
//! - a valid leaf written where a cached translation of a different output,
//!   attributes or size is still live (break-before-make missing or
//!   incomplete);
//! - a table linked over a cached block, or a table pointer changed live;
//! - a table linked before its contents were published with `dsb ishst`;
//! - a table frame freed while the walk cache may still point at it;
//! - after an operation returns, any cached entry that disagrees with the
//!   tables (a missing invalidation).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::engine::{Barrier, PageTableHw, Tlbi};
use crate::mm::Granule;

pub const RAM_BASE: u64 = 0x4000_0000;

#[derive(Clone, Copy, Debug)]
struct Cached {
    va: u64,
    size: u64,
    pa: u64,
    attrs: u64,
    global: bool,
}

#[derive(Clone, Copy, Debug)]
struct WalkCached {
    va: u64,
    size: u64,
    table: u64,
}

pub struct SimMachine {
    granule: Granule,
    upper: bool,
    tables: BTreeMap<u64, Vec<u64>>,
    free_frames: Vec<u64>,
    next_frame: u64,
    /// Allocations that will still succeed; `None`: unlimited.
    pub allocations_left: Option<usize>,
    /// Where each reachable table sits: (VA base, level).
    placed: HashMap<u64, (u64, u8)>,
    root: Option<u64>,
    /// Cached leaf translations by (size, VA, attributes): entries are
    /// naturally aligned, and an old and a new permission may coexist.
    tlb: BTreeMap<(u64, u64, u64), Cached>,
    sizes: std::collections::BTreeSet<u64>,
    walk_cache: Vec<WalkCached>,
    pending: Vec<Tlbi>,
    unpublished: HashSet<u64>,
    pub violations: Vec<String>,
    pub barriers: Vec<Barrier>,
    pub tlbis: Vec<Tlbi>,
    /// Descriptors the engine read through [`PageTableHw::read_entry`].
    pub reads: u64,
}

impl SimMachine {
    pub fn new(granule: Granule, upper: bool) -> SimMachine {
        SimMachine {
            granule,
            upper,
            tables: BTreeMap::new(),
            free_frames: Vec::new(),
            next_frame: RAM_BASE,
            allocations_left: None,
            placed: HashMap::new(),
            root: None,
            tlb: BTreeMap::new(),
            sizes: Default::default(),
            walk_cache: Vec::new(),
            pending: Vec::new(),
            unpublished: HashSet::new(),
            violations: Vec::new(),
            barriers: Vec::new(),
            tlbis: Vec::new(),
            reads: 0,
        }
    }

    /// Table frames currently allocated.
    pub fn live_tables(&self) -> usize {
        self.tables.len()
    }

    pub fn is_ram(&self, pa: u64) -> bool {
        (RAM_BASE..self.next_frame).contains(&pa)
    }

    pub fn read(&self, table: u64, index: usize) -> u64 {
        self.tables.get(&table).map_or(0, |t| t[index])
    }

    fn va_base(&self) -> u64 {
        if self.upper { !((1u64 << 48) - 1) } else { 0 }
    }

    fn oa_mask(&self, level: u8) -> u64 {
        ((1u64 << 48) - 1) & !(self.granule.level_size(level) - 1)
    }

    fn is_leaf(d: u64, level: u8) -> bool {
        d & 1 == 1 && (level == 3 || d & 2 == 0)
    }

    fn run_len(&self, level: u8, d: u64) -> usize {
        if d & (1 << 52) != 0 { self.granule.contiguous_entries(level).unwrap_or(1) } else { 1 }
    }

    /// The leaf translations a cached descriptor may produce.
    fn fills(&self, slot_va: u64, level: u8, index: usize, d: u64) -> Vec<Cached> {
        let size = self.granule.level_size(level);
        let pa = d & self.oa_mask(level);
        let attrs = d & !self.oa_mask(level);
        let global = d & (1 << 11) == 0;
        let mut out = vec![Cached { va: slot_va, size, pa, attrs, global }];
        let n = self.run_len(level, d);
        if n > 1 {
            let k = (index % n) as u64;
            out.push(Cached {
                va: slot_va - k * size,
                size: size * n as u64,
                pa: pa.wrapping_sub(k * size),
                attrs,
                global,
            });
        }
        out
    }

    /// Whether two cached translations agree wherever they overlap.
    fn agree(a: &Cached, b: &Cached) -> bool {
        a.attrs == b.attrs && a.pa.wrapping_sub(a.va) == b.pa.wrapping_sub(b.va)
    }

    /// Cached entries overlapping [va, va + size).
    fn cached_overlapping(&self, va: u64, size: u64) -> Vec<Cached> {
        let last = va + (size - 1);
        let mut out = Vec::new();
        for &class in &self.sizes {
            let lo = va & !(class - 1);
            out.extend(self.tlb.range((class, lo, 0)..=(class, last, u64::MAX)).map(|(_, c)| *c));
        }
        out
    }

    /// A write of leaf `d` makes it cacheable at once: check it against what
    /// may already be cached, then cache it.
    fn fill(&mut self, slot_va: u64, level: u8, index: usize, d: u64) {
        const CONT: u64 = 1 << 52;
        // Permissions (AP[2:1], PXN, UXN) and nG may change on a live entry.
        const MAY_DIFFER: u64 = (3 << 6) | (1 << 53) | (1 << 54) | (1 << 11);
        for new in self.fills(slot_va, level, index, d) {
            for old in self.cached_overlapping(new.va, new.size) {
                let relaxed = |c: &Cached| Cached { attrs: c.attrs & !MAY_DIFFER, ..*c };
                let compatible = Self::agree(&relaxed(&old), &relaxed(&new));
                let identical = compatible && old.size == new.size && old.va == new.va;
                let same_run = compatible && old.attrs & CONT != 0 && new.attrs & CONT != 0;
                if !identical && !same_run {
                    self.violations.push(format!(
                        "break-before-make missing: leaf for {:#x} (level {level}, size {:#x}, pa {:#x}) written while an entry for {:#x} (size {:#x}, pa {:#x}) may be cached",
                        new.va, new.size, new.pa, old.va, old.size, old.pa
                    ));
                }
            }
            self.sizes.insert(new.size);
            self.tlb.insert((new.size, new.va, new.attrs), new);
        }
    }

    /// Makes the table at `table` (now linked at `va`, `level`) reachable:
    /// everything valid in it may be cached from now on.
    fn place(&mut self, table: u64, va: u64, level: u8) {
        if self.unpublished.contains(&table) {
            self.violations
                .push(format!("table {table:#x} linked at {va:#x} before its contents were published (dsb ishst)"));
        }
        self.placed.insert(table, (va, level));
        let size = self.granule.level_size(level);
        for index in 0..self.granule.entries(level) {
            let d = self.read(table, index);
            let slot_va = va + index as u64 * size;
            if Self::is_leaf(d, level) {
                self.fill(slot_va, level, index, d);
            } else if d & 3 == 3 && level < 3 {
                let next = d & ((1u64 << 48) - 1) & !(self.granule.size() - 1);
                self.walk_cache.push(WalkCached { va: slot_va, size, table: next });
                self.place(next, slot_va, level + 1);
            }
        }
    }

    fn complete_invalidations(&mut self) {
        for op in std::mem::take(&mut self.pending) {
            match op {
                Tlbi::Va { va, leaf_only, .. } => {
                    let va = va & !0xfff;
                    for &class in &self.sizes {
                        let at = va & !(class - 1);
                        let keys: Vec<_> =
                            self.tlb.range((class, at, 0)..=(class, at, u64::MAX)).map(|(k, _)| *k).collect();
                        for k in keys {
                            self.tlb.remove(&k);
                        }
                    }
                    if !leaf_only {
                        self.walk_cache.retain(|w| !(w.va <= va && va <= w.va + (w.size - 1)));
                    }
                }
                Tlbi::Asid(_) => {
                    self.tlb.retain(|_, c| c.global);
                    self.walk_cache.clear();
                }
                Tlbi::All => {
                    self.tlb.clear();
                    self.walk_cache.clear();
                }
            }
        }
    }

    /// What a hardware walk of `va` finds: (leaf VA base, level, index, descriptor).
    fn walk(&self, va: u64) -> Option<(u64, u8, usize, u64)> {
        let mut table = self.root?;
        let mut base = self.va_base();
        for level in self.granule.start_level()..=3 {
            let size = self.granule.level_size(level);
            let index = (((va - base) / size) as usize) % self.granule.entries(level);
            let d = self.read(table, index);
            let slot_va = base + index as u64 * size;
            if d & 1 == 0 {
                return None;
            }
            if Self::is_leaf(d, level) {
                return Some((slot_va, level, index, d));
            }
            table = d & ((1u64 << 48) - 1) & !(self.granule.size() - 1);
            base = slot_va;
        }
        None
    }

    /// After an operation returned: every cached entry must agree with the
    /// tables, and every cached table pointer must still be in use.
    pub fn check_quiescent(&mut self) {
        let cached: Vec<Cached> = self.tlb.values().copied().collect();
        for c in cached {
            let ok = self.walk(c.va).is_some_and(|(slot_va, level, index, d)| {
                self.fills(slot_va, level, index, d)
                    .iter()
                    .any(|f| Self::agree(f, &c) && f.size == c.size && f.va == c.va)
            });
            if !ok {
                self.violations.push(format!(
                    "stale TLB entry for {:#x} (size {:#x}) after the operation: missing invalidation",
                    c.va, c.size
                ));
            }
        }
        for w in self.walk_cache.clone() {
            if !self.placed.contains_key(&w.table) {
                self.violations
                    .push(format!("walk cache still points at unlinked table {:#x} for {:#x}", w.table, w.va));
            }
        }
    }

    pub fn upper_half(&self) -> bool {
        self.upper
    }

    /// The first valid page descriptor of a reachable level-3 table.
    pub fn leaf_table_for_tests(&self) -> Option<(u64, usize)> {
        self.placed.iter().filter(|(_, (_, level))| *level == 3).find_map(|(&table, _)| {
            let entries = self.tables.get(&table)?;
            entries.iter().position(|&d| d & 3 == 3).map(|i| (table, i))
        })
    }

    /// Registers the root table (its region starts at the half's base).
    pub fn set_root(&mut self, root: u64) {
        self.root = Some(root);
        self.placed.insert(root, (self.va_base(), self.granule.start_level()));
    }
}

impl PageTableHw for SimMachine {
    fn alloc_table(&mut self) -> Option<u64> {
        if let Some(left) = self.allocations_left.as_mut() {
            if *left == 0 {
                return None;
            }
            *left -= 1;
        }
        let pa = self.free_frames.pop().unwrap_or_else(|| {
            let pa = self.next_frame;
            self.next_frame += self.granule.size();
            pa
        });
        self.tables.insert(pa, vec![0; self.granule.size() as usize / 8]);
        self.unpublished.insert(pa);
        Some(pa)
    }

    fn free_table(&mut self, table: u64) {
        if self.walk_cache.iter().any(|w| w.table == table) {
            self.violations.push(format!("table {table:#x} freed while the walk cache may still point at it"));
        }
        if self.tables.remove(&table).is_none() {
            self.violations.push(format!("table {table:#x} freed twice"));
        }
        self.placed.remove(&table);
        self.free_frames.push(table);
    }

    fn read_entry(&mut self, table: u64, index: usize) -> u64 {
        self.reads += 1;
        self.read(table, index)
    }

    fn write_entry(&mut self, table: u64, index: usize, value: u64) {
        let Some(entries) = self.tables.get_mut(&table) else {
            self.violations.push(format!("write to {table:#x}, which is not a table"));
            return;
        };
        let old = entries[index];
        entries[index] = value;
        self.unpublished.insert(table);
        let Some(&(base, level)) = self.placed.get(&table) else { return };
        let size = self.granule.level_size(level);
        let slot_va = base + index as u64 * size;
        if value & 1 == 0 {
            return;
        }
        if Self::is_leaf(value, level) {
            self.fill(slot_va, level, index, value);
        } else {
            let next = value & ((1u64 << 48) - 1) & !(self.granule.size() - 1);
            if old & 3 == 3 && old != value {
                self.violations.push(format!("table pointer for {slot_va:#x} changed while live"));
            }
            if self.cached_overlapping(slot_va, size).iter().any(|c| c.size >= size) {
                self.violations.push(format!("table linked at {slot_va:#x} while a block there is still cached"));
            }
            self.walk_cache.push(WalkCached { va: slot_va, size, table: next });
            self.place(next, slot_va, level + 1);
        }
    }

    fn barrier(&mut self, barrier: Barrier) {
        self.barriers.push(barrier);
        match barrier {
            Barrier::DsbIshSt => self.unpublished.clear(),
            Barrier::DsbIsh => {
                self.unpublished.clear();
                self.complete_invalidations();
            }
            Barrier::Isb => {}
        }
    }

    fn tlbi(&mut self, op: Tlbi) {
        // The break must be visible to every walker before its
        // invalidation: otherwise a walk after the TLBI may still read the
        // old descriptor and cache it again.
        if !self.unpublished.is_empty() {
            self.violations.push(format!("{op:?} issued before the tables written were published (dsb ishst)"));
        }
        self.tlbis.push(op);
        self.pending.push(op);
    }
}
