//! Break-before-make: the one place a live entry changes.
//!
//! A [`Change`] (slot writes that need a break, permission changes already
//! written in place, and what they invalidate) is applied in the order the
//! architecture demands: invalid descriptors, `dsb ishst`, TLB invalidation,
//! `dsb ish`, the new descriptors, `dsb ishst` (and `isb` for kernel tables),
//! and only then are unreachable table frames freed.
//! Must never: write a new output address, block size or contiguous bit over
//! a live entry, or free a table before its walk-cache entries are gone.

use super::scratch::keep;
use super::*;
use crate::mm::paging::descriptor::Kind;

/// One slot to rewrite: descriptor `index` of `table` (at `level`), which
/// maps from virtual address `va`.
#[derive(Clone, Copy, Debug)]
pub(super) struct SlotWrite {
    pub(super) table: u64,
    pub(super) index: usize,
    pub(super) level: u8,
    pub(super) va: u64,
    pub(super) new: u64,
}

/// The invalidations one change needs. Past [`TLBI_THRESHOLD`] the list is
/// dropped for one broad invalidation, so large changes cost nothing here.
#[derive(Default)]
pub(super) struct Invalidations {
    /// (va, leaf_only, global)
    pub(super) list: Vec<(u64, bool, bool)>,
    pub(super) broad: bool,
    pub(super) any_global: bool,
    /// Whether an address was pushed that is not above the one before. A
    /// change's writes mostly come in address order, and then no entry
    /// can cover another: the list needs no sorting or deduplication, and
    /// is broad as soon as it passes the threshold.
    unordered: bool,
}

impl Invalidations {
    /// Records an invalidation: once broad, only whether it is global
    /// matters (checked here, inline: a large change's pushes are mostly
    /// past the threshold).
    #[inline(always)]
    pub(super) fn push(&mut self, va: u64, leaf_only: bool, global: bool) {
        self.any_global |= global;
        if self.broad {
            return;
        }
        // The common case inline: addresses rising, below the threshold,
        // room kept.
        let len = self.list.len();
        if !self.unordered
            && len < TLBI_THRESHOLD
            && len < self.list.capacity()
            && self.list.last().is_none_or(|&(last, _, _)| last < va)
        {
            self.list.push((va, leaf_only, global));
            return;
        }
        self.push_listed(va, leaf_only, global);
    }

    #[inline(never)]
    fn push_listed(&mut self, va: u64, leaf_only: bool, global: bool) {
        if self.list.last().is_some_and(|&(last, _, _)| va <= last) {
            self.unordered = true;
        }
        if self.list.len() == TLBI_THRESHOLD * 2 {
            self.finish();
            if self.list.len() >= TLBI_THRESHOLD {
                self.broad = true;
                self.list.clear();
                return;
            }
        }
        self.list.push((va, leaf_only, global));
        if !self.unordered && self.list.len() > TLBI_THRESHOLD {
            self.broad = true;
            self.list.clear();
        }
    }

    /// Removes what another entry already covers: a by-VA invalidation of
    /// all levels at an address also removes the leaf and walk-cache entries
    /// a leaf-only one at it would. Afterwards the addresses are distinct
    /// and in order.
    pub(super) fn finish(&mut self) {
        if self.unordered {
            self.list.sort_unstable_by_key(|&(va, leaf_only, global)| (va, leaf_only, !global));
            self.list.dedup_by(|later, earlier| later.0 == earlier.0 && (!earlier.1 || later.1 == earlier.1));
            self.unordered = false;
        }
        if self.list.len() > TLBI_THRESHOLD {
            self.broad = true;
            self.list.clear();
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        !self.broad && self.list.is_empty()
    }
}

/// One change to a tree: slot writes that need break-before-make, plus
/// permission changes already written in place and what they invalidate.
#[derive(Default)]
pub(super) struct Change {
    pub(super) writes: Vec<SlotWrite>,
    pub(super) invalidations: Invalidations,
    pub(super) wrote: bool,
    /// Where every valid descriptor under the table slots this change
    /// clears lies, when the planner knows ([`PageTable::unmap`] does: a
    /// table it frees held nothing outside the range), so their removal
    /// reads only those slots. `None`: anywhere.
    pub(super) within: Option<(u64, u64)>,
}

impl<H: PageTableHw> PageTable<H> {
    // ---- the one place live entries change ---------------------------------

    /// Applies slot writes with break-before-make and one synchronisation.
    pub(super) fn apply(&mut self, writes: Vec<SlotWrite>) {
        self.apply_change(Change { writes, ..Change::default() });
    }

