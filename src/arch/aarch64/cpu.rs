//! Identification registers and small CPU helpers.

use aarch64_cpu::registers::{ID_AA64MMFR0_EL1, MIDR_EL1, MPIDR_EL1, Readable};

pub fn midr() -> u64 {
    MIDR_EL1.get()
}

pub fn mpidr() -> u64 {
    MPIDR_EL1.get()
}

/// Raw ID_AA64MMFR0_EL1 (granule support, PARange, ASID bits).
pub fn mmfr0() -> u64 {
    ID_AA64MMFR0_EL1.get()
}

/// A readable name for the part number in MIDR_EL1.
pub fn part_name(midr: u64) -> &'static str {
    let implementer = (midr >> 24) & 0xff;
    let part = (midr >> 4) & 0xfff;
    match (implementer, part) {
        (0x41, 0xd03) => "Cortex-A53",
        (0x41, 0xd07) => "Cortex-A57",
        (0x41, 0xd08) => "Cortex-A72",
        (0x41, 0xd0b) => "Cortex-A76",
        (0x41, 0xd0c) => "Neoverse-N1",
        (0x41, 0xd40) => "Neoverse-V1",
        (0x41, 0xd49) => "Neoverse-N2",
        (0x41, 0xd4f) => "Neoverse-V2",
        (0x00, 0x051) => "QEMU max",
        _ => "unknown CPU",
    }
}

/// Waits for an interrupt or event, forever.
pub fn halt() -> ! {
    loop {
        aarch64_cpu::asm::wfe();
    }
}
