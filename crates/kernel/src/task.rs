//! EL0 tasks: loading the packaged programs into their own address spaces,
//! the system-call layer, and switching between tasks.
//!
//! Owns: the task set of one run ([`SYSTEM`]), each task's lower-half tree
//! (TTBR0, tagged with an ASID from `folio_core::mm::asid`), frames, frame
//! capabilities and grants (`memory`), and which task each core runs. The
//! IPC rules live in [`folio_core::ipc`], the argument checks in
//! [`folio_core::syscall`], the system calls in `syscall` (one function each,
//! returning what happens next or the error); this module runs the trap:
//! it decodes it, switches tasks, and hands FP/SIMD state over lazily.
//! Tasks are preempted by each core's virtual timer, and a core
//! running a task is sent the reschedule SGI when a task of higher
//! priority becomes ready for it.
//! Must never: touch a task's memory except through its own translations
//! (checked by `syscall::user_buffer`) and the linear map; keep the
//! system lock while leaving task mode; run a task with an ASID another
//! task may still hold; free a task's tables while a core's TTBR0 holds
//! them.
//!
//! A run starts with a fixed set of tasks; a launcher among them may start
//! more while it runs, and dead tasks are cleaned up while it goes on
//! (`lifetime`).

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::aarch64::exception::{KernelContext, TrapFrame, leave_user_mode, run_user, set_user_trap_handler};
use crate::arch::aarch64::fpsimd::{self, FpState};
use crate::arch::aarch64::mmu::{self, KernelHw};
use crate::arch::aarch64::timer;
use crate::drivers::gic::{GIC, RESCHEDULE_SGI, SPURIOUS};
use crate::frames::KERNEL_FRAMES;
use crate::sync::SpinLock;
use crate::{print, println};
use folio_abi::report::{PREFIX, Value};
use folio_core::elf;
use folio_core::exception::{ExceptionReport, ReportFields, Vector};
use folio_core::ipc::{Ipc, Object, State, TaskId};
use folio_core::labels::{FaultKind, Labels};
use folio_core::mm::Granule;
use folio_core::mm::asid::{Asid, AsidAllocator};
use folio_core::mm::layout;
use folio_core::mm::paging::{Attributes, PageTable, Policy, Unit};
use folio_core::syscall::FrameCap;

mod lifetime;
mod memory;
mod syscall;

use syscall::Next;

/// Every task's stack: the ABI's task layout.
pub use folio_abi::task::{STACK_SIZE, STACK_TOP};
/// Exit status of a task stopped by a fault.
pub const FAULT_STATUS: u64 = 139;

struct UserTask {
    name: &'static str,
    tables: PageTable<KernelHw>,
    asid: Asid,
    /// The task's save area: the EL0 vectors save its registers straight
    /// into it (boxed, so it stays in place while the task runs).
    frame: Box<TrapFrame>,
    /// Its FP/SIMD registers while they are not in the CPU (see `fp_live`).
    fp: FpState,
    /// How many times its FP/SIMD state was loaded (its first FP/SIMD
    /// instruction after a switch-in).
    fp_loads: u64,
    /// The cores it has run on (bit per core).
    ran_on: u32,
    /// Its IPC buffer's frame (mapped at `folio_abi::task::IPC_BUFFER`):
    /// long messages' words past the registers.
    ipc_buffer: u64,
    frames: Vec<u64>,
    status: Option<u64>,
    /// Physical memory this task may map (the memory service's).
    caps: Vec<FrameCap>,
    /// What other tasks mapped into this one.
    grants: Vec<memory::Grant>,
    /// The last abort retried (ELR, FAR, `System::table_changes` then).
    last_retry: Option<(u64, u64, u64)>,
    /// Names the task gave ranges of its address space, for fault reports.
    labels: Labels,
    /// Page-table frames its tree had when it was loaded (the rest are
    /// others' grants': `memory::grant_tables`).
    own_tables: u64,
    /// Bytes of pool frames moved into its heap window (GROW_HEAP).
    heap_bytes: u64,
}

/// Cores that can run tasks (MPIDR.Aff0 0..16).
pub const MAX_CORES: usize = 16;

/// This core's number (MPIDR.Aff0).
pub fn core_id() -> usize {
    (crate::arch::aarch64::cpu::mpidr() & 0xff) as usize
}

struct System {
    ipc: Ipc,
    tasks: Vec<UserTask>,
    /// The task each core runs, if any.
    current: [Option<TaskId>; MAX_CORES],
    granule: Granule,
    /// Each core's kernel context while it runs a task.
    kernel: [KernelContext; MAX_CORES],
    /// Cores in task mode (bit per core).
    in_user: u32,
    /// Idle cores waiting in WFI for their timer (a deadline is pending):
    /// SEV does not wake them, the reschedule SGI does.
    idle_in_wfi: u32,
    /// Cores whose TTBR0 points at a task's tables (EPD0 clear): a bit is
    /// set when a core switches to a task and cleared, under this lock,
    /// once the core has dropped its user space (`mmu::no_user_space`).
    /// No task's tables are freed while a core may still walk them.
    user_space_live: u32,
    /// Whether cores should look for tasks.
    active: bool,
    /// The virtual timer's interrupt, when the GIC takes it (preemption).
    timer: Option<(u32, u64)>,
    /// Tasks in the order they ended.
    ended: Vec<TaskId>,
    asids: AsidAllocator,
    /// Faults that met a mapping under change and ran again.
    retried_faults: u64,
    /// Changes made to a task's tables by someone else (the boot core's
    /// agent, the memory calls into a caller): a retried abort is only
    /// retried again after one.
    table_changes: u64,
    /// Reschedule SGIs taken by cores running a task.
    reschedule_ipis: u64,
    /// `call`s, `reply_recv`s and `reply_poll`s the fast path took.
    fast_ipc: u64,
    /// Idle cores in WFI woken by the reschedule SGI.
    wfi_wakeups: u64,
    /// Cores whose FP/SIMD registers hold their current task's state (bit
    /// per core): the task used them since it was switched in, so EL0 may
    /// use them untrapped, and they are saved when it leaves the core.
    fp_live: u32,
    /// FP/SIMD states saved at switch-out.
    fp_saves: u64,
    /// The task whose tables a core's TTBR0 still holds though the core
    /// runs none (it left user mode after that task blocked or ended, and
    /// has not dropped them or switched yet). With `current`, what every
    /// core holds ([`holds_tables`]): a dead task's memory is freed only
    /// once no core holds its tables, and its ASID only then given back.
    left_loaded: [Option<TaskId>; MAX_CORES],
    /// Tasks that ended and whose memory is not freed yet.
    dying: Vec<TaskId>,
    /// How many tasks the run started with (the launcher's children come
    /// after them, in slots that are recycled).
    boot_tasks: usize,
    /// The task that may start others, if the run has one.
    launcher: Option<lifetime::Launcher>,
    /// A boot-core agent edits every task's tables while the run goes on:
    /// dead tasks' memory then stays until the run ends.
    agent_edits_tables: bool,
    /// The run is over: every task ended, or the launcher did (the system
    /// shuts down with it). Set when a task ends, read on every trap.
    finished: bool,
}

