//! The memory service: an EL0 task that owns the huge-page pool, runs the
//! HVO engine over its own vmemmap (mapped in its own address space), and
//! answers its clients over IPC (the protocol: `crates/abi/src/memsvc.rs`).
//!
//! Owns: the glue between [`folio_memsvc::MemoryService`] (all the
//! decisions, host-tested) and the kernel's memory calls; its heap.
//! Must never: decide anything about a request itself (the library does),
//! or write a vmemmap page it mapped read-only (a shared tail).
//!
//! Start: x0 = the quota of each client in bytes (0: half the pool),
//! x1 = how many clients will come, and flags (`protocol::start`). Handle 0
//! is its endpoint, with death notices (so `recv` also returns a client's
//! death, one notice per client, with its badge). It exits after printing
//! its statistics: when that many clients have died, or, with 0 clients
//! (a long-lived service with clients coming and going), when the operator
//! asks it to shut down.
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use alloc::{format, vec};
use core::fmt::Display;

use folio_abi::label::ON_WRITE_TO_READ_ONLY;
use folio_abi::map as nr_map;
use folio_abi::memsvc::{SHARED_TAIL_LABEL, layout, op, start};
use folio_core::ipc::DEATH_BADGE;
use folio_core::mm::frame::FramePool;
use folio_core::mm::memmap::Size;
use folio_core::mm::paging::Unit;
use folio_core::mm::{Granule, PhysRange};
use folio_hvo::{self as hvo, HvoError, PageDescriptor, VmemmapHw};
use folio_memsvc::{ClientMemory, KernelRefused, MemoryService, PoolRange, Savings};
use folio_rt::abi::report::{Fields, Hex, PREFIX, verdict};
use folio_rt::memory::{self, Mapped};
use folio_rt::{
    Message, cycles, nr, println, recv, recv_nonblocking, reply, reply_poll, reply_recv, result, set_priority, status,
    syscall,
};

/// The vmemmap's hardware, over the kernel's memory calls: frames from the
/// small-frame capability, reached through the service's window on them;
/// mappings in the service's own vmemmap window.
struct ServiceVmemmap {
    granule: Granule,
    frames: FramePool,
    /// The vmemmap window: descriptors at their frame numbers.
    vmemmap: Mapped,
    /// The small frames' window: frame `pa` at offset `pa`.
    meta: Mapped,
    /// The small frames the kernel granted; every other frame the
    /// allocator holds was carved from the pool, reached through the pool
    /// window.
    granted: PhysRange,
    pool: Mapped,
}

fn check(r: [u64; 6]) -> Result<[u64; 6], u64> {
    if r[0] == 0 { Ok(r) } else { Err(r[0]) }
}

impl ServiceVmemmap {
    /// Coalesces per-page (va, pa, writable) into `[va, pa, pages, flags]`
    /// entries: runs of consecutive frames, or of one repeated frame.
    fn entries(&self, pages: &[(u64, u64, bool)]) -> Vec<[u64; 4]> {
        let page = self.granule.size();
        let mut out: Vec<[u64; 4]> = Vec::new();
        for &(va, pa, w) in pages {
            let flags = if w { nr_map::WRITABLE } else { 0 };
            if let Some(last) = out.last_mut()
                && last[0] + last[2] * page == va
                && last[3] & nr_map::WRITABLE == flags
            {
                let repeat = last[3] & nr_map::REPEAT != 0;
                if (repeat || last[2] == 1) && last[1] == pa {
                    last[3] |= nr_map::REPEAT;
                    last[2] += 1;
                    continue;
                }
                if !repeat && last[1] + last[2] * page == pa {
                    last[2] += 1;
                    continue;
                }
            }
            out.push([va, pa, 1, flags]);
        }
        out
    }
}

impl VmemmapHw for ServiceVmemmap {
    fn alloc_frame(&mut self) -> Option<u64> {
        self.frames.alloc(0).ok()
    }

    fn free_frame(&mut self, pa: u64) {
        let _ = self.frames.free(pa, 0);
    }

    fn free_frame_count(&self) -> Option<u64> {
        Some(self.frames.free_frames())
    }

    fn free_frames(&mut self, frames: &mut [u64]) {
        let _ = self.frames.free_many(frames);
    }

