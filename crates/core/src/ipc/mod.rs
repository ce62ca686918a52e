//! Synchronous IPC: the semantics, as a state machine with no hardware.
//!
//! Owns: task states for IPC, endpoints, handles and badges, and who runs
//! next. The architecture layer only moves registers: when a task resumes
//! it receives the six words [`Ipc::take_result`] hands out (x0 = status,
//! x1..x4 = message, x5 = badge).
//!
//! # Semantics (seL4-style, short messages in registers)
//!
//! - An **endpoint** has one owner, the only task that may receive on it.
//!   A **handle** is a task's right to an endpoint plus a **badge** chosen
//!   when the handle was granted; the receiver sees the caller's badge.
//! - `call(h, msg)`: if the owner waits in `recv`, the message is delivered
//!   at once and the owner becomes ready; otherwise the caller queues on the
//!   endpoint (FIFO). Either way the caller blocks until the reply.
//! - `recv(h)`: takes the first queued caller, or blocks until one comes.
//!   The server then owes that caller a reply.
//! - `reply(msg)`: ends the owed call; the caller becomes ready with the
//!   message. `reply_recv` is reply then recv.
//! - Errors, in x0, never block: a handle the task does not hold
//!   (`InvalidHandle`), a recv on an endpoint the task does not own
//!   (`NotOwner`), a reply with nothing owed (`NoCaller`), a call to an
//!   endpoint whose owner has died (`DeadPeer`). When a task dies, every
//!   task queued on or waiting for a reply from it is made ready with
//!   `DeadPeer`; a server that dies leaves its endpoints dead.
//! - `recv_nonblocking(h)` returns `WouldBlock` instead of waiting;
//!   `recv_timed(h, deadline)` returns `TimedOut` if nobody called by the
//!   deadline (in ticks of the virtual counter; see [`Ipc::expire`]).
//! - `reply_poll(h, msg, idle)` is `reply` then `recv_nonblocking`, and
//!   when nothing waits the server also drops to priority `idle` (at most
//!   the one it started with) and yields: a server with background work
//!   answers and steps aside in one call, and keeps its priority when a
//!   request already waits.
//! - A **notification** is a word. `signal(h)` ORs the handle's badge into
//!   it and never blocks; `wait(h)` returns the word and clears it, or
//!   blocks until it is non-zero.
//! - **Death notices** ([`death`]): an endpoint's owner may ask for them.
//!   When a task dies, every endpoint it held a handle to that gives them
//!   queues one notice (that handle's badge and the exit status), and the
//!   owner's `recv` returns them one at a time, before queued callers, with
//!   x5 = [`DEATH_BADGE`], x1 = the badge, x2 = the status, owing nobody a
//!   reply. A queue, not a word of bits: any number of clients may come
//!   and go over time. Each notice is reserved when its handle is granted
//!   (at most [`MAX_DEATH_NOTICES`] per endpoint), so none is ever lost.
//! - A dead task's slot may be **recycled** for a new task once nothing
//!   refers to it ([`Ipc::recycle`]): it owns no endpoint, and no server
//!   still owes it a reply.
//! - A notification may be **bound** to an endpoint (seL4's bound
//!   notification): its owner's `recv` on that endpoint then also returns
//!   when the word is non-zero, with x5 = [`NOTIFICATION_BADGE`] and x1 =
//!   the word (cleared), owing nobody a reply. A pending word is delivered
//!   before death notices and queued callers. So a server blocks in one
//!   place for calls, signals and the kernel's death notices.
//! - **Long messages** (`folio_abi::ipc`): the long forms of `call`,
//!   `recv` and `reply_recv` say how many words they send (at most 64,
//!   else `InvalidArgument`) and how many they accept. Words 0..4 travel in
//!   registers, words 4.. from the sender's IPC buffer to the receiver's at
//!   the same index. A message longer than the receiver accepts arrives
//!   cut to what it accepts, with `Truncated`; the receiver's buffer past
//!   that is not written. The short forms send and accept four words; the
//!   long form's receiver also learns how many words were sent (x6).
//!   Nothing but the sender's words 4..n ever reaches another buffer.
//! - Scheduling: FIFO within a priority, higher priority first, a pinned
//!   task only on its core ([`schedule`]).
//! - The **fast path** ([`fastpath`]) takes `call` and `reply_recv` with a
//!   short message when the task to switch to runs next here anyway; it
//!   leaves exactly the state the general path would.
//!
//! The code follows the semantics: endpoints in `endpoint.rs`,
//! notifications in `notification.rs`, death notices in `death.rs`, the ready queues
//! and priorities in [`schedule`]; this file holds the tasks, their
//! handles, results and deaths.

mod death;
mod endpoint;
pub mod fastpath;
mod notification;
pub mod schedule;

use alloc::collections::VecDeque;
use schedule::Scheduler;

pub use crate::syscall::SysError;
use alloc::vec::Vec;
pub use death::{DEATH_BADGE, MAX_DEATH_NOTICES};

pub type TaskId = usize;
pub type EndpointId = usize;
/// Message words in registers.
pub const MSG_WORDS: usize = 4;
pub type Message = [u64; MSG_WORDS];
/// The badge `recv` reports for a bound notification's word; never granted.
pub const NOTIFICATION_BADGE: u64 = folio_abi::ipc::NOTIFICATION_BADGE;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Ready,
    /// Queued on an endpoint with its message, waiting for the owner.
    Sending {
        endpoint: EndpointId,
        badge: u64,
        msg: Message,
    },
    /// Waiting in `recv` on an endpoint it owns, until `deadline` if any.
    Receiving {
        endpoint: EndpointId,
        deadline: Option<u64>,
    },
    /// Waiting for a notification word.
    Waiting {
        notification: usize,
    },
    /// Its call was received; waiting for the reply.
    AwaitingReply {
        server: TaskId,
    },
    Dead {
        status: u64,
    },
}

