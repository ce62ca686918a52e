//! The kernel's own translation tables, built by the engine with the granule
//! chosen at boot, and the switch from the boot tables to them.
//!
//! Owns: [`KERNEL_TABLES`] (the TTBR1 tree), the hardware side of the engine
//! ([`KernelHw`]: table frames, descriptor access, barriers, TLBI
//! instructions) and the one-time switch.
//! Must never: write a descriptor except through the engine, or free a table
//! frame the engine has not released.
//!
//! Before the switch the new tables are not reachable through any mapping of
//! their own, so their frames come from one block of the frame allocator
//! that the boot window maps read/write; afterwards every table frame is
//! reached through the linear map and comes from [`KERNEL_FRAMES`].

use alloc::vec::Vec;
use core::arch::asm;

use crate::frames::KERNEL_FRAMES;
use crate::sync::SpinLock;
use folio_core::mm::layout::{self, KERNEL_BASE};
use folio_core::mm::paging::registers::tcr_el1;
use folio_core::mm::paging::{Attributes, Barrier, Half, PageTable, PageTableHw, PagingError, Policy, Tlbi, Unit};
use folio_core::mm::{FramePool, Granule, PhysRange};

use super::early_map::{self, Memory};

/// What a secondary core needs to turn its MMU on with the kernel's tables
/// (see `secondary_entry` in boot.s).
#[derive(Clone, Copy, Debug)]
pub struct SecondaryBoot {
    pub ttbr1: u64,
    pub tcr_switch: u64,
    pub tcr_final: u64,
    pub ttbr0_identity: u64,
    /// Where the image was loaded: kernel addresses to physical.
    pub load_pa: u64,
}

pub static SECONDARY_BOOT: SpinLock<Option<SecondaryBoot>> = SpinLock::new(None);

/// The kernel's TTBR1 tree, once boot has switched to it.
pub static KERNEL_TABLES: SpinLock<Option<PageTable<KernelHw>>> = SpinLock::new(None);

/// How the engine reaches table frames.
enum Access {
    /// Before the switch: frames from one allocator block mapped by the boot window.
    BootWindow { block: u64, window: u64, frames: usize, next: usize, free: Vec<u64> },
    /// After the switch: any frame, through the linear map.
    Linear,
}

pub struct KernelHw {
    granule: Granule,
    access: Access,
}

impl KernelHw {
    fn virt(&self, pa: u64) -> u64 {
        match &self.access {
            Access::BootWindow { block, window, .. } => window + (pa - block),
            Access::Linear => layout::LINEAR_BASE + pa,
        }
    }
}

impl PageTableHw for KernelHw {
    fn alloc_table(&mut self) -> Option<u64> {
        let size = self.granule.size();
        let pa = match &mut self.access {
            Access::BootWindow { block, frames, next, free, .. } => match free.pop() {
                Some(pa) => pa,
                None if *next < *frames => {
                    *next += 1;
                    *block + (*next as u64 - 1) * size
                }
                None => return None,
            },
            Access::Linear => KERNEL_FRAMES.lock().as_mut()?.alloc(0).ok()?,
        };
        let va = self.virt(pa);
        match self.access {
            // SAFETY: the linear map maps the whole frame `pa` read/write as
            // Normal memory, and the frame was just allocated, so nothing
            // else uses it.
            Access::Linear => unsafe { super::cache::zero(va, size) },
            // SAFETY: the boot window maps the whole frame read/write, and
            // it was just allocated (plain stores: no DC ZVA this early).
            Access::BootWindow { .. } => unsafe { core::ptr::write_bytes(va as *mut u8, 0, size as usize) },
        }
        Some(pa)
    }

    fn free_table(&mut self, table: u64) {
        match &mut self.access {
            Access::BootWindow { free, .. } => free.push(table),
            Access::Linear => {
                if let Some(frames) = KERNEL_FRAMES.lock().as_mut() {
                    let _ = frames.free(table, 0);
                }
            }
        }
    }

