//! System-call numbers and the argument checks every call makes, with no
//! hardware (so they are tested on the host).
//!
//! | x8 | call | arguments | x0 on return |
//! |---|---|---|---|
//! | 0 | exit | x0 = status | (does not return) |
//! | 1 | write | x0 = buffer, x1 = length (at most 4096) | 0, or `BadAddress`, `TooLong` |
//! | 2 | yield | - | 0 |
//! | 3 | call | x0 = handle, x1..x4 = message | status (`SysError`), x1..x4 = reply |
//! | 4 | recv | x0 = handle | status, x1..x4 = message, x5 = badge |
//! | 5 | reply | x0..x3 = message | status |
//! | 6 | reply_recv | x0 = handle, x1..x4 = reply | as recv |
//! | 7 | signal | x0 = notification handle (its badge is ORed in) | status |
//! | 8 | wait | x0 = notification handle | status, x1 = the word |
//! | 9 | recv_nonblocking | x0 = handle | as recv, or `WouldBlock` |
//! | 10 | recv_timed | x0 = handle, x1 = timeout in counter ticks | as recv, or `TimedOut` |
//! | 3, 4, 6 + `LONG` (256) | call, recv, reply_recv in the long form | as above, and x5 = words sent (at most 64, else `InvalidArgument`), x6 = words accepted (0: 64); words 4.. in the IPC buffer (`folio_abi::ipc`) | as above, x6 = words sent; `Truncated` when cut to what was accepted |
//!
//! | 11 | mem_cap | x0 = index | x1 = kind (`map::CAP_POOL`, `CAP_META`; bits 8..16 the folio size shift of a `hugepages=` pool), x2 = base, x3 = size, x4 = zone, x5 = granule shift; `InvalidArgument` past the last |
//! | 12 | map_self | x0 = entries `[va, pa, pages, flags]`, x1 = count | status |
//! | 13 | remap_self | as map_self, x2 = buffer for the old frames (one per page), x3 = its length in words | status, x1 = pages changed |
//! | 14 | unmap_self | x0 = va, x1 = size | status |
//! | 15 | translate_self | x0 = va | status, x1 = physical address |
//! | 16 | map_caller | x0 = va, x1 = pa, x2 = size | status, x1 = the page-table frames the caller's client's tree now holds for grants |
//! | 17 | unmap_caller | x0 = va, x1 = size | status, x1 as map_caller (tables it empties stay while the client's tree holds at most `map::KEPT_CLIENT_TABLES` empty ones) |
//! | 18 | table_frames | - | x1 = page-table frames of the caller's tree |
//! | 19 | label | x0 = va, x1 = size, x2 = when (`label::ON_ANY_FAULT`, `ON_WRITE_TO_READ_ONLY`), x3 = text, x4 = its length | status; see [`crate::labels`] |
//! | 20 | link_shared_self | x0 = va (aligned to a last-level table's span), x1 = spans, x2 = the frame every entry maps read-only | status |
//! | 21 | set_priority | x0 = the caller's new priority, at most the one it was started with | status (`InvalidArgument` above it); the caller yields |
//! | 22 | spawn | x0 = program, x1 = priority, x2 = handles to pass (packed), x3, x4 = the child's x0, x1 (`folio_abi::spawn`) | status, x1 = the child's badge, x2 = its task number |
//! | 23 | grow_heap | x0 = pa, x1 = size: pool frames the caller holds, none mapped into a client | status, x1 = where they now lie in its heap window (`folio_abi::heap`) |
//! | 24 | reply_poll | x0 = handle, x1..x4 = reply, x5 = idle priority | as recv_nonblocking; with nothing waiting the caller is at the idle priority and has yielded |
//!
//! Calls 11..18, 20 and 23 are the kernel's only memory operations for tasks, and
//! they are generic: the kernel knows nothing of page descriptors or
//! folios. They need frame capabilities (ranges of physical memory a task
//! was given at start; today the memory service's pool and small frames),
//! else `NotPermitted`. `*_self` work only inside the caller's vmemmap
//! window and map only frames it holds (never executable); remap_self is
//! one break-before-make batch; link_shared_self links a read-only shared
//! last-level table (one per distinct frame, at most
//! `map::MAX_SHARED_TABLES`, freed with its last link). `*_caller` work in the address space of
//! the task the caller owes a reply to, only inside the client window,
//! only with pool frames, and unmap only what this caller mapped there;
//! when that task dies the kernel removes those mappings itself.
//!
//! Any other number returns `Unknown`. A pointer must lie wholly in the
//! caller's own mappings, readable from EL0; nothing a task passes can make
//! the kernel touch memory the task could not.

