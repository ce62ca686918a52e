//! The memory service's wire protocol: operation numbers, status codes and
//! the address-space layout the kernel, the service and its clients agree
//! on. Self-contained (no `crate::` paths) so the EL0 library includes this
//! very file, as it does `abi.rs`.
//!
//! # Messages
//!
//! A request is the four IPC message words `[op, a, b, c]`; the reply is
//! `[status, r1, r2, r3]` with `status` 0 ([`OK`]) or one of the codes in
//! [`error`]. Sizes are given as a shift: `size = 1 << size_shift` bytes.
//! Words an operation does not use must be 0 and unknown flag bits must be
//! clear, or the request is refused with `INVALID_ARGUMENT`: garbage is
//! never read as meaning something.
//!
//! | op | request | reply |
//! |---|---|---|
//! | [`op::SIZES`] 1 | - | r1 = bit s set when `1 << s` bytes is a mapping unit (block or contiguous run) of this granule, r2 = granule shift \| the smallest size shift HVO optimizes << 8 \| the largest free folio's size shift << 16, r3 = the pool's total bytes |
//! | [`op::ALLOC`] 2 | a = size shift: any power of two from the granule's page to its largest mapping unit, b = flags ([`flags::NO_OPTIMIZE`]) | r1 = handle, r2 = address in the caller (mapped with the largest units that fit), r3 = flags of the folio ([`flags::OPTIMIZED`] when its size is at least the smallest HVO optimizes) |
//! | [`op::FREE`] 3 | a = handle | - |
//! | [`op::DEMOTE`] 4 | a = handle, b = new size shift | r1 = first handle, r2 = count: fresh consecutive handles in address order; the old handle is gone |
//! | [`op::OPTIMIZE`] 5 | a = handle | - |
//! | [`op::RESTORE`] 6 | a = handle | - |
//! | [`op::STATS`] 7 | a = index | entry `index` of the per-(zone, size) table: r1 = zone \| size shift << 8 \| folios described (free and held) << 16 \| optimized << 40, r2 = vmemmap bytes a plain vmemmap needs for them, r3 = vmemmap bytes they use now; `NO_SUCH_ENTRY` past the end |
//! | [`op::POOL`] 8 | - | r1 = pool bytes free, r2 = vmemmap bytes freed by HVO right now, r3 = the largest free folio's size shift |
//! | [`op::QUOTA`] 9 | a = new quota in bytes, or [`QUERY`] | r1 = quota, r2 = bytes charged, r3 = the metadata part of them (descriptors and page tables); a quota can only be lowered |
//! | [`op::INFO`] 10 | a = handle | r1 = address, r2 = size shift, r3 = flags |
//! | [`op::SHUTDOWN`] 12 | - (only from [`start::OPERATOR_BADGE`]: the launcher) | r1 = pool bytes free, r2 = the pool's total bytes; the service then prints its statistics and exits |
//! | [`op::ZEROING`] 11 | - | r1 = free bytes known zero (ALLOC hands them out at once), r2 = free bytes not known zero (ALLOC zeroes them while the caller waits, unless the background gets there first), r3 = bytes clients freed that the background has not zeroed yet (it zeroes them first, then never-used memory up to a stock: a sixteenth of the pool, at most 64 MiB) |
//!
//! Handles name folios per client: a handle means nothing to another
//! client, and a handle that is not the caller's, was freed, or never
//! existed all get `INVALID_HANDLE` (so a client cannot even learn whether
//! another client's handle exists). ALLOC checks, in order: the size is
//! supported, the pool has a free block of it, the caller's quota has room
//! (so a size the pool cannot give is `OUT_OF_MEMORY` whatever the quota).
//!
//! A client is charged for its folios and their metadata: a plain folio's
//! descriptors (64 bytes a page), or an optimized folio's one private
//! vmemmap page (the shared tail is the service's), and the page-table
//! frames the kernel made in the client's tree to map its folios (charged
//! after each mapping, as the kernel counts them: one ALLOC may pass the
//! quota by the few tables it needed). So RESTORE, and DEMOTE
//! into optimized pieces (a private page each), can be `QUOTA_EXCEEDED`
//! too, and nothing changes then.

/// Status of a successful reply.
pub const OK: u64 = 0;
/// QUOTA's argument that asks without changing anything.
pub const QUERY: u64 = u64::MAX;

/// Operation numbers (request word 0).
pub mod op {
    pub const SIZES: u64 = 1;
    pub const ALLOC: u64 = 2;
    pub const FREE: u64 = 3;
    pub const DEMOTE: u64 = 4;
    pub const OPTIMIZE: u64 = 5;
    pub const RESTORE: u64 = 6;
    pub const STATS: u64 = 7;
    pub const POOL: u64 = 8;
    pub const QUOTA: u64 = 9;
    pub const INFO: u64 = 10;
    pub const ZEROING: u64 = 11;
    pub const SHUTDOWN: u64 = 12;
}

/// ALLOC's request flags and the folio flags replies report.
pub mod flags {
    /// ALLOC: leave the folio's vmemmap as it is (HVO is the default).
    pub const NO_OPTIMIZE: u64 = 1 << 0;
    /// Reply: the folio's vmemmap is optimized.
    pub const OPTIMIZED: u64 = 1 << 0;
}

