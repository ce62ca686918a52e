//! The memory service's request handling, with no hardware: the pool of
//! huge pages, the clients and their quotas and folios, and the HVO engine
//! over the service's own vmemmap.
//!
//! Owns: which pool blocks are free or held and by whom, each client's
//! handles and quota, and (through [`Hvo`]) the vmemmap and its frames.
//! Must never: trust a request word (every field is checked, see
//! [`protocol`]), let one client name another's folio, hand out memory
//! that was not zeroed since its last owner, or change its state when an
//! operation fails part-way (a failed request leaves everything as it was).
//!
//! The EL0 program `user/memsvc` runs this over system calls: its
//! [`VmemmapHw`] maps the vmemmap in the service's own address space, and
//! its [`ClientMemory`] asks the kernel to map pool frames into the caller.
//! The host tests run it over the simulated machine (`hvo::sim`) and feed
//! it long random streams of requests. The design note is
//! `docs/memory-service.md`.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub use folio_abi::memsvc as protocol;
mod free_lists;
mod heap;
mod merging;
mod pool;
mod ranges;
mod savings;
#[cfg(test)]
mod tests;
mod zeroing;

pub use heap::{HEAP, HEAP_BYTES_PER_FOLIO, HEAP_GROWTH, HEAP_HEADROOM};
pub use merging::MAX_UNMERGED;
pub use pool::{CARVED, FREE, LOW_WATER};
pub use savings::{Savings, SavingsRow};
pub use zeroing::{ZERO_STOCK_MAX, ZeroingCounts};

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use folio_core::mm::{Granule, PhysRange};
use folio_hvo::{DESCRIPTOR_SHIFT, Folio, Hvo, HvoError, VmemmapHw, Zone, min_optimizable_order};
use protocol::{OK, QUERY, error, flags, layout, op, start};

pub type Message = [u64; 4];

/// Folios one client may hold at once. With folios as small as a page the
/// quota in bytes alone would let one client fill the service's heap with
/// bookkeeping; past this it gets `QUOTA_EXCEEDED`. As many as the kernel
/// lets the service map into one client (each held folio is in one of the
/// client's grants, and a grant holds at least one), so the kernel never
/// refuses a mapping the service allowed.
pub const MAX_FOLIOS_PER_CLIENT: usize = folio_abi::map::MAX_GRANTS;
/// Folios all clients together may hold: the service's bookkeeping for
/// them (about 64 bytes each) stays a fraction of its heap. Past this a
/// client gets `OUT_OF_MEMORY`.
pub const MAX_HELD_FOLIOS: usize = 32768;

/// Every engine batch fits one REMAP_SELF call, so a batch the kernel
/// refuses changed nothing (the engine's undo relies on it).
pub const ONE_CALL_PER_BATCH: bool = folio_abi::map::MAX_ENTRIES >= folio_hvo::MAX_BATCH_PAGES
    && folio_abi::map::MAX_REMAP_PAGES >= folio_hvo::MAX_BATCH_PAGES;
const _: () = assert!(ONE_CALL_PER_BATCH);

/// The kernel refused a mapping call; its status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelRefused(pub u64);

/// The kernel's side of serving one request: mappings in the address space
/// of the client being answered, and the service's view of pool memory.
pub trait ClientMemory {
    /// Maps `size` bytes of pool memory at `pa` read/write at `va` in the
    /// caller, with the largest units that fit. Returns the page-table
    /// frames the caller's tree now holds for what this service mapped
    /// there (the kernel's count; they are charged to the client).
    fn map_to_caller(&mut self, va: u64, pa: u64, size: u64) -> Result<u64, KernelRefused>;
    /// Removes `size` bytes at `va` that [`map_to_caller`](Self::map_to_caller)
    /// mapped; returns the table frames as `map_to_caller` does.
    fn unmap_from_caller(&mut self, va: u64, size: u64) -> Result<u64, KernelRefused>;
    /// Zeroes pool memory.
    fn zero(&mut self, pa: u64, size: u64);
    /// Bytes the service's own heap can still hand out.
    fn heap_free(&self) -> u64;
    /// Moves the pool frames [pa, pa + size) into the service's heap, for
    /// good (GROW_HEAP; see [`heap`]).
    fn grow_heap(&mut self, pa: u64, size: u64) -> Result<(), KernelRefused>;
}

