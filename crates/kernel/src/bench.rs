//! In-kernel benchmarks (`bench` boot argument), for QEMU with
//! `-icount shift=0`, where the PMU cycle counter counts instructions
//! exactly. Each line: `bench NAME: N instructions, T TLBI, D DSB, I ISB`
//! (TLB invalidations and barriers are counted apart because icount counts
//! each as one instruction, whatever it costs on hardware).
//!
//! Every figure is of a warm operation: the tables it needs already exist
//! (a neighbouring page stays mapped), the operation has run once before,
//! and the counter's own overhead is subtracted.

use crate::arch::aarch64::mmu::{KERNEL_TABLES, KernelHw};
use crate::arch::aarch64::pmu;
use crate::frames::KERNEL_FRAMES;
use crate::println;
use folio_core::mm::Granule;
use folio_core::mm::layout::TEST_BASE;
use folio_core::mm::paging::{Attributes, PageTable, Policy, Stats, Unit};

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
    let pmu = pmu();
    op(t);
    undo(t);
    let overhead = pmu.overhead();
    let before = t.stats();
    let start = pmu.read();
    op(t);
    let end = pmu.read();
    let after = t.stats();
    report(name, end - start - overhead, before, after);
    undo(t);
}

/// The cycle counter the benchmarks read (`run` returns early without one).
fn pmu() -> pmu::CycleCounter {
    pmu::CycleCounter::get().unwrap_or_else(|| unreachable!("bench::run checks for a PMU first"))
}

pub fn run(granule: Granule, timer_intid: Option<u32>) {
    if pmu::CycleCounter::get().is_none() {
        println!("bench: this CPU has no PMU: nothing to count instructions with; skipped");
        return;
    }
    paging(granule);
    tlb();
    use crate::programs::{IPCBENCH, IPCBENCH_SOFT_FLOAT, IPCSERVER, IPCSERVER_SOFT_FLOAT};
    ipc(granule, timer_intid, 0, (IPCBENCH, IPCSERVER), Neighbour::None);
    ipc(granule, timer_intid, 0, (IPCBENCH_SOFT_FLOAT, IPCSERVER_SOFT_FLOAT), Neighbour::None);
    ipc(granule, timer_intid, 0, (IPCBENCH_SOFT_FLOAT, IPCSERVER_SOFT_FLOAT), Neighbour::FpServer);
    ipc_long(granule, timer_intid);
    if crate::smp::online_cores() > 1 {
        ipc(granule, timer_intid, 1, (IPCBENCH, IPCSERVER), Neighbour::None);
        ipc(granule, timer_intid, 1, (IPCBENCH, IPCSERVER), Neighbour::Napper);
    }
}

/// Broadcast TLB invalidation as the engine issues it: one page by VA and
/// ASID (`vale1is`), and a whole address space (`aside1is`), each with its
/// barriers. Under icount the cycle counter follows virtual time, which
/// every core's instructions advance, so with several cores the figure
/// includes what the others ran meanwhile (QEMU's own flush work is not
/// instructions at all).
fn tlb() {
    let pmu = pmu();
    use crate::arch::aarch64::mmu;
    let cores = crate::smp::online_cores();
    let overhead = (0..4).map(|_| pmu.read().wrapping_neg().wrapping_add(pmu.read())).min().unwrap_or(0);
    let mut page = u64::MAX;
    let mut space = u64::MAX;
    for _ in 0..8 {
        let t0 = pmu.read();
        mmu::flush_user_page(0x40_0000, 1);
        let t1 = pmu.read();
        mmu::flush_asid(1);
        let t2 = pmu.read();
        page = page.min(t1 - t0 - overhead);
        space = space.min(t2 - t1 - overhead);
    }
    println!(
        "bench broadcast TLBI of one page (dsb ishst, tlbi vale1is, dsb ish, isb), {cores} core(s): {page} instructions"
    );
    println!(
        "bench broadcast TLBI of an address space (dsb ishst, tlbi aside1is, dsb ish, isb), {cores} core(s): {space} instructions"
    );
}