    fn fill_frame(&mut self, pa: u64, f: &mut dyn FnMut(usize) -> PageDescriptor) {
        // `pa` is one of this service's small frames, mapped read/write in
        // its meta window by the kernel at start.
        let slots = (self.granule.size() >> hvo::DESCRIPTOR_SHIFT) as usize;
        let window = if self.granted.contains(pa) { &mut self.meta } else { &mut self.pool };
        for i in 0..slots {
            window.store(pa + ((i as u64) << hvo::DESCRIPTOR_SHIFT), f(i).to_words());
        }
    }

    /// Pool memory carved for the vmemmap: the frames are the service's
    /// (a pool capability), mapped in its pool window.
    fn add_frames(&mut self, range: PhysRange) -> bool {
        self.frames.add_range(range).is_ok()
    }

    fn map_pages(&mut self, pages: &[(u64, u64, bool)]) -> Result<(), HvoError> {
        let entries = self.entries(pages);
        let mut done = 0;
        for chunk in entries.chunks(nr_map::MAX_ENTRIES as usize) {
            let r = syscall(nr::MAP_SELF, [chunk.as_ptr() as u64, chunk.len() as u64, 0, 0, 0, 0]);
            if r[0] != 0 {
                let page = self.granule.size();
                for e in &entries[..done] {
                    let _ = self.unmap_pages(e[0], e[2] * page);
                }
                return Err(if r[0] == folio_rt::status::OUT_OF_MEMORY {
                    HvoError::OutOfMemory
                } else {
                    HvoError::Paging
                });
            }
            done += chunk.len();
        }
        Ok(())
    }

    fn map_shared(&mut self, va: u64, pa: u64, pages: u64) -> Result<(), HvoError> {
        let entry = [[va, pa, pages, nr_map::REPEAT]];
        check(syscall(nr::MAP_SELF, [entry.as_ptr() as u64, 1, 0, 0, 0, 0])).map(|_| ()).map_err(|_| HvoError::Paging)
    }

    fn link_shared_tables(&mut self, va: u64, tables: u64, pa: u64) -> Result<(), HvoError> {
        let span = self.granule.level_size(2);
        let mut done = 0;
        while done < tables {
            let n = (tables - done).min(nr_map::MAX_SHARED_LINKS);
            let r = syscall(nr::LINK_SHARED_SELF, [va + done * span, n, pa, 0, 0, 0]);
            if r[0] != 0 {
                if done > 0 {
                    let _ = self.unmap_pages(va, done * span);
                }
                return Err(if r[0] == folio_rt::status::OUT_OF_MEMORY {
                    HvoError::OutOfMemory
                } else {
                    HvoError::Paging
                });
            }
            done += n;
        }
        Ok(())
    }

    /// One kernel call: one break-before-make batch, which the engine's
    /// undo relies on (it changed everything or nothing). The engine never
    /// remaps more than `MAX_BATCH_PAGES` pages at once, and a call takes
    /// that many entries (`folio_memsvc::ONE_CALL_PER_BATCH`).
    fn remap_pages(&mut self, pages: &[(u64, u64, bool)]) -> Result<Vec<u64>, HvoError> {
        if pages.is_empty() {
            // A batch with nothing to remap (every folio failed to prepare).
            return Ok(Vec::new());
        }
        let entries = self.entries(pages);
        if entries.len() as u64 > nr_map::MAX_ENTRIES || pages.len() as u64 > nr_map::MAX_REMAP_PAGES {
            return Err(HvoError::Paging);
        }
        let mut old = alloc::vec![0u64; pages.len()];
        let r = syscall(
            nr::REMAP_SELF,
            [entries.as_ptr() as u64, entries.len() as u64, old.as_mut_ptr() as u64, old.len() as u64, 0, 0],
        );
        check(r).map_err(|_| HvoError::Paging)?;
        Ok(old)
    }

    fn unmap_pages(&mut self, va: u64, size: u64) -> Result<(), HvoError> {
        check(syscall(nr::UNMAP_SELF, [va, size, 0, 0, 0, 0])).map(|_| ()).map_err(|_| HvoError::Paging)
    }

    fn frame_of(&mut self, va: u64) -> Option<u64> {
        check(syscall(nr::TRANSLATE_SELF, [va, 0, 0, 0, 0, 0])).ok().map(|r| r[1])
    }

    /// The engine reads only descriptors in vmemmap pages it mapped in
    /// this address space.
    fn read(&mut self, va: u64) -> PageDescriptor {
        PageDescriptor::from_words(self.vmemmap.load(va - layout::SERVICE_VMEMMAP))
    }

