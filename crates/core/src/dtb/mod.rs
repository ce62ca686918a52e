//! Discovery from the flattened device tree: what machine this is.
//!
//! Owns: turning the blob the firmware passed into a [`Machine`]: every RAM
//! bank of every `/memory` node, the reserved regions (`/reserved-memory` and
//! the memreserve block), `/chosen`, the PL011, the GIC, the architected
//! timer, the PSCI conduit and the CPUs. Bus addresses are translated through
//! each parent's `ranges` (the Raspberry Pi's devices sit at 0x7e.. on the
//! VideoCore bus and 0xfe.. for the CPU).
//! Must never: panic or read out of bounds on a malformed blob. Everything is
//! validated by [`validate::normalize`] first, and every inconsistency after
//! that is a [`DtbError`].

pub mod validate;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use fdt::Fdt;
use fdt::node::FdtNode;

use crate::mm::PhysRange;

/// Why a device tree was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DtbError {
    /// Fewer bytes than a header.
    TooShort {
        len: usize,
    },
    /// Not a device tree at all (no 0xd00dfeed).
    BadMagic {
        found: u32,
    },
    UnsupportedVersion {
        version: u32,
    },
    /// The header's totalsize is larger than the bytes available.
    Truncated {
        total_size: usize,
        available: usize,
    },
    /// A block the header points at lies outside totalsize.
    BlockOutOfBounds {
        block: &'static str,
    },
    /// The structure or reservation block breaks the specification.
    Malformed {
        offset: usize,
        what: &'static str,
    },
    /// An address or size does not fit the cells or 64 bits.
    BadReg {
        node: String,
    },
    NoMemoryNode,
    /// A memory bank of size 0: the Raspberry Pi DTB before the firmware fills it in.
    ZeroSizeBank {
        node: String,
    },
}

/// A UART folio can drive as its console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uart {
    pub range: PhysRange,
    pub kind: UartKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UartKind {
    /// ARM PrimeCell PL011 (`arm,pl011`).
    Pl011,
    /// A 16550/8250 (`ns16550a`, `ns16550`, `ns16450`, `snps,dw-apb-uart`,
    /// and the 16550-compatible `mediatek,mt6577-uart`): register `i` at
    /// `i << reg_shift`, accessed `reg_io_width` bytes wide. (Not the Pi's
    /// `brcm,bcm2835-aux-uart`: its baud rate follows the VPU clock and its
    /// pins need ALT5; folio's Pi set-up frees the PL011 instead.)
    Ns16550 { reg_shift: u8, reg_io_width: u8 },
}

impl UartKind {
    /// The driver for a node's compatible strings, with its properties.
    fn of(compatible: &[&str], reg_shift: Option<u32>, reg_io_width: Option<u32>) -> Option<UartKind> {
        let is = |c: &str| compatible.contains(&c);
        if is("arm,pl011") {
            return Some(UartKind::Pl011);
        }
        // MediaTek's spaces its registers 4 bytes apart whatever the DTB says.
        let implied_shift = if is("mediatek,mt6577-uart") { Some(2) } else { None };
        let family = ["ns16550a", "ns16550", "ns16450", "snps,dw-apb-uart", "mediatek,mt6577-uart"];
        if !family.iter().any(|c| is(c)) {
            return None;
        }
        let reg_shift = reg_shift.or(implied_shift).unwrap_or(0);
        let reg_io_width = reg_io_width.unwrap_or(if implied_shift.is_some() { 4 } else { 1 });
        // Only shapes a plain load or store can reach.
        if reg_shift > 2 || !matches!(reg_io_width, 1 | 4) {
            return None;
        }
        Some(UartKind::Ns16550 { reg_shift: reg_shift as u8, reg_io_width: reg_io_width as u8 })
    }

