//! The ARM Generic Interrupt Controller, versions 2 and 3, for the boot
//! core: enough to take private peripheral interrupts (the virtual timer).
//!
//! Owns: the distributor and this core's CPU interface (v2) or
//! redistributor and system-register interface (v3). Must never: be used
//! before its registers are mapped as device memory (see [`Gic::new`]).

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

register_structs! {
    pub Distributor {
        (0x000 => ctlr: ReadWrite<u32>),
        (0x004 => _reserved0),
        (0x080 => igroupr: [ReadWrite<u32>; 32]),
        (0x100 => isenabler: [ReadWrite<u32>; 32]),
        (0x180 => _reserved1),
        (0x400 => ipriorityr: [ReadWrite<u32>; 255]),
        (0x7fc => _reserved2),
        (0x800 => @END),
    }
}

register_structs! {
    /// GICv2 CPU interface.
    pub CpuInterface {
        (0x000 => ctlr: ReadWrite<u32>),
        (0x004 => pmr: ReadWrite<u32>),
        (0x008 => _reserved0),
        (0x00c => iar: ReadOnly<u32>),
        (0x010 => eoir: WriteOnly<u32>),
        (0x014 => @END),
    }
}

register_structs! {
    /// GICv3 redistributor: the RD frame and, 64 KiB above, the SGI frame.
    pub Redistributor {
        (0x00000 => ctlr: ReadWrite<u32>),
        (0x00004 => _reserved0),
        (0x00014 => waker: ReadWrite<u32>),
        (0x00018 => _reserved1),
        (0x10080 => igroupr0: ReadWrite<u32>),
        (0x10084 => _reserved2),
        (0x10100 => isenabler0: ReadWrite<u32>),
        (0x10104 => _reserved3),
        (0x10400 => ipriorityr: [ReadWrite<u32>; 8]),
        (0x10420 => @END),
    }
}

/// The bytes of a GICv3 redistributor for one core (RD and SGI frames).
pub const REDISTRIBUTOR_SIZE: u64 = 0x20000;

/// An interrupt ID meaning "nothing pending".
pub const SPURIOUS: u32 = 1023;

/// The boot core's GIC, once its registers are mapped.
pub static GIC: crate::sync::SpinLock<Option<Gic>> = crate::sync::SpinLock::new(None);

pub enum Gic {
    V2 { distributor: &'static Distributor, cpu: &'static CpuInterface },
    V3 { distributor: &'static Distributor, redistributor: &'static Redistributor },
}

// SAFETY: the references point at MMIO registers that may be accessed from
// any core; the kernel keeps the Gic behind a lock.
unsafe impl Send for Gic {}

impl Gic {
    /// # Safety
    /// The addresses must be the mapped (device memory) virtual addresses of
    /// the GIC's distributor and of this core's CPU interface (v2) or
    /// redistributor (v3), and nothing else may program them.
    pub unsafe fn new(version: u32, distributor: usize, cpu_or_redistributor: usize) -> Gic {
        // SAFETY: the caller guarantees the mappings.
        unsafe {
            let distributor = &*(distributor as *const Distributor);
            if version == 3 {
                Gic::V3 { distributor, redistributor: &*(cpu_or_redistributor as *const Redistributor) }
            } else {
                Gic::V2 { distributor, cpu: &*(cpu_or_redistributor as *const CpuInterface) }
            }
        }
    }

    /// Enables the distributor and this core's interface, and the private
    /// interrupt `intid` (16..32) at a middle priority.
    pub fn init_and_enable_ppi(&self, intid: u32) {
        let (word, bit) = ((intid / 32) as usize, 1u32 << (intid % 32));
        let priority_shift = (intid % 4) * 8;
        match self {
            Gic::V2 { distributor, cpu } => {
                distributor.ctlr.set(1);
                let p = &distributor.ipriorityr[(intid / 4) as usize];
                p.set(p.get() & !(0xff << priority_shift) | (0x80 << priority_shift));
                distributor.isenabler[word].set(bit);
                cpu.pmr.set(0xff);
                cpu.ctlr.set(1);
            }
            Gic::V3 { distributor, redistributor } => {
                // Affinity routing, both groups (no security: DS=1 on QEMU virt).
                distributor.ctlr.set((1 << 4) | 0b11);
                redistributor.waker.set(redistributor.waker.get() & !(1 << 1));
                let mut spins = 0;
                while redistributor.waker.get() & (1 << 2) != 0 && spins < 1_000_000 {
                    spins += 1;
                    core::hint::spin_loop();
                }
                redistributor.igroupr0.set(redistributor.igroupr0.get() | bit);
                let p = &redistributor.ipriorityr[(intid / 4) as usize];
                p.set(p.get() & !(0xff << priority_shift) | (0x80 << priority_shift));
                redistributor.isenabler0.set(bit);
                #[cfg(target_arch = "aarch64")]
                crate::arch::aarch64::cpu::gicv3_cpu_interface_on();
            }
        }
    }

    /// Acknowledges the highest-priority pending interrupt; returns its ID.
    pub fn acknowledge(&self) -> u32 {
        match self {
            Gic::V2 { cpu, .. } => cpu.iar.get() & 0x3ff,
            #[cfg(target_arch = "aarch64")]
            Gic::V3 { .. } => crate::arch::aarch64::cpu::gicv3_acknowledge(),
            #[cfg(not(target_arch = "aarch64"))]
            Gic::V3 { .. } => SPURIOUS,
        }
    }

    pub fn end_of_interrupt(&self, intid: u32) {
        match self {
            Gic::V2 { cpu, .. } => cpu.eoir.set(intid),
            #[cfg(target_arch = "aarch64")]
            Gic::V3 { .. } => crate::arch::aarch64::cpu::gicv3_end_of_interrupt(intid),
            #[cfg(not(target_arch = "aarch64"))]
            Gic::V3 { .. } => {}
        }
    }
}
