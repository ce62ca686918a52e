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
//! - Scheduling: one ready queue, FIFO within a priority, higher priority
//!   first.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

pub type TaskId = usize;
pub type EndpointId = usize;
/// Message words in registers.
pub const MSG_WORDS: usize = 4;
pub type Message = [u64; MSG_WORDS];

/// Status codes returned in x0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum IpcError {
    InvalidHandle = 1,
    NotOwner = 2,
    NoCaller = 3,
    DeadPeer = 4,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Ready,
    /// Queued on an endpoint with its message, waiting for the owner.
    Sending {
        endpoint: EndpointId,
        badge: u64,
        msg: Message,
    },
    /// Waiting in `recv` on an endpoint it owns.
    Receiving {
        endpoint: EndpointId,
    },
    /// Its call was received; waiting for the reply.
    AwaitingReply {
        server: TaskId,
    },
    Dead {
        status: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handle {
    pub endpoint: EndpointId,
    pub badge: u64,
}

struct Task {
    state: State,
    priority: u8,
    handles: Vec<Handle>,
    /// The caller this task owes a reply to.
    owes: Option<TaskId>,
    /// Registers to load when it next runs.
    result: Option<[u64; 6]>,
}

struct Endpoint {
    owner: TaskId,
    queue: VecDeque<TaskId>,
}

#[derive(Default)]
pub struct Ipc {
    tasks: Vec<Task>,
    endpoints: Vec<Endpoint>,
    ready: VecDeque<TaskId>,
}

fn ok(msg: Message, badge: u64) -> [u64; 6] {
    [0, msg[0], msg[1], msg[2], msg[3], badge]
}

fn err(e: IpcError) -> [u64; 6] {
    [e as u64, 0, 0, 0, 0, 0]
}

impl Ipc {
    pub fn new() -> Ipc {
        Ipc::default()
    }

    /// A new ready task.
    pub fn add_task(&mut self, priority: u8) -> TaskId {
        self.tasks.push(Task { state: State::Ready, priority, handles: Vec::new(), owes: None, result: None });
        let id = self.tasks.len() - 1;
        self.ready.push_back(id);
        id
    }

    pub fn add_endpoint(&mut self, owner: TaskId) -> EndpointId {
        self.endpoints.push(Endpoint { owner, queue: VecDeque::new() });
        self.endpoints.len() - 1
    }

    /// Gives `task` a handle to `endpoint` carrying `badge`; returns its number.
    pub fn grant(&mut self, task: TaskId, endpoint: EndpointId, badge: u64) -> u64 {
        self.tasks[task].handles.push(Handle { endpoint, badge });
        self.tasks[task].handles.len() as u64 - 1
    }

    pub fn state(&self, task: TaskId) -> State {
        self.tasks[task].state
    }

    /// The registers `task` should see when it resumes, if any changed.
    pub fn take_result(&mut self, task: TaskId) -> Option<[u64; 6]> {
        self.tasks[task].result.take()
    }

    fn handle(&self, task: TaskId, handle: u64) -> Option<Handle> {
        usize::try_from(handle).ok().and_then(|h| self.tasks[task].handles.get(h).copied())
    }

    fn wake(&mut self, task: TaskId, result: [u64; 6]) {
        let t = &mut self.tasks[task];
        if matches!(t.state, State::Dead { .. }) {
            return;
        }
        t.state = State::Ready;
        t.result = Some(result);
        self.ready.push_back(task);
    }

    /// Fails a system call without blocking: the task keeps running.
    fn fail(&mut self, task: TaskId, e: IpcError) {
        self.tasks[task].result = Some(err(e));
    }

    /// Blocks the running `task`.
    fn block(&mut self, task: TaskId, state: State) {
        self.tasks[task].state = state;
    }

    pub fn call(&mut self, caller: TaskId, handle: u64, msg: Message) {
        let Some(h) = self.handle(caller, handle) else { return self.fail(caller, IpcError::InvalidHandle) };
        let server = self.endpoints[h.endpoint].owner;
        if matches!(self.tasks[server].state, State::Dead { .. }) {
            return self.fail(caller, IpcError::DeadPeer);
        }
        if self.tasks[server].state == (State::Receiving { endpoint: h.endpoint }) {
            self.tasks[server].owes = Some(caller);
            self.wake(server, ok(msg, h.badge));
            self.block(caller, State::AwaitingReply { server });
        } else {
            self.endpoints[h.endpoint].queue.push_back(caller);
            self.block(caller, State::Sending { endpoint: h.endpoint, badge: h.badge, msg });
        }
    }

    pub fn recv(&mut self, task: TaskId, handle: u64) {
        let Some(h) = self.handle(task, handle) else { return self.fail(task, IpcError::InvalidHandle) };
        if self.endpoints[h.endpoint].owner != task {
            return self.fail(task, IpcError::NotOwner);
        }
        match self.endpoints[h.endpoint].queue.pop_front() {
            Some(caller) => {
                let State::Sending { badge, msg, .. } = self.tasks[caller].state else {
                    return self.fail(task, IpcError::DeadPeer);
                };
                self.tasks[caller].state = State::AwaitingReply { server: task };
                self.tasks[task].owes = Some(caller);
                self.tasks[task].result = Some(ok(msg, badge));
            }
            None => self.block(task, State::Receiving { endpoint: h.endpoint }),
        }
    }

    pub fn reply(&mut self, server: TaskId, msg: Message) {
        match self.tasks[server].owes.take() {
            Some(caller) if self.tasks[caller].state == (State::AwaitingReply { server }) => {
                self.wake(caller, ok(msg, 0));
                self.tasks[server].result = Some(ok([0; MSG_WORDS], 0));
            }
            _ => self.fail(server, IpcError::NoCaller),
        }
    }

    pub fn reply_recv(&mut self, server: TaskId, handle: u64, msg: Message) {
        if let Some(caller) = self.tasks[server].owes.take()
            && self.tasks[caller].state == (State::AwaitingReply { server })
        {
            self.wake(caller, ok(msg, 0));
        }
        self.recv(server, handle);
    }

    /// Ends `task`; whoever waits on it learns it died.
    pub fn exit(&mut self, task: TaskId, status: u64) {
        self.tasks[task].state = State::Dead { status };
        self.tasks[task].result = None;
        self.ready.retain(|&t| t != task);
        for endpoint in self.endpoints.iter_mut() {
            endpoint.queue.retain(|&t| t != task);
        }
        let owned: Vec<EndpointId> = (0..self.endpoints.len()).filter(|&e| self.endpoints[e].owner == task).collect();
        let mut waiters = Vec::new();
        for e in owned {
            waiters.extend(self.endpoints[e].queue.drain(..));
        }
        waiters
            .extend((0..self.tasks.len()).filter(|&t| self.tasks[t].state == (State::AwaitingReply { server: task })));
        for t in waiters {
            self.wake(t, err(IpcError::DeadPeer));
        }
    }

    /// The next task to run: the first ready one of the highest priority.
    pub fn next_to_run(&mut self) -> Option<TaskId> {
        let best = self.ready.iter().map(|&t| self.tasks[t].priority).max()?;
        let i = self.ready.iter().position(|&t| self.tasks[t].priority == best)?;
        self.ready.remove(i)
    }

    /// Puts a task that was running and is still ready back in the queue.
    pub fn requeue(&mut self, task: TaskId) {
        if self.tasks[task].state == State::Ready && !self.ready.contains(&task) {
            self.ready.push_back(task);
        }
    }

    pub fn all_dead(&self) -> bool {
        self.tasks.iter().all(|t| matches!(t.state, State::Dead { .. }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_meets_a_waiting_server_and_the_reply_wakes_the_caller() {
        let mut ipc = Ipc::new();
        let (server, client) = (ipc.add_task(1), ipc.add_task(1));
        let ep = ipc.add_endpoint(server);
        let sh = ipc.grant(server, ep, 0);
        let ch = ipc.grant(client, ep, 0xbad6e);
        ipc.recv(server, sh);
        assert_eq!(ipc.state(server), State::Receiving { endpoint: ep });
        ipc.call(client, ch, [1, 2, 3, 4]);
        assert_eq!(ipc.state(client), State::AwaitingReply { server });
        assert_eq!(ipc.take_result(server), Some([0, 1, 2, 3, 4, 0xbad6e]));
        ipc.reply(server, [9, 8, 7, 6]);
        assert_eq!(ipc.take_result(client), Some([0, 9, 8, 7, 6, 0]));
        assert_eq!(ipc.state(client), State::Ready);
    }

    #[test]
    fn callers_queue_in_order_and_badges_tell_them_apart() {
        let mut ipc = Ipc::new();
        let server = ipc.add_task(1);
        let ep = ipc.add_endpoint(server);
        let sh = ipc.grant(server, ep, 0);
        let clients: Vec<TaskId> = (0..3).map(|_| ipc.add_task(1)).collect();
        for (i, &c) in clients.iter().enumerate() {
            let h = ipc.grant(c, ep, 100 + i as u64);
            ipc.call(c, h, [i as u64, 0, 0, 0]);
        }
        for i in 0..3u64 {
            ipc.reply_recv(server, sh, [i, 0, 0, 0]);
            let r = ipc.take_result(server).unwrap();
            assert_eq!((r[1], r[5]), (i, 100 + i));
        }
    }

    #[test]
    fn errors_never_block() {
        let mut ipc = Ipc::new();
        let (server, client) = (ipc.add_task(1), ipc.add_task(1));
        let ep = ipc.add_endpoint(server);
        let ch = ipc.grant(client, ep, 1);
        ipc.call(client, 7, [0; 4]);
        assert_eq!(ipc.take_result(client).map(|r| r[0]), Some(IpcError::InvalidHandle as u64));
        ipc.recv(client, ch);
        assert_eq!(ipc.take_result(client).map(|r| r[0]), Some(IpcError::NotOwner as u64));
        ipc.reply(server, [0; 4]);
        assert_eq!(ipc.take_result(server).map(|r| r[0]), Some(IpcError::NoCaller as u64));
        assert_eq!((ipc.state(client), ipc.state(server)), (State::Ready, State::Ready));
    }

    #[test]
    fn a_dying_server_releases_everyone_waiting_on_it() {
        let mut ipc = Ipc::new();
        let server = ipc.add_task(1);
        let ep = ipc.add_endpoint(server);
        let sh = ipc.grant(server, ep, 0);
        let (a, b) = (ipc.add_task(1), ipc.add_task(1));
        let (ha, hb) = (ipc.grant(a, ep, 1), ipc.grant(b, ep, 2));
        ipc.call(a, ha, [0; 4]);
        ipc.call(b, hb, [0; 4]);
        ipc.recv(server, sh); // takes a; a awaits the reply, b stays queued
        ipc.exit(server, 3);
        for t in [a, b] {
            assert_eq!(ipc.take_result(t).map(|r| r[0]), Some(IpcError::DeadPeer as u64));
            assert_eq!(ipc.state(t), State::Ready);
        }
        ipc.call(a, ha, [0; 4]);
        assert_eq!(ipc.take_result(a).map(|r| r[0]), Some(IpcError::DeadPeer as u64));
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
}
