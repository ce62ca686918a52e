//! The stage-1 page-table engine: one implementation for the 4K, 16K and 64K
//! granules, 48-bit virtual addresses, either half of the address space.
//!
//! Owns: the contents of one translation table tree and every change to it.
//! Every change to a live entry goes through `PageTable::apply` ([`bbm`]), which
//! performs break-before-make the way the architecture demands:
//!
//! 1. write invalid descriptors (or, for a change of permissions only, the
//!    new descriptor in place),
//! 2. `dsb ishst`, one TLB invalidation by address per old leaf
//!    descriptor (a contiguous run's entries each: a TLB may hold them
//!    separately) or per table pointer with nothing invalidated below it
//!    (or one ASID-wide / global invalidation above [`TLBI_THRESHOLD`]
//!    addresses), `dsb ish`,
//! 3. write the new descriptors, `dsb ishst` (and `isb` for kernel tables),
//! 4. only then free table frames that are no longer reachable.
//!
//! Contiguous runs are set only when the run is aligned and uniform, and a
//! live run is always rewritten whole. Table frames come from, and go back
//! to, the [`PageTableHw`] implementation (the frame allocator in the
//! kernel, simulated memory in host tests).
//! Must never: change a live output address, block size or contiguous bit in
//! place; free a table frame before the walk cache has been invalidated; map
//! anything writable and executable.
//!
//! # Rooms
//!
//! - [`types`]: what the engine speaks in (units, policies, errors, the
//!   hardware trait, barriers and invalidations).
//! - this file: the tree itself and its address arithmetic.
//! - [`walk`]: reading a tree (tables, leaves, translations, coverage).
//! - [`map`]: making mappings (largest legal units, shared last-level tables).
//! - [`change`]: unmap, protect, remap, split and coalesce, planned as
//!   slot writes.
//! - [`counts`]: how many valid descriptors each table holds, so an empty
//!   table is known without reading it.
//! - [`bbm`]: the one place a live entry changes: break-before-make, TLB
//!   invalidation, and freeing tables only after the walk cache is clean.

mod bbm;
mod change;
mod counts;
mod map;
mod scratch;
mod types;
mod walk;

use alloc::vec::Vec;

use super::descriptor::{self, Attributes, Entry};
use crate::mm::Granule;
use bbm::{Change, SlotWrite};
use counts::ValidCounts;
pub use types::*;

/// One level of a tree's walks, worked out at compile time for each
/// granule: a walk asks at every level how many slots a table has and how
/// much each maps, which is a few matches and shifts of the granule's
/// arithmetic each time. (Tables per granule, not per tree: a tree lives
/// inside each task's record, which stays small.)
#[derive(Clone, Copy)]
struct Level {
    /// log2 of the bytes one slot maps.
    shift: u32,
    entries: usize,
}

/// The levels of `granule`'s trees, by level number (those above the start
/// level unused).
const fn levels(granule: Granule) -> [Level; 4] {
    let mut levels = [Level { shift: 0, entries: 1 }; 4];
    let mut level = granule.start_level();
    while level <= 3 {
        levels[level as usize] = Level { shift: granule.level_shift(level), entries: granule.entries(level) };
        level += 1;
    }
    levels
}

static LEVELS: [[Level; 4]; 3] = [levels(Granule::K4), levels(Granule::K16), levels(Granule::K64)];

/// A translation table tree and the machine it lives on.
pub struct PageTable<H: PageTableHw> {
    hw: H,
    granule: Granule,
    half: Half,
    asid: Option<u16>,
    root: u64,
    stats: Stats,
    /// Whether a global mapping was ever made in a lower-half tree: only
    /// then can an ASID-wide invalidation miss something.
    global_in_lower_half: bool,
    /// Last-level tables linked from several slots (see
    /// [`PageTable::link_shared`]): never written, never freed with a
    /// subtree but with their last link; a change inside one first gives the
    /// slot a private copy.
    shared: Vec<SharedTable>,
    /// The valid descriptors of every private table.
    counts: ValidCounts,
    /// Buffers for planning and applying changes, reused.
    scratch: scratch::Scratch,
}

/// A shared last-level table: every descriptor is `leaf`; `links` slots
/// point at it.
pub(super) struct SharedTable {
    pub(super) table: u64,
    pub(super) leaf: u64,
    pub(super) links: u64,
}

impl<H: PageTableHw> PageTable<H> {
    /// Changes the ASID this tree's invalidations use (the task got a new
    /// one at an ASID rollover, after every entry of the old was flushed).
    pub fn set_asid(&mut self, asid: u16) {
        if self.asid.is_some() {
            self.asid = Some(asid);
        }
    }

