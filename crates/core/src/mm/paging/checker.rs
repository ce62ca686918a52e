//! An independent descriptor checker: decodes a whole translation table tree
//! the way the hardware walker does (VMSAv8-64 stage 1, 48-bit VA and PA)
//! and reports every violation of the architecture's rules.
//!
//! Owns: the rules. It shares no code with the mapper, not even the
//! descriptor encoding: every bit position below is written out again from
//! the Arm ARM (D8.3, "Translation table descriptor formats"), so a wrong
//! constant in `descriptor.rs` is caught here instead of agreeing with itself.
//! Must never: change a table.

use alloc::vec::Vec;
use core::fmt;

use crate::mm::Granule;

// Descriptor fields (Arm ARM D8.3).
const BIT_VALID: u64 = 1;
const BIT_TABLE_OR_PAGE: u64 = 1 << 1;
const BIT_AP1_EL0: u64 = 1 << 6;
const BIT_AP2_RO: u64 = 1 << 7;
const BIT_AF: u64 = 1 << 10;
const BITS_OA_51_48: u64 = 0xf << 48;
const BIT_CONTIGUOUS: u64 = 1 << 52;
const BIT_PXN: u64 = 1 << 53;
const BIT_UXN: u64 = 1 << 54;
const PA_TOP: u64 = 1 << 48;

/// One broken rule, with the virtual address whose translation it affects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// A block at a level where this granule has none (or L0 at all).
    BlockNotAllowed { va: u64, level: u8 },
    /// Descriptor type 0b01 at level 3 is reserved.
    ReservedLevel3Type { va: u64 },
    /// An output or table address with bits set below its alignment.
    MisalignedAddress { va: u64, level: u8, descriptor: u64 },
    /// Output address bits [51:48] set with 48-bit physical addresses.
    ReservedBits { va: u64, level: u8, descriptor: u64 },
    /// A table pointer to memory that is not RAM.
    TableNotInRam { va: u64, level: u8, table: u64 },
    /// Writable and executable at some exception level.
    WriteAndExecute { va: u64 },
    /// AF clear with hardware flag updates off: every access would fault.
    AccessFlagClear { va: u64 },
    /// The contiguous bit where this granule and level have none.
    ContiguousNotSupported { va: u64, level: u8 },
    /// A contiguous run whose entries are not all valid leaves with the bit set.
    ContiguousIncomplete { va: u64, level: u8 },
    /// A contiguous run whose output is not aligned to the run or not consecutive.
    ContiguousOutputBroken { va: u64, level: u8 },
    /// A contiguous run whose entries differ in attributes.
    ContiguousNotUniform { va: u64, level: u8 },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

/// The geometry, recomputed from the page size alone.
struct Geometry {
    page_shift: u32,
    bits: u32,
    start: u8,
}

impl Geometry {
    fn new(granule: Granule) -> Geometry {
        let page_shift = granule.shift();
        let bits = page_shift - 3;
        let levels = (48 - page_shift).div_ceil(bits) as u8;
        Geometry { page_shift, bits, start: 4 - levels }
    }
    fn shift(&self, level: u8) -> u32 {
        self.page_shift + (3 - level as u32) * self.bits
    }
    fn entries(&self, level: u8) -> usize {
        if level == self.start { 1 << (48 - self.shift(level)) } else { 1 << self.bits }
    }
    fn block_levels(&self) -> &'static [u8] {
        match self.page_shift {
            12 => &[1, 2],
            _ => &[2],
        }
    }
    fn run(&self, level: u8) -> Option<usize> {
        match (self.page_shift, level) {
            (12, 2 | 3) => Some(16),
            (14, 3) => Some(128),
            (14, 2) => Some(32),
            (16, 2 | 3) => Some(32),
            _ => None,
        }
    }
}

/// Checks the tree at `root`. `read(table, index)` reads a descriptor;
/// `is_ram(pa)` says whether a physical address is RAM; `upper` selects the
/// TTBR1 half for the reported addresses.
pub fn check(
    granule: Granule,
    root: u64,
    upper: bool,
    read: &mut dyn FnMut(u64, usize) -> u64,
    is_ram: &dyn Fn(u64) -> bool,
) -> Vec<Violation> {
    let geometry = Geometry::new(granule);
    let mut out = Vec::new();
    let base = if upper { !(PA_TOP - 1) } else { 0 };
    walk(&geometry, root, geometry.start, base, read, is_ram, &mut out);
    out
}

