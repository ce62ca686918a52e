//! EL0 tasks: loading the packaged programs into their own address spaces,
//! the system-call layer, and switching between tasks.
//!
//! Owns: the task set of one run ([`SYSTEM`]), each task's lower-half tree
//! (TTBR0, with its own ASID) and frames. The IPC rules live in
//! [`folio::ipc`], the argument checks in [`folio::syscall`]; this module
//! only moves registers between them and the CPU.
//! Must never: touch a task's memory except through its own translations
//! (checked by `syscall::user_buffer`) and the linear map; keep the
//! system lock while leaving task mode.
//!
//! Not yet here (issue 6): timer preemption through the GIC, notifications,
//! timed and non-blocking IPC, dynamic task creation. Tasks run until they
//! block, yield, exit or fault.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use folio::arch::aarch64::exception::{KernelContext, TrapFrame, USER_TRAP_HANDLER, leave_user_mode, run_user};
use folio::arch::aarch64::mmu::{self, KernelHw};
use folio::arch::aarch64::timer;
use folio::drivers::gic::{GIC, SPURIOUS};
use folio::exception::{ExceptionReport, Vector};
use folio::ipc::{Ipc, Object, State, TaskId};
use folio::mm::Granule;
use folio::mm::frame::KERNEL_FRAMES;
use folio::mm::layout;
use folio::mm::paging::{Attributes, PageTable, Policy, Unit};
use folio::sync::SpinLock;
use folio::syscall::{self, SysError};
use folio::{elf, print, println};

/// Top of every task's stack (64 KiB, at least one page of any granule).
pub const STACK_TOP: u64 = 0x7F_0000_0000;
const STACK_SIZE: u64 = 64 << 10;
/// Exit status of a task stopped by a fault.
pub const FAULT_STATUS: u64 = 139;

struct UserTask {
    name: &'static str,
    tables: PageTable<KernelHw>,
    asid: u16,
    frame: TrapFrame,
    frames: Vec<u64>,
    status: Option<u64>,
}

struct System {
    ipc: Ipc,
    tasks: Vec<UserTask>,
    current: TaskId,
    granule: Granule,
    kernel: KernelContext,
    /// The virtual timer's interrupt, when the GIC takes it (preemption).
    timer: Option<(u32, u64)>,
    /// Tasks in the order they ended.
    ended: Vec<TaskId>,
}

/// Ticks per time slice: 10 ms of the virtual counter.
fn quantum() -> u64 {
    (timer::frequency() / 100).max(1)
}

static SYSTEM: SpinLock<Option<System>> = SpinLock::new(None);

/// A program and how it is set up: its handles name endpoints and
/// notifications by their index in the run (see [`run`]) with a badge.
pub struct Spec {
    pub name: &'static str,
    pub image: &'static [u8],
    pub priority: u8,
    pub handles: &'static [(Object, u64)],
}

/// The objects of a run: endpoint owners (task index), the number of
/// notifications, and which notification an endpoint's owner wants
/// signalled when a client dies.
pub struct Objects<'a> {
    pub endpoint_owners: &'a [usize],
    pub notifications: usize,
    pub death_notifications: &'a [(usize, usize)],
}

fn alloc_zeroed_frame(granule: Granule) -> Result<u64, String> {
    let pa = KERNEL_FRAMES.lock().as_mut().and_then(|f| f.alloc(0).ok()).ok_or("out of frames")?;
    let va = layout::linear(pa).ok_or("frame beyond the linear map")?;
    // SAFETY: a frame just allocated, mapped read/write by the linear map.
    unsafe { core::ptr::write_bytes(va as *mut u8, 0, granule.size() as usize) };
    Ok(pa)
}

/// Makes instructions written through the linear map visible to
/// instruction fetch (clean to the point of unification, invalidate the
/// instruction caches).
fn sync_icache(va: u64, len: u64) {
    let mut line = va & !63;
    while line < va + len {
        // SAFETY: cache maintenance on mapped memory changes no data.
        unsafe { core::arch::asm!("dc cvau, {}", in(reg) line, options(nostack)) };
        line += 64;
    }
    // SAFETY: barriers and instruction-cache invalidation only.
    unsafe { core::arch::asm!("dsb ish", "ic ialluis", "dsb ish", "isb", options(nostack)) };
}

/// Loads `spec` into a fresh address space with `asid`.
fn load(spec: &Spec, asid: u16, granule: Granule) -> Result<UserTask, String> {
    let program = elf::parse(spec.image).map_err(|e| format!("{e}"))?;
    let mut tables = mmu::user_tables(granule, asid).map_err(|e| format!("{e}"))?;
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
                    sync_icache(dst, src.len() as u64);
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
    let task = UserTask {
        name: spec.name,
        tables,
        asid,
        frame: TrapFrame::user(program.entry, STACK_TOP),
        frames,
        status: None,
    };
    match result {
        Ok(()) => Ok(task),
        Err(e) => {
            retire(task);
            Err(e)
        }
    }
}