/// A folio a client holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Held {
    folio: Folio,
    va: u64,
    /// What it costs the client's quota now: the folio's bytes and the
    /// vmemmap behind it (see [`MemoryService::charge`]).
    charge: u64,
}

struct Client {
    quota: u64,
    /// Bytes charged: its folios, their metadata, and `table_bytes`.
    used: u64,
    /// The page-table frames the kernel made in the client's tree for the
    /// folios mapped there, in bytes (as the kernel last reported them).
    table_bytes: u64,
    next_handle: u64,
    folios: BTreeMap<u64, Held>,
}

impl Client {
    /// Whether it may go from `old` to `new` bytes charged.
    fn room_for(&self, old: u64, new: u64) -> bool {
        new <= old || (self.used - old).checked_add(new).is_some_and(|u| u <= self.quota)
    }

    /// Whether it may hold `more` folios beyond what it holds, with
    /// `held_by_all` held by all clients: `Err` with the status when a
    /// bound on folios held says no.
    fn room_for_folios(&self, more: usize, held_by_all: usize) -> Result<(), u64> {
        if self.folios.len().saturating_add(more) > MAX_FOLIOS_PER_CLIENT {
            return Err(error::QUOTA_EXCEEDED);
        }
        if held_by_all.saturating_add(more) > MAX_HELD_FOLIOS {
            return Err(error::OUT_OF_MEMORY);
        }
        Ok(())
    }

    /// Its tree holds `bytes` of page tables for its folios: they are
    /// charged to it (after the fact: one mapping may take it past its
    /// quota by the few tables it needed; the next request then finds no
    /// room).
    fn charge_tables(&mut self, bytes: u64) {
        self.used = self.used - self.table_bytes + bytes;
        self.table_bytes = bytes;
    }

    /// Drops `handle` and its charge; whether it held it.
    fn forget(&mut self, handle: u64) -> bool {
        let held = self.folios.remove(&handle);
        if let Some(h) = held {
            self.used -= h.charge;
        }
        held.is_some()
    }
}

/// Why the service could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartError {
    /// A pool range is misaligned, beyond [`layout::PHYS_LIMIT`], or empty.
    BadPool,
    /// The vmemmap could not be built (frames or mappings).
    Vmemmap(HvoError),
}

/// One pool range the kernel granted, in RAM bank `zone`: huge pages of
/// `2^folio_shift` bytes (a `hugepages=` pool), or, with `None`, any mix
/// (cut into the largest sizes that fit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolRange {
    pub range: PhysRange,
    pub zone: u8,
    pub folio_shift: Option<u32>,
}

pub struct MemoryService<B: VmemmapHw> {
    hvo: Hvo<B>,
    pool: pool::Pool,
    granule: Granule,
    /// The granule's mapping sizes as orders.
    orders: pool::Orders,
    default_quota: u64,
    clients: BTreeMap<u64, Client>,
    /// The engine's error behind the last `MAPPING_FAILED`, for the log.
    pub last_engine_error: Option<HvoError>,
    /// Inside [`pool`]'s carving: engine calls do not carve again.
    carving: bool,
    /// Folios held by all clients together (at most [`MAX_HELD_FOLIOS`]).
    held_folios: usize,
    /// Bytes ALLOC zeroed while its client waited, and in the background.
    zeroed_inline: u64,
    zeroed_background: u64,
    /// Pool folios moved into the service's heap ([`heap`]).
    heap_folios: Vec<Folio>,
    /// Heap bytes kept free before a request that allocates.
    heap_headroom: u64,
}

/// The huge-page sizes of a granule as size shifts: every mapping unit
/// above a page (contiguous runs and blocks).
pub use folio_core::mm::paging::huge_page_size_shifts as supported_size_shifts;

fn reply(r1: u64, r2: u64, r3: u64) -> Message {
    [OK, r1, r2, r3]
}

fn fail(code: u64) -> Message {
    [code, 0, 0, 0]
}

fn hvo_error(e: HvoError) -> u64 {
    match e {
        HvoError::OutOfMemory => error::OUT_OF_MEMORY,
        HvoError::NotEligible { .. } => error::NOT_ELIGIBLE,
        HvoError::AlreadyOptimized | HvoError::NotOptimized => error::ALREADY_DONE,
        _ => error::MAPPING_FAILED,
    }
}

