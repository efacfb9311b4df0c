//! The loom shim: every `Mutex`, atomic, `Arc`, `UnsafeCell` and thread-local used by the crate
//! comes from here, so that `RUSTFLAGS="--cfg loom"` swaps all of them for loom's model-checked
//! versions at once (the pattern of tokio's `src/loom/` and sharded-slab's `sync.rs`).
//!
//! [`Mutex::lock`] ignores poisoning: the engine's invariants are restored before any code that
//! can panic runs while a lock is held, so a poisoned lock carries consistent data.
#![allow(dead_code, unused_imports)]

/// `lock` and `try_lock` of the shim's `Mutex`, the same over std's and loom's mutex (both
/// return std's `LockResult`/`TryLockResult`): poisoning is ignored.
macro_rules! poison_free_locking {
    () => {
        /// Locks, blocking until the lock is free.
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }

        /// Locks if the lock is free right now.
        pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            match self.0.try_lock() {
                Ok(g) => Some(g),
                Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            }
        }
    };
}

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::atomic;
    pub(crate) use std::sync::{Arc, MutexGuard};
    pub(crate) use std::thread_local;

    /// A mutual-exclusion lock that ignores poisoning.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T: ?Sized>(std::sync::Mutex<T>);

    impl<T> Mutex<T> {
        /// A new unlocked mutex holding `value`.
        pub(crate) const fn new(value: T) -> Self {
            Mutex(std::sync::Mutex::new(value))
        }
    }

    impl<T: ?Sized> Mutex<T> {
        poison_free_locking!();
    }

    /// `UnsafeCell` with loom's closure-based API.
    #[derive(Debug, Default)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        /// A new cell holding `value`.
        pub(crate) const fn new(value: T) -> Self {
            UnsafeCell(std::cell::UnsafeCell::new(value))
        }

        /// Runs `f` with a shared raw pointer to the contents.
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Runs `f` with a mutable raw pointer to the contents.
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::sync::atomic;
    pub(crate) use loom::sync::{Arc, MutexGuard};
    pub(crate) use loom::thread_local;

    /// A mutual-exclusion lock that ignores poisoning (loom version).
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        /// A new unlocked mutex holding `value`.
        pub(crate) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }

        poison_free_locking!();
    }
}

pub(crate) use imp::*;
