//! Boot sequence after the MMU is on.
//!
//! Owns: the order things come up in and what is reported on the console.
//! Must never: allocate frames before the boot arguments are read (the
//! granule is a boot argument), or continue when the machine's memory is
//! unknown.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::aarch64::early_map::{self, Memory};
use crate::arch::aarch64::{cpu, exit, mmu, timer};
use crate::boot_info::{BootInfo, UNMAPPED_ADDRESS};
use crate::console::Uart;
use crate::drivers::pl011::Pl011;
use crate::{console, println, result};
use buddy_system_allocator::LockedHeap;
use folio_abi::report::{Hex, Value};
use folio_core::board::Board;
use folio_core::board::{qemu_virt, rpi4};
use folio_core::bootargs::{self, BootArgWarning, BootArgs, CrashKind, ExitMethod};
use folio_core::dtb::{self, DtbError, DtbWarning, EnableMethod, GicInfo, Machine, PsciConduit, UartKind, validate};
use folio_core::mm::memmap::Size;
use folio_core::mm::{FramePool, Granule, MemoryMap, PhysRange};
use log::{error, info};

/// The board's own UART (physical), and its address in the kernel's tables
/// once they map it (0: not mapped there; the early map reaches it).
static FALLBACK_UART: AtomicU64 = AtomicU64::new(0);
static FALLBACK_UART_VA: AtomicU64 = AtomicU64::new(0);

/// The fallback console: the board's own PL011, through the kernel's tables
/// where they map it, else the early map.
fn fallback_console() -> Option<Uart> {
    let pa = FALLBACK_UART.load(Ordering::Relaxed);
    let va = match FALLBACK_UART_VA.load(Ordering::Relaxed) {
        0 => early_map::map(pa, 0x1000, Memory::Device).ok()?,
        va => va as usize,
    };
    // SAFETY: the board the image was loaded as has its PL011 at `pa`,
    // mapped as device memory at `va`; there is no console, so nothing
    // else drives it.
    let mut uart = unsafe { Pl011::new(va) };
    uart.init(if pa == rpi4::PL011_BASE { Some(rpi4::PL011_CLOCK_HZ) } else { None }, 115_200);
    Some(Uart::Pl011(uart))
}

/// Exit status after a panic.
const PANIC_EXIT_STATUS: u32 = 2;
/// Exit status when the machine cannot be described (no usable DTB on virt).
const NO_MACHINE_EXIT_STATUS: u32 = 4;
/// The largest DTB accepted: half the early-map window.
const MAX_DTB_SIZE: u64 = 2 << 20;
/// The kernel heap, in .bss, until the page-table engine can grow it.
const HEAP_SIZE: usize = 8 << 20;

#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::empty();

#[repr(C, align(4096))]
struct HeapMemory([u8; HEAP_SIZE]);
static mut HEAP_MEMORY: HeapMemory = HeapMemory([0; HEAP_SIZE]);

unsafe extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

