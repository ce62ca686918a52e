//! Reading a tree: the table or leaf at an address, translations, the
//! mappings of a range, and how much of a range is mapped.

use core::ops::Range;

use super::*;

/// The first valid descriptor of `table` in `slots`: (its index, it).
#[inline(always)]
fn first_valid<H: PageTableHw>(hw: &mut H, table: u64, slots: Range<usize>) -> Option<(usize, u64)> {
    slots.into_iter().find_map(|index| {
        let d = hw.read_entry(table, index);
        counts::is_valid(d).then_some((index, d))
    })
}

impl<H: PageTableHw> PageTable<H> {
    // ---- walking --------------------------------------------------------

    /// The table at `level` whose slot covers `va`, creating missing tables
    /// on the way when `create`. `Ok(None)`: missing, or covered by a leaf
    /// at a higher level (returned as `Err` only when creating).
    pub(super) fn table_at(&mut self, va: u64, level: u8, create: bool) -> Result<Option<u64>, PagingError> {
        self.table_below(self.root, self.granule.start_level(), va, level, create)
    }

    /// [`PageTable::table_at`], from `table` at level `from` (on `va`'s
    /// path) down.
    pub(super) fn table_below(
        &mut self,
        mut table: u64,
        from: u8,
        va: u64,
        level: u8,
        create: bool,
    ) -> Result<Option<u64>, PagingError> {
        for l in from..level {
            let index = self.index(va, l);
            match descriptor::decode(self.granule, l, self.hw.read_entry(table, index)) {
                Entry::Table { next } => table = next,
                Entry::Leaf { .. } if create => return Err(PagingError::AlreadyMapped { va }),
                Entry::Leaf { .. } => return Ok(None),
                Entry::Invalid if !create => return Ok(None),
                Entry::Invalid => {
                    let next = self.new_table(l + 1, 0)?;
                    // The zeroed table must be visible before the walker can reach it.
                    self.barrier(Barrier::DsbIshSt);
                    self.store(table, l, index, 0, descriptor::table(next));
                    table = next;
                }
            }
        }
        Ok(Some(table))
    }

    /// The leaf mapping covering `va`, with the table and index of its
    /// descriptor (the first of its run when contiguous).
    pub(super) fn leaf_at(&mut self, va: u64) -> Option<(Mapping, u64, usize)> {
        let mut table = self.root;
        for level in self.granule.start_level()..=3 {
            let index = self.index(va, level);
            match descriptor::decode(self.granule, level, self.hw.read_entry(table, index)) {
                Entry::Invalid => return None,
                Entry::Table { next } => table = next,
                Entry::Leaf { output, attributes, contiguous } => {
                    let unit = Unit { level, contiguous };
                    let n = unit.entries(self.granule);
                    let first = index - index % n;
                    let unit_size = unit.size(self.granule);
                    let unit_va = va & !(unit_size - 1);
                    let level_size = self.level_size(level);
                    let pa = output - (index - first) as u64 * level_size;
                    return Some((Mapping { va: unit_va, pa, unit, attributes }, table, first));
                }
            }
        }
        None
    }

    /// The mapping covering `va`, if any.
    pub fn translate(&mut self, va: u64) -> Option<Mapping> {
        self.leaf_at(va).map(|(m, _, _)| m)
    }

    /// Every mapping unit overlapping [va, va + size), in address order.
    pub fn mappings(&mut self, va: u64, size: u64) -> Vec<Mapping> {
        let mut out = Vec::new();
        self.visit(va, size, &mut |m| {
            out.push(m);
            true
        });
        out
    }

    /// The first mapping overlapping [va, va + size), without collecting
    /// the rest (a large range may hold millions).
    pub fn first_mapping(&mut self, va: u64, size: u64) -> Option<Mapping> {
        let mut found = None;
        self.visit(va, size, &mut |m| {
            found = Some(m);
            false
        });
        found
    }