    /// Where register `index` (0 = THR/RBR, 5 = LSR, ...) lies from the
    /// UART's base, and how wide an access it takes (PL011: its own map).
    pub fn register(&self, index: u64) -> (u64, u8) {
        match *self {
            UartKind::Pl011 => (index * 4, 4),
            UartKind::Ns16550 { reg_shift, reg_io_width } => (index << reg_shift, reg_io_width),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            UartKind::Pl011 => "pl011",
            UartKind::Ns16550 { .. } => "ns16550",
        }
    }
}

/// What discovery corrected in a DTB Linux would boot, and said so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DtbWarning {
    /// Two memory banks overlap (one Exynos board): merged into one, as
    /// Linux does.
    BanksMerged { first: PhysRange, second: PhysRange, merged: PhysRange },
    /// A reserved region wholly outside RAM (VRAM, on-chip SRAM, a hole
    /// between banks, past a placeholder memory size): nothing to reserve.
    ReservedOutsideRam { region: PhysRange, source: String },
    /// A reserved region partly outside RAM: only its part inside a bank
    /// is reserved.
    ReservedClipped { region: PhysRange, kept: PhysRange, source: String },
    /// More GICv3 redistributor regions than folio uses: the cores whose
    /// redistributors lie in the others are left out.
    RedistributorRegionsIgnored { listed: usize, used: usize },
    /// `stdout-path` names a UART folio has no driver for (or nothing):
    /// the console is another one.
    ConsoleNotStdout { stdout_path: String, used: String },
}

impl fmt::Display for DtbWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DtbWarning::BanksMerged { first, second, merged } => {
                write!(f, "memory banks {first} and {second} overlap: merged into {merged}")
            }
            DtbWarning::ReservedOutsideRam { region, source } => {
                write!(f, "reserved region {region} ({source}) lies outside RAM: ignored")
            }
            DtbWarning::ReservedClipped { region, kept, source } => {
                write!(f, "reserved region {region} ({source}) lies partly outside RAM: {kept} reserved")
            }
            DtbWarning::RedistributorRegionsIgnored { listed, used } => {
                write!(f, "{listed} GICv3 redistributor regions listed, the first {used} used")
            }
            DtbWarning::ConsoleNotStdout { stdout_path, used } => {
                write!(f, "stdout-path {stdout_path} names no UART folio drives: the console is {used}")
            }
        }
    }
}

impl fmt::Display for DtbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DtbError::TooShort { len } => write!(f, "only {len} bytes, shorter than a DTB header"),
            DtbError::BadMagic { found } => write!(f, "bad magic {found:#010x} (a DTB starts with 0xd00dfeed)"),
            DtbError::UnsupportedVersion { version } => write!(f, "unsupported DTB version {version} (need 17)"),
            DtbError::Truncated { total_size, available } => {
                write!(f, "truncated: header says {total_size} bytes, only {available} available")
            }
            DtbError::BlockOutOfBounds { block } => write!(f, "the {block} block lies outside the blob"),
            DtbError::Malformed { offset, what } => write!(f, "malformed at byte {offset:#x}: {what}"),
            DtbError::BadReg { node } => write!(f, "node {node}: reg does not fit its cells"),
            DtbError::NoMemoryNode => write!(f, "no /memory node: the DTB describes no RAM"),
            DtbError::ZeroSizeBank { node } => {
                write!(f, "node {node} has a memory bank of size 0 (firmware has not filled it in)")
            }
        }
    }
}

/// A RAM bank and the node that described it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryBank {
    pub range: PhysRange,
    pub node: String,
}

/// A region the kernel must not allocate from, and who asked for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReservedRegion {
    pub range: PhysRange,
    /// `/memreserve/` or the reserved-memory node's name.
    pub source: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicInfo {
    V2 { distributor: PhysRange, cpu_interface: PhysRange },
    V3 { distributor: PhysRange, redistributors: Redistributors },
}

/// A GICv3's redistributor regions (`#redistributor-regions` of them, at
/// most [`MAX_REDISTRIBUTOR_REGIONS`](crate::gic::MAX_REDISTRIBUTOR_REGIONS)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Redistributors {
    regions: [PhysRange; crate::gic::MAX_REDISTRIBUTOR_REGIONS],
    count: usize,
}