impl<B: VmemmapHw> MemoryService<B> {
    /// Describes the pool ranges in a vmemmap at
    /// [`layout::SERVICE_VMEMMAP`], every block adopted born optimized and
    /// free (see [`pool`]). `default_quota`: bytes each client may hold.
    pub fn new(hw: B, granule: Granule, pool: &[PoolRange], default_quota: u64) -> Result<Self, StartError> {
        let page = granule.size();
        let mut zones = Vec::new();
        for p in pool {
            let r = p.range;
            if r.is_empty() || r.start() % page != 0 || r.end() % page != 0 || r.end() > layout::PHYS_LIMIT {
                return Err(StartError::BadPool);
            }
            if zones.iter().any(|z: &Zone| z.range.overlaps(&r)) {
                return Err(StartError::BadPool);
            }
            zones.push(Zone { id: p.zone, range: r });
        }
        let hvo = Hvo::new_unpopulated(hw, granule, layout::SERVICE_VMEMMAP, &zones);
        let mut service = MemoryService {
            hvo,
            pool: pool::Pool::default(),
            granule,
            orders: pool::Orders::of(granule),
            default_quota,
            clients: BTreeMap::new(),
            last_engine_error: None,
            carving: false,
            held_folios: 0,
            zeroed_inline: 0,
            zeroed_background: 0,
            heap_folios: Vec::new(),
            heap_headroom: HEAP_HEADROOM,
        };
        service.adopt_pool(pool)?;
        Ok(service)
    }

    /// The status for an engine error, remembering the error when it is
    /// not one a client can cause.
    fn engine_error(&mut self, e: HvoError) -> u64 {
        let status = hvo_error(e);
        if status == error::MAPPING_FAILED {
            self.last_engine_error = Some(e);
        }
        status
    }

    pub fn hvo(&mut self) -> &mut Hvo<B> {
        &mut self.hvo
    }

    /// Bytes of free folios.
    pub fn pool_free_bytes(&self) -> u64 {
        self.pool.free_bytes()
    }

    /// Bytes of the pool clients can get: what the kernel granted less
    /// what was carved into vmemmap frames.
    pub fn pool_total_bytes(&self) -> u64 {
        self.pool.total_bytes()
    }

    /// Pool bytes carved into vmemmap frames.
    pub fn carved_bytes(&self) -> u64 {
        self.pool.carved_bytes()
    }

    /// Free folios of each order: (order, count).
    pub fn free_folios(&self) -> Vec<(u32, u64)> {
        self.pool.free_counts()
    }

    /// Every free folio.
    pub fn free_list(&self) -> Vec<Folio> {
        self.pool.free_list()
    }

    /// Bytes client `badge` holds.
    pub fn used_by(&self, badge: u64) -> u64 {
        self.clients.get(&badge).map_or(0, |c| c.used)
    }

    /// Folios client `badge` holds: (handle, head frame, order, address).
    pub fn folios_of(&self, badge: u64) -> Vec<(u64, u64, u32, u64)> {
        self.clients
            .get(&badge)
            .map(|c| c.folios.iter().map(|(&h, f)| (h, f.folio.pfn, f.folio.order, f.va)).collect())
            .unwrap_or_default()
    }

    /// The badges of clients that hold something or have asked something.
    pub fn clients(&self) -> Vec<u64> {
        self.clients.keys().copied().collect()
    }

    fn client(&mut self, badge: u64) -> &mut Client {
        let quota = self.default_quota;
        self.clients.entry(badge).or_insert_with(|| Client {
            quota,
            used: 0,
            table_bytes: 0,
            next_handle: 1,
            folios: BTreeMap::new(),
        })
    }

    fn held(&self, badge: u64, handle: u64) -> Result<Held, u64> {
        self.clients.get(&badge).and_then(|c| c.folios.get(&handle)).copied().ok_or(error::INVALID_HANDLE)
    }

    /// What a folio of `order` costs its client: its own bytes plus its
    /// metadata: the descriptors a plain vmemmap holds for it, or, when
    /// optimized, its one private vmemmap page (the shared tail is the
    /// service's), and its share of the service's heap
    /// ([`HEAP_BYTES_PER_FOLIO`]).
    fn charge(&self, order: u32, optimized: bool) -> u64 {
        let vmemmap = if optimized { self.granule.size() } else { (1u64 << order) << DESCRIPTOR_SHIFT };
        (self.granule.size() << order) + vmemmap + HEAP_BYTES_PER_FOLIO
    }