    /// The engine writes only private, writable pages (a write to a shared
    /// tail would fault and the kernel would report it).
    fn write(&mut self, va: u64, d: &PageDescriptor) -> Result<(), HvoError> {
        self.vmemmap.store(va - layout::SERVICE_VMEMMAP, d.to_words());
        Ok(())
    }

    fn table_frames(&mut self) -> u64 {
        check(syscall(nr::TABLE_FRAMES, [0; 6])).map_or(0, |r| r[1])
    }
}

/// The kernel's side for the client being answered, and zeroing through
/// the service's pool window.
struct Kernel {
    /// Per size shift: how many huge pages ALLOC zeroed while its client
    /// waited, and the cycles (background zeroing is not counted here).
    zeroing: [(u64, u64); 64],
    /// Zeroing in the background now.
    background: bool,
    /// Bytes zeroed in the background, and the cycles.
    background_zeroing: (u64, u64),
    /// Merges run in the background, and the cycles.
    background_merging: (u64, u64),
}

impl ClientMemory for Kernel {
    fn map_to_caller(&mut self, va: u64, pa: u64, size: u64) -> Result<u64, KernelRefused> {
        check(syscall(nr::MAP_CALLER, [va, pa, size, 0, 0, 0])).map(|r| r[1]).map_err(KernelRefused)
    }

    fn unmap_from_caller(&mut self, va: u64, size: u64) -> Result<u64, KernelRefused> {
        check(syscall(nr::UNMAP_CALLER, [va, size, 0, 0, 0, 0])).map(|r| r[1]).map_err(KernelRefused)
    }

    fn zero(&mut self, pa: u64, size: u64) {
        let start = cycles();
        // A huge page of the pool window, aligned to its size.
        memory::zero(layout::SERVICE_POOL_WINDOW + pa, size);
        let spent = cycles().wrapping_sub(start);
        if self.background {
            self.background_zeroing.0 += size;
            self.background_zeroing.1 += spent;
            return;
        }
        let per_size = &mut self.zeroing[size.trailing_zeros() as usize];
        per_size.0 += 1;
        per_size.1 += spent;
    }

    fn heap_free(&self) -> u64 {
        folio_rt::heap::free_bytes()
    }

    fn grow_heap(&mut self, pa: u64, size: u64) -> Result<(), KernelRefused> {
        folio_rt::heap::grow(pa, size).map_err(KernelRefused)
    }
}

/// The fault drill: a free folio of the pool, born optimized, and a write
/// to the first descriptor of its vmemmap page 1, which maps the shared
/// tail read-only. The write faults and the kernel stops the service;
/// returning means it did not fault (status 1) or could not be tried
/// (`start::DRILL_NOT_POSSIBLE`).
fn drill_write_to_shared_tail(service: &mut MemoryService<ServiceVmemmap>) -> u64 {
    let granule = service.hvo().granule();
    let min = hvo::min_optimizable_order(granule);
    let Some(folio) = service.free_list().into_iter().find(|f| f.order >= min) else {
        result!("memsvc.drill", true, ran = "no", why = "no free folio of an optimizable order");
        return start::DRILL_NOT_POSSIBLE;
    };
    let hvo = service.hvo();
    if !hvo.is_optimized(folio) {
        result!("memsvc.drill", false, why = "a free folio of an optimizable order is not optimized");
        return 1;
    }
    let tail = hvo.descriptor_va(folio.pfn) + granule.size();
    println!("memsvc: drill: writing the shared tail descriptor at {tail:#x}");
    let written = hvo.hw().write(tail, &PageDescriptor::default());
    result!("memsvc.drill", false, why = "a write to a shared tail did not fault", written = written.is_ok());
    1
}