use alloc::vec::Vec;

use crate::mm::PhysRange;
pub use folio_abi::map;
use folio_abi::memsvc::layout;
pub use folio_abi::nr::*;
use folio_abi::status;

/// The longest write.
pub const MAX_WRITE: u64 = 4096;

/// Grants (map_caller ranges) others may hold in one task
/// (`folio_abi::map::MAX_GRANTS`).
pub const MAX_GRANTS: usize = map::MAX_GRANTS;

/// Every system call's error: one type over the ABI's status codes
/// (`folio_abi::status`), returned in x0 (x1..x5 zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum SysError {
    /// IPC: a handle the task does not hold.
    InvalidHandle = status::INVALID_HANDLE,
    /// IPC: a receive on an endpoint the task does not own.
    NotOwner = status::NOT_OWNER,
    /// IPC: a reply with no call owed.
    NoCaller = status::NO_CALLER,
    /// IPC: the peer died.
    DeadPeer = status::DEAD_PEER,
    /// IPC: a timed receive's deadline passed.
    TimedOut = status::TIMED_OUT,
    /// IPC: a polling receive or wait found nothing.
    WouldBlock = status::WOULD_BLOCK,
    /// IPC: a notification operation on an endpoint handle, or the reverse.
    WrongKind = status::WRONG_KIND,
    /// IPC: a message longer than the receiver accepts arrived cut short
    /// (a status of the receive, not an error of the sender).
    Truncated = status::TRUNCATED,
    BadAddress = status::BAD_ADDRESS,
    TooLong = status::TOO_LONG,
    Unknown = status::UNKNOWN_CALL,
    OutOfMemory = status::OUT_OF_MEMORY,
    /// No capability for this memory or this call.
    NotPermitted = status::NOT_PERMITTED,
    /// Misaligned, outside the window, too many entries, unknown flags,
    /// already mapped or not mapped.
    InvalidArgument = status::INVALID_ARGUMENT,
}

/// What a frame capability lets its holder map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapKind {
    /// Huge-page pool frames: into a caller's client window, and the
    /// holder's own pool window (mapped by the kernel at start).
    Pool,
    /// Small frames: into the holder's own vmemmap window.
    Meta,
}

/// A range of physical memory a task may map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameCap {
    pub kind: CapKind,
    pub range: PhysRange,
    /// The RAM bank the range lies in.
    pub zone: u8,
    /// For a pool reserved as huge pages of one size (`hugepages=`): that
    /// size's shift; 0 otherwise.
    pub folio_shift: u8,
}

/// One MAP_SELF / REMAP_SELF entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapEntry {
    pub va: u64,
    pub pa: u64,
    pub pages: u64,
    pub flags: u64,
}

impl MapEntry {
    pub fn from_words(w: [u64; 4]) -> MapEntry {
        MapEntry { va: w[0], pa: w[1], pages: w[2], flags: w[3] }
    }

    /// The frame page `i` of this entry maps.
    pub fn pa_of(&self, i: u64, page: u64) -> u64 {
        if self.flags & map::REPEAT != 0 { self.pa } else { self.pa + i * page }
    }
}

fn held(caps: &[FrameCap], kind: CapKind, pa: u64, size: u64) -> bool {
    let Some(range) = PhysRange::from_start_size(pa, size) else { return false };
    caps.iter().any(|c| c.kind == kind && c.range.contains_range(&range))
}

fn in_window(va: u64, size: u64, start: u64, end: u64) -> bool {
    va >= start && va.checked_add(size).is_some_and(|e| e <= end)
}

