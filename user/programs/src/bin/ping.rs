//! An IPC client: ten calls to handle 0 (x1 at start, if not 0), checking
//! each reply; exits with the number of wrong replies. With x0 = 1 at
//! start it first waits on its notification (handle 1).
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::{call, start_arguments, wait};

fn main() -> u64 {
    let [wait_first, calls] = start_arguments();
    if wait_first == 1 {
        wait(1);
    }
    let calls = if calls == 0 { 10 } else { calls };
    let mut wrong = 0;
    let mut badge = 0;
    for i in 0..calls {
        let (status, reply) = call(0, [i, 0, 0, 0]);
        if status != 0 || reply[0] != i + 1 {
            wrong += 1;
        }
        badge = reply[1];
    }
    folio_rt::result!("ping", wrong == 0, calls = calls, wrong = wrong, badge = badge);
    wrong
}

folio_rt::entry!(main);
