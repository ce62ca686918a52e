//! A server that answers one call and exits, leaving later callers queued.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::{println, recv, reply};

fn main() -> u64 {
    let (_, badge, msg) = recv(0);
    reply([msg[0] + 1, 0, 0, 0]);
    println!("quitter: answered badge {badge}, exiting");
    0
}

folio_rt::entry!(main);