/// What a handle names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Object {
    Endpoint(EndpointId),
    Notification(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handle {
    pub object: Object,
    pub badge: u64,
}

struct Notification {
    word: u64,
    waiter: Option<TaskId>,
    /// The endpoint whose owner's `recv` also takes this word.
    bound_to: Option<EndpointId>,
}

struct Task {
    state: State,
    handles: Vec<Handle>,
    /// The caller this task owes a reply to.
    owes: Option<TaskId>,
    /// Registers to load when it next runs, if `has_result`. (Not an
    /// `Option`: six plain stores, where setting an `Option<[u64; 6]>` is a
    /// byte-wise memcpy call on the kernel's strict-align target.)
    result: [u64; 6],
    has_result: bool,
    /// Whether it is in `Ipc::pending_results` (at most once).
    listed: bool,
    /// How its current IPC call takes messages: the long form (x6 says
    /// the length sent) or the short one, and the most words it accepts
    /// (4 for the short forms).
    long: bool,
    accepts: u8,
    /// The words of the message its pending call sends (while queued).
    sending: u8,
    /// With a message result: the words the other side sent (x6 of the
    /// long form), and the words past the registers to copy into this
    /// task's buffer from the sender's (`Delivery::copy`).
    sent: u8,
    copy: Option<(TaskId, u8)>,
}

/// What comes with a task's result registers (x0..x5) when it resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// x6 for a task in a long-form call: the words the other side sent.
    pub x6: Option<u64>,
    /// Words 4..n of the message to copy from task `.0`'s IPC buffer into
    /// this task's, at the same index (only for messages longer than the
    /// registers, cut to what this task accepts).
    pub copy: Option<(TaskId, u8)>,
}

/// How a task takes part in a message: words sent, words accepted, and
/// whether it used the long form (`folio_abi::ipc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Form {
    pub sends: u8,
    pub accepts: u8,
    pub long: bool,
}

impl Form {
    /// The short forms: four words in registers each way.
    pub const SHORT: Form = Form { sends: REGISTER_WORDS, accepts: REGISTER_WORDS, long: false };

    /// The long form with `sends` words sent (x5) and `accepts` accepted
    /// (x6, 0: the most). Too long a message is `InvalidArgument`.
    pub fn long(sends: u64, accepts: u64) -> Result<Form, SysError> {
        if sends > MAX_MESSAGE_WORDS as u64 {
            return Err(SysError::InvalidArgument);
        }
        let accepts = if accepts == 0 { MAX_MESSAGE_WORDS as u64 } else { accepts.min(MAX_MESSAGE_WORDS as u64) };
        Ok(Form { sends: sends as u8, accepts: accepts as u8, long: true })
    }
}

/// The longest message, in words (`folio_abi::ipc`).
pub const MAX_MESSAGE_WORDS: u8 = folio_abi::ipc::MAX_MESSAGE_WORDS as u8;
/// Words carried in registers.
pub const REGISTER_WORDS: u8 = folio_abi::ipc::REGISTER_WORDS as u8;

struct Endpoint {
    owner: TaskId,
    queue: VecDeque<TaskId>,
    /// Whether its owner asked for death notices ([`death`]).
    death_notices: bool,
    /// Notices not yet received: (badge, exit status).
    deaths: VecDeque<(u64, u64)>,
    /// Notices reserved: live handles of clients plus `deaths`.
    reserved_notices: usize,
    /// Only its owner ever holds a handle to it: it is freed with the
    /// owner's slot ([`Ipc::add_private_endpoint`]).
    private: bool,
}

/// The owner of a freed private endpoint (no task).
const NO_OWNER: TaskId = usize::MAX;

#[derive(Default)]
pub struct Ipc {
    tasks: Vec<Task>,
    endpoints: Vec<Endpoint>,
    notifications: Vec<Notification>,
    /// The ready queues and priorities.
    schedule: Scheduler,
    /// Tasks whose `result` may be set, each at most once
    /// ([`Ipc::next_result`]).
    pending_results: Vec<TaskId>,
    /// Tasks not dead.
    alive: usize,
    /// Slots of dead tasks that [`Ipc::recycle`] freed for new tasks.
    free_slots: Vec<TaskId>,
    /// Private endpoints freed with their owners' slots, for new ones.
    free_endpoints: Vec<EndpointId>,
}

fn ok(msg: Message, badge: u64) -> [u64; 6] {
    [0, msg[0], msg[1], msg[2], msg[3], badge]
}

fn err(e: SysError) -> [u64; 6] {
    [e as u64, 0, 0, 0, 0, 0]
}

impl Ipc {
    pub fn new() -> Ipc {
        Ipc::default()
    }

    /// A new ready task, in a recycled slot if there is one.
    pub fn add_task(&mut self, priority: u8) -> TaskId {
        let fresh = Task {
            state: State::Ready,
            handles: Vec::new(),
            owes: None,
            result: [0; 6],
            has_result: false,
            listed: false,
            long: false,
            accepts: REGISTER_WORDS,
            sending: REGISTER_WORDS,
            sent: 0,
            copy: None,
        };
        self.alive += 1;
        if let Some(slot) = self.free_slots.pop() {
            // Still listed with no result if it was when it died: it stays
            // listed once (`set_result` will not list it again).
            let listed = self.tasks[slot].listed;
            self.tasks[slot] = Task { listed, ..fresh };
            self.schedule.reset_task(slot, priority);
            return slot;
        }
        self.tasks.push(fresh);
        let id = self.schedule.add_task(priority);
        debug_assert_eq!(id, self.tasks.len() - 1);
        // A task is listed at most once: the list never grows past this.
        self.pending_results.reserve(self.tasks.len() - self.pending_results.len());
        id
    }

    pub fn add_endpoint(&mut self, owner: TaskId) -> EndpointId {
        self.endpoints.push(Endpoint {
            owner,
            queue: VecDeque::new(),
            death_notices: false,
            deaths: VecDeque::new(),
            reserved_notices: 0,
            private: false,
        });
        self.endpoints.len() - 1
    }

