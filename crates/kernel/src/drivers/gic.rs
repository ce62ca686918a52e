//! The ARM Generic Interrupt Controller, versions 2 and 3, for every core:
//! enough to take private peripheral interrupts (the virtual timer) and to
//! send and take the reschedule SGI between cores.
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
        (0xf00 => sgir: WriteOnly<u32>),
        (0xf04 => @END),
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
        /// GICR_TYPER: [63:32] the affinity of the core this frame serves,
        /// bit 4 "Last": no frame follows in this region.
        (0x00008 => typer: ReadOnly<u64>),
        (0x00010 => _reserved_typer),
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

use folio_core::gic::MAX_REDISTRIBUTOR_REGIONS;

/// An interrupt ID meaning "nothing pending".
pub const SPURIOUS: u32 = 1023;

/// The inter-processor interrupt that makes a core run its scheduler (SGI 1).
pub const RESCHEDULE_SGI: u32 = 1;

/// The boot core's GIC, once its registers are mapped.
pub static GIC: crate::sync::SpinLock<Option<Gic>> = crate::sync::SpinLock::new(None);

/// An interrupt taken from the GIC. `raw` is the acknowledge register as
/// read: for a GICv2 SGI it also names the sending core (bits 12:10), and
/// the end-of-interrupt write must carry it back unchanged, or the SGI
/// stays active on this core and it never takes another.
#[derive(Clone, Copy, Debug)]
pub struct Acknowledged {
    pub intid: u32,
    raw: u32,
}

pub enum Gic {
    V2 {
        distributor: &'static Distributor,
        cpu: &'static CpuInterface,
    },
    /// `regions[..count]` are the mapped redistributor regions (base,
    /// bytes): frame pairs of `folio_core::gic::REDISTRIBUTOR_SIZE`, each
    /// naming the core it serves in GICR_TYPER, each region's last flagged.
    V3 {
        distributor: &'static Distributor,
        regions: [(u64, u64); MAX_REDISTRIBUTOR_REGIONS],
        count: usize,
    },
}

// SAFETY: the references point at MMIO registers that may be accessed from
// any core; the kernel keeps the Gic behind a lock.
unsafe impl Send for Gic {}

impl Gic {
    /// # Safety
    /// `distributor` and `cpu_interface` (v2) must be the mapped (device
    /// memory) virtual addresses of the GIC's distributor and CPU
    /// interface; for v3, `redistributors` the mapped regions (virtual base,
    /// bytes) of every redistributor region used; nothing else may program
    /// them.
    pub unsafe fn new(version: u32, distributor: usize, cpu_interface: usize, redistributors: &[(u64, u64)]) -> Gic {
        // SAFETY: the caller guarantees the mappings.
        unsafe {
            let distributor = &*(distributor as *const Distributor);
            if version == 3 {
                let count = redistributors.len().min(MAX_REDISTRIBUTOR_REGIONS);
                let mut regions = [(0, 0); MAX_REDISTRIBUTOR_REGIONS];
                regions[..count].copy_from_slice(&redistributors[..count]);
                Gic::V3 { distributor, regions, count }
            } else {
                Gic::V2 { distributor, cpu: &*(cpu_interface as *const CpuInterface) }
            }
        }
    }

    /// The redistributor serving the core with MPIDR `mpidr`, found by
    /// walking every region's frames (`folio_core::gic`), never past a
    /// region's mapped size.
    fn redistributor_of(regions: &[(u64, u64)], mpidr: u64) -> Option<&'static Redistributor> {
        let frame = folio_core::gic::redistributor_for(regions, mpidr, &mut |frame| {
            // SAFETY: the walk reads only frames that lie wholly inside a
            // mapped region (it checks each against the region's size).
            unsafe { (*(frame as usize as *const Redistributor)).typer.get() }
        })?;
        // SAFETY: as above: a whole frame inside a mapped region.
        Some(unsafe { &*(frame as usize as *const Redistributor) })
    }

    /// Enables the distributor and the interface of the calling core (its
    /// MPIDR is `mpidr`) and the private interrupt `intid` (16..32) at a
    /// middle priority. Each core calls it for itself. GICv3: an error when
    /// no redistributor serves this core.
    pub fn init_and_enable_ppi(&self, mpidr: u64, intid: u32) -> Result<(), &'static str> {
        let bit = (1u32 << (intid % 32)) | (1 << RESCHEDULE_SGI);
        let middle = |p: &ReadWrite<u32>, i: u32| {
            let shift = (i % 4) * 8;
            p.set(p.get() & !(0xff << shift) | (0x80 << shift));
        };
        match self {
            Gic::V2 { distributor, cpu } => {
                distributor.ctlr.set(1);
                for i in [intid, RESCHEDULE_SGI] {
                    middle(&distributor.ipriorityr[(i / 4) as usize], i);
                }
                distributor.isenabler[0].set(bit);
                cpu.pmr.set(0xff);
                cpu.ctlr.set(1);
            }
            Gic::V3 { distributor, regions, count } => {
                let redistributor = Self::redistributor_of(&regions[..*count], mpidr)
                    .ok_or("no redistributor in the DTB's regions serves this core")?;
                // Affinity routing, both groups (no security: DS=1 on QEMU virt).
                distributor.ctlr.set((1 << 4) | 0b11);
                redistributor.waker.set(redistributor.waker.get() & !(1 << 1));
                let mut spins = 0;
                while redistributor.waker.get() & (1 << 2) != 0 && spins < 1_000_000 {
                    spins += 1;
                    core::hint::spin_loop();
                }
                redistributor.igroupr0.set(redistributor.igroupr0.get() | bit);
                for i in [intid, RESCHEDULE_SGI] {
                    middle(&redistributor.ipriorityr[(i / 4) as usize], i);
                }
                redistributor.isenabler0.set(bit);
                crate::arch::aarch64::cpu::gicv3_cpu_interface_on();
            }
        }
        Ok(())
    }

    /// Sends [`RESCHEDULE_SGI`] to the core with MPIDR `mpidr`. GICv2
    /// names targets by CPU interface number, which is Aff0 on the boards
    /// folio runs on (at most 8 cores).
    pub fn send_reschedule(&self, mpidr: u64) {
        let aff0 = (mpidr & 0xff) as u32;
        match self {
            // TargetListFilter 00: the cores in the target list.
            Gic::V2 { distributor, .. } => distributor.sgir.set((1 << (16 + (aff0 & 7))) | RESCHEDULE_SGI),
            Gic::V3 { .. } => {
                let cluster = ((mpidr >> 8) & 0xffff) as u32 | (((mpidr >> 32) & 0xff) as u32) << 16;
                crate::arch::aarch64::cpu::gicv3_sgi(RESCHEDULE_SGI, cluster, aff0);
            }
        }
    }

    /// Acknowledges the highest-priority pending interrupt.
    pub fn acknowledge(&self) -> Acknowledged {
        let raw = match self {
            Gic::V2 { cpu, .. } => cpu.iar.get(),
            Gic::V3 { .. } => crate::arch::aarch64::cpu::gicv3_acknowledge(),
        };
        Acknowledged { intid: raw & 0x3ff, raw }
    }

    /// Ends an interrupt `acknowledge` returned (not a spurious one).
    pub fn end_of_interrupt(&self, taken: Acknowledged) {
        match self {
            Gic::V2 { cpu, .. } => cpu.eoir.set(taken.raw),
            Gic::V3 { .. } => crate::arch::aarch64::cpu::gicv3_end_of_interrupt(taken.raw),
        }
    }
}
