//! Making mappings: the largest legal unit at each step (or a forced one),
//! repeated mappings of one frame, and shared last-level tables.

use super::*;

impl<H: PageTableHw> PageTable<H> {
    // ---- map --------------------------------------------------------------

    /// Maps [va, va + size) to [pa, pa + size). The range must be unmapped.
    /// On failure nothing is left mapped and no table frame is leaked.
    pub fn map(
        &mut self,
        va: u64,
        pa: u64,
        size: u64,
        attributes: Attributes,
        policy: Policy,
    ) -> Result<(), PagingError> {
        self.map_inner(va, pa, size, attributes, policy, false)
    }

    /// Maps `pages` pages from `va` all to the one frame at `pa` (a shared
    /// read-only page, such as HVO's shared tail). Same guarantees as `map`.
    pub fn map_repeated(&mut self, va: u64, pa: u64, pages: u64, attributes: Attributes) -> Result<(), PagingError> {
        let size = pages.checked_mul(self.granule.size()).ok_or(PagingError::OutOfRange { address: va })?;
        self.map_inner(va, pa, size, attributes, Policy::Force(Unit::PAGE), true)
    }

    pub(super) fn map_inner(
        &mut self,
        va: u64,
        pa: u64,
        size: u64,
        attributes: Attributes,
        policy: Policy,
        repeat: bool,
    ) -> Result<(), PagingError> {
        if size == 0 {
            return Ok(());
        }
        self.check_aligned(&[va, pa, size])?;
        self.check_range(va, size)?;
        let pa_span = if repeat { self.granule.size() } else { size };
        if pa.checked_add(pa_span).is_none_or(|end| end > 1 << 48) {
            return Err(PagingError::OutOfRange { address: pa });
        }
        if !attributes.is_permitted() {
            return Err(PagingError::ForbiddenAttributes);
        }
        self.global_in_lower_half |= attributes.global && self.half == Half::Lower;
        if let Policy::Force(unit) = policy {
            if !unit.is_supported(self.granule) {
                return Err(PagingError::UnsupportedUnit(unit));
            }
            let s = unit.size(self.granule);
            if !va.is_multiple_of(s) || !pa.is_multiple_of(s.min(pa_span)) || !size.is_multiple_of(s) {
                return Err(PagingError::Misaligned {
                    value: if !va.is_multiple_of(s) {
                        va
                    } else if !pa.is_multiple_of(s) {
                        pa
                    } else {
                        size
                    },
                });
            }
        }
        // The check that nothing is mapped also finds the table the first
        // units go into, often: write_units takes it as its last table.
        let reached = self.unmapped_below(va, va + (size - 1)).map_err(|va| PagingError::AlreadyMapped { va })?;
        let tables_before = self.stats.tables_in_use;
        let mut last_table = Some(reached);
        let mut done = 0;
        while done < size {
            let (v, p, left) = (va + done, if repeat { pa } else { pa + done }, size - done);
            let unit = match policy {
                Policy::Force(unit) => unit,
                Policy::Largest => self.largest_unit(v, p, left),
            };
            // As many units as the choice stays the same for, within one table.
            let unit_size = unit.size(self.granule);
            let slots_left = self.entries(unit.level) - self.index(v, unit.level);
            let mut count = 1;
            while count < slots_left / unit.entries(self.granule) && (count as u64 + 1) * unit_size <= left {
                let next_va = v + count as u64 * unit_size;
                let same = match policy {
                    Policy::Force(_) => true,
                    Policy::Largest => {
                        self.largest_unit(next_va, p + count as u64 * unit_size, left - count as u64 * unit_size)
                            == unit
                    }
                };
                if !same {
                    break;
                }
                count += 1;
            }
            let stride = if repeat { 0 } else { self.level_size(unit.level) };
            if let Err(e) = self.write_units(v, p, unit, count, stride, &attributes, &mut last_table) {
                if done > 0 {
                    self.barrier(Barrier::DsbIshSt);
                    // Undo: nothing of the new range may stay mapped.
                    let _ = self.unmap(va, done);
                }
                self.prune_empty(va, size);
                debug_assert_eq!(self.stats.tables_in_use, tables_before);
                return Err(e);
            }
            done += unit.size(self.granule) * count as u64;
        }
        self.barrier(Barrier::DsbIshSt);
        if self.half == Half::Upper {
            self.barrier(Barrier::Isb);
        }
        Ok(())
    }