    /// An endpoint of `owner`'s own that only it will ever hold a handle
    /// to (a task made at run time gets one to wait on with a timeout):
    /// freed for reuse when `owner`'s slot is recycled.
    pub fn add_private_endpoint(&mut self, owner: TaskId) -> EndpointId {
        match self.free_endpoints.pop() {
            Some(e) => {
                self.endpoints[e].owner = owner;
                e
            }
            None => {
                let e = self.add_endpoint(owner);
                self.endpoints[e].private = true;
                e
            }
        }
    }

    /// Gives `task` a handle to `object` carrying `badge`; returns its
    /// number. [`NOTIFICATION_BADGE`] and [`DEATH_BADGE`] are reserved and
    /// become 0. A handle to an endpoint with death notices reserves one,
    /// even past the bound: the run's own set-up may; for tasks made at
    /// run time the kernel checks [`Ipc::has_notice_room`] first.
    pub fn grant(&mut self, task: TaskId, object: Object, badge: u64) -> u64 {
        let badge = if badge == NOTIFICATION_BADGE || badge == DEATH_BADGE { 0 } else { badge };
        let handle = Handle { object, badge };
        self.reserve_notice(task, &handle);
        self.tasks[task].handles.push(handle);
        self.tasks[task].handles.len() as u64 - 1
    }

    pub fn state(&self, task: TaskId) -> State {
        self.tasks[task].state
    }

    /// The registers `task` should see when it resumes, if any changed.
    pub fn take_result(&mut self, task: TaskId) -> Option<[u64; 6]> {
        let t = &mut self.tasks[task];
        core::mem::take(&mut t.has_result).then_some(t.result)
    }

    /// Whether any result waits to be delivered.
    #[inline]
    pub fn results_pending(&self) -> bool {
        !self.pending_results.is_empty()
    }

    /// Hands every pending result to `deliver` (the task, its six
    /// registers, and what comes with them) and forgets it. The kernel
    /// writes them into each task's saved registers after every system
    /// call (its only writer of IPC results), without looking at every
    /// task.
    pub fn deliver_results(&mut self, mut deliver: impl FnMut(TaskId, &[u64; 6], Delivery)) {
        while let Some(task) = self.pending_results.pop() {
            let t = &mut self.tasks[task];
            t.listed = false;
            if core::mem::take(&mut t.has_result) {
                let delivery = Delivery { x6: t.long.then_some(t.sent as u64), copy: t.copy.take() };
                deliver(task, &t.result, delivery);
            }
        }
    }

    /// Sets `to`'s result to a message from `from`: `form` is how `from`
    /// sent it, `to`'s own form says how much it accepts.
    fn set_message(&mut self, to: TaskId, from: TaskId, msg: Message, sends: u8, badge: u64) {
        let accepts = self.tasks[to].accepts;
        let arrives = sends.min(accepts);
        let mut result = ok(msg, badge);
        if sends > accepts {
            result[0] = SysError::Truncated as u64;
        }
        self.set_result(to, result);
        let t = &mut self.tasks[to];
        t.sent = sends;
        t.copy = (arrives > REGISTER_WORDS).then_some((from, arrives));
    }

    /// Wakes `to` with a message (see [`Ipc::set_message`]).
    fn wake_with_message(&mut self, to: TaskId, from: TaskId, msg: Message, sends: u8, badge: u64) {
        if self.make_ready(to) {
            self.set_message(to, from, msg, sends, badge);
        }
    }

    /// Records how `task` takes part in the IPC call it is making.
    fn set_form(&mut self, task: TaskId, form: Form) {
        let t = &mut self.tasks[task];
        t.long = form.long;
        t.accepts = form.accepts;
        t.sending = form.sends;
    }

    /// Sets `task`'s result; it is listed once until taken.
    fn set_result(&mut self, task: TaskId, result: [u64; 6]) {
        let t = &mut self.tasks[task];
        t.sent = 0;
        t.copy = None;
        let r = &mut t.result;
        [r[0], r[1], r[2], r[3], r[4], r[5]] = result;
        t.has_result = true;
        if !t.listed {
            t.listed = true;
            // Capacity for every task was reserved by `add_task`.
            self.pending_results.push(task);
        }
    }

    /// What `task`'s handle `handle` names, if it holds one.
    pub fn object_of(&self, task: TaskId, handle: u64) -> Option<Object> {
        self.handle(task, handle).map(|h| h.object)
    }

    fn handle(&self, task: TaskId, handle: u64) -> Option<Handle> {
        usize::try_from(handle).ok().and_then(|h| self.tasks[task].handles.get(h).copied())
    }

    /// The endpoint a handle names, or the error to return.
    fn endpoint_of(&self, task: TaskId, handle: u64) -> Result<(EndpointId, u64), SysError> {
        match self.handle(task, handle) {
            Some(Handle { object: Object::Endpoint(e), badge }) => Ok((e, badge)),
            Some(_) => Err(SysError::WrongKind),
            None => Err(SysError::InvalidHandle),
        }
    }

    fn notification_of(&self, task: TaskId, handle: u64) -> Result<(usize, u64), SysError> {
        match self.handle(task, handle) {
            Some(Handle { object: Object::Notification(n), badge }) => Ok((n, badge)),
            Some(_) => Err(SysError::WrongKind),
            None => Err(SysError::InvalidHandle),
        }
    }

    fn wake(&mut self, task: TaskId, result: [u64; 6]) {
        if self.make_ready(task) {
            self.set_result(task, result);
        }
    }

    /// Makes a blocked `task` ready (queued), unless it is dead; says
    /// whether it did.
    fn make_ready(&mut self, task: TaskId) -> bool {
        let t = &mut self.tasks[task];
        if matches!(t.state, State::Dead { .. }) {
            return false;
        }
        t.state = State::Ready;
        self.schedule.make_ready(task);
        true
    }

    /// Blocks the running `task`.
    fn block(&mut self, task: TaskId, state: State) {
        self.tasks[task].state = state;
    }

