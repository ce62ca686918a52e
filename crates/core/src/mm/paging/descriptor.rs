//! Stage-1 descriptor encoding for the mapper (VMSAv8-64, 48-bit output
//! addresses, any granule).
//!
//! Owns: the bit layout the mapper writes. The descriptor checker
//! (`checker.rs`) decodes descriptors with its own, separately written
//! definitions, so a mistake here cannot hide itself there.

use core::fmt;

use crate::mm::Granule;

const VALID: u64 = 1 << 0;
/// At levels 0-2: 1 = table, 0 = block. At level 3 it must be 1 (page).
const TABLE_OR_PAGE: u64 = 1 << 1;
const ATTR_INDEX_SHIFT: u32 = 2;
const AP_EL0: u64 = 1 << 6;
const AP_READ_ONLY: u64 = 1 << 7;
const SH_INNER: u64 = 3 << 8;
const ACCESS_FLAG: u64 = 1 << 10;
const NOT_GLOBAL: u64 = 1 << 11;
const CONTIGUOUS: u64 = 1 << 52;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;
const OUTPUT_TOP: u64 = 1 << 48;

/// Memory types, by their index in MAIR_EL1 (set up in `boot.s`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemoryType {
    /// Normal, inner/outer write-back, read/write-allocate (MAIR index 0).
    Normal = 0,
    /// Device-nGnRE (MAIR index 1).
    Device = 1,
    /// Normal, non-cacheable (MAIR index 2).
    NormalNonCacheable = 2,
}

/// What a mapping permits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Attributes {
    pub memory: MemoryType,
    pub writable: bool,
    /// Accessible from EL0 (a user mapping).
    pub user: bool,
    /// Executable at EL1.
    pub kernel_exec: bool,
    /// Executable at EL0.
    pub user_exec: bool,
    /// Global (no ASID); user mappings are non-global.
    pub global: bool,
}

impl Attributes {
    pub const KERNEL_RW: Attributes = Attributes {
        memory: MemoryType::Normal,
        writable: true,
        user: false,
        kernel_exec: false,
        user_exec: false,
        global: true,
    };
    pub const KERNEL_RO: Attributes = Attributes { writable: false, ..Self::KERNEL_RW };
    pub const KERNEL_RX: Attributes = Attributes { writable: false, kernel_exec: true, ..Self::KERNEL_RW };
    pub const DEVICE: Attributes = Attributes { memory: MemoryType::Device, ..Self::KERNEL_RW };
    pub const USER_RW: Attributes = Attributes { user: true, global: false, ..Self::KERNEL_RW };
    pub const USER_RO: Attributes = Attributes { writable: false, ..Self::USER_RW };
    pub const USER_RX: Attributes = Attributes { writable: false, user_exec: true, ..Self::USER_RW };

    /// Write-xor-execute, and no kernel execution of user memory.
    pub fn is_permitted(&self) -> bool {
        !(self.writable && (self.kernel_exec || self.user_exec)) && !(self.user && self.kernel_exec)
    }

    /// The attribute bits of a leaf descriptor.
    fn bits(&self) -> u64 {
        let mut bits = ACCESS_FLAG | SH_INNER | ((self.memory as u64) << ATTR_INDEX_SHIFT);
        if !self.writable {
            bits |= AP_READ_ONLY;
        }
        if self.user {
            bits |= AP_EL0;
        }
        if !self.kernel_exec {
            bits |= PXN;
        }
        if !self.user_exec {
            bits |= UXN;
        }
        if !self.global {
            bits |= NOT_GLOBAL;
        }
        bits
    }

    fn from_bits(d: u64) -> Attributes {
        let memory = match (d >> ATTR_INDEX_SHIFT) & 7 {
            1 => MemoryType::Device,
            2 => MemoryType::NormalNonCacheable,
            _ => MemoryType::Normal,
        };
        Attributes {
            memory,
            writable: d & AP_READ_ONLY == 0,
            user: d & AP_EL0 != 0,
            kernel_exec: d & PXN == 0,
            user_exec: d & UXN == 0,
            global: d & NOT_GLOBAL == 0,
        }
    }
}

impl fmt::Display for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let memory = match self.memory {
            MemoryType::Normal => "normal",
            MemoryType::Device => "device",
            MemoryType::NormalNonCacheable => "normal-nc",
        };
        write!(
            f,
            "{memory} {}{}{}{}",
            if self.user { "user " } else { "" },
            if self.writable { "rw" } else { "ro" },
            if self.kernel_exec || self.user_exec { "x" } else { "" },
            if self.global { "" } else { " nG" }
        )
    }
}

/// A decoded descriptor, as the mapper sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    Invalid,
    Table { next: u64 },
    Leaf { output: u64, attributes: Attributes, contiguous: bool },
}

/// Encodes a table descriptor pointing at the table frame `next`.
pub fn table(next: u64) -> u64 {
    next | TABLE_OR_PAGE | VALID
}

/// Encodes a leaf (block or page) at `level`.
pub fn leaf(level: u8, output: u64, attributes: &Attributes, contiguous: bool) -> u64 {
    let kind = if level == 3 { TABLE_OR_PAGE | VALID } else { VALID };
    output | attributes.bits() | kind | if contiguous { CONTIGUOUS } else { 0 }
}

