//! Endpoints: `call`, `recv` (blocking, polling, timed), `reply`,
//! `reply_recv` and `reply_poll`, as the module docs of [`super`] define
//! them.
//!
//! Owns: the rendezvous of a caller and an endpoint's owner, the queue of
//! callers on each endpoint, the reply owed, and timed receives' deadlines.
//! Must never: block a task on an error, or let any task but the owner
//! receive.

use super::{Form, Ipc, MSG_WORDS, Message, NOTIFICATION_BADGE, State, SysError, TaskId, err, ok};

/// How long a receive may wait.
#[derive(Clone, Copy)]
enum Wait {
    Never,
    Forever,
    Until(u64),
}

impl Ipc {
    /// Errors (nothing changed, the caller keeps running) are returned;
    /// otherwise the caller blocks until the reply.
    pub fn call(&mut self, caller: TaskId, handle: u64, msg: Message) -> Result<(), SysError> {
        self.call_long(caller, handle, msg, Form::SHORT)
    }

    /// `call` in `form`: a long message's words past the registers are in
    /// the caller's IPC buffer, and the reply may be long too.
    pub fn call_long(&mut self, caller: TaskId, handle: u64, msg: Message, form: Form) -> Result<(), SysError> {
        let (endpoint, badge) = self.endpoint_of(caller, handle)?;
        let server = self.endpoints[endpoint].owner;
        if matches!(self.tasks[server].state, State::Dead { .. }) {
            return Err(SysError::DeadPeer);
        }
        self.set_form(caller, form);
        if matches!(self.tasks[server].state, State::Receiving { endpoint: e, .. } if e == endpoint) {
            self.tasks[server].owes = Some(caller);
            self.wake_with_message(server, caller, msg, form.sends, badge);
            self.block(caller, State::AwaitingReply { server });
        } else {
            self.endpoints[endpoint].queue.push_back(caller);
            self.block(caller, State::Sending { endpoint, badge, msg });
        }
        Ok(())
    }

    pub fn recv(&mut self, task: TaskId, handle: u64) -> Result<(), SysError> {
        self.recv_with(task, handle, Wait::Forever, Form::SHORT)
    }

    /// `recv` in `form` (only what it accepts matters).
    pub fn recv_long(&mut self, task: TaskId, handle: u64, form: Form) -> Result<(), SysError> {
        self.recv_with(task, handle, Wait::Forever, form)
    }

    /// `recv` that returns `WouldBlock` instead of waiting.
    pub fn recv_nonblocking(&mut self, task: TaskId, handle: u64) -> Result<(), SysError> {
        self.recv_with(task, handle, Wait::Never, Form::SHORT)
    }

    /// `recv` that gives up with `TimedOut` at `deadline` (see [`Ipc::expire`]).
    pub fn recv_timed(&mut self, task: TaskId, handle: u64, deadline: u64) -> Result<(), SysError> {
        self.recv_with(task, handle, Wait::Until(deadline), Form::SHORT)
    }

    /// A message (or a bound notification's word) at once is the task's
    /// result; with none it blocks, or fails with `WouldBlock`.
    fn recv_with(&mut self, task: TaskId, handle: u64, wait: Wait, form: Form) -> Result<(), SysError> {
        let (endpoint, _) = self.endpoint_of(task, handle)?;
        if self.endpoints[endpoint].owner != task {
            return Err(SysError::NotOwner);
        }
        self.set_form(task, form);
        if let Some(word) = self.take_bound_word(endpoint) {
            self.set_result(task, ok([word, 0, 0, 0], NOTIFICATION_BADGE));
            return Ok(());
        }
        if let Some(notice) = self.take_death(endpoint) {
            self.set_result(task, notice);
            return Ok(());
        }
        match self.endpoints[endpoint].queue.pop_front() {
            Some(caller) => {
                let State::Sending { badge, msg, .. } = self.tasks[caller].state else {
                    return Err(SysError::DeadPeer);
                };
                self.tasks[caller].state = State::AwaitingReply { server: task };
                self.tasks[task].owes = Some(caller);
                let sends = self.tasks[caller].sending;
                self.set_message(task, caller, msg, sends, badge);
            }
            None => match wait {
                Wait::Never => return Err(SysError::WouldBlock),
                Wait::Forever => self.block(task, State::Receiving { endpoint, deadline: None }),
                Wait::Until(deadline) => self.block(task, State::Receiving { endpoint, deadline: Some(deadline) }),
            },
        }
        Ok(())
    }

