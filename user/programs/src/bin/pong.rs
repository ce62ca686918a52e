//! An IPC server: answers each call with the message's first word plus one
//! and the caller's badge; exits after serving 40 calls (four clients).
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::{println, recv, reply, reply_recv};

const CALLS: u64 = 40;

fn main() -> u64 {
    let (mut status, mut badge, mut msg) = recv(0);
    let mut served = 0;
    loop {
        if status != 0 {
            println!("pong: receive failed with status {status}");
            return 100 + status;
        }
        served += 1;
        let answer = [msg[0] + 1, badge, 0, 0];
        if served == CALLS {
            reply(answer);
            folio_rt::result!("pong", true, served = served);
            return 0;
        }
        (status, badge, msg) = reply_recv(0, answer);
    }
}

folio_rt::entry!(main);
