//! Host tests of the memory service's request handling over the simulated
//! machine: every operation, isolation between clients, hostile requests,
//! client death, and long random streams of requests (garbage included)
//! with the pool's, the quotas' and the vmemmap's accounting checked after
//! every one, and the checker and TLB model over the vmemmap's tables.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::vec::Vec;

use super::protocol::{QUERY, error, flags, layout, op};
use super::*;
use folio_hvo::sim::SimVmemmap;

/// The kernel's side in a test: the mappings of every client, checked the
/// way the kernel checks them, and which pool ranges were zeroed since
/// they were last mapped.
#[derive(Default)]
struct FakeKernel {
    caller: u64,
    /// (client, va) -> (pa, size)
    mappings: BTreeMap<(u64, u64), (u64, u64)>,
    /// Pool bytes zeroed and not mapped to anyone since (in 4 KiB units).
    clean: crate::ranges::RangeSet,
    fail_next_map: bool,
    fail_next_unmap: bool,
    /// The service's heap: `None` has room to spare; `Some(n)`, n bytes
    /// free (a test sets it to make the service grow its heap).
    heap_free: Option<u64>,
    /// Pool ranges moved into the heap (pa, size).
    heap: Vec<(u64, u64)>,
}

impl FakeKernel {
    fn held_bytes(&self, client: u64) -> u64 {
        self.mappings.iter().filter(|((c, _), _)| *c == client).map(|(_, (_, s))| s).sum()
    }

    fn client_died(&mut self, client: u64) {
        self.mappings.retain(|(c, _), _| *c != client);
    }

    /// The page-table frames the client's tree holds for its mappings, as a
    /// 4K kernel would need them: one table per 2 MiB, 1 GiB and 512 GiB
    /// span that holds a mapping smaller than the span.
    fn tables(&self, client: u64) -> u64 {
        let mut spans = alloc::collections::BTreeSet::new();
        for (&(c, va), &(_, size)) in &self.mappings {
            for span in [1u64 << 21, 1 << 30, 1 << 39] {
                if c == client && size < span {
                    for s in va / span..=(va + size - 1) / span {
                        spans.insert((span, s));
                    }
                }
            }
        }
        spans.len() as u64
    }
}

impl ClientMemory for FakeKernel {
    fn map_to_caller(&mut self, va: u64, pa: u64, size: u64) -> Result<u64, KernelRefused> {
        if core::mem::take(&mut self.fail_next_map) {
            return Err(KernelRefused(13));
        }
        assert!((layout::CLIENT_WINDOW..layout::CLIENT_WINDOW_END).contains(&va));
        assert_eq!(va % size, 0, "huge page at {va:#x} is not aligned to its size");
        assert!(self.clean.covers(pa >> 12, (pa + size) >> 12), "{pa:#x}: mapped without zeroing first");
        self.clean.remove(pa >> 12, (pa + size) >> 12);
        for &(p, s) in self.mappings.values() {
            assert!(pa + size <= p || p + s <= pa, "pool memory {pa:#x} mapped twice");
        }
        self.mappings.insert((self.caller, va), (pa, size));
        Ok(self.tables(self.caller))
    }

    fn unmap_from_caller(&mut self, va: u64, size: u64) -> Result<u64, KernelRefused> {
        if core::mem::take(&mut self.fail_next_unmap) {
            return Err(KernelRefused(15));
        }
        let key = self
            .mappings
            .range(..=(self.caller, va))
            .next_back()
            .filter(|((c, start), (_, s))| *c == self.caller && va + size <= start + s)
            .map(|(k, _)| *k)
            .ok_or(KernelRefused(13))?;
        let (pa, s) = self.mappings.remove(&key).unwrap_or_default();
        let start = key.1;
        if va > start {
            self.mappings.insert((self.caller, start), (pa, va - start));
        }
        if va + size < start + s {
            self.mappings.insert((self.caller, va + size), (pa + (va + size - start), start + s - va - size));
        }
        Ok(self.tables(self.caller))
    }

    fn zero(&mut self, pa: u64, size: u64) {
        for &(p, s) in self.mappings.values().chain(&self.heap) {
            assert!(pa + size <= p || p + s <= pa, "zeroing {pa:#x}, which a client or the heap holds");
        }
        self.clean.insert(pa >> 12, (pa + size) >> 12);
    }

    fn heap_free(&self) -> u64 {
        self.heap_free.unwrap_or(u64::MAX)
    }

    /// As the kernel: refused while a client has any of it mapped, or when
    /// it was moved already.
    fn grow_heap(&mut self, pa: u64, size: u64) -> Result<(), KernelRefused> {
        if self.mappings.values().chain(&self.heap).any(|&(p, s)| pa < p + s && p < pa + size) {
            return Err(KernelRefused(13));
        }
        self.heap.push((pa, size));
        self.heap_free = self.heap_free.map(|n| n + size);
        Ok(())
    }
}

struct Setup {
    service: MemoryService<SimVmemmap>,
    kernel: FakeKernel,
    meta_frames: u64,
}

/// Two zones of `zone_size` in different banks, and the fixed handful of
/// small frames the kernel grants: the service carves pool folios when the
/// vmemmap needs more.
fn setup(granule: Granule, zone_size: u64, quota: u64) -> Setup {
    let pool = [pool_range(0x4000_0000, zone_size, 0, None), pool_range(0x10_0000_0000, zone_size, 1, None)];
    setup_with(granule, &pool, SMALL_FRAMES, quota)
}

/// A pool range the kernel grants: [start, start + size) in bank `zone`,
/// of `2^folio_shift`-byte huge pages (a `hugepages=` pool) or any mix.
fn pool_range(start: u64, size: u64, zone: u8, folio_shift: Option<u32>) -> PoolRange {
    PoolRange { range: PhysRange::from_start_size(start, size).unwrap(), zone, folio_shift }
}

/// The kernel's fixed grant of small frames in these tests.
const SMALL_FRAMES: u64 = 128;

fn setup_with(granule: Granule, pool: &[PoolRange], meta_frames: u64, quota: u64) -> Setup {
    let service = MemoryService::new(SimVmemmap::new_lower(granule, meta_frames), granule, pool, quota).unwrap();
    let mut t = Setup { service, kernel: FakeKernel::default(), meta_frames };
    t.service.hvo().hw().judge("adoption");
    t.check();
    t
}

