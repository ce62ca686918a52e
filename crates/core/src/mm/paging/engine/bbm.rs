//! Break-before-make: the one place a live entry changes.
//!
//! A [`Change`] (slot writes that need a break, permission changes already
//! written in place, and what they invalidate) is applied in the order the
//! architecture demands: invalid descriptors, `dsb ishst`, TLB invalidation,
//! `dsb ish`, the new descriptors, `dsb ishst` (and `isb` for kernel tables),
//! and only then are unreachable table frames freed. A change of one
//! live slot whose old descriptor is a leaf, or a table holding nothing,
//! takes the same sequence without the change's lists (`apply_one`).
//! Must never: write a new output address, block size or contiguous bit over
//! a live entry, or free a table before its walk-cache entries are gone.

use super::scratch::keep;
use super::*;
use crate::mm::paging::descriptor::Kind;

/// One slot to rewrite: descriptor `index` of `table` (at `level`), which
/// maps from virtual address `va`; or, for a whole contiguous run being
/// cleared, its `slots` entries from `index` on (`new` is then 0).
#[derive(Clone, Copy, Debug)]
pub(super) struct SlotWrite {
    pub(super) table: u64,
    pub(super) index: usize,
    pub(super) level: u8,
    /// 1, or a cleared contiguous run's entries: they are written invalid,
    /// counted and listed for invalidation together, not one by one.
    pub(super) slots: u16,
    pub(super) va: u64,
    pub(super) new: u64,
}

impl SlotWrite {
    /// Descriptor `index` of `table` (at `level`, mapping from `va`) becomes `new`.
    pub(super) fn one(table: u64, index: usize, level: u8, va: u64, new: u64) -> SlotWrite {
        SlotWrite { table, index, level, slots: 1, va, new }
    }
}

/// TLB invalidations by address: `count` addresses from `va`, each
/// `1 << shift` bytes after the one before (a cleared contiguous run's
/// entries), of the leaf only or of every level, global or for the tree's
/// ASID.
#[derive(Clone, Copy, Debug)]
pub(super) struct Invalidation {
    pub(super) va: u64,
    pub(super) count: u16,
    pub(super) shift: u8,
    pub(super) leaf_only: bool,
    pub(super) global: bool,
}

impl Invalidation {
    /// The last address it invalidates.
    fn last(&self) -> u64 {
        self.va + (u64::from(self.count - 1) << self.shift)
    }
}

/// The invalidations one change needs. Past [`TLBI_THRESHOLD`] addresses
/// the list is dropped for one broad invalidation, so large changes cost
/// nothing here.
#[derive(Default)]
pub(super) struct Invalidations {
    pub(super) list: Vec<Invalidation>,
    /// The addresses `list` holds (a run counts each of its entries; at
    /// most twice the threshold. 32 bits keep the whole struct 32 bytes,
    /// moved in registers rather than by `memcpy`).
    listed: u32,
    pub(super) broad: bool,
    pub(super) any_global: bool,
    /// Whether an address was pushed that is not above the ones before. A
    /// change's writes mostly come in address order, and then no entry
    /// can cover another: the list needs no sorting or deduplication, and
    /// is broad as soon as it passes the threshold.
    unordered: bool,
}

impl Invalidations {
    /// Records an invalidation of one address.
    #[inline(always)]
    pub(super) fn push(&mut self, va: u64, leaf_only: bool, global: bool) {
        self.push_run(Invalidation { va, count: 1, shift: 0, leaf_only, global });
    }

    /// Records invalidations (a run's: `count` addresses). Once broad,
    /// only whether they are global matters (checked here, inline: a large
    /// change's pushes are mostly past the threshold).
    #[inline(always)]
    pub(super) fn push_run(&mut self, inv: Invalidation) {
        self.any_global |= inv.global;
        if self.broad {
            return;
        }
        // The common case inline: addresses rising, below the threshold,
        // room kept.
        let count = u32::from(inv.count);
        if !self.unordered
            && self.listed + count <= TLBI_THRESHOLD as u32
            && self.list.len() < self.list.capacity()
            && self.list.last().is_none_or(|last| last.last() < inv.va)
        {
            self.list.push(inv);
            self.listed += count;
            return;
        }
        self.push_listed(inv);
    }

    #[inline(never)]
    fn push_listed(&mut self, inv: Invalidation) {
        if self.list.last().is_some_and(|last| inv.va <= last.last()) {
            self.unordered = true;
        }
        let count = u32::from(inv.count);
        let bound = 2 * TLBI_THRESHOLD as u32;
        if self.listed + count > bound {
            self.finish();
            if self.broad || self.listed + count > bound {
                self.go_broad();
                return;
            }
        }
        self.list.push(inv);
        self.listed += count;
        if !self.unordered && self.listed > TLBI_THRESHOLD as u32 {
            self.go_broad();
        }
    }