/// Frees a task's frames and tables once its ASID has left every TLB.
fn retire(mut task: UserTask) {
    mmu::flush_asid(task.asid);
    if let Some(pool) = KERNEL_FRAMES.lock().as_mut() {
        let _ = pool.free_many(&mut task.frames);
    }
    let _hardware = task.tables.destroy();
}

/// How a run ended: each task's name and exit status (`None`: never
/// finished, blocked forever), and the order in which they ended.
pub struct Outcome {
    pub statuses: Vec<(&'static str, Option<u64>)>,
    pub ended: Vec<&'static str>,
}

/// Runs `specs` until every task has exited or faulted (or nothing can run
/// any more). With `timer_intid` (the virtual timer's interrupt) and a GIC,
/// tasks are preempted every 10 ms.
pub fn run(specs: &[Spec], objects: &Objects<'_>, granule: Granule, timer_intid: Option<u32>) -> Outcome {
    let nothing = || Outcome { statuses: Vec::new(), ended: Vec::new() };
    let mut ipc = Ipc::new();
    let mut tasks = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        match load(spec, i as u16 + 1, granule) {
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
    for &(endpoint, notification) in objects.death_notifications {
        ipc.notify_client_deaths(endpoint, notification);
    }
    for (t, spec) in specs.iter().enumerate() {
        for &(object, badge) in spec.handles {
            ipc.grant(t, object, badge);
        }
    }
    let Some(first) = ipc.next_to_run() else { return nothing() };
    let frame = tasks[first].frame;
    mmu::switch_user_space(tasks[first].tables.root(), tasks[first].asid);
    // Preemption: the virtual timer through the GIC, if there is one.
    let timer = timer_intid.filter(|_| GIC.lock().is_some()).map(|intid| (intid, quantum()));
    if let (Some((intid, ticks)), Some(gic)) = (timer, GIC.lock().as_ref()) {
        gic.init_and_enable_ppi(intid);
        timer::allow_el0_counter_reads();
        timer::arm_virtual(ticks);
    }
    folio::arch::aarch64::pmu::allow_el0_cycle_counter(true);
    let system =
        System { ipc, tasks, current: first, granule, kernel: KernelContext::default(), timer, ended: Vec::new() };
    *SYSTEM.lock() = Some(system);
    *USER_TRAP_HANDLER.lock() = Some(user_trap);
    let kernel: *mut KernelContext = match SYSTEM.lock().as_mut() {
        Some(system) => &mut system.kernel,
        None => return nothing(),
    };
    // SAFETY: `kernel` points into SYSTEM's static storage, which stays in
    // place until run_user returns; only enter_user and user_trap's exit
    // path use it, never while the lock is held.
    run_user(&frame, unsafe { &mut *kernel });
    timer::stop_virtual();
    folio::arch::aarch64::pmu::allow_el0_cycle_counter(false);
    mmu::no_user_space();
    *USER_TRAP_HANDLER.lock() = None;
    let Some(system) = SYSTEM.lock().take() else { return nothing() };
    let statuses = system.tasks.iter().map(|t| (t.name, t.status)).collect();
    let ended = system.ended.iter().map(|&t| system.tasks[t].name).collect();
    system.tasks.into_iter().for_each(retire);
    Outcome { statuses, ended }
}

/// Every exception from EL0: system calls, faults.
fn user_trap(frame: &mut TrapFrame) {
    let mut guard = SYSTEM.lock();
    let Some(system) = guard.as_mut() else { return };
    let current = system.current;
    system.tasks[current].frame = *frame;
    let esr = frame.esr;
    let mut yielded = false;
    if frame.vector_index == 9 {
        // An interrupt while a task ran: the time slice ended (or noise).
        if let Some(gic) = GIC.lock().as_ref() {
            let intid = gic.acknowledge();
            if intid != SPURIOUS {
                gic.end_of_interrupt(intid);
            }
            if let Some((timer_intid, ticks)) = system.timer
                && intid == timer_intid
            {
                timer::arm_virtual(ticks);
                system.ipc.expire(timer::counter());
                yielded = true;
            }
        }
    } else if (esr >> 26) & 0x3f == 0x15 && frame.vector_index == 8 {
        let x = frame.x;
        let msg = [x[1], x[2], x[3], x[4]];
        match x[8] {
            syscall::EXIT => {
                system.tasks[current].status = Some(x[0]);
                system.ended.push(current);
                system.ipc.exit(current, x[0]);
            }
            syscall::WRITE => system.tasks[current].frame.x[0] = write(system, current, x[0], x[1]),
            syscall::YIELD => {
                system.tasks[current].frame.x[0] = 0;
                yielded = true;
            }
            syscall::CALL => system.ipc.call(current, x[0], msg),
            syscall::RECV => system.ipc.recv(current, x[0]),
            syscall::REPLY => system.ipc.reply(current, [x[0], x[1], x[2], x[3]]),
            syscall::REPLY_RECV => system.ipc.reply_recv(current, x[0], msg),
            syscall::SIGNAL => system.ipc.signal(current, x[0]),
            syscall::WAIT => system.ipc.wait(current, x[0]),
            syscall::RECV_NONBLOCKING => system.ipc.recv_nonblocking(current, x[0]),
            syscall::RECV_TIMED => system.ipc.recv_timed(current, x[0], timer::counter().saturating_add(x[1])),
            _ => system.tasks[current].frame.x[0] = SysError::Unknown as u64,
        }
    } else {
        let name = system.tasks[current].name;
        match Vector::from_index(frame.vector_index) {
            Some(vector) => {
                let report = ExceptionReport { vector, esr, far: frame.far, elr: frame.elr, spsr: frame.spsr };
                print!("task {name} faulted and was stopped: {report}");
            }
            None => println!("task {name} stopped: vector {}", frame.vector_index),
        }
        system.tasks[current].status = Some(FAULT_STATUS);
        system.ended.push(current);
        system.ipc.exit(current, FAULT_STATUS);
    }
    let mut next = if system.ipc.state(current) == State::Ready && !yielded {
        Some(current)
    } else {
        system.ipc.requeue(current);
        system.ipc.next_to_run()
    };
    if next.is_none() {
        next = idle_until_a_deadline(system);
    }
    for t in 0..system.tasks.len() {
        if let Some(result) = system.ipc.take_result(t) {
            system.tasks[t].frame.x[..6].copy_from_slice(&result);
        }
    }
    match next {
        Some(next) => {
            if next != current {
                mmu::switch_user_space(system.tasks[next].tables.root(), system.tasks[next].asid);
                system.current = next;
            }
            *frame = system.tasks[next].frame;
        }
        None => {
            if !system.ipc.all_dead() {
                println!("tasks: every remaining task is blocked; stopping them");
            }
            let kernel: *const KernelContext = &system.kernel;
            drop(guard);
            // SAFETY: `kernel` is SYSTEM's context, filled by the run_user
            // call in `run`, which is still on this stack; the system lock
            // was just released and this handler holds nothing else.
            unsafe { leave_user_mode(kernel) }
        }
    }
}

/// Nothing can run, but timed receives are pending: wait for interrupts
/// (WFI wakes on a pending interrupt even with IRQs masked) and let the
/// timer expire deadlines until a task is ready. `None` when no deadline
/// can ever wake anyone.
fn idle_until_a_deadline(system: &mut System) -> Option<TaskId> {
    let (timer_intid, ticks) = system.timer?;
    system.ipc.expire(timer::counter())?;
    loop {
        aarch64_cpu::asm::wfi();
        if let Some(gic) = GIC.lock().as_ref() {
            let intid = gic.acknowledge();
            if intid != SPURIOUS {
                gic.end_of_interrupt(intid);
            }
            if intid == timer_intid {
                timer::arm_virtual(ticks);
            }
        }
        let pending = system.ipc.expire(timer::counter());
        if let Some(next) = system.ipc.next_to_run() {
            return Some(next);
        }
        pending?;
    }
}

/// `write`: the buffer must lie in the task's own readable mappings.
fn write(system: &mut System, task: TaskId, va: u64, len: u64) -> u64 {
    let granule = system.granule;
    let tables = &mut system.tasks[task].tables;
    let pieces = syscall::user_buffer(va, len, granule.size(), &mut |page| {
        tables.translate(page).filter(|m| m.attributes.user).map(|m| m.pa + (page - m.va))
    });
    match pieces {
        Ok(pieces) => {
            for (pa, n) in pieces {
                let Some(src) = layout::linear(pa) else { return SysError::BadAddress as u64 };
                // SAFETY: the range was translated through the task's own
                // user mappings and lies in RAM the linear map covers.
                let bytes = unsafe { core::slice::from_raw_parts(src as *const u8, n as usize) };
                print!("{}", String::from_utf8_lossy(bytes));
            }
            0
        }
        Err(e) => e as u64,
    }
}
