//! Discovery on the real Raspberry Pi 4 DTB and on corrupted copies of it.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::validate;
use super::*;
use crate::testing::fdt::{Node, cells};

const RPI4_DTB: &[u8] = include_bytes!("../../../../fixtures/bcm2711-rpi-4-b.dtb");

/// The fixture with its memory node filled in the way the firmware (or QEMU) does.
fn rpi4_with_memory(reg: &[u32]) -> (Vec<(u64, u64)>, Node) {
    let (rsv, mut root) = Node::decode(RPI4_DTB);
    root.child("memory@0").set("reg", cells(reg));
    (rsv, root)
}

#[test]
fn the_real_rpi4_dtb_says_its_memory_is_not_filled_in() {
    assert_eq!(discover(RPI4_DTB), Err(DtbError::ZeroSizeBank { node: "/memory@0".into() }));
}

#[test]
fn rpi4_devices_are_found_at_cpu_addresses() {
    let (rsv, root) = rpi4_with_memory(&[0, 0, 0x3c00_0000]);
    let machine = discover(&root.encode(&rsv)).unwrap();
    assert_eq!(machine.memory.len(), 1);
    assert_eq!(machine.memory[0].range, PhysRange::from_start_size(0, 0x3c00_0000).unwrap());
    // /memreserve/ [0, 0x1000) is the spin table; nvram@0 is disabled and empty.
    assert_eq!(
        machine.reserved,
        vec![ReservedRegion { range: PhysRange::from_start_size(0, 0x1000).unwrap(), source: "/memreserve/".into() }]
    );
    // Bus address 0x7e201000 through /soc's ranges.
    assert_eq!(machine.uart.map(|u| (u.range.start(), u.kind)), Some((0xfe20_1000, UartKind::Pl011)));
    assert_eq!(
        machine.gic,
        Some(GicInfo::V2 {
            distributor: PhysRange::from_start_size(0xff84_1000, 0x1000).unwrap(),
            cpu_interface: PhysRange::from_start_size(0xff84_2000, 0x2000).unwrap(),
        })
    );
    assert_eq!(machine.virtual_timer_intid, Some(27));
    assert_eq!(machine.psci, None);
    assert_eq!(machine.cpus.len(), 4);
    assert_eq!(
        machine.cpus[2],
        CpuInfo { mpidr: 2, enable_method: Some(EnableMethod::SpinTable { release_addr: 0xe8 }) }
    );
    assert_eq!(machine.stdout_path.as_deref(), Some("serial1:115200n8"));
    assert!(machine.compatible.iter().any(|c| c == "raspberrypi,4-model-b"));
}

#[test]
fn several_banks_and_several_memory_nodes_are_all_read() {
    let (rsv, mut root) = rpi4_with_memory(&[0, 0, 0x3b40_0000, 0, 0x4000_0000, 0x4000_0000]);
    let mut second = root.child("memory@0").clone();
    second.name = "memory@100000000".into();
    second.set("reg", cells(&[1, 0, 0x8000_0000]));
    root.children.push(second);
    let machine = discover(&root.encode(&rsv)).unwrap();
    let banks: Vec<(u64, u64)> = machine.memory.iter().map(|b| (b.range.start(), b.range.size())).collect();
    assert_eq!(banks, vec![(0, 0x3b40_0000), (0x4000_0000, 0x4000_0000), (0x1_0000_0000, 0x8000_0000)]);
}

#[test]
fn truncated_blobs_are_refused() {
    for len in [0, 10, 39, 40, 1000, RPI4_DTB.len() - 1] {
        let err = discover(&RPI4_DTB[..len]).unwrap_err();
        assert!(matches!(err, DtbError::TooShort { .. } | DtbError::Truncated { .. }), "{len}: {err:?}");
    }
}

#[test]
fn bad_magic_is_refused() {
    let mut blob = RPI4_DTB.to_vec();
    blob[0] = 0;
    assert_eq!(discover(&blob), Err(DtbError::BadMagic { found: 0x000d_feed }));
    // What QEMU raspi4b passes without -dtb: ATAGS, not a DTB.
    assert!(matches!(discover(&[5, 0, 0, 0, 1, 0, 0x41, 0x54].repeat(8)), Err(DtbError::BadMagic { .. })));
}

