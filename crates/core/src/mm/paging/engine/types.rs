//! What the engine speaks in: mapping units, policies, errors, reported
//! mappings, statistics, and the hardware trait with its barriers and TLB
//! invalidations.

use core::fmt;

use crate::mm::Granule;
use crate::mm::paging::descriptor::Attributes;

/// Above this many invalidations in one change, one ASID-wide (or, for
/// global mappings, one all-entries) invalidation is cheaper.
pub const TLBI_THRESHOLD: usize = 64;

pub(super) const VA_BITS: u32 = 48;
pub(super) const VA_MASK: u64 = (1 << VA_BITS) - 1;
pub(super) const UPPER_BASE: u64 = !VA_MASK;

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

    pub const fn entries(&self, granule: Granule) -> usize {
        match granule.contiguous_entries(self.level) {
            Some(n) if self.contiguous => n,
            _ => 1,
        }
    }

    pub const fn size(&self, granule: Granule) -> u64 {
        granule.level_size(self.level) * self.entries(granule) as u64
    }

    /// Whether this unit exists under `granule`.
    pub const fn is_supported(&self, granule: Granule) -> bool {
        self.level >= granule.start_level()
            && granule.leaf_allowed(self.level)
            && (!self.contiguous || granule.contiguous_entries(self.level).is_some())
    }

    /// Every unit of `granule`, largest first.
    pub fn all_largest_first(granule: Granule) -> impl Iterator<Item = Unit> {
        UnitSizes::of(granule).units().map(|(unit, _)| unit)
    }
}

/// Every unit of one granule with its size, largest first, worked out at
/// compile time: choosing a unit for each stretch of a map is then a scan
/// of a few words, not of the granule's level arithmetic. (A table per
/// granule, not per tree: a tree lives inside each task's record.)
#[derive(Clone, Copy, Debug)]
pub(super) struct UnitSizes {
    /// At most two units (a block or page, and its contiguous run) for
    /// each of the four levels.
    units: [(Unit, u64); 8],
    len: usize,
}

static UNIT_SIZES: [UnitSizes; 3] =
    [UnitSizes::new(Granule::K4), UnitSizes::new(Granule::K16), UnitSizes::new(Granule::K64)];

impl UnitSizes {
    const fn new(granule: Granule) -> UnitSizes {
        let mut sizes = UnitSizes { units: [(Unit::PAGE, 0); 8], len: 0 };
        let mut level = granule.start_level();
        while level <= 3 {
            let mut run = 0;
            while run < 2 {
                // The contiguous run first: it is the larger.
                let unit = Unit { level, contiguous: run == 0 };
                if unit.is_supported(granule) {
                    sizes.units[sizes.len] = (unit, unit.size(granule));
                    sizes.len += 1;
                }
                run += 1;
            }
            level += 1;
        }
        sizes
    }

    /// `granule`'s table.
    #[inline(always)]
    pub(super) fn of(granule: Granule) -> &'static UnitSizes {
        &UNIT_SIZES[granule.index()]
    }

    /// The units with their sizes, largest first.
    pub(super) fn units(&self) -> impl Iterator<Item = (Unit, u64)> + '_ {
        self.units[..self.len].iter().copied()
    }

    /// The largest unit whose size divides `misalignment`'s alignment (the
    /// virtual and physical addresses ORed) and is at most `left`.
    #[inline]
    pub(super) fn largest(&self, misalignment: u64, left: u64) -> Unit {
        self.units[..self.len]
            .iter()
            .find(|&&(_, size)| misalignment & (size - 1) == 0 && left >= size)
            .map_or(Unit::PAGE, |&(unit, _)| unit)
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

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// The kept sizes choose what the granule's arithmetic chooses (the
    /// largest of every supported unit that fits, found by trying them
    /// all), for every alignment and length from one page to past the
    /// largest unit; and they list the units largest first.
    #[test]
    fn unit_sizes_choose_as_the_granule_does() {
        for granule in Granule::ALL {
            let sizes = UnitSizes::of(granule);
            let every: Vec<Unit> = (0..=3u8)
                .flat_map(|level| [true, false].map(|contiguous| Unit { level, contiguous }))
                .filter(|u| u.is_supported(granule))
                .collect();
            let listed: Vec<u64> = sizes
                .units()
                .map(|(u, size)| {
                    assert_eq!(size, u.size(granule));
                    size
                })
                .collect();
            assert_eq!(listed.len(), every.len(), "{granule:?}: every supported unit listed");
            assert!(listed.windows(2).all(|w| w[0] > w[1]), "{granule:?}: largest first");
            for align in granule.shift()..48 {
                for left_shift in granule.shift()..48 {
                    let (misalignment, left) = (1u64 << align, 3u64 << left_shift);
                    let fits = |u: &&Unit| misalignment & (u.size(granule) - 1) == 0 && left >= u.size(granule);
                    let reference =
                        every.iter().filter(fits).max_by_key(|u| u.size(granule)).copied().unwrap_or(Unit::PAGE);
                    assert_eq!(sizes.largest(misalignment, left), reference, "{granule:?} {align} {left_shift}");
                }
            }
        }
    }
}
