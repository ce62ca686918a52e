//! The stage-1 page-table engine: one implementation for the 4K, 16K and 64K
//! granules, 48-bit virtual addresses, either half of the address space.
//!
//! Owns: the contents of one translation table tree and every change to it.
//! Every change to a live entry goes through [`PageTable::apply`], which
//! performs break-before-make the way the architecture demands:
//!
//! 1. write invalid descriptors (or, for a change of permissions only, the
//!    new descriptor in place),
//! 2. `dsb ishst`, one TLB invalidation per old mapping unit (or one
//!    ASID-wide / global invalidation above [`TLBI_THRESHOLD`]), `dsb ish`,
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

use alloc::vec::Vec;
use core::fmt;

use super::descriptor::{self, Attributes, Entry};
use crate::mm::Granule;

/// Above this many invalidations in one change, one ASID-wide (or, for
/// global mappings, one all-entries) invalidation is cheaper.
pub const TLBI_THRESHOLD: usize = 64;

const VA_BITS: u32 = 48;
const VA_MASK: u64 = (1 << VA_BITS) - 1;
const UPPER_BASE: u64 = !VA_MASK;

/// Barriers the engine issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Barrier {
    /// `dsb ishst`: descriptor writes visible to every walker.
    DsbIshSt,
    /// `dsb ish`: TLB invalidations complete everywhere.
    DsbIsh,
    Isb,
}

/// TLB invalidations, inner shareable (broadcast to every core).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tlbi {
    /// By VA: `vae1is`/`vale1is` with an ASID, `vaae1is`/`vaale1is` for
    /// global mappings (`asid: None`). `leaf_only` keeps walk-cache entries.
    Va { va: u64, asid: Option<u16>, leaf_only: bool },
    /// `aside1is`: everything tagged with one ASID.
    Asid(u16),
    /// `vmalle1is`: everything.
    All,
}

impl Tlbi {
    /// The register operand of a by-VA invalidation: VA[55:12] in bits
    /// [43:0] (4 KiB units whatever the granule, upper-half sign bits masked
    /// off so they cannot spill into the TTL field), ASID in [63:48].
    pub fn operand(va: u64, asid: Option<u16>) -> u64 {
        ((va >> 12) & ((1 << 44) - 1)) | ((asid.unwrap_or(0) as u64) << 48)
    }
}

/// What the engine needs from the machine: table frames, descriptor access,
/// barriers and TLB maintenance.
pub trait PageTableHw {
    /// A zeroed frame of one granule for a table, or `None` when memory is out.
    fn alloc_table(&mut self) -> Option<u64>;
    /// Returns a table frame. Only called after the walk cache is clean.
    fn free_table(&mut self, table: u64);
    fn read_entry(&mut self, table: u64, index: usize) -> u64;
    fn write_entry(&mut self, table: u64, index: usize, value: u64);
    fn barrier(&mut self, barrier: Barrier);
    fn tlbi(&mut self, op: Tlbi);
}

/// One mapping unit: a descriptor at `level`, or a contiguous run of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unit {
    pub level: u8,
    pub contiguous: bool,
}

impl Unit {
    pub const PAGE: Unit = Unit { level: 3, contiguous: false };

    pub fn entries(&self, granule: Granule) -> usize {
        if self.contiguous { granule.contiguous_entries(self.level).unwrap_or(1) } else { 1 }
    }

    pub fn size(&self, granule: Granule) -> u64 {
        granule.level_size(self.level) * self.entries(granule) as u64
    }

    /// Whether this unit exists under `granule`.
    pub fn is_supported(&self, granule: Granule) -> bool {
        self.level >= granule.start_level()
            && granule.leaf_allowed(self.level)
            && (!self.contiguous || granule.contiguous_entries(self.level).is_some())
    }

    /// Every unit of `granule`, largest first.
    pub fn all_largest_first(granule: Granule) -> impl Iterator<Item = Unit> {
        (granule.start_level()..=3)
            .flat_map(|level| [Unit { level, contiguous: true }, Unit { level, contiguous: false }])
            .filter(move |u| u.is_supported(granule))
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.level == 3 { "page" } else { "block" };
        if self.contiguous {
            write!(f, "contiguous L{} {kind} run", self.level)
        } else {
            write!(f, "L{} {kind}", self.level)
        }
    }
}

