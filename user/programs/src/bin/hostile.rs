//! Bad requests: a handle it does not hold, kernel and unmapped pointers,
//! an unknown system call; each must come back as an error. Then it
//! faults on purpose, which the kernel must report without stopping others.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use folio_rt::abi::label::ON_ANY_FAULT;
use folio_rt::{call, nr, syscall};

fn main() -> u64 {
    let (no_handle, _) = call(5, [0; 4]);
    let kernel = syscall(nr::WRITE, [0xFFFF_8000_0000_0000, 16, 0, 0, 0, 0])[0];
    let unmapped = syscall(nr::WRITE, [0x7000_0000, 16, 0, 0, 0, 0])[0];
    let too_long = syscall(nr::WRITE, [0x40_0000, 1 << 20, 0, 0, 0, 0])[0];
    let unknown = syscall(99, [0; 6])[0];
    // Every bad request is refused with its own error.
    folio_rt::result!(
        "hostile",
        (no_handle, kernel, unmapped, too_long, unknown) == (1, 14, 14, 22, 38),
        no_handle = no_handle,
        kernel_pointer = kernel,
        unmapped = unmapped,
        too_long = too_long,
        unknown_call = unknown
    );
    // Labels: bad ones are refused, a good one names the fault below.
    let long = [b'x'; 65];
    let label_too_long = folio_rt::label(0, 0x1000, ON_ANY_FAULT, core::str::from_utf8(&long).unwrap_or(""));
    let label_bad_kind = folio_rt::label(0, 0x1000, 9, "null page");
    let label_ok = folio_rt::label(0, 0x1000, ON_ANY_FAULT, "null page");
    folio_rt::result!(
        "hostile.labels",
        (label_too_long, label_bad_kind, label_ok) == (22, 15, 0),
        too_long = label_too_long,
        bad_kind = label_bad_kind,
        ok = label_ok
    );
    // Deliberately invalid: nothing is mapped at 0x10, so this faults and
    // the kernel stops this task (and names the address "null page").
    folio_rt::memory::write_u64(0x10, 1);
    folio_rt::result!("hostile.fault", false, why = "still running after a fault");
    1
}

folio_rt::entry!(main);