impl Setup {
    fn ask(&mut self, client: u64, msg: Message) -> Message {
        self.kernel.caller = client;
        let r = self.service.handle(client, msg, &mut self.kernel);
        self.check();
        r
    }

    /// Every invariant the service promises, after every request.
    fn check(&mut self) {
        let s = &mut self.service;
        let mut held_total = 0;
        let page = s.granule.size();
        for client in s.clients() {
            let folios = s.folios_of(client);
            let bytes: u64 = folios.iter().map(|f| page << f.2).sum();
            // Metadata: one private page for an optimized folio, every
            // descriptor for a plain one; and its share of the heap.
            let mut metadata = 0;
            for &(_, pfn, order, _) in &folios {
                let optimized = s.hvo.is_optimized(Folio { pfn, order });
                metadata += if optimized { page } else { (1u64 << order) * 64 };
                metadata += HEAP_BYTES_PER_FOLIO;
            }
            // And the page-table frames the kernel made to map them.
            let tables = self.kernel.tables(client) * page;
            assert_eq!(s.used_by(client), bytes + metadata + tables, "client {client}: quota accounting");
            assert_eq!(self.kernel.held_bytes(client), bytes, "client {client}: mapped bytes");
            for (_, pfn, order, va) in folios {
                assert_eq!(va, layout::CLIENT_WINDOW + (pfn << s.granule.shift()));
                assert_eq!(s.hvo.compound_head(pfn + (1 << order) - 1), pfn);
            }
            held_total += bytes;
        }
        assert_eq!(s.pool_free_bytes() + held_total, s.pool_total_bytes(), "pool accounting");
        // The heap's folios: the kernel's record, gone from the pool.
        let heap: Vec<(u64, u64)> = s.heap_ranges().map(|r| (r.start(), r.size())).collect();
        assert_eq!(heap, self.kernel.heap, "heap growth against the kernel's record");
        assert_eq!(heap.iter().map(|h| h.1).sum::<u64>(), s.heap_bytes());
        let acc = s.hvo.accounting();
        let vmemmap = acc.vmemmap_frames + acc.shared_tails;
        let meta_free = s.hvo.hw().frames.free_frames();
        let carved = s.carved_bytes() >> s.granule.shift();
        assert_eq!(vmemmap + meta_free, self.meta_frames + carved, "vmemmap frames against the frame allocator");
        // Known-zero and dirty memory is free memory, never both.
        let mut free = crate::ranges::RangeSet::default();
        for f in s.free_list() {
            free.insert(f.pfn, f.pfn + (1 << f.order));
        }
        for (start, end) in s.pool.zero.iter().chain(s.pool.dirty.iter()) {
            assert!(free.covers(start, end), "zero or dirty [{start:#x}, {end:#x}) is not free");
        }
        for (start, end) in s.pool.zero.iter() {
            assert_eq!(s.pool.dirty.gaps(start, end), [(start, end)], "zero and dirty at once");
        }
        // Free folios are described, free, and optimized wherever their
        // order is eligible.
        for f in s.free_list() {
            let eligible = f.order >= folio_hvo::min_optimizable_order(s.granule);
            assert_eq!(s.hvo.is_optimized(f), eligible, "free {f:?}");
            assert_eq!(s.hvo.descriptor(f.pfn).owner, FREE, "free {f:?}");
            assert_eq!(s.hvo.compound_head(f.pfn + (1 << f.order) - 1), f.pfn);
        }
    }
}

fn ok(r: Message) -> Message {
    assert_eq!(r[0], 0, "request failed: {r:?}");
    r
}

#[test]
fn every_operation_on_every_granule() {
    for (granule, zone, small, large) in
        [(Granule::K4, 64 << 20, 21, 25), (Granule::K16, 128 << 20, 25, 25), (Granule::K64, 1 << 30, 29, 29)]
    {
        let mut t = setup(granule, zone, u64::MAX);
        let sizes = ok(t.ask(1, [op::SIZES, 0, 0, 0]));
        assert_eq!(sizes[1], supported_size_shifts(granule));
        assert_ne!(sizes[1] & 1 << small, 0);
        // The granule's shift, the smallest size HVO optimizes (two
        // vmemmap pages of descriptors: 512K, 8M, 128M), the largest free.
        let min_optimizable = granule.shift() as u64 + 1 + granule.shift() as u64 - 6;
        assert_eq!(sizes[2], granule.shift() as u64 | min_optimizable << 8 | large << 16);
        assert_eq!(sizes[3], 2 * zone);
        // Allocate (optimized by default): the pool and the vmemmap move.
        // The pool was born optimized: every block of `large` saves n - 1
        // vmemmap pages before anyone asks.
        let n = (1u64 << (large - granule.shift() as u64)) * 64 / granule.size();
        let blocks = (2 * zone) >> large;
        let freed_before = ok(t.ask(1, [op::POOL, 0, 0, 0]))[2];
        assert_eq!(freed_before, blocks * (n - 1) * granule.size(), "{granule}: born optimized");
        let a = ok(t.ask(1, [op::ALLOC, large, 0, 0]));
        assert_eq!(a[3], flags::OPTIMIZED);
        let pool = ok(t.ask(1, [op::POOL, 0, 0, 0]));
        assert_eq!(pool[1], 2 * zone - (1 << large));
        assert_eq!(pool[2], freed_before, "handing out an optimized folio changes no vmemmap page");
        let info = ok(t.ask(1, [op::INFO, a[1], 0, 0]));
        assert_eq!((info[1], info[2], info[3]), (a[2], large, flags::OPTIMIZED));
        // Stats: one entry for (zone 0, size): every folio described there
        // (free and held), all optimized, with before / after bytes.
        let st = ok(t.ask(1, [op::STATS, 0, 0, 0]));
        let in_zone = blocks / 2;
        assert_eq!((st[1] & 0xff, (st[1] >> 8) & 0xff), (0, large));
        assert_eq!(((st[1] >> 16) & 0xff_ffff, st[1] >> 40), (in_zone, in_zone));
        assert_eq!(st[2], in_zone * n * granule.size());
        assert_eq!(st[3], in_zone * granule.size());
        assert_eq!(t.ask(1, [op::STATS, 99, 0, 0])[0], error::NO_SUCH_ENTRY);
        // Restore and optimize again; each twice gives ALREADY_DONE.
        ok(t.ask(1, [op::RESTORE, a[1], 0, 0]));
        assert_eq!(t.ask(1, [op::RESTORE, a[1], 0, 0])[0], error::ALREADY_DONE);
        assert_eq!(ok(t.ask(1, [op::INFO, a[1], 0, 0]))[3], 0);
        ok(t.ask(1, [op::OPTIMIZE, a[1], 0, 0]));
        assert_eq!(t.ask(1, [op::OPTIMIZE, a[1], 0, 0])[0], error::ALREADY_DONE);
        // Demote where a smaller size exists, then free every piece.
        let handles: Vec<u64> = if small < large {
            let d = ok(t.ask(1, [op::DEMOTE, a[1], small, 0]));
            assert_eq!(d[2], 1 << (large - small));
            assert_eq!(t.ask(1, [op::INFO, a[1], 0, 0])[0], error::INVALID_HANDLE, "the old handle is gone");
            let first = ok(t.ask(1, [op::INFO, d[1], 0, 0]));
            assert_eq!(first[1], a[2]);
            (d[1]..d[1] + d[2]).collect()
        } else {
            vec![a[1]]
        };
        for h in handles {
            ok(t.ask(1, [op::FREE, h, 0, 0]));
        }
        // All back and merged (less what was carved for the vmemmap).
        let pool = ok(t.ask(1, [op::POOL, 0, 0, 0]));
        assert_eq!(pool[1], t.service.pool_total_bytes());
        assert_eq!(pool[1] + t.service.carved_bytes(), 2 * zone);
        assert_eq!(ok(t.ask(1, [op::QUOTA, QUERY, 0, 0]))[2], 0);
        // A plain allocation, left as it is.
        let p = ok(t.ask(1, [op::ALLOC, large, flags::NO_OPTIMIZE, 0]));
        assert_eq!(p[3], 0);
        ok(t.ask(1, [op::FREE, p[1], 0, 0]));
        t.service.hvo().hw().judge("every operation");
    }
}