/// Checks one entry of a map_self / remap_self call.
pub fn check_self_entry(e: &MapEntry, caps: &[FrameCap], page: u64) -> Result<(), SysError> {
    if e.flags & !(map::WRITABLE | map::REPEAT) != 0 || e.pages == 0 || e.pages > map::MAX_REMAP_PAGES {
        return Err(SysError::InvalidArgument);
    }
    if !e.va.is_multiple_of(page) || !e.pa.is_multiple_of(page) {
        return Err(SysError::InvalidArgument);
    }
    if !in_window(e.va, e.pages * page, layout::SERVICE_VMEMMAP, layout::SERVICE_VMEMMAP_END) {
        return Err(SysError::InvalidArgument);
    }
    let frames = if e.flags & map::REPEAT != 0 { 1 } else { e.pages };
    if !held_any(caps, e.pa, frames * page) {
        return Err(SysError::NotPermitted);
    }
    Ok(())
}

/// Whether the caller holds every frame of [pa, pa + size), in
/// capabilities of either kind (its small frames, or pool memory it carved
/// for its vmemmap), one range possibly running across several.
fn held_any(caps: &[FrameCap], pa: u64, size: u64) -> bool {
    let Some(range) = PhysRange::from_start_size(pa, size) else { return false };
    let mut at = range.start();
    while at < range.end() {
        match caps.iter().find(|c| c.range.contains(at)) {
            Some(c) => at = c.range.end(),
            None => return false,
        }
    }
    true
}

/// Checks a LINK_SHARED_SELF call: `count` spans of a last-level table
/// (`span` bytes each) from `va`, inside the vmemmap window, all mapping
/// the one held frame `pa`.
pub fn check_link_shared(
    va: u64,
    count: u64,
    pa: u64,
    caps: &[FrameCap],
    span: u64,
    page: u64,
) -> Result<(), SysError> {
    if count == 0 || count > map::MAX_SHARED_LINKS || !va.is_multiple_of(span) || !pa.is_multiple_of(page) {
        return Err(SysError::InvalidArgument);
    }
    if !in_window(va, count * span, layout::SERVICE_VMEMMAP, layout::SERVICE_VMEMMAP_END) {
        return Err(SysError::InvalidArgument);
    }
    if !held_any(caps, pa, page) {
        return Err(SysError::NotPermitted);
    }
    Ok(())
}

/// Checks a GROW_HEAP call: whole pages, wholly inside one pool
/// capability (its index), and room left in the heap window after the
/// `grown` bytes already moved there.
pub fn check_heap_growth(pa: u64, size: u64, grown: u64, caps: &[FrameCap], page: u64) -> Result<usize, SysError> {
    if !pa.is_multiple_of(page) || !size.is_multiple_of(page) || size == 0 {
        return Err(SysError::InvalidArgument);
    }
    if grown.checked_add(size).is_none_or(|total| total > folio_abi::heap::MAX_BYTES) {
        return Err(SysError::OutOfMemory);
    }
    let range = PhysRange::from_start_size(pa, size).ok_or(SysError::InvalidArgument)?;
    caps.iter().position(|c| c.kind == CapKind::Pool && c.range.contains_range(&range)).ok_or(SysError::NotPermitted)
}

/// Takes [pa, pa + size) out of capability `index` (which holds it): the
/// capability shrinks, or is split in two when the range lies in its
/// middle (at most `folio_abi::heap::MAX_CAPS` capabilities, else
/// `OutOfMemory` and nothing changes), or goes when nothing is left.
pub fn take_from_cap(caps: &mut Vec<FrameCap>, index: usize, pa: u64, size: u64) -> Result<(), SysError> {
    let cap = *caps.get(index).ok_or(SysError::InvalidArgument)?;
    let end = pa.checked_add(size).ok_or(SysError::InvalidArgument)?;
    let below = PhysRange::from_start_end(cap.range.start(), pa).filter(|r| !r.is_empty());
    let above = PhysRange::from_start_end(end, cap.range.end()).filter(|r| !r.is_empty());
    match (below, above) {
        (Some(below), Some(above)) => {
            if caps.len() >= folio_abi::heap::MAX_CAPS {
                return Err(SysError::OutOfMemory);
            }
            caps.try_reserve(1).map_err(|_| SysError::OutOfMemory)?;
            caps[index].range = below;
            caps.push(FrameCap { range: above, ..cap });
        }
        (Some(rest), None) | (None, Some(rest)) => caps[index].range = rest,
        (None, None) => {
            caps.remove(index);
        }
    }
    Ok(())
}

