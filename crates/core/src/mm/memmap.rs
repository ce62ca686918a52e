//! The physical memory map: RAM banks minus every reserved region.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::Granule;

/// A physical address range [start, end). Never wraps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PhysRange {
    start: u64,
    end: u64,
}

impl PhysRange {
    /// `None` when `start + size` overflows 64 bits.
    pub const fn from_start_size(start: u64, size: u64) -> Option<PhysRange> {
        match start.checked_add(size) {
            Some(end) => Some(PhysRange { start, end }),
            None => None,
        }
    }

    /// [start, start + size), cut at the top of the address space.
    pub const fn saturating(start: u64, size: u64) -> PhysRange {
        PhysRange { start, end: start.saturating_add(size) }
    }

    /// `None` when `end < start`.
    pub const fn from_start_end(start: u64, end: u64) -> Option<PhysRange> {
        if end < start { None } else { Some(PhysRange { start, end }) }
    }

    pub const fn start(&self) -> u64 {
        self.start
    }
    pub const fn end(&self) -> u64 {
        self.end
    }
    pub const fn size(&self) -> u64 {
        self.end - self.start
    }
    pub const fn is_empty(&self) -> bool {
        self.start == self.end
    }
    pub const fn overlaps(&self, other: &PhysRange) -> bool {
        self.start < other.end && other.start < self.end
    }
    pub const fn contains_range(&self, other: &PhysRange) -> bool {
        self.start <= other.start && other.end <= self.end
    }
    pub const fn contains(&self, address: u64) -> bool {
        self.start <= address && address < self.end
    }

    /// The largest granule-aligned range inside this one (maybe empty).
    pub fn shrink_to(&self, granule: Granule) -> PhysRange {
        let mask = granule.size() - 1;
        let start = self.start.checked_add(mask).map_or(!mask, |s| s & !mask);
        let end = self.end & !mask;
        if end <= start { PhysRange { start, end: start } } else { PhysRange { start, end } }
    }

    /// The smallest granule-aligned range holding this one.
    pub fn grow_to(&self, granule: Granule) -> PhysRange {
        let mask = granule.size() - 1;
        let end = self.end.checked_add(mask).map_or(!mask, |e| e & !mask);
        PhysRange { start: self.start & !mask, end }
    }
}

impl fmt::Display for PhysRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#011x}-{:#011x}) {}", self.start, self.end, Size(self.size()))
    }
}

/// A byte count shown in the largest binary unit that divides it (or KiB).
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")];
        for (shift, unit) in units {
            if self.0 >= 1 << shift && self.0.is_multiple_of(1 << shift) {
                return write!(f, "{} {unit}", self.0 >> shift);
            }
        }
        if self.0 >= 1 << 10 { write!(f, "{:.1} KiB", self.0 as f64 / 1024.0) } else { write!(f, "{} B", self.0) }
    }
}

/// RAM and what must be kept out of the frame allocator.
#[derive(Clone, Debug, Default)]
pub struct MemoryMap {
    pub banks: Vec<PhysRange>,
    /// Reserved regions with who reserved them (kernel image, DTB, firmware).
    pub reserved: Vec<(PhysRange, String)>,
}

impl MemoryMap {
    /// The free frames: every bank minus every reserved region (reserved
    /// regions grown to whole granules), each piece shrunk to whole granules.
    /// Sorted by address; empty pieces dropped.
    pub fn free_ranges(&self, granule: Granule) -> Vec<PhysRange> {
        let mut free: Vec<PhysRange> = self.banks.clone();
        for (reserved, _) in &self.reserved {
            let hole = reserved.grow_to(granule);
            free = free
                .into_iter()
                .flat_map(|r| {
                    if !r.overlaps(&hole) {
                        return [Some(r), None];
                    }
                    let below = PhysRange { start: r.start, end: hole.start.max(r.start) };
                    let above = PhysRange { start: hole.end.min(r.end), end: r.end };
                    [Some(below), Some(above)]
                })
                .flatten()
                .collect();
        }
        let mut free: Vec<PhysRange> =
            free.into_iter().map(|r| r.shrink_to(granule)).filter(|r| !r.is_empty()).collect();
        free.sort();
        free
    }

    pub fn total_ram(&self) -> u64 {
        self.banks.iter().map(PhysRange::size).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: u64) -> PhysRange {
        PhysRange::from_start_end(start, end).unwrap()
    }

    #[test]
    fn reserved_regions_are_cut_out_and_rounded_to_the_granule() {
        let map = MemoryMap {
            banks: vec![r(0, 0x4000_0000), r(0x8000_0000, 0x8010_0000)],
            reserved: vec![(r(0, 0x1000), "memreserve".into()), (r(0x8_0000, 0x8_2345), "kernel".into())],
        };
        assert_eq!(
            map.free_ranges(Granule::K4),
            vec![r(0x1000, 0x8_0000), r(0x8_3000, 0x4000_0000), r(0x8000_0000, 0x8010_0000)]
        );
        // With 64 KiB frames the first page's reservation costs a whole frame.
        assert_eq!(
            map.free_ranges(Granule::K64),
            vec![r(0x1_0000, 0x8_0000), r(0x9_0000, 0x4000_0000), r(0x8000_0000, 0x8010_0000)]
        );
    }

    #[test]
    fn a_reservation_covering_a_bank_removes_it() {
        let map = MemoryMap { banks: vec![r(0x1000, 0x3000)], reserved: vec![(r(0, 0x10_0000), "all".into())] };
        assert!(map.free_ranges(Granule::K4).is_empty());
    }

    #[test]
    fn unaligned_banks_shrink_to_whole_frames() {
        let map = MemoryMap { banks: vec![r(0x1234, 0x2_1000)], reserved: vec![] };
        assert_eq!(map.free_ranges(Granule::K4), vec![r(0x2000, 0x2_1000)]);
        assert_eq!(map.free_ranges(Granule::K64), vec![r(0x1_0000, 0x2_0000)]);
        assert!(map.free_ranges(Granule::K16).iter().all(|f| f.start() % 0x4000 == 0 && f.end() % 0x4000 == 0));
    }

    #[test]
    fn ranges_near_the_top_of_the_address_space_do_not_overflow() {
        assert!(PhysRange::from_start_size(u64::MAX, 2).is_none());
        let top = r(u64::MAX - 0x1800, u64::MAX);
        assert!(top.shrink_to(Granule::K4).is_empty());
        assert_eq!(top.grow_to(Granule::K4).start(), (u64::MAX - 0x1800) & !0xfff);
    }

    #[test]
    fn sizes_print_in_binary_units() {
        assert_eq!(Size(960 << 20).to_string(), "960 MiB");
        assert_eq!(Size(1 << 30).to_string(), "1 GiB");
        assert_eq!(Size(4096).to_string(), "4 KiB");
        assert_eq!(Size(100).to_string(), "100 B");
    }
}