fn walk(
    g: &Geometry,
    table: u64,
    level: u8,
    table_va: u64,
    read: &mut dyn FnMut(u64, usize) -> u64,
    is_ram: &dyn Fn(u64) -> bool,
    out: &mut Vec<Violation>,
) {
    let span = 1u64 << g.shift(level);
    let entries = g.entries(level);
    let descriptors: Vec<u64> = (0..entries).map(|i| read(table, i)).collect();
    for (index, &d) in descriptors.iter().enumerate() {
        let va = table_va + index as u64 * span;
        if d & BIT_VALID == 0 {
            continue;
        }
        if d & BITS_OA_51_48 != 0 {
            out.push(Violation::ReservedBits { va, level, descriptor: d });
        }
        if level < 3 && d & BIT_TABLE_OR_PAGE != 0 {
            let next = d & (PA_TOP - 1) & !((1 << g.page_shift) - 1);
            if d & ((1 << g.page_shift) - 1) & !0xfff != 0 {
                out.push(Violation::MisalignedAddress { va, level, descriptor: d });
            }
            if !is_ram(next) {
                out.push(Violation::TableNotInRam { va, level, table: next });
                continue;
            }
            walk(g, next, level + 1, va, read, is_ram, out);
            continue;
        }
        if level == 3 && d & BIT_TABLE_OR_PAGE == 0 {
            out.push(Violation::ReservedLevel3Type { va });
            continue;
        }
        if level < 3 && !g.block_levels().contains(&level) {
            out.push(Violation::BlockNotAllowed { va, level });
            continue;
        }
        // Output address bits below the block or page size must be zero.
        if d & (span - 1) & !0xfff != 0 {
            out.push(Violation::MisalignedAddress { va, level, descriptor: d });
        }
        let writable = d & BIT_AP2_RO == 0;
        let el1_exec = d & BIT_PXN == 0 && !(writable && d & BIT_AP1_EL0 != 0);
        let el0_exec = d & BIT_UXN == 0;
        if writable && (el1_exec || el0_exec) {
            out.push(Violation::WriteAndExecute { va });
        }
        if d & BIT_AF == 0 {
            out.push(Violation::AccessFlagClear { va });
        }
        if d & BIT_CONTIGUOUS != 0 {
            check_run(g, &descriptors, index, level, va, span, out);
        }
    }
}

