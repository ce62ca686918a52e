//! The HVO engine's hardware in the kernel: vmemmap pages mapped in the
//! kernel's own tables (TTBR1) with the stage-1 engine, frames from the
//! kernel's frame pool, frame contents through the linear map, descriptors
//! through the vmemmap itself (so a write to a shared tail really faults).
//!
//! Owns: nothing but the glue; one `Hvo` at a time uses the vmemmap window.
//! Must never: hold the page-table lock while touching the frame pool's
//! lock the other way round (the engine takes the pool's lock inside).

use core::sync::atomic::{AtomicU32, Ordering};

use crate::frames::KERNEL_FRAMES;
use folio_core::mm::Granule;
use folio_core::mm::layout::{self, MAP_SPAN, VMEMMAP_BASE};
use folio_core::mm::paging::{Attributes, Policy, Remap, Unit};
use folio_hvo::{self as hvo, HvoError, PageDescriptor, VmemmapHw};

use super::mmu::KERNEL_TABLES;

pub struct KernelVmemmapHw {
    granule: Granule,
}

/// The running granule's shift, for the fault handler's classification.
static GRANULE_SHIFT: AtomicU32 = AtomicU32::new(0);

impl KernelVmemmapHw {
    pub fn new(granule: Granule) -> KernelVmemmapHw {
        GRANULE_SHIFT.store(granule.shift(), Ordering::SeqCst);
        KernelVmemmapHw { granule }
    }
}

fn attributes(writable: bool) -> Attributes {
    if writable { Attributes::KERNEL_RW } else { Attributes::KERNEL_RO }
}

impl VmemmapHw for KernelVmemmapHw {
    fn alloc_frame(&mut self) -> Option<u64> {
        KERNEL_FRAMES.lock().as_mut()?.alloc(0).ok()
    }

    fn free_frame(&mut self, pa: u64) {
        if let Some(frames) = KERNEL_FRAMES.lock().as_mut() {
            let _ = frames.free(pa, 0);
        }
    }

    fn free_frames(&mut self, frames: &mut [u64]) {
        if let Some(pool) = KERNEL_FRAMES.lock().as_mut() {
            let _ = pool.free_many(frames);
        }
    }

    fn fill_frame(&mut self, pa: u64, f: &mut dyn FnMut(usize) -> PageDescriptor) {
        let Some(va) = layout::linear(pa) else { return };
        let slots = (self.granule.size() >> hvo::DESCRIPTOR_SHIFT) as usize;
        for i in 0..slots {
            // SAFETY: `pa` is a frame this engine allocated, mapped read/write
            // by the linear map, and `i` stays inside it.
            unsafe { core::ptr::write_volatile((va as *mut PageDescriptor).add(i), f(i)) };
        }
    }

    fn map_pages(&mut self, pages: &[(u64, u64, bool)]) -> Result<(), HvoError> {
        let page = self.granule.size();
        let mut guard = KERNEL_TABLES.lock();
        let t = guard.as_mut().ok_or(HvoError::Paging)?;
        for (done, &(va, pa, writable)) in pages.iter().enumerate() {
            if t.map(va, pa, page, attributes(writable), Policy::Force(Unit::PAGE)).is_err() {
                for &(va, _, _) in &pages[..done] {
                    let _ = t.unmap(va, page);
                }
                return Err(HvoError::Paging);
            }
        }
        Ok(())
    }

    fn map_shared(&mut self, va: u64, pa: u64, pages: u64) -> Result<(), HvoError> {
        let mut guard = KERNEL_TABLES.lock();
        let t = guard.as_mut().ok_or(HvoError::Paging)?;
        t.map_repeated(va, pa, pages, Attributes::KERNEL_RO).map_err(|_| HvoError::Paging)
    }

    fn create_shared_table(&mut self, pa: u64) -> Result<u64, HvoError> {
        let mut guard = KERNEL_TABLES.lock();
        let t = guard.as_mut().ok_or(HvoError::Paging)?;
        t.create_shared_table(pa, Attributes::KERNEL_RO).map_err(|_| HvoError::OutOfMemory)
    }

    fn link_shared_table(&mut self, va: u64, table: u64) -> Result<(), HvoError> {
        KERNEL_TABLES
            .lock()
            .as_mut()
            .ok_or(HvoError::Paging)?
            .link_shared_table(va, table)
            .map_err(|_| HvoError::Paging)
    }

    fn release_shared_table(&mut self, table: u64) {
        if let Some(t) = KERNEL_TABLES.lock().as_mut() {
            t.release_shared_table(table);
        }
    }

    fn remap_pages(&mut self, pages: &[(u64, u64, bool)]) -> Result<alloc::vec::Vec<u64>, HvoError> {
        let changes: alloc::vec::Vec<Remap> =
            pages.iter().map(|&(va, pa, w)| Remap { va, pa, attributes: attributes(w) }).collect();
        KERNEL_TABLES.lock().as_mut().ok_or(HvoError::Paging)?.remap(&changes).map_err(|_| HvoError::Paging)
    }

    fn unmap_pages(&mut self, va: u64, size: u64) -> Result<(), HvoError> {
        KERNEL_TABLES.lock().as_mut().ok_or(HvoError::Paging)?.unmap(va, size).map_err(|_| HvoError::Paging)
    }

    fn frame_of(&mut self, va: u64) -> Option<u64> {
        KERNEL_TABLES.lock().as_mut()?.translate(va).map(|m| m.pa + (va - m.va))
    }

    fn read(&mut self, va: u64) -> PageDescriptor {
        // SAFETY: the engine reads only descriptors of vmemmap pages it
        // mapped; 64-byte aligned.
        unsafe { core::ptr::read_volatile(va as *const PageDescriptor) }
    }

    fn write(&mut self, va: u64, d: &PageDescriptor) -> Result<(), HvoError> {
        // SAFETY: as for `read`. The engine writes only private, writable
        // pages; a write to a shared tail would fault and be reported.
        unsafe { core::ptr::write_volatile(va as *mut PageDescriptor, *d) };
        Ok(())
    }

    fn table_frames(&mut self) -> u64 {
        KERNEL_TABLES.lock().as_ref().map_or(0, |t| t.stats().tables_in_use)
    }
}

/// For the fault handler: a permission fault on a write at `far` in the
/// vmemmap that hit a shared tail page, described.
pub fn classify_fault(far: u64) -> Option<hvo::HvoViolation> {
    if !(VMEMMAP_BASE..VMEMMAP_BASE + MAP_SPAN).contains(&far) {
        return None;
    }
    let granule = Granule::ALL.into_iter().find(|g| g.shift() == GRANULE_SHIFT.load(Ordering::SeqCst))?;
    hvo::classify_write(VMEMMAP_BASE, granule, far, &mut |va| {
        // SAFETY: `far` took a permission fault, so its page is mapped
        // (readable); the head descriptor lies in the folio's private page 0,
        // also mapped. Reads have no side effects.
        unsafe { core::ptr::read_volatile(va as *const PageDescriptor) }
    })
}
