//! The service's own heap: it grows from the pool, and what the service
//! keeps there for a client's folios is charged to that client.
//!
//! Owns: the rule that a request which makes the service allocate finds
//! [`HEAP_HEADROOM`] bytes of heap free first (with room over what one
//! request keeps: a DEMOTE's 1,024 records, a restore's batch of at most
//! 4,096 remaps, the merge queue's 64 KiB), the pool folios moved into the
//! heap, and the bookkeeping
//! charge per folio.
//! Must never: let the heap run out in the middle of a request (the
//! program would stop, and with it every client: a request that would
//! need more than what is free and cannot grow it is refused with
//! `OUT_OF_MEMORY` before it changes anything), or give pool memory to the
//! heap that a client or the vmemmap can still reach (only a free folio
//! moves, and the kernel takes it out of the service's capabilities).
//!
//! A folio moved into the heap leaves the pool for good, like one carved
//! into vmemmap frames: the pool's total shrinks by it, and it stays
//! described in the vmemmap, owned by [`HEAP`].

use folio_core::mm::PhysRange;
use folio_hvo::{Folio, VmemmapHw};

use crate::{ClientMemory, MemoryService};

/// Owner recorded in the head of a folio moved into the service's heap.
pub const HEAP: u64 = u64::MAX - 1;
/// Heap bytes free before a request that allocates is served.
pub const HEAP_HEADROOM: u64 = 1 << 20;
/// Bytes one growth moves from the pool into the heap: one free folio.
pub const HEAP_GROWTH: u64 = 2 << 20;
/// Heap bytes a held folio costs its client: its record in the client's
/// table (a 40-byte entry of a B-tree, whose nodes are at least half
/// full) and the free-list and range-set entries the pieces around it
/// leave (as many again, and some).
pub const HEAP_BYTES_PER_FOLIO: u64 = 256;

impl<B: VmemmapHw> MemoryService<B> {
    /// Before a request: grows the heap by a free folio of [`HEAP_GROWTH`]
    /// bytes (split from the smallest larger one if need be) when less than
    /// its target is free ([`HEAP_HEADROOM`], or what
    /// [`MemoryService::set_heap_headroom`] asked). `false` only when less
    /// than [`HEAP_HEADROOM`] is free and the pool has nothing to give (or
    /// the kernel refused): then a request that keeps more must be refused.
    /// Below the target but above that, a pool with no free 2 MiB left is
    /// no reason to refuse anything.
    pub fn ensure_heap(&mut self, mem: &mut dyn ClientMemory) -> bool {
        let free = mem.heap_free();
        if free >= self.heap_headroom {
            return true;
        }
        let short = free < HEAP_HEADROOM;
        let order = (HEAP_GROWTH >> self.granule.shift()).max(1).ilog2();
        if short && !self.pool.has_free_at_least(order) {
            // What waits to merge may make one.
            self.merge_pending();
        }
        self.grow_heap(mem, order) || !short
    }

    /// Moves the smallest free folio that holds one of `order` (zero or
    /// not: the heap does not need it zeroed), split to that order, into
    /// the heap. `false`: none, or the kernel refused.
    fn grow_heap(&mut self, mem: &mut dyn ClientMemory, order: u32) -> bool {
        let shift = self.granule.shift();
        let head = self.pool.free.first_at_least(order).map(|(_, head)| head);
        let Some(Ok(Some(folio))) = head.map(|h| self.take_at(h, order)) else { return false };
        let pa = folio.pfn << shift;
        let size = self.granule.size() << folio.order;
        if mem.grow_heap(pa, size).is_err() {
            self.give_back(folio);
            return false;
        }
        self.pool.total_bytes -= size;
        let end = folio.pfn + (1 << folio.order);
        self.pool.zero.remove(folio.pfn, end);
        self.pool.dirty.remove(folio.pfn, end);
        let _ = self.hvo.set_owner(folio, HEAP);
        self.heap_folios.push(folio);
        true
    }

    /// Keeps `bytes` of heap free instead of [`HEAP_HEADROOM`] (at least
    /// that).
    pub fn set_heap_headroom(&mut self, bytes: u64) {
        self.heap_headroom = bytes.max(HEAP_HEADROOM);
    }

    /// Pool bytes moved into the service's heap.
    pub fn heap_bytes(&self) -> u64 {
        self.heap_ranges().map(|r| r.size()).sum()
    }

    /// The folios moved into the heap, as ranges of physical memory.
    pub fn heap_ranges(&self) -> impl Iterator<Item = PhysRange> + '_ {
        let shift = self.granule.shift();
        self.heap_folios.iter().map(move |f: &Folio| PhysRange::saturating(f.pfn << shift, 1 << (f.order + shift)))
    }
}