    fn eligible(&self, order: u32) -> bool {
        order >= min_optimizable_order(self.granule)
    }

    /// Whether client `badge` may go from `old` to `new` bytes charged.
    fn room_for(&mut self, badge: u64, old: u64, new: u64) -> bool {
        self.client(badge).room_for(old, new)
    }

    /// Charges client `badge` `new` bytes for `handle` instead of its old charge.
    fn recharge(&mut self, badge: u64, handle: u64, new: u64) {
        if let Some(client) = self.clients.get_mut(&badge)
            && let Some(h) = client.folios.get_mut(&handle)
        {
            client.used = client.used - h.charge + new;
            h.charge = new;
        }
    }

    fn folio_flags(&mut self, folio: Folio) -> u64 {
        if self.hvo.is_optimized(folio) { flags::OPTIMIZED } else { 0 }
    }

    /// Answers one request from client `badge`.
    pub fn handle(&mut self, badge: u64, msg: Message, mem: &mut dyn ClientMemory) -> Message {
        let [operation, a, b, c] = msg;
        // What makes the service keep more (records, engine batches) needs
        // its heap's headroom first; the rest is served regardless.
        let keeps_more = matches!(operation, op::ALLOC | op::DEMOTE | op::OPTIMIZE | op::RESTORE);
        if !self.ensure_heap(mem) && keeps_more {
            return fail(error::OUT_OF_MEMORY);
        }
        let unused = |words: &[u64]| words.iter().any(|&w| w != 0);
        let result = match operation {
            op::SIZES if !unused(&[a, b, c]) => Ok(self.sizes()),
            op::ALLOC if !unused(&[c]) => self.alloc(badge, a, b, mem),
            op::FREE if !unused(&[b, c]) => self.free(badge, a, mem).map(|_| reply(0, 0, 0)),
            op::DEMOTE if !unused(&[c]) => self.demote(badge, a, b),
            op::OPTIMIZE | op::RESTORE if !unused(&[b, c]) => self.change(badge, a, operation == op::OPTIMIZE),
            op::STATS if !unused(&[b, c]) => self.stats(a),
            op::POOL if !unused(&[a, b, c]) => Ok(self.pool_info()),
            op::QUOTA if !unused(&[b, c]) => self.quota(badge, a),
            op::INFO if !unused(&[b, c]) => self.held(badge, a).map(|h| {
                let f = self.folio_flags(h.folio);
                reply(h.va, (h.folio.order + self.granule.shift()) as u64, f)
            }),
            op::ZEROING if !unused(&[a, b, c]) => {
                let z = self.zeroing_counts();
                Ok(reply(z.zero, z.dirty + z.unknown, z.dirty))
            }
            op::SHUTDOWN if !unused(&[a, b, c]) => match badge {
                start::OPERATOR_BADGE => Ok(reply(self.pool_free_bytes(), self.pool_total_bytes(), 0)),
                _ => Err(error::NOT_PERMITTED),
            },
            op::SIZES..=op::SHUTDOWN => Err(error::INVALID_ARGUMENT),
            _ => Err(error::UNKNOWN_OPERATION),
        };
        result.unwrap_or_else(fail)
    }

    /// SIZES: the mapping sizes, then the granule's shift, the smallest
    /// size HVO can optimize and the largest free folio's size (shifts,
    /// one byte each), then the pool's bytes.
    fn sizes(&mut self) -> Message {
        self.merge_pending();
        let shift = self.granule.shift() as u64;
        let min_optimizable = min_optimizable_order(self.granule) as u64 + shift;
        let largest = self.pool.largest_free_order().map_or(0, |o| o as u64 + shift);
        reply(
            self.orders.as_size_shifts(self.granule.shift()),
            shift | min_optimizable << 8 | largest << 16,
            self.pool_total_bytes(),
        )
    }