#[unsafe(no_mangle)]
extern "C" fn kernel_start(dtb_physical: u64, entry_el: u64, load_physical: u64) -> ! {
    // Instructions are counted from here (exact under QEMU -icount), where
    // the CPU has a PMU: probed first, since without one every PMU access
    // is UNDEFINED (and the console does not exist yet).
    crate::arch::aarch64::pmu::probe();
    crate::arch::aarch64::pmu::reset_and_enable();
    // SAFETY: HEAP_MEMORY is used by nothing but the heap, and this is the
    // only place it is handed over, once, before anything allocates.
    unsafe { HEAP.lock().init(core::ptr::addr_of_mut!(HEAP_MEMORY) as usize, HEAP_SIZE) };

    // Until the console exists (or when the DTB names none), a fault or
    // panic report goes to the board's own UART, guessed from where the
    // firmware loaded the image.
    let fallback = match Board::from_load_address(load_physical) {
        Board::RaspberryPi4 => rpi4::PL011_BASE,
        _ => qemu_virt::PL011_BASE,
    };
    FALLBACK_UART.store(fallback, Ordering::Relaxed);
    console::set_fallback(fallback_console);

    // Linker symbols: only their addresses are taken.
    let image_size = core::ptr::addr_of!(__image_end) as u64 - core::ptr::addr_of!(__image_start) as u64;
    let image = PhysRange::saturating(load_physical, image_size);

    let found = read_device_tree(dtb_physical);
    let (machine, board, dtb, dtb_problem) = match found {
        Ok((machine, range)) => {
            let board = Board::from_compatible(machine.compatible.iter().map(String::as_str));
            (machine, board, Some(range), None)
        }
        Err(problem) => match Board::from_load_address(load_physical) {
            Board::RaspberryPi4 => {
                let atags = early_map::map(rpi4::ATAGS_ADDRESS, 0x1000 - rpi4::ATAGS_ADDRESS, Memory::NormalReadOnly)
                    .ok()
                    // SAFETY: the early map just mapped these bytes read-only.
                    .and_then(|va| rpi4::parse_atags(unsafe { core::slice::from_raw_parts(va as *const u8, 0xf00) }));
                (rpi4::default_machine(atags.as_ref()), Board::RaspberryPi4, None, Some((problem, atags.is_some())))
            }
            _ => no_machine(problem, entry_el),
        },
    };

    start_console(&machine, board);
    let cmdline = machine.bootargs.clone().unwrap_or_default();
    let (args, warnings) = bootargs::parse(&cmdline);
    console::init_logger(args.log_level.to_filter(), timer::clock);
    let exit_method = args.exit.unwrap_or(if machine.psci.is_some() { ExitMethod::Psci } else { ExitMethod::Halt });
    exit::configure(exit_method, machine.psci);

    let midr = cpu::midr();
    info!("folio {} on {}: {}", env!("CARGO_PKG_VERSION"), board, machine.model);
    // Entered at EL2, the boot code dropped to EL1 (EL3 never gets here).
    result!(
        "boot",
        true,
        board = board.slug(),
        model = machine.model,
        entry_el = entry_el,
        el = 1,
        cpu = cpu::part_name(midr),
        midr = Hex(midr),
        mpidr = Hex(cpu::mpidr()),
        image = Hex(image.start()),
        image_end = Hex(image.end()),
    );
    match (&dtb, &dtb_problem) {
        (Some(range), _) => {
            result!("dtb", true, start = Hex(range.start()), end = Hex(range.end()));
            for w in &machine.warnings {
                let kind = match w {
                    DtbWarning::BanksMerged { .. } => "banks-merged",
                    DtbWarning::ReservedOutsideRam { .. } => "reserved-outside-ram",
                    DtbWarning::ReservedClipped { .. } => "reserved-clipped",
                    DtbWarning::RedistributorRegionsIgnored { .. } => "redistributor-regions-ignored",
                    DtbWarning::ConsoleNotStdout { .. } => "console-not-stdout",
                };
                result!("dtb.warning", false, kind = kind, what = w);
            }
        }
        (None, Some((problem, had_atags))) => {
            result!("dtb", false, address = Hex(dtb_physical), why = problem);
            // The board's defaults (folio_core::board::rpi4), refined by ATAGS.
            result!("machine.defaults", true, board = board.slug(), atags = had_atags);
        }
        (None, None) => {}
    }
    info!("command line: \"{cmdline}\"");
    for w in &warnings {
        match w {
            BootArgWarning::Unknown { arg } => result!("bootarg", false, arg = arg, why = "unknown"),
            BootArgWarning::BadValue { key, value, expected } => {
                result!("bootarg", false, key = key, value = value, expected = expected)
            }
        }
    }
    report_devices(&machine);

    let granule = choose_granule(args.granule);
    let (memory_map, mut frames) = build_frame_pool(&machine, image, dtb, granule);
    // Huge-page pools first, while aligned ranges are still free.
    crate::memory_service::reserve_hugepages(&mut frames, granule, &args);
    switch_to_kernel_tables(&machine, &memory_map, board, image, granule, frames);
    // The boot core's timer interrupt, before any other core starts: without
    // it no task could be preempted here, so the machine is not one folio runs on.
    if let Err(why) = crate::task::init_core_interrupts(crate::task::core_id(), machine.virtual_timer_intid) {
        result!("interrupts", false, core = 0, why = why);
        exit::exit(NO_MACHINE_EXIT_STATUS)
    }
    crate::smp::start_secondaries(&machine, granule);
    // PAN: EL1 cannot touch task memory, where the CPU has it (each
    // secondary core turns it on for itself).
    result!("pan", true, state = if cpu::enable_pan() { "on" } else { "absent" });
    result!("pmu", true, present = if crate::arch::aarch64::pmu::present() { "yes" } else { "no" });
    let mut kernel = BootInfo { machine, memory_map, image, granule };
    let status = match args.ktest {
        Some(filter) => {
            crate::ktest::LIFETIMES.store(args.lifetimes, core::sync::atomic::Ordering::Relaxed);
            crate::ktest::run(&mut kernel, filter)
        }
        None => 0,
    };
    // The memory service and its test clients, unless a kernel test failed.
    let status = if status == 0 { crate::memory_service::run(&kernel, &args) } else { status };
    if args.bench {
        crate::bench::run(granule, kernel.machine.virtual_timer_intid);
    }
    crash_if_asked(&args);
    info!(
        "boot to exit: {} instructions (PMU cycle counter; exact under QEMU -icount)",
        crate::arch::aarch64::pmu::read()
    );
    exit::exit(status)
}

