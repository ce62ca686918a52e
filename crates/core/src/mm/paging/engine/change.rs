//! Changing mappings: unmap, protect, remap, split and coalesce. Each is
//! planned here as slot writes and handed whole to [`super::bbm`].

use super::*;

/// The slot writes that clear a range, and whether a unit crossing either
/// end stopped the planning.
struct ClearPlan {
    writes: Vec<SlotWrite>,
    crossing: bool,
}

impl<H: PageTableHw> PageTable<H> {
    // ---- unmap ------------------------------------------------------------

    /// Unmaps [va, va + size). Units straddling either end are split first so
    /// what lies outside stays mapped; tables left empty are freed.
    pub fn unmap(&mut self, va: u64, size: u64) -> Result<(), PagingError> {
        self.cut_and_clear(va, size, true).map(|_| ())
    }

    /// Unmaps [va, va + size) as [`PageTable::unmap`] does, except that
    /// tables it leaves empty stay in the tree (invalid entries under a
    /// valid table descriptor, counted, in use) as long as the tree then
    /// holds at most `keep` empty tables; past that, this range's empty
    /// tables are freed as `unmap` frees them. The next mapping in the same
    /// region finds its tables there: no table to make, zero or count, and
    /// none to free and invalidate here. (A server unmapping what it
    /// granted a client keeps that client's tables warm, and their number
    /// bounded.)
    pub fn unmap_keeping_tables(&mut self, va: u64, size: u64, keep: usize) -> Result<(), PagingError> {
        if self.cut_and_clear(va, size, false)? && self.empty_tables() > keep {
            self.clear(va, va + (size - 1));
        }
        Ok(())
    }

    /// Checks [va, va + size), gives a shared table cut by either end a
    /// private copy (one wholly inside goes with its slot), and clears the
    /// range (see [`PageTable::clear_in`] for `prune`). A unit crossing
    /// either end, found by the clearing's own walk, is split first (and
    /// the range planned again), so what lies outside stays mapped.
    /// `false`: an empty range, nothing to clear.
    fn cut_and_clear(&mut self, va: u64, size: u64, prune: bool) -> Result<bool, PagingError> {
        if size == 0 {
            return Ok(false);
        }
        self.check_aligned(&[va, size])?;
        self.check_range(va, size)?;
        let page = self.granule.size();
        self.unshare(va, page)?;
        self.unshare(va + (size - page), page)?;
        let last = va + (size - 1);
        if !self.clear_in(va, last, prune) {
            self.split_to_boundary(va)?;
            self.split_to_boundary(va.wrapping_add(size))?;
            if !self.clear_in(va, last, prune) {
                // No unit crosses either end after the splits: not reached.
                return Err(PagingError::NotUniform { va });
            }
        }
        Ok(true)
    }

    /// Clears every slot wholly inside [start, last] and frees the tables
    /// that leaves empty, in one break-before-make. No unit may cross
    /// either end (the callers' ranges are split, or hold no mapping).
    pub(super) fn clear(&mut self, start: u64, last: u64) {
        let cleared = self.clear_in(start, last, true);
        debug_assert!(cleared, "a unit crosses an end of {start:#x}..={last:#x}");
    }

    /// [`PageTable::clear`], freeing the tables it leaves empty only with
    /// `prune` (a table wholly inside the range goes either way). `false`,
    /// with nothing changed, when a leaf unit (a block, or any entry of a
    /// contiguous run) crosses either end: it must be split first.
    fn clear_in(&mut self, start: u64, last: u64, prune: bool) -> bool {
        let root = self.root;
        let mut plan = ClearPlan { writes: core::mem::take(&mut self.scratch.writes), crossing: false };
        // Down the tables whose one slot the whole range lies in (a small
        // range's usual path) in a loop; the plan proper starts below them.
        let mut path = [(0u64, 0usize, 0u8, 0u64); 4];
        let mut depth = 0;
        let (mut table, mut level, mut table_va) = (root, self.granule.start_level(), self.canonical(0));
        loop {
            let slots = self.slot_range(level, table_va, start, last);
            if slots.len() != 1 {
                break;
            }
            let index = slots.start;
            let size = self.level_size(level);
            let slot_va = table_va + index as u64 * size;
            let inside = start <= slot_va && slot_va + (size - 1) <= last;
            let descriptor::Kind::Table { next } =
                descriptor::kind(self.granule, level, self.hw.read_entry(table, index))
            else {
                break;
            };
            if inside {
                break;
            }
            path[depth] = (table, index, level, slot_va);
            depth += 1;
            (table, level, table_va) = (next, level + 1, slot_va);
        }
        let mut emptied = self.plan_clear(table, level, table_va, start, last, prune, &mut plan);
        // Back up the path: a table the plan empties goes with its slot, and
        // its table is emptied when that slot was its only valid one (as
        // `plan_clear` decides at each level; only with `prune`).
        while emptied && prune && !plan.crossing && depth > 0 {
            depth -= 1;
            let (parent, index, level, va) = path[depth];
            plan.writes.clear();
            plan.writes.push(SlotWrite::one(parent, index, level, va, 0));
            emptied = parent != root && self.valid_entries(parent, level) == Some(1);
        }
        if plan.crossing {
            plan.writes.clear();
            self.scratch.writes = plan.writes;
            return false;
        }
        // Every table this frees held valid entries only inside the range.
        self.apply_change(Change { writes: plan.writes, within: Some((start, last)), ..Change::default() });
        true
    }

