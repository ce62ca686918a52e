//! The IPC fast path: `call`, `reply_recv` and `reply_poll` with a message
//! in registers, in the spirit of seL4's `fastpath_call` and
//! `fastpath_reply_recv`.
//!
//! Owns: the fast path's preconditions and its state change, as one pure
//! function per call. Each either declines (with the reason, nothing
//! changed), and the general path runs, or leaves exactly the state the
//! general path would leave (the host test
//! `the_fast_path_leaves_the_general_paths_state` runs both on random
//! operation sequences), and returns the task to run now and the registers
//! it resumes with (for `reply_poll` also the server's, which steps aside
//! into the ready queue). The kernel then only moves registers and
//! switches the address space (after `reply_poll` it also tells the other
//! cores, as the general path does, that a task became ready).
//! Must never: make a scheduling decision the general path would make
//! differently, or take a case it does not cover (timeouts, bound
//! notifications with a pending word, queued callers, other cores).

use super::{Form, Handle, Ipc, Message, Object, REGISTER_WORDS, State, SysError, TaskId, err, ok};

/// Why the fast path left a call to the general path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Decline {
    /// The handle is not an endpoint handle the task holds.
    NotAnEndpoint,
    /// `call`: the endpoint's owner is not waiting in a plain `recv` on it.
    ReceiverNotWaiting,
    /// `reply_recv`: no caller is waiting for this task's reply.
    NoCallerOwed,
    /// `reply_recv`: the task does not own the endpoint it receives on.
    NotOwner,
    /// `reply_recv`: a caller is queued or a bound notification has a word
    /// (the receive would return at once).
    WouldNotBlock,
    /// The task to switch to may not run on this core (pinned elsewhere).
    OtherCore,
    /// A ready task of the same or a higher priority would run first.
    NotHighest,
    /// A result is pending for one of the two tasks.
    ResultPending,
    /// The task to switch to takes messages in the long form (its x6 and
    /// buffer are the general path's).
    LongForm,
    /// `reply_poll`: the idle priority is not one the task may take (the
    /// general path answers `InvalidArgument`).
    BadPriority,
}

/// What the fast `reply_poll` leaves: `next` runs now with `reply`, and the
/// server, queued at its idle priority, resumes later with `stepped_aside`
/// (`WouldBlock`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollSwitch {
    pub next: TaskId,
    pub reply: [u64; 6],
    pub stepped_aside: [u64; 6],
}

impl Ipc {
    /// `call(handle, msg)` by `caller`, running on `core`, on the fast
    /// path: the receiver waits in `recv` on the endpoint, may run here,
    /// and has a higher priority than every task ready for this core. The
    /// caller then awaits the reply and the receiver runs now with the
    /// message and the handle's badge.
    pub fn fast_call(
        &mut self,
        caller: TaskId,
        handle: u64,
        msg: Message,
        core: usize,
    ) -> Result<(TaskId, [u64; 6]), Decline> {
        let Some(Handle { object: Object::Endpoint(endpoint), badge }) = self.handle(caller, handle) else {
            return Err(Decline::NotAnEndpoint);
        };
        let server = self.endpoints[endpoint].owner;
        if self.tasks[server].state != (State::Receiving { endpoint, deadline: None }) {
            return Err(Decline::ReceiverNotWaiting);
        }
        self.switch_allowed(caller, server, core)?;
        self.set_form(caller, Form::SHORT);
        self.short_message_to(server);
        self.tasks[server].owes = Some(caller);
        self.tasks[server].state = State::Ready;
        self.tasks[caller].state = State::AwaitingReply { server };
        Ok((server, ok(msg, badge)))
    }

    /// `reply_recv(handle, msg)` by `server`, running on `core`, on the
    /// fast path: the caller it owes waits for the reply, the receive would
    /// block (nobody queued, no bound word or death notice pending), and the caller may
    /// run here with a higher priority than every task ready for this
    /// core. The server then waits in `recv` and the caller runs now with
    /// the reply.
    pub fn fast_reply_recv(
        &mut self,
        server: TaskId,
        handle: u64,
        msg: Message,
        core: usize,
    ) -> Result<(TaskId, [u64; 6]), Decline> {
        let (caller, endpoint) = self.reply_and_empty_receive(server, handle)?;
        self.switch_allowed(server, caller, core)?;
        self.set_form(server, Form::SHORT);
        self.short_message_to(caller);
        self.tasks[server].owes = None;
        self.tasks[server].state = State::Receiving { endpoint, deadline: None };
        self.tasks[caller].state = State::Ready;
        Ok((caller, ok(msg, 0)))
    }

