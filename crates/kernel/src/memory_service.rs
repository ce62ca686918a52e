//! Starting the memory service and its test clients: the kernel's whole
//! part in the memory service is here and in the memory calls
//! (`task/memory.rs`).
//!
//! Owns: the `hugepages=` pools reserved at boot, carving the rest of the
//! pool (huge-page blocks) and the service's small frames out of the
//! kernel's frame pool, turning them into frame capabilities, wiring the
//! endpoint and notifications, and giving the memory back when the run
//! ends.
//! Must never: look inside the pool or the service's vmemmap (the kernel
//! knows nothing of page descriptors), or give pool frames to anyone but
//! the service.
//!
//! The set: task 0 is the service (endpoint 0, whose owner gets a death
//! notice when a client dies), long-lived; task 1 is the launcher, which
//! starts the clients (`make run`: two instances of the test client, each
//! with a notification of its own to wait on and the other's to signal, so
//! they can hold folios at the same time and try each other's), and shuts
//! the service down at the end.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::frames::KERNEL_FRAMES;
use crate::result;
use crate::sync::SpinLock;
use folio_abi::memsvc::layout;
use folio_abi::report::Hex;
use folio_core::bootargs::{BootArgs, Memsvc};
use folio_core::ipc::Object;
use folio_core::mm::FramePool;
use folio_core::mm::memmap::Size;
use folio_core::mm::paging::huge_page_size_shifts as supported_size_shifts;
use folio_core::mm::{Granule, PhysRange};
use folio_core::syscall::{CapKind, FrameCap};

use crate::boot_info::BootInfo;
use crate::programs;
use crate::task::{self, MemoryHolder, Objects, Spec};

/// What the kernel keeps for itself by default: an eighth of what is free,
/// at least this much.
const KERNEL_KEEPS: u64 = 64 << 20;
/// What `hugepages=` pools leave free at boot, for the kernel, the tasks
/// and the service's own start: a thirty-second of free memory, at least
/// this much.
const HUGEPAGES_LEAVE: u64 = 128 << 20;
/// The small frames the service gets at start, whatever the pool's size:
/// this many bytes, and at least [`SMALL_FRAMES_MIN`] frames. The service
/// makes more vmemmap frames by carving pool folios when it needs them.
const SMALL_FRAMES_BYTES: u64 = 2 << 20;
const SMALL_FRAMES_MIN: u64 = 128;

/// The `hugepages=` pools reserved at boot: (address, order) blocks.
static BOOT_POOLS: SpinLock<Vec<(u64, u32)>> = SpinLock::new(Vec::new());

/// Reserves the `hugepages=` pools from the frame pool at boot, before
/// anything else allocates (so aligned blocks of every size are still
/// free), for the memory service. A size the granule does not support, and
/// a count past what fits while [`HUGEPAGES_LEAVE`] stays free, is
/// reported once per request; with `memsvc=off` nobody could use them, so
/// nothing is reserved.
pub fn reserve_hugepages(frames: &mut FramePool, granule: Granule, args: &BootArgs<'_>) {
    if args.hugepages.is_empty() {
        return;
    }
    if args.memsvc == Memsvc::Off {
        result!("hugepages.request", false, why = "memsvc=off: no memory service to hand the pools to; ignored");
        return;
    }
    let leave = (frames.free_bytes() / 32).max(HUGEPAGES_LEAVE);
    let shifts = supported_size_shifts(granule);
    let mut blocks = Vec::new();
    for &(size, count) in &args.hugepages {
        if !size.is_power_of_two() || shifts & (1 << size.trailing_zeros()) == 0 {
            let sizes: Vec<String> =
                (0..64).filter(|s| shifts & (1 << s) != 0).map(|s| format!("{}", Size(1 << s))).collect();
            // Not a huge-page size of this granule: skipped.
            result!("hugepages.request", false, size = Size(size), granule = granule, sizes = sizes.join(","));
            continue;
        }
        let order = size.trailing_zeros() - granule.shift();
        let mut got = 0u64;
        while got < count && frames.free_bytes() >= leave + size {
            match frames.alloc(order) {
                Ok(pa) => {
                    blocks.push((pa, order));
                    got += 1;
                }
                Err(_) => break,
            }
        }
        if got < count {
            // Capped: once per request, not per folio.
            result!(
                "hugepages.request",
                false,
                size = Size(size),
                asked = count,
                got = got,
                why = "capped: the kernel and the service keep what they need to run",
                left_free = Size(frames.free_bytes())
            );
        }
        if got > 0 {
            result!("hugepages.pool", true, size = Size(size), count = got, reserved_for = "memsvc");
        }
    }
    *BOOT_POOLS.lock() = blocks;
}

