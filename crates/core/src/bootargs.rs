//! The kernel command line (`/chosen/bootargs`, or QEMU's `-append`).
//!
//! Owns: turning the command line into typed settings. Unknown or malformed
//! arguments are collected as [`BootArgWarning`]s for the caller to report;
//! they never stop the boot and never change a setting.
//!
//! | argument | values | default |
//! |---|---|---|
//! | `loglevel=` | `error` `warn` `info` `debug` `trace`, or 1..5 | `info` |
//! | `granule=` | `4k` `16k` `64k` | `4k` |
//! | `exit=` | `psci` `semihosting` `halt` | `psci` when the DTB has PSCI, else `halt` |
//! | `ktest` / `ktest=NAME` | run the in-kernel tests (those whose name contains NAME) | off |
//! | `crash=` | `fault` `panic`: deliberately fail after boot, to test the report path | off |
//! | `bench` | run the in-kernel benchmarks (QEMU with `-icount shift=0`) | off |
//! | `hugepages=` | `SIZE:COUNT[,SIZE:COUNT]`: huge-page pools reserved at boot for the memory service, which adopts them born optimized | none |
//! | `memsvc=` | `off`, or `SIZE`: the memory service's pool (after the kernel tests) | all free RAM but an eighth (at least 64 MiB) kept by the kernel |
//! | `memsvc_quota=` | `SIZE`: what each client of the memory service may hold | half the pool |
//! | `lifetimes=` | `N` (1..=1,000,000): client lifetimes the kernel test of tasks that come and go runs | 10,000 |

use alloc::vec::Vec;
use core::fmt;

use crate::mm::Granule;

/// Log verbosity, in the order of the `log` crate's levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error = 1,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn to_filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }

    fn parse(text: &str) -> Option<LogLevel> {
        Some(match text {
            "error" | "1" => LogLevel::Error,
            "warn" | "2" => LogLevel::Warn,
            "info" | "3" => LogLevel::Info,
            "debug" | "4" => LogLevel::Debug,
            "trace" | "5" => LogLevel::Trace,
            _ => return None,
        })
    }
}

/// How the kernel ends the machine when it is done or has failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitMethod {
    /// PSCI SYSTEM_OFF through the DTB's conduit; the status is only printed.
    Psci,
    /// Semihosting SYS_EXIT: QEMU exits with the status. Only valid when QEMU
    /// runs with `-semihosting`; on real hardware `hlt` is undefined.
    Semihosting,
    /// Print the status and wait for interrupts forever (real hardware).
    Halt,
}

/// A deliberate failure after boot, so tests can see the report paths work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashKind {
    /// An access to an unmapped kernel address: an unexpected data abort.
    Fault,
    /// A Rust panic.
    Panic,
}

/// Settings from the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootArgs<'a> {
    pub log_level: LogLevel,
    pub granule: Granule,
    /// `None`: choose from the platform (PSCI when present, else halt).
    pub exit: Option<ExitMethod>,
    /// `Some("")` runs every in-kernel test, `Some(name)` those matching.
    pub ktest: Option<&'a str>,
    pub crash: Option<CrashKind>,
    /// Run the in-kernel benchmarks (for QEMU with `-icount shift=0`).
    pub bench: bool,
    /// Huge-page pools to reserve at boot: (size in bytes, count).
    pub hugepages: Vec<(u64, u64)>,
    /// The memory service and its test clients.
    pub memsvc: Memsvc,
    /// Bytes each client of the memory service may hold.
    pub memsvc_quota: Option<u64>,
    /// Client lifetimes in the kernel test of tasks that come and go.
    pub lifetimes: u64,
}

/// `lifetimes=`'s default and its largest value.
pub const DEFAULT_LIFETIMES: u64 = 10_000;
pub const MAX_LIFETIMES: u64 = 1_000_000;

/// Whether the memory service runs, and with how large a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Memsvc {
    Off,
    /// All free RAM but what the kernel keeps.
    Default,
    /// At most this many bytes.
    Pool(u64),
}