/// Builds the kernel's own tables with the chosen granule and moves to them;
/// the console follows to its new address.
fn switch_to_kernel_tables(
    machine: &Machine,
    memory_map: &MemoryMap,
    board: Board,
    image: PhysRange,
    granule: Granule,
    frames: FramePool,
) {
    // MMIO the kernel drives: console, the Pi's GPIO, the GIC (distributor,
    // and the boot core's CPU interface or redistributor).
    // (version, distributor, the CPU interface (v2) or redistributor regions (v3))
    let gic: Option<(u32, PhysRange, Vec<PhysRange>)> = machine.gic.map(|g| match g {
        GicInfo::V2 { distributor, cpu_interface } => (2, distributor, alloc::vec![cpu_interface]),
        GicInfo::V3 { distributor, redistributors } => (3, distributor, redistributors.regions().to_vec()),
    });
    let mut devices = Vec::new();
    // The console's UART, or, where the DTB names none, the board's own for
    // the fallback console.
    let fallback = machine.uart.is_none();
    match machine.uart {
        Some(uart) => devices.push(uart.range),
        None => devices.push(PhysRange::saturating(FALLBACK_UART.load(Ordering::Relaxed), 0x1000)),
    }
    if board == Board::RaspberryPi4 {
        devices.push(PhysRange::saturating(rpi4::GPIO_BASE, 0x1000));
    }
    let gic_index = devices.len();
    if let Some((_, distributor, parts)) = &gic {
        devices.push(*distributor);
        devices.extend(parts.iter().copied());
    }
    match mmu::build_and_switch(granule, image.start(), &memory_map.banks, &devices, frames, cpu::mmfr0()) {
        Ok(tables) => {
            if let (Some(&uart_va), true) = (tables.devices.first(), fallback) {
                FALLBACK_UART_VA.store(uart_va, Ordering::Relaxed);
            }
            if let (Some(&uart_va), Some(uart)) = (tables.devices.first(), machine.uart) {
                // SAFETY: the new tables map the same UART as device memory
                // at `uart_va`; the old console mapping is gone, so this is
                // now the only one.
                console::set_console(unsafe { console_uart(uart.kind, uart_va as usize) });
            }
            if let Some((version, _, parts)) = &gic
                && let Some(vas) = tables.devices.get(gic_index..gic_index + 1 + parts.len())
            {
                let regions: Vec<(u64, u64)> =
                    vas[1..].iter().zip(parts).map(|(&va, range)| (va, range.size())).collect();
                // SAFETY: the distributor and the CPU interface (v2) or every
                // redistributor region (v3, each its whole size) were just
                // mapped as device memory; only the GIC module programs them.
                let gic =
                    unsafe { crate::drivers::gic::Gic::new(*version, vas[0] as usize, vas[1] as usize, &regions) };
                *crate::drivers::gic::GIC.lock() = Some(gic);
            }
            let parts: Vec<String> = tables.linear_map.0.iter().map(|(unit, n)| format!("{n} x {unit}")).collect();
            // The kernel runs on its own tables (TTBR1, upper half).
            result!("mmu", true, granule = granule, table_frames = tables.tables, linear_map = parts.join(", "));
        }
        Err(e) => {
            error!("could not build the kernel's page tables: {e}");
            exit::exit(NO_MACHINE_EXIT_STATUS)
        }
    }
}