    /// Wakes every timed receive whose deadline is at or before `now` with
    /// `TimedOut`. Returns the earliest deadline still pending.
    pub fn expire(&mut self, now: u64) -> Option<u64> {
        let mut earliest = None;
        for t in 0..self.tasks.len() {
            if let State::Receiving { deadline: Some(d), .. } = self.tasks[t].state {
                if d <= now {
                    self.wake(t, err(SysError::TimedOut));
                } else {
                    earliest = Some(earliest.map_or(d, |e: u64| e.min(d)));
                }
            }
        }
        earliest
    }

    pub fn reply(&mut self, server: TaskId, msg: Message) -> Result<(), SysError> {
        match self.tasks[server].owes.take() {
            Some(caller) if self.tasks[caller].state == (State::AwaitingReply { server }) => {
                self.wake_with_message(caller, server, msg, Form::SHORT.sends, 0);
                self.set_result(server, ok([0; MSG_WORDS], 0));
                Ok(())
            }
            _ => Err(SysError::NoCaller),
        }
    }

    /// `reply` (if a call is owed) then `recv`: an error is the receive's.
    pub fn reply_recv(&mut self, server: TaskId, handle: u64, msg: Message) -> Result<(), SysError> {
        self.reply_recv_long(server, handle, msg, Form::SHORT)
    }

    /// `reply_recv` in `form`: the reply sends `form.sends` words, the
    /// receive accepts `form.accepts`.
    pub fn reply_recv_long(&mut self, server: TaskId, handle: u64, msg: Message, form: Form) -> Result<(), SysError> {
        if let Some(caller) = self.tasks[server].owes.take()
            && self.tasks[caller].state == (State::AwaitingReply { server })
        {
            self.wake_with_message(caller, server, msg, form.sends, 0);
        }
        self.recv_with(server, handle, Wait::Forever, form)
    }

    /// REPLY_POLL: `reply` (if a call is owed), then a message that already
    /// waits, as `recv_nonblocking`. With none, `server` drops to
    /// `idle_priority` and gets `WouldBlock` as its result: `Ok(false)`,
    /// and it should yield. Errors (a handle it does not hold or an
    /// endpoint it does not own, a priority above the one it started with)
    /// change nothing.
    pub fn reply_poll(
        &mut self,
        server: TaskId,
        handle: u64,
        msg: Message,
        idle_priority: u64,
    ) -> Result<bool, SysError> {
        let (endpoint, _) = self.endpoint_of(server, handle)?;
        if self.endpoints[endpoint].owner != server {
            return Err(SysError::NotOwner);
        }
        let idle = u8::try_from(idle_priority).ok().filter(|&p| self.schedule.allows(server, p));
        let idle = idle.ok_or(SysError::InvalidArgument)?;
        if let Some(caller) = self.tasks[server].owes.take()
            && self.tasks[caller].state == (State::AwaitingReply { server })
        {
            self.wake_with_message(caller, server, msg, Form::SHORT.sends, 0);
        }
        match self.recv_with(server, handle, Wait::Never, Form::SHORT) {
            Err(SysError::WouldBlock) => {
                self.schedule.set_priority(server, idle);
                self.set_result(server, err(SysError::WouldBlock));
                Ok(false)
            }
            r => r.map(|()| true),
        }
    }

    /// The client `server` owes a reply to, if it is still waiting for it.
    pub fn caller_owed(&self, server: TaskId) -> Option<TaskId> {
        self.tasks[server].owes.filter(|&c| self.tasks[c].state == (State::AwaitingReply { server }))
    }
}
