//! Serves long messages (`folio_rt::long`): receives up to 64 words and
//! replies with as many words, each one more than what arrived, so the
//! client can check every word made the round trip. Ends on a first word
//! of u64::MAX. Exits with the number of receives that reported an error.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::long::{recv_long, reply_recv_long};
use folio_rt::status;

fn main() -> u64 {
    let (mut msg, mut reply) = ([0u64; 64], [0u64; 64]);
    let mut errors = 0;
    let mut got = recv_long(0, &mut msg);
    loop {
        if got.status != status::OK {
            errors += 1;
        }
        if got.sent > 0 && msg[0] == u64::MAX {
            folio_rt::reply([0; 4]);
            return errors;
        }
        let n = got.sent.min(msg.len());
        for (r, m) in reply.iter_mut().zip(&msg).take(n) {
            *r = m + 1;
        }
        got = reply_recv_long(0, &reply[..n], &mut msg);
    }
}

folio_rt::entry!(main);
