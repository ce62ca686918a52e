//! A server that uses FP/SIMD for every request: it fills all 32 FP/SIMD
//! registers, then replies. In `make bench` the IPC client calls it before
//! each measured round on the same core, so an FP/SIMD state is live on
//! that core just before the round. Stops on a message word 0 of u64::MAX.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::selftest::fill_simd_registers;
use folio_rt::{recv, reply, reply_recv};

fn main() -> u64 {
    let (_, _, mut msg) = recv(0);
    while msg[0] != u64::MAX {
        fill_simd_registers(msg[0]);
        (_, _, msg) = reply_recv(0, [0; 4]);
    }
    reply([0; 4]);
    0
}

folio_rt::entry!(main);
