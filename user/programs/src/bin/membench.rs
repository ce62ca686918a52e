//! Benchmark client of the memory service, for QEMU with `-icount
//! shift=0` (the PMU cycle counter then counts instructions): for each
//! huge-page size up to 1 GiB that the quota and the pool allow, and the
//! base page (any order from it up is a folio), the
//! instructions of ALLOC (optimized and plain), FREE and DEMOTE as the
//! caller sees them, IPC and kernel included. The service prints the
//! zeroing part of ALLOC itself (`memsvc: zeroing ...`).
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::memsvc::{QUERY, flags, op};
use folio_rt::{Message, call, cycles, println};

const ROUNDS: u64 = 4;
/// An endpoint of its own that nobody calls: a timed receive on it naps.
const NAP: u64 = 1;

/// Naps until the service has zeroed in the background what was freed, so
/// each figure is one request to an idle service. Returns the naps taken.
fn settle() -> u64 {
    let mut naps = 0;
    while ask([op::ZEROING, 0, 0, 0])[3] > 0 && naps < 100_000 {
        folio_rt::nap(NAP, 1);
        naps += 1;
    }
    naps
}

fn ask(msg: Message) -> Message {
    let (status, reply) = call(0, msg);
    if status != 0 { [1000 + status, 0, 0, 0] } else { reply }
}

/// Instructions of one request, and its reply.
fn timed(msg: Message) -> (u64, Message) {
    let start = cycles();
    let r = ask(msg);
    (cycles().wrapping_sub(start), r)
}

fn main() -> u64 {
    let s = ask([op::SIZES, 0, 0, 0]);
    let quota = ask([op::QUOTA, QUERY, 0, 0])[1];
    // The mapping sizes up to 1 GiB, and the base page (any order goes).
    let mask = s[1] | 1 << (s[2] & 0xff);
    let sizes = (0..=30).filter(|b| mask & (1 << b) != 0);
    let mut failures = 0;
    let mut smaller = None;
    for shift in sizes {
        let size = 1u64 << shift;
        if size > quota || shift > ask([op::POOL, 0, 0, 0])[3] {
            println!("membench: {} KiB: skipped (quota or pool too small)", size >> 10);
            smaller = Some(shift);
            continue;
        }
        // One round first so that every path has run once.
        let warm = ask([op::ALLOC, shift, 0, 0]);
        ask([op::FREE, warm[1], 0, 0]);
        let (mut alloc, mut plain, mut free, mut demote) = (0, 0, 0, 0);
        for _ in 0..ROUNDS {
            settle();
            let (t, a) = timed([op::ALLOC, shift, 0, 0]);
            alloc += t;
            settle();
            let (t, f) = timed([op::FREE, a[1], 0, 0]);
            free += t;
            settle();
            let (t, p) = timed([op::ALLOC, shift, flags::NO_OPTIMIZE, 0]);
            plain += t;
            settle();
            failures += (a[0] != 0 || f[0] != 0 || p[0] != 0) as u64;
            match smaller {
                Some(to) => {
                    let (t, d) = timed([op::DEMOTE, p[1], to, 0]);
                    demote += t;
                    failures += (d[0] != 0) as u64;
                    for h in d[1]..d[1] + d[2] {
                        ask([op::FREE, h, 0, 0]);
                    }
                }
                None => {
                    ask([op::FREE, p[1], 0, 0]);
                }
            }
        }
        let (alloc, plain, free) = (alloc / ROUNDS, plain / ROUNDS, free / ROUNDS);
        match smaller {
            Some(to) => println!(
                "membench: {} KiB: alloc {alloc} (optimized), alloc {plain} (plain), free {free}, demote a plain one into {} KiB pieces {}",
                size >> 10,
                1u64 << (to - 10),
                demote / ROUNDS
            ),
            None => println!(
                "membench: {} KiB: alloc {alloc} (optimized), alloc {plain} (plain), free {free}, demote: no smaller size",
                size >> 10
            ),
        }
        smaller = Some(shift);
    }
    failures += demote_and_merge(mask, quota);
    println!("membench: {failures} failed requests");
    failures
}

/// The largest mapping size up to 1 GiB that the quota and the pool allow,
/// optimized, demoted into 2 MiB pieces (optimized where 2 MiB is
/// eligible) and freed: DEMOTE's instructions, and those of all the
/// pieces' FREEs together. Each FREE queues its piece's merge with the
/// free neighbours it will find; the service merges them back into one
/// folio in the background while the benchmark settles (its own figure,
/// `memsvc: background merging`). Returns the failed requests.
fn demote_and_merge(mask: u64, quota: u64) -> u64 {
    const PIECE: u64 = 21;
    let Some(shift) =
        (PIECE + 1..=30).rev().find(|&s| mask & (1 << s) != 0 && 1 << s < quota && s <= ask([op::POOL, 0, 0, 0])[3])
    else {
        println!("membench: demote and merge: no size above 2 MiB fits");
        return 0;
    };
    let (mut demote, mut merge, mut failures) = (0, 0, 0);
    for _ in 0..ROUNDS {
        settle();
        let a = ask([op::ALLOC, shift, 0, 0]);
        settle();
        let (t, d) = timed([op::DEMOTE, a[1], PIECE, 0]);
        demote += t;
        failures += (a[0] != 0 || d[0] != 0) as u64;
        // Every FREE; their merges put the folio back in the background
        // (`settle` waits for it).
        for h in d[1]..d[1] + d[2] {
            settle();
            let (t, f) = timed([op::FREE, h, 0, 0]);
            merge += t;
            failures += (f[0] != 0) as u64;
        }
    }
    println!(
        "membench: {} KiB demoted into {} x 2048 KiB: demote {}, freeing every piece (merged back in the background) {} in all",
        1u64 << (shift - 10),
        1u64 << (shift - PIECE),
        demote / ROUNDS,
        merge / ROUNDS
    );
    failures
}

folio_rt::entry!(main);