    /// `reply_poll(handle, msg, idle_priority)` by `server`, running on
    /// `core`, on the fast path: as `fast_reply_recv` (a caller owed, a
    /// receive that finds nothing waiting), and the server steps down to
    /// `idle_priority`, which is at most the caller's. The server then
    /// waits in the ready queue of its idle priority with `WouldBlock` and
    /// the caller runs now with the reply. The server became ready: the
    /// kernel tells the other cores, as the general path does.
    pub fn fast_reply_poll(
        &mut self,
        server: TaskId,
        handle: u64,
        msg: Message,
        idle_priority: u64,
        core: usize,
    ) -> Result<PollSwitch, Decline> {
        let (caller, _) = self.reply_and_empty_receive(server, handle)?;
        let idle = u8::try_from(idle_priority).ok().filter(|&p| self.schedule.allows(server, p));
        let idle = idle.ok_or(Decline::BadPriority)?;
        // The caller, woken first, runs before a server at its own priority.
        if idle > self.schedule.priority(caller) {
            return Err(Decline::NotHighest);
        }
        self.switch_allowed(server, caller, core)?;
        self.set_form(server, Form::SHORT);
        self.short_message_to(caller);
        self.tasks[server].owes = None;
        self.tasks[caller].state = State::Ready;
        let t = &mut self.tasks[server];
        t.sent = 0;
        t.copy = None;
        self.schedule.set_priority(server, idle);
        self.schedule.make_ready(server);
        Ok(PollSwitch { next: caller, reply: ok(msg, 0), stepped_aside: err(SysError::WouldBlock) })
    }

    /// The caller `server` owes a reply to and the endpoint `handle` names,
    /// when a receive on it would find nothing: the common preconditions
    /// of `fast_reply_recv` and `fast_reply_poll`.
    #[inline(always)]
    fn reply_and_empty_receive(&self, server: TaskId, handle: u64) -> Result<(TaskId, usize), Decline> {
        let Some(caller) = self.tasks[server].owes.filter(|&c| self.tasks[c].state == State::AwaitingReply { server })
        else {
            return Err(Decline::NoCallerOwed);
        };
        let Some(Handle { object: Object::Endpoint(endpoint), .. }) = self.handle(server, handle) else {
            return Err(Decline::NotAnEndpoint);
        };
        if self.endpoints[endpoint].owner != server {
            return Err(Decline::NotOwner);
        }
        if !self.endpoints[endpoint].queue.is_empty()
            || self.death_pending(endpoint)
            || self.notifications.iter().any(|n| n.bound_to == Some(endpoint) && n.word != 0)
        {
            return Err(Decline::WouldNotBlock);
        }
        Ok((caller, endpoint))
    }

    /// Whether `from`, running on `core`, may hand the core straight to
    /// `to`: the general path's scheduler would pick `to` next here.
    fn switch_allowed(&self, from: TaskId, to: TaskId, core: usize) -> Result<(), Decline> {
        if self.tasks[from].has_result || self.tasks[to].has_result {
            return Err(Decline::ResultPending);
        }
        if self.tasks[to].long {
            return Err(Decline::LongForm);
        }
        if !self.schedule.may_run_on(to, core) {
            return Err(Decline::OtherCore);
        }
        // FIFO within a priority: a ready task of the same priority runs
        // before one woken now.
        if self.schedule.best_priority_for(core).is_some_and(|p| p >= self.schedule.priority(to)) {
            return Err(Decline::NotHighest);
        }
        Ok(())
    }

