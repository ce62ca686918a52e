//! The memory service's test client: uses every operation of the protocol,
//! writes and reads back its huge pages through its own mappings, tries
//! bad requests, and (as one of two instances) checks it cannot touch the
//! other's folios while both hold some. Prints one line per check,
//! `memclient N: pass NAME ...` or `memclient N: FAIL NAME ...` (skips say
//! `skip`), and ends with `memclient N: report: P passed, F failed`; exits
//! with F, holding one folio the service must reclaim.
//!
//! Started by the launcher: x0 = instance number, x1 = instances. Handles:
//! 0 = the service, 1 = this instance's notification (wait), 2 = the
//! other's (signal), 3 = an endpoint of its own (to nap on), 4 = the
//! launcher's endpoint, never called (it carries this client's death
//! notice to the launcher).
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use core::fmt::Display;

use folio_rt::memsvc::{QUERY, error, flags, layout, op};
use folio_rt::{Message, call, memory, nr, result, signal, syscall, wait};

const SERVICE: u64 = 0;
const MINE: u64 = 1;
const PEER: u64 = 2;
/// An endpoint of its own that nobody calls: a timed receive on it naps.
const NAP: u64 = 3;

struct Report {
    id: u64,
    passed: u64,
    failed: u64,
}

impl Report {
    fn check(&mut self, name: &str, ok: bool, detail: impl Display) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
        result!(format_args!("memclient.{name}"), ok, instance = self.id, detail = detail);
    }

    fn skip(&self, name: &str, why: impl Display) {
        result!(format_args!("memclient.{name}"), true, instance = self.id, skipped = why);
    }
}

/// One request; an IPC failure shows as status 1000 + the IPC status.
fn ask(msg: Message) -> Message {
    let (status, reply) = call(SERVICE, msg);
    if status != 0 { [1000 + status, 0, 0, 0] } else { reply }
}

fn size_name(shift: u64) -> (u64, &'static str) {
    match shift {
        30.. => (1 << (shift - 30), "G"),
        20.. => (1 << (shift - 20), "M"),
        _ => (1 << (shift - 10), "K"),
    }
}

struct Size(u64);
impl Display for Size {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (n, unit) = size_name(self.0);
        write!(f, "{n}{unit}")
    }
}

/// The word this instance writes at the start of each page of a folio.
fn pattern(id: u64, va: u64) -> u64 {
    va ^ (id << 56) ^ 0x5a5a
}

fn write_pattern(id: u64, va: u64, size: u64, page: u64) {
    let mut at = va;
    while at < va + size {
        // [va, va + size) is a huge page the service mapped read/write.
        memory::write_u64(at, pattern(id, at));
        at += page;
    }
}

/// Pages of [va, va + size) whose first word is not the pattern.
fn pattern_errors(id: u64, va: u64, size: u64, page: u64) -> u64 {
    let mut bad = 0;
    let mut at = va;
    while at < va + size {
        bad += (memory::read_u64(at) != pattern(id, at)) as u64;
        at += page;
    }
    bad
}

/// Non-zero words among: every word of the first and last page, and the
/// first word of every page.
fn nonzero_words(va: u64, size: u64, page: u64) -> u64 {
    let read = memory::read_u64;
    let mut bad = 0;
    for a in (va..va + page).step_by(8).chain((va + size - page..va + size).step_by(8)) {
        bad += (read(a) != 0) as u64;
    }
    for a in (va..va + size).step_by(page as usize) {
        bad += (read(a) != 0) as u64;
    }
    bad
}

/// The supported size shifts, smallest first.
fn sizes(mask: u64) -> impl Iterator<Item = u64> {
    (0..64).filter(move |s| mask & (1 << s) != 0)
}

fn largest_free() -> u64 {
    ask([op::POOL, 0, 0, 0])[3]
}

/// Tells the other instance this one reached a point, and waits for it to
/// reach its own.
fn meet(instances: u64) {
    if instances > 1 {
        signal(PEER);
        wait(MINE);
    }
}

