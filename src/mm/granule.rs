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

    pub const fn size(self) -> u64 {
        1 << self.shift()
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
    fn parse_and_sizes() {
        assert_eq!(Granule::parse("16k"), Some(Granule::K16));
        assert_eq!(Granule::parse("8k"), None);
        assert_eq!(Granule::K64.size(), 65536);
    }
}
