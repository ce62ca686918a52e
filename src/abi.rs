//! The system-call interface as numbers: shared word for word by the kernel
//! (`crate::syscall`, `crate::ipc`) and the EL0 library (`user/src/lib.rs`
//! includes this file), so the two sides cannot drift apart.

/// System-call numbers, passed in x8.
pub mod nr {
    pub const EXIT: u64 = 0;
    pub const WRITE: u64 = 1;
    pub const YIELD: u64 = 2;
    pub const CALL: u64 = 3;
    pub const RECV: u64 = 4;
    pub const REPLY: u64 = 5;
    pub const REPLY_RECV: u64 = 6;
    pub const SIGNAL: u64 = 7;
    pub const WAIT: u64 = 8;
    pub const RECV_NONBLOCKING: u64 = 9;
    pub const RECV_TIMED: u64 = 10;
}

/// Status codes returned in x0 (0 is success).
pub mod status {
    pub const OK: u64 = 0;
    pub const INVALID_HANDLE: u64 = 1;
    pub const NOT_OWNER: u64 = 2;
    pub const NO_CALLER: u64 = 3;
    pub const DEAD_PEER: u64 = 4;
    pub const TIMED_OUT: u64 = 5;
    pub const WOULD_BLOCK: u64 = 6;
    pub const WRONG_KIND: u64 = 7;
    pub const BAD_ADDRESS: u64 = 14;
    pub const TOO_LONG: u64 = 22;
    pub const UNKNOWN_CALL: u64 = 38;
}
