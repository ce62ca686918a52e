//! Architecture-specific code. Only aarch64 exists; the module is compiled
//! only for it, so host builds never reach a system register.

pub mod aarch64;
