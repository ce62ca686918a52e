//! Page descriptors: one 64-byte record per frame, the compound head/tail
//! encoding that makes every tail of one order byte-identical, and the
//! arithmetic of how many vmemmap pages a folio's descriptors fill.

use folio_core::mm::Granule;

/// Head descriptor flags.
pub const FLAG_HEAD: u64 = 1 << 0;
pub const FLAG_OPTIMIZED: u64 = 1 << 1;

/// One frame's descriptor: 64 bytes, a power of two.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageDescriptor {
    /// Head only: [`FLAG_HEAD`], [`FLAG_OPTIMIZED`].
    pub flags: u64,
    /// Tails only: the order-encoded mask | 1; 0 elsewhere.
    pub compound_info: u64,
    /// Head only: who allocated the folio.
    pub owner: u64,
    /// Head only. Never updated atomically on a tail (tails are read-only).
    pub refcount: u32,
    /// Head only: the folio's order.
    pub order: u8,
    /// Every descriptor: the zone (RAM bank) of its frame.
    pub zone: u8,
    pub reserved0: u16,
    pub reserved: [u64; 4],
}

const _: () = assert!(core::mem::size_of::<PageDescriptor>() == 64);
const _: () = assert!(core::mem::size_of::<PageDescriptor>().is_power_of_two());
pub const DESCRIPTOR_SHIFT: u32 = 6;

impl PageDescriptor {
    /// The descriptor as the eight little-endian words of its `repr(C)`
    /// layout, for code that moves it with word accesses (the memory
    /// service's volatile accesses to its vmemmap).
    pub fn to_words(&self) -> [u64; 8] {
        let word3 =
            self.refcount as u64 | (self.order as u64) << 32 | (self.zone as u64) << 40 | (self.reserved0 as u64) << 48;
        let [r0, r1, r2, r3] = self.reserved;
        [self.flags, self.compound_info, self.owner, word3, r0, r1, r2, r3]
    }

    /// The inverse of [`to_words`](Self::to_words).
    pub fn from_words(w: [u64; 8]) -> PageDescriptor {
        PageDescriptor {
            flags: w[0],
            compound_info: w[1],
            owner: w[2],
            refcount: w[3] as u32,
            order: (w[3] >> 32) as u8,
            zone: (w[3] >> 40) as u8,
            reserved0: (w[3] >> 48) as u16,
            reserved: [w[4], w[5], w[6], w[7]],
        }
    }

    /// The tail descriptor of every folio of `order` in `zone`.
    pub fn tail(order: u32, zone: u8) -> PageDescriptor {
        PageDescriptor { compound_info: compound_info(order), zone, ..PageDescriptor::default() }
    }

    pub fn free(zone: u8) -> PageDescriptor {
        PageDescriptor { zone, ..PageDescriptor::default() }
    }

    pub fn is_tail(&self) -> bool {
        self.compound_info & 1 != 0
    }
}

/// `GENMASK(63, order + 6) | 1`.
pub fn compound_info(order: u32) -> u64 {
    (!0u64 << (order + DESCRIPTOR_SHIFT)) | 1
}

/// The head descriptor's address for a descriptor at `va` holding `d`.
pub fn compound_head(va: u64, d: &PageDescriptor) -> u64 {
    if d.is_tail() { va & d.compound_info & !1 } else { va }
}

/// The smallest order whose descriptors fill two vmemmap pages: 7, 9, 11.
pub fn min_optimizable_order(granule: Granule) -> u32 {
    granule.shift() - DESCRIPTOR_SHIFT + 1
}

/// Vmemmap pages holding the descriptors of a folio of `order`, in units
/// of 1/64 page (so sub-page folios show as fractions).
pub fn vmemmap_pages_x64(granule: Granule, order: u32) -> u64 {
    ((1u64 << order) << DESCRIPTOR_SHIFT) * 64 / granule.size()
}
