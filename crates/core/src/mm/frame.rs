//! The frame allocator: granule-sized physical frames from the free memory
//! map, on `buddy_system_allocator::FrameAllocator`.
//!
//! Owns: which frames are free. Requests are in orders (2^order frames,
//! naturally aligned), so the buddy allocator never rounds a request up and
//! the free count moves by exactly what was asked.
//! Must never: touch the memory it hands out (it keeps its bookkeeping on the
//! kernel heap), or accept a range that is not granule-aligned.
//!
//! In front of the buddy allocator sit the last few single frames freed
//! ([`RECENT`]): the next single-frame request takes one in a few
//! instructions (a page-table frame an unmap freed is what the next map
//! needs), where the buddy allocator walks its sets. They count as free,
//! and go back to the buddy allocator whenever a larger block is wanted and
//! not found, or the largest free block is asked for.

use core::alloc::Layout;
use core::fmt;

use buddy_system_allocator::FrameAllocator;

use super::{Granule, PhysRange};

/// Largest block the allocator can hold: 2^(ORDER-1) frames
/// (2^32 frames = 16 TiB with 4 KiB frames).
const ORDER: usize = 33;
pub const MAX_ORDER: u32 = ORDER as u32 - 1;

/// Single frames kept in front of the buddy allocator.
pub const RECENT: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// No free, aligned block of 2^order frames.
    OutOfFrames { order: u32 },
    /// The order is above [`MAX_ORDER`].
    OrderTooLarge { order: u32 },
    /// A range or address not aligned to the granule.
    Misaligned { address: u64 },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::OutOfFrames { order } => write!(f, "out of frames: no free block of order {order}"),
            FrameError::OrderTooLarge { order } => write!(f, "order {order} is above the maximum {MAX_ORDER}"),
            FrameError::Misaligned { address } => write!(f, "{address:#x} is not aligned to the granule"),
        }
    }
}

/// Free physical frames of one granule.
pub struct FramePool {
    granule: Granule,
    buddy: FrameAllocator<ORDER>,
    total_frames: u64,
    free_frames: u64,
    /// Single frames freed lately (frame numbers), the newest last.
    recent: [usize; RECENT],
    recent_len: usize,
}

impl FramePool {
    pub fn new(granule: Granule) -> FramePool {
        FramePool {
            granule,
            buddy: FrameAllocator::new(),
            total_frames: 0,
            free_frames: 0,
            recent: [0; RECENT],
            recent_len: 0,
        }
    }

    pub fn granule(&self) -> Granule {
        self.granule
    }

    /// Adds a free, granule-aligned range.
    pub fn add_range(&mut self, range: PhysRange) -> Result<(), FrameError> {
        let shift = self.granule.shift();
        for address in [range.start(), range.end()] {
            if address & (self.granule.size() - 1) != 0 {
                return Err(FrameError::Misaligned { address });
            }
        }
        if !range.is_empty() {
            self.buddy.add_frame((range.start() >> shift) as usize, (range.end() >> shift) as usize);
            let frames = range.size() >> shift;
            self.total_frames += frames;
            self.free_frames += frames;
        }
        Ok(())
    }

    /// Allocates 2^order contiguous frames aligned to their size; returns the
    /// physical address of the first.
    pub fn alloc(&mut self, order: u32) -> Result<u64, FrameError> {
        if order > MAX_ORDER {
            return Err(FrameError::OrderTooLarge { order });
        }
        let frame = if order == 0 && self.recent_len > 0 {
            self.recent_len -= 1;
            self.recent[self.recent_len]
        } else {
            let layout = Self::layout(order);
            let mut found = self.buddy.alloc_aligned(layout);
            if found.is_none() && self.recent_len > 0 {
                // The recent single frames may complete a larger block.
                self.drain_recent();
                found = self.buddy.alloc_aligned(layout);
            }
            found.ok_or(FrameError::OutOfFrames { order })?
        };
        self.free_frames -= 1 << order;
        Ok((frame as u64) << self.granule.shift())
    }

    /// Gives the recent single frames to the buddy allocator, where they
    /// can merge.
    fn drain_recent(&mut self) {
        for &frame in &self.recent[..self.recent_len] {
            self.buddy.dealloc_aligned(frame, Self::layout(0));
        }
        self.recent_len = 0;
    }

    /// Returns a block from [`alloc`](Self::alloc) with the same order.
    pub fn free(&mut self, address: u64, order: u32) -> Result<(), FrameError> {
        if address & (self.granule.size() - 1) != 0 {
            return Err(FrameError::Misaligned { address });
        }
        if order > MAX_ORDER {
            return Err(FrameError::OrderTooLarge { order });
        }
        let frame = (address >> self.granule.shift()) as usize;
        if order == 0 && self.recent_len < RECENT {
            self.recent[self.recent_len] = frame;
            self.recent_len += 1;
        } else {
            self.buddy.dealloc_aligned(frame, Self::layout(order));
        }
        self.free_frames += 1 << order;
        Ok(())
    }

    /// Frees many single frames (each from `alloc(0)`, or part of larger
    /// blocks). Runs of consecutive frames go back as the largest aligned
    /// blocks they contain, which the buddy allocator takes in one step.
    pub fn free_many(&mut self, frames: &mut [u64]) -> Result<(), FrameError> {
        let g = self.granule.size();
        frames.sort_unstable();
        let mut i = 0;
        while i < frames.len() {
            let start = frames[i];
            if start & (g - 1) != 0 {
                return Err(FrameError::Misaligned { address: start });
            }
            let mut run = 1;
            while i + run < frames.len() && frames[i + run] == start + run as u64 * g {
                run += 1;
            }
            // The run [start, start + run frames) as aligned power-of-two blocks.
            let mut at = start;
            let mut left = run as u64;
            while left > 0 {
                let align = ((at / g).trailing_zeros()).min(MAX_ORDER);
                let order = align.min(63 - left.leading_zeros());
                // Straight to the buddy allocator: freed together, they merge.
                self.buddy.dealloc_aligned((at >> self.granule.shift()) as usize, Self::layout(order));
                self.free_frames += 1 << order;
                at += g << order;
                left -= 1 << order;
            }
            i += run;
        }
        Ok(())
    }

