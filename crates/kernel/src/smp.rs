//! Starting the secondary cores, the way the DTB says: PSCI CPU_ON through
//! its conduit (QEMU virt), or the spin-table release addresses (the
//! Raspberry Pi 4 and QEMU raspi4b).
//!
//! Owns: the per-core boot records `secondary_entry` (boot.s) reads, and
//! the secondaries' stacks. A secondary reports itself, sets up its own
//! GIC interface and timer, and joins the scheduler (`task::run_core`),
//! waiting in WFE while no task is ready for it.
//! Must never: start a core the DTB does not describe, or let a secondary
//! touch shared state before its boot record says it is up.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::aarch64::mmu::SECONDARY_BOOT;
use crate::arch::aarch64::{barrier, cache, cpu, psci, timer};
use crate::frames::KERNEL_FRAMES;
use crate::result;
use folio_abi::report::Hex;
use folio_core::dtb::{EnableMethod, Machine};
use folio_core::mm::Granule;
use folio_core::mm::layout::{self, KERNEL_BASE};

pub const MAX_SECONDARY: usize = 16;

/// Cores online: the boot core and every secondary that reported.
static ONLINE: AtomicU64 = AtomicU64::new(1);
/// The virtual timer's interrupt ID plus one (0: none), for secondaries.
static TIMER_INTID: AtomicU64 = AtomicU64::new(0);

pub fn online_cores() -> usize {
    ONLINE.load(Ordering::Acquire) as usize
}
const STACK_BYTES: u64 = 32 << 10;

/// One core's boot record; the layout is read by boot.s.
#[repr(C, align(128))]
pub struct SecondaryRecord {
    mpidr: u64,
    stack_top: u64,
    ttbr1: u64,
    tcr_switch: u64,
    tcr_final: u64,
    ttbr0: u64,
    record_va: u64,
    online: AtomicU64,
    valid: u64,
}

const _: () = assert!(core::mem::size_of::<SecondaryRecord>() == 128);

#[unsafe(no_mangle)]
static mut secondary_records: [SecondaryRecord; MAX_SECONDARY] = [const {
    SecondaryRecord {
        mpidr: 0,
        stack_top: 0,
        ttbr1: 0,
        tcr_switch: 0,
        tcr_final: 0,
        ttbr0: 0,
        record_va: 0,
        online: AtomicU64::new(0),
        valid: 0,
    }
}; MAX_SECONDARY];

unsafe extern "C" {
    static secondary_entry: u8;
}

