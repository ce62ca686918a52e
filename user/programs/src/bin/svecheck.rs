//! Uses SVE, which folio keeps trapped: the kernel must report the task and
//! stop it (status 139) while the others go on. Exits 0 only if the
//! instruction ran.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

fn main() -> u64 {
    let _ = folio_rt::selftest::use_sve();
    0
}

folio_rt::entry!(main);