/// Maps and validates the DTB the firmware passed; returns the machine and
/// the blob's physical range.
fn read_device_tree(physical: u64) -> Result<(Machine, PhysRange), DtbError> {
    if physical == 0 {
        return Err(DtbError::TooShort { len: 0 });
    }
    let header_va = early_map::map(physical, validate::HEADER_SIZE as u64, Memory::NormalReadOnly)
        .map_err(|_| DtbError::BlockOutOfBounds { block: "header (not mappable)" })?;
    // SAFETY: the early map just mapped HEADER_SIZE bytes read-only there.
    let header = unsafe { core::slice::from_raw_parts(header_va as *const u8, validate::HEADER_SIZE) };
    let total = validate::parse_header(header)?.total_size as u64;
    if total > MAX_DTB_SIZE {
        return Err(DtbError::Truncated { total_size: total as usize, available: MAX_DTB_SIZE as usize });
    }
    let va = early_map::map(physical, total, Memory::NormalReadOnly)
        .map_err(|_| DtbError::Truncated { total_size: total as usize, available: 0 })?;
    // SAFETY: the early map just mapped `total` bytes read-only there, and
    // nothing writes the DTB.
    let blob = unsafe { core::slice::from_raw_parts(va as *const u8, total as usize) };
    let machine = dtb::discover(blob)?;
    Ok((machine, PhysRange::saturating(physical, total)))
}

/// No DTB on a board that needs one: say so on the board's fixed UART and stop.
fn no_machine(problem: DtbError, entry_el: u64) -> ! {
    if let Ok(va) = early_map::map(qemu_virt::PL011_BASE, 0x1000, Memory::Device) {
        // SAFETY: QEMU virt always has a PL011 at PL011_BASE, mapped just now.
        let mut uart = unsafe { Pl011::new(va) };
        uart.init(None, 115_200);
        console::set_console(Uart::Pl011(uart));
    }
    result!("dtb", false, address = 0, why = problem);
    println!(
        "folio: QEMU virt passes a device tree with an Image kernel (-kernel folio.img); an ELF kernel gets none."
    );
    // The PSCI conduit QEMU virt uses: SMC when it started us at EL2, else HVC.
    exit::configure(ExitMethod::Psci, Some(if entry_el == 2 { PsciConduit::Smc } else { PsciConduit::Hvc }));
    exit::exit(NO_MACHINE_EXIT_STATUS)
}

/// The console driver for a UART of `kind` at `va`.
///
/// # Safety
/// `va` must map that UART's registers as device memory for the rest of the
/// kernel's life, and nothing else may program it.
unsafe fn console_uart(kind: UartKind, va: usize) -> Uart {
    // SAFETY: the caller's guarantee, for the driver of this kind.
    unsafe {
        match kind {
            UartKind::Pl011 => Uart::Pl011(Pl011::new(va)),
            UartKind::Ns16550 { reg_shift, reg_io_width } => {
                Uart::Ns16550(crate::drivers::ns16550::Ns16550::new(va, reg_shift, reg_io_width))
            }
        }
    }
}

fn start_console(machine: &Machine, board: Board) {
    let Some(uart) = machine.uart else { return };
    let Ok(va) = early_map::map(uart.range.start(), uart.range.size().max(0x1000), Memory::Device) else { return };
    match uart.kind {
        UartKind::Pl011 => {
            // SAFETY: the DTB (or the board defaults) says a PL011 is there,
            // and the early map just mapped it as device memory; nothing
            // else drives it.
            let mut pl011 = unsafe { Pl011::new(va) };
            if board == Board::RaspberryPi4 {
                if let Ok(gpio) = early_map::map(rpi4::GPIO_BASE, 0x1000, Memory::Device) {
                    // SAFETY: the BCM2711 GPIO block, mapped just now.
                    unsafe { crate::drivers::bcm2711_gpio::route_pl011_to_header(gpio) };
                }
                pl011.init(Some(rpi4::PL011_CLOCK_HZ), 115_200);
            } else {
                pl011.init(None, 115_200);
            }
            console::set_console(Uart::Pl011(pl011));
        }
        UartKind::Ns16550 { reg_shift, reg_io_width } => {
            // SAFETY: the DTB says a 16550 of this shape is there, mapped
            // just now as device memory; nothing else drives it.
            let mut uart = unsafe { crate::drivers::ns16550::Ns16550::new(va, reg_shift, reg_io_width) };
            uart.init();
            console::set_console(Uart::Ns16550(uart));
        }
    }
}

