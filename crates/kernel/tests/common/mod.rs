//! What both QEMU test suites (`qemu.rs`, `kvm.rs`) share: where the image
//! is, running QEMU with a timeout while collecting its console, and
//! reading folio's structured result lines (`folio_abi::report`).
#![allow(dead_code)] // each suite uses part of it

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The kernel image: `FOLIO_IMAGE`, else `make image`'s.
pub fn image() -> PathBuf {
    let path = std::env::var_os("FOLIO_IMAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/folio.img"));
    assert!(path.exists(), "no kernel image at {}: run `make test`, which builds it first", path.display());
    path
}

/// What a QEMU run printed and how it ended.
pub struct Run {
    pub output: String,
    /// QEMU's exit status; `None` when the harness ended it.
    pub status: Option<i32>,
    /// QEMU's peak resident memory (VmHWM), sampled as each line arrives.
    pub peak_rss_kib: u64,
}

/// VmHWM of a live process, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `cmd` (QEMU) with its console on stdout, collecting it; with
/// `stop_at`, ends it as soon as a line contains that text. A run that
/// does not finish within `timeout` is killed and the test fails.
pub fn run_until(mut cmd: Command, timeout: Duration, stop_at: Option<&str>) -> Run {
    let mut child: Child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("qemu-system-aarch64 runs (make test installs it)");
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + timeout;
    let mut output = String::new();
    let mut peak = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                peak = peak.max(peak_rss_kib(child.id()).unwrap_or(0));
                let line = line.trim_end_matches('\r');
                output.push_str(line);
                output.push('\n');
                if stop_at.is_some_and(|s| line.contains(s)) {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Run { output, status: None, peak_rss_kib: peak };
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("QEMU did not finish within {timeout:?}; output so far:\n{output}");
            }
        }
    }
    let status = child.wait().expect("wait for QEMU").code();
    Run { output, status, peak_rss_kib: peak }
}

/// One structured result line (`folio_abi::report`):
/// `result NAME pass|fail KEY=VALUE...`.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub name: String,
    pub pass: bool,
    pub fields: Vec<(String, String)>,
}

impl Line {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn num(&self, key: &str) -> u64 {
        let v = self.get(key).unwrap_or_else(|| panic!("no `{key}` in {self:?}"));
        let parsed = match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => v.parse(),
        };
        parsed.unwrap_or_else(|_| panic!("`{key}={v}` is not a number in {self:?}"))
    }

    /// Every expected field is there with that value (a value ending in
    /// `*` matches as a prefix).
    pub fn matches(&self, expected: &[(&str, &str)]) -> bool {
        expected.iter().all(|(k, want)| match (self.get(k), want.strip_suffix('*')) {
            (Some(v), Some(prefix)) => v.starts_with(prefix),
            (Some(v), None) => v == *want,
            (None, _) => false,
        })
    }
}

/// Parses a result line; `None` for any other line (prose).
pub fn parse_line(line: &str) -> Option<Line> {
    let rest = line.strip_prefix(folio_abi::report::PREFIX)?;
    let (name, rest) = rest.split_once(' ')?;
    let (verdict, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let pass = match verdict {
        "pass" => true,
        "fail" => false,
        _ => return None,
    };
    let mut fields = Vec::new();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next()? {
                    (_, '\\') => value.push(chars.next()?.1),
                    (i, '"') => break i + 1,
                    (_, c) => value.push(c),
                }
            };
            (value, &quoted[end..])
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        fields.push((key.to_string(), value));
        rest = after.strip_prefix(' ').unwrap_or(after);
    }
    Some(Line { name: name.to_string(), pass, fields })
}