    /// Ends `task`; whoever waits on it learns it died.
    pub fn exit(&mut self, task: TaskId, status: u64) {
        if !matches!(self.tasks[task].state, State::Dead { .. }) {
            self.alive -= 1;
        }
        self.tasks[task].state = State::Dead { status };
        self.tasks[task].has_result = false;
        // A dead server owes nobody anything any more.
        self.tasks[task].owes = None;
        self.schedule.remove(task);
        for n in self.notifications.iter_mut() {
            if n.waiter == Some(task) {
                n.waiter = None;
            }
        }
        // Servers that asked learn which client died (by its badge).
        self.queue_deaths(task, status);
        for endpoint in self.endpoints.iter_mut() {
            endpoint.queue.retain(|&t| t != task);
        }
        let owned: Vec<EndpointId> = (0..self.endpoints.len()).filter(|&e| self.endpoints[e].owner == task).collect();
        let mut waiters = Vec::new();
        for e in owned {
            let endpoint = &mut self.endpoints[e];
            waiters.extend(endpoint.queue.drain(..));
            // Nobody will receive these.
            endpoint.reserved_notices -= endpoint.deaths.len();
            endpoint.deaths.clear();
        }
        waiters
            .extend((0..self.tasks.len()).filter(|&t| self.tasks[t].state == (State::AwaitingReply { server: task })));
        for t in waiters {
            self.wake(t, err(SysError::DeadPeer));
        }
    }

    /// Frees dead `task`'s slot for a new task ([`Ipc::add_task`]), once
    /// nothing refers to it: `false` (nothing changed) while it is alive,
    /// owns an endpoint others may hold, or a server owes it a reply. Its
    /// handles go (their notices were queued when it died), and its
    /// private endpoints with them.
    pub fn recycle(&mut self, task: TaskId) -> bool {
        let referred = !matches!(self.tasks[task].state, State::Dead { .. })
            || self.endpoints.iter().any(|e| e.owner == task && !e.private)
            || self.tasks.iter().any(|t| t.owes == Some(task))
            || self.free_slots.contains(&task);
        if referred {
            return false;
        }
        for e in 0..self.endpoints.len() {
            if self.endpoints[e].owner == task {
                // Private: nobody else held it, so nobody waits on it.
                self.endpoints[e].owner = NO_OWNER;
                self.free_endpoints.push(e);
            }
        }
        self.tasks[task].handles = Vec::new();
        self.free_slots.push(task);
        true
    }

    /// Tasks ever made, dead or alive (slots, recycled ones counted once).
    pub fn slots(&self) -> usize {
        self.tasks.len()
    }

    pub fn all_dead(&self) -> bool {
        self.alive == 0
    }

    /// The next task to run: the first ready one of the highest priority.
    pub fn next_to_run(&mut self) -> Option<TaskId> {
        self.schedule.next_for(0)
    }

    /// The next task `core` may run, taken out of the ready queues: the
    /// first ready one of the highest priority among those not pinned to
    /// another core.
    pub fn next_to_run_on(&mut self, core: usize) -> Option<TaskId> {
        self.schedule.next_for(core)
    }

    /// Restricts `task` to `core`.
    pub fn pin(&mut self, task: TaskId, core: usize) {
        self.schedule.pin(task, core);
    }

    pub fn priority(&self, task: TaskId) -> u8 {
        self.schedule.priority(task)
    }

    /// SET_PRIORITY: `task` runs at `priority` from now on, at most the
    /// priority it was started with (`InvalidArgument` above it, nothing
    /// changed).
    pub fn set_priority(&mut self, task: TaskId, priority: u64) -> Result<(), SysError> {
        let priority = u8::try_from(priority).map_err(|_| SysError::InvalidArgument)?;
        if self.schedule.set_priority(task, priority) { Ok(()) } else { Err(SysError::InvalidArgument) }
    }

    /// The highest priority among ready tasks that `core` may run.
    pub fn best_ready_for(&self, core: usize) -> Option<u8> {
        self.schedule.best_priority_for(core)
    }

    /// Whether any task is ready to run (on some core).
    pub fn any_ready(&self) -> bool {
        self.schedule.any_ready()
    }

    /// How many times a task became ready (woken or put back) after it was
    /// created: compared across a change, it tells whether other cores
    /// have news.
    pub fn readied(&self) -> u64 {
        self.schedule.readied()
    }