#[test]
fn a_client_cannot_touch_or_see_another_clients_folio() {
    let mut t = setup(Granule::K4, 64 << 20, u64::MAX);
    let a = ok(t.ask(1, [op::ALLOC, 21, 0, 0]));
    for request in [
        [op::FREE, a[1], 0, 0],
        [op::DEMOTE, a[1], 16, 0],
        [op::OPTIMIZE, a[1], 0, 0],
        [op::RESTORE, a[1], 0, 0],
        [op::INFO, a[1], 0, 0],
    ] {
        assert_eq!(t.ask(2, request)[0], error::INVALID_HANDLE, "{request:?}");
    }
    // Handles are per client: client 2's first handle has the same number
    // and names its own folio.
    let b = ok(t.ask(2, [op::ALLOC, 21, 0, 0]));
    assert_eq!(a[1], b[1]);
    assert_ne!(a[2], b[2]);
    ok(t.ask(2, [op::FREE, b[1], 0, 0]));
    assert_eq!(ok(t.ask(1, [op::INFO, a[1], 0, 0]))[1], a[2]);
    // The tables the (fake) kernel made to map it: a level-1 and a level-2
    // table for a 2 MiB block.
    assert_eq!(t.kernel.tables(1), 2);
    assert_eq!(
        t.service.used_by(1),
        (2 << 20) + 4096 + HEAP_BYTES_PER_FOLIO + 2 * 4096,
        "a 2 MiB page, its private vmemmap page, its share of the heap, and the tables mapping it"
    );
}

#[test]
fn hostile_requests_get_typed_errors_and_change_nothing() {
    // Room for four optimized 2 MiB pages with their private vmemmap page
    // and share of the heap, and the two page-table frames that map them
    // all (one 1 GiB span).
    let four = 4 * ((2 << 20) + 4096 + HEAP_BYTES_PER_FOLIO) + 2 * 4096;
    let mut t = setup(Granule::K4, 64 << 20, four);
    let a = ok(t.ask(1, [op::ALLOC, 21, 0, 0]));
    let cases: [(Message, u64); 14] = [
        ([0, 0, 0, 0], error::UNKNOWN_OPERATION),
        ([u64::MAX, 1, 2, 3], error::UNKNOWN_OPERATION),
        ([op::ALLOC, 11, 0, 0], error::UNSUPPORTED_SIZE),
        ([op::ALLOC, 31, 0, 0], error::UNSUPPORTED_SIZE),
        ([op::ALLOC, 64, 0, 0], error::UNSUPPORTED_SIZE),
        ([op::ALLOC, u64::MAX, 0, 0], error::UNSUPPORTED_SIZE),
        ([op::ALLOC, 21, 0x80, 0], error::INVALID_ARGUMENT),
        ([op::ALLOC, 21, 0, 1], error::INVALID_ARGUMENT),
        ([op::SIZES, 1, 0, 0], error::INVALID_ARGUMENT),
        ([op::FREE, a[1] + 1000, 0, 0], error::INVALID_HANDLE),
        ([op::FREE, a[1], 1, 0], error::INVALID_ARGUMENT),
        ([op::DEMOTE, a[1], 21, 0], error::INVALID_ARGUMENT),
        ([op::DEMOTE, a[1], 30, 0], error::INVALID_ARGUMENT),
        ([op::QUOTA, 1 << 40, 0, 0], error::INVALID_ARGUMENT),
    ];
    for (request, expected) in cases {
        assert_eq!(t.ask(1, request)[0], expected, "{request:?}");
    }
    // Quota: four 2M held with metadata; 32M does not fit, three more 2M
    // do, a fourth not; a plain one would need 32 KiB of descriptors.
    assert_eq!(t.ask(1, [op::ALLOC, 25, 0, 0])[0], error::QUOTA_EXCEEDED);
    for _ in 0..3 {
        ok(t.ask(1, [op::ALLOC, 21, 0, 0]));
    }
    assert_eq!(t.ask(1, [op::ALLOC, 21, 0, 0])[0], error::QUOTA_EXCEEDED);
    let q = ok(t.ask(1, [op::QUOTA, QUERY, 0, 0]));
    let metadata = 4 * (4096 + HEAP_BYTES_PER_FOLIO) + 2 * 4096;
    assert_eq!((q[1], q[2], q[3]), (four, four, metadata), "metadata: vmemmap pages, heap shares and tables");
    // Restoring needs room for every descriptor: refused, nothing changes.
    assert_eq!(t.ask(1, [op::RESTORE, a[1], 0, 0])[0], error::QUOTA_EXCEEDED);
    assert_eq!(ok(t.ask(1, [op::INFO, a[1], 0, 0]))[3], flags::OPTIMIZED);
    // Lowering the quota below use is allowed; it only stops new ones.
    assert_eq!(ok(t.ask(1, [op::QUOTA, 2 << 20, 0, 0]))[2], four);
    // Double free.
    ok(t.ask(1, [op::FREE, a[1], 0, 0]));
    assert_eq!(t.ask(1, [op::FREE, a[1], 0, 0])[0], error::INVALID_HANDLE);
    // Memory (no quota in the way): a refused mapping gives everything
    // back; a client takes the whole pool in 32M pieces, then one more is
    // out of memory.
    let mut t = setup(Granule::K4, 64 << 20, u64::MAX);
    let free_before = t.service.pool_free_bytes();
    t.kernel.fail_next_map = true;
    assert_eq!(t.ask(3, [op::ALLOC, 25, 0, 0])[0], error::MAPPING_FAILED);
    assert_eq!(t.service.pool_free_bytes(), free_before);
    let mut got = 0;
    while t.ask(3, [op::ALLOC, 25, 0, 0])[0] == 0 {
        got += 1;
    }
    assert_eq!(got, 4, "two 64 MiB zones");
    assert_eq!(t.ask(3, [op::ALLOC, 25, 0, 0])[0], error::OUT_OF_MEMORY);
    assert_eq!(t.ask(3, [op::ALLOC, 30, 0, 0])[0], error::OUT_OF_MEMORY);
}