fn range(start: u64, size: u64) -> PhysRange {
    PhysRange::from_start_size(start, size).unwrap()
}

/// The warnings about memory (the Pi's DTB also names a console folio does
/// not drive; see `the_console_follows_stdout_path_where_folio_has_a_driver`).
fn memory_warnings(machine: &Machine) -> Vec<DtbWarning> {
    machine.warnings.iter().filter(|w| !matches!(w, DtbWarning::ConsoleNotStdout { .. })).cloned().collect()
}

/// Overlapping banks are merged, as Linux does, with a warning.
#[test]
fn overlapping_banks_are_merged() {
    let (rsv, root) = rpi4_with_memory(&[0, 0, 0x3c00_0000, 0, 0x3000_0000, 0x1800_0000]);
    let machine = discover(&root.encode(&rsv)).unwrap();
    let banks: Vec<PhysRange> = machine.memory.iter().map(|b| b.range).collect();
    assert_eq!(banks, vec![range(0, 0x4800_0000)]);
    assert_eq!(
        memory_warnings(&machine),
        vec![DtbWarning::BanksMerged {
            first: range(0, 0x3c00_0000),
            second: range(0x3000_0000, 0x1800_0000),
            merged: range(0, 0x4800_0000)
        }]
    );
}

/// A reserved region wholly outside RAM is ignored and one partly outside
/// is clipped, each with a warning; one inside is kept as it is.
#[test]
fn reserved_regions_outside_ram_are_ignored_or_clipped() {
    let (_, root) = rpi4_with_memory(&[0, 0, 0x3c00_0000]);
    let rsv = [(0, 0x1000), (0x8000_0000, 0x1000), (0x3bff_f000, 0x2000)];
    let machine = discover(&root.encode(&rsv)).unwrap();
    let kept: Vec<PhysRange> = machine.reserved.iter().map(|r| r.range).collect();
    assert_eq!(kept, vec![range(0, 0x1000), range(0x3bff_f000, 0x1000)]);
    let source = String::from("/memreserve/");
    assert_eq!(
        memory_warnings(&machine),
        vec![
            DtbWarning::ReservedOutsideRam { region: range(0x8000_0000, 0x1000), source: source.clone() },
            DtbWarning::ReservedClipped {
                region: range(0x3bff_f000, 0x2000),
                kept: range(0x3bff_f000, 0x1000),
                source
            },
        ]
    );
}

#[test]
fn no_memory_node_is_refused() {
    let (rsv, mut root) = rpi4_with_memory(&[0, 0, 0x3c00_0000]);
    root.children.retain(|c| c.name != "memory@0");
    assert_eq!(discover(&root.encode(&rsv)), Err(DtbError::NoMemoryNode));
}

#[test]
fn corrupting_any_structure_word_never_panics() {
    // Every 4-byte word of the structure block set to each interesting value:
    // each result is a machine or a typed error, never a panic.
    let (rsv, root) = rpi4_with_memory(&[0, 0, 0x3c00_0000]);
    let good = root.encode(&rsv);
    let h = validate::parse_header(&good).unwrap();
    let mut refused = 0;
    // Every word once, with a value chosen by its position, keeps this fast.
    let values = [0u32, 1, 2, 3, 4, 9, 0xffff_ffff, 0x100, 0x7fff_ffff];
    for (i, word) in (h.off_struct..h.off_struct + h.size_struct).step_by(4).enumerate() {
        {
            let value = values[i % values.len()];
            let mut blob = good.clone();
            blob[word..word + 4].copy_from_slice(&value.to_be_bytes());
            refused += discover(&blob).is_err() as usize;
        }
    }
    assert!(refused > 0);
}

#[test]
fn header_offsets_outside_the_blob_are_refused() {
    for field in [2usize, 3, 4] {
        let mut blob = RPI4_DTB.to_vec();
        blob[field * 4..field * 4 + 4].copy_from_slice(&0x7fff_fff0u32.to_be_bytes());
        assert!(matches!(discover(&blob), Err(DtbError::BlockOutOfBounds { .. })), "field {field}");
    }
}

