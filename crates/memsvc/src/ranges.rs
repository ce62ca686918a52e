//! A set of frame ranges: which free pool memory is known to be zero, and
//! which a client dirtied and freed.
//!
//! Owns: the ranges, kept disjoint and merged with their neighbours.
//! Must never: hold an empty range or two that touch.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// Disjoint, non-touching ranges of frame numbers, `[start, end)`.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub(crate) struct RangeSet {
    /// start -> end
    ranges: BTreeMap<u64, u64>,
    frames: u64,
}

impl RangeSet {
    /// Frames in the set.
    pub(crate) fn frames(&self) -> u64 {
        self.frames
    }

    /// The first range, if any.
    pub(crate) fn first(&self) -> Option<(u64, u64)> {
        self.ranges.first_key_value().map(|(&s, &e)| (s, e))
    }

    /// The ranges in address order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().map(|(&s, &e)| (s, e))
    }

    /// Adds `[start, end)`.
    pub(crate) fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        self.remove(start, end);
        let (mut start, mut end) = (start, end);
        if let Some((&s, &e)) = self.ranges.range(..start).next_back()
            && e == start
        {
            self.ranges.remove(&s);
            start = s;
            self.frames -= e - s;
        }
        if let Some(e) = self.ranges.remove(&end) {
            self.frames -= e - end;
            end = e;
        }
        self.ranges.insert(start, end);
        self.frames += end - start;
    }

    /// Removes `[start, end)` (whatever part of it is in the set).
    pub(crate) fn remove(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // From the last range starting below `end` down, while they reach
        // past `start`: a range cut at `start` keeps its key (its end is
        // lowered in place) and is the last one.
        while let Some((&s, e_in_set)) = self.ranges.range_mut(..end).next_back() {
            let e = *e_in_set;
            if e <= start {
                break;
            }
            if s < start {
                *e_in_set = start;
                self.frames -= e - start;
            } else {
                self.ranges.remove(&s);
                self.frames -= e - s;
            }
            if e > end {
                self.ranges.insert(end, e);
                self.frames += e - end;
            }
            if s < start {
                break;
            }
        }
    }

    /// Whether every frame of `[start, end)` is in the set.
    pub(crate) fn covers(&self, start: u64, end: u64) -> bool {
        start >= end || self.ranges.range(..=start).next_back().is_some_and(|(_, &e)| e >= end)
    }

    /// The parts of `[start, end)` not in the set, in address order.
    pub(crate) fn gaps(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        if start >= end {
            return gaps;
        }
        let mut at = start;
        let first = self.ranges.range(..=start).next_back().map(|(&s, &e)| (s, e));
        for (s, e) in first.into_iter().chain(self.ranges.range(start + 1..end).map(|(&s, &e)| (s, e))) {
            if e <= at {
                continue;
            }
            if s > at {
                gaps.push((at, s.min(end)));
            }
            at = at.max(e);
            if at >= end {
                break;
            }
        }
        if at < end {
            gaps.push((at, end));
        }
        gaps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use folio_core::testing::Rng;

    /// Against a bitmap, over random inserts and removes.
    #[test]
    fn a_range_set_agrees_with_a_bitmap() {
        let mut rng = Rng(5);
        let mut set = RangeSet::default();
        let mut bits = [false; 200];
        for _ in 0..5000 {
            let a = rng.below(200);
            let b = (a + rng.below(40)).min(200);
            if rng.below(2) == 0 {
                set.insert(a, b);
                bits[a as usize..b as usize].fill(true);
            } else {
                set.remove(a, b);
                bits[a as usize..b as usize].fill(false);
            }
            assert_eq!(set.frames(), bits.iter().filter(|&&x| x).count() as u64);
            let mut last_end = None;
            for (s, e) in set.iter() {
                assert!(s < e);
                assert!(last_end.is_none_or(|l| l < s), "ranges touch or overlap: {set:?}");
                last_end = Some(e);
                assert!(bits[s as usize..e as usize].iter().all(|&x| x));
            }
            let (c, d) = (rng.below(200), rng.below(200));
            let (c, d) = (c.min(d), c.max(d));
            assert_eq!(set.covers(c, d), bits[c as usize..d as usize].iter().all(|&x| x));
            let gaps: u64 = set.gaps(c, d).iter().map(|(s, e)| e - s).sum();
            assert_eq!(gaps, bits[c as usize..d as usize].iter().filter(|&&x| !x).count() as u64);
            for (s, e) in set.gaps(c, d) {
                assert!(c <= s && e <= d && bits[s as usize..e as usize].iter().all(|&x| !x));
            }
        }
    }
}