/// Checks an unmap_self / translate_self range.
pub fn check_self_range(va: u64, size: u64, page: u64) -> Result<(), SysError> {
    if !va.is_multiple_of(page) || !size.is_multiple_of(page) || size == 0 {
        return Err(SysError::InvalidArgument);
    }
    if !in_window(va, size, layout::SERVICE_VMEMMAP, layout::SERVICE_VMEMMAP_END) {
        return Err(SysError::InvalidArgument);
    }
    Ok(())
}

/// Checks a map_caller / unmap_caller range (`pa` only for map_caller).
pub fn check_caller_range(va: u64, pa: Option<u64>, size: u64, caps: &[FrameCap], page: u64) -> Result<(), SysError> {
    if !va.is_multiple_of(page) || !size.is_multiple_of(page) || size == 0 {
        return Err(SysError::InvalidArgument);
    }
    if !in_window(va, size, layout::CLIENT_WINDOW, layout::CLIENT_WINDOW_END) {
        return Err(SysError::InvalidArgument);
    }
    match pa {
        Some(pa) if pa % page != 0 => Err(SysError::InvalidArgument),
        Some(pa) if !held(caps, CapKind::Pool, pa, size) => Err(SysError::NotPermitted),
        _ => Ok(()),
    }
}

/// The physical pieces of the user buffer [va, va + len). `translate`
/// gives a user page's frame when the page is mapped and readable at EL0.
pub fn user_buffer(
    va: u64,
    len: u64,
    page_size: u64,
    translate: &mut dyn FnMut(u64) -> Option<u64>,
) -> Result<Vec<(u64, u64)>, SysError> {
    user_buffer_up_to(va, len, MAX_WRITE, page_size, translate)
}