/// PSCI is found anywhere in the tree (TI's K3 boards keep it in
/// /firmware/psci), not only under the root.
#[test]
fn psci_is_found_below_the_root() {
    let (rsv, mut root) = rpi4_with_memory(&[0, 0, 0x3c00_0000]);
    let psci = Node {
        name: "psci".into(),
        props: vec![("compatible".into(), b"arm,psci-1.0\0".to_vec()), ("method".into(), b"smc\0".to_vec())],
        children: Vec::new(),
    };
    root.children.push(Node { name: "firmware".into(), props: Vec::new(), children: vec![psci] });
    assert_eq!(discover(&root.encode(&rsv)).unwrap().psci, Some(PsciConduit::Smc));
}

/// A GIC whose only compatible is Qualcomm's `qcom,msm-qgic2` is a GICv2.
#[test]
fn a_qcom_qgic2_is_a_gicv2() {
    let (rsv, mut root) = rpi4_with_memory(&[0, 0, 0x3c00_0000]);
    let gic = root.find(&|n| n.is_compatible("arm,gic-400")).expect("the fixture has a GIC-400");
    gic.set("compatible", b"qcom,msm-qgic2\0".to_vec());
    let machine = discover(&root.encode(&rsv)).unwrap();
    assert!(matches!(machine.gic, Some(GicInfo::V2 { .. })), "{:?}", machine.gic);
}