/// Allocates, checks, transforms and frees one huge page of `shift`.
fn exercise(r: &mut Report, shift: u64, mask: u64, page: u64) {
    let id = r.id;
    let size = 1u64 << shift;
    let name = Size(shift);
    if shift > largest_free() {
        return r.skip("alloc", format_args!("{name}: the pool has no free block of it"));
    }
    let a = ask([op::ALLOC, shift, 0, 0]);
    if a[0] == error::OUT_OF_MEMORY {
        return r.skip("alloc", format_args!("{name}: the other client took the last block"));
    }
    r.check("alloc", a[0] == 0, format_args!("{name}: status {} handle {} at {:#x} flags {}", a[0], a[1], a[2], a[3]));
    if a[0] != 0 {
        return;
    }
    let (handle, va, optimized) = (a[1], a[2], a[3] & flags::OPTIMIZED != 0);
    r.check("zeroed", nonzero_words(va, size, page) == 0, format_args!("{name}: no byte of a previous owner"));
    write_pattern(id, va, size, page);
    r.check("write-read", pattern_errors(id, va, size, page) == 0, format_args!("{name}: every page"));
    let info = ask([op::INFO, handle, 0, 0]);
    r.check("info", info[..3] == [0, va, shift], format_args!("{name}: {info:?}"));
    // Statistics: this size has a line with folios described (free and held).
    let mut line = None;
    for index in 0..64 {
        let s = ask([op::STATS, index, 0, 0]);
        if s[0] != 0 {
            break;
        }
        if (s[1] >> 8) & 0xff == shift && (s[1] >> 16) & 0xff_ffff > 0 {
            line = Some(s);
        }
    }
    match line {
        Some(s) => r.check(
            "stats",
            s[2] >= s[3],
            format_args!(
                "zone {} size {name}: folios {}, optimized {}, vmemmap {} KiB -> {} KiB, saved {} KiB",
                s[1] & 0xff,
                (s[1] >> 16) & 0xff_ffff,
                s[1] >> 40,
                s[2] >> 10,
                s[3] >> 10,
                (s[2] - s[3]) >> 10
            ),
        ),
        None => r.check("stats", false, format_args!("{name}: no line for it")),
    }
    // Restore and optimize (or, below HVO's smallest order, the refusals).
    let restored = ask([op::RESTORE, handle, 0, 0])[0];
    let plain = ask([op::INFO, handle, 0, 0])[3];
    let reoptimized = ask([op::OPTIMIZE, handle, 0, 0])[0];
    let again = ask([op::INFO, handle, 0, 0])[3];
    if optimized {
        r.check(
            "restore-optimize",
            restored == 0 && plain == 0 && reoptimized == 0 && again == flags::OPTIMIZED,
            format_args!("{name}: statuses {restored}, {reoptimized}"),
        );
    } else {
        r.check(
            "restore-optimize",
            restored == error::ALREADY_DONE && reoptimized == error::NOT_ELIGIBLE,
            format_args!("{name}: not eligible for HVO, statuses {restored}, {reoptimized}"),
        );
    }
    r.check("data-kept", pattern_errors(id, va, size, page) == 0, format_args!("{name}: after restore and optimize"));
    // Demote to the next smaller size, then free every piece.
    let smaller = sizes(mask).filter(|&s| s < shift).last();
    let pieces = match smaller {
        Some(to) => {
            let d = ask([op::DEMOTE, handle, to, 0]);
            let n = 1u64 << (shift - to);
            let last = ask([op::INFO, d[1] + n - 1, 0, 0]);
            r.check(
                "demote",
                d[0] == 0 && d[2] == n && last[1] == va + size - (1 << to) && last[2] == to,
                format_args!("{name} -> {n} x {}: status {}", Size(to), d[0]),
            );
            r.check("data-kept", pattern_errors(id, va, size, page) == 0, format_args!("{name}: after demote"));
            (d[1], n)
        }
        None => (handle, 1),
    };
    let mut freed = 0;
    for h in pieces.0..pieces.0 + pieces.1 {
        freed += (ask([op::FREE, h, 0, 0])[0] == 0) as u64;
    }
    r.check("free", freed == pieces.1, format_args!("{name}: {freed} of {} pieces", pieces.1));
    let twice = ask([op::FREE, pieces.0, 0, 0])[0];
    r.check("double-free", twice == error::INVALID_HANDLE, format_args!("{name}: status {twice}"));
}