    /// Writes the descriptors of one unit into invalid slots (invalid ->
    /// valid needs no invalidation; the caller issues the closing barrier).
    /// `last` remembers the table of the previous unit (level, region, table)
    /// so consecutive units in one table need no walk from the root.
    /// The largest unit that maps `va` to `pa` within `left` bytes.
    pub(super) fn largest_unit(&self, va: u64, pa: u64, left: u64) -> Unit {
        UnitSizes::of(self.granule).largest(va | pa, left)
    }

    /// The mask that gives the first address of the region a table at
    /// `level` covers (the root covers everything).
    fn region_mask(&self, level: u8) -> u64 {
        match level.checked_sub(1) {
            Some(parent) if level > self.granule.start_level() => !(self.level_size(parent) - 1),
            _ => 0,
        }
    }

    /// Writes `count` consecutive units, which must lie in one table.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn write_units(
        &mut self,
        va: u64,
        pa: u64,
        unit: Unit,
        count: usize,
        stride: u64,
        attributes: &Attributes,
        last: &mut Option<(u8, u64, u64)>,
    ) -> Result<(), PagingError> {
        // `last` is a table on `va`'s path when the region it covers holds
        // `va`: the walk starts there (at the unit's level, it is the table).
        let (from, start) = match *last {
            Some((level, region, table)) if level <= unit.level && region == va & self.region_mask(level) => {
                (level, table)
            }
            _ => (self.granule.start_level(), self.root),
        };
        let table = if from == unit.level {
            start
        } else {
            let table =
                self.table_below(start, from, va, unit.level, true)?.ok_or(PagingError::AlreadyMapped { va })?;
            *last = Some((unit.level, va & self.region_mask(unit.level), table));
            table
        };
        let first = self.index(va, unit.level);
        // Consecutive descriptors differ only in their output address.
        let mut d = descriptor::leaf(unit.level, pa, attributes, unit.contiguous);
        // The range maps nothing, so a last-level slot in it is invalid. A
        // higher one may still hold a pointer to a table with nothing valid
        // below it (kept by `unmap_keeping_tables`): a table pointer becomes
        // a block only through break-before-make, so those slots go first,
        // through `apply` (the subtree's frames are freed after its
        // invalidation), and no slot of a contiguous run is valid while
        // another still points to a table.
        let slots = count * unit.entries(self.granule);
        let level_size = self.level_size(unit.level);
        // (The change buffer kept between changes: no allocation.)
        let mut replace = core::mem::take(&mut self.scratch.writes);
        if unit.level < 3 {
            for i in 0..slots {
                if counts::is_valid(self.hw.read_entry(table, first + i)) {
                    let new = d + i as u64 * stride;
                    replace.push(SlotWrite::one(table, first + i, unit.level, va + i as u64 * level_size, new));
                }
            }
        }
        let replaced = replace.len();
        if replaced == 0 {
            self.scratch.writes = replace;
            for index in first..first + slots {
                self.hw.write_entry(table, index, d);
                d += stride;
            }
        } else {
            self.apply(replace);
            for index in first..first + slots {
                if !counts::is_valid(self.hw.read_entry(table, index)) {
                    self.hw.write_entry(table, index, d);
                }
                d += stride;
            }
        }
        self.counts.adjust(table, unit.level, (slots - replaced) as i32);
        Ok(())
    }

    /// Frees tables left empty in [va, va + size) after a failed map (they
    /// were never reachable by a valid leaf, but the walker may have cached
    /// the table pointers).
    pub(super) fn prune_empty(&mut self, va: u64, size: u64) {
        self.clear(va, va + (size - 1));
    }

    // ---- shared last-level tables --------------------------------------------

    /// Links the level-2 slot covering `va` (aligned to the span of a
    /// last-level table, and unmapped) to the tree's shared last-level table
    /// whose every descriptor maps the one page `pa` with `attributes`
    /// (read-only, so sharing it is safe), made on first use: for ranges
    /// that map nothing but one shared page, such as HVO's all-tail vmemmap
    /// ranges. A shared table lives while a slot links it: the removal of
    /// its last link frees it after that change's TLB maintenance.
    /// Invalid -> valid: only the barrier that publishes it.
    pub fn link_shared(&mut self, va: u64, pa: u64, attributes: Attributes) -> Result<(), PagingError> {
        if attributes.writable || !attributes.is_permitted() {
            return Err(PagingError::ForbiddenAttributes);
        }
        self.check_aligned(&[pa])?;
        let span = self.level_size(2);
        if !va.is_multiple_of(span) {
            return Err(PagingError::Misaligned { value: va });
        }
        self.check_range(va, span)?;
        if let Some(mapped) = self.first_mapped(va, va + (span - 1)) {
            return Err(PagingError::AlreadyMapped { va: mapped });
        }
        let leaf = descriptor::leaf(3, pa, &attributes, false);
        let i = match self.shared.iter().position(|s| s.leaf == leaf) {
            Some(i) => i,
            None => {
                let table = self.hw.alloc_table().ok_or(PagingError::OutOfTableFrames)?;
                self.stats.tables_in_use += 1;
                for index in 0..self.entries(3) {
                    self.hw.write_entry(table, index, leaf);
                }
                self.shared.push(SharedTable { table, leaf, links: 0 });
                self.shared.len() - 1
            }
        };
        let table = self.shared[i].table;
        let parent = match self.table_at(va, 2, true) {
            Ok(Some(parent)) => parent,
            failed => {
                self.drop_unlinked_shared(i);
                return Err(failed.err().unwrap_or(PagingError::AlreadyMapped { va }));
            }
        };
        self.shared[i].links += 1;
        let index = self.index(va, 2);
        if self.hw.read_entry(parent, index) != 0 {
            // An empty private table is there: replace it (it maps nothing).
            let writes = alloc::vec![SlotWrite::one(parent, index, 2, va, descriptor::table(table))];
            self.apply(writes);
            return Ok(());
        }
        self.barrier(Barrier::DsbIshSt);
        self.store(parent, 2, index, 0, descriptor::table(table));
        self.barrier(Barrier::DsbIshSt);
        if self.half == Half::Upper {
            self.barrier(Barrier::Isb);
        }
        Ok(())
    }

    /// Frees shared table `i` if it was just made and never linked (never
    /// published, so no walker can have seen it).
    fn drop_unlinked_shared(&mut self, i: usize) {
        if self.shared[i].links == 0 {
            let s = self.shared.swap_remove(i);
            self.hw.free_table(s.table);
            self.stats.tables_in_use -= 1;
        }
    }

    /// How many shared last-level tables the tree holds.
    pub fn shared_tables(&self) -> usize {
        self.shared.len()
    }

    pub(super) fn is_shared(&self, table: u64) -> bool {
        self.shared.iter().any(|s| s.table == table)
    }

    /// Gives every slot in [va, va + size) that points at a shared table a
    /// private copy, so the range can be changed. The copy has the same
    /// contents; the switch is break-before-make like any table change.
    /// (The test for a tree with no shared table, every task's but HVO's,
    /// is inline.)
    #[inline(always)]
    pub(super) fn unshare(&mut self, va: u64, size: u64) -> Result<(), PagingError> {
        if self.shared.is_empty() {
            return Ok(());
        }
        self.unshare_slots(va, size)
    }

    fn unshare_slots(&mut self, va: u64, size: u64) -> Result<(), PagingError> {
        let span = self.level_size(2);
        let mut at = va & !(span - 1);
        let last = va + (size - 1);
        while at <= last {
            if let Some(parent) = self.table_at(at, 2, false)? {
                let index = self.index(at, 2);
                if let Entry::Table { next } = descriptor::decode(self.granule, 2, self.hw.read_entry(parent, index))
                    && self.is_shared(next)
                {
                    let copy = self.new_table(3, self.entries(3) as u32)?;
                    for i in 0..self.entries(3) {
                        let d = self.hw.read_entry(next, i);
                        self.hw.write_entry(copy, i, d);
                    }
                    let writes = alloc::vec![SlotWrite::one(parent, index, 2, at, descriptor::table(copy))];
                    self.apply(writes);
                }
            }
            match at.checked_add(span) {
                Some(next) => at = next,
                None => break,
            }
        }
        Ok(())
    }
}