    /// Applies a change: its slot writes with break-before-make, together
    /// with the in-place writes already made and their invalidations.
    pub(super) fn apply_change(&mut self, change: Change) {
        let Change { writes, mut invalidations, mut wrote, within } = change;
        let within = within.unwrap_or((0, u64::MAX));
        let mut doomed = core::mem::take(&mut self.scratch.doomed);
        if invalidations.list.capacity() == 0 {
            invalidations.list = core::mem::take(&mut self.scratch.invalidations);
        }
        // The slots to fill once the old entries are gone (by index in
        // `writes`), with what they hold then; a slot only cleared is done
        // at the break.
        let mut pending = core::mem::take(&mut self.scratch.pending);
        pending.reserve(writes.len());
        let mut any_table = false;
        let mut tally = counts::Tally::default();
        let mut i = 0;
        while let Some(w) = writes.get(i) {
            let old = self.hw.read_entry(w.table, w.index);
            if w.new == 0
                && let Kind::Leaf { global } = descriptor::kind(self.granule, w.level, old)
            {
                // A leaf cleared, and those after it (an unmap's usual
                // writes: a run's sixteen or more in a row), in a loop of
                // their own.
                i = self.clear_leaves(&writes, i, global, &mut invalidations, &mut tally);
                wrote = true;
                continue;
            }
            i += 1;
            if old == w.new {
                continue;
            }
            any_table |= matches!(descriptor::kind(self.granule, w.level, w.new), Kind::Table { .. });
            match descriptor::kind(self.granule, w.level, old) {
                Kind::Invalid if w.new != 0 => pending.push((i - 1, old)),
                Kind::Invalid => {}
                Kind::Leaf { global } => {
                    if w.new != 0 && descriptor::in_place_change_allowed(old, w.new) {
                        self.hw.write_entry(w.table, w.index, w.new);
                        tally.note(&mut self.counts, w.table, old, w.new);
                    } else {
                        self.hw.write_entry(w.table, w.index, 0);
                        tally.note(&mut self.counts, w.table, old, 0);
                        if w.new != 0 {
                            pending.push((i - 1, 0));
                        }
                    }
                    wrote = true;
                    invalidations.push(w.va, true, global);
                }
                Kind::Table { next } => {
                    self.hw.write_entry(w.table, w.index, 0);
                    tally.note(&mut self.counts, w.table, old, 0);
                    wrote = true;
                    if w.new != 0 {
                        pending.push((i - 1, 0));
                    }
                    if !self.collect_subtree(next, w.level + 1, w.va, within, &mut invalidations, &mut doomed) {
                        invalidations.push(w.va, false, self.half == Half::Upper);
                    }
                }
            }
        }
        if wrote || any_table {
            self.barrier(Barrier::DsbIshSt);
        }
        if !invalidations.is_empty() {
            invalidations.finish();
            if invalidations.broad {
                // One ASID-wide invalidation covers the tree's own entries
                // (leaves and walk cache) unless some are global.
                let op = match self.asid {
                    Some(asid) if !invalidations.any_global => Tlbi::Asid(asid),
                    _ => Tlbi::All,
                };
                self.tlbi(op);
            } else {
                for &(va, leaf_only, global) in &invalidations.list {
                    let asid = if global { None } else { self.asid };
                    self.tlbi(Tlbi::Va { va, asid, leaf_only });
                }
            }
            self.barrier(Barrier::DsbIsh);
        }
        let mut made = false;
        // Only slots that get a new valid descriptor are pending.
        for &(i, now) in &pending {
            let w = &writes[i];
            self.hw.write_entry(w.table, w.index, w.new);
            tally.note(&mut self.counts, w.table, now, w.new);
            made = true;
        }
        tally.flush(&mut self.counts);
        if made {
            self.barrier(Barrier::DsbIshSt);
        }
        for &(table, _) in &doomed {
            self.release_table(table);
        }
        keep(&mut self.scratch.writes, writes);
        keep(&mut self.scratch.pending, pending);
        keep(&mut self.scratch.doomed, doomed);
        keep(&mut self.scratch.invalidations, invalidations.list);
        if (wrote || made) && self.half == Half::Upper {
            self.barrier(Barrier::Isb);
        }
    }