/// The savings table of the running granule, each row measured on a folio
/// of this service's own pool (`MemoryService::measure_savings`).
fn report_savings(service: &mut MemoryService<ServiceVmemmap>) {
    let granule = service.hvo().granule();
    for row in service.measure_savings() {
        let size = Size(row.size);
        let unit = Unit::all_largest_first(granule).find(|u| u.size(granule) == row.size).unwrap_or(Unit::PAGE);
        let x64 = row.vmemmap_pages_x64;
        let pages = if x64 >= 64 { format!("{}", x64 / 64) } else { format!("1/{}", 64 / x64.max(1)) };
        let row_fields: [(&str, &dyn Display); 5] = [
            ("granule", &granule),
            ("size", &size),
            ("unit", &unit),
            ("descriptors", &row.descriptors),
            ("vmemmap_pages", &pages),
        ];
        let (min_order, saved);
        let (passed, outcome): (bool, Vec<(&str, &dyn Display)>) = match &row.outcome {
            Savings::NotEligible { min_order: m } => {
                min_order = *m;
                (true, vec![("eligible", &"no"), ("min_order", &min_order)])
            }
            Savings::NoFreeBlock => (true, vec![("fits", &"no")]),
            Savings::Measured { after, freed, allocator_gain } => {
                saved = Size(freed * granule.size());
                let gain: &dyn Display = match allocator_gain {
                    Some(g) => g,
                    None => &"unknown",
                };
                let agrees = allocator_gain.is_none_or(|g| g == *freed);
                (agrees, vec![("after", after), ("freed", freed), ("saved", &saved), ("allocator_gain", gain)])
            }
            Savings::Failed(e) => (false, vec![("why", e)]),
        };
        println!("{PREFIX}hvo.savings {}{}{}", verdict(passed), Fields(&row_fields), Fields(&outcome));
    }
}

fn mib(bytes: u64) -> u64 {
    bytes >> 20
}

fn start() -> Result<(MemoryService<ServiceVmemmap>, u64), &'static str> {
    let mut pool = Vec::new();
    let mut meta = None;
    let mut granule = None;
    for index in 0.. {
        let Ok(r) = check(syscall(nr::MEM_CAP, [index, 0, 0, 0, 0, 0])) else { break };
        granule = Granule::ALL.into_iter().find(|g| g.shift() as u64 == r[5]);
        let range = PhysRange::from_start_size(r[2], r[3]).ok_or("a capability wraps")?;
        let folio_shift = (r[1] >> nr_map::CAP_FOLIO_SHIFT) as u32 & 0xff;
        match r[1] & 0xff {
            nr_map::CAP_POOL => {
                pool.push(PoolRange { range, zone: r[4] as u8, folio_shift: (folio_shift != 0).then_some(folio_shift) })
            }
            nr_map::CAP_META => meta = Some(range),
            _ => return Err("a capability of an unknown kind"),
        }
    }
    let granule = granule.ok_or("no capabilities: not started as the memory service")?;
    let meta = meta.ok_or("no small frames for the vmemmap")?;
    let mut frames = FramePool::new(granule);
    frames.add_range(meta).map_err(|_| "small frames misaligned")?;
    let granted: u64 = pool.iter().map(|p| p.range.size()).sum();
    let hugepages: u64 = pool.iter().filter(|p| p.folio_shift.is_some()).map(|p| p.range.size()).sum();
    let hw = ServiceVmemmap {
        granule,
        frames,
        vmemmap: Mapped::new(layout::SERVICE_VMEMMAP, layout::SERVICE_VMEMMAP_END - layout::SERVICE_VMEMMAP),
        meta: Mapped::new(layout::SERVICE_META_WINDOW, layout::PHYS_LIMIT),
        granted: meta,
        pool: Mapped::new(layout::SERVICE_POOL_WINDOW, layout::PHYS_LIMIT),
    };
    let tables_before = check(syscall(nr::TABLE_FRAMES, [0; 6])).map_or(0, |r| r[1]);
    let began = cycles();
    let [quota, _] = folio_rt::start_arguments();
    let quota = if quota == 0 { granted / 2 } else { quota };
    let mut service = MemoryService::new(hw, granule, &pool, quota).map_err(|_| "cannot adopt the pool")?;
    let adopt_cycles = cycles().wrapping_sub(began);
    let tables = check(syscall(nr::TABLE_FRAMES, [0; 6])).map_or(0, |r| r[1]) - tables_before;
    let acc = service.hvo().accounting();
    let folios: u64 = service.free_folios().iter().map(|f| f.1).sum();
    // The pool adopted born optimized: what its vmemmap costs (private
    // pages, shared tails, page-table frames) against a plain one; cycles
    // are instructions under QEMU -icount.
    result!(
        "memsvc.adopt",
        true,
        folios = folios,
        hugepages_mib = mib(hugepages),
        private_pages = acc.vmemmap_frames,
        shared_tails = acc.shared_tails,
        table_frames = tables,
        plain_pages = acc.never_populated + acc.vmemmap_frames,
        carved_kib = service.carved_bytes() >> 10,
        cycles = adopt_cycles
    );
    for (order, count) in service.free_folios() {
        println!("memsvc: pool: {count} free folios of {}", Size(granule.size() << order));
    }
    // A write to a read-only page of the vmemmap is a write to a shared
    // tail: the kernel's fault report names it, whoever it stops.
    let labelled = folio_rt::label(
        layout::SERVICE_VMEMMAP,
        layout::SERVICE_VMEMMAP_END - layout::SERVICE_VMEMMAP,
        ON_WRITE_TO_READ_ONLY,
        SHARED_TAIL_LABEL,
    );
    if labelled != 0 {
        return Err("the kernel refused the vmemmap's label");
    }
    report_savings(&mut service);
    let acc = service.hvo().accounting();
    result!(
        "memsvc.start",
        true,
        pool_mib = mib(service.pool_total_bytes()),
        ranges = pool.len(),
        granule = granule,
        vmemmap_frames = acc.vmemmap_frames + acc.shared_tails,
        meta_mib = mib(meta.size()),
        carved_kib = service.carved_bytes() >> 10,
        quota_mib = mib(quota)
    );
    Ok((service, quota))
}

