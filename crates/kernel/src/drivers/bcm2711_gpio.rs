//! The BCM2711 (Raspberry Pi 4) GPIO block: only what routes the PL011 to
//! the header pins.
//!
//! Owns: the function-select and pull registers of GPIO14/15.
//! Must never: touch any other pin (the firmware set them up).

use tock_registers::interfaces::ReadWriteable;
use tock_registers::register_bitfields;
use tock_registers::register_structs;
use tock_registers::registers::ReadWrite;

register_bitfields! {
    u32,
    GPFSEL1 [
        /// Function of GPIO15 (RXD0 in ALT0).
        FSEL15 OFFSET(15) NUMBITS(3) [Input = 0b000, Alt0 = 0b100],
        /// Function of GPIO14 (TXD0 in ALT0).
        FSEL14 OFFSET(12) NUMBITS(3) [Input = 0b000, Alt0 = 0b100]
    ],
    GPIO_PUP_PDN_CNTRL_REG0 [
        /// Pull of GPIO15: 0 none, 1 up, 2 down.
        PULL15 OFFSET(30) NUMBITS(2) [None = 0, Up = 1],
        PULL14 OFFSET(28) NUMBITS(2) [None = 0, Up = 1]
    ]
}

register_structs! {
    pub GpioRegisters {
        (0x00 => _gpfsel0),
        (0x04 => gpfsel1: ReadWrite<u32, GPFSEL1::Register>),
        (0x08 => _reserved),
        (0xe4 => pup_pdn0: ReadWrite<u32, GPIO_PUP_PDN_CNTRL_REG0::Register>),
        (0xe8 => @END),
    }
}

/// Routes the PL011 to header pins 8 and 10 (GPIO14/15 in ALT0); on the real
/// board they are otherwise wired to Bluetooth.
///
/// # Safety
/// `gpio_base` must be the mapped virtual address of the BCM2711 GPIO block.
pub unsafe fn route_pl011_to_header(gpio_base: usize) {
    // SAFETY: the caller guarantees the mapping.
    let gpio = unsafe { &*(gpio_base as *const GpioRegisters) };
    gpio.gpfsel1.modify(GPFSEL1::FSEL14::Alt0 + GPFSEL1::FSEL15::Alt0);
    gpio.pup_pdn0.modify(GPIO_PUP_PDN_CNTRL_REG0::PULL14::None + GPIO_PUP_PDN_CNTRL_REG0::PULL15::Up);
}