    /// The contiguous run at `level` that holds `slot_va`: its first
    /// address, bytes and entries. (Out of line: its arithmetic is for runs
    /// only, and inlined it would be worked out at every table the plan
    /// visits.)
    #[inline(never)]
    fn run_holding(&self, level: u8, slot_va: u64) -> (u64, u64, usize) {
        let run = Unit { level, contiguous: true };
        let bytes = run.size(self.granule);
        (slot_va & !(bytes - 1), bytes, run.entries(self.granule))
    }

    /// Splits until no unit crosses `boundary` (0 stands for the top of the
    /// address space, which nothing crosses).
    pub(super) fn split_to_boundary(&mut self, boundary: u64) -> Result<(), PagingError> {
        if boundary == 0 || (self.half == Half::Lower && boundary > VA_MASK) {
            return Ok(());
        }
        while self.leaf_crosses(boundary) {
            self.split(boundary)?;
        }
        Ok(())
    }

    /// Whether a leaf unit maps both `boundary - 1` and `boundary` (a walk
    /// that reads one descriptor a level and decodes no attributes).
    fn leaf_crosses(&mut self, boundary: u64) -> bool {
        let mut table = self.root;
        for level in self.granule.start_level()..=3 {
            let d = self.hw.read_entry(table, self.index(boundary, level));
            match descriptor::kind(self.granule, level, d) {
                descriptor::Kind::Invalid => return false,
                descriptor::Kind::Table { next } => table = next,
                descriptor::Kind::Leaf { .. } => {
                    let unit = Unit { level, contiguous: descriptor::is_contiguous(d) };
                    return !boundary.is_multiple_of(unit.size(self.granule));
                }
            }
        }
        false
    }

    /// Plans clearing every slot wholly inside [start, last] below `table`;
    /// with `prune`, a table left empty goes with its slot. Returns whether
    /// `table` is left with no valid entry (always `false` without `prune`).
    #[allow(clippy::too_many_arguments)]
    fn plan_clear(
        &mut self,
        table: u64,
        level: u8,
        table_va: u64,
        start: u64,
        last: u64,
        prune: bool,
        plan: &mut ClearPlan,
    ) -> bool {
        let size = self.level_size(level);
        let (mut cleared, mut remaining) = (0u32, 0u32);
        // Every slot of the range overlaps [start, last].
        let slots = self.slot_range(level, table_va, start, last);
        let mut index = slots.start;
        while index < slots.end {
            let slot_va = table_va + index as u64 * size;
            let d = self.hw.read_entry(table, index);
            let entry = descriptor::kind(self.granule, level, d);
            if entry == descriptor::Kind::Invalid {
                index += 1;
                continue;
            }
            if matches!(entry, descriptor::Kind::Leaf { .. }) && descriptor::is_contiguous(d) {
                // A contiguous run, met at its first entry (runs are
                // uniform: all valid) unless it began before `start`.
                // Wholly inside, it is cleared from here without reading
                // its other entries; otherwise it reaches past an end and
                // is split first.
                let (run_va, bytes, entries) = self.run_holding(level, slot_va);
                if run_va < start || run_va + (bytes - 1) > last {
                    plan.crossing = true;
                    return false;
                }
                // (`slot_va` is the run's first address.)
                let slots = entries as u16;
                plan.writes.push(SlotWrite { table, index, level, slots, va: slot_va, new: 0 });
                cleared += entries as u32;
                index += entries;
                continue;
            }
            let inside = start <= slot_va && slot_va + (size - 1) <= last;
            if let descriptor::Kind::Table { next } = entry
                && !inside
            {
                let mark = plan.writes.len();
                let emptied = self.plan_clear(next, level + 1, slot_va, start, last, prune, plan);
                if plan.crossing {
                    return false;
                }
                if emptied && prune {
                    // The child empties: clear its slot here instead.
                    plan.writes.truncate(mark);
                    plan.writes.push(SlotWrite::one(table, index, level, slot_va, 0));
                    cleared += 1;
                } else {
                    remaining += 1;
                }
            } else if inside {
                plan.writes.push(SlotWrite::one(table, index, level, slot_va, 0));
                cleared += 1;
            } else {
                // A block reaching past either end: split it first.
                plan.crossing = true;
                return false;
            }
            index += 1;
        }
        // Emptied when every valid entry it holds is being cleared: its
        // count says so without reading the slots outside the range (the
        // root is never freed; a shared table is never counted).
        // (Without `prune` nobody asks.)
        prune && remaining == 0 && table != self.root && self.valid_entries(table, level) == Some(cleared)
    }