impl Default for BootArgs<'_> {
    fn default() -> Self {
        BootArgs {
            log_level: LogLevel::Info,
            granule: Granule::K4,
            exit: None,
            ktest: None,
            crash: None,
            bench: false,
            hugepages: Vec::new(),
            memsvc: Memsvc::Default,
            memsvc_quota: None,
            lifetimes: DEFAULT_LIFETIMES,
        }
    }
}

/// An argument that was not understood and therefore ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootArgWarning<'a> {
    Unknown { arg: &'a str },
    BadValue { key: &'a str, value: &'a str, expected: &'static str },
}

impl fmt::Display for BootArgWarning<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootArgWarning::Unknown { arg } => write!(f, "unknown boot argument `{arg}` ignored"),
            BootArgWarning::BadValue { key, value, expected } => {
                write!(f, "boot argument `{key}={value}` ignored: expected {expected}")
            }
        }
    }
}

/// A byte size with an optional binary suffix: `64K`, `2M`, `1G`, `16G`.
pub fn parse_size(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 10),
        b'm' | b'M' => (&text[..text.len() - 1], 20),
        b'g' | b'G' => (&text[..text.len() - 1], 30),
        b't' | b'T' => (&text[..text.len() - 1], 40),
        _ => (text, 0),
    };
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(1 << shift).filter(|&s| s > 0)
}

/// `SIZE:COUNT` of `hugepages=`.
fn parse_pool(entry: &str) -> Option<(u64, u64)> {
    let (size, count) = entry.split_once(':')?;
    Some((parse_size(size)?, count.parse().ok().filter(|&c| c > 0)?))
}

