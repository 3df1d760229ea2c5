//! [`Signal`]: a wake-up for one task on the event-loop thread, as `tokio::sync::Notify`'s
//! `notify_one` / `notified` pair, without its lock.
//!
//! A connection task waits on several of these (closed, messages to write, buffer to shrink)
//! each time it waits for input, and stops waiting as soon as input comes: with `Notify`, each
//! wait registered and unregistered a waiter under a mutex, a visible share of a request at
//! `-P 1`. Everything that signals a connection runs on the event-loop thread, so a cell does.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// A one-permit wake-up for a task on this thread.
///
/// [`Signal::notify_one`] leaves a permit (one, however often it is called) and wakes the
/// task that waits, if any; [`Signal::notified`] completes once a permit is there and takes
/// it. A permit left while nobody waits completes the next wait at once, as with `Notify`.
/// One task waits at a time: a second waiter replaces the first one's waker.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    permit: Cell<bool>,
    waiter: RefCell<Option<Waker>>,
}

impl Signal {
    /// A signal with no permit.
    pub(crate) fn new() -> Signal {
        Signal::default()
    }

    /// Leaves a permit and wakes the waiting task.
    pub(crate) fn notify_one(&self) {
        self.permit.set(true);
        let waiter = self.waiter.borrow_mut().take();
        if let Some(waker) = waiter {
            waker.wake();
        }
    }

    /// Completes once a permit is there, taking it.
    pub(crate) fn notified(&self) -> Notified<'_> {
        Notified { signal: self }
    }
}

/// The future of [`Signal::notified`].
#[derive(Debug)]
pub(crate) struct Notified<'a> {
    signal: &'a Signal,
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let signal = self.signal;
        if signal.permit.replace(false) {
            return Poll::Ready(());
        }
        let mut waiter = signal.waiter.borrow_mut();
        match waiter.as_ref() {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => *waiter = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"))
    }

    #[test]
    fn a_permit_left_before_the_wait_completes_it_once() {
        runtime().block_on(async {
            let signal = Signal::new();
            signal.notify_one();
            signal.notify_one();
            signal.notified().await;
            let second =
                tokio::time::timeout(std::time::Duration::from_millis(20), signal.notified()).await;
            assert!(second.is_err(), "two notifications leave one permit");
        });
    }

    #[test]
    fn a_waiting_task_is_woken() {
        let runtime = runtime();
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async {
            let signal = Rc::new(Signal::new());
            let waiter = tokio::task::spawn_local({
                let signal = signal.clone();
                async move { signal.notified().await }
            });
            tokio::task::yield_now().await;
            assert!(!waiter.is_finished());
            signal.notify_one();
            tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
                .await
                .unwrap_or_else(|_| panic!("the waiter was not woken"))
                .unwrap_or_else(|e| panic!("waiter: {e}"));
            // The permit was taken by the waiter.
            assert!(!signal.permit.get());
        });
    }

    #[test]
    fn a_wait_dropped_for_another_branch_leaves_the_permit() {
        runtime().block_on(async {
            let signal = Signal::new();
            tokio::select! {
                biased;
                () = std::future::ready(()) => {}
                () = signal.notified() => panic!("no permit yet"),
            }
            signal.notify_one();
            signal.notified().await;
        });
    }
}