/// Each core's MPIDR, recorded when it sets up its interrupts (the target
/// of a reschedule SGI).
static CORE_MPIDR: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(u64::MAX) }; MAX_CORES];

/// Sends the reschedule SGI to every other core that runs a task while a
/// task of higher priority is ready for it (that core runs its scheduler
/// now instead of at its next timer tick), and to every other idle core
/// that waits in WFI for its timer (SEV does not wake those). Idle cores
/// in WFE need no interrupt: `wake_cores` (SEV) already woke them.
#[inline(always)]
fn poke_cores(system: &System, this_core: usize) {
    // Checked inline: on one core, or with every other core idle in WFE,
    // that is all there is to do.
    let others = !(1u32 << this_core);
    if (system.timer.is_some() && system.in_user & others != 0) || system.idle_in_wfi & others != 0 {
        send_reschedule_sgis(system, this_core);
    }
}

#[inline(never)]
fn send_reschedule_sgis(system: &System, this_core: usize) {
    for core in (0..MAX_CORES).filter(|&c| c != this_core && system.idle_in_wfi & (1 << c) != 0) {
        send_reschedule(core);
    }
    for (core, running) in system.current.iter().enumerate() {
        let Some(task) = *running else { continue };
        if core == this_core || system.ipc.best_ready_for(core).is_none_or(|p| p <= system.ipc.priority(task)) {
            continue;
        }
        send_reschedule(core);
    }
}

/// The reschedule SGI to `core`.
fn send_reschedule(core: usize) {
    let mpidr = CORE_MPIDR[core].load(Ordering::Acquire);
    if mpidr != u64::MAX
        && let Some(gic) = GIC.lock().as_ref()
    {
        gic.send_reschedule(mpidr);
    }
}

/// Makes `task` this core's user address space, with an ASID valid in the
/// current generation (the allocator's rules: `folio_core::mm::asid`). A
/// rollover flushes every core's TLB (broadcast) before the new generation
/// is used; the system lock, held here, keeps every other switch out.
fn switch_to(system: &mut System, core: usize, task: TaskId) {
    if system.tasks[task].asid.generation != system.asids.generation() {
        // The values tasks run with on the other cores right now.
        let (running, n) = asids_held_elsewhere(system, core);
        let refreshed = system.asids.refresh(Some(system.tasks[task].asid), &running[..n]);
        if refreshed.rolled_over {
            mmu::flush_all_asids();
        }
        let t = &mut system.tasks[task];
        t.asid = refreshed.asid;
        t.tables.set_asid(refreshed.asid.value);
    }
    let t = &system.tasks[task];
    mmu::switch_user_space(t.tables.root(), t.asid.value);
    system.user_space_live |= 1 << core;
}

/// The task whose tables `core`'s TTBR0 holds, if any.
fn tables_on(system: &System, core: usize) -> Option<TaskId> {
    system.current[core].or(system.left_loaded[core])
}

/// Whether any core's TTBR0 holds `task`'s tables.
fn holds_tables(system: &System, task: TaskId) -> bool {
    (0..MAX_CORES).any(|c| tables_on(system, c) == Some(task))
}

/// The ASID values other cores' TTBR0s hold right now (tasks running
/// there, or left there and not yet dropped): a rollover must keep them.
fn asids_held_elsewhere(system: &System, core: usize) -> ([u16; MAX_CORES], usize) {
    let mut running = [0u16; MAX_CORES];
    let mut n = 0;
    for t in (0..MAX_CORES).filter(|&c| c != core).filter_map(|c| tables_on(system, c)) {
        running[n] = system.tasks[t].asid.value;
        n += 1;
    }
    (running, n)
}

/// This core stops walking any task's tables (EPD0 set, TTBR0 empty,
/// reserved ASID 0) and says so: before it idles, and before a run's
/// tables may be freed.
fn drop_user_space(system: &mut System, core: usize) {
    if system.user_space_live & (1 << core) != 0 {
        mmu::no_user_space();
        system.user_space_live &= !(1 << core);
    }
    system.left_loaded[core] = None;
    if !system.dying.is_empty() {
        lifetime::reap(system);
    }
}

/// Whether a data or instruction abort from EL0 hit an address that the
/// task's own tables now map with the access allowed: it raced with a
/// break-before-make change by another core and can simply run again.
fn retry_after_change(task: &mut UserTask) -> bool {
    let (esr, far, vector_index) = (task.frame.esr, task.frame.far, task.frame.vector_index);
    let class = (esr >> 26) & 0x3f;
    let fsc = esr & 0x3f;
    // Translation, access-flag and permission faults at any level.
    let change_fault = matches!(fsc, 0x04..=0x0f);
    if vector_index != 8 || !matches!(class, 0x20 | 0x24) || !change_fault {
        return false;
    }
    let write = class == 0x24 && esr & (1 << 6) != 0;
    match task.tables.translate(far) {
        Some(m) if class == 0x20 => m.attributes.user && m.attributes.user_exec,
        Some(m) => m.attributes.user && (!write || m.attributes.writable),
        None => false,
    }
}

