//! Scheduling: which ready task a core runs next.
//!
//! Owns: every task's priority and core pinning, and the ready queues:
//! one FIFO queue per priority (intrusive lists) with a bitmap of the
//! non-empty ones, so the best priority is found with a leading-zero
//! count, not a scan of every ready task. A core runs the first task of the highest priority
//! among those not pinned to another core (FIFO within a priority).
//! Must never: hold a task twice, or a task that is not ready (the IPC
//! state machine says which tasks are; this only orders them).

use alloc::vec::Vec;

use super::TaskId;

/// Priorities are 0 (lowest) to 255.
const LEVELS: usize = 256;
/// No task (the end of a queue).
const NONE: usize = usize::MAX;

/// A task as the scheduler sees it. Its place in its priority's queue is
/// an intrusive doubly linked list, as seL4's ready queues: queueing and
/// removal are O(1) and never allocate.
#[derive(Clone, Copy)]
struct Entry {
    priority: u8,
    /// The priority it was started with: the highest it may set itself.
    base: u8,
    queued: bool,
    /// The only core it may run on (`NONE`: any).
    pinned: usize,
    prev: TaskId,
    next: TaskId,
}

/// The first and last task of one priority's queue (`NONE`: empty).
#[derive(Clone, Copy)]
struct Queue {
    head: TaskId,
    tail: TaskId,
}

pub struct Scheduler {
    tasks: Vec<Entry>,
    /// One per priority (an array: a `u8` priority needs no bounds check).
    queues: [Queue; LEVELS],
    /// Bit p of word p / 64: queue p is not empty.
    non_empty: [u64; LEVELS / 64],
    /// How many times a task joined a queue.
    readied: u64,
}

impl Default for Scheduler {
    fn default() -> Scheduler {
        Scheduler {
            tasks: Vec::new(),
            queues: [Queue { head: NONE, tail: NONE }; LEVELS],
            non_empty: [0; LEVELS / 64],
            readied: 0,
        }
    }
}

impl Scheduler {
    /// A new task with `priority`, ready (queued, not counted in
    /// [`Scheduler::readied`]).
    pub fn add_task(&mut self, priority: u8) -> TaskId {
        self.tasks.push(Entry { priority, base: priority, queued: false, pinned: NONE, prev: NONE, next: NONE });
        let task = self.tasks.len() - 1;
        self.make_ready(task);
        self.readied -= 1;
        task
    }

    /// Task slot `task`, of a task that died (not queued), starts over for a
    /// new task with `priority`, ready.
    pub fn reset_task(&mut self, task: TaskId, priority: u8) {
        self.remove(task);
        self.tasks[task] = Entry { priority, base: priority, queued: false, pinned: NONE, prev: NONE, next: NONE };
        self.make_ready(task);
        self.readied -= 1;
    }

    pub fn priority(&self, task: TaskId) -> u8 {
        self.tasks[task].priority
    }

    /// Whether `task` may run at `priority`: at most the one it was started with.
    pub fn allows(&self, task: TaskId, priority: u8) -> bool {
        priority <= self.tasks[task].base
    }

    /// Gives `task` priority `priority`, at most the one it was started
    /// with (`false`, nothing changed, above it). A queued task moves to
    /// the back of its new priority's queue.
    pub fn set_priority(&mut self, task: TaskId, priority: u8) -> bool {
        if priority > self.tasks[task].base {
            return false;
        }
        let queued = self.tasks[task].queued;
        self.remove(task);
        self.tasks[task].priority = priority;
        if queued {
            self.make_ready(task);
            self.readied -= 1;
        }
        true
    }

    /// Restricts `task` to `core`.
    pub fn pin(&mut self, task: TaskId, core: usize) {
        self.tasks[task].pinned = core;
    }

    /// Puts `task` at the back of its priority's queue, unless it is queued.
    pub fn make_ready(&mut self, task: TaskId) {
        let entry = &mut self.tasks[task];
        if entry.queued {
            return;
        }
        let p = entry.priority as usize;
        let queue = &mut self.queues[p];
        let tail = queue.tail;
        entry.queued = true;
        entry.prev = tail;
        entry.next = NONE;
        queue.tail = task;
        if tail == NONE {
            queue.head = task;
        } else {
            self.tasks[tail].next = task;
        }
        self.non_empty[p / 64] |= 1 << (p % 64);
        self.readied += 1;
    }

    /// Takes `task` out of its queue (it blocked, died, or runs next).
    pub fn remove(&mut self, task: TaskId) {
        let entry = &mut self.tasks[task];
        if !entry.queued {
            return;
        }
        entry.queued = false;
        let (p, prev, next) = (entry.priority as usize, entry.prev, entry.next);
        if prev == NONE {
            self.queues[p].head = next;
        } else {
            self.tasks[prev].next = next;
        }
        if next == NONE {
            self.queues[p].tail = prev;
        } else {
            self.tasks[next].prev = prev;
        }
        if self.queues[p].head == NONE {
            self.non_empty[p / 64] &= !(1 << (p % 64));
        }
    }

