//! The launcher: starts client lifetimes in waves and shuts the memory
//! service down at the end (the system shuts down when the launcher exits).
//!
//! Start: x0 = how many lifetimes, x1 = how many children alive at once
//! (at most `spawn::MAX_LIVE`). Handles: 0 = the memory service (the
//! operator's badge), 1 = its own endpoint, with death notices. Program 0
//! of its set is `memlife`. Each child gets handles to the service and to
//! the launcher's endpoint (nobody calls it: it only carries the child's
//! death notice) and x0 = its number, with [`FAULT`] set for every 500th
//! child, which then dies by a fault holding a folio, and [`EXHAUST`] for
//! every 5,000th, which allocates the smallest folios until it is refused
//! (a typed error) while the others go on being served.
//!
//! It keeps the wave full, takes one death notice per `recv` and checks
//! each child's exit status (0, or 139 for a fault), then asks the service
//! to shut down (SHUTDOWN's reply says whether the pool is whole) and
//! waits until it has ended. Prints
//! a result line with the instructions per lifetime (PMU cycles; under
//! QEMU -icount they count instructions); exits with 0 when all is well.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::abi::ipc::DEATH_BADGE;
use folio_rt::abi::spawn::{FIRST_BADGE, MAX_LIVE};
use folio_rt::memsvc::op;
use folio_rt::{call, cycles, recv, result, spawn, start_arguments, status};

const SERVICE: u64 = 0;
const OWN: u64 = 1;
const MEMLIFE: u64 = 0;
/// x0's bit that tells a child to die by a fault.
const FAULT: u64 = 1 << 32;
/// x0's bit that tells a child to exhaust its share of the service.
const EXHAUST: u64 = 1 << 33;
/// A task the kernel stopped for a fault exits with this status.
const FAULT_STATUS: u64 = 139;

fn main() -> u64 {
    let [lifetimes, at_once] = start_arguments();
    let at_once = at_once.clamp(1, MAX_LIVE as u64);
    let faults = |n: u64| n % 500 == 499;
    let start = cycles();
    let (mut started, mut ended, mut alive) = (0u64, 0u64, 0u64);
    let (mut wrong_status, mut refused, mut faulted, mut strange) = (0u64, 0u64, 0u64, 0u64);
    while ended < lifetimes {
        while alive < at_once && started < lifetimes {
            let exhausts = started % 5000 == 1234;
            let argument = started | if faults(started) { FAULT } else { 0 } | if exhausts { EXHAUST } else { 0 };
            match spawn(MEMLIFE, 1, &[SERVICE, OWN], [argument, 0]) {
                Ok(badge) if badge == FIRST_BADGE + started => {
                    started += 1;
                    alive += 1;
                }
                Ok(_) => {
                    // Badges count up from FIRST_BADGE: anything else is a
                    // kernel bug.
                    strange += 1;
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
        let (status, badge, notice) = recv(OWN);
        if status != 0 || badge != DEATH_BADGE {
            strange += 1;
            continue;
        }
        alive -= 1;
        ended += 1;
        let n = notice[0].wrapping_sub(FIRST_BADGE);
        let expected = if faults(n) { FAULT_STATUS } else { 0 };
        faulted += u64::from(notice[1] == FAULT_STATUS);
        wrong_status += u64::from(notice[1] != expected);
    }
    let spent = cycles() - start;
    let (status, reply) = call(SERVICE, [op::SHUTDOWN, 0, 0, 0]);
    let pool_whole = status == 0 && reply[0] == 0 && reply[1] == reply[2];
    // The service prints its statistics and exits: a call then fails with
    // DEAD_PEER (queued until it is gone), and only then may the system
    // shut down.
    let service_ended = call(SERVICE, [op::POOL, 0, 0, 0]).0 == status::DEAD_PEER;
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
        pool_whole = if pool_whole { "yes" } else { "no" },
        service_ended = if service_ended { "yes" } else { "no" },
        cycles_per_lifetime = spent / ended.max(1)
    );
    u64::from(!passed)
}

folio_rt::entry!(main);
