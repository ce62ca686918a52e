//! A server that takes one call and then faults instead of replying: its
//! caller must get an error, not hang.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::{println, recv};

fn main() -> u64 {
    let (status, badge, _) = recv(0);
    println!("crasher: got a call from badge {badge} (status {status}); faulting now");
    // Deliberately invalid: nothing is mapped at 0x18, so this faults while
    // the caller waits for a reply.
    folio_rt::memory::write_u64(0x18, 1);
    1
}

folio_rt::entry!(main);
