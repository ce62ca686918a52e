//! ASIDs for task address spaces: handed out, recycled and rolled over
//! safely with several cores (the scheme Linux's arm64 ASID allocator
//! uses, with a broadcast flush at rollover instead of per-core flags).
//!
//! Owns: which ASID values the current generation has handed out.
//! Must never: give a value to a task while another task may still use it
//! (running on some core, or with TLB entries left that were not flushed),
//! or hand out ASID 0 (the value TTBR0 holds when no task runs).
//!
//! # The rules
//!
//! - An [`Asid`] is a value plus the generation it was handed out in. A
//!   task's ASID is valid while its generation is the current one.
//! - When a task is switched in, [`AsidAllocator::refresh`] keeps its ASID
//!   if it is valid. Otherwise it gives the task a free value of the current
//!   generation.
//! - When no value is free, the allocator **rolls over**: a new
//!   generation, every value free again except the ones tasks are running
//!   with on other cores right now. Those are *reserved*: their tasks keep
//!   them when next switched in. The caller must flush every task's TLB
//!   entries (`tlbi vmalle1is`, broadcast) before the new generation is
//!   used, so no value handed out again can hit a stale entry. That call
//!   and the refresh happen under the same lock as every switch, so no
//!   core can switch to an old value in between.
//! - A task that ends has its entries flushed (`tlbi aside1is`) and then
//!   gives its value back with [`AsidAllocator::release`].

use alloc::vec;
use alloc::vec::Vec;

/// An ASID value and the generation that handed it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asid {
    pub generation: u64,
    pub value: u16,
}

pub struct AsidAllocator {
    /// Values 1..limit are handed out.
    limit: u32,
    generation: u64,
    used: Vec<bool>,
    /// Values reserved at the last rollover (their tasks were running).
    reserved: Vec<u16>,
    /// Where the search for a free value starts.
    next: u32,
    rollovers: u64,
}

/// What a refresh did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refreshed {
    pub asid: Asid,
    /// A new generation began: flush every task's TLB entries on every
    /// core before running anything with it.
    pub rolled_over: bool,
}