#[test]
fn a_dead_clients_folios_return_to_the_pool() {
    let mut t = setup(Granule::K16, 128 << 20, u64::MAX);
    ok(t.ask(5, [op::ALLOC, 25, 0, 0]));
    ok(t.ask(5, [op::ALLOC, 25, flags::NO_OPTIMIZE, 0]));
    let d = ok(t.ask(5, [op::ALLOC, 25, 0, 0]));
    ok(t.ask(5, [op::DEMOTE, d[1], 25 - 4, 0])); // 2M on 16K: not eligible, restored first
    let other = ok(t.ask(6, [op::ALLOC, 25, 0, 0]));
    t.kernel.client_died(5);
    assert_eq!(t.service.client_died(5), 2 + 16);
    t.check();
    // Everything but the other client's folio (the pool is smaller by what
    // was carved for the vmemmap, which restoring needed).
    assert_eq!(t.service.pool_free_bytes(), t.service.pool_total_bytes() - (32 << 20));
    assert_eq!(ok(t.ask(6, [op::INFO, other[1], 0, 0]))[1], other[2]);
    t.service.hvo().hw().judge("after a death");
}

use folio_core::testing::Rng;

/// Random requests from four clients, about one in five garbage, with
/// deaths; the accounting is checked after every request.
#[test]
fn long_random_streams_never_break_the_accounting() {
    for (granule, zone, seed) in
        [(Granule::K4, 64 << 20, 7), (Granule::K16, 128 << 20, 11), (Granule::K64, 1 << 30, 13)]
    {
        let mut t = setup(granule, zone, zone);
        let mut rng = Rng(seed);
        let sizes: Vec<u64> = (0..64).filter(|s| supported_size_shifts(granule) & (1 << s) != 0).collect();
        let mut errors = BTreeMap::new();
        for step in 0..3000 {
            let client = 1 + rng.below(4);
            let handles: Vec<u64> = t.service.folios_of(client).iter().map(|f| f.0).collect();
            let any_handle = |rng: &mut Rng| {
                if !handles.is_empty() && rng.below(4) != 0 {
                    handles[rng.below(handles.len() as u64) as usize]
                } else {
                    rng.below(40)
                }
            };
            // Mapping sizes, any order from the page up, and nonsense.
            let size = |rng: &mut Rng| match rng.below(8) {
                0 => rng.below(70),
                1..=3 => granule.shift() as u64 + rng.below(sizes[sizes.len() - 1] - granule.shift() as u64 + 1),
                _ => sizes[rng.below(sizes.len() as u64) as usize],
            };
            let msg = match rng.below(22) {
                0..=5 => [op::ALLOC, size(&mut rng), if rng.below(4) == 0 { flags::NO_OPTIMIZE } else { 0 }, 0],
                6..=9 => [op::FREE, any_handle(&mut rng), 0, 0],
                10 => [op::DEMOTE, any_handle(&mut rng), size(&mut rng), 0],
                11 => [op::OPTIMIZE, any_handle(&mut rng), 0, 0],
                12 => [op::RESTORE, any_handle(&mut rng), 0, 0],
                13 => [op::STATS, rng.below(8), 0, 0],
                14 => [op::POOL, 0, 0, 0],
                15 => [op::QUOTA, if rng.below(2) == 0 { QUERY } else { rng.next_u64() }, 0, 0],
                17 | 18 => {
                    // The background merges or zeroes some (its zeroing
                    // chunks of any size).
                    let budget = 1 << (granule.shift() as u64 + rng.below(10));
                    t.service.background_step(&mut t.kernel, budget);
                    t.check();
                    continue;
                }
                16 => {
                    t.kernel.client_died(client);
                    t.service.client_died(client);
                    t.check();
                    continue;
                }
                _ => [rng.next_u64() % 16, rng.next_u64(), rng.next_u64() % 4, rng.below(2)],
            };
            let r = t.ask(client, msg);
            *errors.entry(r[0]).or_insert(0u32) += 1;
            if step % 500 == 0 {
                t.service.hvo().hw().judge("random stream");
            }
        }
        // The stream reached success and the interesting refusals.
        for code in
            [0, error::INVALID_HANDLE, error::UNSUPPORTED_SIZE, error::INVALID_ARGUMENT, error::UNKNOWN_OPERATION]
        {
            assert!(errors.contains_key(&code), "{granule}: status {code} never seen: {errors:?}");
        }
        for client in 1..=4 {
            t.kernel.client_died(client);
            t.service.client_died(client);
        }
        t.check();
        assert_eq!(t.service.pool_free_bytes(), t.service.pool_total_bytes());
        t.service.hvo().hw().judge("end of the stream");
    }
}