/// Bytes zeroed in one background step: a request that arrives meanwhile
/// waits for at most this much zeroing (256 KiB: about 17,000 instructions,
/// DC ZVA clearing 64 bytes each; the look for a request between steps, a
/// few hundred, is about 2 % of that).
const ZERO_CHUNK: u64 = 256 << 10;

/// Sends `owed` (if any) and returns the next request. With
/// `background_now` (the caller's choice: memory a client freed waits to
/// be merged or zeroed, or the service just started and its stock is
/// empty) and work to do, it merges (one merge a step) and zeroes (a chunk
/// a step) in the background, at a priority below every client's,
/// looking for a request between steps: the answer goes with `reply_poll`,
/// so a request already waiting is taken before the service lowers itself
/// (and the client answered runs before the background work), and it
/// raises itself again before it takes one or blocks. Otherwise it waits in `reply_recv` (the
/// IPC fast path): topping up the stock alone does not cost every request
/// the slow path; it happens in the next background run.
fn next_request(
    service: &mut MemoryService<ServiceVmemmap>,
    kernel: &mut Kernel,
    owed: Option<Message>,
    background_now: bool,
) -> (u64, u64, Message) {
    if !background_now || !service.background_work() {
        return match owed {
            Some(answer) => reply_recv(0, answer),
            None => recv(0),
        };
    }
    // The answer, and with nothing waiting the step down, in one call.
    let mut lowered = false;
    if let Some(answer) = owed {
        let (got, badge, msg) = reply_poll(0, answer, start::BACKGROUND_PRIORITY as u64);
        if got != status::WOULD_BLOCK {
            return (got, badge, msg);
        }
        lowered = true;
    }
    let next = loop {
        let (got, badge, msg) = recv_nonblocking(0);
        if got != status::WOULD_BLOCK {
            break (got, badge, msg);
        }
        if !lowered {
            // Yields: whatever a client has to run, runs first.
            set_priority(start::BACKGROUND_PRIORITY as u64);
            lowered = true;
            continue;
        }
        let start = cycles();
        if service.merge_step() {
            kernel.background_merging.0 += 1;
            kernel.background_merging.1 += cycles().wrapping_sub(start);
            continue;
        }
        kernel.background = true;
        let zeroed = service.zero_step(kernel, ZERO_CHUNK);
        kernel.background = false;
        if !zeroed {
            set_priority(start::PRIORITY as u64);
            return recv(0);
        }
    };
    if lowered {
        set_priority(start::PRIORITY as u64);
    }
    next
}