    /// The first task of the best priority that `core` may run.
    fn best(&self, core: usize) -> Option<TaskId> {
        for word in (0..LEVELS / 64).rev() {
            let mut bits = self.non_empty[word];
            while bits != 0 {
                let bit = 63 - bits.leading_zeros() as usize;
                let mut task = self.queues[word * 64 + bit].head;
                while task != NONE {
                    let entry = &self.tasks[task];
                    if entry.pinned == NONE || entry.pinned == core {
                        return Some(task);
                    }
                    task = entry.next;
                }
                bits &= !(1 << bit);
            }
        }
        None
    }

    /// The next task `core` runs, taken out of its queue.
    pub fn next_for(&mut self, core: usize) -> Option<TaskId> {
        let task = self.best(core)?;
        self.remove(task);
        Some(task)
    }

    /// Whether `task` may run on `core` (not pinned to another).
    pub fn may_run_on(&self, task: TaskId, core: usize) -> bool {
        let pinned = self.tasks[task].pinned;
        pinned == NONE || pinned == core
    }

    /// Every queue's tasks in order, highest priority first (for tests
    /// that compare schedulers).
    #[cfg(test)]
    pub fn order(&self) -> Vec<Vec<TaskId>> {
        (0..LEVELS)
            .rev()
            .map(|p| {
                let mut order = Vec::new();
                let mut task = self.queues[p].head;
                while task != NONE {
                    order.push(task);
                    task = self.tasks[task].next;
                }
                order
            })
            .filter(|q| !q.is_empty())
            .collect()
    }

    /// The highest priority among ready tasks that `core` may run.
    pub fn best_priority_for(&self, core: usize) -> Option<u8> {
        self.best(core).map(|t| self.tasks[t].priority)
    }

    pub fn any_ready(&self) -> bool {
        self.non_empty.iter().any(|&w| w != 0)
    }

    pub fn is_queued(&self, task: TaskId) -> bool {
        self.tasks[task].queued
    }

    /// How many times a task became ready so far.
    pub fn readied(&self) -> u64 {
        self.readied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: one list of ready tasks scanned for the first of the
    /// best priority (the scheduler before per-priority queues).
    struct Reference {
        ready: Vec<TaskId>,
        priority: Vec<u8>,
        pinned: Vec<Option<usize>>,
    }

    impl Reference {
        fn next_for(&mut self, core: usize) -> Option<TaskId> {
            let allowed = |t: &TaskId| self.pinned[*t].is_none_or(|c| c == core);
            let best = self.ready.iter().filter(|t| allowed(t)).map(|&t| self.priority[t]).max()?;
            let i = self.ready.iter().position(|t| allowed(t) && self.priority[*t] == best)?;
            Some(self.ready.remove(i))
        }
    }

    #[test]
    fn highest_priority_first_fifo_within_one() {
        let mut s = Scheduler::default();
        let (a, b, c) = (s.add_task(1), s.add_task(5), s.add_task(1));
        s.make_ready(a); // already queued: no second entry
        assert_eq!(s.readied(), 0, "new tasks are ready, not readied");
        assert_eq!(s.best_priority_for(0), Some(5));
        assert_eq!([s.next_for(0), s.next_for(0), s.next_for(0), s.next_for(0)], [Some(b), Some(a), Some(c), None]);
        assert!(!s.any_ready());
        s.make_ready(c);
        assert_eq!(s.readied(), 1);
    }

    #[test]
    fn pinned_tasks_run_only_on_their_core() {
        let mut s = Scheduler::default();
        let (a, b) = (s.add_task(9), s.add_task(1));
        s.pin(a, 1);
        assert_eq!(s.best_priority_for(0), Some(1));
        assert_eq!(s.next_for(0), Some(b));
        assert_eq!(s.next_for(0), None);
        assert_eq!(s.next_for(1), Some(a));
    }

    #[test]
    fn removed_tasks_leave_their_queue() {
        let mut s = Scheduler::default();
        let (a, b) = (s.add_task(200), s.add_task(200));
        s.remove(a);
        s.remove(a);
        assert!(!s.is_queued(a));
        assert_eq!(s.next_for(3), Some(b));
        assert!(!s.any_ready());
    }

    /// Random operation sequences on many priorities, pins and cores: the
    /// same choices as the reference every time.
    #[test]
    fn agrees_with_the_reference_on_random_sequences() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut random = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..200 {
            let mut s = Scheduler::default();
            let mut r = Reference { ready: Vec::new(), priority: Vec::new(), pinned: Vec::new() };
            let tasks = 1 + random(12) as usize;
            for _ in 0..tasks {
                let p = [0, 1, 2, 63, 64, 65, 127, 128, 200, 255][random(10) as usize];
                let t = s.add_task(p);
                s.remove(t);
                r.priority.push(p);
                let pin = (random(3) == 0).then(|| random(3) as usize);
                r.pinned.push(pin);
                if let Some(core) = pin {
                    s.pin(t, core);
                }
            }
            for _ in 0..300 {
                let t = random(tasks as u64) as usize;
                match random(4) {
                    0 | 1 => {
                        s.make_ready(t);
                        if !r.ready.contains(&t) {
                            r.ready.push(t);
                        }
                    }
                    2 => {
                        s.remove(t);
                        r.ready.retain(|&x| x != t);
                    }
                    _ => {
                        let core = random(3) as usize;
                        assert_eq!(s.next_for(core), r.next_for(core));
                    }
                }
                assert_eq!(s.any_ready(), !r.ready.is_empty());
            }
        }
    }
}