/// A task ended: what others mapped into it goes, and its memory and ASID
/// are freed once no core holds its tables (`lifetime::reap`; at once if
/// none does).
fn end_task(system: &mut System, task: TaskId, status: u64) {
    system.tasks[task].status = Some(status);
    if task < system.boot_tasks {
        system.ended.push(task);
    }
    memory::revoke_grants(&mut system.tasks[task]);
    system.ipc.exit(task, status);
    system.finished =
        system.ipc.all_dead() || system.launcher.as_ref().is_some_and(|l| system.tasks[l.task].status.is_some());
    system.dying.push(task);
    lifetime::reap(system);
}

/// Ticks per time slice: 10 ms of the virtual counter.
fn quantum() -> u64 {
    (timer::frequency() / 100).max(1)
}

static SYSTEM: SpinLock<Option<System>> = SpinLock::new(None);

/// A program and how it is set up: its handles name endpoints and
/// notifications by their index in the run (see [`run`]) with a badge;
/// `core` pins it to one core.
#[derive(Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    pub image: &'static [u8],
    pub priority: u8,
    pub handles: &'static [(Object, u64)],
    pub core: Option<usize>,
}

/// The objects of a run: endpoint owners (task index), the number of
/// notifications, the endpoints whose owners get death notices (a queue
/// of them, `folio_core::ipc`), which notifications are bound to an endpoint
/// (endpoint, notification), a task given frame capabilities, and the
/// words some tasks find in x0 and x1 at start.
#[derive(Default)]
pub struct Objects<'a> {
    pub endpoint_owners: &'a [usize],
    pub notifications: usize,
    pub death_notices: &'a [usize],
    pub bound_notifications: &'a [(usize, usize)],
    pub memory_holder: Option<MemoryHolder<'a>>,
    pub start_arguments: &'a [(usize, [u64; 2])],
    /// Fewer ASIDs than the hardware has (to test rollovers).
    pub asid_limit: Option<u32>,
    /// The task (index) that may start `programs` while the run goes on
    /// (`folio_abi::spawn`); the run ends when it does.
    pub launcher: Option<(usize, &'static [Program])>,
}

/// A program the launcher may start.
#[derive(Clone, Copy)]
pub struct Program {
    pub name: &'static str,
    pub image: &'static [u8],
}

/// A task that holds frame capabilities: its index and the capabilities.
pub struct MemoryHolder<'a> {
    pub task: usize,
    pub caps: &'a [FrameCap],
}

fn alloc_zeroed_frame(granule: Granule) -> Result<u64, String> {
    let pa = KERNEL_FRAMES.lock().as_mut().and_then(|f| f.alloc(0).ok()).ok_or("out of frames")?;
    let va = layout::linear(pa).ok_or("frame beyond the linear map")?;
    // SAFETY: a frame just allocated, mapped read/write (Normal memory) by
    // the linear map; nothing else uses it yet.
    unsafe { crate::arch::aarch64::cache::zero(va, granule.size()) };
    Ok(pa)
}

/// x2 at a task's start (`folio_abi::task`): the cycle counter where the
/// CPU has a PMU.
fn start_flags() -> u64 {
    if crate::arch::aarch64::pmu::present() { folio_abi::task::START_CYCLE_COUNTER } else { 0 }
}

/// Loads `spec` into a fresh address space with `asid`.
fn load(spec: &Spec, asid: Asid, granule: Granule) -> Result<UserTask, String> {
    let program = elf::parse(spec.image).map_err(|e| format!("{e}"))?;
    let mut tables = mmu::user_tables(granule, asid.value).map_err(|e| format!("{e}"))?;
    let mut frames = Vec::new();
    let page = granule.size();
    let mut result = Ok(());
    'segments: for s in &program.segments {
        let attributes = if s.executable {
            Attributes::USER_RX
        } else if s.writable {
            Attributes::USER_RW
        } else {
            Attributes::USER_RO
        };
        let mut va = s.vaddr & !(page - 1);
        while va < s.vaddr + s.mem_size {
            let pa = match alloc_zeroed_frame(granule) {
                Ok(pa) => pa,
                Err(e) => {
                    result = Err(e);
                    break 'segments;
                }
            };
            frames.push(pa);
            // The file bytes that fall in this page.
            let (from, to) = (va.max(s.vaddr), (va + page).min(s.vaddr + s.file_size));
            if from < to {
                let src =
                    &spec.image[(s.file_offset + from - s.vaddr) as usize..(s.file_offset + to - s.vaddr) as usize];
                let dst = layout::linear(pa).unwrap_or(0) + (from - va);
                // SAFETY: `dst..dst + len` lies in the frame just allocated.
                unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, src.len()) };
                if s.executable {
                    crate::arch::aarch64::cache::sync_icache(dst, src.len() as u64);
                }
            }
            if let Err(e) = tables.map(va, pa, page, attributes, Policy::Force(Unit::PAGE)) {
                result = Err(format!("mapping {va:#x}: {e}"));
                break 'segments;
            }
            va += page;
        }
    }
    let mut va = STACK_TOP - STACK_SIZE.max(page);
    while result.is_ok() && va < STACK_TOP {
        match alloc_zeroed_frame(granule) {
            Ok(pa) => {
                frames.push(pa);
                result = tables
                    .map(va, pa, page, Attributes::USER_RW, Policy::Force(Unit::PAGE))
                    .map_err(|e| format!("{e}"));
            }
            Err(e) => result = Err(e),
        }
        va += page;
    }
    // The IPC buffer: one page of its own (long messages).
    let mut ipc_buffer = 0;
    if result.is_ok() {
        match alloc_zeroed_frame(granule) {
            Ok(pa) => {
                frames.push(pa);
                ipc_buffer = pa;
                result = tables
                    .map(folio_abi::task::IPC_BUFFER, pa, page, Attributes::USER_RW, Policy::Force(Unit::PAGE))
                    .map_err(|e| format!("{e}"));
            }
            Err(e) => result = Err(e),
        }
    }
    let own_tables = tables.stats().tables_in_use;
    let task = UserTask {
        name: spec.name,
        tables,
        asid,
        frame: Box::new(TrapFrame::user(program.entry, STACK_TOP, start_flags())),
        fp: FpState::ZERO,
        fp_loads: 0,
        ran_on: 0,
        ipc_buffer,
        frames,
        status: None,
        caps: Vec::new(),
        grants: Vec::new(),
        last_retry: None,
        labels: Labels::default(),
        own_tables,
        heap_bytes: 0,
    };
    match result {
        Ok(()) => Ok(task),
        Err(e) => {
            retire(task);
            Err(e)
        }
    }
}