/// The savings table of hvo-facts.md, every row measured on a folio of the
/// service's own pool (two 1 GiB zones hold every 4K and 16K size; a 64K
/// 16 GiB folio does not fit), with the frame allocator agreeing with the
/// accounting, and the pool and the vmemmap as they were afterwards.
#[test]
fn the_savings_table_is_measured_on_the_pool() {
    // (granule, size, vmemmap pages x64, expected outcome)
    let measured = |after, freed| Savings::Measured { after, freed, allocator_gain: Some(freed) };
    let table = [
        (Granule::K4, 64 << 10, 16, Savings::NotEligible { min_order: 7 }),
        (Granule::K4, 2 << 20, 8 * 64, measured(1, 7)),
        (Granule::K4, 32 << 20, 128 * 64, measured(1, 127)),
        (Granule::K4, 1 << 30, 4096 * 64, measured(1, 4095)),
        (Granule::K16, 2 << 20, 32, Savings::NotEligible { min_order: 9 }),
        (Granule::K16, 32 << 20, 8 * 64, measured(1, 7)),
        (Granule::K16, 1 << 30, 256 * 64, measured(1, 255)),
        (Granule::K64, 2 << 20, 2, Savings::NotEligible { min_order: 11 }),
        (Granule::K64, 512 << 20, 8 * 64, measured(1, 7)),
        (Granule::K64, 16 << 30, 256 * 64, Savings::NoFreeBlock),
    ];
    for granule in Granule::ALL {
        let mut t = setup(granule, 1 << 30, 1 << 30);
        let free_before = t.service.pool_free_bytes();
        let carved_before = t.service.carved_bytes();
        let rows = t.service.measure_savings();
        let expected: Vec<_> = table.iter().filter(|r| r.0 == granule).collect();
        assert_eq!(rows.len(), expected.len(), "{granule}: {rows:?}");
        for (row, &&(_, size, x64, outcome)) in rows.iter().zip(&expected) {
            assert_eq!((row.size, row.vmemmap_pages_x64, row.outcome), (size, x64, outcome), "{granule}: {row:?}");
            assert_eq!(row.descriptors, size >> granule.shift());
        }
        // Every byte is back, but what restoring the largest folio carved
        // for its vmemmap (4,095 or 255 pages), at most about twice that.
        let carved = t.service.carved_bytes() - carved_before;
        assert_eq!(t.service.pool_free_bytes() + carved, free_before, "{granule}: a folio stayed out of the pool");
        assert!(carved <= 2 * 4096 * granule.size() + (32 << 20), "{granule}: carved {carved}");
        t.check();
        t.service.hvo().hw().judge(&format!("{granule} savings table"));
    }
}

/// `hugepages=` pools: ranges of one folio size, adopted born optimized
/// with the all-tail last-level tables linked shared; a folio split for a
/// smaller request merges back when freed, up to its block and no further.
#[test]
fn hugepages_pools_are_adopted_born_optimized_with_shared_tables() {
    // (granule, folio size shift, folios)
    for (granule, shift, count) in [(Granule::K4, 30, 4), (Granule::K16, 30, 4), (Granule::K64, 29, 4)] {
        let size = 1u64 << shift;
        let pool = [
            pool_range(0x40_0000_0000, count * size, 0, Some(shift)),
            // The rest of a pool: cut into the largest sizes that fit.
            pool_range(0x80_0000_0000 + size, 2 * size, 1, None),
        ];
        let mut t = setup_with(granule, &pool, SMALL_FRAMES, u64::MAX);
        let page = granule.size();
        let n = (size / page) * 64 / page;
        let acc = t.service.hvo().accounting();
        assert_eq!(acc.vmemmap_frames, count + 2, "{granule}: one private page per folio");
        assert_eq!(acc.never_populated, (count + 2) * (n - 1), "{granule}");
        assert_eq!(acc.shared_tails, 2, "{granule}: one per (zone, order)");
        // Tables: a private last-level table per folio and the shared ones,
        // not one per n / entries pages of every folio.
        let span_pages = granule.level_size(2) / page;
        let tables = t.service.hvo().hw().tables.stats().tables_in_use;
        let private_tables = (count + 2) * n.div_ceil(span_pages);
        assert!(tables < private_tables.max(8), "{granule}: {tables} table frames");
        assert_eq!(t.service.free_folios(), vec![(shift - granule.shift(), count + 2)]);
        // A client takes one of the pool's folios, and a smaller one split
        // from another, then frees both: the pool is whole and merged.
        let big = ok(t.ask(1, [op::ALLOC, shift as u64, 0, 0]));
        assert_eq!(big[3], flags::OPTIMIZED);
        let smallest = supported_size_shifts(granule).trailing_zeros() as u64;
        let small = ok(t.ask(1, [op::ALLOC, smallest, 0, 0]));
        assert!(t.service.free_folios().len() > 1, "{granule}: a folio was split");
        ok(t.ask(1, [op::FREE, small[1], 0, 0]));
        ok(t.ask(1, [op::FREE, big[1], 0, 0]));
        let carved = t.service.carved_bytes();
        // POOL merges what the FREEs left for the background first.
        let largest = ok(t.ask(1, [op::POOL, 0, 0, 0]))[3];
        let whole = t.service.free_folios();
        assert_eq!(largest, shift as u64, "{granule}: {whole:?}");
        assert_eq!(whole.last(), Some(&(shift - granule.shift(), count + 2 - carved.div_ceil(size))));
        t.service.hvo().hw().judge("hugepages pool");
    }
}

/// A grant too small for one private page per folio: adoption carves the
/// smallest blocks into vmemmap frames and every other block is adopted.
#[test]
fn adoption_carves_blocks_when_the_grant_is_too_small() {
    let granule = Granule::K4;
    let pool = [pool_range(0x4000_0000, 200 << 21, 0, Some(21))];
    let t = setup_with(granule, &pool, 8, u64::MAX);
    assert_eq!(t.service.carved_bytes(), 2 << 20, "one 2 MiB block is 512 frames");
    assert_eq!(t.service.free_folios(), vec![(9, 199)]);
}

/// FREE unmaps before it gives anything back: when the kernel refuses the
/// unmap, the client still holds (and maps) the folio, its descriptors are
/// intact and the pool has not taken it back.
#[test]
fn a_free_whose_unmap_fails_loses_nothing() {
    let mut t = setup(Granule::K4, 64 << 20, u64::MAX);
    let a = ok(t.ask(1, [op::ALLOC, 21, 0, 0]));
    let free_before = t.service.pool_free_bytes();
    t.kernel.fail_next_unmap = true;
    assert_eq!(t.ask(1, [op::FREE, a[1], 0, 0])[0], error::MAPPING_FAILED);
    assert_eq!(t.service.pool_free_bytes(), free_before);
    assert_eq!(ok(t.ask(1, [op::INFO, a[1], 0, 0]))[1], a[2], "still held");
    ok(t.ask(1, [op::FREE, a[1], 0, 0]));
    t.service.hvo().hw().judge("free after a refused unmap");
}