fn main() -> u64 {
    let (mut service, _) = match start() {
        Ok(s) => s,
        Err(e) => {
            result!("memsvc.start", false, why = e);
            return 1;
        }
    };
    let [_, arguments] = folio_rt::start_arguments();
    if arguments & start::DRILL_WRITE_TO_SHARED_TAIL != 0 {
        return drill_write_to_shared_tail(&mut service);
    }
    let long_lived = arguments & start::CLIENTS == 0;
    let report_each = !long_lived || arguments & start::REPORT_EACH_CLIENT != 0;
    let mut clients_left = arguments & start::CLIENTS;
    let mut clients_gone = 0u64;
    let inline_only = arguments & start::INLINE_ZEROING_ONLY != 0;
    if arguments & start::LARGE_HEAP_HEADROOM != 0 {
        service.set_heap_headroom(8 * folio_memsvc::HEAP_HEADROOM);
    }
    let mut kernel =
        Kernel { zeroing: [(0, 0); 64], background: false, background_zeroing: (0, 0), background_merging: (0, 0) };
    let (mut requests, mut refused, mut peak_saved) = (0u64, 0u64, 0u64);
    // The reply owed to the last caller, sent with the next receive.
    let mut owed: Option<Message> = None;
    loop {
        let background_now =
            !inline_only && (requests == 0 || service.zeroing_counts().dirty > 0 || service.merges_pending() > 0);
        let (status, badge, msg) = next_request(&mut service, &mut kernel, owed.take(), background_now);
        if status != 0 {
            println!("memsvc: receive failed with status {status}");
            return 1;
        }
        if badge == DEATH_BADGE {
            // A client died (msg[0] its badge, msg[1] its exit status): its
            // folios are back in the pool (queued merges: a little heap).
            service.ensure_heap(&mut kernel);
            let returned = service.client_died(msg[0]);
            clients_gone += 1;
            if report_each {
                result!("memsvc.reclaim", true, client = Hex(msg[0]), folios = returned);
            }
            if !long_lived {
                clients_left = clients_left.saturating_sub(1);
                if clients_left == 0 {
                    break;
                }
            }
            continue;
        }
        let answer = service.handle(badge, msg, &mut kernel);
        if msg[0] == op::SHUTDOWN && answer[0] == 0 {
            reply(answer);
            break;
        }
        if let Some(e) = service.last_engine_error.take() {
            println!("memsvc: request {msg:?} from {badge:#x} failed in the engine: {e:?}");
        }
        requests += 1;
        refused += (answer[0] != 0) as u64;
        if msg[0] == op::ALLOC || msg[0] == op::OPTIMIZE || msg[0] == op::DEMOTE {
            peak_saved = peak_saved.max(service.hvo().accounting().freed_by_hvo);
        }
        owed = Some(answer);
    }
    let page = service.hvo().granule().size();
    let acc = service.hvo().accounting();
    let zeroed_bytes: u64 = kernel.zeroing.iter().enumerate().map(|(shift, z)| z.0 << shift).sum();
    let zero_cycles: u64 = kernel.zeroing.iter().map(|z| z.1).sum();
    // The pool must be whole again; zeroing cycles are instructions under
    // QEMU -icount.
    result!(
        "memsvc",
        service.pool_free_bytes() == service.pool_total_bytes(),
        requests = requests,
        refused = refused,
        pool_free = service.pool_free_bytes(),
        pool_total = service.pool_total_bytes(),
        vmemmap_frames = acc.vmemmap_frames + acc.shared_tails,
        peak_saved_kib = (peak_saved * page) >> 10,
        zeroed_mib = mib(zeroed_bytes),
        zero_cycles = zero_cycles,
        zeroed_inline_kib = service.zeroing_counts().inline >> 10,
        zeroed_background_kib = service.zeroing_counts().background >> 10,
        clients_gone = clients_gone,
        heap_grown_kib = service.heap_bytes() >> 10,
        heap_kib = folio_rt::heap::total_bytes() >> 10
    );
    for (shift, &(count, spent)) in kernel.zeroing.iter().enumerate().filter(|(_, z)| z.0 > 0) {
        let (n, unit) = if shift >= 30 {
            (1u64 << (shift - 30), "G")
        } else if shift >= 20 {
            (1 << (shift - 20), "M")
        } else {
            (1 << (shift - 10), "K")
        };
        println!("memsvc: zeroing {n}{unit}: {count} times, {} PMU cycles each", spent / count);
    }
    let (bytes, spent) = kernel.background_zeroing;
    if bytes >= 1 << 20 {
        println!("memsvc: background zeroing: {} MiB, {} PMU cycles per MiB", bytes >> 20, spent / (bytes >> 20));
    }
    let (merges, spent) = kernel.background_merging;
    if let Some(each) = spent.checked_div(merges) {
        println!("memsvc: background merging: {merges} queued frees, {each} PMU cycles each");
    }
    0
}

folio_rt::entry!(main);