impl AsidAllocator {
    /// Values 1..`limit` (at most 2^16; the hardware's width decides).
    /// `limit` must leave room for one value per core and one more, or a
    /// rollover could find every value reserved: it is raised to that.
    pub fn new(limit: u32, cores: usize) -> AsidAllocator {
        let limit = limit.clamp(cores as u32 + 2, 1 << 16);
        AsidAllocator {
            limit,
            generation: 1,
            used: vec![false; limit as usize],
            reserved: Vec::new(),
            next: 1,
            rollovers: 0,
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn rollovers(&self) -> u64 {
        self.rollovers
    }

    fn take_free(&mut self) -> Option<u16> {
        for i in 0..self.limit - 1 {
            let v = 1 + (self.next - 1 + i) % (self.limit - 1);
            if !self.used[v as usize] {
                self.used[v as usize] = true;
                self.next = v % (self.limit - 1) + 1;
                return Some(v as u16);
            }
        }
        None
    }

    /// A fresh ASID for a new address space (may roll over).
    pub fn allocate(&mut self, running: &[u16]) -> Refreshed {
        self.refresh(None, running)
    }

    /// Makes `current` (the task's ASID, if it has one) valid in the
    /// current generation. `running`: the values tasks run with on the
    /// other cores right now.
    pub fn refresh(&mut self, current: Option<Asid>, running: &[u16]) -> Refreshed {
        if let Some(a) = current {
            if a.generation == self.generation {
                return Refreshed { asid: a, rolled_over: false };
            }
            // A task that was running at the last rollover keeps its value.
            if a.generation + 1 == self.generation && self.reserved.contains(&a.value) {
                self.reserved.retain(|&v| v != a.value);
                return Refreshed { asid: Asid { generation: self.generation, value: a.value }, rolled_over: false };
            }
        }
        if let Some(value) = self.take_free() {
            return Refreshed { asid: Asid { generation: self.generation, value }, rolled_over: false };
        }
        // Rollover: everything free but what runs elsewhere right now.
        self.generation += 1;
        self.rollovers += 1;
        self.used.iter_mut().for_each(|u| *u = false);
        self.reserved = running.iter().copied().filter(|&v| v != 0 && (v as u32) < self.limit).collect();
        for &v in &self.reserved {
            self.used[v as usize] = true;
        }
        let value = self.take_free().unwrap_or(0);
        Refreshed { asid: Asid { generation: self.generation, value }, rolled_over: true }
    }

    /// A task ended and its entries were flushed: its value is free again
    /// (if it still belongs to this generation).
    pub fn release(&mut self, asid: Asid) {
        if asid.generation == self.generation && (asid.value as u32) < self.limit {
            self.used[asid.value as usize] = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_unique_until_a_rollover_keeps_the_running_ones() {
        let mut a = AsidAllocator::new(6, 2); // values 1..5
        let first: Vec<Asid> = (0..5).map(|_| a.allocate(&[]).asid).collect();
        let mut values: Vec<u16> = first.iter().map(|x| x.value).collect();
        values.sort_unstable();
        assert_eq!(values, [1, 2, 3, 4, 5]);
        // Full: the next one rolls over; 2 and 4 run on other cores.
        let r = a.allocate(&[2, 4]);
        assert!(r.rolled_over);
        assert_eq!(a.generation(), 2);
        assert!(![2, 4].contains(&r.asid.value) && r.asid.value != 0);
        // The running tasks keep their values; the others get new ones.
        assert_eq!(a.refresh(Some(first[1]), &[]).asid, Asid { generation: 2, value: 2 });
        assert_eq!(a.refresh(Some(first[3]), &[]).asid, Asid { generation: 2, value: 4 });
        let other = a.refresh(Some(first[0]), &[]);
        assert!(!other.rolled_over && ![2, 4, r.asid.value].contains(&other.asid.value));
        // A valid one is kept as it is.
        assert_eq!(a.refresh(Some(other.asid), &[]).asid, other.asid);
    }

    #[test]
    fn released_values_are_reused_only_in_their_generation() {
        let mut a = AsidAllocator::new(4, 1); // values 1..3
        let x = a.allocate(&[]).asid;
        let _y = a.allocate(&[]).asid;
        let _z = a.allocate(&[]).asid;
        a.release(x);
        let again = a.allocate(&[]);
        assert_eq!((again.asid.value, again.rolled_over), (x.value, false));
        // After a rollover an old generation's release changes nothing.
        let rolled = a.allocate(&[]);
        assert!(rolled.rolled_over);
        a.release(x);
        let used_before = a.used.iter().filter(|&&u| u).count();
        assert_eq!(used_before, 1);
    }

    use crate::testing::Rng;

    /// Random switches of 40 tasks onto 4 cores with 10 values: at every
    /// moment the tasks running on the cores hold distinct values, every
    /// task whose ASID is of the current generation holds a value no other
    /// such task holds, and after a rollover nothing runs with a value
    /// handed out again before the flush.
    #[test]
    fn random_switches_never_share_a_value() {
        let (tasks, cores) = (40usize, 4usize);
        let mut a = AsidAllocator::new(10, cores);
        let mut asid: Vec<Option<Asid>> = vec![None; tasks];
        let mut on_core: Vec<Option<usize>> = vec![None; cores];
        let mut rolled = 0;
        let mut rng = Rng(99);
        for _ in 0..20_000 {
            let core = rng.below(cores as u64) as usize;
            let candidates: Vec<usize> = (0..tasks).filter(|t| !on_core.contains(&Some(*t))).collect();
            let task = candidates[rng.below(candidates.len() as u64) as usize];
            let running: Vec<u16> = (0..cores)
                .filter(|&c| c != core)
                .filter_map(|c| on_core[c].and_then(|t| asid[t]).map(|x| x.value))
                .collect();
            let r = a.refresh(asid[task], &running);
            rolled += r.rolled_over as u32;
            asid[task] = Some(r.asid);
            on_core[core] = Some(task);
            // Running values are distinct and non-zero.
            let mut values: Vec<u16> = on_core.iter().flatten().filter_map(|&t| asid[t]).map(|x| x.value).collect();
            assert!(values.iter().all(|&v| v != 0));
            values.sort_unstable();
            let n = values.len();
            values.dedup();
            assert_eq!(values.len(), n, "two cores run with one ASID value");
            // Current-generation holders are distinct.
            let mut current: Vec<u16> =
                asid.iter().flatten().filter(|x| x.generation == a.generation()).map(|x| x.value).collect();
            current.sort_unstable();
            let n = current.len();
            current.dedup();
            assert_eq!(current.len(), n, "one value handed out twice in a generation");
            if rng.below(50) == 0 {
                // A task ends (flushed by the caller), freeing its value.
                if let Some(x) = asid[task].take() {
                    on_core[core] = None;
                    a.release(x);
                }
            }
        }
        assert!(rolled > 10, "only {rolled} rollovers");
    }
}