    fn read_entry(&mut self, table: u64, index: usize) -> u64 {
        // SAFETY: the engine only passes table frames it allocated here, and
        // `index` is below the table's entry count, so the address is inside
        // a mapped frame.
        unsafe { core::ptr::read_volatile((self.virt(table) as *const u64).add(index)) }
    }

    fn write_entry(&mut self, table: u64, index: usize, value: u64) {
        // SAFETY: as for `read_entry`; the engine orders the write with the
        // barriers and invalidations break-before-make needs.
        unsafe { core::ptr::write_volatile((self.virt(table) as *mut u64).add(index), value) }
    }

    fn barrier(&mut self, barrier: Barrier) {
        // SAFETY: barriers have no operands and no effect on memory safety.
        unsafe {
            match barrier {
                Barrier::DsbIshSt => asm!("dsb ishst", options(nostack, preserves_flags)),
                Barrier::DsbIsh => asm!("dsb ish", options(nostack, preserves_flags)),
                Barrier::Isb => asm!("isb", options(nostack, preserves_flags)),
            }
        }
    }

    fn tlbi(&mut self, op: Tlbi) {
        // SAFETY: TLB invalidation only drops cached translations; the engine
        // has already written the tables they will be refetched from.
        unsafe {
            match op {
                Tlbi::Va { va, asid: None, leaf_only: false } => {
                    asm!("tlbi vaae1is, {}", in(reg) Tlbi::operand(va, None), options(nostack))
                }
                Tlbi::Va { va, asid: None, leaf_only: true } => {
                    asm!("tlbi vaale1is, {}", in(reg) Tlbi::operand(va, None), options(nostack))
                }
                Tlbi::Va { va, asid: Some(a), leaf_only: false } => {
                    asm!("tlbi vae1is, {}", in(reg) Tlbi::operand(va, Some(a)), options(nostack))
                }
                Tlbi::Va { va, asid: Some(a), leaf_only: true } => {
                    asm!("tlbi vale1is, {}", in(reg) Tlbi::operand(va, Some(a)), options(nostack))
                }
                Tlbi::Asid(a) => asm!("tlbi aside1is, {}", in(reg) (a as u64) << 48, options(nostack)),
                Tlbi::All => asm!("tlbi vmalle1is", options(nostack)),
            }
        }
    }
}

unsafe extern "C" {
    static __image_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __image_end: u8;
    static boot_l0_identity: u8;
    static switch_tables_identity: u8;
    fn switch_kernel_tables(ttbr1: u64, tcr_switch: u64, ttbr0: u64, identity_entry: u64, tcr_final: u64);
}

/// How many units of each kind a range's mappings use.
#[derive(Clone, Debug, Default)]
pub struct Composition(pub Vec<(Unit, usize)>);

impl Composition {
    fn add(&mut self, unit: Unit) {
        match self.0.iter_mut().find(|(u, _)| *u == unit) {
            Some((_, n)) => *n += 1,
            None => self.0.push((unit, 1)),
        }
    }
}

/// What [`build_and_switch`] reports.
pub struct KernelTables {
    pub linear_map: Composition,
    /// Device-map addresses for the MMIO ranges asked for, in order.
    pub devices: Vec<u64>,
    pub tables: u64,
}

#[derive(Debug)]
pub enum MmuError {
    Paging(PagingError),
    /// The frame allocator had no block for the boot-time tables.
    NoFrames,
    /// RAM or MMIO beyond what the linear or device map holds.
    TooHigh {
        pa: u64,
    },
    EarlyMap(early_map::EarlyMapError),
}

impl core::fmt::Display for MmuError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MmuError::Paging(e) => write!(f, "page-table engine: {e:?}"),
            MmuError::NoFrames => f.write_str("no frames for the boot-time tables"),
            MmuError::TooHigh { pa } => write!(f, "{pa:#x} is beyond what the linear or device map holds"),
            MmuError::EarlyMap(e) => write!(f, "early map: {e:?}"),
        }
    }
}

