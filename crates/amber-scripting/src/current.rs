//! The script running now, as the `redis` API's Rust functions reach it.
//!
//! The functions behind `redis.call`, `redis.setresp`, `redis.set_repl` and the interrupt hook
//! are created once, when the engine starts; each run only points this thread's slot at its
//! [`Run`] (the host and the script's protocol) for as long as it lasts. Creating those
//! functions for every run, as a scope would, cost more than the script itself.

use std::cell::Cell;
use std::ptr::NonNull;

use crate::engine::Host;

/// What the API's functions need of the running script.
pub(crate) struct Run {
    /// The host, with its lifetime erased: valid while [`enter`] runs (see there).
    host: NonNull<dyn Host + 'static>,
    /// The protocol the script chose with `redis.setresp` (RESP3 when set).
    pub(crate) resp3: bool,
    /// The host asked for the script to be killed.
    pub(crate) killed: bool,
}

impl Run {
    /// The host of the run.
    pub(crate) fn host(&mut self) -> &mut dyn Host {
        // SAFETY: `host` comes from the `&mut dyn Host` that `enter` holds borrowed for as
        // long as this `Run` is reachable; `with_run` hands out one `&mut Run` at a time.
        unsafe { self.host.as_mut() }
    }
}

thread_local! {
    static CURRENT: Cell<Option<NonNull<Run>>> = const { Cell::new(None) };
}

/// Runs `body` with `host` as the current run's host; returns `body`'s result and the run's
/// final state.
pub(crate) fn enter<R>(host: &mut dyn Host, body: impl FnOnce() -> R) -> (R, bool, bool) {
    // SAFETY: only the lifetime is changed. The pointer is reachable through CURRENT only
    // until `Restore` runs, before this function returns, so it never outlives the borrow.
    let host: NonNull<dyn Host + 'static> = unsafe {
        std::mem::transmute::<NonNull<dyn Host + '_>, NonNull<dyn Host + 'static>>(NonNull::from(
            host,
        ))
    };
    let mut run = Run {
        host,
        resp3: false,
        killed: false,
    };
    struct Restore(Option<NonNull<Run>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|current| current.set(self.0));
        }
    }
    let previous = CURRENT.with(|current| current.replace(Some(NonNull::from(&mut run))));
    let restore = Restore(previous);
    let result = body();
    drop(restore);
    (result, run.resp3, run.killed)
}

/// Calls `f` with the current run; `None` outside a run (or while the run is already in use
/// further up the stack, which a script cannot cause).
pub(crate) fn with_run<R>(f: impl FnOnce(&mut Run) -> R) -> Option<R> {
    let run = CURRENT.with(Cell::take)?;
    struct PutBack(NonNull<Run>);
    impl Drop for PutBack {
        fn drop(&mut self) {
            CURRENT.with(|current| current.set(Some(self.0)));
        }
    }
    let guard = PutBack(run);
    // SAFETY: the pointer is to `enter`'s `run`, alive while it is in CURRENT; it was taken
    // out of CURRENT, so this is the only reference until `guard` puts it back.
    let run = unsafe { &mut *guard.0.as_ptr() };
    Some(f(run))
}

thread_local! {
    static ARGS: Cell<Option<Result<Vec<bytes::Bytes>, &'static str>>> = const { Cell::new(None) };
}

/// Leaves the arguments `redis.call` read for the bridge function it calls next.
pub(crate) fn stash_args(args: Result<Vec<bytes::Bytes>, &'static str>) {
    ARGS.with(|slot| slot.set(Some(args)));
}

/// Takes the arguments `redis.call` left (see [`stash_args`]).
pub(crate) fn take_args() -> Option<Result<Vec<bytes::Bytes>, &'static str>> {
    ARGS.with(Cell::take)
}

thread_local! {
    static REPLY: Cell<Option<Result<amber_protocol::Frame, String>>> = const { Cell::new(None) };
    static PARKED: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Leaves a command's reply for the bridge function to convert (a reply `redis.call`'s C
/// function does not push itself).
pub(crate) fn stash_reply(reply: Result<amber_protocol::Frame, String>) {
    REPLY.with(|slot| slot.set(Some(reply)));
}

/// Takes the reply `redis.call` left (see [`stash_reply`]).
pub(crate) fn take_reply() -> Option<Result<amber_protocol::Frame, String>> {
    REPLY.with(Cell::take)
}

thread_local! {
    static PANIC: Cell<Option<Box<dyn std::any::Any + Send>>> = const { Cell::new(None) };
}

/// Leaves a panic caught in `redis.call`'s C function for the bridge to resume.
pub(crate) fn stash_panic(panic: Box<dyn std::any::Any + Send>) {
    PANIC.with(|slot| slot.set(Some(panic)));
}

/// Whether a command the running script called panicked.
pub(crate) fn panicked() -> bool {
    PANIC.with(|slot| {
        let panic = slot.take();
        let panicked = panic.is_some();
        slot.set(panic);
        panicked
    })
}

/// Takes the panic `redis.call` left (see [`stash_panic`]).
pub(crate) fn take_panic() -> Option<Box<dyn std::any::Any + Send>> {
    PANIC.with(Cell::take)
}

/// Keeps `bytes` in this thread's slot and returns where they are: a C function passes them
/// to a Lua call that may raise (and jump past it) while no Rust value of its own needs
/// dropping. Valid until [`release_bytes`] or the next call.
pub(crate) fn park_bytes(bytes: Vec<u8>) -> (*const u8, usize) {
    let location = (bytes.as_ptr(), bytes.len());
    // Moving the vector keeps its heap buffer where it is.
    PARKED.with(|slot| slot.set(bytes));
    location
}

/// Frees the bytes [`park_bytes`] kept.
pub(crate) fn release_bytes() {
    PARKED.with(Cell::take);
}

/// Whether a script is running on this thread.
pub(crate) fn running() -> bool {
    CURRENT.with(|current| {
        let run = current.get();
        run.is_some()
    })
}