/// Reply status codes (word 0).
pub mod error {
    /// The operation number is not one of [`super::op`].
    pub const UNKNOWN_OPERATION: u64 = 1;
    /// Below the granule's page or above its largest mapping unit.
    pub const UNSUPPORTED_SIZE: u64 = 2;
    /// Not a handle of a folio the caller holds.
    pub const INVALID_HANDLE: u64 = 3;
    /// The caller's quota has no room for this size.
    pub const QUOTA_EXCEEDED: u64 = 4;
    /// The pool (or the vmemmap's frames) has no room for this.
    pub const OUT_OF_MEMORY: u64 = 5;
    /// A field out of range, a non-zero unused word, an unknown flag.
    pub const INVALID_ARGUMENT: u64 = 6;
    /// OPTIMIZE of an optimized folio, RESTORE of a plain one.
    pub const ALREADY_DONE: u64 = 7;
    /// OPTIMIZE of a folio below the smallest order HVO can save on.
    pub const NOT_ELIGIBLE: u64 = 8;
    /// STATS past the last entry.
    pub const NO_SUCH_ENTRY: u64 = 9;
    /// The kernel refused a mapping (a bug in the service, reported).
    pub const MAPPING_FAILED: u64 = 10;
    /// SHUTDOWN from anyone but the operator.
    pub const NOT_PERMITTED: u64 = 11;
}

/// The address-space layout. Physical addresses below [`PHYS_LIMIT`] are
/// reached at a window base plus the address, so every folio's address is
/// aligned as its physical address is, and block mappings fit.
/// The service's start arguments: x0 = each client's quota in bytes (0:
/// half the pool), x1 = [`CLIENTS`] bits: how many clients will come, and
/// the flags below.
pub mod start {
    /// The service's priority: above its clients' (1) while it serves; it
    /// lowers itself to [`BACKGROUND_PRIORITY`] to zero in the background.
    pub const PRIORITY: u8 = 2;
    /// Below every client's priority: the service zeroes freed memory only
    /// when no client has anything to run.
    pub const BACKGROUND_PRIORITY: u8 = 0;
    /// x1's bits that count the clients: the service exits once that many
    /// died. 0: it serves clients as they come and go until the operator
    /// asks it to shut down ([`super::op::SHUTDOWN`]).
    pub const CLIENTS: u64 = 0xffff_ffff;
    /// The badge of the operator's handle (the launcher's, given at boot):
    /// the only client that may shut the service down. Badges the kernel
    /// hands out at run time (`spawn::FIRST_BADGE` up) never equal it.
    pub const OPERATOR_BADGE: u64 = 0xffff;
    /// A fault drill for the kernel's tests: right after start, the
    /// service optimizes a folio and writes to one of its shared tail
    /// pages, which must fault and be reported by the label the service
    /// gave its vmemmap.
    pub const DRILL_WRITE_TO_SHARED_TAIL: u64 = 1 << 32;
    /// No background zeroing: every folio is zeroed inline at ALLOC (the
    /// kernel's protocol-fuzzer test, whose 20,000 requests the background
    /// runs would slow several-fold on emulated multi-core machines).
    pub const INLINE_ZEROING_ONLY: u64 = 1 << 33;
    /// A result line for every client whose death it cleans up after (a
    /// long-lived service with thousands of clients prints none).
    pub const REPORT_EACH_CLIENT: u64 = 1 << 34;
    /// Grow the service's heap toward 8 MiB free instead of 1 MiB (one
    /// 2 MiB folio a request, while the pool has one free; requests are
    /// refused only below 1 MiB): more than its arena, so it grows its heap
    /// from the pool at its first requests (the kernel's lifetimes test
    /// runs its clients on a heap grown at run time this way).
    pub const LARGE_HEAP_HEADROOM: u64 = 1 << 35;
    /// The service's exit status when the drill cannot run: no pool range
    /// holds a folio of the smallest optimizable order.
    pub const DRILL_NOT_POSSIBLE: u64 = 2;
}

/// The label the service gives its vmemmap window, for writes to
/// read-only pages there (the shared tails: every private vmemmap page is
/// writable). At most `label::MAX_LEN` bytes (a host test checks).
pub const SHARED_TAIL_LABEL: &str = "HVO violation: write to a read-only shared tail of the vmemmap";

pub mod layout {
    /// Physical addresses the windows can reach.
    pub const PHYS_LIMIT: u64 = 1 << 45;
    /// The service's vmemmap: descriptor of frame `pfn` at base + 64 x pfn.
    pub const SERVICE_VMEMMAP: u64 = 0x1000_0000_0000;
    pub const SERVICE_VMEMMAP_END: u64 = 0x2000_0000_0000;
    /// The service's view of its huge-page pool (read/write).
    pub const SERVICE_POOL_WINDOW: u64 = 0x2000_0000_0000;
    /// The service's heap beyond its image: pool frames moved here with
    /// GROW_HEAP, mapped read/write in the order they came
    /// ([`crate::heap::MAX_BYTES`] at most).
    pub const SERVICE_HEAP_WINDOW: u64 = 0x4000_0000_0000;
    /// The service's view of its small frames (read/write).
    pub const SERVICE_META_WINDOW: u64 = 0x6000_0000_0000;
    /// Where a client's huge pages appear: base + physical address.
    pub const CLIENT_WINDOW: u64 = 0x8000_0000_0000;
    pub const CLIENT_WINDOW_END: u64 = CLIENT_WINDOW + PHYS_LIMIT;
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shared_tail_label_fits() {
        let len = super::SHARED_TAIL_LABEL.len() as u64;
        assert!(len > 0 && len <= crate::label::MAX_LEN, "{len} bytes");
    }
}
