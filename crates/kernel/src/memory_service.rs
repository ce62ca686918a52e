//! Starting the memory service and its test clients: the kernel's whole
//! part in the memory service is here and in the memory calls
//! (`task/memory.rs`).
//!
//! Owns: carving the pool (huge-page blocks) and the service's small
//! frames out of the kernel's frame pool, turning them into frame
//! capabilities, wiring the endpoint and notifications, and giving the
//! memory back when the run ends.
//! Must never: look inside the pool or the service's vmemmap (the kernel
//! knows nothing of page descriptors), or give pool frames to anyone but
//! the service.
//!
//! The set: task 0 is the service (endpoint 0, with notification 0 bound
//! to it and signalled with a client's badge when the client dies); tasks
//! 1 and 2 are two instances of the test client, with badges 1 and 2, each
//! with a notification of its own to wait on (1, 2) and the other's to
//! signal, so they can hold folios at the same time and try each other's.

use alloc::vec::Vec;

use crate::frames::KERNEL_FRAMES;
use crate::result;
use folio_abi::memsvc::layout;
use folio_abi::report::Hex;
use folio_core::bootargs::{BootArgs, Memsvc};
use folio_core::ipc::Object;
use folio_core::mm::paging::huge_page_size_shifts as supported_size_shifts;
use folio_core::mm::{Granule, PhysRange};
use folio_core::syscall::{CapKind, FrameCap};

use crate::boot_info::BootInfo;
use crate::programs;
use crate::task::{self, MemoryHolder, Objects, Spec};

/// What the kernel keeps for itself by default: an eighth of what is free,
/// at least this much.
const KERNEL_KEEPS: u64 = 64 << 20;
/// Small frames beyond the full vmemmap: shared tails, private copies,
/// and the pages partly covering each range's ends.
const META_SLACK_FRAMES: u64 = 256;

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

/// Takes the pool (largest huge-page blocks first, up to `budget`) and the
/// small frames its full vmemmap needs.
fn reserve(granule: Granule, banks: &[PhysRange], want: Memsvc) -> Result<Reserved, &'static str> {
    let mut guard = KERNEL_FRAMES.lock();
    let frames = guard.as_mut().ok_or("no frame pool")?;
    let free = frames.free_bytes();
    let budget = match want {
        Memsvc::Pool(bytes) => bytes.min(free),
        _ => free.saturating_sub((free / 8).max(KERNEL_KEEPS)),
    };
    let shift = granule.shift();
    let meta_frames = ((budget >> shift) << 6 >> shift) + META_SLACK_FRAMES;
    let meta_order = 64 - (meta_frames - 1).leading_zeros();
    let meta = frames.alloc(meta_order).map_err(|_| "no room for the service's small frames")?;
    let mut blocks = alloc::vec![(meta, meta_order)];
    let mut left = budget.saturating_sub(granule.size() << meta_order);
    let orders: Vec<u32> =
        (0..64).rev().filter(|s| supported_size_shifts(granule) & (1 << s) != 0).map(|s| s - shift).collect();
    // At most 2^16 pool blocks: the capability list stays small.
    for order in orders {
        let size = granule.size() << order;
        while left >= size && blocks.len() <= 1 << 16 {
            let Ok(pa) = frames.alloc(order) else { break };
            blocks.push((pa, order));
            left -= size;
        }
    }
    drop(guard);
    let mut pieces: Vec<(u64, u64)> = blocks[1..].iter().map(|&(pa, o)| (pa, granule.size() << o)).collect();
    pieces.sort_unstable();
    let zone_of = |pa: u64| banks.iter().position(|b| b.contains(pa)).unwrap_or(0) as u8;
    let mut caps: Vec<FrameCap> = Vec::new();
    for (pa, size) in pieces {
        if pa + size > layout::PHYS_LIMIT {
            continue;
        }
        let zone = zone_of(pa);
        match caps.last_mut() {
            Some(last) if last.range.end() == pa && last.zone == zone => {
                last.range = PhysRange::saturating(last.range.start(), last.range.size() + size);
            }
            _ => caps.push(FrameCap { kind: CapKind::Pool, range: PhysRange::saturating(pa, size), zone }),
        }
    }
    caps.push(FrameCap {
        kind: CapKind::Meta,
        range: PhysRange::saturating(meta, granule.size() << meta_order),
        zone: zone_of(meta),
    });
    let reserved = Reserved { blocks, caps };
    if reserved.pool_bytes() == 0 {
        reserved.give_back();
        return Err("no free block of any huge-page size");
    }
    Ok(reserved)
}