    /// What the general path records of a short message `to` receives.
    fn short_message_to(&mut self, to: TaskId) {
        let t = &mut self.tasks[to];
        t.sent = REGISTER_WORDS;
        t.copy = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeSet;
    use alloc::format;
    use alloc::string::String;
    use alloc::vec::Vec;

    /// What the kernel does on the general path after a system call by
    /// `current` on `core`: who runs next, with every result delivered.
    fn general(
        ipc: &mut Ipc,
        regs: &mut [[u64; 6]],
        current: TaskId,
        core: usize,
        op: Result<(), SysError>,
    ) -> Option<TaskId> {
        if let Err(e) = op {
            regs[current] = [e as u64, 0, 0, 0, 0, 0];
        }
        let next = if ipc.state(current) == State::Ready {
            Some(current)
        } else {
            ipc.requeue(current);
            ipc.next_to_run_on(core)
        };
        ipc.deliver_results(|t, r, _| regs[t] = *r);
        next
    }

    /// [`general`] after a `reply_poll`: one that found nothing yields
    /// (the kernel's `Next::IpcYield`).
    fn general_polled(
        ipc: &mut Ipc,
        regs: &mut [[u64; 6]],
        current: TaskId,
        core: usize,
        op: Result<bool, SysError>,
    ) -> Option<TaskId> {
        if op != Ok(false) {
            return general(ipc, regs, current, core, op.map(|_| ()));
        }
        ipc.requeue(current);
        let next = ipc.next_to_run_on(core);
        ipc.deliver_results(|t, r, _| regs[t] = *r);
        next
    }

    fn snapshot(ipc: &Ipc, regs: &[[u64; 6]], running: [Option<TaskId>; 2]) -> String {
        let tasks: Vec<String> = ipc
            .tasks
            .iter()
            .map(|t| {
                let form = (t.long, t.accepts, t.sending, t.sent, t.copy);
                format!("{:?}/{:?}/{}/{form:?}", t.state, t.owes, t.has_result)
            })
            .collect();
        let queues: Vec<Vec<TaskId>> = ipc.endpoints.iter().map(|e| e.queue.iter().copied().collect()).collect();
        let words: Vec<(u64, Option<TaskId>)> = ipc.notifications.iter().map(|n| (n.word, n.waiter)).collect();
        format!("{tasks:?} {queues:?} {words:?} {:?} {regs:?} running={running:?}", ipc.schedule.order())
    }

    /// The same random operation sequences through the fast path (where it
    /// takes them) and through the general path alone leave the same
    /// state: task states, replies owed, endpoint queues, notification
    /// words, the ready queues, every task's registers, and who runs next.
    /// Every reason to decline happens.
    #[test]
    fn the_fast_path_leaves_the_general_paths_state() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut random = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut declined = BTreeSet::new();
        let (mut taken, mut polls_taken) = (0, 0);
        for _ in 0..3000 {
            let tasks = 2 + random(4) as usize;
            let priorities: Vec<u8> = (0..tasks).map(|_| random(3) as u8).collect();
            let pins: Vec<Option<usize>> = (0..tasks).map(|_| (random(4) == 0).then(|| random(2) as usize)).collect();
            let owners: Vec<TaskId> = (0..2).map(|_| random(tasks as u64) as usize).collect();
            let build = || {
                let mut ipc = Ipc::new();
                for (t, &p) in priorities.iter().enumerate() {
                    ipc.add_task(p);
                    if let Some(core) = pins[t] {
                        ipc.pin(t, core);
                    }
                }
                for &owner in &owners {
                    ipc.add_endpoint(owner);
                }
                let n = ipc.add_notification();
                ipc.bind_notification(0, n);
                for t in 0..tasks {
                    ipc.grant(t, Object::Endpoint(0), 10 + t as u64);
                    ipc.grant(t, Object::Endpoint(1), 20 + t as u64);
                    ipc.grant(t, Object::Notification(n), 1 << t);
                }
                ipc
            };
            let (mut fast, mut slow) = (build(), build());
            let (mut fast_regs, mut slow_regs) = (alloc::vec![[0u64; 6]; tasks], alloc::vec![[0u64; 6]; tasks]);
            // Two cores, each running a task or idle.
            let mut fast_running = [fast.next_to_run_on(0), fast.next_to_run_on(1)];
            let mut slow_running = [slow.next_to_run_on(0), slow.next_to_run_on(1)];
            for _ in 0..80 {
                let core = random(2) as usize;
                let (Some(current), Some(same)) = (fast_running[core], slow_running[core]) else {
                    // An idle core looks for work.
                    fast_running[core] = fast.next_to_run_on(core);
                    slow_running[core] = slow.next_to_run_on(core);
                    assert_eq!(fast_running, slow_running);
                    if fast_running.iter().all(Option::is_none) {
                        break;
                    }
                    continue;
                };
                assert_eq!(current, same);
                let handle = random(4); // 0, 1: endpoints, 2: notification, 3: none
                let msg = [random(100), 1, 2, 3];
                let (fast_next, slow_next);
                // A server that owes a reply answers often.
                let owes = fast.caller_owed(current).is_some();
                match if owes && random(3) == 0 { 8 } else { random(9) } {
                    pick @ 0..=3 => {
                        // A call (0, 1) or a reply_recv (2, 3): the fast path
                        // where it takes it, the general path otherwise; the
                        // other instance always the general path.
                        let calling = pick < 2;
                        let fast_try = if calling {
                            fast.fast_call(current, handle, msg, core)
                        } else {
                            fast.fast_reply_recv(current, handle, msg, core)
                        };
                        let general_op = |ipc: &mut Ipc| {
                            if calling { ipc.call(current, handle, msg) } else { ipc.reply_recv(current, handle, msg) }
                        };
                        fast_next = match fast_try {
                            Ok((next, r)) => {
                                fast_regs[next] = r;
                                taken += 1;
                                Some(next)
                            }
                            Err(why) => {
                                declined.insert(why);
                                let op = general_op(&mut fast);
                                general(&mut fast, &mut fast_regs, current, core, op)
                            }
                        };
                        let op = general_op(&mut slow);
                        slow_next = general(&mut slow, &mut slow_regs, current, core, op);
                    }
                    4 => {
                        // A signal: a bound word may become pending.
                        let op = fast.signal(current, 2);
                        fast_next = general(&mut fast, &mut fast_regs, current, core, op);
                        let op = slow.signal(current, 2);
                        slow_next = general(&mut slow, &mut slow_regs, current, core, op);
                    }
                    6 => {
                        // A long receive: the task takes long messages now.
                        let form = Form::long(0, random(70)).unwrap();
                        let op = fast.recv_long(current, handle, form);
                        fast_next = general(&mut fast, &mut fast_regs, current, core, op);
                        let op = slow.recv_long(current, handle, form);
                        slow_next = general(&mut slow, &mut slow_regs, current, core, op);
                    }
                    7 => {
                        // A long call (the kernel never tries the fast path
                        // for the long forms).
                        let form = Form::long(random(70), random(70));
                        let op = form.and_then(|f| fast.call_long(current, handle, msg, f));
                        fast_next = general(&mut fast, &mut fast_regs, current, core, op);
                        let op = form.and_then(|f| slow.call_long(current, handle, msg, f));
                        slow_next = general(&mut slow, &mut slow_regs, current, core, op);
                    }
                    8 => {
                        // A reply_poll, mostly stepping down to a priority
                        // it may take; 3 is above every task's (refused).
                        let mine = u64::from(fast.priority(current));
                        let idle = if random(6) == 0 { 3 } else { random(mine + 1) };
                        fast_next = match fast.fast_reply_poll(current, handle, msg, idle, core) {
                            Ok(switch) => {
                                fast_regs[switch.next] = switch.reply;
                                fast_regs[current] = switch.stepped_aside;
                                polls_taken += 1;
                                Some(switch.next)
                            }
                            Err(why) => {
                                declined.insert(why);
                                let op = fast.reply_poll(current, handle, msg, idle);
                                general_polled(&mut fast, &mut fast_regs, current, core, op)
                            }
                        };
                        let op = slow.reply_poll(current, handle, msg, idle);
                        slow_next = general_polled(&mut slow, &mut slow_regs, current, core, op);
                    }
                    _ => {
                        // A yield: the task goes to the back of its queue.
                        fast.requeue(current);
                        fast_next = fast.next_to_run_on(core);
                        slow.requeue(current);
                        slow_next = slow.next_to_run_on(core);
                    }
                }
                fast_running[core] = fast_next;
                slow_running[core] = slow_next;
                assert_eq!(snapshot(&fast, &fast_regs, fast_running), snapshot(&slow, &slow_regs, slow_running));
            }
        }
        let every = [
            Decline::NotAnEndpoint,
            Decline::ReceiverNotWaiting,
            Decline::NoCallerOwed,
            Decline::NotOwner,
            Decline::WouldNotBlock,
            Decline::OtherCore,
            Decline::NotHighest,
            Decline::LongForm,
            Decline::BadPriority,
        ];
        for why in every {
            assert!(declined.contains(&why), "never declined for {why:?} (declined: {declined:?})");
        }
        assert!(taken >= 300, "the fast path was taken only {taken} times");
        assert!(polls_taken >= 100, "the fast reply_poll was taken only {polls_taken} times");
    }
}