/// Dirties a folio of `shift`, frees it, and (after napping until the
/// service has zeroed what was freed, with `nap`) allocates one again: it
/// must be zero. With `nap` it must come from memory the service zeroed in
/// the background (its known-zero bytes go down by the folio).
fn reuse(r: &mut Report, shift: u64, page: u64, nap: bool) {
    let size = 1u64 << shift;
    let name = if nap { "reuse-zeroed-background" } else { "reuse-zeroed" };
    let a = ask([op::ALLOC, shift, flags::NO_OPTIMIZE, 0]);
    if a[0] != 0 {
        return r.check(name, false, format_args!("alloc status {}", a[0]));
    }
    memory::fill(a[2], size, 0xa5);
    ask([op::FREE, a[1], 0, 0]);
    let mut naps = 0;
    while nap && ask([op::ZEROING, 0, 0, 0])[3] > 0 && naps < 10_000 {
        folio_rt::nap(NAP, 1);
        naps += 1;
    }
    let zero_before = ask([op::ZEROING, 0, 0, 0])[1];
    if nap && zero_before < size {
        // The other instance (on another core) took the zeroed memory
        // between the nap and this ALLOC: which path served it cannot be told.
        return r.skip(name, format_args!("{}: the other client took the zeroed memory", Size(shift)));
    }
    let b = ask([op::ALLOC, shift, 0, 0]);
    let zero_after = ask([op::ZEROING, 0, 0, 0])[1];
    let from_background = zero_before >= size && zero_after <= zero_before - size;
    r.check(
        name,
        b[0] == 0 && nonzero_words(b[2], size, page) == 0 && (!nap || from_background),
        format_args!(
            "{}: {} at {:#x} then {:#x}, {naps} naps, known zero {} KiB -> {} KiB",
            Size(shift),
            b[0],
            a[2],
            b[2],
            zero_before >> 10,
            zero_after >> 10
        ),
    );
    ask([op::FREE, b[1], 0, 0]);
}

