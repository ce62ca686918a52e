//! The memory calls (system calls 11..18, 20 and 23): the kernel's few, generic,
//! capability-checked mapping operations, which the memory service runs
//! its vmemmap and its clients' huge pages with.
//!
//! Owns: each task's frame capabilities and the record of what other
//! tasks mapped into it (grants), so it can check and undo them.
//! Must never: map a frame the caller holds no capability for, map
//! anything executable, touch a mapping outside the caller's windows
//! (`folio_abi::memsvc::layout`), unmap a grant another task made,
//! or know what the mapped memory means: no page descriptor, folio or
//! order appears here. The argument checks are `folio_core::syscall`'s.
//!
//! Every change goes through the stage-1 engine, so break-before-make and
//! the broadcast TLB invalidation (by VA and ASID, inner shareable) are
//! the engine's: a task on another core never keeps a stale translation
//! after a call returns.

use alloc::vec::Vec;

use folio_abi::memsvc::layout;
use folio_core::mm::layout as kernel_layout;
use folio_core::mm::paging::{Attributes, PagingError, Policy, Remap, Unit};
use folio_core::syscall::{self, CapKind, MapEntry, SysError, map};

use super::{System, UserTask};
use folio_core::ipc::TaskId;

/// A range another task mapped into this one (map_caller).
#[derive(Clone, Copy, Debug)]
pub struct Grant {
    pub va: u64,
    /// The frame `va` maps (the range is physically contiguous).
    pub pa: u64,
    pub size: u64,
    pub granter: TaskId,
}

fn paging_error(e: PagingError) -> SysError {
    match e {
        PagingError::OutOfTableFrames => SysError::OutOfMemory,
        _ => SysError::InvalidArgument,
    }
}

/// Reads `words` u64s from the task's readable user memory at `va`.
fn read_words(task: &mut UserTask, va: u64, words: u64, page: u64) -> Result<Vec<u64>, SysError> {
    let len = words.checked_mul(8).ok_or(SysError::InvalidArgument)?;
    if !va.is_multiple_of(8) {
        return Err(SysError::BadAddress);
    }
    let tables = &mut task.tables;
    let pieces = syscall::user_buffer_up_to(va, len, map::MAX_ENTRIES * 32, page, &mut |p| {
        tables.translate(p).filter(|m| m.attributes.user).map(|m| m.pa + (p - m.va))
    })?;
    let mut out = Vec::with_capacity(words as usize);
    for (pa, n) in pieces {
        let src = kernel_layout::linear(pa).ok_or(SysError::BadAddress)?;
        for i in 0..n / 8 {
            // SAFETY: translated through the task's own user mappings, in
            // RAM the linear map covers; 8-byte aligned since `va` is.
            out.push(unsafe { core::ptr::read_volatile((src + i * 8) as *const u64) });
        }
    }
    Ok(out)
}

/// The physical pieces of a writable user buffer of `words` u64s.
fn writable_words(task: &mut UserTask, va: u64, words: u64, page: u64) -> Result<Vec<(u64, u64)>, SysError> {
    let len = words.checked_mul(8).ok_or(SysError::InvalidArgument)?;
    if !va.is_multiple_of(8) {
        return Err(SysError::BadAddress);
    }
    let tables = &mut task.tables;
    syscall::user_buffer_up_to(va, len, map::MAX_REMAP_PAGES * 8, page, &mut |p| {
        tables.translate(p).filter(|m| m.attributes.user && m.attributes.writable).map(|m| m.pa + (p - m.va))
    })
}

fn entries(task: &mut UserTask, va: u64, count: u64, page: u64) -> Result<Vec<MapEntry>, SysError> {
    if count == 0 || count > map::MAX_ENTRIES {
        return Err(SysError::InvalidArgument);
    }
    let words = read_words(task, va, count * 4, page)?;
    let entries: Vec<MapEntry> =
        words.chunks_exact(4).map(|w| MapEntry::from_words([w[0], w[1], w[2], w[3]])).collect();
    for e in &entries {
        syscall::check_self_entry(e, &task.caps, page)?;
    }
    Ok(entries)
}

