//! The kernel console and the `log` backend that writes to it.
//!
//! Owns: the one console UART once the boot code hands it over, line
//! formatting (`[seconds.micros] LEVEL message`), and the log level.
//! Must never: lose a fault or panic report because the console lock is held:
//! [`emergency_print`] writes even then.

use core::fmt::{self, Write};

use crate::drivers::pl011::Pl011;
use crate::sync::SpinLock;

/// The console's UART, of either kind folio drives.
pub enum Uart {
    Pl011(Pl011),
    #[cfg(target_os = "none")]
    Ns16550(crate::drivers::ns16550::Ns16550),
}

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        match self {
            Uart::Pl011(u) => u.write_str(s),
            #[cfg(target_os = "none")]
            Uart::Ns16550(u) => {
                for byte in s.bytes() {
                    if byte == b'\n' {
                        u.write_byte(b'\r');
                    }
                    u.write_byte(byte);
                }
                Ok(())
            }
        }
    }
}

static CONSOLE: SpinLock<Option<Uart>> = SpinLock::new(None);

/// Reads (ticks, ticks per second) of the clock used for timestamps.
pub type Clock = fn() -> (u64, u64);

static LOGGER: KernelLogger = KernelLogger;
static CLOCK: SpinLock<Option<Clock>> = SpinLock::new(None);

/// Makes a console where there is none yet (the boot code's guess: the
/// board's own UART), so a fault or panic before the console exists, or on
/// a machine whose DTB names none, is still reported.
static FALLBACK: SpinLock<Option<MakeConsole>> = SpinLock::new(None);

/// Builds a console UART, if it can.
pub type MakeConsole = fn() -> Option<Uart>;

/// Makes `uart` the console.
pub fn set_console(uart: Uart) {
    *CONSOLE.lock() = Some(uart);
}

/// Sets how [`emergency_print`] makes a console when there is none.
pub fn set_fallback(make: MakeConsole) {
    *FALLBACK.lock() = Some(make);
}

/// Whether a console exists (a report printed now reaches someone).
pub fn has_console() -> bool {
    CONSOLE.try_lock().is_none_or(|c| c.is_some())
}

pub fn print(args: fmt::Arguments<'_>) {
    if let Some(uart) = CONSOLE.lock().as_mut() {
        let _ = uart.write_fmt(args);
    }
}

/// Prints even when the console lock is held (by the code that faulted).
pub fn emergency_print(args: fmt::Arguments<'_>) {
    match CONSOLE.try_lock() {
        Some(mut guard) => {
            if guard.is_none() {
                let make = FALLBACK.try_lock().and_then(|f| *f);
                *guard = make.and_then(|make| make());
            }
            if let Some(uart) = guard.as_mut() {
                let _ = uart.write_fmt(args);
            }
        }
        None => {
            // The holder was interrupted by this fault on this core and will
            // not run again; writing beside it is the lesser evil.
            // SAFETY: the only other user of the cell is the interrupted
            // holder, which cannot run while this core is in the handler, and
            // the UART inside was built under its `new`'s contract.
            let uart = unsafe { &mut *CONSOLE.as_ptr() };
            if let Some(uart) = uart.as_mut() {
                let _ = uart.write_fmt(args);
            }
        }
    }
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::console::print(format_args!($($arg)*)));
}

#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::console::print(format_args!("{}\n", format_args!($($arg)*))));
}

/// Prints a structured result line (`folio_abi::report`):
/// `result!(NAME, PASSED, key = value, ...)` prints
/// `result NAME pass|fail key=value ...` as one console write.
#[macro_export]
macro_rules! result {
    ($name:expr, $passed:expr $(, $key:ident = $value:expr)* $(,)?) => {
        $crate::console::print(format_args!(
            "{}{} {}{}\n",
            folio_abi::report::PREFIX,
            $name,
            folio_abi::report::verdict($passed),
            folio_abi::report::Fields(&[$((stringify!($key), &$value as &dyn core::fmt::Display)),*])
        ))
    };
}

/// Installs the logger with a level and a clock for timestamps.
pub fn init_logger(level: log::LevelFilter, clock: Clock) {
    *CLOCK.lock() = Some(clock);
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// `seconds.microseconds` since the counter started.
pub struct Timestamp {
    pub ticks: u64,
    pub frequency: u64,
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.frequency == 0 {
            return f.write_str("    ?.??????");
        }
        let seconds = self.ticks / self.frequency;
        let micros = (self.ticks % self.frequency) as u128 * 1_000_000 / self.frequency as u128;
        write!(f, "{seconds:5}.{micros:06}")
    }
}

struct KernelLogger;

impl log::Log for KernelLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let clock = *CLOCK.lock();
        let (ticks, frequency) = clock.map_or((0, 0), |c| c());
        print(format_args!("[{}] {:5} {}\n", Timestamp { ticks, frequency }, record.level(), record.args()));
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_use_the_counter_frequency() {
        assert_eq!(Timestamp { ticks: 62_500_000 * 3 + 31_250_000, frequency: 62_500_000 }.to_string(), "    3.500000");
        assert_eq!(Timestamp { ticks: 54, frequency: 54_000_000 }.to_string(), "    0.000001");
        assert_eq!(Timestamp { ticks: 5, frequency: 0 }.to_string(), "    ?.??????");
    }
}