    // ---- protect ----------------------------------------------------------

    /// Changes the attributes of [va, va + size), which must be fully mapped.
    pub fn protect(&mut self, va: u64, size: u64, attributes: Attributes) -> Result<(), PagingError> {
        if size == 0 {
            return Ok(());
        }
        self.check_aligned(&[va, size])?;
        self.check_range(va, size)?;
        if !attributes.is_permitted() {
            return Err(PagingError::ForbiddenAttributes);
        }
        self.global_in_lower_half |= attributes.global && self.half == Half::Lower;
        let last = va + (size - 1);
        let (covered, crosses) = self.coverage(va, last);
        if covered < size as u128 {
            // The first address not mapped, found without collecting.
            let granule = self.granule;
            let mut hole = va;
            self.visit(va, size, &mut |m| {
                if m.va > hole {
                    return false;
                }
                hole = m.va + m.unit.size(granule);
                true
            });
            return Err(PagingError::NotMapped { va: hole });
        }
        self.unshare(va, size)?;
        if crosses {
            // Units crossing either end are split first, so only the range changes.
            self.split_to_boundary(va)?;
            self.split_to_boundary(va.wrapping_add(size))?;
        }
        // Permission-only changes are written in place as the walk goes;
        // everything else (contiguous runs, memory type) is collected for
        // break-before-make. Both share one synchronisation.
        let mut change = Change::default();
        let root = self.root;
        self.protect_walk(root, self.granule.start_level(), self.canonical(0), va, last, &attributes, &mut change);
        self.apply_change(change);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn protect_walk(
        &mut self,
        table: u64,
        level: u8,
        table_va: u64,
        start: u64,
        last: u64,
        attributes: &Attributes,
        change: &mut Change,
    ) {
        for (index, slot_va) in self.slots_overlapping(level, table_va, start, last) {
            let old = self.hw.read_entry(table, index);
            match descriptor::decode(self.granule, level, old) {
                Entry::Invalid => {}
                Entry::Table { next } => self.protect_walk(next, level + 1, slot_va, start, last, attributes, change),
                Entry::Leaf { attributes: was, .. } => {
                    let new = descriptor::with_attributes(old, attributes);
                    if new == old {
                        continue;
                    }
                    if descriptor::in_place_change_allowed(old, new) {
                        self.store(table, level, index, old, new);
                        change.wrote = true;
                        change.invalidations.push(slot_va, true, was.global);
                    } else {
                        change.writes.push(SlotWrite::one(table, index, level, slot_va, new));
                    }
                }
            }
        }
    }

    /// Plans rewriting the descriptors of mapping `m` (found at `table`,
    /// `first`) to map `pa` with `attributes`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn plan_unit(
        &self,
        out: &mut Vec<SlotWrite>,
        table: u64,
        first: usize,
        m: Mapping,
        pa: u64,
        attributes: &Attributes,
        contiguous: bool,
    ) {
        let level_size = self.level_size(m.unit.level);
        for i in 0..m.unit.entries(self.granule) {
            let new = descriptor::leaf(m.unit.level, pa + i as u64 * level_size, attributes, contiguous);
            out.push(SlotWrite::one(table, first + i, m.unit.level, m.va + i as u64 * level_size, new));
        }
    }

    // ---- remap (batched) --------------------------------------------------

