//! Long messages end to end (`folio_rt::long`, served by `longserver`):
//! every length from 0 to 64 words makes the round trip intact; a reply
//! longer than the client accepts arrives cut, with TRUNCATED, the length
//! sent, and the client's buffer past what it accepts left as the client
//! wrote it; 65 words
//! are refused; a short call to the long server still works. Prints one
//! result line per check; exits with the number that failed.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::long::{buffer_read, buffer_write, call_long, call_long_raw};
use folio_rt::{call, result, status};

const SENTINEL: u64 = 0x5e47_1e1d;

fn main() -> u64 {
    let mut failed = 0;
    // Every length, both ways.
    let mut bad_lengths = 0;
    for len in 0..=64usize {
        let msg: [u64; 64] = core::array::from_fn(|i| (len as u64) << 16 | i as u64);
        let mut reply = [0u64; 64];
        let got = call_long(0, &msg[..len], &mut reply);
        let intact = (0..len).all(|i| reply[i] == msg[i] + 1);
        if got.status != status::OK || got.sent != len || !intact {
            bad_lengths += 1;
        }
    }
    result!("longipc.lengths", bad_lengths == 0, lengths = "0..=64", bad = bad_lengths);
    failed += u64::from(bad_lengths != 0);

    // A 40-word reply to a client that accepts 8: TRUNCATED, 40 sent, 8
    // words, and its buffer past word 8 as it was.
    for i in 8..64 {
        buffer_write(i, SENTINEL);
    }
    let msg: [u64; 40] = core::array::from_fn(|i| 1000 + i as u64);
    let mut reply = [0u64; 8];
    let got = call_long(0, &msg, &mut reply);
    let words_ok = (0..8).all(|i| reply[i] == msg[i] + 1);
    // Past word 8 the buffer holds what this task put there: its own
    // message's words 8..40 (staged for the call), the sentinel after.
    let untouched = (8..64).all(|i| buffer_read(i) == if i < 40 { msg[i] } else { SENTINEL });
    let ok = got.status == status::TRUNCATED && got.sent == 40 && words_ok && untouched;
    result!("longipc.truncated", ok, status = got.status, sent = got.sent, untouched = untouched);
    failed += u64::from(!ok);

    // 65 words are refused before anything is sent.
    let refused = call_long_raw(0, 65);
    let ok = refused == status::INVALID_ARGUMENT;
    result!("longipc.too_long", ok, words = 65, status = refused);
    failed += u64::from(!ok);

    // The short form still talks to a long server (four words each way).
    let (st, r) = call(0, [7, 8, 9, 10]);
    let ok = st == status::OK && r == [8, 9, 10, 11];
    result!("longipc.short", ok, status = st);
    failed += u64::from(!ok);

    call_long(0, &[u64::MAX], &mut []);
    result!("longipc", failed == 0, failed = failed);
    failed
}

folio_rt::entry!(main);