fn report_devices(machine: &Machine) {
    match machine.uart {
        Some(uart) => result!("console", true, driver = uart.kind.name(), base = Hex(uart.range.start())),
        None => result!("console", false, why = "no UART folio drives (PL011, 16550)"),
    }
    match machine.gic {
        Some(GicInfo::V2 { distributor, cpu_interface }) => result!(
            "gic",
            true,
            version = 2,
            distributor = Hex(distributor.start()),
            cpu_interface = Hex(cpu_interface.start())
        ),
        Some(GicInfo::V3 { distributor, redistributors }) => {
            let regions = redistributors.regions();
            result!(
                "gic",
                true,
                version = 3,
                distributor = Hex(distributor.start()),
                redistributors = Hex(regions.first().map_or(0, |r| r.start())),
                redistributors_end = Hex(regions.first().map_or(0, |r| r.end())),
                redistributor_regions = regions.len()
            )
        }
        None => result!("gic", false, why = "no GIC found"),
    }
    match machine.virtual_timer_intid {
        Some(intid) => result!("timer", true, intid = intid, frequency = timer::frequency()),
        None => result!("timer", false, why = "no architected timer node", frequency = timer::frequency()),
    }
    let conduit = match machine.psci {
        Some(PsciConduit::Hvc) => "hvc",
        Some(PsciConduit::Smc) => "smc",
        None => "none",
    };
    result!("psci", true, conduit = conduit);
    let methods: Vec<String> = machine
        .cpus
        .iter()
        .map(|c| match &c.enable_method {
            Some(EnableMethod::Psci) => format!("{:#x}:psci", c.mpidr),
            Some(EnableMethod::SpinTable { release_addr }) => format!("{:#x}:spin-table@{release_addr:#x}", c.mpidr),
            Some(EnableMethod::Other(m)) => format!("{:#x}:{m}", c.mpidr),
            None => format!("{:#x}", c.mpidr),
        })
        .collect();
    result!("cpus", true, count = machine.cpus.len(), enable = methods.join(","));
}

/// The granule the command line asked for, if this CPU has it; otherwise the
/// first the CPU supports, with a message.
fn choose_granule(requested: Granule) -> Granule {
    let mmfr0 = cpu::mmfr0();
    if requested.supported_by(mmfr0) {
        return requested;
    }
    let fallback = Granule::ALL.into_iter().find(|g| g.supported_by(mmfr0)).unwrap_or(Granule::K4);
    // ID_AA64MMFR0_EL1 says this CPU lacks the granule asked for.
    result!("granule", false, requested = requested, used = fallback, mmfr0 = Hex(mmfr0));
    fallback
}

fn build_frame_pool(
    machine: &Machine,
    image: PhysRange,
    dtb: Option<PhysRange>,
    granule: Granule,
) -> (MemoryMap, FramePool) {
    let mut memory_map = MemoryMap { banks: machine.memory.iter().map(|b| b.range).collect(), reserved: Vec::new() };
    memory_map.reserved.push((image, "kernel image".into()));
    if let Some(dtb) = dtb {
        memory_map.reserved.push((dtb, "device tree".into()));
    }
    for r in &machine.reserved {
        memory_map.reserved.push((r.range, r.source.clone()));
    }
    result!(
        "memory",
        true,
        banks = machine.memory.len(),
        ram = memory_map.total_ram(),
        ram_size = Size(memory_map.total_ram())
    );
    for bank in &machine.memory {
        result!("bank", true, start = Hex(bank.range.start()), end = Hex(bank.range.end()), source = bank.node);
    }
    for (range, source) in &memory_map.reserved {
        result!("reserved", true, start = Hex(range.start()), end = Hex(range.end()), source = source);
    }
    let mut frames = FramePool::new(granule);
    for free in memory_map.free_ranges(granule) {
        info!("  free     {free}");
        if let Err(e) = frames.add_range(free) {
            error!("frame allocator refused {free}: {e}");
        }
    }
    result!("frames", true, granule = granule, free = frames.free_frames(), free_bytes = frames.free_bytes());
    (memory_map, frames)
}

fn crash_if_asked(args: &BootArgs<'_>) {
    match args.crash {
        Some(CrashKind::Fault) => {
            info!("crash=fault: reading an unmapped kernel address");
            // SAFETY: the address is never mapped, so the read faults and the
            // handler reports it and stops the machine: no value is produced.
            let value = unsafe { core::ptr::read_volatile(UNMAPPED_ADDRESS as *const u64) };
            error!("read of an unmapped address returned {value:#x}");
        }
        Some(CrashKind::Panic) => panic!("crash=panic asked for a panic"),
        None => {}
    }
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    let had_console = console::has_console();
    console::emergency_print(format_args!("\n*** folio: kernel panic\n"));
    let (file, line) = info.location().map_or(("?", 0), |l| (l.file(), l.line()));
    console::emergency_print(format_args!(
        "{}panic fail file={} line={line} message={}\n",
        folio_abi::report::PREFIX,
        Value(file),
        Value(info.message())
    ));
    exit::exit(if had_console { PANIC_EXIT_STATUS } else { crate::arch::aarch64::exception::NO_CONSOLE_EXIT_STATUS })
}
