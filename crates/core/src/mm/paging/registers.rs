//! Values of the translation control registers for a granule, computed from
//! the CPU's ID registers (raw fields).

use crate::mm::Granule;

/// TCR_EL1.EPD0: no walks through TTBR0.
pub const TCR_EPD0: u64 = 1 << 7;

/// TCR_EL1 for 48-bit VAs in both halves: TTBR1 with `kernel` granule,
/// TTBR0 with `user` granule, write-back inner-shareable walks, IPS from
/// ID_AA64MMFR0_EL1.PARange (capped at 48 bits), 16-bit ASIDs where the CPU
/// has them, hardware access/dirty updates off.
pub fn tcr_el1(kernel: Granule, user: Granule, mmfr0: u64, ttbr0_walks: bool) -> u64 {
    let tg0 = match user {
        Granule::K4 => 0b00,
        Granule::K64 => 0b01,
        Granule::K16 => 0b10,
    };
    let tg1 = match kernel {
        Granule::K16 => 0b01,
        Granule::K4 => 0b10,
        Granule::K64 => 0b11,
    };
    let t0sz = 16;
    let t1sz = 16 << 16;
    let walks0 = (1 << 8) | (1 << 10) | (3 << 12); // IRGN0, ORGN0 = WBWA; SH0 = inner
    let walks1 = (1 << 24) | (1 << 26) | (3 << 28);
    let ips = (mmfr0 & 0xf).min(5) << 32;
    let asid16 = if (mmfr0 >> 4) & 0xf == 2 { 1 << 36 } else { 0 };
    let epd0 = if ttbr0_walks { 0 } else { TCR_EPD0 };
    t0sz | t1sz | walks0 | walks1 | (tg0 << 14) | (tg1 << 30) | ips | asid16 | epd0
}

/// ASID width in bits (8 or 16) from ID_AA64MMFR0_EL1.ASIDBits.
pub fn asid_bits(mmfr0: u64) -> u32 {
    if (mmfr0 >> 4) & 0xf == 2 { 16 } else { 8 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcr_encodings_differ_for_tg0_and_tg1() {
        let a72 = 0x1124; // PARange 4 (44 bits), 16-bit ASIDs
        let t = tcr_el1(Granule::K64, Granule::K16, a72, false);
        assert_eq!((t >> 14) & 3, 0b10, "TG0 16K");
        assert_eq!((t >> 30) & 3, 0b11, "TG1 64K");
        assert_eq!((t >> 32) & 7, 4, "IPS 44 bits");
        assert_ne!(t & (1 << 36), 0, "AS");
        assert_ne!(t & TCR_EPD0, 0);
        assert_eq!(t & 0x3f, 16);
        assert_eq!((t >> 16) & 0x3f, 16);
        let t = tcr_el1(Granule::K4, Granule::K4, 0x6, true);
        assert_eq!(((t >> 14) & 3, (t >> 30) & 3, (t >> 32) & 7), (0, 0b10, 5));
        assert_eq!(t & (1 << 36) | t & TCR_EPD0, 0);
        assert_eq!(asid_bits(0x1124), 16);
        assert_eq!(asid_bits(0x0004), 8);
    }
}
