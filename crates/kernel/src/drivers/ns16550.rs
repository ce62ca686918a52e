//! A 16550/8250 UART, polled, transmit only (the console where the DTB's
//! `stdout-path` names one: kvmtool, Firecracker, crosvm, and boards such
//! as MediaTek's).
//!
//! Owns: the UART's registers. Must never: block forever on a UART that is
//! not there (the transmit wait is bounded), access a register other than
//! with one plain load or store of the width the DTB gives (`reg-io-width`,
//! 1 or 4 bytes), or change the line settings the firmware or hypervisor
//! chose (folio does not know the UART's clock).

/// Register indices (each at `index << reg_shift`).
const THR: u64 = 0;
const IER: u64 = 1;
const LSR: u64 = 5;
/// LSR: the transmit holding register is empty.
const LSR_THRE: u32 = 1 << 5;

/// Spins allowed while waiting for the transmitter before a byte is dropped.
const TX_WAIT_LIMIT: u32 = 1 << 20;

pub struct Ns16550 {
    base: usize,
    reg_shift: u8,
    reg_io_width: u8,
}

// SAFETY: an `Ns16550` is the only user of its registers (see `new`), and
// MMIO accesses are not tied to the core that makes them; the console keeps
// it behind a lock.
unsafe impl Send for Ns16550 {}

impl Ns16550 {
    /// # Safety
    /// `base` must be the virtual address of a 16550's registers (register
    /// `i` at `i << reg_shift`, `reg_io_width` bytes wide: 1 or 4), mapped as
    /// device memory for the rest of the kernel's life, and no other code
    /// may program this UART.
    pub unsafe fn new(base: usize, reg_shift: u8, reg_io_width: u8) -> Ns16550 {
        Ns16550 { base, reg_shift, reg_io_width }
    }

    fn read(&self, index: u64) -> u32 {
        let at = self.base + ((index as usize) << self.reg_shift);
        // SAFETY: `at` is a register of the mapped block (`new`'s contract),
        // read with one access of the block's own width.
        unsafe {
            if self.reg_io_width == 4 {
                core::ptr::read_volatile(at as *const u32)
            } else {
                core::ptr::read_volatile(at as *const u8) as u32
            }
        }
    }

    fn write(&self, index: u64, value: u32) {
        let at = self.base + ((index as usize) << self.reg_shift);
        // SAFETY: as for `read`.
        unsafe {
            if self.reg_io_width == 4 {
                core::ptr::write_volatile(at as *mut u32, value)
            } else {
                core::ptr::write_volatile(at as *mut u8, value as u8)
            }
        }
    }

    /// Turns the UART's interrupts off (folio polls); the line settings stay
    /// as the firmware or hypervisor set them.
    pub fn init(&mut self) {
        self.write(IER, 0);
    }

    pub fn write_byte(&mut self, byte: u8) {
        let mut spins = 0;
        while self.read(LSR) & LSR_THRE == 0 && spins < TX_WAIT_LIMIT {
            spins += 1;
            core::hint::spin_loop();
        }
        self.write(THR, byte as u32);
    }
}
