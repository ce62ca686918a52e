//! The kernel's one lock primitive: a ticket spin lock, and the rule for
//! every lock in the kernel.
//!
//! Owns: mutual exclusion with FIFO fairness. Must never: be used with the
//! MMU off (exclusive accesses on Device memory are not safe on a real
//! Cortex-A72), or be held across a context switch.
//!
//! # Locking rule
//!
//! The kernel runs with interrupts masked (IRQs are taken only from EL0),
//! so no lock is ever re-entered by an interrupt on the same core. What is
//! shared, and which lock guards it, in the only order they may nest
//! (outer first):
//!
//! 1. `task::SYSTEM` (tasks and their trees, IPC state, scheduler, the
//!    ASID allocator, the memory calls' grants): held by the EL0 trap
//!    handler for one system call or interrupt, and by the boot core's
//!    test agent for one step; dropped before leaving task mode. An ASID
//!    rollover's broadcast flush happens under it, so no core switches to
//!    an old value meanwhile.
//! 2. `mmu::KERNEL_TABLES` (the TTBR1 tree): held for one engine operation.
//! 3. `frame::KERNEL_FRAMES` (the frame pool): taken inside the engine to
//!    allocate or free a table frame; never held while calling the engine.
//! 4. Leaves, which take no other lock: `drivers::gic::GIC`,
//!    `early_map`'s window lock, `exception`'s caught-fault slots,
//!    `console` (the console and its clock; a fault or panic report
//!    bypasses a held console lock rather than wait).
//!
//! Per core, touched only by that core (or under `SYSTEM` where it lives
//! there): the stack, the trap frame of the task it runs (on its stack,
//! registers and FP/SIMD state), the boot record of a secondary
//! (`smp.rs`), its virtual timer, its GIC CPU interface or redistributor,
//! its MPIDR slot (`task::CORE_MPIDR`, written once), and, in `SYSTEM`,
//! its current task and saved kernel context. Cross-core signals take no
//! lock: SEV with the `task::WORK` counter for idle cores, the reschedule
//! SGI (sent under `SYSTEM`, GIC lock as a leaf) for busy ones.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering};

pub struct SpinLock<T> {
    next_ticket: AtomicU32,
    now_serving: AtomicU32,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out at most one guard at a time, so sharing the lock
// across threads gives each access exclusive use of `T`, which needs `T: Send`.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub const fn new(value: T) -> Self {
        SpinLock { next_ticket: AtomicU32::new(0), now_serving: AtomicU32::new(0), value: UnsafeCell::new(value) }
    }

    pub fn lock(&self) -> SpinLockGuard<'_, T> {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        while self.now_serving.load(Ordering::Acquire) != ticket {
            core::hint::spin_loop();
        }
        SpinLockGuard { lock: self }
    }

    /// The protected value, bypassing the lock. Dereferencing it is only
    /// sound when the holder of the lock cannot run (see `console`).
    pub fn as_ptr(&self) -> *mut T {
        self.value.get()
    }

    /// Takes the lock only if nobody holds it.
    pub fn try_lock(&self) -> Option<SpinLockGuard<'_, T>> {
        let serving = self.now_serving.load(Ordering::Relaxed);
        self.next_ticket
            .compare_exchange(serving, serving.wrapping_add(1), Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| SpinLockGuard { lock: self })
    }
}

pub struct SpinLockGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard is the only one alive for the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard is the only one alive for the lock.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinLockGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.now_serving.fetch_add(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn try_lock_fails_while_held() {
        let lock = SpinLock::new(5);
        let guard = lock.lock();
        assert!(lock.try_lock().is_none());
        drop(guard);
        assert_eq!(*lock.try_lock().unwrap(), 5);
    }

    #[test]
    fn threads_do_not_lose_updates() {
        let lock = Arc::new(SpinLock::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        *lock.lock() += 1;
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(*lock.lock(), 40_000);
    }
}
