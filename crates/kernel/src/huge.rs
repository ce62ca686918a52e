//! Huge folios and HVO in the kernel, for its tests and the boot report.
//!
//! Owns: carving folios out of the kernel's frame pool and running the HVO
//! engine ([`folio_hvo`]) over exactly their frames, with a vmemmap in the
//! kernel's own tables, for the in-kernel HVO tests, the boot savings table
//! and the `hugepages=` pools. The memory service runs the same engine in
//! its own task over its own pool.
//! Must never: keep a vmemmap alive after the operation that made it.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::arch::aarch64::vmemmap::KernelVmemmapHw;
use crate::frames::KERNEL_FRAMES;
use crate::result;
use folio_core::mm::layout::VMEMMAP_BASE;
use folio_core::mm::memmap::Size;
use folio_core::mm::paging::Unit;
use folio_core::mm::{Granule, PhysRange};
use folio_hvo::{self as hvo, Folio, Hvo, HvoError, Zone};

/// The huge-page sizes of a granule: every mapping unit above a page,
/// smallest first (contiguous PTE run, PMD block, contiguous PMD run, and
/// on 4K the PUD block).
pub fn huge_units(granule: Granule) -> Vec<Unit> {
    let mut units: Vec<Unit> = Unit::all_largest_first(granule).filter(|u| *u != Unit::PAGE).collect();
    units.reverse();
    units
}

pub fn order_of(granule: Granule, unit: Unit) -> u32 {
    (unit.size(granule) >> granule.shift()).trailing_zeros()
}

pub fn free_frames() -> u64 {
    KERNEL_FRAMES.lock().as_ref().map_or(0, |f| f.free_frames())
}

/// A folio's frames from the kernel pool, and a vmemmap describing exactly
/// them (zone: the RAM bank they lie in).
pub struct FolioRegion {
    pub pa: u64,
    pub order: u32,
    pub hvo: Hvo<KernelVmemmapHw>,
}

impl FolioRegion {
    /// `None`: no free, aligned block of this order.
    pub fn new(granule: Granule, order: u32, banks: &[PhysRange]) -> Result<Option<FolioRegion>, HvoError> {
        let Some(Ok(pa)) = KERNEL_FRAMES.lock().as_mut().map(|f| f.alloc(order)) else { return Ok(None) };
        let range = PhysRange::saturating(pa, granule.size() << order);
        let id = banks.iter().position(|b| b.contains_range(&range)).unwrap_or(0) as u8;
        match Hvo::new(KernelVmemmapHw::new(granule), granule, VMEMMAP_BASE, &[Zone { id, range }]) {
            Ok(hvo) => Ok(Some(FolioRegion { pa, order, hvo })),
            Err(e) => {
                free_block(pa, order);
                Err(e)
            }
        }
    }

    pub fn pfn(&self) -> u64 {
        self.pa >> self.hvo.granule().shift()
    }

    /// Tears the vmemmap down and returns the frames to the pool.
    pub fn finish(self) {
        let (pa, order) = (self.pa, self.order);
        let _hardware = self.hvo.destroy();
        free_block(pa, order);
    }
}

fn free_block(pa: u64, order: u32) {
    if let Some(f) = KERNEL_FRAMES.lock().as_mut() {
        let _ = f.free(pa, order);
    }
}

/// Reads every tail's compound_head through the vmemmap; for the kernel tests.
pub fn check_every_tail(hvo: &mut Hvo<KernelVmemmapHw>, f: Folio) -> Result<(), String> {
    for i in 0..(1u64 << f.order) {
        let head = hvo.compound_head(f.pfn + i);
        if head != f.pfn {
            return Err(format!("frame {i} of the order-{} folio at {:#x} finds head {head:#x}", f.order, f.pfn));
        }
    }
    Ok(())
}

/// Huge pages reserved at boot (`hugepages=`): their frames, taken from the
/// pool before anything else allocates, so aligned ranges are still free.
pub struct ReservedPool {
    pub order: u32,
    pub frames: Vec<u64>,
}

