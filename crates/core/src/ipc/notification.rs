//! Notifications: `signal` and `wait`, and binding to an endpoint, as the
//! module docs of [`super`] define them.
//!
//! Owns: each notification's word and its one waiter, and which endpoint
//! a notification is bound to.
//! Must never: block in `signal`.

use super::{EndpointId, Ipc, MSG_WORDS, NOTIFICATION_BADGE, Notification, State, SysError, TaskId, ok};

impl Ipc {
    pub fn add_notification(&mut self) -> usize {
        self.notifications.push(Notification { word: 0, waiter: None, bound_to: None });
        self.notifications.len() - 1
    }

    /// Binds `notification` to `endpoint`: the endpoint's owner receives
    /// the word in `recv` (see the module docs).
    pub fn bind_notification(&mut self, endpoint: EndpointId, notification: usize) {
        self.notifications[notification].bound_to = Some(endpoint);
    }

    /// The word of a notification bound to `endpoint`, taken, if non-zero.
    pub(super) fn take_bound_word(&mut self, endpoint: EndpointId) -> Option<u64> {
        let n = self.notifications.iter_mut().find(|n| n.bound_to == Some(endpoint) && n.word != 0)?;
        Some(core::mem::take(&mut n.word))
    }

    /// ORs the handle's badge into its notification's word, waking a waiter.
    pub fn signal(&mut self, task: TaskId, handle: u64) -> Result<(), SysError> {
        let (n, badge) = self.notification_of(task, handle)?;
        self.raise(n, badge);
        self.set_result(task, ok([0; MSG_WORDS], 0));
        Ok(())
    }

    pub(super) fn raise(&mut self, n: usize, bits: u64) {
        let notification = &mut self.notifications[n];
        notification.word |= bits;
        if let Some(waiter) = notification.waiter.take() {
            let word = core::mem::take(&mut notification.word);
            self.wake(waiter, ok([word, 0, 0, 0], 0));
        } else if let Some(endpoint) = notification.bound_to {
            let owner = self.endpoints[endpoint].owner;
            if matches!(self.tasks[owner].state, State::Receiving { endpoint: e, .. } if e == endpoint) {
                let word = core::mem::take(&mut self.notifications[n].word);
                self.wake(owner, ok([word, 0, 0, 0], NOTIFICATION_BADGE));
            }
        }
    }

    /// Takes the notification's word, or waits until it is non-zero.
    /// A second waiter fails with `WouldBlock` (one waiter per word).
    pub fn wait(&mut self, task: TaskId, handle: u64) -> Result<(), SysError> {
        let (n, _) = self.notification_of(task, handle)?;
        let notification = &mut self.notifications[n];
        if notification.word != 0 {
            let word = core::mem::take(&mut notification.word);
            self.set_result(task, ok([word, 0, 0, 0], 0));
        } else if notification.waiter.is_some() {
            return Err(SysError::WouldBlock);
        } else {
            notification.waiter = Some(task);
            self.block(task, State::Waiting { notification: n });
        }
        Ok(())
    }
}