    fn layout(order: u32) -> Layout {
        let count = 1usize << order;
        // Size and alignment are the same power of two, so this cannot fail.
        Layout::from_size_align(count, count).unwrap_or(Layout::new::<u8>())
    }

    /// The order of the largest free block, if any (found by asking the
    /// buddy allocator, largest first, and giving the block straight back).
    pub fn largest_free_order(&mut self) -> Option<u32> {
        self.drain_recent();
        let order = (0..=MAX_ORDER).rev().find(|&o| (1u64 << o) <= self.free_frames && self.probe(o))?;
        Some(order)
    }

    fn probe(&mut self, order: u32) -> bool {
        match self.alloc(order) {
            Ok(pa) => self.free(pa, order).is_ok(),
            Err(_) => false,
        }
    }

    pub fn free_frames(&self) -> u64 {
        self.free_frames
    }

    pub fn total_frames(&self) -> u64 {
        self.total_frames
    }

    pub fn free_bytes(&self) -> u64 {
        self.free_frames << self.granule.shift()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: u64, end: u64) -> PhysRange {
        PhysRange::from_start_end(start, end).unwrap()
    }

    #[test]
    fn every_granule_allocates_aligned_frames_and_counts_exactly() {
        for granule in Granule::ALL {
            let g = granule.size();
            let mut pool = FramePool::new(granule);
            pool.add_range(range(0x4000_0000, 0x4000_0000 + 64 * g)).unwrap();
            assert_eq!(pool.free_frames(), 64);
            let a = pool.alloc(0).unwrap();
            let b = pool.alloc(3).unwrap();
            assert_eq!(a % g, 0);
            assert_eq!(b % (8 * g), 0, "an order-3 block is aligned to its size");
            assert_eq!(pool.free_frames(), 64 - 1 - 8);
            pool.free(b, 3).unwrap();
            pool.free(a, 0).unwrap();
            assert_eq!(pool.free_frames(), 64);
            assert_eq!(pool.alloc(6).unwrap(), 0x4000_0000);
        }
    }

    #[test]
    fn exhaustion_is_an_error_not_a_panic() {
        let mut pool = FramePool::new(Granule::K4);
        pool.add_range(range(0x1000, 0x5000)).unwrap();
        assert_eq!(pool.alloc(3), Err(FrameError::OutOfFrames { order: 3 }));
        let frames: Vec<u64> = (0..4).map(|_| pool.alloc(0).unwrap()).collect();
        assert_eq!(pool.alloc(0), Err(FrameError::OutOfFrames { order: 0 }));
        assert_eq!(pool.free_frames(), 0);
        for f in frames {
            pool.free(f, 0).unwrap();
        }
        assert_eq!(pool.free_frames(), 4);
        assert_eq!(pool.alloc(MAX_ORDER + 1), Err(FrameError::OrderTooLarge { order: MAX_ORDER + 1 }));
    }

    #[test]
    fn many_frames_free_as_blocks_and_count_exactly() {
        let mut pool = FramePool::new(Granule::K4);
        pool.add_range(range(0x10_0000, 0x20_0000)).unwrap();
        let mut frames: Vec<u64> = (0..100).map(|_| pool.alloc(0).unwrap()).collect();
        frames.reverse();
        let free = pool.free_frames();
        pool.free_many(&mut frames[..77]).unwrap();
        assert_eq!(pool.free_frames(), free + 77);
        pool.free_many(&mut frames[77..]).unwrap();
        assert_eq!(pool.free_frames(), pool.total_frames());
        // Everything merged back: the whole range is one block again.
        assert_eq!(pool.alloc(8), Ok(0x10_0000));
    }

    /// A single frame freed is the next one handed out; the recent frames
    /// stay bounded, count as free, and still merge into a larger block
    /// when one is wanted.
    #[test]
    fn recent_single_frames_come_back_first_and_still_merge() {
        let mut pool = FramePool::new(Granule::K4);
        pool.add_range(range(0x10_0000, 0x10_0000 + 64 * 0x1000)).unwrap();
        let frames: Vec<u64> = (0..64).map(|_| pool.alloc(0).unwrap()).collect();
        assert_eq!(pool.alloc(0), Err(FrameError::OutOfFrames { order: 0 }));
        pool.free(frames[5], 0).unwrap();
        assert_eq!(pool.alloc(0), Ok(frames[5]), "the frame just freed");
        for &f in &frames {
            pool.free(f, 0).unwrap();
        }
        assert_eq!(pool.free_frames(), 64);
        assert!(pool.recent_len <= RECENT);
        // Only whole again with the recent frames merged back.
        assert_eq!(pool.alloc(6), Ok(0x10_0000));
        assert_eq!(pool.free_frames(), 0);
        pool.free(0x10_0000, 6).unwrap();
        let a = pool.alloc(0).unwrap();
        pool.free(a, 0).unwrap();
        assert_eq!(pool.largest_free_order(), Some(6));
    }

    #[test]
    fn misaligned_ranges_are_refused() {
        let mut pool = FramePool::new(Granule::K16);
        assert_eq!(pool.add_range(range(0x1000, 0x8000)), Err(FrameError::Misaligned { address: 0x1000 }));
        assert_eq!(pool.free_frames(), 0);
    }
}