/// Carving while a freed folio merges must not take one of the pieces
/// being merged: with the vmemmap's frames low, FREE of a piece of a split
/// block carves before the merge, and the pool's accounting still holds.
#[test]
fn carving_during_a_merge_never_takes_a_piece_of_it() {
    let granule = Granule::K4;
    let pool = [pool_range(0x4000_0000, 32 << 20, 0, Some(25))];
    // Adoption takes a page 0 and the shared tail: 64 frames stay free, so
    // the split below leaves fewer than LOW_WATER.
    let mut t = setup_with(granule, &pool, 66, u64::MAX);
    let a = ok(t.ask(1, [op::ALLOC, 21, 0, 0]));
    assert!(t.service.hvo().hw().frames.free_frames() < LOW_WATER);
    ok(t.ask(1, [op::FREE, a[1], 0, 0]));
    while t.service.merge_step() {
        t.check();
    }
    t.service.hvo().hw().judge("free with frames low");
    // Pieces of the smallest size, which carving takes whole: a 2 MiB
    // block split into 64 KiB folios (restored first: they are below HVO's
    // minimum order), one held, then freed with the frames low.
    let pool = [pool_range(0x4000_0000, 2 << 20, 0, Some(21))];
    let mut t = setup_with(granule, &pool, 71, u64::MAX);
    let a = ok(t.ask(1, [op::ALLOC, 16, 0, 0]));
    assert!(t.service.hvo().hw().frames.free_frames() < LOW_WATER);
    ok(t.ask(1, [op::FREE, a[1], 0, 0]));
    while t.service.merge_step() {
        t.check();
    }
    t.service.hvo().hw().judge("free of a 64 KiB piece with frames low");
}

/// FREE puts a folio back at once and leaves its merge to the background;
/// an ALLOC that needs the merged folio merges first, so nothing is ever
/// refused for want of a merge; and the queue stays bounded however long
/// the service is kept from its background.
#[test]
fn merges_wait_for_the_background_but_never_refuse_a_request() {
    let granule = Granule::K4;
    let pool = [pool_range(0x4000_0000, 32 << 20, 0, Some(25))];
    let mut t = setup_with(granule, &pool, 256, u64::MAX);
    assert_eq!(t.service.free_folios(), vec![(13, 1)]);
    let a = ok(t.ask(1, [op::ALLOC, 21, 0, 0]));
    ok(t.ask(1, [op::FREE, a[1], 0, 0]));
    assert_eq!(t.service.merges_pending(), 1);
    assert_eq!(t.service.free_folios(), vec![(9, 16)], "the 2 MiB pieces wait to merge");
    // The whole block is asked for: merged on the request path.
    let b = ok(t.ask(1, [op::ALLOC, 25, 0, 0]));
    assert_eq!(b[3], flags::OPTIMIZED);
    ok(t.ask(1, [op::FREE, b[1], 0, 0]));
    while t.service.background_step(&mut t.kernel, 1 << 20) {
        t.check();
    }
    assert_eq!(t.service.merges_pending(), 0);
    assert_eq!(t.service.free_folios(), vec![(13, 1)]);
    // A client that never lets the background run: the queue stops at its
    // bound, the oldest merged on the request path.
    t.kernel.caller = 1;
    for _ in 0..MAX_UNMERGED + 100 {
        let a = t.service.handle(1, [op::ALLOC, 12, 0, 0], &mut t.kernel);
        assert_eq!(a[0], 0);
        assert_eq!(t.service.handle(1, [op::FREE, a[1], 0, 0], &mut t.kernel)[0], 0);
    }
    assert_eq!(t.service.merges_pending(), MAX_UNMERGED);
    t.check();
    t.service.merge_pending();
    assert_eq!(t.service.free_folios(), vec![(13, 1)]);
    t.check();
    t.service.hvo().hw().judge("merges off the request path");
}

/// Folios of any power-of-two size from the base page up (the seed's
/// generalized HVO) on every granule: optimized from the smallest order
/// whose descriptors fill two vmemmap pages, plain below it, aligned to
/// their size, demoted into halves, and every byte merged back into the
/// blocks the pool was adopted as once all are free.
#[test]
fn folios_of_any_order_on_every_granule() {
    for (granule, zone) in [(Granule::K4, 64 << 20), (Granule::K16, 128 << 20), (Granule::K64, 1 << 30)] {
        let mut t = setup(granule, zone, u64::MAX);
        let adopted = t.service.free_folios();
        let shift = granule.shift() as u64;
        let sizes = ok(t.ask(1, [op::SIZES, 0, 0, 0]));
        let (min, largest) = ((sizes[2] >> 8) & 0xff, (sizes[2] >> 16) & 0xff);
        assert_eq!(min, folio_hvo::min_optimizable_order(granule) as u64 + shift);
        let mut pieces = Vec::new();
        for size in shift..=largest.min(min + 2) {
            let a = t.ask(1, [op::ALLOC, size, 0, 0]);
            assert_eq!(a[0], 0, "{granule}: ALLOC of 2^{size} bytes: {a:?}, free {:?}", t.service.free_folios());
            let optimized = if size >= min { flags::OPTIMIZED } else { 0 };
            assert_eq!(a[3], optimized, "{granule}: 2^{size} bytes");
            assert_eq!(a[2] % (1 << size), 0, "{granule}: 2^{size} bytes at {:#x}", a[2]);
            assert_eq!(ok(t.ask(1, [op::INFO, a[1], 0, 0]))[2], size);
            if size > shift {
                let d = t.ask(1, [op::DEMOTE, a[1], size - 1, 0]);
                assert_eq!(d[0], 0, "{granule}: DEMOTE of 2^{size} bytes: {d:?}");
                assert_eq!(d[2], 2);
                let halves = if size > min { flags::OPTIMIZED } else { 0 };
                assert_eq!(ok(t.ask(1, [op::INFO, d[1] + 1, 0, 0]))[3], halves, "{granule}: half of 2^{size}");
                pieces.extend([d[1], d[1] + 1]);
            } else {
                pieces.push(a[1]);
            }
        }
        // Freed in an order that leaves buddies of different orders free
        // side by side until the last one comes back.
        pieces.reverse();
        for h in pieces {
            let f = t.ask(1, [op::FREE, h, 0, 0]);
            assert_eq!(f[0], 0, "{granule}: FREE of handle {h}: {f:?}");
        }
        // The merges the FREEs queued, as the background runs them.
        assert!(t.service.merges_pending() > 0, "{granule}: FREE merges off the request path");
        while t.service.merge_step() {
            t.check();
        }
        let left: Vec<(u64, u32)> = t.service.free_list().iter().map(|f| (f.pfn, f.order)).collect();
        assert_eq!(t.service.free_folios(), adopted, "{granule}: merged back into the adopted blocks: {left:x?}");
        t.service.hvo().hw().judge("any order");
    }
}

