//! Sleeps: one timed receive of x0 milliseconds on its own endpoint
//! (handle 0), where nobody calls. While it waits its core has a deadline
//! pending, so when idle the core waits in WFI for its timer, not in WFE.
//! Exits 0 when the receive timed out.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::{nap, start_arguments, status};

fn main() -> u64 {
    let [ms, _] = start_arguments();
    u64::from(nap(0, ms) != status::TIMED_OUT)
}

folio_rt::entry!(main);
