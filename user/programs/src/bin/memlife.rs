//! One client lifetime, started by the launcher: x0 = its number, with bit
//! 32 set when it is to die by a fault, bit 33 when it is to exhaust its
//! share. Handle 0 is the memory service.
//!
//! It allocates a one-page folio and checks it arrives zeroed, writes it,
//! then by its number: keeps it and exits (the service reclaims it at the
//! death notice), or also allocates two pages and frees both, or frees it;
//! a faulting child writes to an address nothing maps while it holds the
//! folio. One that exhausts its share allocates one-page folios until it is
//! refused, which must be a typed error (`QUOTA_EXCEEDED` or
//! `OUT_OF_MEMORY`), and dies holding them all. Exits with 0 when every
//! check passed, 1 otherwise.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::memsvc::{error, op};
use folio_rt::{call, memory, result, start_arguments};

const SERVICE: u64 = 0;
const FAULT: u64 = 1 << 32;
const EXHAUST: u64 = 1 << 33;

fn ask(msg: [u64; 4]) -> Option<[u64; 4]> {
    let (status, reply) = call(SERVICE, msg);
    (status == 0 && reply[0] == 0).then_some(reply)
}

fn main() -> u64 {
    let [argument, _] = start_arguments();
    let n = argument & (FAULT - 1);
    let Some(sizes) = ask([op::SIZES, 0, 0, 0]) else { return 1 };
    let page = sizes[2] & 0xff;
    if argument & EXHAUST != 0 {
        return exhaust(n, page);
    }
    let Some(folio) = ask([op::ALLOC, page, 0, 0]) else { return 1 };
    let (handle, va) = (folio[1], folio[2]);
    // No byte of a previous owner: the first and last words are zero.
    let last = va + (1 << page) - 8;
    let zeroed = memory::read_u64(va) == 0 && memory::read_u64(last) == 0;
    memory::write_u64(va, n);
    memory::write_u64(last, !n);
    if argument & FAULT != 0 {
        // Nothing is mapped at 0x18: the kernel stops this task with the
        // folio still held.
        memory::write_u64(0x18, n);
    }
    let ok = zeroed && memory::read_u64(va) == n && memory::read_u64(last) == !n;
    let freed = match n % 3 {
        // Dies holding it.
        0 => true,
        1 => match ask([op::ALLOC, page + 1, 0, 0]) {
            Some(two) => ask([op::FREE, two[1], 0, 0]).is_some() && ask([op::FREE, handle, 0, 0]).is_some(),
            None => false,
        },
        _ => ask([op::FREE, handle, 0, 0]).is_some(),
    };
    u64::from(!(ok && freed))
}

/// Allocates one-page folios until refused; the refusal must be typed.
fn exhaust(n: u64, page: u64) -> u64 {
    let mut held = 0u64;
    let refusal = loop {
        let (status, reply) = call(SERVICE, [op::ALLOC, page, 0, 0]);
        if status != 0 || reply[0] != 0 {
            break if status != 0 { u64::MAX } else { reply[0] };
        }
        held += 1;
    };
    let typed = matches!(refusal, error::QUOTA_EXCEEDED | error::OUT_OF_MEMORY);
    result!("memlife.exhaust", typed && held > 0, client = n, folios = held, refused_with = refusal);
    u64::from(!(typed && held > 0))
}

folio_rt::entry!(main);