    /// The order of a folio of `1 << size_shift` bytes: any power of two
    /// from the base page to the largest mapping unit (the largest block
    /// the pool is adopted as).
    fn order_of(&self, size_shift: u64) -> Result<u32, u64> {
        let largest = u64::from(self.orders.largest());
        let order = size_shift.checked_sub(self.granule.shift() as u64).ok_or(error::UNSUPPORTED_SIZE)?;
        if order > largest {
            return Err(error::UNSUPPORTED_SIZE);
        }
        Ok(order as u32)
    }

    /// Whether client `badge` may hold `more` folios beyond what it holds:
    /// `Err` with the status when a bound on folios held says no.
    fn room_for_folios(&mut self, badge: u64, more: usize) -> Result<(), u64> {
        let held_by_all = self.held_folios;
        self.client(badge).room_for_folios(more, held_by_all)
    }

    fn alloc(&mut self, badge: u64, size_shift: u64, request: u64, mem: &mut dyn ClientMemory) -> Result<Message, u64> {
        if request & !flags::NO_OPTIMIZE != 0 {
            return Err(error::INVALID_ARGUMENT);
        }
        let order = self.order_of(size_shift)?;
        let size = 1u64 << size_shift;
        if !self.pool.has_free_at_least(order) {
            // What waits to merge may make one.
            self.merge_pending();
            if !self.pool.has_free_at_least(order) {
                return Err(error::OUT_OF_MEMORY);
            }
        }
        let optimize = request & flags::NO_OPTIMIZE == 0 && self.eligible(order);
        let charge = self.charge(order, optimize);
        let held_by_all = self.held_folios;
        let client = self.client(badge);
        if !client.room_for(0, charge) {
            return Err(error::QUOTA_EXCEEDED);
        }
        client.room_for_folios(1, held_by_all)?;
        let folio = match self.take(order) {
            Ok(Some(f)) => f,
            Ok(None) => return Err(error::OUT_OF_MEMORY),
            Err(e) => return Err(self.engine_error(e)),
        };
        // Free folios are kept optimized where eligible; a plain request
        // restores this one.
        if self.hvo.is_optimized(folio) != optimize {
            let r = if optimize {
                self.engine(|h| h.optimize(&[folio])).map(|_| ())
            } else {
                self.engine(|h| h.restore(&[folio])).map(|_| ())
            };
            if let Err(e) = r {
                self.give_back(folio);
                return Err(self.engine_error(e));
            }
        }
        let _ = self.hvo.set_owner(folio, badge);
        let pa = folio.pfn << self.granule.shift();
        // Nothing of a previous owner survives: what the background has not
        // zeroed yet is zeroed now, before mapping.
        self.zero_for_client(folio, mem);
        let va = layout::CLIENT_WINDOW + pa;
        let Ok(tables) = mem.map_to_caller(va, pa, size) else {
            self.give_back(folio);
            return Err(error::MAPPING_FAILED);
        };
        let table_bytes = self.table_bytes(tables);
        let client = self.client(badge);
        let handle = client.next_handle;
        client.next_handle += 1;
        client.used += charge;
        client.folios.insert(handle, Held { folio, va, charge });
        client.charge_tables(table_bytes);
        self.held_folios += 1;
        // Optimized exactly when asked for (made so above).
        let f = if optimize { flags::OPTIMIZED } else { 0 };
        Ok(reply(handle, va, f))
    }

    fn free(&mut self, badge: u64, handle: u64, mem: &mut dyn ClientMemory) -> Result<(), u64> {
        let held = self.held(badge, handle)?;
        let size = self.granule.size() << held.folio.order;
        let Ok(tables) = mem.unmap_from_caller(held.va, size) else {
            // Cannot happen for a mapping this service made; keep the
            // frames out of the pool rather than hand out mapped memory.
            return Err(error::MAPPING_FAILED);
        };
        let table_bytes = self.table_bytes(tables);
        if let Some(client) = self.clients.get_mut(&badge) {
            client.forget(handle);
            client.charge_tables(table_bytes);
            self.held_folios -= 1;
        }
        self.dirtied(held.folio);
        self.give_back(held.folio);
        Ok(())
    }

    /// The bytes of `tables` page-table frames (what the kernel reports a
    /// client's tree holds for its folios; see [`Client::charge_tables`]).
    fn table_bytes(&self, tables: u64) -> u64 {
        tables.saturating_mul(self.granule.size())
    }

    fn forget(&mut self, badge: u64, handle: u64) {
        if let Some(client) = self.clients.get_mut(&badge)
            && client.forget(handle)
        {
            self.held_folios -= 1;
        }
    }

