//! Values of the translation control registers for a granule, computed from
//! the CPU's ID registers.

use aarch64_cpu::registers::TCR_EL1;

use crate::mm::Granule;

/// TCR_EL1.EPD0: no walks through TTBR0.
pub const TCR_EPD0: u64 = 1 << 7;

/// TCR_EL1 for 48-bit VAs in both halves: TTBR1 with `kernel` granule,
/// TTBR0 with `user` granule, write-back inner-shareable walks, IPS from
/// ID_AA64MMFR0_EL1.PARange (capped at 48 bits), 16-bit ASIDs where the CPU
/// has them, hardware access/dirty updates off. Built from `aarch64-cpu`'s
/// field definitions; the test below checks the raw bits independently.
pub fn tcr_el1(kernel: Granule, user: Granule, mmfr0: u64, ttbr0_walks: bool) -> u64 {
    let tg0 = match user {
        Granule::K4 => TCR_EL1::TG0::KiB_4,
        Granule::K16 => TCR_EL1::TG0::KiB_16,
        Granule::K64 => TCR_EL1::TG0::KiB_64,
    };
    let tg1 = match kernel {
        Granule::K4 => TCR_EL1::TG1::KiB_4,
        Granule::K16 => TCR_EL1::TG1::KiB_16,
        Granule::K64 => TCR_EL1::TG1::KiB_64,
    };
    let walks = TCR_EL1::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
        + TCR_EL1::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
        + TCR_EL1::SH0::Inner
        + TCR_EL1::IRGN1::WriteBack_ReadAlloc_WriteAlloc_Cacheable
        + TCR_EL1::ORGN1::WriteBack_ReadAlloc_WriteAlloc_Cacheable
        + TCR_EL1::SH1::Inner;
    let ips = TCR_EL1::IPS.val((mmfr0 & 0xf).min(5));
    let asid = if asid_bits(mmfr0) == 16 { TCR_EL1::AS::ASID16Bits } else { TCR_EL1::AS::ASID8Bits };
    let epd0 = if ttbr0_walks { TCR_EL1::EPD0::EnableTTBR0Walks } else { TCR_EL1::EPD0::DisableTTBR0Walks };
    (TCR_EL1::T0SZ.val(16) + TCR_EL1::T1SZ.val(16) + walks + tg0 + tg1 + ips + asid + epd0).value
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
