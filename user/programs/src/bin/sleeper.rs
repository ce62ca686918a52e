//! Timed receives that must expire: spins x0 milliseconds first (so the
//! receive starts while its core's scheduler has already looked for work),
//! then receives on its own endpoint with a deadline already due (0 ticks)
//! and with a 1 ms one. Nobody calls, so both must come back TimedOut (5).
//! Exits 0 when they did, else with the two statuses (first << 8 | second).
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::{counter, recv_timed, start_arguments, status};

fn main() -> u64 {
    let [spin_ms, _] = start_arguments();
    let (start, frequency) = counter();
    while counter().0 - start < frequency / 1000 * spin_ms {
        core::hint::spin_loop();
    }
    let (due, _, _) = recv_timed(0, 0);
    let (soon, _, _) = recv_timed(0, frequency / 1000);
    folio_rt::result!("sleeper", due == status::TIMED_OUT && soon == status::TIMED_OUT, due = due, soon = soon);
    if (due, soon) == (status::TIMED_OUT, status::TIMED_OUT) { 0 } else { due << 8 | soon }
}

folio_rt::entry!(main);
