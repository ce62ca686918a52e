//! A compromised memory service (seeded, reproducible): it holds the
//! pool's frame capabilities and owns endpoint 0, which its victim calls
//! x1 / 100 times (x0 = seed). While it owes each call a reply it floods
//! the kernel's memory calls with 100 random requests: MEM_CAP, MAP_SELF,
//! REMAP_SELF, UNMAP_SELF, TRANSLATE_SELF, MAP_CALLER, UNMAP_CALLER,
//! TABLE_FRAMES, LINK_SHARED_SELF and GROW_HEAP, with addresses in and around its
//! windows and the client window, frames in and outside its capabilities,
//! huge and zero sizes and counts, garbage flags, and entry lists that are
//! its own, unaligned, unmapped or the kernel's. Every call must come back
//! with a status of the ABI, and a single-entry MAP_SELF that succeeded
//! must translate to the frame it asked for, and a frame just mapped into
//! the victim must never move into its heap. Prints a result line with the
//! count of each outcome; exits with the number of calls that returned
//! something else, or whose mapping was wrong.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::abi::map;
use folio_rt::memsvc::layout;
use folio_rt::{nr, recv, reply, result, start_arguments, status, syscall};

/// Memory calls per call of the victim.
const PER_CALL: u64 = 100;

/// Addresses and sizes a hostile caller would try.
const HOSTILE: [u64; 14] = [
    0,
    1,
    8,
    4095,
    1 << 32,
    1 << 47,
    layout::PHYS_LIMIT,
    layout::SERVICE_VMEMMAP_END - 4096,
    layout::CLIENT_WINDOW_END,
    0xffff_8000_0000_0000,
    0xffff_ffff_ffff_f000,
    u64::MAX,
    u64::MAX - 4095,
    1 << 40,
];

/// Statuses a memory call may return.
const KNOWN: [u64; 6] = [
    status::OK,
    status::OUT_OF_MEMORY,
    status::NOT_PERMITTED,
    status::BAD_ADDRESS,
    status::INVALID_ARGUMENT,
    status::NO_CALLER,
];

/// A capability: (kind, base, size).
type Cap = (u64, u64, u64);