/// Parses a command line. Later arguments override earlier ones.
pub fn parse(cmdline: &str) -> (BootArgs<'_>, Vec<BootArgWarning<'_>>) {
    let mut args = BootArgs::default();
    let mut warnings = Vec::new();
    for arg in cmdline.split_ascii_whitespace() {
        let (key, value) = match arg.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (arg, None),
        };
        let mut bad = |expected| warnings.push(BootArgWarning::BadValue { key, value: value.unwrap_or(""), expected });
        match (key, value) {
            ("loglevel", Some(v)) => match LogLevel::parse(v) {
                Some(level) => args.log_level = level,
                None => bad("error, warn, info, debug, trace or 1..5"),
            },
            ("granule", Some(v)) => match Granule::parse(v) {
                Some(g) => args.granule = g,
                None => bad("4k, 16k or 64k"),
            },
            ("exit", Some(v)) => match v {
                "psci" => args.exit = Some(ExitMethod::Psci),
                "semihosting" => args.exit = Some(ExitMethod::Semihosting),
                "halt" => args.exit = Some(ExitMethod::Halt),
                _ => bad("psci, semihosting or halt"),
            },
            ("ktest", None) => args.ktest = Some(""),
            ("bench", None) => args.bench = true,
            ("hugepages", Some(v)) => {
                for entry in v.split(',') {
                    match parse_pool(entry) {
                        Some(pool) => args.hugepages.push(pool),
                        None => warnings.push(BootArgWarning::BadValue {
                            key,
                            value: entry,
                            expected: "SIZE:COUNT, such as 2M:512 or 1G:4",
                        }),
                    }
                }
            }
            ("ktest", Some(v)) => args.ktest = Some(v),
            ("memsvc", Some("off")) => args.memsvc = Memsvc::Off,
            ("memsvc", Some(v)) => match parse_size(v) {
                Some(size) => args.memsvc = Memsvc::Pool(size),
                None => bad("off, or a size such as 512M or 4G"),
            },
            ("memsvc_quota", Some(v)) => match parse_size(v) {
                Some(size) => args.memsvc_quota = Some(size),
                None => bad("a size such as 64M or 2G"),
            },
            ("lifetimes", Some(v)) => match v.parse::<u64>() {
                Ok(n) if (1..=MAX_LIFETIMES).contains(&n) => args.lifetimes = n,
                _ => bad("a count from 1 to 1000000"),
            },
            ("crash", Some(v)) => match v {
                "fault" => args.crash = Some(CrashKind::Fault),
                "panic" => args.crash = Some(CrashKind::Panic),
                _ => bad("fault or panic"),
            },
            (
                "loglevel" | "granule" | "exit" | "crash" | "hugepages" | "memsvc" | "memsvc_quota" | "lifetimes",
                None,
            ) => bad("a value after `=`"),
            _ => warnings.push(BootArgWarning::Unknown { arg }),
        }
    }
    (args, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_command_line_gives_defaults() {
        let (args, warnings) = parse("");
        assert_eq!(args, BootArgs::default());
        assert!(warnings.is_empty());
    }

    #[test]
    fn known_arguments_are_applied() {
        let (args, warnings) = parse("  loglevel=debug granule=64k exit=semihosting ktest=frame crash=panic ");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(args.log_level, LogLevel::Debug);
        assert_eq!(args.granule, Granule::K64);
        assert_eq!(args.exit, Some(ExitMethod::Semihosting));
        assert_eq!(args.ktest, Some("frame"));
        assert_eq!(args.crash, Some(CrashKind::Panic));
    }

    #[test]
    fn bad_and_unknown_arguments_are_reported_and_change_nothing() {
        let (args, warnings) = parse("granule=8k loglevel= console=ttyAMA0 exit loglevel=9 ktest");
        assert_eq!(args.granule, Granule::K4);
        assert_eq!(args.log_level, LogLevel::Info);
        assert_eq!(args.exit, None);
        assert_eq!(args.ktest, Some(""));
        assert_eq!(
            warnings,
            [
                BootArgWarning::BadValue { key: "granule", value: "8k", expected: "4k, 16k or 64k" },
                BootArgWarning::BadValue {
                    key: "loglevel",
                    value: "",
                    expected: "error, warn, info, debug, trace or 1..5"
                },
                BootArgWarning::Unknown { arg: "console=ttyAMA0" },
                BootArgWarning::BadValue { key: "exit", value: "", expected: "a value after `=`" },
                BootArgWarning::BadValue {
                    key: "loglevel",
                    value: "9",
                    expected: "error, warn, info, debug, trace or 1..5"
                },
            ]
        );
        assert_eq!(warnings[2].to_string(), "unknown boot argument `console=ttyAMA0` ignored");
    }

    #[test]
    fn memory_service_arguments() {
        assert_eq!(parse("").0.memsvc, Memsvc::Default);
        let (args, warnings) = parse("memsvc=512M memsvc_quota=64M");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!((args.memsvc, args.memsvc_quota), (Memsvc::Pool(512 << 20), Some(64 << 20)));
        assert_eq!(parse("memsvc=off").0.memsvc, Memsvc::Off);
        let (args, warnings) = parse("memsvc=lots memsvc_quota=0 memsvc");
        assert_eq!((args.memsvc, args.memsvc_quota), (Memsvc::Default, None));
        assert_eq!(warnings.len(), 3);
    }

    #[test]
    fn lifetimes_are_a_bounded_count() {
        assert_eq!(parse("lifetimes=500").0.lifetimes, 500);
        assert_eq!(parse("").0.lifetimes, DEFAULT_LIFETIMES);
        for bad in
            ["lifetimes=0", "lifetimes=1000001", "lifetimes=-1", "lifetimes=1e4", "lifetimes=99999999999999999999"]
        {
            let (args, warnings) = parse(bad);
            assert_eq!(args.lifetimes, DEFAULT_LIFETIMES, "{bad}");
            assert_eq!(warnings.len(), 1, "{bad}");
        }
    }

    #[test]
    fn hugepage_pools_parse_and_bad_entries_are_skipped() {
        let (args, warnings) = parse("hugepages=1G:60,2M:512,banana,3X:1,16g:0,64K:4");
        assert_eq!(args.hugepages, vec![(1 << 30, 60), (2 << 20, 512), (64 << 10, 4)]);
        let bad: Vec<&str> = warnings
            .iter()
            .map(|w| match w {
                BootArgWarning::BadValue { value, .. } => *value,
                BootArgWarning::Unknown { arg } => arg,
            })
            .collect();
        assert_eq!(bad, ["banana", "3X:1", "16g:0"]);
        assert_eq!(parse_size("16G"), Some(16 << 30));
        assert_eq!(parse_size("99999999999999999999G"), None);
    }

    #[test]
    fn later_arguments_override_earlier() {
        let (args, _) = parse("granule=16k granule=64k");
        assert_eq!(args.granule, Granule::K64);
    }
}