impl Redistributors {
    /// The first `MAX_REDISTRIBUTOR_REGIONS` of `regions`.
    pub fn new(regions: &[PhysRange]) -> Redistributors {
        let count = regions.len().min(crate::gic::MAX_REDISTRIBUTOR_REGIONS);
        let mut r =
            Redistributors { regions: [PhysRange::saturating(0, 0); crate::gic::MAX_REDISTRIBUTOR_REGIONS], count };
        r.regions[..count].copy_from_slice(&regions[..count]);
        r
    }

    pub fn regions(&self) -> &[PhysRange] {
        &self.regions[..self.count]
    }
}

impl GicInfo {
    pub fn version(&self) -> u32 {
        match self {
            GicInfo::V2 { .. } => 2,
            GicInfo::V3 { .. } => 3,
        }
    }
}

/// How PSCI calls reach the firmware or hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciConduit {
    Hvc,
    Smc,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnableMethod {
    Psci,
    SpinTable { release_addr: u64 },
    Other(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuInfo {
    pub mpidr: u64,
    pub enable_method: Option<EnableMethod>,
}

/// Everything folio learns from the device tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Machine {
    pub model: String,
    pub compatible: Vec<String>,
    pub memory: Vec<MemoryBank>,
    pub reserved: Vec<ReservedRegion>,
    pub bootargs: Option<String>,
    pub stdout_path: Option<String>,
    /// The console's UART: the one `stdout-path` names when folio has a
    /// driver for it, else the first enabled UART it has one for (with a
    /// warning when `stdout-path` named another).
    pub uart: Option<Uart>,
    pub gic: Option<GicInfo>,
    /// The virtual timer's interrupt ID (a PPI, so 16 + its number).
    pub virtual_timer_intid: Option<u32>,
    pub psci: Option<PsciConduit>,
    pub cpus: Vec<CpuInfo>,
    /// What discovery corrected (and the kernel reports).
    pub warnings: Vec<DtbWarning>,
}

/// Validates `blob` and describes the machine it names.
pub fn discover(blob: &[u8]) -> Result<Machine, DtbError> {
    let canonical = validate::normalize(blob)?;
    let fdt =
        Fdt::new(&canonical).map_err(|_| DtbError::Malformed { offset: 0, what: "rejected by the fdt parser" })?;
    let root = fdt.find_node("/").ok_or(DtbError::Malformed { offset: 0, what: "no root node" })?;

    let mut machine = Machine {
        model: prop_str(root, "model").unwrap_or("").to_string(),
        compatible: prop_strings(root, "compatible").map(String::from).collect(),
        ..Machine::default()
    };
    for reservation in fdt.memory_reservations() {
        let (start, size) = (reservation.address() as u64, reservation.size() as u64);
        if size > 0 {
            let range =
                PhysRange::from_start_size(start, size).ok_or(DtbError::BadReg { node: "/memreserve/".into() })?;
            machine.reserved.push(ReservedRegion { range, source: "/memreserve/".into() });
        }
    }

    let mut walk = Walk {
        machine: &mut machine,
        aliases: Vec::new(),
        uarts: Vec::new(),
        interrupt_parents: Vec::new(),
        controllers: Vec::new(),
        timer: None,
    };
    if let Some(aliases) = fdt.find_node("/aliases") {
        for p in aliases.properties() {
            if let Some(target) = p.as_str() {
                walk.aliases.push((p.name.to_string(), target.to_string()));
            }
        }
    }
    walk.node(root, "", Cells::ROOT_DEFAULT, &[])?;
    let virtual_timer_intid = walk.virtual_timer_intid();
    let Walk { uarts, aliases, .. } = walk;
    machine.virtual_timer_intid = virtual_timer_intid;

    // The console: stdout-path when it names a UART folio drives, else the
    // first PL011, else the first other UART folio drives.
    let stdout_node = machine.stdout_path.as_deref().map(|p| {
        let p = p.split(':').next().unwrap_or(p);
        if p.starts_with('/') {
            p.to_string()
        } else {
            aliases.iter().find(|(name, _)| name == p).map_or_else(|| p.to_string(), |(_, t)| t.clone())
        }
    });
    let named = uarts.iter().find(|(path, _)| Some(path) == stdout_node.as_ref());
    let first = uarts.iter().find(|(_, u)| u.kind == UartKind::Pl011).or(uarts.first());
    if let (None, Some(stdout_path), Some((used, _))) = (named, &machine.stdout_path, first) {
        machine.warnings.push(DtbWarning::ConsoleNotStdout { stdout_path: stdout_path.clone(), used: used.clone() });
    }
    machine.uart = named.or(first).map(|(_, uart)| *uart);

    settle_memory(&mut machine)?;
    Ok(machine)
}

/// Settles the memory description the way Linux would boot it: banks must
/// exist; overlapping banks are merged (banks end up sorted by address);
/// a reserved region wholly outside RAM is ignored and one partly outside
/// is clipped to RAM. Each correction is a warning.
fn settle_memory(machine: &mut Machine) -> Result<(), DtbError> {
    if machine.memory.is_empty() {
        return Err(DtbError::NoMemoryNode);
    }
    machine.memory.sort_by_key(|b| (b.range.start(), b.range.end()));
    let mut banks: Vec<MemoryBank> = Vec::new();
    for bank in core::mem::take(&mut machine.memory) {
        match banks.last_mut() {
            Some(last) if last.range.overlaps(&bank.range) => {
                let end = last.range.end().max(bank.range.end());
                let merged = PhysRange::from_start_end(last.range.start(), end).unwrap_or(last.range);
                machine.warnings.push(DtbWarning::BanksMerged { first: last.range, second: bank.range, merged });
                last.range = merged;
            }
            _ => banks.push(bank),
        }
    }
    machine.memory = banks;
    let mut reserved = Vec::new();
    for r in core::mem::take(&mut machine.reserved) {
        let inside: Vec<PhysRange> = machine
            .memory
            .iter()
            .filter_map(|b| {
                PhysRange::from_start_end(r.range.start().max(b.range.start()), r.range.end().min(b.range.end()))
            })
            .filter(|p| !p.is_empty())
            .collect();
        if inside.is_empty() {
            machine.warnings.push(DtbWarning::ReservedOutsideRam { region: r.range, source: r.source.clone() });
            continue;
        }
        for kept in inside {
            if kept != r.range {
                machine.warnings.push(DtbWarning::ReservedClipped { region: r.range, kept, source: r.source.clone() });
            }
            reserved.push(ReservedRegion { range: kept, source: r.source.clone() });
        }
    }
    machine.reserved = reserved;
    Ok(())
}

/// `#address-cells` and `#size-cells` in force for a node's `reg`.
#[derive(Clone, Copy)]
struct Cells {
    address: usize,
    size: usize,
}

impl Cells {
    /// The specification's defaults when a node does not say.
    const ROOT_DEFAULT: Cells = Cells { address: 2, size: 1 };

    fn of_children(node: FdtNode<'_, '_>) -> Cells {
        let read = |name, default| prop_u32(node, name).map_or(default, |v| v as usize);
        Cells { address: read("#address-cells", 2), size: read("#size-cells", 1) }
    }
}

/// One `ranges` entry: child bus addresses [child, child + size) appear at
/// parent + (address - child).
#[derive(Clone, Copy)]
struct RangeEntry {
    child: u64,
    parent: u64,
    size: u64,
}

/// How a bus maps its children's addresses to its parent's.
#[derive(Clone)]
enum BusTranslation {
    /// An empty `ranges`: the same addresses.
    Identity,
    Ranges(Vec<RangeEntry>),
    /// No `ranges` at all: the children are not memory-mapped.
    None,
}

struct Walk<'m> {
    machine: &'m mut Machine,
    aliases: Vec<(String, String)>,
    /// Enabled UARTs folio drives, in tree order: (path, UART).
    uarts: Vec<(String, Uart)>,
    /// The interrupt parent in force (a phandle), innermost last: a node's
    /// own `interrupt-parent`, else its parent's.
    interrupt_parents: Vec<Option<u32>>,
    /// Interrupt controllers by phandle: their `#interrupt-cells`.
    controllers: Vec<(u32, u32)>,
    /// The architected timer's interrupts: its interrupt parent and its
    /// `interrupts` words, or its `interrupts-extended` words.
    timer: Option<TimerInterrupts>,
}