/// Starts every core the DTB lists besides this one; reports each.
/// Returns how many came up.
pub fn start_secondaries(machine: &Machine, granule: Granule) -> usize {
    let Some(boot) = *SECONDARY_BOOT.lock() else { return 0 };
    TIMER_INTID.store(machine.virtual_timer_intid.map_or(0, |i| i as u64 + 1), Ordering::Release);
    let me = cpu::mpidr() & 0xff_00ff_ffff;
    let to_pa = |va: u64| va - KERNEL_BASE + boot.load_pa;
    let entry = to_pa(core::ptr::addr_of!(secondary_entry) as u64);
    let mut up = 0;
    for c in machine.cpus.iter().filter(|c| c.mpidr != me) {
        let index = (c.mpidr & 0xff) as usize;
        if c.mpidr & !0xff != 0 || index >= MAX_SECONDARY {
            result!("core", false, mpidr = Hex(c.mpidr), why = "not started: only Aff0 below 8 is supported");
            continue;
        }
        let order = (STACK_BYTES / granule.size()).max(1).next_power_of_two().trailing_zeros();
        let Some(Ok(stack)) = KERNEL_FRAMES.lock().as_mut().map(|f| f.alloc(order)) else {
            result!("core", false, index = index, why = "no memory for its stack");
            continue;
        };
        let Some(stack_va) = layout::linear(stack) else { continue };
        // SAFETY: only this core writes the records, before it starts the
        // secondary that reads them, and each record is used by one core.
        let record = unsafe { &mut *core::ptr::addr_of_mut!(secondary_records[index]) };
        *record = SecondaryRecord {
            mpidr: c.mpidr,
            stack_top: stack_va + (granule.size() << order),
            ttbr1: boot.ttbr1,
            tcr_switch: boot.tcr_switch,
            tcr_final: boot.tcr_final,
            ttbr0: boot.ttbr0_identity,
            record_va: record as *const SecondaryRecord as u64,
            online: AtomicU64::new(0),
            valid: 1,
        };
        cache::clean_invalidate_to_poc(record as *const SecondaryRecord as u64, 128);
        let started = match (&c.enable_method, machine.psci) {
            (Some(EnableMethod::Psci), Some(conduit)) => match psci::cpu_on(conduit, c.mpidr, entry, 0) {
                0 => Ok(()),
                e => Err(alloc::format!("PSCI CPU_ON returned {e}")),
            },
            (Some(EnableMethod::SpinTable { release_addr }), _) => match layout::linear(*release_addr) {
                Some(release) => {
                    // SAFETY: the release address is RAM the firmware set
                    // aside for this (reserved, linear-mapped); the parked
                    // core reads it with its MMU off, hence the clean.
                    unsafe { core::ptr::write_volatile(release as *mut u64, entry) };
                    cache::clean_invalidate_to_poc(release, 8);
                    barrier::wake_all();
                    Ok(())
                }
                None => Err("release address outside the linear map".into()),
            },
            (method, _) => Err(alloc::format!("no way to start it ({method:?})")),
        };
        if let Err(why) = started {
            result!("core", false, index = index, why = why);
            continue;
        }
        // Wait up to 500 ms of the virtual counter for it to report.
        let deadline = timer::counter() + timer::frequency() / 2;
        while record.online.load(Ordering::Acquire) == 0 && timer::counter() < deadline {
            core::hint::spin_loop();
        }
        // Up once it reported (1), and with its GIC interface ready (2);
        // 3 when the GIC cannot serve it (it then waits, running nothing).
        while record.online.load(Ordering::Acquire) == 1 && timer::counter() < deadline {
            core::hint::spin_loop();
        }
        // The system goes on without a core that did not come up or has no
        // interrupts.
        match record.online.load(Ordering::Acquire) {
            0 => result!("core", false, index = index, why = "did not come up"),
            3 => result!("core", false, index = index, why = "no interrupts: no redistributor of the DTB serves it"),
            _ => up += 1,
        }
    }
    ONLINE.store(up as u64 + 1, Ordering::Release);
    result!("cores", true, online = up + 1, listed = machine.cpus.len().max(1));
    up
}

/// A secondary core, MMU on, on its own stack and vectors.
#[unsafe(no_mangle)]
extern "C" fn secondary_main(record: &SecondaryRecord) -> ! {
    // Per core: the cycle counter (where there is a PMU) and PAN.
    crate::arch::aarch64::pmu::reset_and_enable();
    let pan = if cpu::enable_pan() { "on" } else { "absent" };
    // At EL1, MMU on with the kernel's tables.
    result!("core", true, index = record.mpidr & 0xff, mpidr = Hex(cpu::mpidr()), el = 1, pan = pan);
    record.online.store(1, Ordering::Release);
    timer::stop_virtual();
    // Run tasks whenever a task set is active; otherwise wait for an event.
    let core = crate::task::core_id();
    let timer_intid = TIMER_INTID.load(Ordering::Acquire).checked_sub(1).map(|i| i as u32);
    if crate::task::init_core_interrupts(core, timer_intid).is_err() {
        // Without interrupts it could not be preempted or woken: left out.
        record.online.store(3, Ordering::Release);
        crate::arch::aarch64::cpu::halt();
    }
    record.online.store(2, Ordering::Release);
    loop {
        if crate::task::active() {
            crate::task::run_core(core);
        }
        aarch64_cpu::asm::wfe();
    }
}
