//! In-kernel benchmarks (`bench` boot argument), for QEMU with
//! `-icount shift=0`, where the PMU cycle counter counts instructions
//! exactly. Each line: `bench NAME: N instructions, T TLBI, D DSB, I ISB`
//! (TLB invalidations and barriers are counted apart because icount counts
//! each as one instruction, whatever it costs on hardware).
//!
//! Every figure is of a warm operation: the tables it needs already exist
//! (a neighbouring page stays mapped), the operation has run once before,
//! and the counter's own overhead is subtracted.

use folio::arch::aarch64::mmu::{KERNEL_TABLES, KernelHw};
use folio::arch::aarch64::pmu;
use folio::mm::Granule;
use folio::mm::frame::KERNEL_FRAMES;
use folio::mm::layout::TEST_BASE;
use folio::mm::paging::{Attributes, PageTable, Policy, Stats, Unit};
use folio::println;

fn report(name: &str, instructions: u64, before: Stats, after: Stats) {
    println!(
        "bench {name}: {instructions} instructions, {} TLBI, {} DSB, {} ISB",
        after.tlbi - before.tlbi,
        after.dsb - before.dsb,
        after.isb - before.isb
    );
}

/// Runs `op` twice (warm-up, then measured) and reports the second run.
fn measure(
    name: &str,
    t: &mut PageTable<KernelHw>,
    mut op: impl FnMut(&mut PageTable<KernelHw>),
    mut undo: impl FnMut(&mut PageTable<KernelHw>),
) {
    op(t);
    undo(t);
    let overhead = pmu::overhead();
    let before = t.stats();
    let start = pmu::read();
    op(t);
    let end = pmu::read();
    let after = t.stats();
    report(name, end - start - overhead, before, after);
    undo(t);
}

pub fn run(granule: Granule) {
    pmu::enable();
    println!("bench: granule {granule}, counter overhead {} instructions", pmu::overhead());
    // The 2 MiB unit of each granule: a block on 4K, a contiguous page run on 16K and 64K.
    let two_mib = match granule {
        Granule::K4 => Unit { level: 2, contiguous: false },
        _ => Unit { level: 3, contiguous: true },
    };
    let size = two_mib.size(granule);
    let order = (size >> granule.shift()).trailing_zeros();
    let Some(Ok(pa)) = KERNEL_FRAMES.lock().as_mut().map(|f| f.alloc(order)) else {
        println!("bench: no free 2 MiB block");
        return;
    };
    let mut guard = KERNEL_TABLES.lock();
    let Some(t) = guard.as_mut() else { return };
    let page = granule.size();
    // Keep the tables around the measured addresses alive.
    let anchor = TEST_BASE + 4 * size;
    let _ = t.map(anchor, pa, page, Attributes::KERNEL_RW, Policy::Force(Unit::PAGE));
    let va = anchor + page;
    let map_page = |t: &mut PageTable<KernelHw>| {
        let _ = t.map(va, pa, page, Attributes::KERNEL_RW, Policy::Force(Unit::PAGE));
    };
    let unmap_page = |t: &mut PageTable<KernelHw>| {
        let _ = t.unmap(va, page);
    };
    measure("map one page", t, map_page, unmap_page);
    map_page(t);
    measure("unmap one page", t, unmap_page, map_page);
    unmap_page(t);
    let big = TEST_BASE + 2 * size;
    let map_big = |t: &mut PageTable<KernelHw>| {
        let _ = t.map(big, pa, size, Attributes::KERNEL_RW, Policy::Force(two_mib));
    };
    let unmap_big = |t: &mut PageTable<KernelHw>| {
        let _ = t.unmap(big, size);
    };
    // A neighbour of the 2 MiB unit keeps its table alive too.
    let _ = t.map(big + size, pa, page, Attributes::KERNEL_RW, Policy::Force(Unit::PAGE));
    measure(&alloc::format!("map one 2 MiB {two_mib}"), t, map_big, unmap_big);
    map_big(t);
    measure(&alloc::format!("unmap one 2 MiB {two_mib}"), t, unmap_big, map_big);
    unmap_big(t);
    let _ = t.unmap(big + size, page);
    let _ = t.unmap(anchor, page);
    drop(guard);
    if let Some(f) = KERNEL_FRAMES.lock().as_mut() {
        let _ = f.free(pa, order);
    }
}