struct TimerInterrupts {
    parent: Option<u32>,
    interrupts: Vec<u32>,
    extended: Option<Vec<u32>>,
}

fn words(bytes: &[u8]) -> Vec<u32> {
    bytes.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect()
}

impl Walk<'_> {
    fn interrupt_cells(&self, phandle: u32) -> Option<usize> {
        self.controllers.iter().find(|(p, _)| *p == phandle).map(|(_, n)| *n as usize)
    }

    /// The virtual timer's INTID: the third of the timer's interrupts
    /// (secure physical, non-secure physical, virtual, hypervisor), each
    /// specifier as wide as its controller's `#interrupt-cells` says; a GIC
    /// specifier is (type, number, flags[, ...]) with type 1 a PPI, and
    /// PPIs start at INTID 16.
    fn virtual_timer_intid(&self) -> Option<u32> {
        let timer = self.timer.as_ref()?;
        let specifier: Vec<u32> = match &timer.extended {
            Some(words) => {
                let mut at = 0;
                let mut found = None;
                for index in 0..3 {
                    let cells = self.interrupt_cells(*words.get(at)?)?;
                    let spec = words.get(at + 1..at + 1 + cells)?;
                    if index == 2 {
                        found = Some(spec.to_vec());
                    }
                    at += 1 + cells;
                }
                found?
            }
            None => {
                let cells = timer.parent.and_then(|p| self.interrupt_cells(p)).unwrap_or(3);
                timer.interrupts.get(2 * cells..3 * cells)?.to_vec()
            }
        };
        match specifier.as_slice() {
            [1, number, ..] if *number < 16 => Some(16 + number),
            _ => None,
        }
    }
}