fn main() -> u64 {
    let [seed, calls] = start_arguments();
    let mut next = folio_rt::selftest::xorshift(seed);
    let mut caps: [Cap; 8] = [(0, 0, 0); 8];
    let mut count = 0;
    let mut page = 4096;
    for (index, cap) in caps.iter_mut().enumerate() {
        let r = syscall(nr::MEM_CAP, [index as u64, 0, 0, 0, 0, 0]);
        if r[0] != 0 {
            break;
        }
        *cap = (r[1] & 0xff, r[2], r[3]);
        page = 1 << r[5];
        count += 1;
    }
    if count == 0 {
        return 1;
    }
    let caps = &caps[..count];
    let mut counts = [0u64; KNOWN.len()];
    let (mut strange, mut wrong_mapping, mut served) = (0u64, 0u64, 0u64);
    // A frame: mostly one of its own (pool or meta), sometimes anything.
    let frame = |next: &mut dyn FnMut() -> u64| -> u64 {
        let (_, base, size) = caps[(next() % caps.len() as u64) as usize];
        match next() % 8 {
            0 => HOSTILE[(next() % HOSTILE.len() as u64) as usize],
            1 => base + size, // just past the capability
            _ => base + (next() % (size / page).max(1)) * page,
        }
    };
    let span = page * (page / 8);
    while served < calls / PER_CALL {
        let (got, _, _) = recv(0);
        if got != 0 {
            break;
        }
        for _ in 0..PER_CALL {
            let pages = match next() % 6 {
                0 => HOSTILE[(next() % HOSTILE.len() as u64) as usize],
                _ => 1 + next() % 16,
            };
            let own_va = match next() % 6 {
                0 => HOSTILE[(next() % HOSTILE.len() as u64) as usize],
                1 => layout::SERVICE_POOL_WINDOW + (next() % 64) * page,
                _ => layout::SERVICE_VMEMMAP + (next() % 4096) * page,
            };
            let client_va = |pa: u64, next: &mut dyn FnMut() -> u64| match next() % 6 {
                0 => HOSTILE[(next() % HOSTILE.len() as u64) as usize],
                1 => layout::CLIENT_WINDOW + (next() % 4096) * page + 8,
                _ => layout::CLIENT_WINDOW.wrapping_add(pa),
            };
            let flags = match next() % 4 {
                0 => next(),
                _ => next() % 4,
            };
            let entry = [own_va, frame(&mut next), pages, flags];
            let entries = [entry, [own_va + 16 * page, frame(&mut next), 1, map::WRITABLE]];
            // The entry list: its own (one or two entries), or a bad pointer.
            let (list, n) = match next() % 5 {
                0 => (HOSTILE[(next() % HOSTILE.len() as u64) as usize], 1 + next() % 4),
                1 => (entries.as_ptr() as u64 + 4, 1),
                2 => (entries.as_ptr() as u64, 2),
                _ => (entries.as_ptr() as u64, 1),
            };
            let mut old = [0u64; 32];
            let pa = frame(&mut next);
            let got = match next() % 10 {
                0 => syscall(nr::MEM_CAP, [next() % 12, 0, 0, 0, 0, 0])[0],
                1 => {
                    let r = syscall(nr::MAP_SELF, [list, n, 0, 0, 0, 0]);
                    // One entry of its own, mapped: it must translate to
                    // the frame it named.
                    if r[0] == 0 && n == 1 && list == entries.as_ptr() as u64 {
                        let t = syscall(nr::TRANSLATE_SELF, [own_va, 0, 0, 0, 0, 0]);
                        wrong_mapping += u64::from(t[0] != 0 || t[1] != entry[1]);
                    }
                    r[0]
                }
                2 => {
                    let buffer = if next().is_multiple_of(4) { 8 } else { old.as_mut_ptr() as u64 };
                    syscall(nr::REMAP_SELF, [list, n, buffer, next() % 40, 0, 0])[0]
                }
                3 => syscall(nr::UNMAP_SELF, [own_va, pages.wrapping_mul(page), 0, 0, 0, 0])[0],
                4 => syscall(nr::TRANSLATE_SELF, [own_va, 0, 0, 0, 0, 0])[0],
                5 => {
                    let size = if next().is_multiple_of(4) { pages } else { page << (next() % 10) };
                    let r = syscall(nr::MAP_CALLER, [client_va(pa, &mut next), pa, size, 0, 0, 0])[0];
                    if r == 0 {
                        // Its victim has it mapped: it stays out of the heap.
                        let g = syscall(nr::GROW_HEAP, [pa, page, 0, 0, 0, 0])[0];
                        wrong_mapping += u64::from(g != status::NOT_PERMITTED);
                    }
                    r
                }
                6 => {
                    let size = if next().is_multiple_of(4) { pages } else { page << (next() % 10) };
                    syscall(nr::UNMAP_CALLER, [client_va(pa, &mut next), size, 0, 0, 0, 0])[0]
                }
                7 => syscall(nr::TABLE_FRAMES, [0; 6])[0],
                8 => {
                    let size = if next().is_multiple_of(4) { pages } else { page << (next() % 3) };
                    syscall(nr::GROW_HEAP, [pa, size, 0, 0, 0, 0])[0]
                }
                _ => {
                    let va = layout::SERVICE_VMEMMAP + (next() % 64) * span;
                    let spans = if next().is_multiple_of(4) { pages } else { 1 + next() % 4 };
                    syscall(nr::LINK_SHARED_SELF, [va, spans, pa, 0, 0, 0])[0]
                }
            };
            match KNOWN.iter().position(|&s| s == got) {
                Some(i) => counts[i] += 1,
                None => strange += 1,
            }
        }
        reply([0; 4]);
        served += 1;
    }
    let [ok, out_of_memory, not_permitted, bad_address, invalid_argument, no_caller] = counts;
    let passed = strange == 0 && wrong_mapping == 0 && served == calls / PER_CALL;
    result!(
        "memflood",
        passed,
        seed = seed,
        calls = served * PER_CALL,
        ok = ok,
        out_of_memory = out_of_memory,
        not_permitted = not_permitted,
        bad_address = bad_address,
        invalid_argument = invalid_argument,
        no_caller = no_caller,
        strange = strange,
        wrong_mapping = wrong_mapping
    );
    strange + wrong_mapping + u64::from(served != calls / PER_CALL)
}

folio_rt::entry!(main);
