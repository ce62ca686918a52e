//! A client that makes one call and exits with the call's status (0 when
//! answered, 4 when the server died).
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::{call, println};

fn main() -> u64 {
    let (status, reply) = call(0, [41, 0, 0, 0]);
    println!("orphan: call returned status {status}, reply {}", reply[0]);
    status
}

folio_rt::entry!(main);