impl Walk<'_> {
    /// Visits `node` at `path`, whose `reg` uses `cells`, whose addresses go
    /// through `buses` (innermost last) to reach the CPU's physical space.
    fn node(
        &mut self,
        node: FdtNode<'_, '_>,
        path: &str,
        cells: Cells,
        buses: &[BusTranslation],
    ) -> Result<(), DtbError> {
        let depth = buses.len();
        let enabled = prop_str(node, "status").is_none_or(|s| s == "okay" || s == "ok");
        let is = |c: &str| prop_strings(node, "compatible").any(|x| x == c);
        let regs = || {
            decode_reg(node, path, cells).map(|v| v.into_iter().filter_map(|r| translate(r, buses)).collect::<Vec<_>>())
        };

        if depth == 1 && enabled && prop_str(node, "device_type") == Some("memory") {
            for range in decode_reg(node, path, cells)? {
                if range.size() == 0 {
                    return Err(DtbError::ZeroSizeBank { node: path.to_string() });
                }
                self.machine.memory.push(MemoryBank { range, node: path.to_string() });
            }
        }
        if depth == 2 && enabled && path.starts_with("/reserved-memory/") {
            for range in regs()? {
                if range.size() > 0 {
                    let source = path.trim_start_matches("/reserved-memory/").to_string();
                    self.machine.reserved.push(ReservedRegion { range, source });
                }
            }
        }
        if path == "/chosen" {
            self.machine.bootargs = prop_str(node, "bootargs").map(String::from);
            self.machine.stdout_path = prop_str(node, "stdout-path").map(String::from);
        }
        if enabled {
            let compatible: Vec<&str> = prop_strings(node, "compatible").collect();
            let kind = UartKind::of(&compatible, prop_u32(node, "reg-shift"), prop_u32(node, "reg-io-width"));
            if let Some(kind) = kind
                && let Some(first) = regs()?.first()
            {
                self.uarts.push((path.to_string(), Uart { range: *first, kind }));
            }
        }
        if enabled && self.machine.gic.is_none() {
            // Qualcomm's GICv2 is named only `qcom,msm-qgic2` on some boards.
            let v2 = ["arm,gic-400", "arm,cortex-a15-gic", "arm,cortex-a9-gic", "arm,cortex-a7-gic", "qcom,msm-qgic2"];
            let regs_now = if is("arm,gic-v3") || v2.iter().any(|c| is(c)) { regs()? } else { Vec::new() };
            if regs_now.len() >= 2 {
                self.machine.gic = Some(if is("arm,gic-v3") {
                    // Every redistributor region (`#redistributor-regions`,
                    // default 1); more than folio uses are reported.
                    let wanted = prop_u32(node, "#redistributor-regions").unwrap_or(1).max(1) as usize;
                    let listed = wanted.min(regs_now.len() - 1);
                    if listed > crate::gic::MAX_REDISTRIBUTOR_REGIONS {
                        self.machine.warnings.push(DtbWarning::RedistributorRegionsIgnored {
                            listed,
                            used: crate::gic::MAX_REDISTRIBUTOR_REGIONS,
                        });
                    }
                    GicInfo::V3 {
                        distributor: regs_now[0],
                        redistributors: Redistributors::new(&regs_now[1..1 + listed]),
                    }
                } else {
                    GicInfo::V2 { distributor: regs_now[0], cpu_interface: regs_now[1] }
                });
            }
        }
        let interrupt_parent = prop_u32(node, "interrupt-parent").or(self.interrupt_parents.last().copied().flatten());
        if let (Some(phandle), Some(cells)) =
            (prop_u32(node, "phandle").or(prop_u32(node, "linux,phandle")), prop_u32(node, "#interrupt-cells"))
        {
            self.controllers.push((phandle, cells));
        }
        if enabled && self.timer.is_none() && (is("arm,armv8-timer") || is("arm,armv7-timer")) {
            // Decoded after the walk, once every controller's
            // #interrupt-cells is known (the GIC may come later in the tree).
            self.timer = Some(TimerInterrupts {
                parent: interrupt_parent,
                interrupts: node.property("interrupts").map(|p| words(p.value)).unwrap_or_default(),
                extended: node.property("interrupts-extended").map(|p| words(p.value)),
            });
        }
        // PSCI anywhere in the tree, as Linux finds it (TI's K3 boards keep
        // it in /firmware/psci); the first one wins.
        if enabled && self.machine.psci.is_none() && is_psci(node) {
            self.machine.psci = match prop_str(node, "method") {
                Some("hvc") => Some(PsciConduit::Hvc),
                Some("smc") => Some(PsciConduit::Smc),
                _ => None,
            };
        }
        if depth == 2 && path.starts_with("/cpus/") && prop_str(node, "device_type") == Some("cpu") && enabled {
            let mpidr = decode_reg(node, path, cells)?.first().map_or(0, |r| r.start());
            let enable_method = prop_str(node, "enable-method").map(|m| match m {
                "psci" => EnableMethod::Psci,
                "spin-table" => {
                    match node.property("cpu-release-addr").map(|p| read_cells(p.value, 0, p.value.len() / 4)) {
                        Some(Some(release_addr)) => EnableMethod::SpinTable { release_addr },
                        _ => EnableMethod::Other("spin-table without cpu-release-addr".into()),
                    }
                }
                other => EnableMethod::Other(other.to_string()),
            });
            self.machine.cpus.push(CpuInfo { mpidr, enable_method });
        }

        // Children: their reg uses this node's cells; their addresses pass
        // through this node's ranges (the root needs no translation).
        let child_cells = Cells::of_children(node);
        let mut child_buses = buses.to_vec();
        if depth > 0 {
            child_buses.push(bus_translation(node, child_cells, cells));
        }
        self.interrupt_parents.push(interrupt_parent);
        for child in node.children() {
            let child_path = if path.is_empty() {
                alloc::format!("/{}", child.name)
            } else {
                alloc::format!("{path}/{}", child.name)
            };
            self.node(
                child,
                &child_path,
                child_cells,
                if depth == 0 { &[BusTranslation::Identity] } else { &child_buses },
            )?;
        }
        self.interrupt_parents.pop();
        Ok(())
    }
}

