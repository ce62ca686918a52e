//! Raspberry Pi 4 (BCM2711): defaults when there is no DTB, and the ATAGS
//! QEMU gives instead of one. (The GPIO set-up that routes the PL011 to the
//! header pins is a kernel driver: `crates/kernel/src/drivers/bcm2711_gpio.rs`.)
//!
//! The firmware always passes a DTB on the real board. QEMU's `raspi4b`
//! without `-dtb` passes x0 = 0x100, an ATAGS list (core, memory, command
//! line), not a DTB. Then folio uses the defaults below, takes the memory
//! size and command line from the ATAGS when they are there, and says so.
//!
//! Defaults (from the BCM2711 DTB in `fixtures/bcm2711-rpi-4-b.dtb`,
//! translated from bus to CPU addresses, low-peripheral mode):
//!
//! | what | value |
//! |---|---|
//! | RAM | one bank [0, 0x3C00_0000) (960 MiB, what QEMU `raspi4b` reports) |
//! | reserved | [0, 0x1000): the spin table the firmware parks secondary cores in |
//! | PL011 (console) | 0xFE20_1000, 48 MHz reference clock, 115200 baud |
//! | GPIO | 0xFE20_0000 |
//! | GIC-400 | distributor 0xFF84_1000, CPU interface 0xFF84_2000 |
//! | timer | virtual timer PPI 11 (INTID 27) |
//! | CPUs | 4, spin table, release addresses 0xd8, 0xe0, 0xe8, 0xf0 |
//! | PSCI | none |

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use crate::dtb::{CpuInfo, EnableMethod, GicInfo, Machine, MemoryBank, ReservedRegion, Uart, UartKind};
use crate::mm::PhysRange;

pub const RAM_DEFAULT_END: u64 = 0x3C00_0000;
pub const PL011_BASE: u64 = 0xFE20_1000;
pub const PL011_CLOCK_HZ: u32 = 48_000_000;
pub const GPIO_BASE: u64 = 0xFE20_0000;
pub const GIC_DISTRIBUTOR: u64 = 0xFF84_1000;
pub const GIC_CPU_INTERFACE: u64 = 0xFF84_2000;
pub const VIRTUAL_TIMER_INTID: u32 = 27;
pub const SPIN_TABLE_RELEASE: [u64; 4] = [0xd8, 0xe0, 0xe8, 0xf0];
/// Where the firmware (and QEMU) puts ATAGS when there is no DTB.
pub const ATAGS_ADDRESS: u64 = 0x100;

const ATAG_NONE: u32 = 0;
const ATAG_CORE: u32 = 0x5441_0001;
const ATAG_MEM: u32 = 0x5441_0002;
const ATAG_CMDLINE: u32 = 0x5441_0009;

/// What an ATAGS list said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Atags {
    pub memory: Vec<PhysRange>,
    pub cmdline: Option<String>,
}

/// Parses an ATAGS list; `None` when `bytes` does not start with ATAG_CORE.
/// Stops at ATAG_NONE, at a malformed tag, or at the end of `bytes`.
pub fn parse_atags(bytes: &[u8]) -> Option<Atags> {
    let word = |i: usize| bytes.get(i * 4..i * 4 + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    if word(1)? != ATAG_CORE {
        return None;
    }
    let mut atags = Atags::default();
    let mut at = 0usize;
    while let (Some(size), Some(tag)) = (word(at), word(at + 1)) {
        let size = size as usize;
        if tag == ATAG_NONE || size < 2 || (at + size) * 4 > bytes.len() {
            break;
        }
        match tag {
            ATAG_MEM if size >= 4 => {
                let (Some(len), Some(start)) = (word(at + 2), word(at + 3)) else { break };
                if let Some(r) = PhysRange::from_start_size(start as u64, len as u64) {
                    atags.memory.push(r);
                }
            }
            ATAG_CMDLINE => {
                let text = &bytes[(at + 2) * 4..(at + size) * 4];
                let text = text.split(|&b| b == 0).next().unwrap_or(&[]);
                atags.cmdline = core::str::from_utf8(text).ok().map(ToString::to_string);
            }
            _ => {}
        }
        at += size;
    }
    Some(atags)
}

/// The machine description used when there is no valid DTB, refined by
/// ATAGS where they are present.
pub fn default_machine(atags: Option<&Atags>) -> Machine {
    let range = PhysRange::saturating;
    let memory = match atags {
        Some(a) if !a.memory.is_empty() => {
            a.memory.iter().map(|r| MemoryBank { range: *r, node: "ATAG_MEM".into() }).collect()
        }
        _ => vec![MemoryBank { range: range(0, RAM_DEFAULT_END), node: "rpi4 default".into() }],
    };
    Machine {
        model: "Raspberry Pi 4 (defaults, no DTB)".into(),
        compatible: vec!["raspberrypi,4-model-b".into(), "brcm,bcm2711".into()],
        memory,
        reserved: vec![ReservedRegion { range: range(0, 0x1000), source: "spin table (rpi4 default)".into() }],
        bootargs: atags.and_then(|a| a.cmdline.clone()),
        stdout_path: None,
        uart: Some(Uart { range: range(PL011_BASE, 0x200), kind: UartKind::Pl011 }),
        gic: Some(GicInfo::V2 {
            distributor: range(GIC_DISTRIBUTOR, 0x1000),
            cpu_interface: range(GIC_CPU_INTERFACE, 0x2000),
        }),
        virtual_timer_intid: Some(VIRTUAL_TIMER_INTID),
        psci: None,
        cpus: (0..4u64)
            .map(|i| CpuInfo {
                mpidr: i,
                enable_method: Some(EnableMethod::SpinTable { release_addr: SPIN_TABLE_RELEASE[i as usize] }),
            })
            .collect(),
        warnings: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn atags_memory_and_command_line() {
        let mut bytes = tag(&[5, ATAG_CORE, 0, 0, 0, 4, ATAG_MEM, 0x3c00_0000, 0]);
        let cmd = b"exit=semihosting ktest\0\0";
        bytes.extend(tag(&[2 + cmd.len() as u32 / 4, ATAG_CMDLINE]));
        bytes.extend_from_slice(cmd);
        bytes.extend(tag(&[0, ATAG_NONE]));
        let atags = parse_atags(&bytes).unwrap();
        assert_eq!(atags.memory, vec![PhysRange::from_start_size(0, 0x3c00_0000).unwrap()]);
        assert_eq!(atags.cmdline.as_deref(), Some("exit=semihosting ktest"));
        let machine = default_machine(Some(&atags));
        assert_eq!(machine.bootargs.as_deref(), Some("exit=semihosting ktest"));
        assert_eq!(machine.memory[0].node, "ATAG_MEM");
    }

    #[test]
    fn not_atags_and_truncated_atags() {
        assert_eq!(parse_atags(&[0u8; 64]), None);
        assert_eq!(parse_atags(&[1, 2]), None);
        // A tag claiming more words than there are bytes ends the list.
        let atags = parse_atags(&tag(&[2, ATAG_CORE, 100, ATAG_MEM])).unwrap();
        assert!(atags.memory.is_empty());
        let defaults = default_machine(None);
        assert_eq!(defaults.memory[0].range.size(), 960 << 20);
        assert_eq!(defaults.cpus.len(), 4);
    }
}
