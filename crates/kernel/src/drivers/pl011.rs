//! ARM PrimeCell PL011 UART, polled, transmit only (the console).
//!
//! Owns: the UART's registers. Must never: block forever on a UART that
//! is not there (the transmit wait is bounded), or be given an address that
//! is not a mapped PL011 (see [`Pl011::new`]).

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_bitfields;
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

register_bitfields! {
    u32,
    FR [
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) [],
        /// UART busy transmitting.
        BUSY OFFSET(3) NUMBITS(1) []
    ],
    LCR_H [
        WLEN OFFSET(5) NUMBITS(2) [EightBit = 0b11],
        FEN OFFSET(4) NUMBITS(1) []
    ],
    CR [
        RXE OFFSET(9) NUMBITS(1) [],
        TXE OFFSET(8) NUMBITS(1) [],
        UARTEN OFFSET(0) NUMBITS(1) []
    ]
}

register_structs! {
    pub Pl011Registers {
        (0x00 => dr: ReadWrite<u32>),
        (0x04 => _reserved0),
        (0x18 => fr: ReadOnly<u32, FR::Register>),
        (0x1c => _reserved1),
        (0x24 => ibrd: WriteOnly<u32>),
        (0x28 => fbrd: WriteOnly<u32>),
        (0x2c => lcr_h: WriteOnly<u32, LCR_H::Register>),
        (0x30 => cr: ReadWrite<u32, CR::Register>),
        (0x34 => _reserved2),
        (0x44 => icr: WriteOnly<u32>),
        (0x48 => @END),
    }
}

/// Spins allowed while waiting for FIFO space before a character is dropped.
const TX_WAIT_LIMIT: u32 = 1 << 20;

pub struct Pl011 {
    registers: &'static Pl011Registers,
}

// SAFETY: a `Pl011` is the only user of its registers (see `new`), and MMIO
// accesses are not tied to the core that makes them, so it may move between
// cores; the console keeps it behind a lock.
unsafe impl Send for Pl011 {}

impl Pl011 {
    /// # Safety
    /// `base` must be the virtual address of a PL011's registers, mapped as
    /// device memory for the rest of the kernel's life, and no other code may
    /// program this UART.
    pub unsafe fn new(base: usize) -> Pl011 {
        // SAFETY: the caller guarantees `base` maps a PL011 register block.
        Pl011 { registers: unsafe { &*(base as *const Pl011Registers) } }
    }

    /// Enables the UART for 8N1 with FIFOs. When the reference clock is known
    /// the divisor is set for `baud`; otherwise the firmware's setting stays.
    pub fn init(&mut self, clock_hz: Option<u32>, baud: u32) {
        self.flush();
        self.registers.cr.set(0);
        self.registers.icr.set(0x7ff);
        if let Some(clock) = clock_hz {
            // Divisor = clock / (16 * baud), in 1/64ths for the fraction.
            let divisor_x64 = (clock as u64 * 4 + baud as u64 / 2) / baud as u64;
            self.registers.ibrd.set((divisor_x64 >> 6) as u32);
            self.registers.fbrd.set((divisor_x64 & 0x3f) as u32);
        }
        self.registers.lcr_h.write(LCR_H::WLEN::EightBit + LCR_H::FEN::SET);
        self.registers.cr.write(CR::UARTEN::SET + CR::TXE::SET + CR::RXE::SET);
    }

    pub fn write_byte(&mut self, byte: u8) {
        let mut spins = 0;
        while self.registers.fr.is_set(FR::TXFF) && spins < TX_WAIT_LIMIT {
            spins += 1;
            core::hint::spin_loop();
        }
        self.registers.dr.set(byte as u32);
    }

    /// Waits until everything written has left the UART.
    pub fn flush(&mut self) {
        let mut spins = 0;
        while self.registers.fr.is_set(FR::BUSY) && spins < TX_WAIT_LIMIT {
            spins += 1;
            core::hint::spin_loop();
        }
    }
}

impl core::fmt::Write for Pl011 {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for byte in s.bytes() {
            if byte == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(byte);
        }
        Ok(())
    }
}