fn is_psci(node: FdtNode<'_, '_>) -> bool {
    prop_strings(node, "compatible").any(|c| c.starts_with("arm,psci"))
}

fn prop_str<'a>(node: FdtNode<'_, 'a>, name: &str) -> Option<&'a str> {
    node.property(name).and_then(|p| p.as_str())
}

fn prop_u32(node: FdtNode<'_, '_>, name: &str) -> Option<u32> {
    let v = node.property(name)?.value;
    Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
}

/// The strings of a string-list property (such as `compatible`).
fn prop_strings<'a>(node: FdtNode<'_, 'a>, name: &str) -> impl Iterator<Item = &'a str> {
    let value = node.property(name).map_or(&[][..], |p| p.value);
    value.split(|&b| b == 0).filter(|s| !s.is_empty()).filter_map(|s| core::str::from_utf8(s).ok())
}

/// Reads `count` big-endian cells starting at cell `index`, as one number.
fn read_cells(bytes: &[u8], index: usize, count: usize) -> Option<u64> {
    if count > 2 {
        return None;
    }
    let mut value = 0u64;
    for i in index..index + count {
        let b = bytes.get(i * 4..i * 4 + 4)?;
        value = (value << 32) | u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u64;
    }
    Some(value)
}

fn decode_reg(node: FdtNode<'_, '_>, path: &str, cells: Cells) -> Result<Vec<PhysRange>, DtbError> {
    let Some(p) = node.property("reg") else { return Ok(Vec::new()) };
    let entry = cells.address + cells.size;
    let bad = || DtbError::BadReg { node: path.to_string() };
    if entry == 0 || p.value.len() % (entry * 4) != 0 {
        return Err(bad());
    }
    (0..p.value.len() / (entry * 4))
        .map(|i| {
            let start = read_cells(p.value, i * entry, cells.address).ok_or_else(bad)?;
            let size = read_cells(p.value, i * entry + cells.address, cells.size).ok_or_else(bad)?;
            PhysRange::from_start_size(start, size).ok_or_else(bad)
        })
        .collect()
}

