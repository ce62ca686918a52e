//! Structured result lines: what tests (and people) read off the console.
//!
//! A result line is `result NAME pass|fail [KEY=VALUE]...`: a name (dotted
//! for a family, e.g. `ktest.frames_round_trip_exactly`), whether it passed,
//! and figures. A value that is empty or holds a space, a quote or a
//! backslash is written in double quotes with `\"` and `\\` escaped. Lines
//! that do not start with `result ` are prose for people, and no test reads
//! them. The kernel prints these lines with its console, EL0 programs with
//! theirs (`folio_rt::result!`); both format values with [`Value`], so the
//! two sides cannot drift apart.

use core::fmt;

/// What starts every result line.
pub const PREFIX: &str = "result ";

/// A value of a result line: written bare, or quoted where it must be.
pub struct Value<T: fmt::Display>(pub T);

/// Counts what a value writes and whether it needs quotes, without a heap.
struct Probe {
    len: usize,
    needs_quotes: bool,
}

impl fmt::Write for Probe {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.len += s.len();
        self.needs_quotes |= s.bytes().any(|b| b == b' ' || b == b'"' || b == b'\\' || b == b'=');
        Ok(())
    }
}

/// Writes through to a formatter, escaping quotes and backslashes.
struct Escaper<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl fmt::Write for Escaper<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for part in s.split_inclusive(['"', '\\']) {
            match part.strip_suffix(['"', '\\']) {
                Some(head) => {
                    self.0.write_str(head)?;
                    self.0.write_str("\\")?;
                    self.0.write_str(&part[head.len()..])?;
                }
                None => self.0.write_str(part)?,
            }
        }
        Ok(())
    }
}

impl<T: fmt::Display> fmt::Display for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut probe = Probe { len: 0, needs_quotes: false };
        fmt::write(&mut probe, format_args!("{}", self.0))?;
        if probe.len > 0 && !probe.needs_quotes {
            return write!(f, "{}", self.0);
        }
        f.write_str("\"")?;
        fmt::write(&mut Escaper(f), format_args!("{}", self.0))?;
        f.write_str("\"")
    }
}

/// The ` KEY=VALUE` pairs of a line, each value written as a [`Value`].
pub struct Fields<'a>(pub &'a [(&'a str, &'a dyn fmt::Display)]);

impl fmt::Display for Fields<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (key, value) in self.0 {
            write!(f, " {key}={}", Value(value))?;
        }
        Ok(())
    }
}

/// An address or mask, written `0x...`.
pub struct Hex(pub u64);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// `pass` or `fail`.
pub fn verdict(passed: bool) -> &'static str {
    if passed { "pass" } else { "fail" }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::format;

    use super::*;

    #[test]
    fn values_are_bare_or_quoted_and_escaped() {
        assert_eq!(format!("{}", Value(42)), "42");
        assert_eq!(format!("{}", Value("0x40000000")), "0x40000000");
        assert_eq!(format!("{}", Value("")), "\"\"");
        assert_eq!(format!("{}", Value("1 x L1 block")), "\"1 x L1 block\"");
        assert_eq!(format!("{}", Value("say \"hi\" \\ bye")), "\"say \\\"hi\\\" \\\\ bye\"");
        assert_eq!(format!("{}", Value("a=b")), "\"a=b\"");
    }

    #[test]
    fn fields_follow_the_name() {
        let line = format!("{PREFIX}boot {}{}", verdict(true), Fields(&[("board", &"qemu-virt"), ("entry_el", &1)]));
        assert_eq!(line, "result boot pass board=qemu-virt entry_el=1");
        assert_eq!(format!("{}", Fields(&[])), "");
    }
}
