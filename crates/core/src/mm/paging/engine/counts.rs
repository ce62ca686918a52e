//! How many valid descriptors each private table of a tree holds, so that
//! whether a table is empty is one comparison instead of a read of all its
//! entries (512 on 4K, 2,048 on 16K, 8,192 on 64K), and freeing a tree
//! reads no further into a table than its last valid entry.
//!
//! Owns: one count per private table of the tree (the root included), kept
//! in a vector sorted by the table's physical address. Shared last-level
//! tables ([`super::map`]) are not counted: they are full and never written.
//! Must never: disagree with a table's contents. Every write to a private
//! table goes through [`PageTable::store`] or fills a table made with
//! [`PageTable::new_table`] with the count given there; the host tests check
//! every count against the tables after every step.

use super::*;

/// Lookup hints kept, one per level (8 bytes: a tree lives in each task's
/// record).
const HINTS: usize = 4;

/// The valid-descriptor count of every private table of one tree.
#[derive(Default)]
pub(super) struct ValidCounts {
    /// (table, valid descriptors), sorted by table.
    tables: Vec<(u64, u32)>,
    /// Where the last lookup of a table at each level landed: a walk looks
    /// up one table per level in turn, and a change's writes come in runs
    /// within one table, so each level's hint mostly names the table asked
    /// for, whatever the tables' addresses. A hint is checked against the
    /// table it names before use (inserts and removals move positions).
    hints: [u16; HINTS],
    /// How many counted tables hold no valid descriptor (the root among
    /// them when the tree is empty).
    zeros: usize,
}

impl ValidCounts {
    /// Where `table`, a table at `level`, is (or would be) in the list.
    #[inline(always)]
    fn position(&mut self, table: u64, level: u8) -> Result<usize, usize> {
        let slot = usize::from(level) % HINTS;
        let hint = usize::from(self.hints[slot]);
        if self.tables.get(hint).is_some_and(|&(t, _)| t == table) {
            return Ok(hint);
        }
        let found = self.tables.binary_search_by_key(&table, |&(t, _)| t);
        if let Ok(i) = found
            && let Ok(i) = u16::try_from(i)
        {
            self.hints[slot] = i;
        }
        found
    }

    /// Room for one more table, so that [`ValidCounts::insert`] cannot fail.
    pub(super) fn reserve_one(&mut self) -> Result<(), PagingError> {
        self.tables.try_reserve(1).map_err(|_| PagingError::OutOfTableFrames)
    }

    /// Starts counting `table` (at `level`) at `valid` (after
    /// [`ValidCounts::reserve_one`]).
    pub(super) fn insert(&mut self, table: u64, level: u8, valid: u32) {
        match self.position(table, level) {
            Ok(i) => {
                self.zeros -= (self.tables[i].1 == 0) as usize;
                self.tables[i].1 = valid;
            }
            Err(i) => self.tables.insert(i, (table, valid)),
        }
        self.zeros += (valid == 0) as usize;
    }

    /// Stops counting `table` (it is being freed).
    pub(super) fn remove(&mut self, table: u64, level: u8) {
        if let Ok(i) = self.position(table, level) {
            let (_, valid) = self.tables.remove(i);
            self.zeros -= (valid == 0) as usize;
        }
    }

    /// The valid descriptors of `table`; `None` for a table not counted (a
    /// shared one), which callers must treat as possibly non-empty.
    pub(super) fn get(&mut self, table: u64, level: u8) -> Option<u32> {
        self.position(table, level).ok().map(|i| self.tables[i].1)
    }

    /// `table` gained (`delta` > 0) or lost valid descriptors.
    pub(super) fn adjust(&mut self, table: u64, level: u8, delta: i32) {
        if delta == 0 {
            return;
        }
        if let Ok(i) = self.position(table, level) {
            let count = &mut self.tables[i].1;
            let was_zero = *count == 0;
            *count = count.saturating_add_signed(delta);
            self.zeros = self.zeros + (*count == 0) as usize - was_zero as usize;
        }
    }

    /// How many counted tables hold no valid descriptor.
    pub(super) fn zeros(&self) -> usize {
        self.zeros
    }

    /// Forgets every table but `root`, which is left counted at zero (its
    /// tree was emptied).
    pub(super) fn keep_only_empty(&mut self, root: u64) {
        self.tables.clear();
        self.tables.push((root, 0));
        self.hints = [0; HINTS];
        self.zeros = 1;
    }

    /// How many tables are counted.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.tables.len()
    }
}