fn attributes(flags: u64) -> Attributes {
    if flags & map::WRITABLE != 0 { Attributes::USER_RW } else { Attributes::USER_RO }
}

/// Runs memory call `number` for `current`: x1..x5, or the error.
pub(super) fn call(system: &mut System, current: TaskId, number: u64, x: [u64; 4]) -> Result<[u64; 5], SysError> {
    let page = system.granule.size();
    if system.tasks[current].caps.is_empty() {
        return Err(SysError::NotPermitted);
    }
    let result = match number {
        syscall::MEM_CAP => {
            let cap = usize::try_from(x[0]).ok().and_then(|i| system.tasks[current].caps.get(i).copied());
            return match cap {
                Some(c) => {
                    let kind = if c.kind == CapKind::Pool { map::CAP_POOL } else { map::CAP_META };
                    let kind = kind | (c.folio_shift as u64) << map::CAP_FOLIO_SHIFT;
                    Ok([kind, c.range.start(), c.range.size(), c.zone as u64, system.granule.shift() as u64])
                }
                None => Err(SysError::InvalidArgument),
            };
        }
        syscall::MAP_SELF => map_self(&mut system.tasks[current], x[0], x[1], page),
        syscall::REMAP_SELF => remap_self(&mut system.tasks[current], x, page),
        syscall::UNMAP_SELF => syscall::check_self_range(x[0], x[1], page)
            .and_then(|_| system.tasks[current].tables.unmap(x[0], x[1]).map_err(paging_error))
            .map(|_| 0),
        syscall::TRANSLATE_SELF => syscall::check_self_range(x[0] & !(page - 1), page, page).and_then(|_| {
            let m = system.tasks[current].tables.translate(x[0]).ok_or(SysError::InvalidArgument)?;
            Ok(m.pa + (x[0] - m.va))
        }),
        syscall::MAP_CALLER => {
            system.table_changes += 1;
            map_caller(system, current, x[0], x[1], x[2])
        }
        syscall::UNMAP_CALLER => {
            system.table_changes += 1;
            unmap_caller(system, current, x[0], x[1])
        }
        syscall::TABLE_FRAMES => Ok(system.tasks[current].tables.stats().tables_in_use),
        syscall::LINK_SHARED_SELF => link_shared_self(&mut system.tasks[current], x, page),
        syscall::GROW_HEAP => grow_heap(system, current, x[0], x[1]),
        _ => Err(SysError::Unknown),
    };
    result.map(|x1| [x1, 0, 0, 0, 0])
}

/// Maps every entry, or nothing: a failure unmaps the entries before it.
fn map_self(task: &mut UserTask, va: u64, count: u64, page: u64) -> Result<u64, SysError> {
    let entries = entries(task, va, count, page)?;
    for (done, e) in entries.iter().enumerate() {
        let r = if e.flags & map::REPEAT != 0 {
            task.tables.map_repeated(e.va, e.pa, e.pages, attributes(e.flags))
        } else {
            task.tables.map(e.va, e.pa, e.pages * page, attributes(e.flags), Policy::Force(Unit::PAGE))
        };
        if let Err(err) = r {
            for e in &entries[..done] {
                let _ = task.tables.unmap(e.va, e.pages * page);
            }
            return Err(paging_error(err));
        }
    }
    Ok(0)
}

