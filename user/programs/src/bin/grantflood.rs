//! A hostile holder of pool memory: on its caller's one call it maps one
//! pool page at ever more addresses of the caller (a grant each), until the
//! kernel refuses, and answers with how many it got and the refusal.
//! The kernel bounds a task's grants (`folio_core::syscall::MAX_GRANTS`), so
//! this ends with `OUT_OF_MEMORY` instead of exhausting the kernel's heap.
//! First it links shared tables of ever more distinct frames in its own
//! vmemmap window (`LINK_SHARED_SELF`), which the kernel bounds too
//! (`map::MAX_SHARED_TABLES`), then unlinks them.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::abi::map;
use folio_rt::memsvc::layout;
use folio_rt::{nr, recv, reply, syscall};

/// Tries at most this many (far above any sane bound).
const TRIES: u64 = 1 << 20;

fn main() -> u64 {
    // The largest pool capability (room for a frame per shared table
    // past the bound) and the granule.
    let mut pool: Option<(u64, u64, u64)> = None;
    for index in 0..64 {
        let r = syscall(nr::MEM_CAP, [index, 0, 0, 0, 0, 0]);
        if r[0] != 0 {
            break;
        }
        if r[1] & 0xff == map::CAP_POOL && pool.is_none_or(|(_, size, _)| r[3] > size) {
            pool = Some((r[2], r[3], 1u64 << r[5]));
        }
    }
    let Some((pa, _, page)) = pool else { return 2 };
    // Shared tables, one per distinct frame, one span each (the largest
    // pool capability holds far more than 4 x 64 frames).
    let span = page * (page / 8);
    let (mut linked, mut refusal) = (0u64, 0u64);
    while linked < 4 * map::MAX_SHARED_TABLES as u64 {
        let r =
            syscall(nr::LINK_SHARED_SELF, [layout::SERVICE_VMEMMAP + linked * span, 1, pa + linked * page, 0, 0, 0]);
        if r[0] != 0 {
            refusal = r[0];
            break;
        }
        linked += 1;
    }
    let unlinked = syscall(nr::UNMAP_SELF, [layout::SERVICE_VMEMMAP, linked.max(1) * span, 0, 0, 0, 0])[0];
    folio_rt::result!("linkflood", unlinked == 0, linked = linked, refusal = refusal);
    let (status, _, _) = recv(0);
    if status != 0 {
        return 3;
    }
    let mut granted = 0;
    let mut refusal = 0;
    while granted < TRIES {
        // Every other page, so no two grants touch.
        let va = layout::CLIENT_WINDOW + 2 * granted * page;
        let r = syscall(nr::MAP_CALLER, [va, pa, page, 0, 0, 0]);
        if r[0] != 0 {
            refusal = r[0];
            break;
        }
        granted += 1;
    }
    reply([granted, refusal, 0, 0]);
    0
}

folio_rt::entry!(main);
