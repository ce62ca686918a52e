//! Bad requests: a handle it does not hold, kernel and unmapped pointers,
//! an unknown system call; each must come back as an error. Then it
//! faults on purpose, which the kernel must report without stopping others.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

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
    // Deliberately invalid: nothing is mapped at 0x10, so this faults and
    // the kernel stops this task.
    folio_rt::memory::write_u64(0x10, 1);
    folio_rt::result!("hostile.fault", false, why = "still running after a fault");
    1
}

folio_rt::entry!(main);