    /// Points each listed unit (which must be mapped, starting at `va`) at a
    /// new output address with new attributes: the whole list with one
    /// break-before-make synchronisation. Returns the old output addresses.
    pub fn remap(&mut self, changes: &[Remap]) -> Result<Vec<u64>, PagingError> {
        let mut writes = Vec::with_capacity(changes.len());
        let mut old = Vec::with_capacity(changes.len());
        for c in changes {
            if !c.attributes.is_permitted() {
                return Err(PagingError::ForbiddenAttributes);
            }
            self.global_in_lower_half |= c.attributes.global && self.half == Half::Lower;
            self.unshare(c.va, self.granule.size())?;
            let (m, table, first) = self.leaf_at(c.va).ok_or(PagingError::NotMapped { va: c.va })?;
            let s = m.unit.size(self.granule);
            if m.va != c.va || c.pa % s != 0 {
                return Err(PagingError::Misaligned { value: if m.va != c.va { c.va } else { c.pa } });
            }
            self.plan_unit(&mut writes, table, first, m, c.pa, &c.attributes, m.unit.contiguous);
            old.push(m.pa);
        }
        self.apply_change(Change { writes, ..Change::default() });
        Ok(old)
    }

    // ---- split and coalesce -------------------------------------------------

    /// Splits the unit covering `va` into the next smaller units without
    /// changing what is mapped: a contiguous run into its descriptors, a block
    /// into a table of the next level (with contiguous runs where they fit).
    /// Returns the new unit.
    pub fn split(&mut self, va: u64) -> Result<Unit, PagingError> {
        self.unshare(va, self.granule.size())?;
        let (m, table, first) = self.leaf_at(va).ok_or(PagingError::NotMapped { va })?;
        let mut writes = Vec::new();
        if m.unit.contiguous {
            self.plan_unit(&mut writes, table, first, m, m.pa, &m.attributes, false);
            self.apply(writes);
            return Ok(Unit { level: m.unit.level, contiguous: false });
        }
        if m.unit.level == 3 {
            return Err(PagingError::CannotSplit { va });
        }
        let level = m.unit.level + 1;
        let child = self.new_table(level, self.entries(level) as u32)?;
        let unit = Unit { level, contiguous: self.granule.contiguous_entries(level).is_some() };
        let level_size = self.level_size(level);
        for index in 0..self.entries(level) {
            let d = descriptor::leaf(level, m.pa + index as u64 * level_size, &m.attributes, unit.contiguous);
            self.hw.write_entry(child, index, d);
        }
        let slot = self.index(m.va, m.unit.level);
        writes.push(SlotWrite::one(table, slot, m.unit.level, m.va, descriptor::table(child)));
        self.apply(writes);
        Ok(unit)
    }

    /// Replaces the mappings of [va, va + unit size) by one `unit` (a block
    /// or a contiguous run). They must map one physically contiguous,
    /// suitably aligned range with identical attributes.
    pub fn coalesce(&mut self, va: u64, unit: Unit) -> Result<(), PagingError> {
        if !unit.is_supported(self.granule) || unit.level == 3 && !unit.contiguous {
            return Err(PagingError::UnsupportedUnit(unit));
        }
        let size = unit.size(self.granule);
        if !va.is_multiple_of(size) {
            return Err(PagingError::Misaligned { value: va });
        }
        self.check_range(va, size)?;
        self.unshare(va, size)?;
        // One streaming pass: the range may hold a million pages.
        let first = self.first_mapping(va, size).ok_or(PagingError::NotMapped { va })?;
        let granule = self.granule;
        let mut expect = va as u128;
        let mut broken = None;
        self.visit(va, size, &mut |m| {
            let uniform =
                m.va as u128 == expect && m.pa.wrapping_sub(first.pa) == m.va - va && m.attributes == first.attributes;
            // Already this unit or coarser: nothing to coalesce.
            if !uniform || m.unit.size(granule) >= size {
                broken = Some(m.va);
                return false;
            }
            expect = m.va as u128 + m.unit.size(granule) as u128;
            true
        });
        if let Some(at) = broken {
            return Err(PagingError::NotUniform { va: at });
        }
        if expect != va as u128 + size as u128 || first.pa % size != 0 {
            return Err(PagingError::NotUniform { va });
        }
        let table = self.table_at(va, unit.level, false)?.ok_or(PagingError::NotUniform { va })?;
        let mut writes = Vec::new();
        let index = self.index(va, unit.level);
        let m = Mapping { va, pa: first.pa, unit, attributes: first.attributes };
        self.plan_unit(&mut writes, table, index, m, first.pa, &first.attributes, unit.contiguous);
        self.apply(writes);
        Ok(())
    }
}