fn main() -> u64 {
    let [id, instances] = folio_rt::start_arguments();
    let mut r = Report { id, passed: 0, failed: 0 };
    let s = ask([op::SIZES, 0, 0, 0]);
    // SIZES: the mapping sizes; the page, the smallest size HVO optimizes
    // and the largest free (shifts, one byte each); the pool's bytes.
    let (mask, page_shift, min_optimizable, pool) = (s[1], s[2] & 0xff, (s[2] >> 8) & 0xff, s[3]);
    let page = 1u64 << page_shift;
    r.check(
        "sizes",
        s[0] == 0 && mask != 0 && pool > 0,
        format_args!("status {}, mask {mask:#x}, page {page}, pool {} MiB", s[0], pool >> 20),
    );
    if s[0] != 0 {
        result!("memclient", r.failed == 0, instance = id, passed = r.passed, failed = r.failed);
        return r.failed;
    }
    let q = ask([op::QUOTA, QUERY, 0, 0]);
    let quota = q[1];
    r.check("quota", q[0] == 0 && quota > 0 && q[2] == 0, format_args!("{} MiB, {} in use", quota >> 20, q[2]));
    for shift in sizes(mask) {
        // An optimized folio costs its bytes and its one private vmemmap page.
        if (1u64 << shift).saturating_add(page) > quota {
            r.skip("alloc", format_args!("{}: above the quota", Size(shift)));
            continue;
        }
        exercise(&mut r, shift, mask, page);
    }
    // Any power of two from the page up: one page, two, and the smallest
    // size HVO optimizes, each where it is not a mapping size already.
    for shift in [page_shift, page_shift + 1, min_optimizable] {
        if mask & (1 << shift) == 0 && (1u64 << shift).saturating_add(page) <= quota {
            exercise(&mut r, shift, mask, page);
        }
    }
    let smallest = sizes(mask).next().unwrap_or(0);
    let small = 1u64 << smallest;

    // Reuse: dirty a huge page, free it, and a new one is zero again:
    // at once (the service zeroes it inline unless it got there first),
    // and after a nap, when the service has zeroed it in the background.
    reuse(&mut r, smallest, page, false);
    reuse(&mut r, smallest, page, true);

    // Both instances hold folios at once: instance N holds N, so the
    // handle numbers differ and each probes numbers that name the other's
    // folios in the other's table. Neither can reach them.
    let mut held = [0u64; 4];
    let count = id.clamp(1, 4) as usize;
    let mut holding = true;
    for h in held.iter_mut().take(count) {
        let a = ask([op::ALLOC, smallest, 0, 0]);
        holding &= a[0] == 0;
        *h = a[1];
        if a[0] == 0 {
            write_pattern(id, a[2], small, page);
        }
    }
    r.check("hold", holding, format_args!("{count} x {}", Size(smallest)));
    meet(instances);
    let (first, last) = (held[0], held[count - 1]);
    let (mut foreign_ok, mut probes) = (0, 0);
    for h in (first.saturating_sub(4).max(1)..=last + 4).filter(|h| !held[..count].contains(h)) {
        probes += 1;
        let statuses = [
            ask([op::INFO, h, 0, 0])[0],
            ask([op::OPTIMIZE, h, 0, 0])[0],
            ask([op::RESTORE, h, 0, 0])[0],
            ask([op::DEMOTE, h, smallest, 0])[0],
            ask([op::FREE, h, 0, 0])[0],
        ];
        foreign_ok += statuses.iter().all(|&s| s == error::INVALID_HANDLE) as u64;
    }
    r.check(
        "isolation",
        foreign_ok == probes,
        format_args!(
            "{foreign_ok} of {probes} handles not ours ({}..={}) refused (info, optimize, restore, demote, free)",
            first.saturating_sub(4).max(1),
            last + 4
        ),
    );
    // Out of memory: a size the pool has no free block of (the pool does
    // not change while both instances are here).
    let largest = largest_free();
    match sizes(mask).find(|&s| s > largest) {
        Some(s) => {
            let status = ask([op::ALLOC, s, 0, 0])[0];
            r.check("out-of-memory", status == error::OUT_OF_MEMORY, format_args!("{}: status {status}", Size(s)));
        }
        None => r.skip("out-of-memory", "the pool has a free block of every size"),
    }
    meet(instances);
    let mut intact = 0;
    for &h in &held[..count] {
        let info = ask([op::INFO, h, 0, 0]);
        intact += (info[0] == 0 && pattern_errors(id, info[1], small, page) == 0) as u64;
    }
    r.check("isolation-data", intact == count as u64, format_args!("{intact} of {count} folios untouched"));
    for &h in &held[..count] {
        ask([op::FREE, h, 0, 0]);
    }
    let mine = ask([op::ALLOC, smallest, 0, 0]);

    // Hostile requests: each gets its typed error.
    let hostile: [(&str, Message, u64); 13] = [
        ("op-0", [0, 0, 0, 0], error::UNKNOWN_OPERATION),
        ("op-99", [99, 1, 2, 3], error::UNKNOWN_OPERATION),
        ("garbage-word", [op::SIZES, 1, 0, 0], error::INVALID_ARGUMENT),
        ("size-below-page", [op::ALLOC, page_shift - 1, 0, 0], error::UNSUPPORTED_SIZE),
        ("size-64", [op::ALLOC, 64, 0, 0], error::UNSUPPORTED_SIZE),
        ("size-max", [op::ALLOC, u64::MAX, 0, 0], error::UNSUPPORTED_SIZE),
        ("bad-flags", [op::ALLOC, smallest, 0x80, 0], error::INVALID_ARGUMENT),
        ("garbage-alloc", [op::ALLOC, smallest, 0, 7], error::INVALID_ARGUMENT),
        ("handle-max", [op::FREE, u64::MAX, 0, 0], error::INVALID_HANDLE),
        ("handle-0", [op::INFO, 0, 0, 0], error::INVALID_HANDLE),
        ("stats-end", [op::STATS, u64::MAX, 0, 0], error::NO_SUCH_ENTRY),
        ("quota-raise", [op::QUOTA, quota + 1, 0, 0], error::INVALID_ARGUMENT),
        ("demote-garbage", [op::DEMOTE, 1, 99, 5], error::INVALID_ARGUMENT),
    ];
    for (name, msg, expected) in hostile {
        let status = ask(msg)[0];
        r.check("hostile", status == expected, format_args!("{name}: status {status}, expected {expected}"));
    }

    // The kernel's memory calls are the service's alone: a client cannot
    // map pool frames into anyone, nor touch the service's vmemmap.
    let entry = [layout::SERVICE_VMEMMAP, 0x4000_0000, 1, 1u64];
    let calls = [
        ("mem_cap", nr::MEM_CAP, [0, 0, 0]),
        ("map_self", nr::MAP_SELF, [entry.as_ptr() as u64, 1, 0]),
        ("unmap_self", nr::UNMAP_SELF, [layout::SERVICE_VMEMMAP, page, 0]),
        ("map_caller", nr::MAP_CALLER, [layout::CLIENT_WINDOW, 0x4000_0000, page]),
        ("unmap_caller", nr::UNMAP_CALLER, [mine[2], small, 0]),
    ];
    for (name, number, a) in calls {
        let status = syscall(number, [a[0], a[1], a[2], 0, 0, 0])[0];
        r.check("memory-call", status == folio_rt::status::NOT_PERMITTED, format_args!("{name}: status {status}"));
    }
    ask([op::FREE, mine[1], 0, 0]);

    // Holding nothing now, the client is charged for page tables alone:
    // those its FREEs left warm in its tree (the kernel keeps at most
    // `map::KEPT_CLIENT_TABLES` empty ones, each with at most three tables
    // above it short of the root), and at least the last FREE's.
    let q = ask([op::QUOTA, QUERY, 0, 0]);
    let kept_at_most = folio_rt::abi::map::KEPT_CLIENT_TABLES as u64 * 3 * page;
    r.check(
        "warm-tables",
        q[0] == 0 && q[2] == q[3] && q[3] > 0 && q[3] <= kept_at_most,
        format_args!("holding nothing: charged {} bytes, all page tables ({} of them)", q[2], q[3] / page),
    );

    // Quota: lowered to what one smallest page costs (with its metadata),
    // a second one is refused.
    let first = ask([op::ALLOC, smallest, 0, 0]);
    let charged = ask([op::QUOTA, QUERY, 0, 0]);
    let lowered = ask([op::QUOTA, charged[2], 0, 0]);
    let second = ask([op::ALLOC, smallest, 0, 0]);
    r.check(
        "quota-exceeded",
        first[0] == 0 && lowered[0] == 0 && second[0] == error::QUOTA_EXCEEDED,
        format_args!(
            "{} charged {} bytes ({} of them metadata); statuses {} {} {}",
            Size(smallest),
            charged[2],
            charged[3],
            first[0],
            lowered[0],
            second[0]
        ),
    );
    ask([op::FREE, first[1], 0, 0]);
    // Leave holding one folio: the service takes it back when the kernel
    // says this client died.
    let kept = ask([op::ALLOC, smallest, 0, 0]);
    r.check(
        "exit-holding",
        kept[0] == 0,
        format_args!("{} at {:#x} left for the service to reclaim", Size(smallest), kept[2]),
    );
    result!("memclient", r.failed == 0, instance = id, passed = r.passed, failed = r.failed);
    r.failed
}

folio_rt::entry!(main);
