//! The three stage-1 translation granules and how the CPU reports them.

use core::fmt;

/// A translation granule: the base page size of a translation regime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granule {
    K4,
    K16,
    K64,
}

impl Granule {
    pub const ALL: [Granule; 3] = [Granule::K4, Granule::K16, Granule::K64];

    /// log2 of the page size.
    pub const fn shift(self) -> u32 {
        match self {
            Granule::K4 => 12,
            Granule::K16 => 14,
            Granule::K64 => 16,
        }
    }

    /// 0, 1, 2 for 4K, 16K, 64K: an index into per-granule tables.
    pub const fn index(self) -> usize {
        match self {
            Granule::K4 => 0,
            Granule::K16 => 1,
            Granule::K64 => 2,
        }
    }

    pub const fn size(self) -> u64 {
        1 << self.shift()
    }

    /// The first level of a walk with 48-bit virtual addresses.
    pub const fn start_level(self) -> u8 {
        match self {
            Granule::K4 | Granule::K16 => 0,
            Granule::K64 => 1,
        }
    }

    /// Index bits each level resolves (a table holds 2^this descriptors).
    pub const fn bits_per_level(self) -> u32 {
        self.shift() - 3
    }

    /// log2 of the region one descriptor at `level` maps.
    pub const fn level_shift(self, level: u8) -> u32 {
        self.shift() + (3 - level as u32) * self.bits_per_level()
    }

    /// Bytes one descriptor at `level` maps.
    pub const fn level_size(self, level: u8) -> u64 {
        1 << self.level_shift(level)
    }

    /// Descriptors in a table at `level` (the start level may be shorter:
    /// 16K's L0 has 2 entries, 64K's L1 has 64).
    pub const fn entries(self, level: u8) -> usize {
        if level == self.start_level() { 1 << (48 - self.level_shift(level)) } else { 1 << self.bits_per_level() }
    }

    /// Whether `level` can hold a leaf (a block, or a page at level 3), with
    /// 48-bit output addresses (no LPA2, no 52-bit PA).
    pub const fn leaf_allowed(self, level: u8) -> bool {
        match self {
            Granule::K4 => level >= 1 && level <= 3,
            Granule::K16 | Granule::K64 => level == 2 || level == 3,
        }
    }

    /// Entries in a contiguous run at `level`, where the contiguous bit is
    /// supported: 16/16 (4K), 128/32 (16K), 32/32 (64K) at L3/L2.
    pub const fn contiguous_entries(self, level: u8) -> Option<usize> {
        match (self, level) {
            (Granule::K4, 2 | 3) => Some(16),
            (Granule::K16, 3) => Some(128),
            (Granule::K16, 2) => Some(32),
            (Granule::K64, 2 | 3) => Some(32),
            _ => None,
        }
    }

    /// Parses the `granule=` boot argument value: `4k`, `16k` or `64k`.
    pub fn parse(text: &str) -> Option<Granule> {
        match text {
            "4k" | "4K" => Some(Granule::K4),
            "16k" | "16K" => Some(Granule::K16),
            "64k" | "64K" => Some(Granule::K64),
            _ => None,
        }
    }

    /// Whether a CPU whose ID_AA64MMFR0_EL1 reads `mmfr0` supports this
    /// granule at stage 1. Reads the raw fields: TGran4 [31:28] is 0 or 1
    /// when supported (0xF: not); TGran64 [27:24] is 0 when supported;
    /// TGran16 [23:20] is 1 or 2 when supported (0: not).
    pub const fn supported_by(self, mmfr0: u64) -> bool {
        match self {
            Granule::K4 => {
                let field = (mmfr0 >> 28) & 0xf;
                field == 0 || field == 1
            }
            Granule::K64 => (mmfr0 >> 24) & 0xf == 0,
            Granule::K16 => {
                let field = (mmfr0 >> 20) & 0xf;
                field == 1 || field == 2
            }
        }
    }
}

impl fmt::Display for Granule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Granule::K4 => f.write_str("4K"),
            Granule::K16 => f.write_str("16K"),
            Granule::K64 => f.write_str("64K"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cortex_a72_lacks_16k() {
        // Measured on QEMU's cortex-a72 and the real Raspberry Pi 4.
        let mmfr0 = 0x1124;
        assert!(Granule::K4.supported_by(mmfr0));
        assert!(Granule::K64.supported_by(mmfr0));
        assert!(!Granule::K16.supported_by(mmfr0));
    }

    #[test]
    fn lpa2_encodings_count_as_supported() {
        // -cpu max reports TGran4 = 1 and TGran16 = 2 (LPA2).
        let mmfr0 = (1 << 28) | (2 << 20);
        assert!(Granule::K4.supported_by(mmfr0));
        assert!(Granule::K16.supported_by(mmfr0));
        assert!(Granule::K64.supported_by(mmfr0));
        let none = (0xf << 28) | (0xf << 24);
        assert!(Granule::ALL.iter().all(|g| !g.supported_by(none)));
    }

    #[test]
    fn geometry_matches_the_architecture() {
        // (granule, start level, entries at start, L2 block, contiguous L3 run, contiguous L2 run)
        let table = [
            (Granule::K4, 0, 512, 2 << 20, 64 << 10, 32 << 20),
            (Granule::K16, 0, 2, 32 << 20, 2 << 20, 1 << 30),
            (Granule::K64, 1, 64, 512 << 20, 2 << 20, 16u64 << 30),
        ];
        for (g, start, start_entries, l2, cont3, cont2) in table {
            assert_eq!(g.start_level(), start);
            assert_eq!(g.entries(start), start_entries);
            assert_eq!(g.level_size(2), l2);
            assert_eq!(g.level_size(3) * g.contiguous_entries(3).unwrap() as u64, cont3);
            assert_eq!(g.level_size(2) * g.contiguous_entries(2).unwrap() as u64, cont2);
            // The start level covers exactly 48 bits.
            assert_eq!(g.level_size(start) * g.entries(start) as u64, 1 << 48);
        }
        assert!(Granule::K4.leaf_allowed(1) && !Granule::K16.leaf_allowed(1) && !Granule::K64.leaf_allowed(1));
        assert_eq!(Granule::K4.level_size(1), 1 << 30);
    }

    #[test]
    fn parse_and_sizes() {
        assert_eq!(Granule::parse("16k"), Some(Granule::K16));
        assert_eq!(Granule::parse("8k"), None);
        assert_eq!(Granule::K64.size(), 65536);
    }
}
