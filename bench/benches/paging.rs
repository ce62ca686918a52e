//! Host benchmark: map, protect and unmap 1 GiB with folio's engine and with
//! aarch64-paging (the Rust peer, 4 KiB granule only), in pages and with the
//! largest units each allows. Both run against plain host memory; neither
//! issues barriers or TLB maintenance on the host (aarch64-paging compiles
//! them out off-target, folio's `BenchHw` counts them).
//!
//! `cargo bench --bench paging` (or `make bench`). Besides the timings it
//! prints the table frames and leaf descriptors each mapping used.

use std::alloc::{Layout, alloc_zeroed};
use std::hint::black_box;
use std::ptr::NonNull;
use std::sync::Mutex;

use aarch64_paging::Mapping;
use aarch64_paging::descriptor::{El1Attributes, PhysicalAddress};
use aarch64_paging::paging::{Constraints, El1And0, MemoryRegion, PageTable as PeerTable, Translation, VaRange};
use criterion::{Criterion, criterion_group, criterion_main};
use folio_core::mm::Granule;
use folio_core::mm::paging::{Attributes, Barrier, Half, PageTable, PageTableHw, Policy, Tlbi, Unit};

const GIB: u64 = 1 << 30;
const VA: u64 = 4 * GIB;
const PA: u64 = 8 * GIB;

/// Freed table frames by size, reused by both engines, as a kernel's frame
/// allocator would: the host allocator's page faults and trimming would
/// otherwise decide the result.
static POOL: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

fn pool_alloc(size: usize) -> *mut u8 {
    let reused = {
        let mut pool = POOL.lock().unwrap();
        pool.iter().position(|&(_, s)| s == size).map(|i| pool.swap_remove(i).0)
    };
    match reused {
        Some(p) => {
            // SAFETY: a pooled frame of `size` bytes, owned by nobody.
            unsafe { std::ptr::write_bytes(p as *mut u8, 0, size) };
            p as *mut u8
        }
        // SAFETY: a non-zero-sized layout, aligned to its size.
        None => unsafe { alloc_zeroed(Layout::from_size_align(size, size).unwrap()) },
    }
}

fn pool_free(p: *mut u8, size: usize) {
    POOL.lock().unwrap().push((p as usize, size));
}

/// Table frames from the pool, aligned to the granule; the frame's address
/// is its "physical" address.
struct BenchHw {
    granule: Granule,
}

impl PageTableHw for BenchHw {
    fn alloc_table(&mut self) -> Option<u64> {
        let p = pool_alloc(self.granule.size() as usize);
        (!p.is_null()).then_some(p as u64)
    }
    fn free_table(&mut self, table: u64) {
        pool_free(table as *mut u8, self.granule.size() as usize);
    }
    fn read_entry(&mut self, table: u64, index: usize) -> u64 {
        // SAFETY: the engine passes tables from alloc_table and in-range indices.
        unsafe { *(table as *const u64).add(index) }
    }
    fn write_entry(&mut self, table: u64, index: usize, value: u64) {
        // SAFETY: as above.
        unsafe { *(table as *mut u64).add(index) = value }
    }
    fn barrier(&mut self, _: Barrier) {}
    fn tlbi(&mut self, _: Tlbi) {}
}

/// One map+protect+unmap; with `count`, also the table frames and leaf
/// descriptors the mapping used (outside the timed loop).
fn folio_cycle(granule: Granule, policy: Policy, count: bool) -> (u64, usize) {
    let hw = BenchHw { granule };
    let mut t = PageTable::new(hw, granule, Half::Lower, Some(1)).unwrap();
    t.map(VA, PA, GIB, Attributes::USER_RW, policy).unwrap();
    let (mut tables, mut leaves) = (0, 0);
    if count {
        tables = t.stats().tables_in_use;
        leaves = t.mappings(VA, GIB).iter().map(|m| m.unit.entries(granule)).sum();
    }
    t.protect(VA, GIB, Attributes::USER_RO).unwrap();
    t.unmap(VA, GIB).unwrap();
    black_box(t.destroy());
    (tables, leaves)
}

