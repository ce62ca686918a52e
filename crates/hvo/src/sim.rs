//! The HVO engine's hardware on the host: the stage-1 engine over the
//! simulated machine (with its TLB model and the descriptor checker), a
//! frame allocator that can be told to fail, and frame contents.

use std::collections::HashMap;

use super::{HvoError, PageDescriptor, VmemmapHw};
use folio_core::mm::paging::sim::SimMachine;
use folio_core::mm::paging::{Attributes, Half, PageTable, PagingError, Policy, Remap, Unit, checker};
use folio_core::mm::{FramePool, Granule, PhysRange};

/// Where the simulated vmemmap lives (the kernel's layout uses the same).
pub const VMEMMAP_BASE: u64 = folio_core::mm::layout::VMEMMAP_BASE;
/// Frames for vmemmap pages come from here, away from the zones.
pub const META_BASE: u64 = 0x80_0000_0000;

pub struct SimVmemmap {
    pub tables: PageTable<SimMachine>,
    pub frames: FramePool,
    memory: HashMap<u64, Vec<PageDescriptor>>,
    /// Frame allocations that will still succeed; `None`: unlimited.
    pub allocations_left: Option<usize>,
}

impl SimVmemmap {
    pub fn new(granule: Granule, meta_frames: u64) -> SimVmemmap {
        Self::in_half(granule, meta_frames, Half::Upper)
    }

    /// A vmemmap in a task's lower half (ASID 1), as the memory service has.
    pub fn new_lower(granule: Granule, meta_frames: u64) -> SimVmemmap {
        Self::in_half(granule, meta_frames, Half::Lower)
    }

    fn in_half(granule: Granule, meta_frames: u64, half: Half) -> SimVmemmap {
        let asid = (half == Half::Lower).then_some(1);
        let mut tables = PageTable::new(SimMachine::new(granule, half == Half::Upper), granule, half, asid).unwrap();
        let root = tables.root();
        tables.hw().set_root(root);
        let mut frames = FramePool::new(granule);
        frames.add_range(PhysRange::from_start_size(META_BASE, meta_frames * granule.size()).unwrap()).unwrap();
        SimVmemmap { tables, frames, memory: HashMap::new(), allocations_left: None }
    }

    fn page(&self) -> u64 {
        self.tables.granule().size()
    }

    /// The frame and descriptor index `va` reaches, and whether it is writable.
    fn locate(&mut self, va: u64) -> (u64, usize, bool) {
        let m = self.tables.translate(va).unwrap_or_else(|| panic!("vmemmap address {va:#x} is not mapped"));
        let pa = m.pa + (va - m.va);
        let page = pa & !(self.page() - 1);
        (page, ((pa - page) >> 6) as usize, m.attributes.writable)
    }

    /// The checker and the TLB model: panics with what they found.
    pub fn judge(&mut self, step: &str) {
        let granule = self.tables.granule();
        let root = self.tables.root();
        let sim = self.tables.hw();
        sim.check_quiescent();
        let sim: &SimMachine = sim;
        let v = checker::check(granule, root, true, &mut |t, i| sim.read(t, i), &|pa| sim.is_ram(pa));
        assert!(v.is_empty(), "{step}: checker: {v:?}");
        assert!(sim.violations.is_empty(), "{step}: TLB model: {:?}", sim.violations);
    }
}

impl VmemmapHw for SimVmemmap {
    fn alloc_frame(&mut self) -> Option<u64> {
        if let Some(left) = self.allocations_left.as_mut() {
            if *left == 0 {
                return None;
            }
            *left -= 1;
        }
        let pa = self.frames.alloc(0).ok()?;
        let per_page = (self.page() >> 6) as usize;
        // Frames arrive with stale contents, as real ones do.
        let stale = PageDescriptor { flags: 0xdead, ..PageDescriptor::default() };
        assert!(self.memory.insert(pa, vec![stale; per_page]).is_none(), "frame {pa:#x} handed out twice");
        Some(pa)
    }

    fn free_frame_count(&self) -> Option<u64> {
        Some(self.frames.free_frames())
    }

    fn free_frame(&mut self, pa: u64) {
        assert!(self.memory.remove(&pa).is_some(), "frame {pa:#x} freed but not allocated");
        self.frames.free(pa, 0).unwrap();
    }

    fn fill_frame(&mut self, pa: u64, f: &mut dyn FnMut(usize) -> PageDescriptor) {
        let frame = self.memory.get_mut(&pa).expect("filling an unallocated frame");
        for (i, d) in frame.iter_mut().enumerate() {
            *d = f(i);
        }
    }

    fn map_pages(&mut self, pages: &[(u64, u64, bool)]) -> Result<(), HvoError> {
        let page = self.page();
        for (done, &(va, pa, writable)) in pages.iter().enumerate() {
            let attributes = if writable { Attributes::KERNEL_RW } else { Attributes::KERNEL_RO };
            if self.tables.map(va, pa, page, attributes, Policy::Force(Unit::PAGE)).is_err() {
                for &(va, _, _) in &pages[..done] {
                    let _ = self.tables.unmap(va, page);
                }
                return Err(HvoError::Paging);
            }
        }
        Ok(())
    }

    fn map_shared(&mut self, va: u64, pa: u64, pages: u64) -> Result<(), HvoError> {
        self.tables.map_repeated(va, pa, pages, Attributes::KERNEL_RO).map_err(|_| HvoError::Paging)
    }

    fn link_shared_tables(&mut self, va: u64, tables: u64, pa: u64) -> Result<(), HvoError> {
        let span = self.tables.granule().level_size(2);
        for k in 0..tables {
            if let Err(e) = self.tables.link_shared(va + k * span, pa, Attributes::KERNEL_RO) {
                let _ = self.tables.unmap(va, k * span);
                return Err(if e == PagingError::OutOfTableFrames { HvoError::OutOfMemory } else { HvoError::Paging });
            }
        }
        Ok(())
    }

    fn add_frames(&mut self, range: PhysRange) -> bool {
        self.frames.add_range(range).is_ok()
    }

    fn remap_pages(&mut self, pages: &[(u64, u64, bool)]) -> Result<Vec<u64>, HvoError> {
        let changes: Vec<Remap> = pages
            .iter()
            .map(|&(va, pa, w)| Remap {
                va,
                pa,
                attributes: if w { Attributes::KERNEL_RW } else { Attributes::KERNEL_RO },
            })
            .collect();
        self.tables.remap(&changes).map_err(|_| HvoError::Paging)
    }

    fn unmap_pages(&mut self, va: u64, size: u64) -> Result<(), HvoError> {
        self.tables.unmap(va, size).map_err(|_| HvoError::Paging)
    }

    fn frame_of(&mut self, va: u64) -> Option<u64> {
        self.tables.translate(va).map(|m| m.pa + (va - m.va))
    }

    fn read(&mut self, va: u64) -> PageDescriptor {
        let (page, index, _) = self.locate(va);
        self.memory[&page][index]
    }

    fn write(&mut self, va: u64, d: &PageDescriptor) -> Result<(), HvoError> {
        let (page, index, writable) = self.locate(va);
        if !writable {
            return Err(HvoError::ReadOnly { va });
        }
        self.memory.get_mut(&page).expect("mapped frame has contents")[index] = *d;
        Ok(())
    }

    fn table_frames(&mut self) -> u64 {
        self.tables.stats().tables_in_use
    }
}