/// Links `x[1]` last-level-table spans from `x[0]` to the task's shared
/// table of read-only references to frame `x[2]` (made on first use; the
/// engine frees it with its last link). All or nothing.
fn link_shared_self(task: &mut UserTask, x: [u64; 4], page: u64) -> Result<u64, SysError> {
    let span = task.tables.granule().level_size(2);
    let (va, count, pa) = (x[0], x[1], x[2]);
    syscall::check_link_shared(va, count, pa, &task.caps, span, page)?;
    for k in 0..count {
        let linked = task.tables.link_shared(va + k * span, pa, Attributes::USER_RO);
        // A table past the bound is undone with the links made here.
        let too_many = linked.is_ok() && task.tables.shared_tables() > map::MAX_SHARED_TABLES;
        if linked.is_err() || too_many {
            let done = k + too_many as u64;
            if done > 0 {
                // Unlinking frees a table only these links held.
                let _ = task.tables.unmap(va, done * span);
            }
            return Err(linked.err().map_or(SysError::OutOfMemory, paging_error));
        }
    }
    Ok(0)
}

/// Points mapped vmemmap pages at new frames: one break-before-make batch.
/// The old frames go to the caller's buffer, one word per page.
fn remap_self(task: &mut UserTask, x: [u64; 4], page: u64) -> Result<u64, SysError> {
    let entries = entries(task, x[0], x[1], page)?;
    let pages: u64 = entries.iter().map(|e| e.pages).sum();
    if pages > map::MAX_REMAP_PAGES || pages > x[3] {
        return Err(SysError::InvalidArgument);
    }
    // The answer's buffer is checked before anything changes.
    let out = writable_words(task, x[2], pages, page)?;
    let mut changes = Vec::with_capacity(pages as usize);
    for e in &entries {
        for i in 0..e.pages {
            let va = e.va + i * page;
            // Only single pages live in the window; the engine refuses
            // anything unmapped.
            if task.tables.translate(va).is_none_or(|m| m.unit != Unit::PAGE) {
                return Err(SysError::InvalidArgument);
            }
            changes.push(Remap { va, pa: e.pa_of(i, page), attributes: attributes(e.flags) });
        }
    }
    let old = task.tables.remap(&changes).map_err(paging_error)?;
    let mut words = old.into_iter();
    for (pa, n) in out {
        let dst = kernel_layout::linear(pa).ok_or(SysError::BadAddress)?;
        for i in 0..n / 8 {
            // SAFETY: translated through the task's own writable user
            // mappings above, in RAM the linear map covers; aligned.
            unsafe { core::ptr::write_volatile((dst + i * 8) as *mut u64, words.next().unwrap_or(0)) };
        }
    }
    Ok(pages)
}

/// The task `server` owes a reply to: the only one it may map into.
fn client_of(system: &System, server: TaskId) -> Result<TaskId, SysError> {
    system.ipc.caller_owed(server).ok_or(SysError::NotPermitted)
}

fn map_caller(system: &mut System, server: TaskId, va: u64, pa: u64, size: u64) -> Result<u64, SysError> {
    let page = system.granule.size();
    syscall::check_caller_range(va, Some(pa), size, &system.tasks[server].caps, page)?;
    let client = client_of(system, server)?;
    let task = &mut system.tasks[client];
    if task.grants.iter().any(|g| va < g.va + g.size && g.va < va + size) {
        return Err(SysError::InvalidArgument);
    }
    if task.grants.len() >= syscall::MAX_GRANTS {
        return Err(SysError::OutOfMemory);
    }
    task.tables.map(va, pa, size, Attributes::USER_RW, Policy::Largest).map_err(paging_error)?;
    task.grants.push(Grant { va, pa, size, granter: server });
    Ok(grant_tables(task))
}

/// The page-table frames `task`'s tree holds beyond those its own image,
/// stack and IPC buffer needed: what others' grants made (MAP_CALLER and
/// UNMAP_CALLER return it, so the granter can charge the client; at most
/// a few per grant, and grants are bounded).
fn grant_tables(task: &UserTask) -> u64 {
    task.tables.stats().tables_in_use.saturating_sub(task.own_tables)
}