/// A third task in an IPC benchmark.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Neighbour {
    None,
    /// `fpserver` on the client's core, called before each round: a pair
    /// that never uses FP/SIMD must measure the same as without it.
    FpServer,
    /// `napper` on the server's core, sleeping in a timed receive: idle
    /// cores wait in WFI for their timer (not WFE), so each call and reply
    /// wakes the other core with the reschedule SGI.
    Napper,
}

/// Call and reply between two address spaces (the ipcbench and ipcserver
/// programs, `pair`, print their figures), with `neighbour`.
fn ipc(
    granule: Granule,
    timer_intid: Option<u32>,
    server_core: usize,
    (client, server): (&'static [u8], &'static [u8]),
    neighbour: Neighbour,
) {
    let fp_neighbour = neighbour == Neighbour::FpServer;
    use crate::task::{self, Objects, Spec};
    use folio_core::ipc::Object;
    let mut specs = alloc::vec![
        Spec {
            name: "ipcserver",
            image: server,
            priority: 2,
            handles: &[(Object::Endpoint(0), 0)],
            core: Some(server_core),
        },
        Spec { name: "ipcbench", image: client, priority: 1, handles: &[(Object::Endpoint(0), 1)], core: Some(0) },
    ];
    // ipcbench labels its line "across cores" when x0 says so, calls the
    // FP/SIMD server before each round when x1 = 1, says the server's core
    // idles in WFI when x1 = 2.
    let mut arguments = alloc::vec![(1, [server_core as u64, neighbour as u64])];
    if neighbour == Neighbour::Napper {
        let image = crate::programs::NAPPER;
        specs.push(Spec {
            name: "napper",
            image,
            priority: 1,
            handles: &[(Object::Endpoint(1), 0)],
            core: Some(server_core),
        });
        // It sleeps 200 ms, longer than the benchmark runs.
        arguments.push((2, [200, 0]));
    }
    if fp_neighbour {
        let image = crate::programs::FPSERVER;
        specs.push(Spec { name: "fpserver", image, priority: 2, handles: &[(Object::Endpoint(1), 0)], core: Some(0) });
        specs[1].handles = &[(Object::Endpoint(0), 1), (Object::Endpoint(1), 1)];
    }
    let objects = Objects {
        endpoint_owners: if neighbour == Neighbour::None { &[0] } else { &[0, 2] },
        notifications: 0,
        death_notices: &[],
        start_arguments: &arguments,
        ..Default::default()
    };
    let outcome = task::run(&specs, &objects, granule, timer_intid);
    println!("bench ipc: tasks ended {:?}, fast path taken {} times", outcome.statuses, outcome.fast_ipc);
}

/// Long messages through the IPC buffers: `longbench` against
/// `longserver`, same core, separate address spaces.
fn ipc_long(granule: Granule, timer_intid: Option<u32>) {
    use crate::programs::{LONGBENCH, LONGSERVER};
    use crate::task::{self, Objects, Spec};
    use folio_core::ipc::Object;
    let specs = [
        Spec {
            name: "longserver",
            image: LONGSERVER,
            priority: 2,
            handles: &[(Object::Endpoint(0), 0)],
            core: Some(0),
        },
        Spec { name: "longbench", image: LONGBENCH, priority: 1, handles: &[(Object::Endpoint(0), 1)], core: Some(0) },
    ];
    let objects = Objects { endpoint_owners: &[0], ..Default::default() };
    let outcome = task::run(&specs, &objects, granule, timer_intid);
    println!("bench ipc long: tasks ended {:?}", outcome.statuses);
}

fn paging(granule: Granule) {
    let pmu = pmu();
    println!("bench: granule {granule}, counter overhead {} instructions", pmu.overhead());
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
