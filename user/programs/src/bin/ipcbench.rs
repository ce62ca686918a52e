//! The IPC benchmark client, measured the way sel4bench does: the cycle
//! counter (instructions under QEMU -icount) read just before the system
//! call and just after the other side returns from its own, 16 warm-up
//! rounds, then the minimum of 16, the counter's own cost subtracted.
//!
//! x0 at start: 1 when the server runs on another core. x1: 1 to call a
//! second server (handle 1, `fpserver`, on this core) before every round:
//! it uses FP/SIMD, so its FP/SIMD state is live on the core just before
//! each measured round; 2 when the server's core idles in WFI (a task
//! there sleeps in a timed receive), which only labels the line. The line says which
//! build this is: hard-float (`aarch64-unknown-none`, whose memcpy and
//! struct moves use q registers) or soft-float (no FP/SIMD at all).
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::{CycleCounter, call, println, start_arguments, syscall};

fn main() -> u64 {
    let Some(counter) = CycleCounter::get() else {
        println!("ipcbench: no cycle counter on this CPU; nothing measured");
        return 0;
    };
    let cycles = || counter.read();
    let overhead = (0..16).map(|_| cycles().wrapping_neg().wrapping_add(cycles())).min().unwrap_or(0);
    let [across, fp_neighbour] = start_arguments();
    let (mut null, mut one_way, mut reply, mut round) = (u64::MAX, u64::MAX, u64::MAX, u64::MAX);
    for i in 0..32 {
        if fp_neighbour == 1 {
            call(1, [i + 1, 0, 0, 0]);
        }
        let t0 = cycles();
        syscall(99, [0; 6]);
        let t1 = cycles();
        let start = cycles();
        let (status, r) = call(0, [start, 0, 0, 0]);
        let end = cycles();
        if status != 0 {
            println!("ipcbench: call failed with {status}");
            return 1;
        }
        if i >= 16 {
            null = null.min(t1 - t0 - overhead);
            one_way = one_way.min(r[1] - overhead);
            reply = reply.min(end - r[0] - overhead);
            round = round.min(end - start - overhead);
        }
    }
    let (status, _) = call(0, [u64::MAX, 0, 0, 0]);
    if fp_neighbour == 1 {
        call(1, [u64::MAX, 0, 0, 0]);
    }
    // x0 = 1: the kernel put the server on another core. Each core's cycle
    // counter starts at its own moment, so only the round trip (both ends
    // read on this core) means anything then.
    if across == 1 {
        let idle = if fp_neighbour == 2 { "WFI" } else { "WFE" };
        println!(
            "ipcbench across cores (server's core idle in {idle}): call+reply {round} instructions of virtual time (counter overhead {overhead}, server status {status})"
        );
        return 0;
    }
    let build = if cfg!(target_feature = "neon") { "hard-float" } else { "soft-float" };
    let neighbour = if fp_neighbour == 1 { ", an FP/SIMD server called between rounds" } else { "" };
    println!(
        "ipcbench ({build}{neighbour}): null syscall {null}, call {one_way}, reply {reply}, call+reply {round} instructions (counter overhead {overhead}, server status {status})"
    );
    0
}

folio_rt::entry!(main);