/// How [`PageTable::map`] chooses units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// The largest architecturally legal unit at each position.
    Largest,
    /// Exactly this unit everywhere (the range must be a multiple of it).
    Force(Unit),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingError {
    /// An address or size not aligned to what the operation needs.
    Misaligned {
        value: u64,
    },
    /// A virtual address outside this table's half of the address space, or
    /// a physical address beyond 48 bits.
    OutOfRange {
        address: u64,
    },
    /// Writable and executable, or user memory executable by the kernel.
    ForbiddenAttributes,
    UnsupportedUnit(Unit),
    AlreadyMapped {
        va: u64,
    },
    NotMapped {
        va: u64,
    },
    /// No frame for a new table. Nothing was changed.
    OutOfTableFrames,
    /// The unit at this address is a single page: nothing smaller exists.
    CannotSplit {
        va: u64,
    },
    /// The range is not one physically contiguous, uniformly mapped extent.
    NotUniform {
        va: u64,
    },
}

impl fmt::Display for PagingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PagingError::Misaligned { value } => write!(f, "{value:#x} is not aligned as required"),
            PagingError::OutOfRange { address } => write!(f, "{address:#x} is outside the translatable range"),
            PagingError::ForbiddenAttributes => write!(f, "writable+executable (or kernel-executable user) refused"),
            PagingError::UnsupportedUnit(u) => write!(f, "{u} does not exist in this granule"),
            PagingError::AlreadyMapped { va } => write!(f, "{va:#x} is already mapped"),
            PagingError::NotMapped { va } => write!(f, "{va:#x} is not mapped"),
            PagingError::OutOfTableFrames => write!(f, "no frame for a page table"),
            PagingError::CannotSplit { va } => write!(f, "the mapping at {va:#x} is a single page"),
            PagingError::NotUniform { va } => write!(f, "the range at {va:#x} is not uniformly mapped"),
        }
    }
}

/// One mapping as [`PageTable::mappings`] and [`PageTable::translate`] report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub va: u64,
    pub pa: u64,
    pub unit: Unit,
    pub attributes: Attributes,
}

/// A change of one mapped unit to a new output address and attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Remap {
    pub va: u64,
    pub pa: u64,
    pub attributes: Attributes,
}

/// What the engine has issued, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub tlbi: u64,
    pub dsb: u64,
    pub isb: u64,
    pub tables_in_use: u64,
}

/// Which half of the 64-bit virtual address space a tree translates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Half {
    /// TTBR0: [0, 2^48), tasks, tagged with an ASID.
    Lower,
    /// TTBR1: [2^64 - 2^48, 2^64), the kernel, global.
    Upper,
}

/// One slot to rewrite: descriptor `index` of `table` (at `level`), which
/// maps from virtual address `va`.
#[derive(Clone, Copy, Debug)]
struct SlotWrite {
    table: u64,
    index: usize,
    level: u8,
    va: u64,
    new: u64,
}

/// The invalidations one change needs. Past [`TLBI_THRESHOLD`] the list is
/// dropped for one broad invalidation, so large changes cost nothing here.
#[derive(Default)]
struct Invalidations {
    /// (va, leaf_only, global)
    list: Vec<(u64, bool, bool)>,
    broad: bool,
    any_global: bool,
}

impl Invalidations {
    fn push(&mut self, va: u64, leaf_only: bool, global: bool) {
        self.any_global |= global;
        if self.broad {
            return;
        }
        if self.list.len() == TLBI_THRESHOLD * 2 {
            self.finish();
            if self.list.len() >= TLBI_THRESHOLD {
                self.broad = true;
                self.list = Vec::new();
                return;
            }
        }
        self.list.push((va, leaf_only, global));
    }

    /// Removes what another entry already covers: a by-VA invalidation of
    /// all levels at an address also removes the leaf and walk-cache entries
    /// a leaf-only one at it would.
    fn finish(&mut self) {
        self.list.sort_unstable_by_key(|&(va, leaf_only, global)| (va, leaf_only, !global));
        self.list.dedup_by(|later, earlier| later.0 == earlier.0 && (!earlier.1 || later.1 == earlier.1));
        if self.list.len() > TLBI_THRESHOLD {
            self.broad = true;
            self.list = Vec::new();
        }
    }

    fn is_empty(&self) -> bool {
        !self.broad && self.list.is_empty()
    }
}