    fn demote(&mut self, badge: u64, handle: u64, size_shift: u64) -> Result<Message, u64> {
        let held = self.held(badge, handle)?;
        let to = self.order_of(size_shift).map_err(|_| error::INVALID_ARGUMENT)?;
        if to >= held.folio.order {
            return Err(error::INVALID_ARGUMENT);
        }
        // Optimized pieces each keep a private vmemmap page: the client pays.
        let optimized = self.hvo.is_optimized(held.folio) && self.eligible(to);
        let piece_charge = self.charge(to, optimized);
        let count = 1u64 << (held.folio.order - to);
        if !self.room_for(badge, held.charge, piece_charge.saturating_mul(count)) {
            return Err(error::QUOTA_EXCEEDED);
        }
        self.room_for_folios(badge, usize::try_from(count - 1).unwrap_or(usize::MAX))?;
        let pieces = self.engine(|h| h.demote(held.folio, to)).map_err(|e| self.engine_error(e))?;
        let piece_size = self.granule.size() << to;
        // The pieces get fresh, consecutive handles; the old one is gone.
        self.forget(badge, handle);
        let client = self.client(badge);
        let first = client.next_handle;
        client.next_handle += pieces.len() as u64;
        for (i, p) in pieces.iter().enumerate() {
            let piece = Held { folio: *p, va: held.va + i as u64 * piece_size, charge: piece_charge };
            client.folios.insert(first + i as u64, piece);
            client.used += piece_charge;
        }
        self.held_folios += pieces.len();
        Ok(reply(first, pieces.len() as u64, 0))
    }

    fn change(&mut self, badge: u64, handle: u64, optimize: bool) -> Result<Message, u64> {
        let held = self.held(badge, handle)?;
        let charge = self.charge(held.folio.order, optimize);
        if !self.room_for(badge, held.charge, charge) {
            return Err(error::QUOTA_EXCEEDED);
        }
        let folio = held.folio;
        let r = self.engine(|h| if optimize { h.optimize(&[folio]) } else { h.restore(&[folio]) });
        match r {
            Ok(report) if report.not_eligible > 0 => Err(error::NOT_ELIGIBLE),
            Ok(_) => {
                self.recharge(badge, handle, charge);
                Ok(reply(0, 0, 0))
            }
            Err(e) => Err(self.engine_error(e)),
        }
    }

    fn stats(&mut self, index: u64) -> Result<Message, u64> {
        self.merge_pending();
        let page = self.granule.size();
        let shift = self.granule.shift() as u64;
        let s = usize::try_from(index).ok().and_then(|i| self.hvo.order_stats().get(i)).ok_or(error::NO_SUCH_ENTRY)?;
        let word = s.zone as u64 | (s.order as u64 + shift) << 8 | s.folios.min(0xff_ffff) << 16 | s.optimized << 40;
        Ok(reply(word, s.vmemmap_pages_before * page, s.vmemmap_pages_after * page))
    }

    fn pool_info(&mut self) -> Message {
        self.merge_pending();
        let largest = self.pool.largest_free_order().map_or(0, |o| o as u64 + self.granule.shift() as u64);
        reply(self.pool.free_bytes(), self.hvo.accounting().freed_by_hvo * self.granule.size(), largest)
    }

    fn quota(&mut self, badge: u64, new: u64) -> Result<Message, u64> {
        let client = self.client(badge);
        if new != QUERY {
            if new > client.quota {
                return Err(error::INVALID_ARGUMENT);
            }
            client.quota = new;
        }
        let page = self.granule.size();
        let client = self.client(badge);
        let metadata: u64 = client.folios.values().map(|h| h.charge - (page << h.folio.order)).sum();
        Ok(reply(client.quota, client.used, metadata + client.table_bytes))
    }

    /// Client `badge` died: the kernel has already removed its mappings;
    /// its folios go back to the pool. Returns how many.
    pub fn client_died(&mut self, badge: u64) -> usize {
        let Some(client) = self.clients.remove(&badge) else { return 0 };
        let count = client.folios.len();
        self.held_folios -= count;
        for h in client.folios.into_values() {
            self.dirtied(h.folio);
            self.give_back(h.folio);
        }
        count
    }
}