    /// Puts a task that was running and is still ready back in its queue.
    pub fn requeue(&mut self, task: TaskId) {
        if self.tasks[task].state == State::Ready {
            self.schedule.make_ready(task);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes one task's pending result with what comes with it.
    fn delivered(ipc: &mut Ipc, task: TaskId) -> Option<([u64; 6], Delivery)> {
        let mut got = None;
        let mut others = Vec::new();
        ipc.deliver_results(|t, r, d| if t == task { got = Some((*r, d)) } else { others.push(t) });
        assert!(others.is_empty(), "results for {others:?} too");
        got
    }

    #[test]
    fn long_message_forms_are_bounded() {
        assert_eq!(Form::long(0, 0), Ok(Form { sends: 0, accepts: 64, long: true }));
        assert_eq!(Form::long(64, 64), Ok(Form { sends: 64, accepts: 64, long: true }));
        assert_eq!(Form::long(65, 0), Err(SysError::InvalidArgument));
        assert_eq!(Form::long(u64::MAX, 0), Err(SysError::InvalidArgument));
        assert_eq!(Form::long(3, 1000).map(|f| f.accepts), Ok(64), "at most the longest message");
    }

    #[test]
    fn long_messages_arrive_whole_or_cut_to_what_the_receiver_accepts() {
        let mut ipc = Ipc::new();
        let (server, client) = (ipc.add_task(1), ipc.add_task(1));
        let ep = ipc.add_endpoint(server);
        let sh = ipc.grant(server, Object::Endpoint(ep), 0);
        let ch = ipc.grant(client, Object::Endpoint(ep), 9);
        // 64 words to a server that accepts 8: cut, TRUNCATED, x6 = 64,
        // and only words 4..8 are copied from the client's buffer.
        ipc.recv_long(server, sh, Form::long(0, 8).unwrap()).unwrap();
        ipc.call_long(client, ch, [1, 2, 3, 4], Form::long(64, 0).unwrap()).unwrap();
        let (r, d) = delivered(&mut ipc, server).unwrap();
        assert_eq!(r, [SysError::Truncated as u64, 1, 2, 3, 4, 9]);
        assert_eq!(d, Delivery { x6: Some(64), copy: Some((client, 8)) });
        // A 64-word reply to a client that accepts 64: whole.
        ipc.reply_recv_long(server, sh, [5, 6, 7, 8], Form::long(64, 0).unwrap()).unwrap();
        let (r, d) = delivered(&mut ipc, client).unwrap();
        assert_eq!(r, [0, 5, 6, 7, 8, 0]);
        assert_eq!(d, Delivery { x6: Some(64), copy: Some((server, 64)) });
        // A queued long call keeps its length until it is received.
        ipc.call_long(client, ch, [0; 4], Form::long(5, 0).unwrap()).unwrap();
        assert_eq!(ipc.state(client), State::AwaitingReply { server }, "the server was waiting");
        let (_, d) = delivered(&mut ipc, server).unwrap();
        assert_eq!(d, Delivery { x6: Some(5), copy: Some((client, 5)) });
        // A message that fits the registers never touches a buffer; length
        // zero neither.
        for sends in [0, 4] {
            ipc.reply_recv_long(server, sh, [0; 4], Form::long(sends, 0).unwrap()).unwrap();
            let (_, d) = delivered(&mut ipc, client).unwrap();
            assert_eq!(d, Delivery { x6: Some(sends), copy: None });
            ipc.call_long(client, ch, [0; 4], Form::long(sends, 0).unwrap()).unwrap();
            let (_, d) = delivered(&mut ipc, server).unwrap();
            assert_eq!(d, Delivery { x6: Some(sends), copy: None });
        }
    }

    #[test]
    fn short_forms_get_long_messages_cut_to_the_registers() {
        let mut ipc = Ipc::new();
        let (server, client) = (ipc.add_task(1), ipc.add_task(1));
        let ep = ipc.add_endpoint(server);
        let sh = ipc.grant(server, Object::Endpoint(ep), 0);
        let ch = ipc.grant(client, Object::Endpoint(ep), 0);
        ipc.recv(server, sh).unwrap();
        ipc.call_long(client, ch, [1, 2, 3, 4], Form::long(10, 0).unwrap()).unwrap();
        let (r, d) = delivered(&mut ipc, server).unwrap();
        assert_eq!(r[0], SysError::Truncated as u64);
        assert_eq!(d, Delivery { x6: None, copy: None }, "no x6 and no buffer for the short form");
        // Its reply is short: the long-form client sees 4 words sent.
        ipc.reply_recv(server, sh, [0; 4]).unwrap();
        assert_eq!(delivered(&mut ipc, client).unwrap().1, Delivery { x6: Some(4), copy: None });
    }

    #[test]
    fn all_dead_counts_each_task_once() {
        let mut ipc = Ipc::new();
        let (a, b) = (ipc.add_task(1), ipc.add_task(1));
        ipc.exit(a, 0);
        ipc.exit(a, 1);
        assert!(!ipc.all_dead(), "b still runs");
        ipc.exit(b, 0);
        assert!(ipc.all_dead());
    }

    #[test]
    fn results_are_delivered_once_each() {
        let mut ipc = Ipc::new();
        let server = ipc.add_task(2);
        let client = ipc.add_task(1);
        let e = ipc.add_endpoint(server);
        ipc.grant(server, Object::Endpoint(e), 0);
        ipc.grant(client, Object::Endpoint(e), 7);
        let other = ipc.add_task(1);
        let n = ipc.add_notification();
        let signal = ipc.grant(other, Object::Notification(n), 1);
        ipc.recv(server, 0).unwrap();
        ipc.call(client, 0, [1, 2, 3, 4]).unwrap();
        ipc.signal(other, signal).unwrap();
        ipc.signal(other, signal).unwrap(); // a second result for the same task: listed once
        let mut got = Vec::new();
        ipc.deliver_results(|t, r, _| got.push((t, *r)));
        got.sort();
        assert_eq!(got, [(server, [0, 1, 2, 3, 4, 7]), (other, [0; 6])]);
        ipc.deliver_results(|t, _, _| panic!("task {t} delivered twice"));
    }

    #[test]
    fn call_meets_a_waiting_server_and_the_reply_wakes_the_caller() {
        let mut ipc = Ipc::new();
        let (server, client) = (ipc.add_task(1), ipc.add_task(1));
        let ep = ipc.add_endpoint(server);
        let sh = ipc.grant(server, Object::Endpoint(ep), 0);
        let ch = ipc.grant(client, Object::Endpoint(ep), 0xbad6e);
        ipc.recv(server, sh).unwrap();
        assert_eq!(ipc.state(server), State::Receiving { endpoint: ep, deadline: None });
        ipc.call(client, ch, [1, 2, 3, 4]).unwrap();
        assert_eq!(ipc.state(client), State::AwaitingReply { server });
        assert_eq!(ipc.take_result(server), Some([0, 1, 2, 3, 4, 0xbad6e]));
        ipc.reply(server, [9, 8, 7, 6]).unwrap();
        assert_eq!(ipc.take_result(client), Some([0, 9, 8, 7, 6, 0]));
        assert_eq!(ipc.state(client), State::Ready);
    }

    #[test]
    fn callers_queue_in_order_and_badges_tell_them_apart() {
        let mut ipc = Ipc::new();
        let server = ipc.add_task(1);
        let ep = ipc.add_endpoint(server);
        let sh = ipc.grant(server, Object::Endpoint(ep), 0);
        let clients: Vec<TaskId> = (0..3).map(|_| ipc.add_task(1)).collect();
        for (i, &c) in clients.iter().enumerate() {
            let h = ipc.grant(c, Object::Endpoint(ep), 100 + i as u64);
            ipc.call(c, h, [i as u64, 0, 0, 0]).unwrap();
        }
        for i in 0..3u64 {
            ipc.reply_recv(server, sh, [i, 0, 0, 0]).unwrap();
            let r = ipc.take_result(server).unwrap();
            assert_eq!((r[1], r[5]), (i, 100 + i));
        }
    }

    #[test]
    fn errors_never_block() {
        let mut ipc = Ipc::new();
        let (server, client) = (ipc.add_task(1), ipc.add_task(1));
        let ep = ipc.add_endpoint(server);
        let ch = ipc.grant(client, Object::Endpoint(ep), 1);
        assert_eq!(ipc.call(client, 7, [0; 4]), Err(SysError::InvalidHandle));
        assert_eq!(ipc.recv(client, ch), Err(SysError::NotOwner));
        assert_eq!(ipc.reply(server, [0; 4]), Err(SysError::NoCaller));
        assert_eq!((ipc.take_result(client), ipc.take_result(server)), (None, None), "errors are returned");
        assert_eq!((ipc.state(client), ipc.state(server)), (State::Ready, State::Ready));
    }

    #[test]
    fn a_dying_server_releases_everyone_waiting_on_it() {
        let mut ipc = Ipc::new();
        let server = ipc.add_task(1);
        let ep = ipc.add_endpoint(server);
        let sh = ipc.grant(server, Object::Endpoint(ep), 0);
        let (a, b) = (ipc.add_task(1), ipc.add_task(1));
        let (ha, hb) = (ipc.grant(a, Object::Endpoint(ep), 1), ipc.grant(b, Object::Endpoint(ep), 2));
        ipc.call(a, ha, [0; 4]).unwrap();
        ipc.call(b, hb, [0; 4]).unwrap();
        ipc.recv(server, sh).unwrap(); // takes a; a awaits the reply, b stays queued
        ipc.exit(server, 3);
        for t in [a, b] {
            assert_eq!(ipc.take_result(t).map(|r| r[0]), Some(SysError::DeadPeer as u64));
            assert_eq!(ipc.state(t), State::Ready);
        }
        assert_eq!(ipc.call(a, ha, [0; 4]), Err(SysError::DeadPeer));
    }

    #[test]
    fn nonblocking_and_timed_receives_do_not_wait_forever() {
        let mut ipc = Ipc::new();
        let server = ipc.add_task(1);
        let ep = ipc.add_endpoint(server);
        let sh = ipc.grant(server, Object::Endpoint(ep), 0);
        assert_eq!(ipc.recv_nonblocking(server, sh), Err(SysError::WouldBlock));
        ipc.recv_timed(server, sh, 1000).unwrap();
        assert_eq!(ipc.expire(999), Some(1000));
        assert_eq!(ipc.state(server), State::Receiving { endpoint: ep, deadline: Some(1000) });
        assert_eq!(ipc.expire(1000), None);
        assert_eq!(ipc.take_result(server).map(|r| r[0]), Some(SysError::TimedOut as u64));
        assert_eq!(ipc.state(server), State::Ready);
    }

    /// The reply reaches the caller either way; a waiting request is taken
    /// at the server's own priority, and with none the server drops to the
    /// idle priority with `WouldBlock`. Errors change nothing.
    #[test]
    fn reply_poll_answers_then_takes_what_waits_or_steps_aside() {
        let mut ipc = Ipc::new();
        let server = ipc.add_task(5);
        let ep = ipc.add_endpoint(server);
        let sh = ipc.grant(server, Object::Endpoint(ep), 0);
        let (a, b) = (ipc.add_task(3), ipc.add_task(3));
        let (ha, hb) = (ipc.grant(a, Object::Endpoint(ep), 1), ipc.grant(b, Object::Endpoint(ep), 2));
        ipc.call(a, ha, [10, 0, 0, 0]).unwrap();
        ipc.call(b, hb, [20, 0, 0, 0]).unwrap();
        ipc.recv(server, sh).unwrap();
        assert_eq!(ipc.take_result(server).map(|r| (r[1], r[5])), Some((10, 1)));
        assert_eq!(ipc.reply_poll(server, sh, [0; 4], 6), Err(SysError::InvalidArgument), "above its own");
        assert_eq!(ipc.reply_poll(server, sh, [0; 4], 256), Err(SysError::InvalidArgument));
        assert_eq!(ipc.reply_poll(a, ha, [0; 4], 0), Err(SysError::NotOwner));
        assert_eq!(ipc.state(a), State::AwaitingReply { server }, "errors change nothing");
        // b waits: taken at once, the server keeps its priority.
        assert_eq!(ipc.reply_poll(server, sh, [11, 0, 0, 0], 0), Ok(true));
        assert_eq!(ipc.take_result(a).map(|r| r[1]), Some(11));
        assert_eq!(ipc.take_result(server).map(|r| (r[1], r[5])), Some((20, 2)));
        assert_eq!(ipc.priority(server), 5);
        // Nothing waits: answered, then the server steps aside.
        assert_eq!(ipc.reply_poll(server, sh, [21, 0, 0, 0], 0), Ok(false));
        assert_eq!(ipc.take_result(b).map(|r| r[1]), Some(21));
        assert_eq!(ipc.take_result(server).map(|r| r[0]), Some(SysError::WouldBlock as u64));
        assert_eq!((ipc.priority(server), ipc.state(server)), (0, State::Ready));
        ipc.requeue(server);
        assert_eq!(ipc.next_to_run(), Some(a), "the clients run first");
        assert_eq!(ipc.next_to_run(), Some(b));
        assert_eq!(ipc.next_to_run(), Some(server));
    }

    #[test]
    fn notifications_accumulate() {
        let mut ipc = Ipc::new();
        let (server, a) = (ipc.add_task(1), ipc.add_task(1));
        let n = ipc.add_notification();
        let nh = ipc.grant(server, Object::Notification(n), 0);
        let signal = ipc.grant(a, Object::Notification(n), 0b100);
        let other = ipc.grant(a, Object::Notification(n), 0b1);
        ipc.wait(server, nh).unwrap();
        assert_eq!(ipc.state(server), State::Waiting { notification: n });
        ipc.signal(a, signal).unwrap();
        assert_eq!(ipc.take_result(server).map(|r| r[1]), Some(0b100));
        ipc.signal(a, signal).unwrap();
        ipc.signal(a, other).unwrap();
        ipc.wait(server, nh).unwrap();
        assert_eq!(ipc.take_result(server).map(|r| r[1]), Some(0b101), "both badges");
        // Notification operations on an endpoint handle are refused.
        let ep = ipc.add_endpoint(server);
        let eh = ipc.grant(server, Object::Endpoint(ep), 0);
        assert_eq!(ipc.wait(server, eh), Err(SysError::WrongKind));
    }

    /// Deaths are queued, one notice per `recv`, with the badge and the exit
    /// status: any number of clients, whatever their badges (no bit each).
    #[test]
    fn deaths_reach_the_server_as_a_queue_one_per_receive() {
        let mut ipc = Ipc::new();
        let server = ipc.add_task(1);
        let ep = ipc.add_endpoint(server);
        ipc.notify_client_deaths(ep);
        let sh = ipc.grant(server, Object::Endpoint(ep), 0);
        let clients: Vec<TaskId> = (0..100).map(|_| ipc.add_task(1)).collect();
        for (i, &c) in clients.iter().enumerate() {
            ipc.grant(c, Object::Endpoint(ep), 1000 + i as u64);
        }
        assert_eq!(ipc.reserved_notices(ep), 100, "the server's own handle reserves none");
        for (i, &c) in clients.iter().enumerate() {
            ipc.exit(c, i as u64);
        }
        for i in 0..100u64 {
            ipc.recv(server, sh).unwrap();
            assert_eq!(ipc.take_result(server), Some([0, 1000 + i, i, 0, 0, DEATH_BADGE]));
            assert_eq!(ipc.caller_owed(server), None, "a notice owes no reply");
        }
        assert_eq!(ipc.reserved_notices(ep), 0);
        // A server waiting in recv is woken by the next death.
        let late = ipc.add_task(1);
        ipc.grant(late, Object::Endpoint(ep), 7);
        ipc.recv(server, sh).unwrap();
        assert!(matches!(ipc.state(server), State::Receiving { .. }));
        ipc.exit(late, 139);
        assert_eq!(ipc.take_result(server), Some([0, 7, 139, 0, 0, DEATH_BADGE]));
        // Reserved badges are never granted.
        let d = ipc.add_task(1);
        ipc.grant(d, Object::Endpoint(ep), DEATH_BADGE);
        ipc.exit(d, 0);
        ipc.recv(server, sh).unwrap();
        assert_eq!(ipc.take_result(server), Some([0, 0, 0, 0, 0, DEATH_BADGE]));
    }

    /// A server that never receives cannot make the kernel queue notices
    /// without bound: there is no room for the grant that would pass the
    /// bound, and there is again once notices are received.
    #[test]
    fn death_notices_are_bounded_by_reserving_them_at_grant() {
        let mut ipc = Ipc::new();
        let server = ipc.add_task(1);
        let ep = ipc.add_endpoint(server);
        ipc.notify_client_deaths(ep);
        let sh = ipc.grant(server, Object::Endpoint(ep), 0);
        let mut made = 0;
        loop {
            let c = ipc.add_task(1);
            if !ipc.has_notice_room(ep, 1) {
                ipc.exit(c, 0);
                break;
            }
            ipc.grant(c, Object::Endpoint(ep), made);
            ipc.exit(c, 0);
            assert!(ipc.recycle(c), "nothing refers to a dead client");
            made += 1;
        }
        assert_eq!(made as usize, MAX_DEATH_NOTICES);
        assert!(ipc.slots() < 4, "slots are recycled: {}", ipc.slots());
        ipc.recv(server, sh).unwrap();
        assert_eq!(ipc.take_result(server).map(|r| r[1]), Some(0), "the oldest notice first");
        let c = ipc.add_task(1);
        assert!(ipc.has_notice_room(ep, 1), "a received notice frees its place");
        ipc.grant(c, Object::Endpoint(ep), 5);
        // Notices to a dead owner go, with their reservations.
        ipc.exit(server, 0);
        assert_eq!(ipc.reserved_notices(ep), 1, "only the live client's handle");
        ipc.exit(c, 0);
        assert_eq!(ipc.reserved_notices(ep), 0);
    }

    /// A dead task's slot is recycled only when nothing refers to it: not
    /// while a server owes it a reply, never an endpoint's owner; the new
    /// task starts clean (no handles, its own priority, ready).
    #[test]
    fn a_dead_tasks_slot_is_recycled_only_when_nothing_refers_to_it() {
        let mut ipc = Ipc::new();
        let (server, client) = (ipc.add_task(3), ipc.add_task(1));
        let ep = ipc.add_endpoint(server);
        let sh = ipc.grant(server, Object::Endpoint(ep), 0);
        let ch = ipc.grant(client, Object::Endpoint(ep), 1);
        assert!(!ipc.recycle(client), "alive");
        ipc.recv(server, sh).unwrap();
        ipc.call(client, ch, [1, 0, 0, 0]).unwrap();
        ipc.exit(client, 9);
        assert!(!ipc.recycle(client), "the server owes it a reply");
        ipc.exit(server, 0);
        assert!(!ipc.recycle(server), "it owns an endpoint");
        assert!(ipc.recycle(client), "its server is dead: nobody owes it anything now");
        assert!(!ipc.recycle(client), "once");
        let fresh = ipc.add_task(2);
        assert_eq!(fresh, client, "the slot is reused");
        assert_eq!(ipc.state(fresh), State::Ready);
        assert_eq!(ipc.priority(fresh), 2);
        assert_eq!(ipc.call(fresh, ch, [0; 4]), Err(SysError::InvalidHandle), "no handle of the dead task");
        assert_eq!(ipc.next_to_run(), Some(fresh));
        assert!(!ipc.all_dead());
    }

    /// A task made at run time gets an endpoint of its own; it goes with
    /// its slot and the next such task reuses it, with nothing left in it.
    #[test]
    fn a_private_endpoint_goes_with_its_owners_slot() {
        let mut ipc = Ipc::new();
        let server = ipc.add_task(1);
        let shared = ipc.add_endpoint(server);
        let a = ipc.add_task(1);
        let own = ipc.add_private_endpoint(a);
        let ah = ipc.grant(a, Object::Endpoint(own), 0);
        ipc.recv_timed(a, ah, 100).unwrap();
        ipc.expire(100);
        assert_eq!(ipc.take_result(a).map(|r| r[0]), Some(SysError::TimedOut as u64), "a timed receive of its own");
        ipc.exit(a, 0);
        assert!(ipc.recycle(a), "a private endpoint does not keep the slot");
        let b = ipc.add_task(1);
        assert_eq!(ipc.add_private_endpoint(b), own, "reused");
        assert_eq!(ipc.endpoints.len(), 2);
        let bh = ipc.grant(b, Object::Endpoint(own), 0);
        assert_eq!(ipc.recv_nonblocking(b, bh), Err(SysError::WouldBlock), "nothing queued in it");
        // The server's shared endpoint keeps its slot.
        ipc.exit(server, 0);
        assert!(!ipc.recycle(server));
        assert_eq!(ipc.endpoints[shared].owner, server);
    }

    #[test]
    fn pinned_tasks_run_only_on_their_core() {
        let mut ipc = Ipc::new();
        let (a, b) = (ipc.add_task(1), ipc.add_task(9));
        ipc.pin(b, 2);
        assert_eq!(ipc.next_to_run_on(0), Some(a), "b is pinned to core 2 despite its priority");
        assert_eq!(ipc.next_to_run_on(0), None);
        assert!(ipc.any_ready());
        assert_eq!(ipc.next_to_run_on(2), Some(b));
    }

    #[test]
    fn higher_priority_runs_first_fifo_within_one() {
        let mut ipc = Ipc::new();
        let low = ipc.add_task(1);
        let high1 = ipc.add_task(5);
        let high2 = ipc.add_task(5);
        assert_eq!(ipc.next_to_run(), Some(high1));
        assert_eq!(ipc.next_to_run(), Some(high2));
        assert_eq!(ipc.next_to_run(), Some(low));
        assert_eq!(ipc.next_to_run(), None);
        ipc.requeue(low);
        assert_eq!(ipc.next_to_run(), Some(low));
    }

    /// A task lowers itself below others and raises itself back, never
    /// above the priority it was started with; a queued task moves to its
    /// new priority's queue.
    #[test]
    fn a_task_sets_its_own_priority_up_to_the_one_it_started_with() {
        let mut ipc = Ipc::new();
        let server = ipc.add_task(5);
        let client = ipc.add_task(3);
        assert_eq!(ipc.set_priority(server, 6), Err(SysError::InvalidArgument));
        assert_eq!(ipc.set_priority(server, 256), Err(SysError::InvalidArgument));
        assert_eq!(ipc.priority(server), 5);
        ipc.set_priority(server, 0).unwrap();
        assert_eq!(ipc.priority(server), 0);
        assert_eq!(ipc.next_to_run(), Some(client));
        assert_eq!(ipc.next_to_run(), Some(server));
        ipc.requeue(server);
        ipc.requeue(client);
        ipc.set_priority(server, 5).unwrap();
        assert_eq!(ipc.next_to_run(), Some(server), "back at its own priority, ahead of the client");
        assert_eq!(ipc.next_to_run(), Some(client));
        assert_eq!(ipc.next_to_run(), None);
    }

    #[test]
    fn a_bound_notification_wakes_the_receiving_owner_and_comes_before_callers() {
        let mut ipc = Ipc::new();
        let (server, a, b) = (ipc.add_task(1), ipc.add_task(1), ipc.add_task(1));
        let ep = ipc.add_endpoint(server);
        let n = ipc.add_notification();
        ipc.bind_notification(ep, n);
        let sh = ipc.grant(server, Object::Endpoint(ep), 0);
        let ah = ipc.grant(a, Object::Notification(n), 0b01);
        let bh = ipc.grant(b, Object::Endpoint(ep), NOTIFICATION_BADGE);
        // Blocked in recv: a signal wakes the server with the word.
        ipc.recv(server, sh).unwrap();
        ipc.signal(a, ah).unwrap();
        assert_eq!(ipc.state(server), State::Ready);
        assert_eq!(ipc.take_result(server), Some([0, 0b01, 0, 0, 0, NOTIFICATION_BADGE]));
        assert_eq!(ipc.caller_owed(server), None);
        // A pending word is delivered before a queued caller, then the call.
        ipc.call(b, bh, [7, 0, 0, 0]).unwrap();
        ipc.raise(n, 0b100);
        ipc.recv(server, sh).unwrap();
        assert_eq!(ipc.take_result(server), Some([0, 0b100, 0, 0, 0, NOTIFICATION_BADGE]));
        ipc.recv(server, sh).unwrap();
        // The reserved badge was never granted: b's handle carries 0.
        assert_eq!(ipc.take_result(server), Some([0, 7, 0, 0, 0, 0]));
        assert_eq!(ipc.caller_owed(server), Some(b));
    }

    #[test]
    fn the_best_ready_priority_respects_pinning() {
        let mut ipc = Ipc::new();
        let (a, b, c) = (ipc.add_task(1), ipc.add_task(3), ipc.add_task(2));
        ipc.pin(b, 1);
        assert_eq!(ipc.best_ready_for(0), Some(2));
        assert_eq!(ipc.best_ready_for(1), Some(3));
        assert_eq!(ipc.priority(a), 1);
        let _ = (ipc.next_to_run_on(1), ipc.next_to_run_on(0), ipc.next_to_run_on(0));
        assert_eq!(ipc.best_ready_for(1), None);
        let _ = c;
    }
}