/// Frees a task's frames and tables once its ASID has left every TLB (a
/// reaped task has only its root table left).
fn retire(mut task: UserTask) {
    mmu::flush_asid(task.asid.value);
    if let Some(pool) = KERNEL_FRAMES.lock().as_mut() {
        let _ = pool.free_many(&mut task.frames);
    }
    let _hardware = task.tables.destroy();
}

/// Task exit statuses as one result value: `name:status,...` (`none`
/// where the task never ended).
pub fn statuses_value(statuses: &[(&str, Option<u64>)]) -> String {
    let parts: Vec<String> = statuses
        .iter()
        .map(|(name, s)| match s {
            Some(s) => format!("{name}:{s}"),
            None => format!("{name}:none"),
        })
        .collect();
    parts.join(",")
}

/// How a run ended: each task's name and exit status (`None`: never
/// finished, blocked forever), and the order in which they ended.
pub struct Outcome {
    pub statuses: Vec<(&'static str, Option<u64>)>,
    pub ended: Vec<&'static str>,
    /// For each task, the cores it ran on (bit per core).
    pub ran_on: Vec<u32>,
    /// How many times the ASIDs rolled over to a new generation.
    pub asid_rollovers: u64,
    /// Faults that met a mapping under change and ran again.
    pub retried_faults: u64,
    /// Reschedule SGIs taken by cores running a task.
    pub reschedule_ipis: u64,
    /// `call`s, `reply_recv`s and `reply_poll`s the fast path took.
    pub fast_ipc: u64,
    /// Idle cores in WFI woken by the reschedule SGI.
    pub wfi_wakeups: u64,
    /// Whether every core had dropped the run's tables (EPD0 set) when they
    /// were freed; otherwise they were kept, not freed.
    pub tables_retired: bool,
    /// For each task, how many times its FP/SIMD state was loaded (lazily,
    /// at its first FP/SIMD use after a switch-in).
    pub fp_loads: Vec<u64>,
    /// FP/SIMD states saved at switch-out (only of tasks that used them
    /// since they were switched in).
    pub fp_saves: u64,
    /// Tasks the launcher started, and how many of those ended and were
    /// cleaned up while the run went on.
    pub spawned: u64,
    pub reaped: u64,
}

/// Work the boot core does instead of running tasks (a test that changes
/// tasks' mappings while they run on the other cores). Both calls run
/// with the task set locked; `tables[t]` is task `t`'s tree.
pub trait BootCoreAgent {
    fn prepare(&mut self, tables: &mut [&mut PageTable<KernelHw>]) -> Result<(), String>;
    /// One step; `false` when it has nothing more to do.
    fn step(&mut self, tables: &mut [&mut PageTable<KernelHw>]) -> bool;
}

/// Runs `specs` until every task has exited or faulted (or nothing can run
/// any more). With `timer_intid` (the virtual timer's interrupt) and a GIC,
/// tasks are preempted every 10 ms.
pub fn run(specs: &[Spec], objects: &Objects<'_>, granule: Granule, timer_intid: Option<u32>) -> Outcome {
    run_with(specs, objects, granule, timer_intid, None)
}

/// [`run`], with `agent` working on the boot core instead of tasks.
pub fn run_with(
    specs: &[Spec],
    objects: &Objects<'_>,
    granule: Granule,
    timer_intid: Option<u32>,
    mut agent: Option<&mut dyn BootCoreAgent>,
) -> Outcome {
    let nothing = || Outcome {
        statuses: Vec::new(),
        ended: Vec::new(),
        ran_on: Vec::new(),
        asid_rollovers: 0,
        retried_faults: 0,
        reschedule_ipis: 0,
        fast_ipc: 0,
        wfi_wakeups: 0,
        tables_retired: true,
        fp_loads: Vec::new(),
        fp_saves: 0,
        spawned: 0,
        reaped: 0,
    };
    let mut ipc = Ipc::new();
    let mut tasks = Vec::new();
    let hardware_asids = 1 << folio_core::mm::paging::registers::asid_bits(crate::arch::aarch64::cpu::mmfr0());
    let mut asids = AsidAllocator::new(objects.asid_limit.unwrap_or(hardware_asids).min(hardware_asids), MAX_CORES);
    for spec in specs {
        let fresh = asids.allocate(&[]);
        if fresh.rolled_over {
            mmu::flush_all_asids();
        }
        match load(spec, fresh.asid, granule) {
            Ok(task) => {
                ipc.add_task(spec.priority);
                tasks.push(task);
            }
            Err(e) => {
                println!("task {}: cannot load: {e}", spec.name);
                tasks.into_iter().for_each(retire);
                return nothing();
            }
        }
    }
    // A fresh Ipc numbers objects from 0, so the specs' indices are the ids.
    for &owner in objects.endpoint_owners {
        ipc.add_endpoint(owner);
    }
    for _ in 0..objects.notifications {
        ipc.add_notification();
    }
    for &endpoint in objects.death_notices {
        ipc.notify_client_deaths(endpoint);
    }
    for &(endpoint, notification) in objects.bound_notifications {
        ipc.bind_notification(endpoint, notification);
    }
    for &(t, words) in objects.start_arguments {
        if let Some(task) = tasks.get_mut(t) {
            task.frame.x[..2].copy_from_slice(&words);
        }
    }
    if let Some(holder) = &objects.memory_holder {
        let task = &mut tasks[holder.task];
        task.caps = holder.caps.to_vec();
        if let Err(e) = memory::map_windows(task) {
            println!("task {}: cannot map its memory windows: {e:?}", task.name);
            tasks.into_iter().for_each(retire);
            return nothing();
        }
    }
    for (t, spec) in specs.iter().enumerate() {
        for &(object, badge) in spec.handles {
            ipc.grant(t, object, badge);
        }
        if let Some(core) = spec.core {
            ipc.pin(t, core);
        }
    }
    // Preemption: each core's virtual timer through the GIC, if there is one.
    let timer = timer_intid.filter(|_| GIC.lock().is_some()).map(|intid| (intid, quantum()));
    let system = System {
        ipc,
        tasks,
        current: [None; MAX_CORES],
        granule,
        kernel: core::array::from_fn(|_| KernelContext::default()),
        in_user: 0,
        idle_in_wfi: 0,
        user_space_live: 0,
        active: true,
        timer,
        ended: Vec::new(),
        asids,
        retried_faults: 0,
        table_changes: 0,
        reschedule_ipis: 0,
        fast_ipc: 0,
        wfi_wakeups: 0,
        fp_live: 0,
        fp_saves: 0,
        left_loaded: [None; MAX_CORES],
        dying: Vec::new(),
        boot_tasks: specs.len(),
        launcher: objects.launcher.map(|(task, programs)| lifetime::Launcher::new(task, programs)),
        agent_edits_tables: agent.is_some(),
        finished: false,
    };
    set_user_trap_handler(Some(user_trap));
    let mut system = system;
    if let Some(agent) = agent.as_deref_mut() {
        let mut tables: Vec<&mut PageTable<KernelHw>> = system.tasks.iter_mut().map(|t| &mut t.tables).collect();
        if let Err(e) = agent.prepare(&mut tables) {
            println!("tasks: the boot core's agent cannot start: {e}");
            set_user_trap_handler(None);
            system.tasks.into_iter().for_each(retire);
            return nothing();
        }
    }
    {
        let mut guard = SYSTEM.lock();
        // ASID values start again with this run: whatever an earlier run
        // left in any core's TLB goes first, as at a rollover.
        mmu::flush_all_asids();
        *guard = Some(system);
        ACTIVE.store(true, Ordering::Release);
        wake_cores();
    }
    match agent {
        Some(agent) => run_agent(agent),
        None => run_core(core_id()),
    }
    // Done here: stop the other cores looking, wait until they are out.
    {
        let mut guard = SYSTEM.lock();
        if let Some(system) = guard.as_mut() {
            system.active = false;
        }
        ACTIVE.store(false, Ordering::Release);
        wake_cores();
    }
    // Every core out of its task and off the run's tables before any table
    // is freed (a core still pointing TTBR0 at them could walk freed,
    // reused frames speculatively).
    let deadline = timer::counter() + timer::frequency();
    while SYSTEM.lock().as_ref().is_some_and(|s| s.in_user != 0 || s.user_space_live != 0)
        && timer::counter() < deadline
    {
        core::hint::spin_loop();
    }
    timer::stop_virtual();
    set_user_trap_handler(None);
    let Some(system) = SYSTEM.lock().take() else { return nothing() };
    // The run's own tasks (the launcher's children are counted).
    let boot = &system.tasks[..system.boot_tasks];
    let statuses = boot.iter().map(|t| (t.name, t.status)).collect();
    let ended = system.ended.iter().map(|&t| system.tasks[t].name).collect();
    let ran_on = boot.iter().map(|t| t.ran_on).collect();
    let asid_rollovers = system.asids.rollovers();
    let (retried_faults, reschedule_ipis, fast_ipc) = (system.retried_faults, system.reschedule_ipis, system.fast_ipc);
    let wfi_wakeups = system.wfi_wakeups;
    let tables_retired = system.user_space_live == 0;
    let fp_loads = boot.iter().map(|t| t.fp_loads).collect();
    let fp_saves = system.fp_saves;
    let (spawned, reaped) = system.launcher.as_ref().map_or((0, 0), |l| (l.spawned, l.reaped));
    if tables_retired {
        system.tasks.into_iter().for_each(retire);
    } else {
        // A core that never let go of a task's tables: keeping them
        // (leaked) is safe, freeing them is not.
        let cores = folio_abi::report::Hex(system.user_space_live as u64);
        crate::result!("tasks.retire", false, cores_still_walking = cores);
        core::mem::forget(system.tasks);
    }
    Outcome {
        statuses,
        ended,
        ran_on,
        asid_rollovers,
        retried_faults,
        reschedule_ipis,
        fast_ipc,
        wfi_wakeups,
        tables_retired,
        fp_loads,
        fp_saves,
        spawned,
        reaped,
    }
}

/// The boot core runs `agent` step by step, each step with the task set
/// locked, until every task has ended (tasks run on the other cores).
fn run_agent(agent: &mut dyn BootCoreAgent) {
    let mut working = true;
    loop {
        {
            let mut guard = SYSTEM.lock();
            let Some(system) = guard.as_mut() else { return };
            if !system.active || system.finished {
                return;
            }
            if working {
                let mut tables: Vec<&mut PageTable<KernelHw>> =
                    system.tasks.iter_mut().map(|t| &mut t.tables).collect();
                working = agent.step(&mut tables);
                system.table_changes += 1;
            }
        }
        // Let the tasks run between steps.
        for _ in 0..2000 {
            core::hint::spin_loop();
        }
    }
}

/// Whether a task set is running: idle secondaries read this without the
/// system lock.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Bumped (under the system lock) whenever work may have appeared: idle
/// cores wait for it to change instead of polling the lock.
static WORK: AtomicU64 = AtomicU64::new(0);

/// Announces new work and wakes cores waiting in WFE. Call with the system
/// lock held, after changing what is ready, so no wake-up is lost.
fn wake_cores() {
    WORK.fetch_add(1, Ordering::Release);
    crate::arch::aarch64::barrier::publish_and_wake();
}

/// Sets up this core's GIC interface for its virtual timer's PPI, so the
/// timer preempts the tasks it runs; every core calls it once at start.
/// An error when the GIC cannot serve this core (no redistributor of the
/// DTB's regions is this core's): it must then run no task.
pub fn init_core_interrupts(core: usize, timer_intid: Option<u32>) -> Result<(), &'static str> {
    CORE_MPIDR[core.min(MAX_CORES - 1)].store(crate::arch::aarch64::cpu::mpidr(), Ordering::Release);
    let Some(intid) = timer_intid else { return Ok(()) };
    GIC.lock().as_ref().map_or(Ok(()), |gic| gic.init_and_enable_ppi(crate::arch::aarch64::cpu::mpidr(), intid))
}