fn bus_translation(node: FdtNode<'_, '_>, child: Cells, parent: Cells) -> BusTranslation {
    let Some(p) = node.property("ranges") else { return BusTranslation::None };
    if p.value.is_empty() {
        return BusTranslation::Identity;
    }
    let entry = child.address + parent.address + child.size;
    let entries = (0..p.value.len() / (entry * 4).max(1))
        .filter_map(|i| {
            let base = i * entry;
            Some(RangeEntry {
                child: read_cells(p.value, base, child.address)?,
                parent: read_cells(p.value, base + child.address, parent.address)?,
                size: read_cells(p.value, base + child.address + parent.address, child.size)?,
            })
        })
        .collect();
    BusTranslation::Ranges(entries)
}

/// Translates a range from the innermost bus out to CPU physical addresses.
fn translate(range: PhysRange, buses: &[BusTranslation]) -> Option<PhysRange> {
    let mut start = range.start();
    for bus in buses.iter().rev() {
        match bus {
            BusTranslation::Identity => {}
            BusTranslation::None => return None,
            BusTranslation::Ranges(entries) => {
                let e = entries.iter().find(|e| start >= e.child && start - e.child < e.size)?;
                start = e.parent.checked_add(start - e.child)?;
            }
        }
    }
    PhysRange::from_start_size(start, range.size())
}

#[cfg(test)]
mod tests;
