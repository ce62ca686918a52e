//! Death notices: how a server learns that a client died, as the module
//! docs of [`super`] define them.
//!
//! Owns: which endpoints' owners asked for death notices, each such
//! endpoint's queue of notices (the dead client's badge and exit status),
//! and the bound on that queue.
//! Must never: lose a notice, or let a queue grow past
//! [`MAX_DEATH_NOTICES`]: a notice is reserved when the handle that will
//! cause it is granted, and whoever grants at run time checks
//! [`Ipc::has_notice_room`] first (the kernel's SPAWN fails with
//! `OutOfMemory`, charged to the launcher).

use super::{EndpointId, Handle, Ipc, Object, State, TaskId, ok};

/// The badge `recv` reports for a death notice (x1 = the dead client's
/// badge, x2 = its exit status); never granted.
pub const DEATH_BADGE: u64 = folio_abi::ipc::DEATH_BADGE;

/// Handles to one endpoint with death notices that may be alive or whose
/// notice waits to be received: past this, granting another fails.
pub const MAX_DEATH_NOTICES: usize = 1024;

impl Ipc {
    /// The owner of `endpoint` asks for a notice (one per `recv`) each time
    /// a task holding a handle to it dies.
    pub fn notify_client_deaths(&mut self, endpoint: EndpointId) {
        self.endpoints[endpoint].death_notices = true;
    }

    /// Whether `wanted` more handles to `endpoint` may be granted to
    /// clients: always where it gives no death notices.
    pub fn has_notice_room(&self, endpoint: EndpointId, wanted: usize) -> bool {
        let e = &self.endpoints[endpoint];
        !e.death_notices || e.reserved_notices + wanted <= MAX_DEATH_NOTICES
    }

    /// Reserves a notice for a handle just granted to `task`, if its
    /// endpoint gives them (the owner's own handles cause none).
    pub(super) fn reserve_notice(&mut self, task: TaskId, handle: &Handle) {
        if let Object::Endpoint(e) = handle.object {
            let endpoint = &mut self.endpoints[e];
            if endpoint.death_notices && endpoint.owner != task {
                endpoint.reserved_notices += 1;
            }
        }
    }

    /// `task` died with `status`: each endpoint it held a handle to, with
    /// notices on, gets one notice per handle, delivered at once to an
    /// owner waiting in `recv` on it.
    pub(super) fn queue_deaths(&mut self, task: TaskId, status: u64) {
        for i in 0..self.tasks[task].handles.len() {
            let Handle { object: Object::Endpoint(e), badge } = self.tasks[task].handles[i] else { continue };
            let endpoint = &mut self.endpoints[e];
            if !endpoint.death_notices || endpoint.owner == task {
                continue;
            }
            let owner = endpoint.owner;
            if matches!(self.tasks[owner].state, State::Dead { .. }) {
                // Nobody will receive it: the reservation goes.
                endpoint.reserved_notices -= 1;
                continue;
            }
            endpoint.deaths.push_back((badge, status));
            if matches!(self.tasks[owner].state, State::Receiving { endpoint: r, .. } if r == e)
                && let Some(result) = self.take_death(e)
            {
                self.wake(owner, result);
            }
        }
    }

    /// The first notice queued on `endpoint`, as `recv`'s result.
    pub(super) fn take_death(&mut self, endpoint: EndpointId) -> Option<[u64; 6]> {
        let e = &mut self.endpoints[endpoint];
        let (badge, status) = e.deaths.pop_front()?;
        e.reserved_notices -= 1;
        Some(ok([badge, status, 0, 0], DEATH_BADGE))
    }

    /// Whether a notice waits on `endpoint` (a receive would not block).
    pub(super) fn death_pending(&self, endpoint: EndpointId) -> bool {
        !self.endpoints[endpoint].deaths.is_empty()
    }

    /// Notices reserved on `endpoint`: its clients' live handles plus the
    /// notices not yet received.
    pub fn reserved_notices(&self, endpoint: EndpointId) -> usize {
        self.endpoints[endpoint].reserved_notices
    }
}