/// Checks the contiguous run holding `index`, once, from its first entry.
fn check_run(g: &Geometry, descriptors: &[u64], index: usize, level: u8, va: u64, span: u64, out: &mut Vec<Violation>) {
    let Some(n) = g.run(level) else {
        out.push(Violation::ContiguousNotSupported { va, level });
        return;
    };
    let first = index - index % n;
    if index != first && descriptors[first] & (BIT_VALID | BIT_CONTIGUOUS) == BIT_VALID | BIT_CONTIGUOUS {
        return; // reported (or not) from the run's first entry
    }
    let run_va = va - (index - first) as u64 * span;
    let leaf_type = if level == 3 { BIT_VALID | BIT_TABLE_OR_PAGE } else { BIT_VALID };
    let oa_mask = (PA_TOP - 1) & !(span - 1);
    let members = &descriptors[first..first + n];
    if members.iter().any(|&d| d & 3 != leaf_type || d & BIT_CONTIGUOUS == 0) {
        out.push(Violation::ContiguousIncomplete { va: run_va, level });
        return;
    }
    let base = members[0] & oa_mask;
    if !base.is_multiple_of(span * n as u64)
        || members.iter().enumerate().any(|(k, &d)| d & oa_mask != base + k as u64 * span)
    {
        out.push(Violation::ContiguousOutputBroken { va: run_va, level });
    }
    let attributes = |d: u64| d & !oa_mask;
    if members.iter().any(|&d| attributes(d) != attributes(members[0])) {
        out.push(Violation::ContiguousNotUniform { va: run_va, level });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A hand-written tree: tables as index -> descriptor maps.
    struct Tree(HashMap<u64, HashMap<usize, u64>>);

    impl Tree {
        fn read(&self, table: u64, index: usize) -> u64 {
            self.0.get(&table).and_then(|t| t.get(&index)).copied().unwrap_or(0)
        }
    }

    const RAM: std::ops::Range<u64> = 0x4000_0000..0x8000_0000;
    // Hand-encoded 4K descriptors: AF | SH inner | UXN | PXN | valid (+ page / table bits).
    const PAGE_RW: u64 = 0x0060_0000_0000_0703;
    const BLOCK_RW: u64 = 0x0060_0000_0000_0701;

    fn check_tree(tree: &Tree, granule: Granule) -> Vec<Violation> {
        check(granule, 0x4000_0000, false, &mut |t, i| tree.read(t, i), &|pa| RAM.contains(&pa))
    }

    /// root(L0)[0] -> L1 @0x4000_1000, L1[1] -> L2 @0x4000_2000, L2[0] -> L3 @0x4000_3000.
    fn skeleton() -> Tree {
        let mut t = HashMap::new();
        t.insert(0x4000_0000, HashMap::from([(0, 0x4000_1003)]));
        t.insert(0x4000_1000, HashMap::from([(1, 0x4000_2003)]));
        t.insert(0x4000_2000, HashMap::from([(0, 0x4000_3003)]));
        t.insert(0x4000_3000, HashMap::new());
        Tree(t)
    }

    #[test]
    fn a_clean_tree_passes() {
        let mut tree = skeleton();
        let l3 = tree.0.get_mut(&0x4000_3000).unwrap();
        for i in 0..16 {
            l3.insert(i, (0x5000_0000 + i as u64 * 0x1000) | PAGE_RW | BIT_CONTIGUOUS);
        }
        l3.insert(16, 0x5001_0000 | PAGE_RW);
        tree.0.get_mut(&0x4000_2000).unwrap().insert(1, 0x5020_0000 | BLOCK_RW);
        assert_eq!(check_tree(&tree, Granule::K4), vec![]);
    }

    #[test]
    fn each_rule_is_enforced() {
        let mut tree = skeleton();
        let l3 = tree.0.get_mut(&0x4000_3000).unwrap();
        l3.insert(0, 0x5000_0000 | PAGE_RW & !BIT_UXN); // W+X at EL0
        l3.insert(1, 0x5000_1000 | PAGE_RW & !BIT_AF);
        l3.insert(2, 0x5000_2001 | 0x700 | BIT_PXN | BIT_UXN); // 0b01 at L3
        for i in 16..32 {
            // A run whose 5th page breaks the output sequence.
            let oa = 0x5010_0000 + i as u64 * 0x1000 + if i == 20 { 0x1000 } else { 0 };
            l3.insert(i, oa | PAGE_RW | BIT_CONTIGUOUS);
        }
        for i in 32..48 {
            let ro = if i == 40 { BIT_AP2_RO } else { 0 };
            l3.insert(i, (0x5020_0000 + i as u64 * 0x1000) | PAGE_RW | BIT_CONTIGUOUS | ro);
        }
        l3.insert(64, 0x5040_0000 | PAGE_RW | BIT_CONTIGUOUS); // a run of one
        let l2 = tree.0.get_mut(&0x4000_2000).unwrap();
        l2.insert(1, 0x5030_1000 | BLOCK_RW); // 2 MiB block, misaligned output
        l2.insert(2, 0x9000_0003); // table pointer outside RAM
        l2.insert(3, (1 << 48) | 0x5060_0000 | BLOCK_RW);
        tree.0.get_mut(&0x4000_0000).unwrap().insert(1, 0x80_0000_0000 | BLOCK_RW); // L0 block
        let v = check_tree(&tree, Granule::K4);
        let has = |f: &dyn Fn(&Violation) -> bool| v.iter().any(f);
        assert!(has(&|x| matches!(x, Violation::WriteAndExecute { va: 0x4000_0000 })), "{v:?}");
        assert!(has(&|x| matches!(x, Violation::AccessFlagClear { va: 0x4000_1000 })));
        assert!(has(&|x| matches!(x, Violation::ReservedLevel3Type { va: 0x4000_2000 })));
        assert!(has(&|x| matches!(x, Violation::ContiguousOutputBroken { va: 0x4001_0000, level: 3 })));
        assert!(has(&|x| matches!(x, Violation::ContiguousNotUniform { va: 0x4002_0000, level: 3 })));
        assert!(has(&|x| matches!(x, Violation::ContiguousIncomplete { va: 0x4004_0000, level: 3 })));
        assert!(has(&|x| matches!(x, Violation::MisalignedAddress { va: 0x4020_0000, level: 2, .. })));
        assert!(has(&|x| matches!(x, Violation::TableNotInRam { table: 0x9000_0000, .. })));
        assert!(has(&|x| matches!(x, Violation::ReservedBits { level: 2, .. })));
        assert!(has(&|x| matches!(x, Violation::BlockNotAllowed { level: 0, .. })));
    }

    #[test]
    fn level_1_blocks_exist_only_with_4k() {
        let mut t = HashMap::new();
        t.insert(0x4000_0000, HashMap::from([(0, 0x4000_4003)]));
        t.insert(0x4000_4000, HashMap::from([(0, BLOCK_RW)]));
        let tree = Tree(t);
        // 16K: root L0 -> L1 table, whose entry 0 is a block: not allowed.
        assert_eq!(check_tree(&tree, Granule::K16), vec![Violation::BlockNotAllowed { va: 0, level: 1 }]);
    }
}
