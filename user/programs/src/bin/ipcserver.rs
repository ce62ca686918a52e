//! The IPC benchmark server: for each call, the instructions from the
//! client's counter read (message word 0) to its own just after receiving,
//! and its counter read just before replying, sent back in the reply.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::{CycleCounter, counter, recv, reply, reply_recv};

fn main() -> u64 {
    // The cycle counter where this CPU has one (ipcbench measures nothing
    // otherwise), checked once so each read is just `isb; mrs`.
    let pmu = CycleCounter::get();
    let cycles = || match pmu {
        Some(c) => c.read(),
        None => counter().0,
    };
    let (_, _, mut msg) = recv(0);
    loop {
        let arrived = cycles();
        if msg[0] == u64::MAX {
            reply([0; 4]);
            return 0;
        }
        let one_way = arrived - msg[0];
        let leaving = cycles();
        (_, _, msg) = reply_recv(0, [leaving, one_way, 0, 0]);
    }
}

folio_rt::entry!(main);