/// The Pi 4 fixture's timer node, and its GIC's phandle.
fn timer_and_gic(root: &mut Node) -> (&mut Node, u32) {
    let gic = root.find(&|n| n.is_compatible("arm,gic-400")).expect("the fixture's GIC");
    let phandle = gic.get("phandle").map(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
    let phandle = phandle.expect("the GIC has a phandle");
    gic.set("#interrupt-cells", cells(&[4]));
    let timer = root.find(&|n| n.is_compatible("arm,armv8-timer") || n.is_compatible("arm,armv7-timer"));
    (timer.expect("the fixture's timer"), phandle)
}

/// Interrupt specifiers are as wide as their controller's
/// `#interrupt-cells` says (4 on MediaTek, Rockchip, gs101): the timer's
/// third interrupt, PPI 11 with flags 1, is INTID 27 (a 3-cell reading
/// would take the flags for the type).
#[test]
fn timer_specifiers_follow_the_controllers_interrupt_cells() {
    let (rsv, mut root) = rpi4_with_memory(&[0, 0, 0x3c00_0000]);
    let (timer, _) = timer_and_gic(&mut root);
    timer.set("interrupts", cells(&[1, 13, 0xf08, 0, 1, 14, 0xf08, 0, 1, 11, 0xf08, 1, 1, 10, 0xf08, 0]));
    assert_eq!(discover(&root.encode(&rsv)).unwrap().virtual_timer_intid, Some(27));
}

/// `interrupts-extended` (Renesas): each interrupt names its controller.
#[test]
fn timer_interrupts_extended_are_read() {
    let (rsv, mut root) = rpi4_with_memory(&[0, 0, 0x3c00_0000]);
    let (timer, gic) = timer_and_gic(&mut root);
    timer.props.retain(|(k, _)| k != "interrupts");
    let mut words = Vec::new();
    for ppi in [13, 14, 11, 10] {
        words.extend([gic, 1, ppi, 0xf08, 0]);
    }
    timer.set("interrupts-extended", cells(&words));
    assert_eq!(discover(&root.encode(&rsv)).unwrap().virtual_timer_intid, Some(27));
}

/// Real boards' DTBs from Debian's arm64 kernel packages (6.1, and 6.12
/// from bookworm-backports for MediaTek and Exynos), in `fixtures/dtb`.
const BOARDS: [(&str, &[u8]); 6] = [
    ("fvp-base-revc", include_bytes!("../../../../fixtures/dtb/fvp-base-revc.dtb")),
    ("hi6220-hikey", include_bytes!("../../../../fixtures/dtb/hi6220-hikey.dtb")),
    ("k3-am654-base-board", include_bytes!("../../../../fixtures/dtb/k3-am654-base-board.dtb")),
    ("r8a774a1-beacon-rzg2m-kit", include_bytes!("../../../../fixtures/dtb/r8a774a1-beacon-rzg2m-kit.dtb")),
    ("exynosautov920-sadk", include_bytes!("../../../../fixtures/dtb/exynosautov920-sadk.dtb")),
    ("mt8183-evb", include_bytes!("../../../../fixtures/dtb/mt8183-evb.dtb")),
];

/// What each board's DTB must describe.
struct Expected {
    model: &'static str,
    banks: usize,
    ram: u64,
    gic: (u32, u64),
    cpus: usize,
    uart: Option<u64>,
    stdout: Option<&'static str>,
    warnings: usize,
}

fn expected(name: &str) -> Expected {
    match name {
        // A reserved VRAM region outside RAM is ignored with a warning.
        "fvp-base-revc" => Expected {
            model: "FVP Base RevC",
            banks: 2,
            ram: 4 << 30,
            gic: (3, 0x2f00_0000),
            cpus: 8,
            uart: Some(0x1c09_0000),
            stdout: None,
            warnings: 1,
        },
        // ramoops lies in a hole between banks: ignored with a warning.
        "hi6220-hikey" => Expected {
            model: "HiKey Development Board",
            banks: 6,
            ram: 0x3ddf_d000,
            gic: (2, 0xf680_1000),
            cpus: 8,
            uart: Some(0xf711_3000),
            stdout: Some("serial3:115200n8"),
            warnings: 1,
        },
        // PSCI under /firmware; the console is a TI 16550-like UART.
        "k3-am654-base-board" => Expected {
            model: "Texas Instruments AM654 Base Board",
            banks: 2,
            ram: 4 << 30,
            gic: (3, 0x0180_0000),
            cpus: 4,
            uart: None,
            stdout: Some("serial2:115200n8"),
            warnings: 0,
        },
        // The timer through interrupts-extended; a SCIF console.
        "r8a774a1-beacon-rzg2m-kit" => Expected {
            model: "Beacon EmbeddedWorks RZ/G2M Development Kit",
            banks: 2,
            ram: 0xf800_0000,
            gic: (2, 0xf101_0000),
            cpus: 6,
            uart: None,
            stdout: Some("serial0:115200n8"),
            warnings: 0,
        },
        // Two overlapping banks, merged with a warning.
        "exynosautov920-sadk" => Expected {
            model: "Samsung ExynosAutov920 SADK board",
            banks: 2,
            ram: 0x3_f000_0000,
            gic: (3, 0x1040_0000),
            cpus: 10,
            uart: None,
            stdout: Some("/soc@0/usi@108800c0/serial@10880000"),
            warnings: 1,
        },
        // A 4-cell GIC specifier for the timer; a 16550-like console.
        "mt8183-evb" => Expected {
            model: "MediaTek MT8183 evaluation board",
            banks: 1,
            ram: 2 << 30,
            gic: (3, 0x0c00_0000),
            cpus: 8,
            uart: Some(0x1100_2000),
            stdout: Some("serial0:921600n8"),
            warnings: 0,
        },
        _ => unreachable!("no expectations for {name}"),
    }
}

#[test]
fn real_boards_are_described_as_linux_sees_them() {
    for (name, blob) in BOARDS {
        let m = discover(blob).unwrap_or_else(|e| panic!("{name}: {e}"));
        let e = expected(name);
        assert_eq!(m.model, e.model, "{name}");
        assert_eq!(m.memory.len(), e.banks, "{name}: {:?}", m.memory);
        assert_eq!(m.memory.iter().map(|b| b.range.size()).sum::<u64>(), e.ram, "{name}");
        let gic = m.gic.map(|g| match g {
            GicInfo::V2 { distributor, .. } => (2, distributor.start()),
            GicInfo::V3 { distributor, .. } => (3, distributor.start()),
        });
        assert_eq!(gic, Some(e.gic), "{name}");
        // Every one: the virtual timer is PPI 11, PSCI through SMC.
        assert_eq!(m.virtual_timer_intid, Some(27), "{name}");
        assert_eq!(m.psci, Some(PsciConduit::Smc), "{name}");
        assert_eq!(m.cpus.len(), e.cpus, "{name}");
        assert!(m.cpus.iter().all(|c| c.enable_method == Some(EnableMethod::Psci)), "{name}: {:?}", m.cpus);
        assert_eq!(m.uart.map(|u| u.range.start()), e.uart, "{name}");
        assert_eq!(m.stdout_path.as_deref(), e.stdout, "{name}");
        assert_eq!(m.warnings.len(), e.warnings, "{name}: {:?}", m.warnings);
    }
}

/// Seeded mutations of every fixture (the Pi 4's and the boards'): byte
/// flips, words set to edge values, truncations, copied and dropped spans,
/// header fields. Each result is a machine or a typed error, never a panic;
/// discovery is linear in the blob, so no mutation can make it hang (each
/// call is also timed, generously, to catch one that does).
#[test]
fn mutated_real_dtbs_give_a_machine_or_a_typed_error() {
    use crate::testing::Rng;
    const PER_FIXTURE: usize = 1500;
    let fixtures: Vec<&[u8]> = core::iter::once(RPI4_DTB).chain(BOARDS.iter().map(|b| b.1)).collect();
    let mut rng = Rng(0x05ee_dd7b);
    let (mut machines, mut errors) = (0usize, 0usize);
    let mut slowest = std::time::Duration::ZERO;
    for blob in &fixtures {
        for _ in 0..PER_FIXTURE {
            let mut b = blob.to_vec();
            for _ in 0..1 + rng.below(4) {
                let len = b.len() as u64;
                if len < 8 {
                    break;
                }
                let at = rng.below(len - 4) as usize;
                match rng.below(7) {
                    0 => b[at] ^= 1 << rng.below(8),
                    1 => {
                        let v = rng.pick(&[0u32, 1, 2, 3, 4, 9, 0x7fff_ffff, 0xffff_ffff, 0xd00d_feed, len as u32]);
                        b[at & !3..(at & !3) + 4].copy_from_slice(&v.to_be_bytes());
                    }
                    2 => b.truncate(at),
                    3 => {
                        let n = rng.below(64) as usize;
                        let end = (at + n).min(b.len());
                        let span = b[at..end].to_vec();
                        let to = rng.below(b.len() as u64) as usize;
                        b.splice(to..to, span);
                    }
                    4 => {
                        let end = (at + rng.below(64) as usize).min(b.len());
                        b.drain(at..end);
                    }
                    5 if len >= 40 => {
                        // A header field (words 1..9).
                        let field = 4 * (1 + rng.below(9) as usize);
                        let v = rng.next_u64() as u32 % (2 * len as u32).max(1);
                        b[field..field + 4].copy_from_slice(&v.to_be_bytes());
                    }
                    _ => b[at] = rng.next_u64() as u8,
                }
            }
            let start = std::time::Instant::now();
            match discover(&b) {
                Ok(_) => machines += 1,
                Err(_) => errors += 1,
            }
            slowest = slowest.max(start.elapsed());
        }
    }
    assert_eq!(machines + errors, fixtures.len() * PER_FIXTURE);
    assert!(machines > 0 && errors > 0, "machines {machines}, errors {errors}");
    assert!(slowest < std::time::Duration::from_secs(2), "one discovery took {slowest:?}");
}

/// The FVP's GICv3 with its redistributors split over several regions
/// (`#redistributor-regions`): every region is kept, up to the most folio
/// uses, and more are reported.
#[test]
fn every_gicv3_redistributor_region_is_read() {
    let (rsv, mut root) = Node::decode(BOARDS[0].1);
    let gic_name = root.children.iter().find(|c| c.name.starts_with("interrupt-controller@")).unwrap().name.clone();
    let entry = |base: u64, size: u64| [base.to_be_bytes(), size.to_be_bytes()].concat();
    let regions = |n: u64| -> Vec<PhysRange> {
        (0..n).map(|k| PhysRange::from_start_size(0x4000_0000_0000 + k * 0x100_0000, 0x20_0000).unwrap()).collect()
    };
    for (listed, used, warned) in [(1u64, 1usize, false), (3, 3, false), (10, 8, true)] {
        let gic = root.child(&gic_name);
        let mut reg = entry(0x2f00_0000, 0x1_0000);
        for r in regions(listed) {
            reg.extend(entry(r.start(), r.size()));
        }
        // GICC, GICH, GICV after the redistributors, as the binding has them.
        reg.extend(entry(0x2c00_0000, 0x2000));
        gic.set("reg", reg);
        gic.set("#redistributor-regions", (listed as u32).to_be_bytes().to_vec());
        let m = discover(&root.encode(&rsv)).unwrap();
        let Some(GicInfo::V3 { distributor, redistributors }) = m.gic else { panic!("{:?}", m.gic) };
        assert_eq!(distributor.start(), 0x2f00_0000);
        assert_eq!(redistributors.regions(), &regions(listed)[..used], "{listed} regions");
        let warning = DtbWarning::RedistributorRegionsIgnored { listed: listed as usize, used };
        assert_eq!(m.warnings.contains(&warning), warned, "{:?}", m.warnings);
    }
}

/// `stdout-path` (an alias or a path, with options) picks the console when
/// folio drives that UART (PL011, 16550 with `reg-shift`/`reg-io-width`);
/// otherwise the first PL011, else the first 16550, with a warning.
#[test]
fn the_console_follows_stdout_path_where_folio_has_a_driver() {
    let (rsv, mut root) = rpi4_with_memory(&[0, 0, 0x3c00_0000]);
    // The Pi names its mini UART (serial1), which folio does not drive.
    let m = discover(&root.encode(&rsv)).unwrap();
    assert_eq!(m.uart.map(|u| (u.range.start(), u.kind)), Some((0xfe20_1000, UartKind::Pl011)));
    assert!(m.warnings.contains(&DtbWarning::ConsoleNotStdout {
        stdout_path: "serial1:115200n8".into(),
        used: "/soc/serial@7e201000".into()
    }));
    // A 16550 at the mini UART's place, 32-bit registers 4 bytes apart,
    // named by path with options: it is the console, silently.
    let uart = root.child("soc").child("serial@7e215040");
    uart.set("compatible", b"snps,dw-apb-uart\0".to_vec());
    uart.set("reg-shift", 2u32.to_be_bytes().to_vec());
    uart.set("reg-io-width", 4u32.to_be_bytes().to_vec());
    root.child("chosen").set("stdout-path", b"/soc/serial@7e215040:115200n8\0".to_vec());
    let m = discover(&root.encode(&rsv)).unwrap();
    let kind = UartKind::Ns16550 { reg_shift: 2, reg_io_width: 4 };
    assert_eq!(m.uart.map(|u| (u.range.start(), u.kind)), Some((0xfe21_5040, kind)));
    assert!(!m.warnings.iter().any(|w| matches!(w, DtbWarning::ConsoleNotStdout { .. })));
    assert_eq!(kind.register(5), (0x14, 4), "LSR");
    // Byte-wide registers, packed: the default for `ns16550a`.
    let uart = root.child("soc").child("serial@7e215040");
    uart.set("compatible", b"ns16550a\0".to_vec());
    uart.props.retain(|(n, _)| n != "reg-shift" && n != "reg-io-width");
    let m = discover(&root.encode(&rsv)).unwrap();
    assert_eq!(m.uart.map(|u| u.kind), Some(UartKind::Ns16550 { reg_shift: 0, reg_io_width: 1 }));
    // A register shape no plain access reaches (8-byte registers) is not
    // driven: back to the PL011, with the warning.
    let uart = root.child("soc").child("serial@7e215040");
    uart.set("reg-io-width", 8u32.to_be_bytes().to_vec());
    let m = discover(&root.encode(&rsv)).unwrap();
    assert_eq!(m.uart.map(|u| u.kind), Some(UartKind::Pl011));
    assert!(m.warnings.iter().any(|w| matches!(w, DtbWarning::ConsoleNotStdout { .. })));
}
