//! Polls its endpoint (nobody there: WouldBlock), waits 50 ms for a call
//! that never comes (TimedOut), then waits on its notification for the
//! kernel to say a client died; exits with the notification word.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::{counter, recv_nonblocking, recv_timed, wait};

fn main() -> u64 {
    let (polled, _, _) = recv_nonblocking(0);
    let (timed, _, _) = recv_timed(0, counter().1 / 20);
    let (status, word) = wait(1);
    folio_rt::result!(
        "watcher",
        true,
        poll = polled,
        timed = timed,
        death = folio_rt::abi::report::Hex(word),
        status = status
    );
    word
}

folio_rt::entry!(main);
