//! Polls its endpoint (nobody there: WouldBlock), waits 50 ms for a call
//! that never comes (TimedOut), then waits on its notification for the
//! kernel to say a client died; exits with the notification word.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::{counter, println, recv_nonblocking, recv_timed, wait};

fn main() -> u64 {
    let (polled, _, _) = recv_nonblocking(0);
    let (timed, _, _) = recv_timed(0, counter().1 / 20);
    let (status, word) = wait(1);
    println!(
        "watcher: poll status {polled}, timed receive status {timed}, death notification {word:#b} (status {status})"
    );
    word
}

folio_rt::entry!(main);