/// aarch64-paging's allocator: heap pages, identity "physical" addresses.
struct PeerAlloc {
    allocated: usize,
}

impl Translation<El1Attributes> for PeerAlloc {
    fn allocate_table(&mut self) -> (NonNull<PeerTable<El1Attributes>>, PhysicalAddress) {
        self.allocated += 1;
        let table = NonNull::new(pool_alloc(4096) as *mut PeerTable<El1Attributes>).unwrap();
        (table, PhysicalAddress(table.as_ptr() as usize))
    }
    unsafe fn deallocate_table(&mut self, table: NonNull<PeerTable<El1Attributes>>) {
        pool_free(table.as_ptr() as *mut u8, 4096);
    }
    fn physical_to_virtual(&self, pa: PhysicalAddress) -> NonNull<PeerTable<El1Attributes>> {
        NonNull::new(pa.0 as *mut PeerTable<El1Attributes>).unwrap()
    }
}

fn peer_cycle(constraints: Constraints, count: bool) -> (usize, usize) {
    let mut m = Mapping::with_asid_and_va_range(PeerAlloc { allocated: 0 }, 1, 0, El1And0, VaRange::Lower);
    let region = MemoryRegion::new(VA as usize, (VA + GIB) as usize);
    let rw = El1Attributes::VALID
        | El1Attributes::ACCESSED
        | El1Attributes::INNER_SHAREABLE
        | El1Attributes::UXN
        | El1Attributes::PXN
        | El1Attributes::NON_GLOBAL
        | El1Attributes::USER;
    m.map_range(&region, PhysicalAddress(PA as usize), rw, constraints).unwrap();
    let tables = m.translation().allocated + 1;
    let mut leaves = 0;
    if count {
        m.walk_range(&region, &mut |_, d, _| {
            leaves += d.is_valid() as usize;
            Ok(())
        })
        .unwrap();
    }
    m.modify_range(&region, &|_, d| d.modify_flags(El1Attributes::READ_ONLY, El1Attributes::empty())).unwrap();
    m.map_range(&region, PhysicalAddress(PA as usize), El1Attributes::empty(), constraints).unwrap();
    black_box(&m);
    (tables, leaves)
}

fn benches(c: &mut Criterion) {
    let pages = Constraints::NO_BLOCK_MAPPINGS | Constraints::NO_CONTIGUOUS_HINT;
    let (t, l) = peer_cycle(pages, true);
    eprintln!("aarch64-paging 4K pages: {t} table frames, {l} leaf descriptors");
    let (t, l) = peer_cycle(Constraints::empty(), true);
    eprintln!("aarch64-paging 4K largest: {t} table frames, {l} leaf descriptors");
    for g in Granule::ALL {
        let (t, l) = folio_cycle(g, Policy::Force(Unit::PAGE), true);
        eprintln!("folio {g} pages: {t} table frames, {l} leaf descriptors");
        let (t, l) = folio_cycle(g, Policy::Largest, true);
        eprintln!("folio {g} largest: {t} table frames, {l} leaf descriptors");
    }

    let mut group = c.benchmark_group("map+protect+unmap 1 GiB");
    group.sample_size(20);
    group.bench_function("aarch64-paging 4K pages", |b| b.iter(|| peer_cycle(pages, false)));
    group.bench_function("folio 4K pages", |b| b.iter(|| folio_cycle(Granule::K4, Policy::Force(Unit::PAGE), false)));
    group.bench_function("aarch64-paging 4K largest", |b| b.iter(|| peer_cycle(Constraints::empty(), false)));
    group.bench_function("folio 4K largest", |b| b.iter(|| folio_cycle(Granule::K4, Policy::Largest, false)));
    group.bench_function("folio 16K pages", |b| b.iter(|| folio_cycle(Granule::K16, Policy::Force(Unit::PAGE), false)));
    group.bench_function("folio 64K pages", |b| b.iter(|| folio_cycle(Granule::K64, Policy::Force(Unit::PAGE), false)));
    group.finish();
}

criterion_group!(paging, benches);
criterion_main!(paging);