impl From<PagingError> for MmuError {
    fn from(e: PagingError) -> Self {
        MmuError::Paging(e)
    }
}

/// Builds the kernel's tables with `granule` (text RX, rodata RO, data and
/// bss RW, the linear map of `ram`, the `devices` as device memory), switches
/// TTBR1 to them and hands `frames` to [`KERNEL_FRAMES`].
pub fn build_and_switch(
    granule: Granule,
    load_pa: u64,
    ram: &[PhysRange],
    devices: &[PhysRange],
    mut frames: FramePool,
    mmfr0: u64,
) -> Result<KernelTables, MmuError> {
    // Boot-time table frames: one block, mapped read/write by the boot window.
    let order = if granule == Granule::K64 { 5 } else { 6 };
    let block = frames.alloc(order).map_err(|_| MmuError::NoFrames)?;
    let block_size = granule.size() << order;
    let window = early_map::map(block, block_size, Memory::NormalReadWrite).map_err(MmuError::EarlyMap)?;
    let hw = KernelHw {
        granule,
        access: Access::BootWindow { block, window: window as u64, frames: 1 << order, next: 0, free: Vec::new() },
    };
    let mut tables = PageTable::new(hw, granule, Half::Upper, None)?;

    // The image, section by section, at the address it is linked at.
    let sym = |s: *const u8| s as u64;
    let (start, text_end, rodata_end, end) = (
        sym(core::ptr::addr_of!(__image_start)),
        sym(core::ptr::addr_of!(__text_end)),
        sym(core::ptr::addr_of!(__rodata_end)),
        sym(core::ptr::addr_of!(__image_end)),
    );
    let pa_of = |va: u64| va - KERNEL_BASE + load_pa;
    let round = |v: u64| v.next_multiple_of(granule.size());
    for (from, to, attributes) in [
        (start, text_end, Attributes::KERNEL_RX),
        (text_end, rodata_end, Attributes::KERNEL_RO),
        (rodata_end, end, Attributes::KERNEL_RW),
    ] {
        tables.map(from, pa_of(from), round(to) - from, attributes, Policy::Largest)?;
    }

    // The linear map of all RAM, with the largest units that fit.
    let mut linear_map = Composition::default();
    for bank in ram {
        let bank = bank.shrink_to(granule);
        let va = layout::linear(bank.start()).filter(|_| bank.end() <= layout::MAP_SPAN);
        let va = va.ok_or(MmuError::TooHigh { pa: bank.end() })?;
        tables.map(va, bank.start(), bank.size(), Attributes::KERNEL_RW, Policy::Largest)?;
        for m in tables.mappings(va, bank.size()) {
            linear_map.add(m.unit);
        }
    }

    // MMIO, whole granules of device memory (two devices may share one).
    let mut device_vas = Vec::new();
    for device in devices {
        let range = device.grow_to(granule);
        let va = layout::device(range.start()).ok_or(MmuError::TooHigh { pa: range.start() })?;
        let mut at = range.start();
        while at < range.end() {
            if tables.translate(va + (at - range.start())).is_none() {
                tables.map(va + (at - range.start()), at, granule.size(), Attributes::DEVICE, Policy::Largest)?;
            }
            at += granule.size();
        }
        device_vas.push(va + (device.start() - range.start()));
    }

    // The walker reads the tables with cacheable walks, so it is coherent
    // with the writes above; cleaning to the point of coherency as well keeps
    // them right even for a walker that is not.
    // The boot window maps the whole block.
    super::cache::clean_to_poc(window as u64, block_size);

    let root = tables.root();
    let tcr_switch = tcr_el1(granule, Granule::K4, mmfr0, true);
    let tcr_final = tcr_el1(granule, granule, mmfr0, false);
    let ttbr0 = pa_of(sym(core::ptr::addr_of!(boot_l0_identity)));
    let entry = pa_of(sym(core::ptr::addr_of!(switch_tables_identity)));
    // SAFETY: the new tables map the kernel image at its linked address with
    // the same physical backing, so execution, the stack and all kernel data
    // continue; the switch itself runs from the boot identity map. Whatever
    // used the boot window (console, DTB) is re-pointed by the caller before
    // it is used again.
    unsafe { switch_kernel_tables(root, tcr_switch, ttbr0, entry, tcr_final) };
    early_map::retire();

    // From now on table frames come from the pool through the linear map;
    // the block's unused frames go back to the pool.
    if let Access::BootWindow { block, next, free, frames: count, .. } =
        core::mem::replace(&mut tables.hw().access, Access::Linear)
    {
        for i in next..count {
            let _ = frames.free(block + i as u64 * granule.size(), 0);
        }
        for pa in free {
            let _ = frames.free(pa, 0);
        }
    }
    *SECONDARY_BOOT.lock() = Some(SecondaryBoot { ttbr1: root, tcr_switch, tcr_final, ttbr0_identity: ttbr0, load_pa });
    let report = KernelTables { linear_map, devices: device_vas, tables: tables.stats().tables_in_use };
    *KERNEL_FRAMES.lock() = Some(frames);
    *KERNEL_TABLES.lock() = Some(tables);
    Ok(report)
}

