//! Identification registers and small CPU helpers.

use aarch64_cpu::registers::{ID_AA64MMFR0_EL1, ID_AA64PFR0_EL1, MIDR_EL1, MPIDR_EL1, Readable};

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

/// Whether the CPU implements SVE (ID_AA64PFR0_EL1.SVE, bits 35:32).
pub fn has_sve() -> bool {
    (ID_AA64PFR0_EL1.get() >> 32) & 0xf != 0
}

/// A readable name for the part number in MIDR_EL1.
pub fn part_name(midr: u64) -> &'static str {
    let implementer = (midr >> 24) & 0xff;
    let part = (midr >> 4) & 0xfff;
    match (implementer, part) {
        (0x41, 0xd03) => "Cortex-A53",
        (0x41, 0xd04) => "Cortex-A35",
        (0x41, 0xd05) => "Cortex-A55",
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

/// `brk #0x42`: a breakpoint exception with comment 0x42, for the test of
/// exception reports. Only call it under `exception::catch_fault`, whose
/// handler records it and resumes at the next instruction.
pub fn breakpoint_0x42() {
    // SAFETY: BRK only raises a synchronous exception; the caller's
    // catch_fault handler resumes after it.
    unsafe { core::arch::asm!("brk #0x42", options(nomem, nostack)) };
}

/// GICv3 CPU interface through system registers: enable it, unmask every
/// priority, enable group 1.
pub fn gicv3_cpu_interface_on() {
    // SAFETY: GIC CPU-interface system registers; EL2 enabled their use
    // from EL1 (ICC_SRE_EL2) before the drop, or there is no EL2.
    unsafe {
        core::arch::asm!(
            "mrs {t}, S3_0_C12_C12_5", // ICC_SRE_EL1
            "orr {t}, {t}, #1",
            "msr S3_0_C12_C12_5, {t}",
            "isb",
            "mov {t}, #0xff",
            "msr S3_0_C4_C6_0, {t}",   // ICC_PMR_EL1
            "mov {t}, #1",
            "msr S3_0_C12_C12_7, {t}", // ICC_IGRPEN1_EL1
            "isb",
            t = out(reg) _,
            options(nostack),
        );
    }
}

/// ICC_IAR1_EL1: acknowledge a group-1 interrupt.
pub fn gicv3_acknowledge() -> u32 {
    let intid: u64;
    // SAFETY: reading the acknowledge register only changes GIC state.
    unsafe { core::arch::asm!("mrs {}, S3_0_C12_C12_0", out(reg) intid, options(nostack)) };
    intid as u32 & 0xffffff
}

/// ICC_SGI1R_EL1: group-1 SGI `intid` to the core with affinity
/// Aff3.Aff2.Aff1 = `cluster` (bits 23:0 as Aff3:Aff2:Aff1) and Aff0 `aff0`
/// (below 16, one bit of the target list).
pub fn gicv3_sgi(intid: u32, cluster: u32, aff0: u32) {
    let aff1 = (cluster & 0xff) as u64;
    let aff2 = ((cluster >> 8) & 0xff) as u64;
    let aff3 = ((cluster >> 16) & 0xff) as u64;
    let value = (aff3 << 48) | (aff2 << 32) | ((intid as u64 & 0xf) << 24) | (aff1 << 16) | (1u64 << (aff0 & 0xf));
    // SAFETY: generating a software interrupt changes only GIC state.
    unsafe { core::arch::asm!("msr S3_0_C12_C11_5, {}", "isb", in(reg) value, options(nostack)) };
}

/// ICC_EOIR1_EL1: end of a group-1 interrupt.
pub fn gicv3_end_of_interrupt(intid: u32) {
    // SAFETY: writing the end-of-interrupt register only changes GIC state.
    unsafe { core::arch::asm!("msr S3_0_C12_C12_1, {}", "isb", in(reg) intid as u64, options(nostack)) };
}

/// Turns on Privileged Access Never where the CPU has it
/// (ID_AA64MMFR1_EL1.PAN): EL1 then faults on any access to memory EL0
/// can reach, and every exception to EL1 sets PAN again (SCTLR_EL1.SPAN
/// cleared). The kernel reads task memory only through the linear map.
/// Returns whether PAN is on.
pub fn enable_pan() -> bool {
    let mmfr1: u64;
    // SAFETY: reading an ID register.
    unsafe { core::arch::asm!("mrs {}, id_aa64mmfr1_el1", out(reg) mmfr1, options(nostack)) };
    if (mmfr1 >> 20) & 0xf == 0 {
        return false;
    }
    // SAFETY: SCTLR_EL1.SPAN and PSTATE.PAN only change which accesses EL1
    // may make to EL0-accessible memory; the kernel makes none.
    unsafe {
        core::arch::asm!(
            "mrs {t}, sctlr_el1",
            "bic {t}, {t}, #(1 << 23)",
            "msr sctlr_el1, {t}",
            ".inst 0xd500419f", // msr pan, #1
            "isb",
            t = out(reg) _,
            options(nostack),
        );
    }
    true
}