/// Blocks taken from the kernel's frame pool: (address, order).
struct Reserved {
    blocks: Vec<(u64, u32)>,
    caps: Vec<FrameCap>,
}

impl Reserved {
    fn give_back(self) {
        if let Some(frames) = KERNEL_FRAMES.lock().as_mut() {
            for (pa, order) in self.blocks {
                let _ = frames.free(pa, order);
            }
        }
    }

    fn pool_bytes(&self) -> u64 {
        self.caps.iter().filter(|c| c.kind == CapKind::Pool).map(|c| c.range.size()).sum()
    }
}

/// Takes the pool: the `hugepages=` blocks reserved at boot (with
/// `boot_pools`), then the largest huge-page blocks of what is free, up to
/// the budget; and a fixed grant of small frames.
fn reserve(granule: Granule, banks: &[PhysRange], want: Memsvc, boot_pools: bool) -> Result<Reserved, &'static str> {
    let shift = granule.shift();
    let mut guard = KERNEL_FRAMES.lock();
    let frames = guard.as_mut().ok_or("no frame pool")?;
    let small = SMALL_FRAMES_BYTES.max(SMALL_FRAMES_MIN << shift);
    let small_order = (small >> shift).next_power_of_two().trailing_zeros();
    let meta = frames.alloc(small_order).map_err(|_| "no room for the service's small frames")?;
    // (address, order, folio size shift of a hugepages= block or 0)
    let mut pool: Vec<(u64, u32, u8)> = Vec::new();
    if boot_pools {
        let hugepages = core::mem::take(&mut *BOOT_POOLS.lock());
        pool.extend(hugepages.into_iter().map(|(pa, order)| (pa, order, (order + shift) as u8)));
    }
    let free = frames.free_bytes();
    let budget = match want {
        Memsvc::Pool(bytes) => bytes.min(free),
        _ => free.saturating_sub((free / 8).max(KERNEL_KEEPS)),
    };
    let mut left = budget;
    let orders: Vec<u32> =
        (0..64).rev().filter(|s| supported_size_shifts(granule) & (1 << s) != 0).map(|s| s - shift).collect();
    // At most 2^16 blocks of the rest: the capability list stays small.
    let mut rest = 0;
    for order in orders {
        let size = granule.size() << order;
        while left >= size && rest <= 1 << 16 {
            let Ok(pa) = frames.alloc(order) else { break };
            pool.push((pa, order, 0));
            left -= size;
            rest += 1;
        }
    }
    drop(guard);
    let mut blocks: Vec<(u64, u32)> = alloc::vec![(meta, small_order)];
    blocks.extend(pool.iter().map(|&(pa, order, _)| (pa, order)));
    pool.sort_unstable();
    let zone_of = |pa: u64| banks.iter().position(|b| b.contains(pa)).unwrap_or(0) as u8;
    let mut caps: Vec<FrameCap> = Vec::new();
    for (pa, order, folio_shift) in pool {
        let size = granule.size() << order;
        if pa + size > layout::PHYS_LIMIT {
            continue;
        }
        let zone = zone_of(pa);
        match caps.last_mut() {
            Some(last) if last.range.end() == pa && last.zone == zone && last.folio_shift == folio_shift => {
                last.range = PhysRange::saturating(last.range.start(), last.range.size() + size);
            }
            _ => caps.push(FrameCap { kind: CapKind::Pool, range: PhysRange::saturating(pa, size), zone, folio_shift }),
        }
    }
    caps.push(FrameCap {
        kind: CapKind::Meta,
        range: PhysRange::saturating(meta, granule.size() << small_order),
        zone: zone_of(meta),
        folio_shift: 0,
    });
    let reserved = Reserved { blocks, caps };
    if reserved.pool_bytes() == 0 {
        reserved.give_back();
        return Err("no free block of any huge-page size");
    }
    Ok(reserved)
}

/// The service as task 0: endpoint 0 is its, with death notices.
pub(crate) const SERVICE: Spec = Spec {
    name: "memsvc",
    image: programs::MEMSVC,
    priority: folio_abi::memsvc::start::PRIORITY,
    handles: &[(Object::Endpoint(0), 0)],
    core: None,
};