/// [`user_buffer`] with another length limit.
pub fn user_buffer_up_to(
    va: u64,
    len: u64,
    max: u64,
    page_size: u64,
    translate: &mut dyn FnMut(u64) -> Option<u64>,
) -> Result<Vec<(u64, u64)>, SysError> {
    if len > max {
        return Err(SysError::TooLong);
    }
    let end = va.checked_add(len).ok_or(SysError::BadAddress)?;
    if end > crate::elf::USER_END {
        return Err(SysError::BadAddress);
    }
    let mut pieces = Vec::new();
    let mut at = va;
    while at < end {
        let page = at & !(page_size - 1);
        let frame = translate(page).ok_or(SysError::BadAddress)?;
        let take = (page + page_size).min(end) - at;
        pieces.push((frame + (at - page), take));
        at += take;
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(page: u64) -> Option<u64> {
        // User pages 0x40_0000..0x40_3000 map to frames at 0x8000_0000 + offset.
        (0x40_0000..0x40_3000).contains(&page).then(|| 0x8000_0000 + (page - 0x40_0000))
    }

    #[test]
    fn a_buffer_across_pages_is_split_at_page_boundaries() {
        let pieces = user_buffer(0x40_0ff0, 0x20, 0x1000, &mut mapped).unwrap();
        assert_eq!(pieces, vec![(0x8000_0ff0, 0x10), (0x8000_1000, 0x10)]);
        assert_eq!(user_buffer(0x40_0000, 0, 0x1000, &mut mapped), Ok(vec![]));
    }

    fn caps() -> [FrameCap; 2] {
        [
            FrameCap {
                kind: CapKind::Pool,
                range: PhysRange::from_start_size(0x4000_0000, 64 << 20).unwrap(),
                zone: 0,
                folio_shift: 0,
            },
            FrameCap {
                kind: CapKind::Meta,
                range: PhysRange::from_start_size(0x8000_0000, 1 << 20).unwrap(),
                zone: 0,
                folio_shift: 0,
            },
        ]
    }

    /// GROW_HEAP takes whole pages of one pool capability only, within the
    /// window's bound, and the frames leave the capability for good: the
    /// map checks refuse them afterwards.
    #[test]
    fn frames_moved_to_the_heap_leave_their_capability() {
        let page = 0x1000;
        let pool = 0x4000_0000;
        let mut caps = caps().to_vec();
        assert_eq!(check_heap_growth(pool + 0x800, page, 0, &caps, page), Err(SysError::InvalidArgument));
        assert_eq!(check_heap_growth(pool, 0, 0, &caps, page), Err(SysError::InvalidArgument));
        assert_eq!(check_heap_growth(0x8000_0000, page, 0, &caps, page), Err(SysError::NotPermitted), "small frames");
        assert_eq!(check_heap_growth(pool + (64 << 20) - page, 2 * page, 0, &caps, page), Err(SysError::NotPermitted));
        assert_eq!(
            check_heap_growth(pool, page, folio_abi::heap::MAX_BYTES - page + 1, &caps, page),
            Err(SysError::OutOfMemory)
        );
        assert_eq!(check_heap_growth(pool, page, u64::MAX, &caps, page), Err(SysError::OutOfMemory));
        // From the middle: the capability splits around it.
        let (pa, size) = (pool + (16 << 20), 2 << 20);
        let i = check_heap_growth(pa, size, 0, &caps, page).unwrap();
        take_from_cap(&mut caps, i, pa, size).unwrap();
        assert_eq!(caps.len(), 3);
        assert_eq!(check_caller_range(layout::CLIENT_WINDOW, Some(pa), page, &caps, page), Err(SysError::NotPermitted));
        assert_eq!(check_caller_range(layout::CLIENT_WINDOW, Some(pa - page), page, &caps, page), Ok(()));
        assert_eq!(check_caller_range(layout::CLIENT_WINDOW, Some(pa + size), page, &caps, page), Ok(()));
        let entry = MapEntry { va: layout::SERVICE_VMEMMAP, pa, pages: 1, flags: 0 };
        assert_eq!(check_self_entry(&entry, &caps, page), Err(SysError::NotPermitted));
        assert_eq!(
            check_link_shared(layout::SERVICE_VMEMMAP, 1, pa, &caps, 1 << 21, page),
            Err(SysError::NotPermitted)
        );
        assert_eq!(check_heap_growth(pa, page, size, &caps, page), Err(SysError::NotPermitted), "taken already");
        // From an end: it shrinks; all of it: it goes.
        let i = check_heap_growth(pool, page, size, &caps, page).unwrap();
        take_from_cap(&mut caps, i, pool, page).unwrap();
        assert_eq!(caps[i].range.start(), pool + page);
        let rest = caps[i].range;
        take_from_cap(&mut caps, i, rest.start(), rest.size()).unwrap();
        assert_eq!(caps.len(), 2);
        // Splitting stops at the bound, changing nothing.
        let whole = super::tests::caps()[0];
        let mut many = vec![whole; folio_abi::heap::MAX_CAPS];
        assert_eq!(take_from_cap(&mut many, 0, pool + page, page), Err(SysError::OutOfMemory));
        assert_eq!(many[0], whole);
    }

    #[test]
    fn memory_calls_map_only_held_frames_inside_their_windows() {
        let (caps, page) = (caps(), 0x1000);
        let v = layout::SERVICE_VMEMMAP;
        let e = |va, pa, pages, flags| MapEntry { va, pa, pages, flags };
        assert_eq!(check_self_entry(&e(v, 0x8000_0000, 256, map::WRITABLE), &caps, page), Ok(()));
        assert_eq!(check_self_entry(&e(v, 0x800f_f000, 4000, map::REPEAT), &caps, page), Ok(()));
        assert_eq!(check_self_entry(&e(v, 0x800f_f000, 2, 0), &caps, page), Err(SysError::NotPermitted));
        // Pool frames (carved for the vmemmap) too, but not frames held by
        // no capability or straddling two; unknown flags; zero pages.
        assert_eq!(check_self_entry(&e(v, 0x4000_0000, 1, 0), &caps, page), Ok(()));
        assert_eq!(check_self_entry(&e(v, 0x43ff_f000, 2, 0), &caps, page), Err(SysError::NotPermitted));
        // Frames running across two adjacent capabilities are all held.
        let mut adjacent = caps.to_vec();
        adjacent.push(FrameCap { range: PhysRange::from_start_size(0x8010_0000, 4096).unwrap(), ..caps[1] });
        assert_eq!(check_self_entry(&e(v, 0x800f_f000, 2, 0), &adjacent, page), Ok(()));
        assert_eq!(check_self_entry(&e(v, 0x800f_f000, 3, 0), &adjacent, page), Err(SysError::NotPermitted));
        assert_eq!(check_self_entry(&e(v, 0x9000_0000, 1, 0), &caps, page), Err(SysError::NotPermitted));
        assert_eq!(check_self_entry(&e(v, 0x8000_0000, 1, 4), &caps, page), Err(SysError::InvalidArgument));
        assert_eq!(check_self_entry(&e(v, 0x8000_0000, 0, 0), &caps, page), Err(SysError::InvalidArgument));
        // Outside the window (the task's code, the kernel), misaligned, wrapping.
        assert_eq!(check_self_entry(&e(0x40_0000, 0x8000_0000, 1, 0), &caps, page), Err(SysError::InvalidArgument));
        assert_eq!(check_self_entry(&e(v + 8, 0x8000_0000, 1, 0), &caps, page), Err(SysError::InvalidArgument));
        assert_eq!(
            check_self_entry(&e(layout::SERVICE_VMEMMAP_END - page, 0x8000_0000, 2, 0), &caps, page),
            Err(SysError::InvalidArgument)
        );
        assert_eq!(check_self_range(u64::MAX - 0xfff, 0x1000, page), Err(SysError::InvalidArgument));
        // Into a caller: pool frames only, client window only.
        let c = layout::CLIENT_WINDOW + 0x4000_0000;
        assert_eq!(check_caller_range(c, Some(0x4000_0000), 2 << 20, &caps, page), Ok(()));
        assert_eq!(check_caller_range(c, Some(0x4000_0000), 128 << 20, &caps, page), Err(SysError::NotPermitted));
        assert_eq!(check_caller_range(c, Some(0x8000_0000), 0x1000, &caps, page), Err(SysError::NotPermitted));
        assert_eq!(
            check_caller_range(0x40_0000, Some(0x4000_0000), 0x1000, &caps, page),
            Err(SysError::InvalidArgument)
        );
        assert_eq!(check_caller_range(c, None, 0, &caps, page), Err(SysError::InvalidArgument));
        assert_eq!(check_caller_range(c, Some(0x4000_0000), 0x1000, &[], page), Err(SysError::NotPermitted));
        // Shared tables: whole spans in the window, a held frame, bounded.
        let span = 2 << 20;
        assert_eq!(check_link_shared(v, 7, 0x8000_0000, &caps, span, page), Ok(()));
        assert_eq!(check_link_shared(v + page, 1, 0x8000_0000, &caps, span, page), Err(SysError::InvalidArgument));
        assert_eq!(check_link_shared(v, 0, 0x8000_0000, &caps, span, page), Err(SysError::InvalidArgument));
        assert_eq!(
            check_link_shared(v, map::MAX_SHARED_LINKS + 1, 0x8000_0000, &caps, span, page),
            Err(SysError::InvalidArgument)
        );
        assert_eq!(check_link_shared(v, 1, 0x9000_0000, &caps, span, page), Err(SysError::NotPermitted));
        assert_eq!(check_link_shared(v, 1, 0x8000_0008, &caps, span, page), Err(SysError::InvalidArgument));
        assert_eq!(
            check_link_shared(layout::SERVICE_VMEMMAP_END - span, 2, 0x8000_0000, &caps, span, page),
            Err(SysError::InvalidArgument)
        );
        assert_eq!(check_link_shared(0, 1, 0x8000_0000, &caps, span, page), Err(SysError::InvalidArgument));
    }

    #[test]
    fn kernel_unmapped_wrapping_and_long_buffers_are_refused() {
        assert_eq!(user_buffer(0xFFFF_8000_0000_0000, 8, 0x1000, &mut mapped), Err(SysError::BadAddress));
        assert_eq!(user_buffer(0x50_0000, 8, 0x1000, &mut mapped), Err(SysError::BadAddress));
        assert_eq!(user_buffer(0x40_2ff8, 0x10, 0x1000, &mut mapped), Err(SysError::BadAddress));
        assert_eq!(user_buffer(u64::MAX - 3, 8, 0x1000, &mut mapped), Err(SysError::BadAddress));
        assert_eq!(user_buffer(0x40_0000, MAX_WRITE + 1, 0x1000, &mut mapped), Err(SysError::TooLong));
        assert_eq!(user_buffer((1 << 48) - 4, 8, 0x1000, &mut |_| Some(0)), Err(SysError::BadAddress));
    }
}
