//! The free folios of the pool, one set per order, with a mask of the
//! orders that have any.
//!
//! Owns: which head frames are free at which order.
//! Must never: answer from an order's set without the mask agreeing (an
//! order's bit is set exactly when its set is not empty).
//!
//! The request path asks "the smallest order at or above this one that
//! has a free folio" and "the largest free order": bit operations on the
//! mask, not a walk over a map of orders. Each order's heads are kept
//! sorted, so merging can ask which of a block's pieces are free.

use alloc::collections::BTreeSet;

/// Orders a folio may have: below 64 (a frame number's bits).
const ORDERS: usize = 64;

pub(crate) struct FreeLists {
    heads: [BTreeSet<u64>; ORDERS],
    /// Bit `o` set when `heads[o]` is not empty.
    nonempty: u64,
}

impl Default for FreeLists {
    fn default() -> Self {
        FreeLists { heads: core::array::from_fn(|_| BTreeSet::new()), nonempty: 0 }
    }
}

impl FreeLists {
    /// Adds the free folio of `order` at `pfn`; `false` if it was there.
    pub(crate) fn insert(&mut self, order: u32, pfn: u64) -> bool {
        let Some(set) = self.heads.get_mut(order as usize) else { return false };
        self.nonempty |= 1 << order;
        set.insert(pfn)
    }

    /// Takes the free folio of `order` at `pfn` out; `false` if it was not there.
    pub(crate) fn remove(&mut self, order: u32, pfn: u64) -> bool {
        let Some(set) = self.heads.get_mut(order as usize) else { return false };
        let removed = set.remove(&pfn);
        if set.is_empty() {
            self.nonempty &= !(1 << order);
        }
        removed
    }

    pub(crate) fn contains(&self, order: u32, pfn: u64) -> bool {
        self.heads.get(order as usize).is_some_and(|s| s.contains(&pfn))
    }

    /// The heads of free folios of `order`, in address order.
    pub(crate) fn of(&self, order: u32) -> impl DoubleEndedIterator<Item = u64> + '_ {
        self.heads.get(order as usize).into_iter().flatten().copied()
    }

    /// The heads of free folios of `order` in [start, end), in address order.
    pub(crate) fn of_in(&self, order: u32, start: u64, end: u64) -> impl Iterator<Item = u64> + '_ {
        let set = self.heads.get(order as usize).filter(|_| start < end);
        set.into_iter().flat_map(move |s| s.range(start..end)).copied()
    }

    /// The orders that have a free folio, smallest first.
    pub(crate) fn orders(&self) -> impl Iterator<Item = u32> + '_ {
        let mut bits = self.nonempty;
        core::iter::from_fn(move || {
            let order = (bits != 0).then(|| bits.trailing_zeros())?;
            bits &= bits - 1;
            Some(order)
        })
    }

    /// The smallest order at or above `order` that has a free folio.
    pub(crate) fn smallest_at_least(&self, order: u32) -> Option<u32> {
        let bits = if order >= 64 { 0 } else { self.nonempty & !((1u64 << order) - 1) };
        (bits != 0).then(|| bits.trailing_zeros())
    }

    /// The first free folio of the smallest order at or above `order`:
    /// (its order, its head).
    pub(crate) fn first_at_least(&self, order: u32) -> Option<(u32, u64)> {
        let o = self.smallest_at_least(order)?;
        Some((o, *self.heads[o as usize].first()?))
    }

    pub(crate) fn largest(&self) -> Option<u32> {
        (self.nonempty != 0).then(|| 63 - self.nonempty.leading_zeros())
    }

    /// Free folios of `order`.
    pub(crate) fn count(&self, order: u32) -> usize {
        self.heads.get(order as usize).map_or(0, |s| s.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::vec::Vec;
    use folio_core::testing::Rng;

    /// Against a map of sets, over random inserts and removes.
    #[test]
    fn free_lists_agree_with_a_map_of_sets() {
        let mut rng = Rng(9);
        let mut lists = FreeLists::default();
        let mut model: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
        for _ in 0..20_000 {
            let order = rng.below(20) as u32;
            let pfn = rng.below(64) << order;
            if rng.below(2) == 0 {
                assert_eq!(lists.insert(order, pfn), model.entry(order).or_default().insert(pfn));
            } else {
                assert_eq!(lists.remove(order, pfn), model.get_mut(&order).is_some_and(|s| s.remove(&pfn)));
            }
            model.retain(|_, s| !s.is_empty());
            let orders: Vec<u32> = model.keys().copied().collect();
            assert_eq!(lists.orders().collect::<Vec<_>>(), orders);
            assert_eq!(lists.largest(), orders.last().copied());
            let probe = rng.below(22) as u32;
            let expected = model.range(probe..).next().map(|(&o, s)| (o, *s.first().unwrap()));
            assert_eq!(lists.first_at_least(probe), expected);
            assert_eq!(lists.count(probe), model.get(&probe).map_or(0, |s| s.len()));
            assert_eq!(lists.contains(order, pfn), model.get(&order).is_some_and(|s| s.contains(&pfn)));
            let heads: Vec<u64> = model.get(&order).into_iter().flatten().copied().collect();
            assert_eq!(lists.of(order).collect::<Vec<_>>(), heads);
            let (a, b) = (rng.below(64 << order), rng.below(64 << order));
            let inside: Vec<u64> = heads.iter().copied().filter(|&h| h >= a.min(b) && h < a.max(b)).collect();
            assert_eq!(lists.of_in(order, a.min(b), a.max(b)).collect::<Vec<_>>(), inside);
        }
        assert!(!lists.insert(64, 0) && !lists.remove(64, 0) && !lists.contains(64, 0));
    }
}