/// An empty lower-half (TTBR0) tree for a task, tagged with `asid`.
pub fn user_tables(granule: Granule, asid: u16) -> Result<PageTable<KernelHw>, PagingError> {
    PageTable::new(KernelHw { granule, access: Access::Linear }, granule, Half::Lower, Some(asid))
}

/// Makes the task tree at `root` with `asid` the lower half (TTBR0), with
/// walks through TTBR0 enabled. No TLB maintenance: entries are ASID-tagged.
pub fn switch_user_space(root: u64, asid: u16) {
    // SAFETY: `root` is a live tree of the running granule; changing TTBR0
    // affects only lower-half (task) translations, never the kernel's.
    unsafe {
        asm!(
            "msr ttbr0_el1, {ttbr}",
            "mrs {t}, tcr_el1",
            "bic {t}, {t}, #(1 << 7)",
            "msr tcr_el1, {t}",
            "isb",
            ttbr = in(reg) root | (asid as u64) << 48,
            t = out(reg) _,
            options(nostack),
        );
    }
}

/// Drops every TLB entry of `asid` on every core, before its tables or
/// frames are reused.
/// Flushes every EL1&0 stage-1 entry on every core of the inner-shareable
/// domain (`tlbi vmalle1is`): an ASID rollover, after which values are
/// handed out again.
pub fn flush_all_asids() {
    // SAFETY: TLB maintenance and barriers only.
    unsafe { asm!("dsb ishst", "tlbi vmalle1is", "dsb ish", "isb", options(nostack)) };
}

/// Flushes one page of a task's address space on every core (`tlbi
/// vale1is`, by VA and ASID), as the engine does for a user mapping.
pub fn flush_user_page(va: u64, asid: u16) {
    let operand = folio_core::mm::paging::Tlbi::operand(va, Some(asid));
    // SAFETY: TLB maintenance and barriers only.
    unsafe { asm!("dsb ishst", "tlbi vale1is, {}", "dsb ish", "isb", in(reg) operand, options(nostack)) };
}

pub fn flush_asid(asid: u16) {
    // SAFETY: TLB maintenance and barriers only.
    unsafe { asm!("dsb ishst", "tlbi aside1is, {}", "dsb ish", "isb", in(reg) (asid as u64) << 48, options(nostack)) };
}

/// Turns TTBR0 walks off again (no task address space in use).
pub fn no_user_space() {
    // SAFETY: only lower-half translations change, and no task runs.
    unsafe {
        asm!(
            "mrs {t}, tcr_el1",
            "orr {t}, {t}, #(1 << 7)",
            "msr tcr_el1, {t}",
            "msr ttbr0_el1, xzr",
            "isb",
            t = out(reg) _,
            options(nostack),
        );
    }
}