    /// The first address of [start, last] that a leaf maps, if any: the
    /// check before a map, which reads descriptors' kinds only (no
    /// mapping is decoded or reported).
    pub fn first_mapped(&mut self, start: u64, last: u64) -> Option<u64> {
        self.unmapped_below(start, last).err()
    }

    /// [`PageTable::first_mapped`] as `Err`, or, when nothing in [start,
    /// last] is mapped, the deepest table its walk reached that holds the
    /// range's slots: (level, the table's first address, the table), so
    /// that a map need not walk to it again.
    pub(super) fn unmapped_below(&mut self, start: u64, last: u64) -> Result<(u8, u64, u64), u64> {
        // Down the tables whose one slot the whole range lies in (a small
        // range's usual path) in a loop; below them, the walk proper.
        let (mut table, mut level, mut table_va) = (self.root, self.granule.start_level(), self.canonical(0));
        loop {
            let slots = self.slot_range(level, table_va, start, last);
            if slots.len() != 1 {
                return match self.first_mapped_in(table, level, table_va, start, last) {
                    Some(mapped) => Err(mapped),
                    None => Ok((level, table_va, table)),
                };
            }
            let slot_va = table_va + slots.start as u64 * self.level_size(level);
            match descriptor::kind(self.granule, level, self.hw.read_entry(table, slots.start)) {
                descriptor::Kind::Invalid => return Ok((level, table_va, table)),
                descriptor::Kind::Leaf { .. } => return Err(slot_va.max(start)),
                descriptor::Kind::Table { next } => {
                    if self.is_kept_empty(next, level + 1) {
                        // (Where a block goes, this is its table; pages go
                        // below, one step down from it.)
                        return Ok((level, table_va, table));
                    }
                    (table, level, table_va) = (next, level + 1, slot_va);
                }
            }
        }
    }

    fn first_mapped_in(&mut self, table: u64, level: u8, table_va: u64, start: u64, last: u64) -> Option<u64> {
        let size = self.level_size(level);
        let mut slots = self.slot_range(level, table_va, start, last);
        while let Some((index, d)) = self.next_valid(table, &mut slots) {
            let slot_va = table_va + index as u64 * size;
            match descriptor::kind(self.granule, level, d) {
                descriptor::Kind::Invalid => {}
                descriptor::Kind::Table { next } => {
                    if !self.is_kept_empty(next, level + 1)
                        && let Some(va) = self.first_mapped_in(next, level + 1, slot_va, start, last)
                    {
                        return Some(va);
                    }
                }
                descriptor::Kind::Leaf { .. } => return Some(slot_va.max(start)),
            }
        }
        None
    }

    /// Calls `f` with each mapping unit overlapping [va, va + size) in
    /// address order, until it returns false.
    pub fn visit(&mut self, va: u64, size: u64, f: &mut dyn FnMut(Mapping) -> bool) {
        if size == 0 {
            return;
        }
        let last = va.saturating_add(size - 1);
        let root = self.root;
        let mut previous = None;
        self.visit_table(root, self.granule.start_level(), self.canonical(0), va, last, &mut previous, f);
    }