fn unmap_caller(system: &mut System, server: TaskId, va: u64, size: u64) -> Result<u64, SysError> {
    let page = system.granule.size();
    syscall::check_caller_range(va, None, size, &system.tasks[server].caps, page)?;
    let client = client_of(system, server)?;
    let task = &mut system.tasks[client];
    let i = task
        .grants
        .iter()
        .position(|g| g.granter == server && va >= g.va && va + size <= g.va + g.size)
        .ok_or(SysError::NotPermitted)?;
    // Unmapping the middle of a grant leaves two: within the bound too.
    let (g, end) = (task.grants[i], va + size);
    if va > g.va && end < g.va + g.size && task.grants.len() >= syscall::MAX_GRANTS {
        return Err(SysError::OutOfMemory);
    }
    task.tables.unmap_keeping_tables(va, size, map::KEPT_CLIENT_TABLES).map_err(paging_error)?;
    let g = task.grants.swap_remove(i);
    if va > g.va {
        task.grants.push(Grant { va: g.va, pa: g.pa, size: va - g.va, granter: server });
    }
    if va + size < g.va + g.size {
        let kept = va + size - g.va;
        task.grants.push(Grant { va: va + size, pa: g.pa + kept, size: g.size - kept, granter: server });
    }
    Ok(grant_tables(task))
}

/// GROW_HEAP: moves pool frames [pa, pa + size) the caller holds, none of
/// them mapped into any task by it, to the end of its heap window: mapped
/// there read/write, unmapped from its pool window, and taken out of its
/// capabilities, so no memory call (its own or a client's mapping) can
/// reach them again. All or nothing. Returns where they now lie.
fn grow_heap(system: &mut System, current: TaskId, pa: u64, size: u64) -> Result<u64, SysError> {
    let page = system.granule.size();
    let task = &system.tasks[current];
    let index = syscall::check_heap_growth(pa, size, task.heap_bytes, &task.caps, page)?;
    let end = pa + size;
    let granted = system.tasks.iter().flat_map(|t| t.grants.iter());
    if granted.filter(|g| g.granter == current).any(|g| g.pa < end && pa < g.pa + g.size) {
        return Err(SysError::NotPermitted);
    }
    let task = &mut system.tasks[current];
    // Taking the range may split a capability: room for that is made
    // before anything changes, so the last step cannot fail.
    if task.caps.len() >= folio_abi::heap::MAX_CAPS || task.caps.try_reserve(1).is_err() {
        return Err(SysError::OutOfMemory);
    }
    let va = layout::SERVICE_HEAP_WINDOW + task.heap_bytes;
    task.tables.map(va, pa, size, Attributes::USER_RW, Policy::Largest).map_err(paging_error)?;
    if let Err(e) = task.tables.unmap(layout::SERVICE_POOL_WINDOW + pa, size) {
        // The exact range just mapped: unmapping it needs no table.
        let _ = task.tables.unmap(va, size);
        return Err(paging_error(e));
    }
    // Cannot fail: the index holds the range, and there is room for a split.
    let _ = syscall::take_from_cap(&mut task.caps, index, pa, size);
    task.heap_bytes += size;
    Ok(va)
}

/// A task died: what others mapped into it is removed now (broadcast
/// invalidation included), so its granter can reuse the frames at once.
pub(super) fn revoke_grants(task: &mut UserTask) {
    for g in core::mem::take(&mut task.grants) {
        let _ = task.tables.unmap(g.va, g.size);
    }
}

/// Maps a capability holder's windows at start: its pool and its small
/// frames, read/write, never executable, with the largest units.
pub(super) fn map_windows(task: &mut UserTask) -> Result<(), PagingError> {
    for c in task.caps.clone() {
        let base = match c.kind {
            CapKind::Pool => layout::SERVICE_POOL_WINDOW,
            CapKind::Meta => layout::SERVICE_META_WINDOW,
        };
        task.tables.map(
            base + c.range.start(),
            c.range.start(),
            c.range.size(),
            Attributes::USER_RW,
            Policy::Largest,
        )?;
    }
    Ok(())
}
