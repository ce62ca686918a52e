//! Which board folio is running on, and how that is decided.
//!
//! Owns: identifying the board from the DTB's root `compatible`, or, when
//! there is no DTB, from where the firmware loaded the image. The facts about
//! each board that folio needs without a DTB live beside it ([`qemu_virt`],
//! [`rpi4`]); their hardware code (the Pi's GPIO) is the kernel's.

use core::fmt;

pub mod qemu_virt;
pub mod rpi4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Board {
    QemuVirt,
    RaspberryPi4,
    /// A DTB we could read but whose board we do not know: everything comes
    /// from the DTB and nothing board-specific is done.
    Generic,
}

impl Board {
    /// From the root node's `compatible` strings.
    pub fn from_compatible<'a>(compatible: impl IntoIterator<Item = &'a str>) -> Board {
        for c in compatible {
            match c {
                "linux,dummy-virt" => return Board::QemuVirt,
                "raspberrypi,4-model-b" | "brcm,bcm2711" => return Board::RaspberryPi4,
                _ => {}
            }
        }
        Board::Generic
    }

    /// Without a DTB: the Raspberry Pi 4 has RAM from 0 and loads the image
    /// at 0x80000; QEMU virt has RAM from 1 GiB.
    pub fn from_load_address(physical: u64) -> Board {
        if physical < crate::board::qemu_virt::RAM_BASE { Board::RaspberryPi4 } else { Board::QemuVirt }
    }
}

impl Board {
    /// A short name for result lines: `qemu-virt`, `rpi4`, `generic`.
    pub fn slug(&self) -> &'static str {
        match self {
            Board::QemuVirt => "qemu-virt",
            Board::RaspberryPi4 => "rpi4",
            Board::Generic => "generic",
        }
    }
}

impl fmt::Display for Board {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Board::QemuVirt => "QEMU virt",
            Board::RaspberryPi4 => "Raspberry Pi 4",
            Board::Generic => "generic (from the DTB)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boards_are_recognised() {
        assert_eq!(Board::from_compatible(["linux,dummy-virt"]), Board::QemuVirt);
        assert_eq!(Board::from_compatible(["raspberrypi,4-model-b", "brcm,bcm2711"]), Board::RaspberryPi4);
        assert_eq!(Board::from_compatible(["acme,board"]), Board::Generic);
        assert_eq!(Board::from_load_address(0x8_0000), Board::RaspberryPi4);
        assert_eq!(Board::from_load_address(0x4008_0000), Board::QemuVirt);
    }
}
