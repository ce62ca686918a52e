//! Tasks that come and go while a run goes on: the launcher starting
//! packaged programs (`spawn`, `folio_abi::spawn`), and dead tasks cleaned
//! up while others run (`reap`).
//!
//! Owns: the launcher's programs, badges and count of children; when a dead
//! task's memory, tables and ASID are freed, and when its slot is reused.
//! Must never: free a task's frames or tables, or give its ASID back, while
//! any core's TTBR0 still holds its tables (`holds_tables`); reuse a slot
//! something still refers to (`folio_core::ipc::Ipc::recycle` decides);
//! let the launcher have more than [`MAX_LIVE`] children at once, or make
//! a child whose death notice could not be queued.

use alloc::vec::Vec;

use folio_abi::spawn::{FIRST_BADGE, MAX_HANDLES, MAX_LIVE, NO_HANDLE, OWN_ENDPOINT};
use folio_core::ipc::{Object, TaskId};
use folio_core::syscall::SysError;

use super::syscall::Next;
use super::{Program, Spec, System, asids_held_elsewhere, core_id, holds_tables, load, poke_cores, wake_cores};
use crate::arch::aarch64::mmu;
use crate::frames::KERNEL_FRAMES;

/// The task that may start others, and what it started.
pub(super) struct Launcher {
    pub(super) task: TaskId,
    programs: &'static [Program],
    /// The next child's badge: counts up, so none is handed out twice.
    next_badge: u64,
    /// Children started and not yet recycled (alive, dying, or waiting for
    /// a server to reply to them): at most [`MAX_LIVE`].
    children: usize,
    /// Children started, and children ended and cleaned up.
    pub(super) spawned: u64,
    pub(super) reaped: u64,
    /// Children cleaned up whose slot something still refers to.
    unrecycled: Vec<TaskId>,
}

impl Launcher {
    pub(super) fn new(task: TaskId, programs: &'static [Program]) -> Launcher {
        Launcher {
            task,
            programs,
            next_badge: FIRST_BADGE,
            children: 0,
            spawned: 0,
            reaped: 0,
            unrecycled: Vec::with_capacity(MAX_LIVE),
        }
    }
}

/// What one entry of SPAWN's handle list gives the child.
#[derive(Clone, Copy, PartialEq)]
enum Given {
    Passed(Object),
    OwnEndpoint,
}

/// SPAWN by `caller`: x0 = program, x1 = priority, x2 = handles (packed),
/// x3/x4 = the child's x0/x1. Loads the program into a fresh address space
/// (its frames from the kernel's pool; none kept if that fails) and makes
/// it ready; returns the child's badge and its task number.
pub(super) fn spawn(system: &mut System, caller: TaskId, x: [u64; 5]) -> Result<Next, SysError> {
    let [program, priority, handles, x0, x1] = x;
    let Some(launcher) = system.launcher.as_mut().filter(|l| l.task == caller) else {
        return Err(SysError::NotPermitted);
    };
    let program =
        *usize::try_from(program).ok().and_then(|p| launcher.programs.get(p)).ok_or(SysError::InvalidArgument)?;
    let priority =
        u8::try_from(priority).ok().filter(|&p| p <= system.ipc.priority(caller)).ok_or(SysError::InvalidArgument)?;
    let mut given = Vec::with_capacity(MAX_HANDLES);
    for i in 0..MAX_HANDLES {
        match (handles >> (8 * i)) & 0xff {
            NO_HANDLE => break,
            OWN_ENDPOINT => given.push(Given::OwnEndpoint),
            h => given.push(Given::Passed(system.ipc.object_of(caller, h).ok_or(SysError::InvalidHandle)?)),
        }
    }
    // Each endpoint passed must have room for the child's death notices.
    for &g in &given {
        if let Given::Passed(Object::Endpoint(e)) = g {
            let wanted = given.iter().filter(|&&o| o == g).count();
            if !system.ipc.has_notice_room(e, wanted) {
                return Err(SysError::OutOfMemory);
            }
        }
    }
    recycle(system);
    let launcher = system.launcher.as_mut().ok_or(SysError::NotPermitted)?;
    if launcher.children >= MAX_LIVE {
        return Err(SysError::OutOfMemory);
    }
    let (running, n) = asids_held_elsewhere(system, core_id());
    let fresh = system.asids.allocate(&running[..n]);
    if fresh.rolled_over {
        mmu::flush_all_asids();
    }
    let spec = Spec { name: program.name, image: program.image, priority, handles: &[], core: None };
    let mut child = load(&spec, fresh.asid, system.granule).map_err(|_| {
        system.asids.release(fresh.asid);
        SysError::OutOfMemory
    })?;
    child.frame.x[0] = x0;
    child.frame.x[1] = x1;
    let launcher = system.launcher.as_mut().ok_or(SysError::NotPermitted)?;
    let badge = launcher.next_badge;
    launcher.next_badge += 1;
    launcher.children += 1;
    launcher.spawned += 1;
    let id = system.ipc.add_task(priority);
    for g in given {
        let object = match g {
            Given::Passed(object) => object,
            Given::OwnEndpoint => Object::Endpoint(system.ipc.add_private_endpoint(id)),
        };
        // Room for its death notice was checked above.
        system.ipc.grant(id, object, badge);
    }
    if id == system.tasks.len() {
        system.tasks.push(child);
    } else {
        // A recycled slot: what is left of the task that had it (its root
        // table, freed already of everything else) goes now.
        let old = core::mem::replace(&mut system.tasks[id], child);
        let _hardware = old.tables.destroy();
    }
    wake_cores();
    poke_cores(system, core_id());
    Ok(Next::Continue([badge, id as u64, 0, 0, 0]))
}

/// Frees the memory of every dead task no core's TTBR0 holds any more
/// (unless a boot-core agent may still edit its tables: then at the end):
/// its ASID's TLB entries are invalidated on every core, the ASID is given
/// back, and its frames and every table but the root return to the
/// kernel's pool. A launcher's child's slot is then recycled when nothing
/// refers to it.
pub(super) fn reap(system: &mut System) {
    if system.agent_edits_tables {
        return;
    }
    let mut i = 0;
    while i < system.dying.len() {
        let t = system.dying[i];
        if holds_tables(system, t) {
            i += 1;
            continue;
        }
        system.dying.swap_remove(i);
        let task = &mut system.tasks[t];
        mmu::flush_asid(task.asid.value);
        system.asids.release(task.asid);
        if let Some(pool) = KERNEL_FRAMES.lock().as_mut() {
            let _ = pool.free_many(&mut task.frames);
        }
        task.frames = Vec::new();
        task.ipc_buffer = 0;
        task.tables.empty();
        if let Some(launcher) = system.launcher.as_mut()
            && t >= system.boot_tasks
        {
            launcher.reaped += 1;
            launcher.unrecycled.push(t);
        }
    }
    recycle(system);
}

/// Gives the slots of cleaned-up children back to IPC for new tasks where
/// nothing refers to them any more.
fn recycle(system: &mut System) {
    let Some(launcher) = system.launcher.as_mut() else { return };
    let ipc = &mut system.ipc;
    let before = launcher.unrecycled.len();
    launcher.unrecycled.retain(|&t| !ipc.recycle(t));
    launcher.children -= before - launcher.unrecycled.len();
}