/// Decodes a descriptor found at `level`.
pub fn decode(granule: Granule, level: u8, d: u64) -> Entry {
    if d & VALID == 0 {
        return Entry::Invalid;
    }
    let is_table_or_page = d & TABLE_OR_PAGE != 0;
    let address_mask = (OUTPUT_TOP - 1) & !(granule.size() - 1);
    if level < 3 && is_table_or_page {
        return Entry::Table { next: d & address_mask };
    }
    let block_mask = (OUTPUT_TOP - 1) & !(granule.level_size(level) - 1);
    Entry::Leaf { output: d & block_mask, attributes: Attributes::from_bits(d), contiguous: d & CONTIGUOUS != 0 }
}

/// What break-before-make needs of a descriptor, without decoding its
/// attributes: invalid, a table (with its address), or a leaf (whether it
/// is global).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Invalid,
    Table { next: u64 },
    Leaf { global: bool },
}

/// The [`Kind`] of descriptor `d` at `level`: what [`decode`] says, for a
/// few instructions.
#[inline]
pub fn kind(granule: Granule, level: u8, d: u64) -> Kind {
    if d & VALID == 0 {
        Kind::Invalid
    } else if level < 3 && d & TABLE_OR_PAGE != 0 {
        Kind::Table { next: d & (OUTPUT_TOP - 1) & !(granule.size() - 1) }
    } else {
        Kind::Leaf { global: d & NOT_GLOBAL == 0 }
    }
}

/// Whether the leaf `d` is part of a contiguous run.
#[inline]
pub fn is_contiguous(d: u64) -> bool {
    d & CONTIGUOUS != 0
}

/// `old` (a valid leaf) with its attributes replaced by `attributes`, its
/// output address, type and contiguous bit kept.
pub fn with_attributes(old: u64, attributes: &Attributes) -> u64 {
    let keep = ((OUTPUT_TOP - 1) & !0xfff) | CONTIGUOUS | TABLE_OR_PAGE | VALID;
    (old & keep) | attributes.bits()
}

/// Whether changing a live leaf from `old` to `new` may be done in place
/// (only permission and execute-never bits differ) rather than with
/// break-before-make.
pub fn in_place_change_allowed(old: u64, new: u64) -> bool {
    let may_differ = AP_READ_ONLY | AP_EL0 | PXN | UXN;
    (old ^ new) & !may_differ == 0 && old & CONTIGUOUS == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_agrees_with_decode() {
        let samples = [
            0,
            leaf(2, 0x4000_0000, &Attributes::KERNEL_RW, false),
            leaf(3, 0x4000_1000, &Attributes::USER_RO, true),
            table(0x8000_2000),
            0x2,
        ];
        for g in Granule::ALL {
            for level in g.start_level()..=3 {
                for d in samples {
                    let expected = match decode(g, level, d) {
                        Entry::Invalid => Kind::Invalid,
                        Entry::Table { next } => Kind::Table { next },
                        Entry::Leaf { attributes, .. } => Kind::Leaf { global: attributes.global },
                    };
                    assert_eq!(kind(g, level, d), expected, "{g} level {level} {d:#x}");
                }
            }
        }
    }

    #[test]
    fn leaves_round_trip_for_every_granule_and_level() {
        let attrs = [Attributes::KERNEL_RW, Attributes::KERNEL_RX, Attributes::DEVICE, Attributes::USER_RO];
        for g in Granule::ALL {
            for level in (g.start_level()..=3).filter(|&l| g.leaf_allowed(l)) {
                let output = 0x0000_1234_0000_0000 & !(g.level_size(level) - 1);
                for a in attrs {
                    for contiguous in [false, true] {
                        let d = leaf(level, output, &a, contiguous);
                        assert_eq!(decode(g, level, d), Entry::Leaf { output, attributes: a, contiguous });
                    }
                }
            }
            assert_eq!(decode(g, 1, table(0x8000_0000)), Entry::Table { next: 0x8000_0000 });
            assert_eq!(decode(g, 2, 0), Entry::Invalid);
        }
    }

    #[test]
    fn replacing_attributes_keeps_address_type_and_run() {
        for (level, contiguous) in [(3, true), (2, false)] {
            let old = leaf(level, 0x4020_0000, &Attributes::KERNEL_RW, contiguous);
            assert_eq!(
                with_attributes(old, &Attributes::DEVICE),
                leaf(level, 0x4020_0000, &Attributes::DEVICE, contiguous)
            );
        }
    }

    #[test]
    fn write_xor_execute() {
        assert!(!Attributes { kernel_exec: true, ..Attributes::KERNEL_RW }.is_permitted());
        assert!(!Attributes { user_exec: true, ..Attributes::USER_RW }.is_permitted());
        assert!(!Attributes { kernel_exec: true, ..Attributes::USER_RO }.is_permitted());
        assert!(Attributes::KERNEL_RX.is_permitted() && Attributes::USER_RX.is_permitted());
    }

    #[test]
    fn only_permission_changes_skip_break_before_make() {
        let rw = leaf(3, 0x1000, &Attributes::KERNEL_RW, false);
        assert!(in_place_change_allowed(rw, leaf(3, 0x1000, &Attributes::KERNEL_RO, false)));
        assert!(!in_place_change_allowed(rw, leaf(3, 0x2000, &Attributes::KERNEL_RW, false)));
        assert!(!in_place_change_allowed(rw, leaf(3, 0x1000, &Attributes::DEVICE, false)));
        let cont = leaf(3, 0x1000, &Attributes::KERNEL_RW, true);
        assert!(!in_place_change_allowed(cont, leaf(3, 0x1000, &Attributes::KERNEL_RO, true)));
    }
}