/// The service as task 0: endpoint 0 is its, the death notification 0 is
/// bound to it.
pub(crate) const SERVICE: Spec =
    Spec { name: "memsvc", image: programs::MEMSVC, priority: 2, handles: &[(Object::Endpoint(0), 0)], core: None };

/// The objects of a set with the service as task 0: `notifications` of
/// them (0 is the service's death notification), the capabilities (if
/// any) and the words tasks find at start.
pub(crate) fn service_objects<'a>(
    notifications: usize,
    caps: Option<&'a [FrameCap]>,
    start_arguments: &'a [(usize, [u64; 2])],
) -> Objects<'a> {
    Objects {
        endpoint_owners: &[0],
        notifications,
        death_notifications: &[(0, 0)],
        bound_notifications: &[(0, 0)],
        memory_holder: caps.map(|caps| MemoryHolder { task: 0, caps }),
        start_arguments,
        ..Default::default()
    }
}

/// Starts the service alone with the default pool and `flags` in its x1
/// (`protocol::start`), for the kernel's tests; returns the tasks'
/// statuses, or why the pool could not be set aside.
pub(crate) fn run_alone(k: &BootInfo, flags: u64) -> Result<Vec<(&'static str, Option<u64>)>, &'static str> {
    let reserved = reserve(k.granule, &k.memory_map.banks, Memsvc::Default)?;
    let arguments = [(0, [0, flags])];
    let objects = service_objects(1, Some(&reserved.caps), &arguments);
    let outcome = task::run(&[SERVICE], &objects, k.granule, k.machine.virtual_timer_intid);
    reserved.give_back();
    Ok(outcome.statuses)
}

/// Runs the memory service and two test clients; the status is 0 when the
/// service and both clients end with 0.
pub fn run(k: &BootInfo, args: &BootArgs<'_>) -> u32 {
    if args.memsvc == Memsvc::Off {
        return 0;
    }
    let reserved = match reserve(k.granule, &k.memory_map.banks, args.memsvc) {
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
            zone = c.zone
        );
    }
    let specs = [
        SERVICE,
        Spec {
            name: "memclient-1",
            image: programs::MEMCLIENT,
            priority: 1,
            handles: &[(Object::Endpoint(0), 1), (Object::Notification(1), 0), (Object::Notification(2), 1)],
            core: None,
        },
        Spec {
            name: "memclient-2",
            image: programs::MEMCLIENT,
            priority: 1,
            handles: &[(Object::Endpoint(0), 2), (Object::Notification(2), 0), (Object::Notification(1), 1)],
            core: None,
        },
    ];
    let quota = args.memsvc_quota.unwrap_or(0);
    if args.bench {
        let status = bench(k, &reserved, quota);
        reserved.give_back();
        return status;
    }
    let arguments = [(0, [quota, 2]), (1, [1, 2]), (2, [2, 2])];
    let objects = service_objects(3, Some(&reserved.caps), &arguments);
    let outcome = task::run(&specs, &objects, k.granule, k.machine.virtual_timer_intid);
    reserved.give_back();
    let all_ok = outcome.statuses.len() == specs.len() && outcome.statuses.iter().all(|(_, s)| *s == Some(0));
    result!("memsvc.run", all_ok, statuses = task::statuses_value(&outcome.statuses));
    if all_ok { 0 } else { 1 }
}

/// `bench`: the service and the benchmark client alone (QEMU -icount).
fn bench(k: &BootInfo, reserved: &Reserved, quota: u64) -> u32 {
    let bench = Spec {
        name: "membench",
        image: programs::MEMBENCH,
        priority: 1,
        handles: &[(Object::Endpoint(0), 1)],
        core: None,
    };
    let specs = [SERVICE, bench];
    let arguments = [(0, [quota, 1])];
    let objects = service_objects(1, Some(&reserved.caps), &arguments);
    let outcome = task::run(&specs, &objects, k.granule, k.machine.virtual_timer_intid);
    let all_ok = outcome.statuses.iter().all(|(_, s)| *s == Some(0));
    result!("memsvc.run", all_ok, statuses = task::statuses_value(&outcome.statuses));
    if all_ok { 0 } else { 1 }
}