/// The objects of a set with the service as task 0: `notifications` of
/// them (the clients'), the capabilities (if any) and the words tasks find
/// at start.
pub(crate) fn service_objects<'a>(
    notifications: usize,
    caps: Option<&'a [FrameCap]>,
    start_arguments: &'a [(usize, [u64; 2])],
) -> Objects<'a> {
    Objects {
        endpoint_owners: &[0],
        notifications,
        death_notices: &[0],
        memory_holder: caps.map(|caps| MemoryHolder { task: 0, caps }),
        start_arguments,
        ..Default::default()
    }
}

/// Starts the service alone with the default pool and `flags` in its x1
/// (`protocol::start`), for the kernel's tests; returns the tasks'
/// statuses, or why the pool could not be set aside.
pub(crate) fn run_alone(k: &BootInfo, flags: u64) -> Result<Vec<(&'static str, Option<u64>)>, &'static str> {
    let reserved = reserve(k.granule, &k.memory_map.banks, Memsvc::Default, false)?;
    let arguments = [(0, [0, flags])];
    let objects = service_objects(0, Some(&reserved.caps), &arguments);
    let outcome = task::run(&[SERVICE], &objects, k.granule, k.machine.virtual_timer_intid);
    reserved.give_back();
    Ok(outcome.statuses)
}

/// Runs `specs` with task 0 holding a default pool's capabilities (as the
/// service would) and owning endpoint 0, with the words tasks find at
/// start, for the kernel's tests of what a hostile holder can do; returns
/// the tasks' statuses.
pub(crate) fn run_as_holder(
    k: &BootInfo,
    specs: &[Spec],
    start_arguments: &[(usize, [u64; 2])],
) -> Result<Vec<(&'static str, Option<u64>)>, &'static str> {
    let reserved = reserve(k.granule, &k.memory_map.banks, Memsvc::Default, false)?;
    let objects = Objects {
        endpoint_owners: &[0],
        memory_holder: Some(MemoryHolder { task: 0, caps: &reserved.caps }),
        start_arguments,
        ..Default::default()
    };
    let outcome = task::run(specs, &objects, k.granule, k.machine.virtual_timer_intid);
    reserved.give_back();
    Ok(outcome.statuses)
}

/// Runs the service with the protocol fuzzer (`memfuzz`: `requests`
/// seeded random requests) as its only client, for the kernel's tests;
/// returns the tasks' statuses.
pub(crate) fn run_fuzzer(
    k: &BootInfo,
    seed: u64,
    requests: u64,
) -> Result<Vec<(&'static str, Option<u64>)>, &'static str> {
    let reserved = reserve(k.granule, &k.memory_map.banks, Memsvc::Default, false)?;
    let fuzzer = Spec {
        name: "memfuzz",
        image: programs::MEMFUZZ,
        priority: 1,
        handles: &[(Object::Endpoint(0), 1)],
        core: None,
    };
    let arguments = [(0, [0, 1 | folio_abi::memsvc::start::INLINE_ZEROING_ONLY]), (1, [seed, requests])];
    let objects = service_objects(0, Some(&reserved.caps), &arguments);
    let outcome = task::run(&[SERVICE, fuzzer], &objects, k.granule, k.machine.virtual_timer_intid);
    reserved.give_back();
    Ok(outcome.statuses)
}

/// What the launcher may start (`user/programs/src/bin/launcher.rs` names
/// them by their index here).
static LAUNCHER_PROGRAMS: [task::Program; 2] = [
    task::Program { name: "memclient", image: programs::MEMCLIENT },
    task::Program { name: "memlife", image: programs::MEMLIFE },
];

/// The launcher as task 1: handle 0 calls the service with the operator's
/// badge (it may shut the service down), handle 1 is its own endpoint
/// (1, with death notices), handles 2 and 3 are notifications 0 and 1 for
/// the clients it starts.
const LAUNCHER: Spec = Spec {
    name: "launcher",
    image: programs::LAUNCHER,
    priority: 1,
    handles: &[
        (Object::Endpoint(0), folio_abi::memsvc::start::OPERATOR_BADGE),
        (Object::Endpoint(1), 0),
        (Object::Notification(0), 0),
        (Object::Notification(1), 0),
    ],
    core: None,
};

/// Runs the long-lived service (x0 = `quota`, x1 = `service_flags`) and
/// the launcher (x0, x1 = `launch`) with the pool `reserved`.
fn run_with_launcher(
    k: &BootInfo,
    reserved: &Reserved,
    quota: u64,
    service_flags: u64,
    launch: [u64; 2],
) -> task::Outcome {
    let arguments = [(0, [quota, service_flags]), (1, launch)];
    let objects = Objects {
        endpoint_owners: &[0, 1],
        death_notices: &[0, 1],
        launcher: Some((1, &LAUNCHER_PROGRAMS)),
        ..service_objects(2, Some(&reserved.caps), &arguments)
    };
    task::run(&[SERVICE, LAUNCHER], &objects, k.granule, k.machine.virtual_timer_intid)
}

/// The memory service long-lived (serving until shut down) and the
/// launcher, which starts `lifetimes` clients (`memlife`), `at_once` alive
/// at a time, then shuts the service down; the pool is `pool` bytes (small:
/// zeroing must not dominate). Returns the run's outcome.
pub(crate) fn run_lifetimes(
    k: &BootInfo,
    lifetimes: u64,
    at_once: u64,
    pool: u64,
) -> Result<task::Outcome, &'static str> {
    let reserved = reserve(k.granule, &k.memory_map.banks, Memsvc::Pool(pool), false)?;
    // No client count: long-lived, on a heap it grows from its pool at its
    // first requests. A quarter of the pool each: a client that exhausts
    // its share lives through hundreds of others' lifetimes, so two or
    // three of them may overlap, and the heap took some of the pool.
    let flags = folio_abi::memsvc::start::LARGE_HEAP_HEADROOM;
    let outcome = run_with_launcher(k, &reserved, pool / 4, flags, [lifetimes, at_once]);
    reserved.give_back();
    Ok(outcome)
}

/// Runs the memory service and the launcher, which starts the two test
/// clients and shuts the service down once both have exited; the status is
/// 0 when the service, the launcher and both clients end with 0.
pub fn run(k: &BootInfo, args: &BootArgs<'_>) -> u32 {
    if args.memsvc == Memsvc::Off {
        return 0;
    }
    let reserved = match reserve(k.granule, &k.memory_map.banks, args.memsvc, true) {
        Ok(r) => r,
        Err(e) => {
            result!("memsvc.start", false, why = e);
            return 1;
        }
    };
    for c in &reserved.caps {
        result!(
            "memsvc.grant",
            true,
            kind = format_args!("{:?}", c.kind),
            start = Hex(c.range.start()),
            end = Hex(c.range.end()),
            zone = c.zone,
            folio_size = Size(if c.folio_shift == 0 { 0 } else { 1 << c.folio_shift })
        );
    }
    let quota = args.memsvc_quota.unwrap_or(0);
    if args.bench {
        let status = bench(k, &reserved, quota);
        reserved.give_back();
        return status;
    }
    let report_each = folio_abi::memsvc::start::REPORT_EACH_CLIENT;
    let outcome = run_with_launcher(k, &reserved, quota, report_each, [0, 0]);
    reserved.give_back();
    let all_ok = outcome.statuses.iter().all(|(_, s)| *s == Some(0)) && outcome.spawned == 2;
    result!(
        "memsvc.run",
        all_ok,
        statuses = task::statuses_value(&outcome.statuses),
        started = outcome.spawned,
        fast_ipc = outcome.fast_ipc
    );
    if all_ok { 0 } else { 1 }
}

/// `bench`: the service and the benchmark client alone (QEMU -icount).
fn bench(k: &BootInfo, reserved: &Reserved, quota: u64) -> u32 {
    let bench = Spec {
        name: "membench",
        image: programs::MEMBENCH,
        priority: 1,
        handles: &[(Object::Endpoint(0), 1), (Object::Endpoint(1), 0)],
        core: None,
    };
    let specs = [SERVICE, bench];
    let arguments = [(0, [quota, 1])];
    // membench owns an endpoint nobody calls, to nap on while the service
    // zeroes in the background.
    let objects = Objects { endpoint_owners: &[0, 1], ..service_objects(0, Some(&reserved.caps), &arguments) };
    let outcome = task::run(&specs, &objects, k.granule, k.machine.virtual_timer_intid);
    let all_ok = outcome.statuses.iter().all(|(_, s)| *s == Some(0));
    result!("memsvc.run", all_ok, statuses = task::statuses_value(&outcome.statuses), fast_ipc = outcome.fast_ipc);
    if all_ok { 0 } else { 1 }
}