/// Waits until `WORK` moves on from `seen` (or the run ends).
fn wait_for_work(seen: u64) {
    while WORK.load(Ordering::Acquire) == seen && ACTIVE.load(Ordering::Acquire) {
        aarch64_cpu::asm::wfe();
    }
}

/// Whether a task set is running (for idle secondary cores).
pub fn active() -> bool {
    ACTIVE.load(Ordering::Acquire)
}

/// Runs tasks on this core until none is left or the run ends. An idle
/// core waits for its own timer (WFI) while timed receives are pending,
/// and for an event (WFE) otherwise.
pub fn run_core(core: usize) {
    if core >= MAX_CORES {
        return;
    }
    timer::allow_el0_counter_reads();
    crate::arch::aarch64::pmu::allow_el0_cycle_counter(true);
    loop {
        let mut guard = SYSTEM.lock();
        let Some(system) = guard.as_mut() else { break };
        if !system.active || system.finished {
            break;
        }
        if let Some(task) = system.ipc.next_to_run_on(core) {
            if let Some((_, ticks)) = system.timer {
                timer::arm_virtual(ticks);
            }
            deliver_results(system);
            system.current[core] = Some(task);
            // TTBR0 moves to `task` now: whatever this core left loaded is
            // no longer held here.
            system.left_loaded[core] = None;
            system.tasks[task].ran_on |= 1 << core;
            system.in_user |= 1 << core;
            let frame: *mut TrapFrame = &mut *system.tasks[task].frame;
            switch_to(system, core, task);
            let kernel: *mut KernelContext = &mut system.kernel[core];
            drop(guard);
            // SAFETY: `kernel` points into SYSTEM's static storage, which
            // stays in place until this run ends; only enter_user and
            // user_trap's exit path on this core use it, never while the
            // lock is held. `frame` is the task's boxed save area, which
            // only this core touches while the task runs here.
            run_user(frame, unsafe { &mut *kernel });
            timer::stop_virtual();
            if let Some(system) = SYSTEM.lock().as_mut() {
                system.in_user &= !(1 << core);
            }
            continue;
        }
        // Nothing this core may run now: it drops the last task's tables
        // (an idle core must not keep walking them: that task may block
        // for long, or die and have its tables freed). Every idle core
        // expires the
        // deadlines that are due; a set with no deadline pending, nothing
        // ready and nothing running can never move again.
        drop_user_space(system, core);
        let readied_before = system.ipc.readied();
        let deadline_pending = system.timer.is_some() && system.ipc.expire(timer::counter()).is_some();
        if system.ipc.readied() != readied_before {
            // A deadline passed: the task it readied may be this core's to
            // run (look again before waiting), or another's (wake them).
            wake_cores();
            continue;
        }
        if system.ipc.any_ready() {
            // Ready, but for other cores; whoever made it ready woke them.
            // (Waking them every time would keep idle cores waking each
            // other.)
            let seen = WORK.load(Ordering::Acquire);
            drop(guard);
            wait_for_work(seen);
            continue;
        }
        let nobody_running = system.in_user == 0;
        match (system.timer, deadline_pending) {
            // A deadline is pending: this core's own timer wakes it to
            // expire it (whichever core the task may run on; no other core
            // is bound to be awake).
            (Some(timer_config), true) => {
                // Said under the lock, so whoever makes work for this core
                // after it sends the SGI, which ends the WFI (or keeps it
                // from starting: the interrupt stays pending).
                system.idle_in_wfi |= 1 << core;
                drop(guard);
                idle_for_the_timer(timer_config);
            }
            (_, false) if nobody_running => {
                println!("tasks: every remaining task is blocked; stopping them");
                system.active = false;
                drop(guard);
                wake_cores();
                break;
            }
            _ => {
                let seen = WORK.load(Ordering::Acquire);
                drop(guard);
                wait_for_work(seen);
            }
        }
    }
    crate::arch::aarch64::pmu::allow_el0_cycle_counter(false);
    match SYSTEM.lock().as_mut() {
        Some(system) => drop_user_space(system, core),
        None => mmu::no_user_space(),
    }
}