    /// An empty tree. `asid` tags non-global (user) mappings' invalidations.
    pub fn new(mut hw: H, granule: Granule, half: Half, asid: Option<u16>) -> Result<Self, PagingError> {
        let mut counts = ValidCounts::default();
        counts.reserve_one()?;
        let root = hw.alloc_table().ok_or(PagingError::OutOfTableFrames)?;
        counts.insert(root, granule.start_level(), 0);
        Ok(PageTable {
            hw,
            granule,
            half,
            asid,
            root,
            stats: Stats { tables_in_use: 1, ..Stats::default() },
            global_in_lower_half: false,
            shared: Vec::new(),
            counts,
            scratch: scratch::Scratch::with_room(),
        })
    }

    /// The root table's physical address (for TTBR0/TTBR1).
    pub fn root(&self) -> u64 {
        self.root
    }

    pub fn granule(&self) -> Granule {
        self.granule
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The change buffers' room and length, for the tests.
    #[cfg(test)]
    pub(crate) fn scratch_kept(&self) -> [(usize, usize); 4] {
        self.scratch.kept()
    }

    pub fn hw(&mut self) -> &mut H {
        &mut self.hw
    }

    /// Frees every table frame but the root, whose entries become invalid:
    /// what a dead task's tree gives back while the root stays with its
    /// slot until [`PageTable::destroy`]. As for `destroy`, the tree must no
    /// longer be in use by any walker (its TTBR switched away everywhere
    /// and its ASID invalidated), so no break-before-make is needed.
    pub fn empty(&mut self) {
        let level = self.granule.start_level();
        let mut left = self.valid_entries(self.root, self.granule.start_level()).unwrap_or(u32::MAX);
        for index in 0..self.entries(level) {
            if left == 0 {
                break;
            }
            let entry = self.hw.read_entry(self.root, index);
            if let Entry::Table { next } = descriptor::decode(self.granule, level, entry) {
                self.free_subtree(next, level + 1);
            }
            if entry != 0 {
                self.hw.write_entry(self.root, index, 0);
                left -= counts::is_valid(entry) as u32;
            }
        }
        for s in core::mem::take(&mut self.shared) {
            self.hw.free_table(s.table);
            self.stats.tables_in_use -= 1;
        }
        self.counts.keep_only_empty(self.root);
    }

    /// Frees every table frame; the tree must no longer be in use by any
    /// walker (its TTBR switched away and the ASID or TLB invalidated).
    pub fn destroy(mut self) -> H {
        self.empty();
        self.hw.free_table(self.root);
        self.hw
    }

    // ---- addresses ------------------------------------------------------

    fn check_range(&self, va: u64, size: u64) -> Result<(), PagingError> {
        let last = va.checked_add(size - 1).ok_or(PagingError::OutOfRange { address: va })?;
        let inside = |a: u64| match self.half {
            Half::Lower => a <= VA_MASK,
            Half::Upper => a >= UPPER_BASE,
        };
        if inside(va) && inside(last) { Ok(()) } else { Err(PagingError::OutOfRange { address: va }) }
    }

    fn check_aligned(&self, values: &[u64]) -> Result<(), PagingError> {
        match values.iter().find(|&&v| v & (self.granule.size() - 1) != 0) {
            Some(&value) => Err(PagingError::Misaligned { value }),
            None => Ok(()),
        }
    }

    fn index(&self, va: u64, level: u8) -> usize {
        let Level { shift, entries } = self.level(level);
        ((va & VA_MASK) >> shift) as usize & (entries - 1)
    }

    #[inline(always)]
    fn level(&self, level: u8) -> Level {
        // (Levels are 0 to 3: the mask spares a bounds check.)
        LEVELS[self.granule.index()][usize::from(level) & 3]
    }

    /// Bytes one slot at `level` maps.
    #[inline(always)]
    fn level_size(&self, level: u8) -> u64 {
        1 << self.level(level).shift
    }

    /// Slots in a table at `level`.
    #[inline(always)]
    fn entries(&self, level: u8) -> usize {
        self.level(level).entries
    }

    /// The indices of the slots of the table at `level` whose region starts
    /// at `table_va` that overlap [start, last].
    #[inline(always)]
    fn slot_range(&self, level: u8, table_va: u64, start: u64, last: u64) -> core::ops::Range<usize> {
        let Level { shift, entries } = self.level(level);
        let table_last = table_va + (((entries as u64) << shift) - 1);
        let first = ((start.max(table_va) - table_va) >> shift) as usize;
        let end = (((last.min(table_last) - table_va) >> shift) as usize + 1).min(entries);
        first..end
    }

    /// [`PageTable::slot_range`]'s slots with their first addresses.
    fn slots_overlapping(
        &self,
        level: u8,
        table_va: u64,
        start: u64,
        last: u64,
    ) -> impl Iterator<Item = (usize, u64)> + use<H> {
        let size = self.level_size(level);
        self.slot_range(level, table_va, start, last).map(move |i| (i, table_va + i as u64 * size))
    }

    /// The canonical virtual address of a region base within this half.
    fn canonical(&self, stripped: u64) -> u64 {
        match self.half {
            Half::Lower => stripped,
            Half::Upper => stripped | UPPER_BASE,
        }
    }
}