/// Count changes gathered over a run of writes and applied once per table:
/// a change's writes come in runs within one table (a contiguous run is up
/// to 128 of them).
#[derive(Default)]
pub(super) struct Tally {
    table: u64,
    level: u8,
    delta: i32,
}

impl Tally {
    /// Descriptor `old` of `table` (at `level`) became `new`.
    #[inline(always)]
    pub(super) fn note(&mut self, counts: &mut ValidCounts, table: u64, level: u8, old: u64, new: u64) {
        self.add(counts, table, level, is_valid(new) as i32 - is_valid(old) as i32);
    }

    /// `table` (at `level`) gained (`delta` > 0) or lost valid descriptors.
    #[inline(always)]
    pub(super) fn add(&mut self, counts: &mut ValidCounts, table: u64, level: u8, delta: i32) {
        if delta == 0 {
            return;
        }
        if table != self.table {
            self.flush(counts);
            self.table = table;
            self.level = level;
        }
        self.delta += delta;
    }

    /// Applies what was gathered.
    pub(super) fn flush(&mut self, counts: &mut ValidCounts) {
        counts.adjust(self.table, self.level, self.delta);
        self.delta = 0;
    }
}

/// Whether descriptor `d` is valid (bit 0).
#[inline(always)]
pub(super) fn is_valid(d: u64) -> bool {
    d & 1 != 0
}

impl<H: PageTableHw> PageTable<H> {
    /// A zeroed table frame for `level`, counted with `valid` descriptors:
    /// the caller fills exactly that many before publishing it.
    pub(super) fn new_table(&mut self, level: u8, valid: u32) -> Result<u64, PagingError> {
        self.counts.reserve_one()?;
        let table = self.hw.alloc_table().ok_or(PagingError::OutOfTableFrames)?;
        self.stats.tables_in_use += 1;
        self.counts.insert(table, level, valid);
        Ok(table)
    }

    /// Gives a table frame (at `level`) back, after the walk cache is
    /// clean of it.
    pub(super) fn release_table(&mut self, table: u64, level: u8) {
        self.counts.remove(table, level);
        self.hw.free_table(table);
        self.stats.tables_in_use -= 1;
    }

    /// Writes descriptor `index` of private table `table` (at `level`),
    /// which held `old`, keeping the table's count.
    pub(super) fn store(&mut self, table: u64, level: u8, index: usize, old: u64, new: u64) {
        self.hw.write_entry(table, index, new);
        self.counts.adjust(table, level, is_valid(new) as i32 - is_valid(old) as i32);
    }

    /// Tables other than the root that hold no valid descriptor: kept by
    /// [`PageTable::unmap_keeping_tables`].
    pub fn empty_tables(&mut self) -> usize {
        let root_empty = self.valid_entries(self.root, self.granule.start_level()) == Some(0);
        self.counts.zeros() - root_empty as usize
    }

    /// The valid descriptors of private table `table` (at `level`); `None`
    /// for a shared table, which must never be taken for empty.
    pub(super) fn valid_entries(&mut self, table: u64, level: u8) -> Option<u32> {
        self.counts.get(table, level)
    }

    /// Checks every private table's count against its contents, and that
    /// exactly the reachable private tables are counted.
    #[cfg(test)]
    pub(crate) fn check_valid_counts(&mut self) -> Result<(), alloc::string::String> {
        let mut stack = alloc::vec![(self.root, self.granule.start_level())];
        let mut private = 0;
        while let Some((table, level)) = stack.pop() {
            if self.is_shared(table) {
                continue;
            }
            private += 1;
            let mut valid = 0;
            for index in 0..self.entries(level) {
                let d = self.hw.read_entry(table, index);
                valid += is_valid(d) as u32;
                if let Entry::Table { next } = descriptor::decode(self.granule, level, d) {
                    stack.push((next, level + 1));
                }
            }
            if self.counts.get(table, level) != Some(valid) {
                return Err(alloc::format!(
                    "table {table:#x} at level {level} holds {valid} valid descriptors, counted {:?}",
                    self.counts.get(table, level)
                ));
            }
        }
        if private != self.counts.len() {
            return Err(alloc::format!("{} tables counted, {private} private tables reachable", self.counts.len()));
        }
        let zeros = self.counts.tables.iter().filter(|&&(_, valid)| valid == 0).count();
        if zeros != self.counts.zeros() {
            return Err(alloc::format!("{zeros} empty tables, counted {}", self.counts.zeros()));
        }
        Ok(())
    }
}
