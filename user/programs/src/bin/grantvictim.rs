//! The caller a `grantflood` maps into: one call, then the result line.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::call;

fn main() -> u64 {
    let (status, answer) = call(0, [0; 4]);
    folio_rt::result!("grantflood", status == 0, granted = answer[0], refusal = answer[1], status = status);
    0
}

folio_rt::entry!(main);