/// Waits (WFI wakes on a pending interrupt even with IRQs masked) for this
/// core's timer and expires deadlines.
fn idle_for_the_timer((_, ticks): (u32, u64)) {
    timer::arm_virtual(ticks);
    aarch64_cpu::asm::wfi();
    timer::stop_virtual();
    let mut woken_by_sgi = false;
    if let Some(gic) = GIC.lock().as_ref() {
        let taken = gic.acknowledge();
        woken_by_sgi = taken.intid == RESCHEDULE_SGI;
        if taken.intid != SPURIOUS {
            gic.end_of_interrupt(taken);
        }
    }
    if let Some(system) = SYSTEM.lock().as_mut() {
        system.idle_in_wfi &= !(1 << core_id());
        system.wfi_wakeups += u64::from(woken_by_sgi);
        let readied_before = system.ipc.readied();
        system.ipc.expire(timer::counter());
        if system.ipc.readied() != readied_before {
            wake_cores();
            poke_cores(system, core_id());
        }
    }
}

/// Writes the IPC results pending (woken and failed tasks') into their
/// saved registers: none of those tasks runs anywhere, or it is the
/// calling one, whose save area is its registers.
#[inline(always)]
fn deliver_results(system: &mut System) {
    if system.ipc.results_pending() {
        deliver_pending_results(system);
    }
}

