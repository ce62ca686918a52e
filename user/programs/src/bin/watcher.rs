//! Polls an endpoint of its own (handle 1: nobody there, WouldBlock),
//! waits 50 ms on it for a call that never comes (TimedOut), then receives
//! on its endpoint with death notices (handle 0) until the kernel's notice
//! for its client arrives (queued if the client died first); exits with
//! the client's badge plus its exit status shifted 16 bits up.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::abi::ipc::DEATH_BADGE;
use folio_rt::{counter, recv, recv_nonblocking, recv_timed};

const NOTICES: u64 = 0;
const QUIET: u64 = 1;

fn main() -> u64 {
    let (polled, _, _) = recv_nonblocking(QUIET);
    let (timed, _, _) = recv_timed(QUIET, counter().1 / 20);
    let (status, badge, notice) = recv(NOTICES);
    let death = status == 0 && badge == DEATH_BADGE;
    folio_rt::result!(
        "watcher",
        death,
        poll = polled,
        timed = timed,
        client = folio_rt::abi::report::Hex(notice[0]),
        client_status = notice[1],
        status = status
    );
    if death { notice[0] | notice[1] << 16 } else { 1 }
}

folio_rt::entry!(main);
