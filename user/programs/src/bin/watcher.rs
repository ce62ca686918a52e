//! Polls its endpoint (nobody there: WouldBlock), waits 50 ms for a call
//! that never comes (TimedOut), then receives again until the kernel's
//! death notice for its client arrives; exits with the client's badge plus
//! its exit status shifted 16 bits up.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::abi::ipc::DEATH_BADGE;
use folio_rt::{counter, recv, recv_nonblocking, recv_timed};

fn main() -> u64 {
    let (polled, _, _) = recv_nonblocking(0);
    let (timed, _, _) = recv_timed(0, counter().1 / 20);
    let (status, badge, notice) = recv(0);
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