/// Page-sized folios make the service's bookkeeping, not the pool, the
/// thing a client could exhaust: one client stops at
/// `MAX_FOLIOS_PER_CLIENT` with `QUOTA_EXCEEDED` (a demote past it too),
/// all together at `MAX_HELD_FOLIOS` with `OUT_OF_MEMORY`, and the others
/// are served throughout; deaths give everything back.
#[test]
fn the_folios_a_client_holds_are_bounded() {
    let mut t = setup(Granule::K4, 256 << 20, u64::MAX);
    let fill = |t: &mut Setup, client: u64| {
        t.kernel.caller = client;
        let mut held = 0;
        loop {
            let r = t.service.handle(client, [op::ALLOC, 12, 0, 0], &mut t.kernel);
            if r[0] != 0 {
                return (held, r[0]);
            }
            held += 1;
        }
    };
    assert_eq!(fill(&mut t, 1), (MAX_FOLIOS_PER_CLIENT, error::QUOTA_EXCEEDED));
    t.check();
    // Another client is served, and its demote past the bound is refused.
    let big = ok(t.ask(2, [op::ALLOC, 25, 0, 0]));
    assert_eq!(t.ask(2, [op::DEMOTE, big[1], 12, 0])[0], error::QUOTA_EXCEEDED);
    let d = ok(t.ask(2, [op::DEMOTE, big[1], 16, 0]));
    assert_eq!(d[2], 512);
    // More clients at their bound until, with client 2's 512 pieces, all
    // the folios held reach their bound.
    let mut client = 3;
    let last = loop {
        let (held, status) = fill(&mut t, client);
        if status != error::QUOTA_EXCEEDED {
            break (held, status);
        }
        assert_eq!(held, MAX_FOLIOS_PER_CLIENT);
        client += 1;
    };
    let full_clients = (client - 2) as usize;
    assert_eq!(last.1, error::OUT_OF_MEMORY, "the bound on all folios held");
    assert_eq!(full_clients * MAX_FOLIOS_PER_CLIENT + 512 + last.0, MAX_HELD_FOLIOS);
    t.check();
    for client in 1..=client {
        t.kernel.client_died(client);
        t.service.client_died(client);
    }
    t.check();
    assert_eq!(t.service.pool_free_bytes(), t.service.pool_total_bytes());
    assert!(ok(t.ask(10, [op::ALLOC, 12, 0, 0]))[0] == 0);
    t.service.hvo().hw().judge("bounded folios");
}

/// Memory a client freed is zeroed in the background, and ALLOC then hands
/// it out without zeroing while its client waits; an ALLOC that comes
/// before the background does zeroes inline. The fake kernel refuses to
/// map a byte not zeroed since its last mapping, and to zero a byte a
/// client holds, so both paths are proved, not assumed.
#[test]
fn freed_memory_is_zeroed_in_the_background_before_anyone_sees_it() {
    for granule in [Granule::K4, Granule::K16, Granule::K64] {
        let mut t = setup(granule, 1 << 30, u64::MAX);
        // The stock first: no client had any of it.
        while t.service.zero_step(&mut t.kernel, 1 << 20) {}
        let start = t.service.zeroing_counts();
        assert!(start.zero >= t.service.zero_stock_bytes(), "{granule}: {start:?}");
        assert!(start.zero < t.service.zero_stock_bytes() + (1 << 20), "{granule}: {start:?}");
        assert_eq!(start.dirty, 0);
        let size = 21;
        let a = ok(t.ask(1, [op::ALLOC, size, 0, 0]));
        assert_eq!(t.service.zeroing_counts().inline, 0, "{granule}: the stock served it");
        ok(t.ask(1, [op::FREE, a[1], 0, 0]));
        assert_eq!(t.service.zeroing_counts().dirty, 2 << 20);
        // ZEROING: known zero and not, adding up to the free bytes, and
        // what clients freed that the background has not zeroed: the folio.
        let z = ok(t.ask(2, [op::ZEROING, 0, 0, 0]));
        assert_eq!((z[1] + z[2], z[3]), (t.service.pool_free_bytes(), 2 << 20));
        while t.service.zero_step(&mut t.kernel, 64 << 10) {}
        let after = t.service.zeroing_counts();
        assert_eq!(after.dirty, 0);
        // The freed folio, zeroed, is the stock's shortfall too.
        assert_eq!(after.background, start.background + (2 << 20));
        let b = ok(t.ask(2, [op::ALLOC, size, 0, 0]));
        assert_eq!(t.service.zeroing_counts().inline, 0, "{granule}: the freed folio, zeroed in the background");
        // An ALLOC with nothing known zero left of its size pays inline.
        let mut held = Vec::new();
        while t.service.zeroing_counts().zero >= 2 << 20 {
            held.push(ok(t.ask(3, [op::ALLOC, size, 0, 0]))[1]);
        }
        let c = ok(t.ask(3, [op::ALLOC, size, 0, 0]));
        assert!(t.service.zeroing_counts().inline > 0, "{granule}: zeroed inline");
        for h in held.into_iter().chain([c[1]]) {
            ok(t.ask(3, [op::FREE, h, 0, 0]));
        }
        ok(t.ask(2, [op::FREE, b[1], 0, 0]));
        while t.service.zero_step(&mut t.kernel, 1 << 20) {}
        assert_eq!(t.service.zeroing_counts().dirty, 0);
        assert!(!t.service.zeroing_work());
        assert_eq!(ok(t.ask(2, [op::ZEROING, 0, 0, 0]))[3], 0);
        t.service.hvo().hw().judge("zeroing");
    }
}