    /// The break of `writes[i]`, a valid leaf (`global` or not) becoming
    /// invalid, and of each write after it that clears a valid leaf too:
    /// written invalid, counted and listed for invalidation. Returns the
    /// index of the first write it left (the caller reads that slot again).
    #[inline(always)]
    fn clear_leaves(
        &mut self,
        writes: &[SlotWrite],
        mut i: usize,
        mut global: bool,
        invalidations: &mut Invalidations,
        tally: &mut counts::Tally,
    ) -> usize {
        loop {
            let w = &writes[i];
            self.hw.write_entry(w.table, w.index, 0);
            // (A valid descriptor became invalid.)
            tally.note(&mut self.counts, w.table, 1, 0);
            invalidations.push(w.va, true, global);
            i += 1;
            let Some(next) = writes.get(i).filter(|next| next.new == 0) else { return i };
            match descriptor::kind(self.granule, next.level, self.hw.read_entry(next.table, next.index)) {
                Kind::Leaf { global: g } => global = g,
                _ => return i,
            }
        }
    }

    /// Records the invalidations a subtree's removal needs and its frames:
    /// one all-levels invalidation per leaf descriptor, which also drops the
    /// walk-cache entries on that address's path, so a table pointer needs
    /// its own only when nothing below it was invalidated. Returns whether
    /// anything inside the subtree's region was invalidated. A private
    /// table is read only over the slots overlapping `within` (where its
    /// valid descriptors lie) and only up to its last valid one.
    pub(super) fn collect_subtree(
        &mut self,
        table: u64,
        level: u8,
        table_va: u64,
        within: (u64, u64),
        inv: &mut Invalidations,
        doomed: &mut Vec<(u64, u8)>,
    ) -> bool {
        let size = self.level_size(level);
        let mut covered = false;
        if let Some(i) = self.shared.iter().position(|s| s.table == table) {
            // Linked elsewhere too: its leaves leave this slot's TLB entries;
            // the frame stays unless this was its last link, and then goes
            // with the change's other tables, after the invalidation.
            self.shared[i].links -= 1;
            if self.shared[i].links == 0 {
                self.shared.swap_remove(i);
                doomed.push((table, level));
            }
            if !inv.broad {
                for index in 0..self.entries(level) {
                    if let Entry::Leaf { attributes, .. } =
                        descriptor::decode(self.granule, level, self.hw.read_entry(table, index))
                    {
                        inv.push(table_va + index as u64 * size, false, attributes.global);
                    }
                }
            }
            inv.any_global |= self.half == Half::Upper;
            return true;
        }
        if level == 3 && inv.broad {
            // Past the threshold only tables matter, and a last-level table
            // has none; only whether a global entry is among its leaves
            // (which an ASID-wide invalidation would miss) is still needed.
            if !inv.any_global && self.half == Half::Lower && self.global_in_lower_half {
                let global = (0..self.entries(3)).any(|i| {
                    let d = self.hw.read_entry(table, i);
                    matches!(descriptor::decode(self.granule, 3, d), Entry::Leaf { attributes, .. } if attributes.global)
                });
                inv.any_global |= global;
            }
            doomed.push((table, level));
            return true;
        }
        let mut left = self.valid_entries(table).unwrap_or(u32::MAX);
        for (index, va) in self.slots_overlapping(level, table_va, within.0, within.1) {
            if left == 0 {
                break;
            }
            let d = self.hw.read_entry(table, index);
            left = left.saturating_sub(counts::is_valid(d) as u32);
            match descriptor::kind(self.granule, level, d) {
                Kind::Invalid => {}
                Kind::Leaf { global } => {
                    inv.push(va, false, global);
                    covered = true;
                }
                Kind::Table { next } => {
                    if !self.collect_subtree(next, level + 1, va, within, inv, doomed) {
                        inv.push(va, false, self.half == Half::Upper);
                    }
                    covered = true;
                }
            }
        }
        doomed.push((table, level));
        covered
    }

    /// Frees a private subtree of a tree no walker uses any more (for
    /// [`PageTable::empty`], which then forgets the counts), reading each
    /// table only up to its last valid descriptor.
    pub(super) fn free_subtree(&mut self, table: u64, level: u8) {
        if self.is_shared(table) {
            return;
        }
        if level < 3 {
            let mut left = self.valid_entries(table).unwrap_or(u32::MAX);
            for index in 0..self.entries(level) {
                if left == 0 {
                    break;
                }
                let d = self.hw.read_entry(table, index);
                left = left.saturating_sub(counts::is_valid(d) as u32);
                if let Entry::Table { next } = descriptor::decode(self.granule, level, d) {
                    self.free_subtree(next, level + 1);
                }
            }
        }
        self.hw.free_table(table);
        self.stats.tables_in_use -= 1;
    }

    pub(super) fn barrier(&mut self, b: Barrier) {
        match b {
            Barrier::Isb => self.stats.isb += 1,
            _ => self.stats.dsb += 1,
        }
        self.hw.barrier(b);
    }

    pub(super) fn tlbi(&mut self, op: Tlbi) {
        self.stats.tlbi += 1;
        self.hw.tlbi(op);
    }
}