/// Reserves the pools the command line asks for. Sizes the granule does
/// not support and counts that do not fit are reported and skipped.
pub fn reserve_pools(
    frames: &mut folio_core::mm::FramePool,
    granule: Granule,
    requests: &[(u64, u64)],
) -> Vec<ReservedPool> {
    let units = huge_units(granule);
    let mut pools = Vec::new();
    for &(size, count) in requests {
        let Some(unit) = units.iter().find(|u| u.size(granule) == size) else {
            let sizes: Vec<String> = units.iter().map(|u| format!("{}", Size(u.size(granule)))).collect();
            // Not a huge-page size of this granule: skipped.
            result!("hugepages.request", false, size = Size(size), granule = granule, sizes = sizes.join(","));
            continue;
        };
        let order = order_of(granule, *unit);
        let mut got = Vec::new();
        while (got.len() as u64) < count {
            match frames.alloc(order) {
                Ok(pa) => got.push(pa),
                Err(_) => {
                    result!(
                        "hugepages.request",
                        false,
                        size = Size(size),
                        asked = count,
                        got = got.len(),
                        why = "free memory"
                    );
                    break;
                }
            }
        }
        if !got.is_empty() {
            pools.push(ReservedPool { order, frames: got });
        }
    }
    pools
}

/// The boot-time huge-page pools and the vmemmap that describes them.
pub static HUGEPAGE_POOL: crate::sync::SpinLock<Option<(Hvo<KernelVmemmapHw>, Vec<Folio>)>> =
    crate::sync::SpinLock::new(None);

/// Describes the reserved pools in a vmemmap, born optimized (or, with
/// `late`, populated in full and optimized afterwards), and prints what
/// their vmemmap costs against a plain one.
pub fn describe_pools(granule: Granule, banks: &[PhysRange], pools: &[ReservedPool], late: bool) {
    if pools.is_empty() {
        return;
    }
    let zone_of = |range: &PhysRange| banks.iter().position(|b| b.contains_range(range)).unwrap_or(0) as u8;
    let mut zones = Vec::new();
    for pool in pools {
        for &pa in &pool.frames {
            let range = PhysRange::saturating(pa, granule.size() << pool.order);
            zones.push(Zone { id: zone_of(&range), range });
        }
    }
    let tables_before = crate::arch::aarch64::mmu::KERNEL_TABLES.lock().as_ref().map_or(0, |t| t.stats().tables_in_use);
    let start = crate::arch::aarch64::pmu::read();
    let mut folios = Vec::new();
    let hvo = if late {
        // The full vmemmap first, every descriptor initialised, then HVO.
        let mut hvo = match Hvo::new(KernelVmemmapHw::new(granule), granule, VMEMMAP_BASE, &zones) {
            Ok(hvo) => hvo,
            Err(e) => {
                log::error!("hugepages: no memory for the pools' vmemmap: {e}");
                return;
            }
        };
        for pool in pools {
            for &pa in &pool.frames {
                match hvo.create_folio(pa >> granule.shift(), pool.order, 0, false) {
                    Ok(f) => folios.push(f),
                    Err(e) => log::error!("hugepages: folio at {pa:#x}: {e}"),
                }
            }
        }
        if let Err(e) = hvo.optimize(&folios) {
            log::error!("hugepages: optimizing the pools: {e}");
        }
        hvo
    } else {
        let mut hvo = Hvo::new_unpopulated(KernelVmemmapHw::new(granule), granule, VMEMMAP_BASE, &zones);
        for pool in pools {
            for &pa in &pool.frames {
                match hvo.adopt_optimized(pa >> granule.shift(), pool.order, 0) {
                    Ok(f) => folios.push(f),
                    Err(e) => log::error!("hugepages: folio at {pa:#x}: {e}"),
                }
            }
        }
        hvo
    };
    let instructions = crate::arch::aarch64::pmu::read() - start;
    let mut hvo = hvo;
    hvo.count_table_frames(tables_before);
    let acc = hvo.accounting();
    let page = granule.size();
    for pool in pools {
        // Reserved at boot; born optimized, or (late) populated in full and
        // optimized afterwards.
        result!(
            "hugepages.pool",
            true,
            count = pool.frames.len(),
            size = Size(page << pool.order),
            born_optimized = if late { "no" } else { "yes" }
        );
    }
    let plain: u64 = pools
        .iter()
        .map(|p| p.frames.len() as u64 * (((1u64 << p.order) << hvo::DESCRIPTOR_SHIFT) / page).max(1))
        .sum();
    let cost = acc.vmemmap_frames + acc.shared_tails + acc.table_frames;
    // What the pools' vmemmap costs against a plain one; instructions by the
    // PMU cycle counter (exact under QEMU -icount).
    result!(
        "hugepages.vmemmap",
        true,
        private_pages = acc.vmemmap_frames,
        shared_tails = acc.shared_tails,
        table_frames = acc.table_frames,
        frames = cost,
        bytes = cost * page,
        plain_pages = plain,
        never_allocated = acc.never_populated,
        instructions = instructions
    );
    *HUGEPAGE_POOL.lock() = Some((hvo, folios));
}
