//! The EL0 programs the build packages with the kernel (built from
//! `user/programs` and `user/memsvc` by `make`, which runs before the kernel
//! is compiled; `build.rs` says where).

macro_rules! program {
    ($name:literal) => {
        include_bytes!(concat!(env!("FOLIO_EL0_DIR"), "/el0/", $name))
    };
}

pub static HELLO: &[u8] = program!("hello");
pub static PING: &[u8] = program!("ping");
pub static PONG: &[u8] = program!("pong");
pub static HOSTILE: &[u8] = program!("hostile");
pub static SPINNER: &[u8] = program!("spinner");
pub static CRASHER: &[u8] = program!("crasher");
pub static QUITTER: &[u8] = program!("quitter");
pub static ORPHAN: &[u8] = program!("orphan");
pub static WATCHER: &[u8] = program!("watcher");
pub static SLEEPER: &[u8] = program!("sleeper");
pub static IPCBENCH: &[u8] = program!("ipcbench");
pub static IPCSERVER: &[u8] = program!("ipcserver");
pub static MEMCLIENT: &[u8] = program!("memclient");
pub static ASIDCHECK: &[u8] = program!("asidcheck");
pub static SIMDCHECK: &[u8] = program!("simdcheck");
pub static GRANTFLOOD: &[u8] = program!("grantflood");
pub static GRANTVICTIM: &[u8] = program!("grantvictim");
pub static TORTURE: &[u8] = program!("torture");
pub static MEMBENCH: &[u8] = program!("membench");
pub static TLSCHECK: &[u8] = program!("tlscheck");
pub static SVECHECK: &[u8] = program!("svecheck");
pub static FPSERVER: &[u8] = program!("fpserver");
pub static LONGCLIENT: &[u8] = program!("longclient");
pub static LONGSERVER: &[u8] = program!("longserver");
pub static LONGBENCH: &[u8] = program!("longbench");
pub static NAPPER: &[u8] = program!("napper");
pub static SYSFUZZ: &[u8] = program!("sysfuzz");
pub static MEMFUZZ: &[u8] = program!("memfuzz");
pub static LAUNCHER: &[u8] = program!("launcher");
pub static MEMLIFE: &[u8] = program!("memlife");
pub static MEMFLOOD: &[u8] = program!("memflood");
pub static FLOODVICTIM: &[u8] = program!("floodvictim");
/// The IPC benchmark pair built for the soft-float target: code that never
/// touches FP/SIMD (the hard-float build uses q registers in memcpy and
/// struct moves, so it takes the lazy FP/SIMD trap once per switch-in).
pub static IPCBENCH_SOFT_FLOAT: &[u8] = include_bytes!(concat!(env!("FOLIO_EL0_SOFT_FLOAT_DIR"), "/el0/ipcbench"));
pub static IPCSERVER_SOFT_FLOAT: &[u8] = include_bytes!(concat!(env!("FOLIO_EL0_SOFT_FLOAT_DIR"), "/el0/ipcserver"));
/// The memory service, a package of its own (user/memsvc): the program
/// that owns the huge-page pool and its metadata.
pub static MEMSVC: &[u8] = include_bytes!(concat!(env!("FOLIO_EL0_DIR"), "/service/memsvc"));