    /// Visits the mappings overlapping [start, last] (inclusive, so a range
    /// ending at the top of the address space does not overflow). Returns
    /// false once `f` asked to stop.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn visit_table(
        &mut self,
        table: u64,
        level: u8,
        table_va: u64,
        start: u64,
        last: u64,
        previous: &mut Option<u64>,
        f: &mut dyn FnMut(Mapping) -> bool,
    ) -> bool {
        let size = self.level_size(level);
        let mut slots = self.slot_range(level, table_va, start, last);
        while let Some((index, d)) = self.next_valid(table, &mut slots) {
            let slot_va = table_va + index as u64 * size;
            match descriptor::decode(self.granule, level, d) {
                Entry::Invalid => {}
                Entry::Table { next } => {
                    if !self.is_kept_empty(next, level + 1)
                        && !self.visit_table(next, level + 1, slot_va, start, last, previous, f)
                    {
                        return false;
                    }
                }
                Entry::Leaf { output, attributes, contiguous } => {
                    let unit = Unit { level, contiguous };
                    let n = unit.entries(self.granule);
                    if index % n == 0 || slot_va <= start {
                        let first = index - index % n;
                        let unit_va = table_va + first as u64 * size;
                        let pa = output - (index - first) as u64 * size;
                        if *previous != Some(unit_va) {
                            *previous = Some(unit_va);
                            if !f(Mapping { va: unit_va, pa, unit, attributes }) {
                                return false;
                            }
                        }
                    }
                }
            }
        }
        true
    }

    /// Whether `table` (at `level`) is a private table holding no valid
    /// descriptor (one kept by `unmap_keeping_tables`), so a walk need not
    /// read it and break-before-make need not look below it. Looked up
    /// only when the tree holds such a table at all; a shared table is
    /// never one.
    #[inline(always)]
    pub(super) fn is_kept_empty(&mut self, table: u64, level: u8) -> bool {
        self.counts.zeros() > 0 && self.valid_entries(table, level) == Some(0)
    }

    /// The next valid descriptor of `table` among `slots`, which move past
    /// it. A few slots are read here; a longer scan over invalid slots runs
    /// in a loop of its own, a load and a test each.
    #[inline(always)]
    fn next_valid(&mut self, table: u64, slots: &mut Range<usize>) -> Option<(usize, u64)> {
        let found = if slots.len() <= 4 {
            first_valid(&mut self.hw, table, slots.clone())
        } else {
            self.scan_valid(table, slots.clone())
        };
        slots.start = found.map_or(slots.end, |(index, _)| index + 1);
        found
    }

    #[inline(never)]
    fn scan_valid(&mut self, table: u64, slots: Range<usize>) -> Option<(usize, u64)> {
        first_valid(&mut self.hw, table, slots)
    }

    /// Bytes of [start, last] that are mapped, and whether a unit crosses
    /// either end.
    pub(super) fn coverage(&mut self, start: u64, last: u64) -> (u128, bool) {
        let mut covered = 0u128;
        let mut crosses = false;
        let root = self.root;
        self.coverage_walk(
            root,
            self.granule.start_level(),
            self.canonical(0),
            start,
            last,
            &mut covered,
            &mut crosses,
        );
        (covered, crosses)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn coverage_walk(
        &mut self,
        table: u64,
        level: u8,
        table_va: u64,
        start: u64,
        last: u64,
        covered: &mut u128,
        crosses: &mut bool,
    ) {
        let size = self.level_size(level);
        let entries = self.entries(level);
        if level == 3 && start <= table_va && table_va + (size * entries as u64 - 1) <= last {
            // A whole last-level table inside the range: no unit can cross
            // an end, only valid pages count.
            let valid = (0..entries).filter(|&i| self.hw.read_entry(table, i) & 1 != 0).count();
            *covered += valid as u128 * size as u128;
            return;
        }
        let mut slots = self.slot_range(level, table_va, start, last);
        while let Some((index, d)) = self.next_valid(table, &mut slots) {
            let slot_va = table_va + index as u64 * size;
            match descriptor::decode(self.granule, level, d) {
                Entry::Invalid => {}
                Entry::Table { next } => self.coverage_walk(next, level + 1, slot_va, start, last, covered, crosses),
                Entry::Leaf { contiguous, .. } => {
                    let n = if contiguous { self.granule.contiguous_entries(level).unwrap_or(1) as u64 } else { 1 };
                    let unit_va = slot_va & !(size * n - 1);
                    *crosses |= unit_va < start || unit_va + (size * n - 1) > last;
                    let (s, e) = (slot_va.max(start) as u128, (slot_va as u128 + size as u128).min(last as u128 + 1));
                    *covered += e - s;
                }
            }
        }
    }
}