#[inline(never)]
fn deliver_pending_results(system: &mut System) {
    let tasks = &mut system.tasks;
    system.ipc.deliver_results(|task, result, delivery| {
        syscall::set_result_registers(&mut tasks[task].frame.x, result);
        if let Some(x6) = delivery.x6 {
            tasks[task].frame.x[6] = x6;
        }
        if let Some((from, words)) = delivery.copy {
            syscall::copy_message(tasks[from].ipc_buffer, tasks[task].ipc_buffer, words);
        }
    });
}

/// This core switches from task `current` to `next`: FP/SIMD handed over
/// lazily, `next`'s address space, and its save area to resume from.
#[inline(always)]
fn switch_task(system: &mut System, core: usize, current: TaskId, next: TaskId) -> *mut TrapFrame {
    switch_out_fp(system, core, current);
    switch_to(system, core, next);
    system.current[core] = Some(next);
    system.tasks[next].ran_on |= 1 << core;
    &mut *system.tasks[next].frame
}

/// This core's task leaves it: its FP/SIMD registers go to its save area
/// if it used them since it was switched in (otherwise the save area holds
/// them already), and EL0 traps FP/SIMD again, so the next task cannot see
/// them. Nothing of the state stays in this core, so the task may run on
/// any core next without an IPI.
#[inline(always)]
fn switch_out_fp(system: &mut System, core: usize, task: TaskId) {
    if system.fp_live & (1 << core) != 0 {
        if system.tasks[task].status.is_none() {
            fpsimd::save(&mut system.tasks[task].fp);
            system.fp_saves += 1;
        }
        fpsimd::allow_el0(false);
        system.fp_live &= !(1 << core);
    }
}

/// REPLY_POLL on the IPC fast path (`Ipc::fast_reply_poll`), when it
/// takes it: the caller runs here now with the reply, and the server,
/// ready at its idle priority, is news for the other cores (as on the
/// general path), which may take it. Out of line: the other traps' path
/// stays as short as it was.
#[inline(never)]
fn fast_reply_poll(system: &mut System, core: usize, current: TaskId) -> Option<*mut TrapFrame> {
    let x = &system.tasks[current].frame.x;
    let (handle, msg, idle) = (x[0], [x[1], x[2], x[3], x[4]], x[5]);
    let switch = system.ipc.fast_reply_poll(current, handle, msg, idle, core).ok()?;
    syscall::set_result_registers(&mut system.tasks[current].frame.x, &switch.stepped_aside);
    syscall::set_result_registers(&mut system.tasks[switch.next].frame.x, &switch.reply);
    system.fast_ipc += 1;
    wake_cores();
    poke_cores(system, core);
    Some(switch_task(system, core, current, switch.next))
}

