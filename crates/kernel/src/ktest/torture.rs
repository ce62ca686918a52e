//! The SMP torture test: tasks on the other cores keep reading and writing
//! a 2 MiB region while the boot core changes the region's mappings under
//! them with break-before-make, through the stage-1 engine.
//!
//! Each cycle, for every reader's region: split it (block or contiguous
//! run into smaller units); move its first page to a spare frame (unmap,
//! which breaks and invalidates by broadcast; copy; map the spare; poison
//! the old frame's counter); move it back (the same, the other way);
//! coalesce the region again; make it read-only and read/write again. A
//! reader that touches the region inside a window faults, waits for the
//! task-set lock this agent holds, finds the mapping complete and runs the
//! instruction again (`task::retry_after_change`). A reader that used a
//! stale translation would write into a frame the copy had already left
//! (an increment lost) or read the poison: its counters would be wrong.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::arch::aarch64::mmu::KernelHw;
use crate::frames::KERNEL_FRAMES;
use folio_core::mm::Granule;
use folio_core::mm::layout;
use folio_core::mm::paging::{Attributes, PageTable, PageTableHw, Policy, Unit, checker};

use crate::task::BootCoreAgent;

/// The region every reader has at the same address (see user/src/bin/torture.rs).
pub const REGION: u64 = 0x10_0000_0000;
const REGION_SIZE: u64 = 2 << 20;
const POISON: u64 = 0x7070_7070_7070_7070;

struct Reader {
    task: usize,
    block: u64,
    spare: u64,
}

pub struct Torture {
    granule: Granule,
    readers: Vec<Reader>,
    /// The unit the region is mapped with (a block or a contiguous run).
    unit: Option<Unit>,
    phase: u32,
    pub cycles: u64,
    pub error: Option<String>,
}

impl Torture {
    pub fn new(granule: Granule, reader_tasks: &[usize]) -> Torture {
        let readers = reader_tasks.iter().map(|&task| Reader { task, block: 0, spare: 0 }).collect();
        Torture { granule, readers, unit: None, phase: 0, cycles: 0, error: None }
    }

    /// Gives the frames back (after the run).
    pub fn release(&mut self) {
        let order = (REGION_SIZE >> self.granule.shift()).trailing_zeros();
        if let Some(frames) = KERNEL_FRAMES.lock().as_mut() {
            for r in self.readers.drain(..) {
                if r.block != 0 {
                    let _ = frames.free(r.block, order);
                }
                if r.spare != 0 {
                    let _ = frames.free(r.spare, 0);
                }
            }
        }
    }

    fn page(&self) -> u64 {
        self.granule.size()
    }

    /// Moves the region's first page from `from` to `to`: break (unmap,
    /// broadcast invalidation), copy, make (map), poison `from`.
    fn move_first_page(&self, t: &mut PageTable<KernelHw>, from: u64, to: u64) -> Result<(), String> {
        let page = self.page();
        t.unmap(REGION, page).map_err(|e| format!("unmap: {e}"))?;
        let (src, dst) = (linear(from)?, linear(to)?);
        // SAFETY: both are frames this test owns, mapped by the linear map;
        // no task maps `from` any more (the unmap above invalidated every
        // core's entries before returning) and `to` is not mapped yet.
        unsafe { core::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, page as usize) };
        t.map(REGION, to, page, Attributes::USER_RW, Policy::Force(Unit::PAGE)).map_err(|e| format!("map: {e}"))?;
        // SAFETY: as above; `from` is unmapped, only this test writes it.
        unsafe { core::ptr::write_volatile(src as *mut u64, POISON) };
        Ok(())
    }

    fn phase_on(&self, t: &mut PageTable<KernelHw>, r: &Reader) -> Result<(), String> {
        let unit = self.unit.ok_or("no unit")?;
        match self.phase {
            0 => t.split(REGION).map(|_| ()).map_err(|e| format!("split: {e}")),
            1 => self.move_first_page(t, r.block, r.spare),
            2 => self.move_first_page(t, r.spare, r.block),
            3 => t.coalesce(REGION, unit).map_err(|e| format!("coalesce: {e}")),
            _ => t
                .protect(REGION, REGION_SIZE, Attributes::USER_RO)
                .and_then(|_| t.protect(REGION, REGION_SIZE, Attributes::USER_RW))
                .map_err(|e| format!("protect: {e}")),
        }
    }
}

fn linear(pa: u64) -> Result<u64, String> {
    layout::linear(pa).ok_or_else(|| format!("{pa:#x} beyond the linear map"))
}

fn zeroed(pa: u64, size: u64) -> Result<(), String> {
    // SAFETY: a block just allocated for this test, in the linear map.
    unsafe { core::ptr::write_bytes(linear(pa)? as *mut u8, 0, size as usize) };
    Ok(())
}

impl BootCoreAgent for Torture {
    fn prepare(&mut self, tables: &mut [&mut PageTable<KernelHw>]) -> Result<(), String> {
        let order = (REGION_SIZE >> self.granule.shift()).trailing_zeros();
        for r in self.readers.iter_mut() {
            let mut guard = KERNEL_FRAMES.lock();
            let frames = guard.as_mut().ok_or("no frame pool")?;
            r.block = frames.alloc(order).map_err(|e| format!("{e}"))?;
            r.spare = frames.alloc(0).map_err(|e| format!("{e}"))?;
            drop(guard);
            zeroed(r.block, REGION_SIZE)?;
            zeroed(r.spare, self.granule.size())?;
            let t = tables.get_mut(r.task).ok_or("no such task")?;
            t.map(REGION, r.block, REGION_SIZE, Attributes::USER_RW, Policy::Largest).map_err(|e| format!("{e}"))?;
            self.unit = t.translate(REGION).map(|m| m.unit);
        }
        match self.unit {
            Some(u) if u != Unit::PAGE => Ok(()),
            u => Err(format!("the region is mapped with {u:?}, not a block or contiguous run")),
        }
    }

    fn step(&mut self, tables: &mut [&mut PageTable<KernelHw>]) -> bool {
        for r in &self.readers {
            let Some(t) = tables.get_mut(r.task) else { continue };
            if let Err(e) = self.phase_on(t, r) {
                self.error = Some(format!("phase {}: {e}", self.phase));
                return false;
            }
        }
        self.phase = (self.phase + 1) % 5;
        if self.phase == 0 {
            self.cycles += 1;
            // The checker over each reader's tree, once per cycle.
            let granule = self.granule;
            for r in &self.readers {
                let Some(t) = tables.get_mut(r.task) else { continue };
                let root = t.root();
                let hw = t.hw();
                let v = checker::check(granule, root, false, &mut |table, i| hw.read_entry(table, i), &|_| true);
                if !v.is_empty() {
                    self.error = Some(format!("checker: {v:?}"));
                    return false;
                }
            }
        }
        true
    }
}
