//! A protocol fuzzer for the memory service (seeded, reproducible): x1
//! requests (x0 = seed), mixing valid sequences (allocate the smallest
//! huge-page size or any order from the page up to it, demote, optimize,
//! restore, query, free) with garbage
//! (unknown operations, stray words, hostile sizes, flags and handles,
//! others' and freed handles). Quotas are only queried: lowering its own
//! quota would only make the rest of the run refused. Every reply must be
//! a status of the protocol; at the end it frees what it holds and the
//! pool must be wholly free again. Prints a result line; exits with
//! the number of failures.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::memsvc::{QUERY, error, op};
use folio_rt::{call, result, start_arguments};

const SERVICE: u64 = 0;
const HELD: usize = 64;

const HOSTILE: [u64; 14] = [0, 1, 2, 11, 12, 16, 21, 30, 31, 63, 64, 1 << 32, u64::MAX, u64::MAX - 1];

fn main() -> u64 {
    let [seed, requests] = start_arguments();
    let mut next = folio_rt::selftest::xorshift(seed);
    let ask = |msg: [u64; 4]| -> Option<[u64; 4]> {
        let (status, reply) = call(SERVICE, msg);
        (status == 0).then_some(reply)
    };
    let Some(sizes) = ask([op::SIZES, 0, 0, 0]) else { return 1 };
    let Some(pool) = ask([op::POOL, 0, 0, 0]) else { return 1 };
    let free_at_start = pool[1];
    // The smallest size: zeroing a larger one would dominate the run.
    let smallest = sizes[1].trailing_zeros() as u64;
    let larger = (sizes[1] & !(1 << smallest)).trailing_zeros() as u64;
    let page = sizes[2] & 0xff;
    let mut held = [0u64; HELD];
    let mut count = 0;
    let (mut ok, mut refused, mut strange, mut dead) = (0u64, 0u64, 0u64, 0u64);
    for _ in 0..requests {
        let pick = |next: &mut dyn FnMut() -> u64| HOSTILE[(next() % HOSTILE.len() as u64) as usize];
        let some_handle = if count > 0 { held[(next() % count as u64) as usize] } else { next() % 100 };
        let msg = match next() % 10 {
            0 | 1 if count < HELD => {
                // Mostly the smallest mapping size, some larger, some any
                // order from the page up to it.
                let shift = match next() % 8 {
                    0 => larger,
                    1 | 2 => page + next() % (smallest - page + 1),
                    _ => smallest,
                };
                [op::ALLOC, shift, next() % 2, 0]
            }
            2 => [op::FREE, some_handle, 0, 0],
            3 => [op::DEMOTE, some_handle, page + next() % (smallest - page + 1), 0],
            4 => [op::OPTIMIZE + next() % 2, some_handle, 0, 0],
            5 => [[op::INFO, op::STATS, op::POOL, op::SIZES][(next() % 4) as usize], next() % 4, 0, 0],
            6 => [op::QUOTA, QUERY, 0, 0],
            // Garbage: any operation but QUOTA (SHUTDOWN too: only the
            // operator may), hostile words.
            _ => {
                let mut o = if next().is_multiple_of(2) { next() % 13 } else { next() };
                if o == op::QUOTA {
                    o = op::INFO;
                }
                [o, pick(&mut next), pick(&mut next), pick(&mut next)]
            }
        };
        let (status, reply) = call(SERVICE, msg);
        if status != 0 {
            dead += 1;
            continue;
        }
        match reply[0] {
            0 => ok += 1,
            error::UNKNOWN_OPERATION..=error::NOT_PERMITTED => refused += 1,
            _ => strange += 1,
        }
        if reply[0] != 0 {
            continue;
        }
        // Keep the list of handles in step with what succeeded.
        match msg[0] {
            op::ALLOC if count < HELD => {
                held[count] = reply[1];
                count += 1;
            }
            // A garbage ALLOC may succeed with the list full: not kept.
            op::ALLOC => {
                let _ = ask([op::FREE, reply[1], 0, 0]);
            }
            op::FREE | op::DEMOTE => {
                if let Some(i) = held[..count].iter().position(|&h| h == msg[1]) {
                    held[i] = held[count - 1];
                    count -= 1;
                }
                if msg[0] == op::DEMOTE {
                    // Fresh consecutive handles; keep what fits, free the rest.
                    for h in reply[1]..reply[1] + reply[2] {
                        if count < HELD {
                            held[count] = h;
                            count += 1;
                        } else {
                            let _ = ask([op::FREE, h, 0, 0]);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    // Free everything still held (a garbage FREE may have freed some).
    for &h in &held[..count] {
        let _ = ask([op::FREE, h, 0, 0]);
    }
    // Whole: every byte of the pool is free again. The pool may have
    // shrunk by what the service carved into vmemmap frames (folios of
    // any order need descriptor pages); that is reported, and bounded by
    // the plain vmemmap of the pool.
    let free_at_end = ask([op::POOL, 0, 0, 0]).map_or(0, |p| p[1]);
    let total_at_end = ask([op::SIZES, 0, 0, 0]).map_or(u64::MAX, |s| s[3]);
    let whole = free_at_end == total_at_end;
    let carved = free_at_start.saturating_sub(total_at_end);
    let passed = whole && strange == 0 && dead == 0;
    result!(
        "memfuzz",
        passed,
        seed = seed,
        requests = requests,
        ok = ok,
        refused = refused,
        strange = strange,
        ipc_failures = dead,
        pool_whole = if whole { "yes" } else { "no" },
        carved_kib = carved >> 10
    );
    u64::from(!whole) + strange + dead
}

folio_rt::entry!(main);