/// Every exception from EL0: system calls, faults. `saved` is the running
/// task's save area (its registers, just saved); returns the save area to
/// resume.
fn user_trap(saved: *mut TrapFrame) -> *mut TrapFrame {
    let core = core_id();
    let mut guard = SYSTEM.lock();
    let Some(system) = guard.as_mut() else { return saved };
    let Some(current) = system.current.get(core).copied().flatten() else { return saved };
    // The registers are reached through the task table from here on (never
    // through `saved`, the same memory).
    let readied_before = system.ipc.readied();
    let (esr, vector_index) = (system.tasks[current].frame.esr, system.tasks[current].frame.vector_index);
    let class = (esr >> 26) & 0x3f;
    let number = system.tasks[current].frame.x[8];
    if class == 0x15
        && vector_index == 8
        && (number == folio_core::syscall::CALL || number == folio_core::syscall::REPLY_RECV)
    {
        let x = &system.tasks[current].frame.x;
        let (handle, msg) = (x[0], [x[1], x[2], x[3], x[4]]);
        let fast = if number == folio_core::syscall::CALL {
            system.ipc.fast_call(current, handle, msg, core)
        } else {
            system.ipc.fast_reply_recv(current, handle, msg, core)
        };
        if let Ok((next, result)) = fast {
            // The fast path (folio_core::ipc::fastpath): the state is as
            // the general path would leave it, nobody else became ready
            // (no wake-ups for other cores), and `next` runs here now.
            syscall::set_result_registers(&mut system.tasks[next].frame.x, &result);
            system.fast_ipc += 1;
            let resume = switch_task(system, core, current, next);
            drop(guard);
            return resume;
        }
    }

    let mut yielded = false;
    // What a `write` asked to print, printed after the system lock is gone.
    let mut output: Option<Vec<u8>> = None;
    if vector_index == 9 {
        // An interrupt while a task ran: the time slice ended (or noise).
        if let Some(gic) = GIC.lock().as_ref() {
            let taken = gic.acknowledge();
            let intid = taken.intid;
            if let Some((timer_intid, ticks)) = system.timer
                && intid == timer_intid
            {
                // The timer's line is level-triggered: re-arming lowers it,
                // and it must be low before the EOI, or a hypervisor (KVM)
                // queues a fresh copy that the next task takes at once. A
                // copy whose condition no longer holds is ignored.
                let fired = timer::condition_met();
                timer::arm_virtual(ticks);
                if fired {
                    system.ipc.expire(timer::counter());
                    yielded = true;
                }
            }
            if intid != SPURIOUS {
                gic.end_of_interrupt(taken);
            }
            if intid == RESCHEDULE_SGI {
                system.reschedule_ipis += 1;
                yielded = true;
            }
        }
    } else if class == 0x15 && vector_index == 8 {
        if number == folio_core::syscall::REPLY_POLL
            && let Some(resume) = fast_reply_poll(system, core, current)
        {
            drop(guard);
            return resume;
        }
        let regs = &system.tasks[current].frame.x;
        let (number, args) = (regs[8], [regs[0], regs[1], regs[2], regs[3], regs[4]]);
        let outcome = syscall::dispatch(system, current, number, args);
        if let Some(result) = syscall::result_registers(&outcome) {
            syscall::set_result_registers(&mut system.tasks[current].frame.x, &result);
        }
        match outcome {
            Ok(Next::Print(bytes)) => output = Some(bytes),
            Ok(Next::Yield | Next::IpcYield) => yielded = true,
            _ => {}
        }
    } else if class == fpsimd::EC_FP_SIMD_TRAPPED && vector_index == 8 && system.fp_live & (1 << core) == 0 {
        // The task's first FP/SIMD instruction since it was switched in:
        // its registers come back and it runs that instruction again.
        fpsimd::restore(&system.tasks[current].fp);
        fpsimd::allow_el0(true);
        system.fp_live |= 1 << core;
        system.tasks[current].fp_loads += 1;
    } else if system.tasks[current].last_retry
        != Some((system.tasks[current].frame.elr, system.tasks[current].frame.far, system.table_changes))
        && retry_after_change(&mut system.tasks[current])
    {
        // The access met a mapping another core was changing (break-before-
        // make); the change is complete now (it held the lock this trap
        // waited for), so the instruction runs again. The same fault again
        // with no change to any table in between would be a kernel bug (a
        // translation the TLB kept): it is reported below, not retried.
        system.retried_faults += 1;
        let frame = &system.tasks[current].frame;
        system.tasks[current].last_retry = Some((frame.elr, frame.far, system.table_changes));
    } else {
        report_fault(&system.tasks[current]);
        end_task(system, current, FAULT_STATUS);
    }
    let next = if system.finished {
        // The launcher ended: every core leaves its task (the run is over).
        None
    } else if system.ipc.state(current) == State::Ready && !yielded {
        Some(current)
    } else {
        system.ipc.requeue(current);
        system.ipc.next_to_run_on(core)
    };
    // Results go to tasks that are not running anywhere (woken or failed),
    // and to this one.
    deliver_results(system);
    // Wake the other cores only for news: a task became ready in this trap,
    // or the end. (Waking on every trap would keep idle cores waking each
    // other and contending for the system lock.)
    if system.ipc.readied() != readied_before || system.finished {
        wake_cores();
        poke_cores(system, core);
    }
    match next {
        Some(next) => {
            let resume = if next != current { switch_task(system, core, current, next) } else { saved };
            drop(guard);
            if let Some(bytes) = output {
                print_task_output(&bytes);
            }
            resume
        }
        None => {
            switch_out_fp(system, core, current);
            system.current[core] = None;
            // Its tables stay in TTBR0 until this core switches or idles.
            system.left_loaded[core] = Some(current);
            let kernel: *const KernelContext = &system.kernel[core];
            drop(guard);
            if let Some(bytes) = output {
                print_task_output(&bytes);
            }
            // SAFETY: `kernel` is this core's context in SYSTEM, filled by
            // the run_user call in `run_core`, which is still on this stack;
            // the system lock was just released and nothing else is held.
            unsafe { leave_user_mode(kernel) }
        }
    }
}

/// Prints what a task's fault was: a result line and the decoded report,
/// with the label the task gave the faulting address, if any.
#[cold]
#[inline(never)]
fn report_fault(task: &UserTask) {
    let (name, frame) = (task.name, &task.frame);
    let esr = frame.esr;
    match Vector::from_index(frame.vector_index) {
        Some(vector) => {
            let report = ExceptionReport { vector, esr, far: frame.far, elr: frame.elr, spsr: frame.spsr };
            // A write that hit a read-only page: a permission fault
            // (FSC 0x0c..=0x0f) of a data abort on a write.
            let write_to_read_only = report.exception_class() == 0x24 && report.is_write() && esr & 0x3c == 0x0c;
            let label = task.labels.name(frame.far, FaultKind { write_to_read_only });
            match label {
                Some(label) => print!(
                    "{PREFIX}task.fault fail task={}{} label={}\n",
                    Value(name),
                    ReportFields(&report),
                    Value(label)
                ),
                None => print!("{PREFIX}task.fault fail task={}{}\n", Value(name), ReportFields(&report)),
            }
            if let Some(label) = label {
                println!("task {name}: the faulting address is labelled \"{label}\"");
            }
            print!("task {name} faulted and was stopped: {report}");
        }
        None => crate::result!("task.fault", false, task = name, vector = frame.vector_index),
    }
}

/// Task `write`s printed, and how many of those while the system lock was
/// held (kernel test `task_output_is_printed_without_the_system_lock`).
pub static TASK_WRITES: AtomicU64 = AtomicU64::new(0);
pub static TASK_WRITES_UNDER_LOCK: AtomicU64 = AtomicU64::new(0);

/// Prints what a task's `write` copied in, with the system lock released,
/// so a slow UART stalls only this core (its own task is in the call).
/// Out of line and cold: most traps print nothing.
#[cold]
#[inline(never)]
fn print_task_output(bytes: &[u8]) {
    TASK_WRITES.fetch_add(1, Ordering::Relaxed);
    if SYSTEM.try_lock().is_none() {
        TASK_WRITES_UNDER_LOCK.fetch_add(1, Ordering::Relaxed);
    }
    print!("{}", String::from_utf8_lossy(bytes));
}
