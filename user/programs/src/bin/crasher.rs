//! A server that takes one call and then faults instead of replying: its
//! caller must get an error, not hang.
#![no_std]
#![no_main]

use folio_rt::{println, recv};

fn main() -> u64 {
    let (status, badge, _) = recv(0);
    println!("crasher: got a call from badge {badge} (status {status}); faulting now");
    // SAFETY: deliberately invalid: nothing is mapped at 0x18, so this
    // faults while the caller waits for a reply.
    unsafe { core::ptr::write_volatile(0x18 as *mut u64, 1) };
    1
}

folio_rt::entry!(main);