    fn go_broad(&mut self) {
        self.broad = true;
        self.list.clear();
        self.listed = 0;
    }

    /// Removes what another entry already covers: a by-VA invalidation of
    /// all levels at an address also removes the leaf and walk-cache entries
    /// a leaf-only one at it would. Afterwards the addresses are distinct
    /// and in order.
    #[inline(always)]
    pub(super) fn finish(&mut self) {
        if self.unordered {
            self.sort_singly();
        }
        if self.listed > TLBI_THRESHOLD as u32 {
            self.go_broad();
        }
    }

    /// An unordered list, address by address (its runs listed entry by
    /// entry), sorted and without what is covered twice.
    #[inline(never)]
    fn sort_singly(&mut self) {
        let runs = self.list.len();
        for i in 0..runs {
            let run = self.list[i];
            for k in 1..u64::from(run.count) {
                self.list.push(Invalidation { va: run.va + (k << run.shift), count: 1, shift: 0, ..run });
            }
            self.list[i].count = 1;
        }
        self.list.sort_unstable_by_key(|i| (i.va, i.leaf_only, !i.global));
        self.list.dedup_by(|later, earlier| {
            later.va == earlier.va && (!earlier.leaf_only || later.leaf_only == earlier.leaf_only)
        });
        self.listed = self.list.len() as u32;
        self.unordered = false;
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
        if let [one] = change.writes[..]
            && !change.wrote
            && change.invalidations.is_empty()
            && self.apply_one(&one)
        {
            keep(&mut self.scratch.writes, change.writes);
            return;
        }
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
            // (Only a cleared run covers several slots, and it is a leaf's.)
            debug_assert_eq!(w.slots, 1);
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
                        tally.note(&mut self.counts, w.table, w.level, old, w.new);
                    } else {
                        self.hw.write_entry(w.table, w.index, 0);
                        tally.note(&mut self.counts, w.table, w.level, old, 0);
                        if w.new != 0 {
                            pending.push((i - 1, 0));
                        }
                    }
                    wrote = true;
                    invalidations.push(w.va, true, global);
                }
                Kind::Table { next } => {
                    self.hw.write_entry(w.table, w.index, 0);
                    tally.note(&mut self.counts, w.table, w.level, old, 0);
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
                for inv in &invalidations.list {
                    let asid = if inv.global { None } else { self.asid };
                    // (Locals: the TLBI's inline assembly may touch memory,
                    // so fields would be read again for every address.)
                    let (mut va, step, leaf_only) = (inv.va, 1u64 << inv.shift, inv.leaf_only);
                    self.stats.tlbi += u64::from(inv.count);
                    for _ in 0..inv.count {
                        self.hw.tlbi(Tlbi::Va { va, asid, leaf_only });
                        va += step;
                    }
                }
            }
            self.barrier(Barrier::DsbIsh);
        }
        let mut made = false;
        // Only slots that get a new valid descriptor are pending.
        for &(i, now) in &pending {
            let w = &writes[i];
            self.hw.write_entry(w.table, w.index, w.new);
            tally.note(&mut self.counts, w.table, w.level, now, w.new);
            made = true;
        }
        tally.flush(&mut self.counts);
        if made {
            self.barrier(Barrier::DsbIshSt);
        }
        for &(table, level) in &doomed {
            self.release_table(table, level);
        }
        keep(&mut self.scratch.writes, writes);
        keep(&mut self.scratch.pending, pending);
        keep(&mut self.scratch.doomed, doomed);
        keep(&mut self.scratch.invalidations, invalidations.list);
        if (wrote || made) && self.half == Half::Upper {
            self.barrier(Barrier::Isb);
        }
    }

    /// A change of one live slot, the commonest (an unmap of one block, a
    /// block over a table the tree kept empty, a split's table over its
    /// block), in [`PageTable::apply_change`]'s sequence without its lists:
    /// the slot made invalid, `dsb ishst`, one TLBI (of the leaf, or of
    /// every level for a table pointer), `dsb ish`, the new descriptor and
    /// `dsb ishst`, `isb` for kernel tables, and only then the emptied
    /// table's frame freed. Only for a valid leaf that is cleared or
    /// replaced (not changed in place) and for a private table holding no
    /// valid descriptor; `false`, with nothing touched, for anything else.
    fn apply_one(&mut self, w: &SlotWrite) -> bool {
        if w.slots != 1 {
            return false;
        }
        let old = self.hw.read_entry(w.table, w.index);
        if old == w.new {
            return false;
        }
        let (leaf_only, global, emptied) = match descriptor::kind(self.granule, w.level, old) {
            Kind::Leaf { global } if w.new == 0 || !descriptor::in_place_change_allowed(old, w.new) => {
                (true, global, None)
            }
            Kind::Table { next } if self.is_kept_empty(next, w.level + 1) => {
                // Nothing below it: only the walk cache's entries for this
                // address's path, all levels.
                (false, self.half == Half::Upper, Some(next))
            }
            _ => return false,
        };
        self.hw.write_entry(w.table, w.index, 0);
        self.barrier(Barrier::DsbIshSt);
        let asid = if global { None } else { self.asid };
        self.tlbi(Tlbi::Va { va: w.va, asid, leaf_only });
        self.barrier(Barrier::DsbIsh);
        if w.new != 0 {
            // Valid before and after: the table's count stays.
            self.hw.write_entry(w.table, w.index, w.new);
            self.barrier(Barrier::DsbIshSt);
        } else {
            self.counts.adjust(w.table, w.level, -1);
        }
        if let Some(table) = emptied {
            self.release_table(table, w.level + 1);
        }
        if self.half == Half::Upper {
            self.barrier(Barrier::Isb);
        }
        true
    }

    /// The break of `writes[i]`, a valid leaf (`global` or not) or a whole
    /// contiguous run of them becoming invalid, and of each write after it
    /// that clears valid leaves too: written invalid, counted and listed
    /// for invalidation (a run's entries in one loop, one count and one
    /// list entry). Returns the index of the first write it left (the
    /// caller reads that slot again).
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
            for index in w.index..w.index + usize::from(w.slots) {
                self.hw.write_entry(w.table, index, 0);
            }
            // (Valid descriptors became invalid.)
            tally.add(&mut self.counts, w.table, w.level, -i32::from(w.slots));
            let shift = self.level(w.level).shift as u8;
            invalidations.push_run(Invalidation { va: w.va, count: w.slots, shift, leaf_only: true, global });
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
        let mut left = self.valid_entries(table, level).unwrap_or(u32::MAX);
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
            let mut left = self.valid_entries(table, level).unwrap_or(u32::MAX);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(va: u64, count: u16, leaf_only: bool) -> Invalidation {
        Invalidation { va, count, shift: 12, leaf_only, global: false }
    }

    /// The addresses a list invalidates, in order, with whether leaf-only.
    fn addresses(inv: &Invalidations) -> Vec<(u64, bool)> {
        let mut out = Vec::new();
        for i in &inv.list {
            for k in 0..u64::from(i.count) {
                out.push((i.va + (k << i.shift), i.leaf_only));
            }
        }
        out
    }

    /// A run in address order stays one entry; its addresses count against
    /// the threshold one by one.
    #[test]
    fn runs_in_order_stay_whole_and_count_each_address() {
        let mut inv = Invalidations::default();
        inv.list.reserve(8);
        inv.push_run(run(0x10000, 16, true));
        inv.push(0x30000, true, false);
        inv.finish();
        assert_eq!(inv.list.len(), 2);
        assert_eq!(inv.listed, 17);
        let want: Vec<_> = (0..16).map(|k| (0x10000 + k * 0x1000, true)).chain([(0x30000, true)]).collect();
        assert_eq!(addresses(&inv), want);
        // Up to the threshold by addresses, not entries: then broad.
        let mut inv = Invalidations::default();
        inv.push_run(run(0, 64, true));
        inv.finish();
        assert!(!inv.broad);
        inv.push(64 << 12, true, false);
        inv.finish();
        assert!(inv.broad && inv.list.is_empty() && inv.listed == 0);
        let mut inv = Invalidations::default();
        inv.push_run(run(0, 128, true));
        inv.finish();
        assert!(inv.broad);
    }

    /// Out of order, runs are listed address by address, sorted, and an
    /// all-levels invalidation absorbs a leaf-only one at its address.
    #[test]
    fn unordered_runs_are_listed_singly_sorted_and_deduplicated() {
        let mut inv = Invalidations::default();
        inv.push_run(run(0x20000, 16, true));
        inv.push(0x23000, false, false);
        inv.push_run(run(0x10000, 4, true));
        inv.finish();
        let mut want: Vec<_> = (0..4).map(|k| (0x10000 + k * 0x1000, true)).collect();
        want.extend((0..16).map(|k| (0x20000 + k * 0x1000, k != 3)));
        assert_eq!(addresses(&inv), want);
        assert!(inv.list.iter().all(|i| i.count == 1));
        assert_eq!(inv.listed as usize, inv.list.len());
        assert!(!inv.broad);
    }
}
