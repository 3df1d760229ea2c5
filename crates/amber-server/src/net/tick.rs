//! The end of the loop's tick: where a connection that ran its requests waits until every
//! other connection that was ready in the same tick has run too, so that replies go out in
//! one burst per tick, as Redis writes them once it has read every ready client.
//!
//! `tokio::task::yield_now` would do the same, but a yielded task resumes only after the
//! runtime has polled its sockets again: one more `epoll_wait` per tick, which at one
//! request per connection is as many system calls as a fifth of the requests. Here the
//! first connection to wait schedules a closing task behind the connections already queued;
//! when it runs, every connection of the tick has had its turn, and it wakes them all.
//!
//! **INV-TICK-END**: a connection waiting at the end of the tick resumes once every task
//! that was queued to run when it began waiting has run. A task waiting with
//! [`TickEnd::wait_last`] resumes after the tick's other waiters (work that should not hold
//! up the tick's replies: a forkless snapshot's walk).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// The tasks waiting for the end of the current tick, and the task that ends it.
#[derive(Default)]
pub(crate) struct TickEnd {
    /// Wakers of the tasks waiting for the current tick to end.
    waiting: RefCell<Vec<Waker>>,
    /// Wakers of the tasks to resume after those of `waiting`.
    last: RefCell<Vec<Waker>>,
    /// The closing task's waker, once it has run.
    closer: RefCell<Option<Waker>>,
    /// Whether the closing task was woken for the current tick.
    scheduled: Cell<bool>,
    /// Ticks ended so far: a waiter is done once this moves past the tick it joined.
    ended: Cell<u64>,
}

impl TickEnd {
    /// Spawns the task that ends the ticks on the current `LocalSet`; waiters wait until it
    /// runs.
    pub(crate) fn spawn_closer(self: &Rc<Self>) {
        tokio::task::spawn_local(close_ticks(self.clone()));
    }

    /// Waits until the tasks queued to run now have run (INV-TICK-END).
    pub(crate) fn wait(&self) -> Wait<'_> {
        Wait {
            tick: self,
            joined: None,
            last: false,
        }
    }

    /// Waits like [`TickEnd::wait`], then resumes after every task that waited with
    /// [`TickEnd::wait`] in the same tick (so after the connections have sent the tick's
    /// replies).
    pub(crate) fn wait_last(&self) -> Wait<'_> {
        Wait {
            tick: self,
            joined: None,
            last: true,
        }
    }

    /// Ends the current tick: wakes its waiters, which run after the tasks queued now, then
    /// those that wait to run last.
    fn close(&self) {
        self.scheduled.set(false);
        self.ended.set(self.ended.get() + 1);
        let waiting = std::mem::take(&mut *self.waiting.borrow_mut());
        let last = std::mem::take(&mut *self.last.borrow_mut());
        for waker in waiting.into_iter().chain(last) {
            waker.wake();
        }
    }
}

/// The future [`TickEnd::wait`] returns.
pub(crate) struct Wait<'a> {
    tick: &'a TickEnd,
    /// The tick this waiter joined, once it has.
    joined: Option<u64>,
    /// Whether it resumes after the tick's other waiters.
    last: bool,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let tick = self.tick;
        let current = tick.ended.get();
        match self.joined {
            Some(joined) if joined != current => return Poll::Ready(()),
            Some(_) => {}
            None => self.joined = Some(current),
        }
        let list = if self.last { &tick.last } else { &tick.waiting };
        list.borrow_mut().push(cx.waker().clone());
        // Until the closing task has first run there is no waker: it closes the tick then.
        if !tick.scheduled.replace(true)
            && let Some(closer) = tick.closer.borrow().as_ref()
        {
            closer.wake_by_ref();
        }
        Poll::Pending
    }
}

/// The closing task: each time it is woken, every task queued before it has run, so it
/// ends the tick.
async fn close_ticks(tick: Rc<TickEnd>) {
    std::future::poll_fn(|cx| {
        *tick.closer.borrow_mut() = Some(cx.waker().clone());
        if tick.scheduled.get() {
            tick.close();
        }
        Poll::<()>::Pending
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::TickEnd;
    use std::cell::RefCell;
    use std::future::Future;
    use std::rc::Rc;

    /// Runs `test` on a one-thread runtime whose ticks a running closing task ends.
    fn with_ticks<F: Future<Output = ()>>(test: impl FnOnce(Rc<TickEnd>) -> F) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async {
            let tick = Rc::new(TickEnd::default());
            tick.spawn_closer();
            tokio::task::yield_now().await;
            test(tick).await;
        });
    }

    /// Every task queued in a tick runs its first half before any runs its second half, and
    /// the next tick's waiters wait for their own tick.
    #[test]
    fn waiters_resume_after_every_task_of_their_tick() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let during = log.clone();
        with_ticks(|tick| async move {
            let log = during;
            for round in 0..2 {
                let tasks: Vec<_> = (0..5)
                    .map(|task| {
                        let (tick, log) = (tick.clone(), log.clone());
                        tokio::task::spawn_local(async move {
                            log.borrow_mut().push((round, task, "ran"));
                            tick.wait().await;
                            log.borrow_mut().push((round, task, "resumed"));
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("task");
                }
            }
        });
        let log = log.borrow();
        for round in 0..2 {
            let of_round: Vec<_> = log.iter().filter(|(r, _, _)| *r == round).collect();
            assert_eq!(of_round.len(), 10);
            assert!(
                of_round[..5].iter().all(|(_, _, what)| *what == "ran"),
                "{log:?}"
            );
            assert!(
                of_round[5..].iter().all(|(_, _, what)| *what == "resumed"),
                "{log:?}"
            );
        }
    }

    /// A task waiting with `wait_last` resumes after every task that waited in its tick,
    /// whichever began waiting first.
    #[test]
    fn a_last_waiter_resumes_after_the_others_of_its_tick() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let during = log.clone();
        with_ticks(|tick| async move {
            let log = during;
            let tasks: Vec<_> = (0..4)
                .map(|task| {
                    let (tick, log) = (tick.clone(), log.clone());
                    tokio::task::spawn_local(async move {
                        if task == 0 {
                            tick.wait_last().await;
                        } else {
                            tick.wait().await;
                        }
                        log.borrow_mut().push(task);
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("task");
            }
        });
        assert_eq!(*log.borrow(), [1, 2, 3, 0]);
    }
}
