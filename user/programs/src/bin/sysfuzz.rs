//! A system-call fuzzer (seeded, reproducible): x1 calls (x0 = seed) with
//! random numbers (every call, the long forms, unknown ones) and hostile
//! arguments: kernel addresses, unaligned and unmapped pointers, huge
//! lengths, foreign and made-up handles. It holds handle 0 (an endpoint of
//! a server it does not own), handle 1 (a notification). It never asks for
//! what would block it forever (a `wait` is preceded by a `signal`; it owns
//! no endpoint, so every receive fails at once) and never exits early.
//! Every call must come back with a status of the ABI. Prints a result
//! line with the count of each outcome; exits with the number of calls
//! that returned something else.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::abi::{ipc, task};
use folio_rt::{nr, result, start_arguments, status, syscall};

/// Values a hostile caller would try, as pointers, lengths and handles.
const HOSTILE: [u64; 20] = [
    0,
    1,
    7,
    64,
    65,
    4096,
    4097,
    0x7fff_ffff,
    1 << 32,
    1 << 48,
    0x1000_0000_0000,
    0x8000_0000_0000,
    0xffff_0000_0000_0000,
    0xffff_8000_0000_0000,
    0xffff_ffff_ffff_f000,
    u64::MAX,
    u64::MAX - 7,
    task::STACK_TOP - 8,
    task::IPC_BUFFER + 4093,
    task::IMAGE_BASE + 3,
];

/// Pointers `write` may get: none it could read (a readable one would
/// print the task's memory to the console).
const BAD_POINTERS: [u64; 8] =
    [0, 8, 0x1000_0000_0000, 1 << 48, 0xffff_8000_0000_0000, 0xffff_ffff_ffff_f000, u64::MAX, u64::MAX - 7];

const KNOWN: [u64; 15] = [
    status::OK,
    status::INVALID_HANDLE,
    status::NOT_OWNER,
    status::NO_CALLER,
    status::DEAD_PEER,
    status::TIMED_OUT,
    status::WOULD_BLOCK,
    status::WRONG_KIND,
    status::OUT_OF_MEMORY,
    status::NOT_PERMITTED,
    status::BAD_ADDRESS,
    status::INVALID_ARGUMENT,
    status::TOO_LONG,
    status::TRUNCATED,
    status::UNKNOWN_CALL,
];

fn main() -> u64 {
    let [seed, calls] = start_arguments();
    let mut next = folio_rt::selftest::xorshift(seed);
    let mut counts = [0u64; KNOWN.len()];
    let mut strange = 0;
    for _ in 0..calls {
        let pick = next();
        let number = match pick % 8 {
            // Mostly the real calls, 0..=24 (exit excepted below).
            0..=4 => next() % 25,
            5 => [nr::CALL, nr::RECV, nr::REPLY_RECV][(next() % 3) as usize] | ipc::LONG,
            6 => next() % 600,
            _ => next(),
        };
        let mut args = [0u64; 6];
        for a in &mut args {
            *a = if next().is_multiple_of(4) { next() } else { HOSTILE[(next() % HOSTILE.len() as u64) as usize] };
        }
        // Handles: the two it holds, or anything.
        if next().is_multiple_of(2) {
            args[0] = next() % 3;
        }
        let number = match number {
            nr::EXIT => nr::YIELD,
            nr::WRITE => {
                args[0] = BAD_POINTERS[(next() % BAD_POINTERS.len() as u64) as usize];
                nr::WRITE
            }
            nr::WAIT if args[0] == 1 => {
                // Its notification: signalled first, so the wait returns.
                syscall(nr::SIGNAL, [1, 0, 0, 0, 0, 0]);
                nr::WAIT
            }
            n => n,
        };
        // The long forms return x6 too: they go through the 7-register
        // call (a register the compiler kept in x6 would be lost).
        let got = if number & ipc::LONG != 0 {
            folio_rt::long::syscall7(number, [args[0], args[1], args[2], args[3], args[4], args[5], next()])[0]
        } else {
            syscall(number, args)[0]
        };
        match KNOWN.iter().position(|&s| s == got) {
            Some(i) => counts[i] += 1,
            None => strange += 1,
        }
    }
    let [
        ok,
        invalid_handle,
        not_owner,
        no_caller,
        dead_peer,
        _,
        would_block,
        wrong_kind,
        _,
        not_permitted,
        bad_address,
        invalid_argument,
        too_long,
        truncated,
        unknown,
    ] = counts;
    result!(
        "sysfuzz",
        strange == 0,
        seed = seed,
        calls = calls,
        ok = ok,
        invalid_handle = invalid_handle,
        not_owner = not_owner,
        no_caller = no_caller,
        dead_peer = dead_peer,
        would_block = would_block,
        wrong_kind = wrong_kind,
        not_permitted = not_permitted,
        bad_address = bad_address,
        invalid_argument = invalid_argument,
        too_long = too_long,
        truncated = truncated,
        unknown = unknown,
        strange = strange
    );
    strange
}

folio_rt::entry!(main);
