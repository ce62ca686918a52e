//! The launcher: the one task that starts others while the system runs
//! (`folio_abi::spawn`). It starts memory clients, hears of each one's
//! death, checks its exit status, and at the end shuts the memory service
//! down; the system shuts down when the launcher exits.
//!
//! Start: x0 = what to start: 0 = the two test clients of `make run`
//! (`memclient`, instances 1 and 2, meeting through two notifications),
//! N > 0 = N client lifetimes (`memlife`), x1 alive at once (at most
//! `spawn::MAX_LIVE`). Handles: 0 = the memory service (the operator's
//! badge), 1 = its own endpoint, with death notices, 2 and 3 = two
//! notifications (the test clients'). Its programs: 0 = `memclient`,
//! 1 = `memlife`.
//!
//! Every child gets a handle to the launcher's endpoint, which nobody
//! calls: it carries the child's death notice. In the lifetimes run every
//! 500th child dies by a fault holding a folio ([`FAULT`]), and the
//! middle one and every 5,000th allocate the smallest folios until they
//! are refused ([`EXHAUST`]) while the others go on being served.
//!
//! At the end it asks the service to shut down (SHUTDOWN's reply says
//! whether the pool is whole) and waits until it has ended. Prints a result
//! line (for lifetimes, the PMU cycles per lifetime: instructions under
//! QEMU -icount); exits with 0 when all is well.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::abi::ipc::DEATH_BADGE;
use folio_rt::abi::spawn::{FIRST_BADGE, MAX_LIVE, OWN_ENDPOINT};
use folio_rt::memsvc::op;
use folio_rt::{Message, call, cycles, recv, result, spawn, start_arguments, status};

/// Its handles.
const SERVICE: u64 = 0;
const OWN: u64 = 1;
const NOTIFICATION_A: u64 = 2;
const NOTIFICATION_B: u64 = 3;
/// Its programs.
const MEMCLIENT: u64 = 0;
const MEMLIFE: u64 = 1;
/// The clients' priority (the service's is above it).
const CLIENT_PRIORITY: u64 = 1;
/// x0's bit that tells a `memlife` to die by a fault.
const FAULT: u64 = 1 << 32;
/// x0's bit that tells a `memlife` to exhaust its share of the service.
const EXHAUST: u64 = 1 << 33;
/// A task the kernel stopped for a fault exits with this status.
const FAULT_STATUS: u64 = 139;

/// The next death notice on the launcher's endpoint: (badge, status).
fn next_death() -> Option<(u64, u64)> {
    let (status, badge, notice): (u64, u64, Message) = recv(OWN);
    (status == 0 && badge == DEATH_BADGE).then_some((notice[0], notice[1]))
}

/// Shuts the service down: whether its pool was whole, and whether it
/// has ended (a call then fails with DEAD_PEER, queued until it is gone).
fn shut_down_service() -> (bool, bool) {
    let (status, reply) = call(SERVICE, [op::SHUTDOWN, 0, 0, 0]);
    let pool_whole = status == 0 && reply[0] == 0 && reply[1] == reply[2];
    let ended = call(SERVICE, [op::POOL, 0, 0, 0]).0 == status::DEAD_PEER;
    (pool_whole, ended)
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// `make run`'s two test clients: each gets the service, a notification
/// to wait on, the other's to signal, an endpoint of its own to nap on,
/// and the launcher's endpoint; both must exit with 0.
fn test_clients() -> bool {
    let plans = [(1, NOTIFICATION_A, NOTIFICATION_B), (2, NOTIFICATION_B, NOTIFICATION_A)];
    let mut badges = [0u64; 2];
    for (i, &(instance, mine, peer)) in plans.iter().enumerate() {
        match spawn(MEMCLIENT, CLIENT_PRIORITY, &[SERVICE, mine, peer, OWN_ENDPOINT, OWN], [instance, 2]) {
            Ok(badge) => badges[i] = badge,
            Err(e) => {
                result!("launcher.spawn", false, program = "memclient", instance = instance, status = e);
                return false;
            }
        }
    }
    let mut statuses = [None; 2];
    while statuses.iter().any(Option::is_none) {
        let Some((badge, status)) = next_death() else { return false };
        if let Some(i) = badges.iter().position(|&b| b == badge) {
            statuses[i] = Some(status);
        }
    }
    let (pool_whole, service_ended) = shut_down_service();
    let clients_ok = statuses.iter().all(|&s| s == Some(0));
    let passed = clients_ok && pool_whole && service_ended;
    result!(
        "launcher",
        passed,
        started = 2,
        statuses = format_args!("memclient-1:{},memclient-2:{}", statuses[0].unwrap_or(0), statuses[1].unwrap_or(0)),
        pool_whole = yes(pool_whole),
        service_ended = yes(service_ended)
    );
    passed
}

/// `lifetimes` client lifetimes, `at_once` alive at a time.
fn lifetimes(lifetimes: u64, at_once: u64) -> bool {
    let at_once = at_once.clamp(1, MAX_LIVE as u64);
    let faults = |n: u64| n % 500 == 499;
    let start = cycles();
    let (mut started, mut ended, mut alive) = (0u64, 0u64, 0u64);
    let (mut wrong_status, mut refused, mut faulted, mut strange) = (0u64, 0u64, 0u64, 0u64);
    while ended < lifetimes {
        while alive < at_once && started < lifetimes {
            let exhausts = started % 5000 == 1234 || started == lifetimes / 2;
            let argument = started | if faults(started) { FAULT } else { 0 } | if exhausts { EXHAUST } else { 0 };
            match spawn(MEMLIFE, CLIENT_PRIORITY, &[SERVICE, OWN], [argument, 0]) {
                Ok(badge) => {
                    // Badges count up from FIRST_BADGE: anything else is a
                    // kernel bug.
                    strange += u64::from(badge != FIRST_BADGE + started);
                    started += 1;
                    alive += 1;
                }
                Err(_) => {
                    refused += 1;
                    break;
                }
            }
        }
        if alive == 0 {
            break;
        }
        let Some((badge, status)) = next_death() else {
            strange += 1;
            continue;
        };
        alive -= 1;
        ended += 1;
        let n = badge.wrapping_sub(FIRST_BADGE);
        let expected = if faults(n) { FAULT_STATUS } else { 0 };
        faulted += u64::from(status == FAULT_STATUS);
        wrong_status += u64::from(status != expected);
    }
    let spent = cycles() - start;
    let (pool_whole, service_ended) = shut_down_service();
    let passed = ended == lifetimes && wrong_status == 0 && refused == 0 && strange == 0 && pool_whole && service_ended;
    result!(
        "lifetimes",
        passed,
        lifetimes = ended,
        at_once = at_once,
        faulted = faulted,
        wrong_status = wrong_status,
        refused = refused,
        strange = strange,
        pool_whole = yes(pool_whole),
        service_ended = yes(service_ended),
        cycles_per_lifetime = spent / ended.max(1)
    );
    passed
}

fn main() -> u64 {
    let [what, at_once] = start_arguments();
    let passed = if what == 0 { test_clients() } else { lifetimes(what, at_once) };
    u64::from(!passed)
}

folio_rt::entry!(main);