/// One change to a tree: slot writes that need break-before-make, plus
/// permission changes already written in place and what they invalidate.
#[derive(Default)]
struct Change {
    writes: Vec<SlotWrite>,
    invalidations: Invalidations,
    wrote: bool,
}

/// The slots of a table at `level` whose region starts at `table_va` that
/// overlap [start, last]: (index, the slot's first address).
fn slots_overlapping(
    granule: Granule,
    level: u8,
    table_va: u64,
    start: u64,
    last: u64,
) -> impl Iterator<Item = (usize, u64)> {
    let size = granule.level_size(level);
    let first = ((start.max(table_va) - table_va) / size) as usize;
    (first..granule.entries(level)).map(move |i| (i, table_va + i as u64 * size)).take_while(move |&(_, va)| va <= last)
}

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
    /// [`PageTable::link_shared_table`]): never written, never freed with a
    /// subtree; a change inside one first gives the slot a private copy.
    shared: Vec<u64>,
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
        let root = hw.alloc_table().ok_or(PagingError::OutOfTableFrames)?;
        Ok(PageTable {
            hw,
            granule,
            half,
            asid,
            root,
            stats: Stats { tables_in_use: 1, ..Stats::default() },
            global_in_lower_half: false,
            shared: Vec::new(),
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
    pub fn hw(&mut self) -> &mut H {
        &mut self.hw
    }

    /// Frees every table frame; the tree must no longer be in use by any
    /// walker (its TTBR switched away and the ASID or TLB invalidated).
    pub fn destroy(mut self) -> H {
        self.free_subtree(self.root, self.granule.start_level());
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
        ((va & VA_MASK) >> self.granule.level_shift(level)) as usize & (self.granule.entries(level) - 1)
    }

    /// The canonical virtual address of a region base within this half.
    fn canonical(&self, stripped: u64) -> u64 {
        match self.half {
            Half::Lower => stripped,
            Half::Upper => stripped | UPPER_BASE,
        }
    }

    // ---- walking --------------------------------------------------------

    /// The table at `level` whose slot covers `va`, creating missing tables
    /// on the way when `create`. `Ok(None)`: missing, or covered by a leaf
    /// at a higher level (returned as `Err` only when creating).
    fn table_at(&mut self, va: u64, level: u8, create: bool) -> Result<Option<u64>, PagingError> {
        let mut table = self.root;
        for l in self.granule.start_level()..level {
            let index = self.index(va, l);
            match descriptor::decode(self.granule, l, self.hw.read_entry(table, index)) {
                Entry::Table { next } => table = next,
                Entry::Leaf { .. } if create => return Err(PagingError::AlreadyMapped { va }),
                Entry::Leaf { .. } => return Ok(None),
                Entry::Invalid if !create => return Ok(None),
                Entry::Invalid => {
                    let next = self.hw.alloc_table().ok_or(PagingError::OutOfTableFrames)?;
                    self.stats.tables_in_use += 1;
                    // The zeroed table must be visible before the walker can reach it.
                    self.barrier(Barrier::DsbIshSt);
                    self.hw.write_entry(table, index, descriptor::table(next));
                    table = next;
                }
            }
        }
        Ok(Some(table))
    }

    /// The leaf mapping covering `va`, with the table and index of its
    /// descriptor (the first of its run when contiguous).
    fn leaf_at(&mut self, va: u64) -> Option<(Mapping, u64, usize)> {
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
                    let level_size = self.granule.level_size(level);
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
    fn visit_table(
        &mut self,
        table: u64,
        level: u8,
        table_va: u64,
        start: u64,
        last: u64,
        previous: &mut Option<u64>,
        f: &mut dyn FnMut(Mapping) -> bool,
    ) -> bool {
        let size = self.granule.level_size(level);
        for (index, slot_va) in slots_overlapping(self.granule, level, table_va, start, last) {
            match descriptor::decode(self.granule, level, self.hw.read_entry(table, index)) {
                Entry::Invalid => {}
                Entry::Table { next } => {
                    if !self.visit_table(next, level + 1, slot_va, start, last, previous, f) {
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

    fn map_inner(
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
        if let Some(m) = self.first_mapping(va, size) {
            return Err(PagingError::AlreadyMapped { va: m.va.max(va) });
        }
        let tables_before = self.stats.tables_in_use;
        let mut last_table = None;
        let mut done = 0;
        while done < size {
            let (v, p, left) = (va + done, if repeat { pa } else { pa + done }, size - done);
            let unit = match policy {
                Policy::Force(unit) => unit,
                Policy::Largest => self.largest_unit(v, p, left),
            };
            // As many units as the choice stays the same for, within one table.
            let unit_size = unit.size(self.granule);
            let slots_left = self.granule.entries(unit.level) - self.index(v, unit.level);
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
            let stride = if repeat { 0 } else { self.granule.level_size(unit.level) };
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
    fn largest_unit(&self, va: u64, pa: u64, left: u64) -> Unit {
        let misalignment = va | pa;
        Unit::all_largest_first(self.granule)
            .find(|u| {
                let s = u.size(self.granule);
                misalignment & (s - 1) == 0 && left >= s
            })
            .unwrap_or(Unit::PAGE)
    }

    /// Writes `count` consecutive units, which must lie in one table.
    #[allow(clippy::too_many_arguments)]
    fn write_units(
        &mut self,
        va: u64,
        pa: u64,
        unit: Unit,
        count: usize,
        stride: u64,
        attributes: &Attributes,
        last: &mut Option<(u8, u64, u64)>,
    ) -> Result<(), PagingError> {
        let region_mask = match unit.level.checked_sub(1) {
            Some(parent) if unit.level > self.granule.start_level() => !(self.granule.level_size(parent) - 1),
            _ => 0,
        };
        let table = match *last {
            Some((level, region, table)) if level == unit.level && region == va & region_mask => table,
            _ => {
                let table = self.table_at(va, unit.level, true)?.ok_or(PagingError::AlreadyMapped { va })?;
                *last = Some((unit.level, va & region_mask, table));
                table
            }
        };
        let first = self.index(va, unit.level);
        // Consecutive descriptors differ only in their output address.
        let mut d = descriptor::leaf(unit.level, pa, attributes, unit.contiguous);
        for i in 0..count * unit.entries(self.granule) {
            self.hw.write_entry(table, first + i, d);
            d += stride;
        }
        Ok(())
    }

    /// Frees tables left empty in [va, va + size) after a failed map (they
    /// were never reachable by a valid leaf, but the walker may have cached
    /// the table pointers).
    fn prune_empty(&mut self, va: u64, size: u64) {
        let root = self.root;
        let mut writes = Vec::new();
        self.plan_clear(root, self.granule.start_level(), self.canonical(0), va, va + (size - 1), &mut writes);
        self.apply(writes);
    }

    // ---- shared last-level tables --------------------------------------------

    /// A new last-level table whose every descriptor maps one page `pa` with
    /// `attributes` (read-only, so sharing it is safe): for ranges that map
    /// nothing but one shared page, such as HVO's all-tail vmemmap ranges.
    pub fn create_shared_table(&mut self, pa: u64, attributes: Attributes) -> Result<u64, PagingError> {
        if attributes.writable || !attributes.is_permitted() {
            return Err(PagingError::ForbiddenAttributes);
        }
        self.check_aligned(&[pa])?;
        let table = self.hw.alloc_table().ok_or(PagingError::OutOfTableFrames)?;
        self.stats.tables_in_use += 1;
        let d = descriptor::leaf(3, pa, &attributes, false);
        for index in 0..self.granule.entries(3) {
            self.hw.write_entry(table, index, d);
        }
        self.shared.push(table);
        Ok(table)
    }

    /// Points the level-2 slot covering `va` (aligned to the span of a
    /// last-level table, and unmapped) at a shared table. Invalid -> valid:
    /// only the barrier that publishes it.
    pub fn link_shared_table(&mut self, va: u64, table: u64) -> Result<(), PagingError> {
        let span = self.granule.level_size(2);
        if !self.shared.contains(&table) {
            return Err(PagingError::NotMapped { va: table });
        }
        if !va.is_multiple_of(span) {
            return Err(PagingError::Misaligned { value: va });
        }
        self.check_range(va, span)?;
        if let Some(m) = self.first_mapping(va, span) {
            return Err(PagingError::AlreadyMapped { va: m.va.max(va) });
        }
        let parent = self.table_at(va, 2, true)?.ok_or(PagingError::AlreadyMapped { va })?;
        let index = self.index(va, 2);
        if self.hw.read_entry(parent, index) != 0 {
            // An empty private table is there: replace it (it maps nothing).
            let writes = alloc::vec![SlotWrite { table: parent, index, level: 2, va, new: descriptor::table(table) }];
            self.apply(writes);
            return Ok(());
        }
        self.barrier(Barrier::DsbIshSt);
        self.hw.write_entry(parent, index, descriptor::table(table));
        self.barrier(Barrier::DsbIshSt);
        if self.half == Half::Upper {
            self.barrier(Barrier::Isb);
        }
        Ok(())
    }

    /// Frees a shared table no slot points at any more (the caller keeps
    /// count of the links it made).
    pub fn release_shared_table(&mut self, table: u64) {
        if let Some(i) = self.shared.iter().position(|&t| t == table) {
            self.shared.swap_remove(i);
            self.hw.free_table(table);
            self.stats.tables_in_use -= 1;
        }
    }

    /// Gives every slot in [va, va + size) that points at a shared table a
    /// private copy, so the range can be changed. The copy has the same
    /// contents; the switch is break-before-make like any table change.
    fn unshare(&mut self, va: u64, size: u64) -> Result<(), PagingError> {
        if self.shared.is_empty() {
            return Ok(());
        }
        let span = self.granule.level_size(2);
        let mut at = va & !(span - 1);
        let last = va + (size - 1);
        while at <= last {
            if let Some(parent) = self.table_at(at, 2, false)? {
                let index = self.index(at, 2);
                if let Entry::Table { next } = descriptor::decode(self.granule, 2, self.hw.read_entry(parent, index))
                    && self.shared.contains(&next)
                {
                    let copy = self.hw.alloc_table().ok_or(PagingError::OutOfTableFrames)?;
                    self.stats.tables_in_use += 1;
                    for i in 0..self.granule.entries(3) {
                        let d = self.hw.read_entry(next, i);
                        self.hw.write_entry(copy, i, d);
                    }
                    let writes =
                        alloc::vec![SlotWrite { table: parent, index, level: 2, va: at, new: descriptor::table(copy) }];
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

    // ---- unmap ------------------------------------------------------------

    /// Unmaps [va, va + size). Units straddling either end are split first so
    /// what lies outside stays mapped; tables left empty are freed.
    pub fn unmap(&mut self, va: u64, size: u64) -> Result<(), PagingError> {
        if size == 0 {
            return Ok(());
        }
        self.check_aligned(&[va, size])?;
        self.check_range(va, size)?;
        // Only a shared table cut by either end needs a private copy; one
        // wholly inside goes with its slot.
        let page = self.granule.size();
        self.unshare(va, page)?;
        self.unshare(va + (size - page), page)?;
        self.split_to_boundary(va)?;
        self.split_to_boundary(va.wrapping_add(size))?;
        let root = self.root;
        let mut writes = Vec::new();
        self.plan_clear(root, self.granule.start_level(), self.canonical(0), va, va + (size - 1), &mut writes);
        self.apply(writes);
        Ok(())
    }

    /// Splits until no unit crosses `boundary` (0 stands for the top of the
    /// address space, which nothing crosses).
    fn split_to_boundary(&mut self, boundary: u64) -> Result<(), PagingError> {
        if boundary == 0 || (self.half == Half::Lower && boundary > VA_MASK) {
            return Ok(());
        }
        while let Some((m, _, _)) = self.leaf_at(boundary) {
            if m.va == boundary {
                break;
            }
            self.split(boundary)?;
        }
        Ok(())
    }

    /// Plans clearing every slot wholly inside [start, last] below `table`.
    /// Returns whether `table` is left with no valid entry.
    fn plan_clear(
        &mut self,
        table: u64,
        level: u8,
        table_va: u64,
        start: u64,
        last: u64,
        out: &mut Vec<SlotWrite>,
    ) -> bool {
        let size = self.granule.level_size(level);
        let entries = self.granule.entries(level);
        let first = ((start.max(table_va) - table_va) / size) as usize;
        let end = (((last.min(table_va + (size * entries as u64 - 1)) - table_va) / size) as usize + 1).min(entries);
        let mut remaining = 0usize;
        for index in first..end {
            let slot_va = table_va + index as u64 * size;
            let d = self.hw.read_entry(table, index);
            let entry = descriptor::decode(self.granule, level, d);
            if entry == Entry::Invalid {
                continue;
            }
            let slot_last = slot_va + (size - 1);
            let overlaps = slot_va <= last && start <= slot_last;
            let inside = start <= slot_va && slot_last <= last;
            if inside {
                out.push(SlotWrite { table, index, level, va: slot_va, new: 0 });
            } else if overlaps && let Entry::Table { next } = entry {
                let mark = out.len();
                if self.plan_clear(next, level + 1, slot_va, start, last, out) {
                    // The child empties: clear its slot here instead.
                    out.truncate(mark);
                    out.push(SlotWrite { table, index, level, va: slot_va, new: 0 });
                } else {
                    remaining += 1;
                }
            } else {
                remaining += 1;
            }
        }
        // Emptied only if nothing outside the range is left either (the
        // root is never freed, so it need not be looked at).
        remaining == 0
            && table != self.root
            && !(0..first).chain(end..entries).any(|i| self.hw.read_entry(table, i) & 1 != 0)
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

    /// Bytes of [start, last] that are mapped, and whether a unit crosses
    /// either end.
    fn coverage(&mut self, start: u64, last: u64) -> (u128, bool) {
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
    fn coverage_walk(
        &mut self,
        table: u64,
        level: u8,
        table_va: u64,
        start: u64,
        last: u64,
        covered: &mut u128,
        crosses: &mut bool,
    ) {
        let size = self.granule.level_size(level);
        let entries = self.granule.entries(level);
        if level == 3 && start <= table_va && table_va + (size * entries as u64 - 1) <= last {
            // A whole last-level table inside the range: no unit can cross
            // an end, only valid pages count.
            let valid = (0..entries).filter(|&i| self.hw.read_entry(table, i) & 1 != 0).count();
            *covered += valid as u128 * size as u128;
            return;
        }
        for (index, slot_va) in slots_overlapping(self.granule, level, table_va, start, last) {
            match descriptor::decode(self.granule, level, self.hw.read_entry(table, index)) {
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

    #[allow(clippy::too_many_arguments)]
    fn protect_walk(
        &mut self,
        table: u64,
        level: u8,
        table_va: u64,
        start: u64,
        last: u64,
        attributes: &Attributes,
        change: &mut Change,
    ) {
        for (index, slot_va) in slots_overlapping(self.granule, level, table_va, start, last) {
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
                        self.hw.write_entry(table, index, new);
                        change.wrote = true;
                        change.invalidations.push(slot_va, true, was.global);
                    } else {
                        change.writes.push(SlotWrite { table, index, level, va: slot_va, new });
                    }
                }
            }
        }
    }

    /// Plans rewriting the descriptors of mapping `m` (found at `table`,
    /// `first`) to map `pa` with `attributes`.
    #[allow(clippy::too_many_arguments)]
    fn plan_unit(
        &self,
        out: &mut Vec<SlotWrite>,
        table: u64,
        first: usize,
        m: Mapping,
        pa: u64,
        attributes: &Attributes,
        contiguous: bool,
    ) {
        let level_size = self.granule.level_size(m.unit.level);
        for i in 0..m.unit.entries(self.granule) {
            let new = descriptor::leaf(m.unit.level, pa + i as u64 * level_size, attributes, contiguous);
            out.push(SlotWrite { table, index: first + i, level: m.unit.level, va: m.va + i as u64 * level_size, new });
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
        let child = self.hw.alloc_table().ok_or(PagingError::OutOfTableFrames)?;
        self.stats.tables_in_use += 1;
        let unit = Unit { level, contiguous: self.granule.contiguous_entries(level).is_some() };
        let level_size = self.granule.level_size(level);
        for index in 0..self.granule.entries(level) {
            let d = descriptor::leaf(level, m.pa + index as u64 * level_size, &m.attributes, unit.contiguous);
            self.hw.write_entry(child, index, d);
        }
        let slot = self.index(m.va, m.unit.level);
        writes.push(SlotWrite { table, index: slot, level: m.unit.level, va: m.va, new: descriptor::table(child) });
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

    // ---- the one place live entries change ---------------------------------

    /// Applies slot writes with break-before-make and one synchronisation.
    fn apply(&mut self, writes: Vec<SlotWrite>) {
        self.apply_change(Change { writes, ..Change::default() });
    }

    /// Applies a change: its slot writes with break-before-make, together
    /// with the in-place writes already made and their invalidations.
    fn apply_change(&mut self, change: Change) {
        let Change { writes, mut invalidations, mut wrote } = change;
        let mut doomed: Vec<(u64, u8)> = Vec::new();
        let mut pending: Vec<&SlotWrite> = Vec::new();
        let mut any_table = false;
        for w in &writes {
            let old = self.hw.read_entry(w.table, w.index);
            if old == w.new {
                continue;
            }
            any_table |= matches!(descriptor::decode(self.granule, w.level, w.new), Entry::Table { .. });
            match descriptor::decode(self.granule, w.level, old) {
                Entry::Invalid => pending.push(w),
                Entry::Leaf { attributes, .. } => {
                    if w.new != 0 && descriptor::in_place_change_allowed(old, w.new) {
                        self.hw.write_entry(w.table, w.index, w.new);
                    } else {
                        self.hw.write_entry(w.table, w.index, 0);
                        pending.push(w);
                    }
                    wrote = true;
                    invalidations.push(w.va, true, attributes.global);
                }
                Entry::Table { next } => {
                    self.hw.write_entry(w.table, w.index, 0);
                    wrote = true;
                    pending.push(w);
                    if !self.collect_subtree(next, w.level + 1, w.va, &mut invalidations, &mut doomed) {
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
        for w in pending.iter().filter(|w| w.new != 0) {
            self.hw.write_entry(w.table, w.index, w.new);
            made = true;
        }
        if made {
            self.barrier(Barrier::DsbIshSt);
        }
        for (table, _) in doomed {
            self.hw.free_table(table);
            self.stats.tables_in_use -= 1;
        }
        if (wrote || made) && self.half == Half::Upper {
            self.barrier(Barrier::Isb);
        }
    }

    /// Records the invalidations a subtree's removal needs and its frames:
    /// one all-levels invalidation per leaf descriptor, which also drops the
    /// walk-cache entries on that address's path, so a table pointer needs
    /// its own only when nothing below it was invalidated. Returns whether
    /// anything inside the subtree's region was invalidated.
    fn collect_subtree(
        &mut self,
        table: u64,
        level: u8,
        table_va: u64,
        inv: &mut Invalidations,
        doomed: &mut Vec<(u64, u8)>,
    ) -> bool {
        let size = self.granule.level_size(level);
        let mut covered = false;
        if self.shared.contains(&table) {
            // Linked elsewhere too: its leaves leave this slot's TLB entries,
            // the frame stays.
            if !inv.broad {
                for index in 0..self.granule.entries(level) {
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
                let global = (0..self.granule.entries(3)).any(|i| {
                    let d = self.hw.read_entry(table, i);
                    matches!(descriptor::decode(self.granule, 3, d), Entry::Leaf { attributes, .. } if attributes.global)
                });
                inv.any_global |= global;
            }
            doomed.push((table, level));
            return true;
        }
        for index in 0..self.granule.entries(level) {
            let va = table_va + index as u64 * size;
            match descriptor::decode(self.granule, level, self.hw.read_entry(table, index)) {
                Entry::Invalid => {}
                Entry::Leaf { attributes, .. } => {
                    inv.push(va, false, attributes.global);
                    covered = true;
                }
                Entry::Table { next } => {
                    if !self.collect_subtree(next, level + 1, va, inv, doomed) {
                        inv.push(va, false, self.half == Half::Upper);
                    }
                    covered = true;
                }
            }
        }
        doomed.push((table, level));
        covered
    }

    fn free_subtree(&mut self, table: u64, level: u8) {
        if self.shared.contains(&table) {
            return;
        }
        if level < 3 {
            for index in 0..self.granule.entries(level) {
                if let Entry::Table { next } = descriptor::decode(self.granule, level, self.hw.read_entry(table, index))
                {
                    self.free_subtree(next, level + 1);
                }
            }
        }
        self.hw.free_table(table);
        self.stats.tables_in_use -= 1;
    }

    fn barrier(&mut self, b: Barrier) {
        match b {
            Barrier::Isb => self.stats.isb += 1,
            _ => self.stats.dsb += 1,
        }
        self.hw.barrier(b);
    }

    fn tlbi(&mut self, op: Tlbi) {
        self.stats.tlbi += 1;
        self.hw.tlbi(op);
    }
}