/// Only the operator (the launcher's badge) may shut the service down; a
/// client asking is refused and nothing changes; stray words are garbage.
#[test]
fn only_the_operator_shuts_the_service_down() {
    let mut t = setup(Granule::K4, 64 << 20, u64::MAX);
    let a = ok(t.ask(1, [op::ALLOC, 21, 0, 0]));
    assert_eq!(t.ask(1, [op::SHUTDOWN, 0, 0, 0])[0], error::NOT_PERMITTED);
    assert_eq!(t.ask(start::OPERATOR_BADGE, [op::SHUTDOWN, 1, 0, 0])[0], error::INVALID_ARGUMENT);
    let total = t.service.pool_total_bytes();
    let r = ok(t.ask(start::OPERATOR_BADGE, [op::SHUTDOWN, 0, 0, 0]));
    assert_eq!((r[1], r[2]), (total - (2 << 20), total), "free and total: client 1 still holds 2 MiB");
    ok(t.ask(1, [op::FREE, a[1], 0, 0]));
    let r = ok(t.ask(start::OPERATOR_BADGE, [op::SHUTDOWN, 0, 0, 0]));
    assert_eq!(r[1], r[2], "whole");
    t.check();
}

/// The service's heap grows from the pool: a request that finds less than
/// `HEAP_HEADROOM` free moves a free 2 MiB folio into it first (the kernel
/// takes it out of reach: never a client's, never zeroed again, gone from
/// the pool's total). When the pool has no such folio left, requests that
/// would make the service keep more are refused with `OUT_OF_MEMORY`,
/// and the others (INFO, FREE, QUOTA) are still served.
#[test]
fn the_heap_grows_from_the_pool_and_a_short_heap_refuses_only_what_needs_more() {
    let granule = Granule::K4;
    let pool = [pool_range(0x4000_0000, 4 << 20, 0, Some(21))];
    let mut t = setup_with(granule, &pool, 256, u64::MAX);
    let total = t.service.pool_total_bytes();
    t.kernel.heap_free = Some(HEAP_HEADROOM - 1);
    let a = ok(t.ask(1, [op::ALLOC, 12, 0, 0]));
    assert_eq!(t.service.heap_bytes(), HEAP_GROWTH);
    assert_eq!(t.service.pool_total_bytes(), total - HEAP_GROWTH);
    assert_eq!(t.kernel.heap.len(), 1);
    // Enough now: nothing more moves.
    let b = ok(t.ask(1, [op::ALLOC, 12, 0, 0]));
    assert_eq!(t.service.heap_bytes(), HEAP_GROWTH);
    // Short again, and no 2 MiB folio left (the other block is split).
    t.kernel.heap_free = Some(0);
    assert_eq!(t.ask(1, [op::ALLOC, 12, 0, 0])[0], error::OUT_OF_MEMORY);
    assert_eq!(t.ask(1, [op::DEMOTE, a[1], 12, 0])[0], error::OUT_OF_MEMORY);
    assert_eq!(ok(t.ask(1, [op::INFO, a[1], 0, 0]))[1], a[2]);
    ok(t.ask(1, [op::QUOTA, QUERY, 0, 0]));
    ok(t.ask(1, [op::FREE, b[1], 0, 0]));
    assert_eq!(t.service.heap_bytes(), HEAP_GROWTH, "a piece is still held: the block is not whole");
    // The last piece back: the block merges and moves into the heap.
    ok(t.ask(1, [op::FREE, a[1], 0, 0]));
    assert_eq!(t.ask(1, [op::ALLOC, 12, 0, 0])[0], error::OUT_OF_MEMORY, "the pool gave its last block to the heap");
    assert_eq!(t.service.heap_bytes(), 2 * HEAP_GROWTH);
    assert_eq!(t.service.pool_total_bytes(), total - 2 * HEAP_GROWTH);
    assert_eq!(t.service.pool_free_bytes(), t.service.pool_total_bytes());
    t.service.hvo().hw().judge("heap growth");
    // Below a larger target but above the minimum, a pool with nothing to
    // give refuses nothing.
    t.service.set_heap_headroom(8 * HEAP_HEADROOM);
    t.kernel.heap_free = Some(HEAP_HEADROOM);
    t.kernel.caller = 1;
    let c = t.service.handle(1, [op::ALLOC, 12, 0, 0], &mut t.kernel);
    assert_eq!(c[0], error::OUT_OF_MEMORY, "the pool itself is empty");
    assert_eq!(t.service.heap_bytes(), 2 * HEAP_GROWTH);
    // The heap takes the smallest free folio that holds 2 MiB, splitting no
    // larger block for it.
    let pool = [pool_range(0x4000_0000, 32 << 20, 0, Some(25)), pool_range(0x4200_0000, 2 << 20, 0, Some(21))];
    let mut t = setup_with(granule, &pool, 256, u64::MAX);
    t.kernel.heap_free = Some(0);
    ok(t.ask(1, [op::SIZES, 0, 0, 0]));
    assert_eq!(t.kernel.heap, vec![(0x4200_0000, HEAP_GROWTH)]);
    assert_eq!(t.service.free_folios(), vec![(13, 1)], "the 32 MiB block is whole");
    // A target above the minimum: one growth a request until it is met,
    // and a request is served while the heap is below it.
    t.service.set_heap_headroom(8 * HEAP_HEADROOM);
    t.kernel.heap_free = Some(HEAP_HEADROOM);
    ok(t.ask(1, [op::ALLOC, 12, 0, 0]));
    assert_eq!(t.service.heap_bytes(), 2 * HEAP_GROWTH);
}

#[test]
fn mapping_orders_answer_as_the_list_of_sizes_does() {
    for granule in [Granule::K4, Granule::K16, Granule::K64] {
        let orders = pool::Orders::of(granule);
        let shift = granule.shift();
        let list: Vec<u32> =
            (shift..64).filter(|s| supported_size_shifts(granule) & (1 << s) != 0).map(|s| s - shift).collect();
        assert_eq!(orders.as_size_shifts(shift), supported_size_shifts(granule));
        assert_eq!(orders.largest(), *list.last().unwrap());
        for n in 0..list.len() + 2 {
            assert_eq!(orders.nth_or_largest(n), list[n.min(list.len() - 1)]);
        }
        for low in 0..40 {
            for high in 0..40 {
                let largest = list.iter().copied().filter(|&o| o >= low && o < high).max();
                let smallest = list.iter().copied().find(|&o| o > low && o <= high);
                assert_eq!(orders.largest_in(low, high), largest, "{granule:?} [{low}, {high})");
                assert_eq!(orders.smallest_in(low, high), smallest, "{granule:?} ({low}, {high}]");
            }
            assert_eq!(orders.contains(low), list.contains(&low));
        }
    }
}
