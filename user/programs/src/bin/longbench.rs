//! Long-message IPC benchmark, measured as `ipcbench` measures (cycle
//! counter around the call on the client's side, 16 warm-up rounds, the
//! minimum of 16, the counter's cost subtracted): call + reply of 4, 10
//! and 64 words each way through the long form, against `longserver`
//! (which replies as many words as it got).
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::long::call_long;
use folio_rt::{CycleCounter, println};

fn main() -> u64 {
    let Some(counter) = CycleCounter::get() else {
        println!("longbench: no cycle counter on this CPU; nothing measured");
        return 0;
    };
    let cycles = || counter.read();
    let overhead = (0..16).map(|_| cycles().wrapping_neg().wrapping_add(cycles())).min().unwrap_or(0);
    let msg = [7u64; 64];
    let mut reply = [0u64; 64];
    let mut figures = [0u64; 3];
    for (figure, len) in figures.iter_mut().zip([4usize, 10, 64]) {
        let mut best = u64::MAX;
        for i in 0..32 {
            let start = cycles();
            let got = call_long(0, &msg[..len], &mut reply);
            let end = cycles();
            if got.status != 0 || got.sent != len {
                println!("longbench: {len} words came back as {got:?}");
                return 1;
            }
            if i >= 16 {
                best = best.min(end - start - overhead);
            }
        }
        *figure = best;
    }
    call_long(0, &[u64::MAX], &mut []);
    println!(
        "longbench: call+reply (long form) 4 words {}, 10 words {}, 64 words {} instructions (counter overhead {overhead})",
        figures[0], figures[1], figures[2]
    );
    0
}

folio_rt::entry!(main);
