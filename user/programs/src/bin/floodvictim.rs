//! The client a compromised service (`memflood`) floods with mappings:
//! calls it x0 times and checks every call is answered; exits with the
//! number that were not.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::{call, start_arguments};

fn main() -> u64 {
    let [calls, _] = start_arguments();
    let failed = (0..calls).filter(|_| call(0, [0; 4]).0 != 0).count() as u64;
    folio_rt::result!("floodvictim", failed == 0, calls = calls, failed = failed);
    failed
}

folio_rt::entry!(main);
