//! A global allocator that counts live heap bytes as glibc's malloc actually reserves them
//! (its chunk rounding included), so `INFO memory` reports `used_memory` from the allocator's
//! own accounting rather than an estimate of the data's size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static USED: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting the bytes it hands out.
pub struct CountingAllocator;

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: `layout` comes from our caller, who upholds `GlobalAlloc::alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            USED.fetch_add(chunk_size(layout.size()), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        USED.fetch_sub(chunk_size(layout.size()), Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation here is).
        unsafe { System.dealloc(ptr, layout) };
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`: the caller's layout, passed on unchanged.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            USED.fetch_add(chunk_size(layout.size()), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr`/`layout` come from `System` through this allocator, and the caller
        // upholds `realloc`'s contract for `new_size`.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            USED.fetch_add(chunk_size(new_size), Ordering::Relaxed);
            USED.fetch_sub(chunk_size(layout.size()), Ordering::Relaxed);
        }
        new
    }
}

/// The bytes glibc's malloc reserves for a request of `size` bytes: the request plus its
/// 8-byte header, rounded up to 16, at least 32 (a plain formula: asking glibc with
/// `malloc_usable_size` on every allocation cost 13% of a snapshot load).
fn chunk_size(size: usize) -> usize {
    ((size + 8 + 15) & !15).max(32)
}

/// `maxmemory` as the growth guard sees it (0: no limit).
static LIMIT: AtomicUsize = AtomicUsize::new(0);

/// Tells [`growth_within_limit`] the current `maxmemory`.
pub fn set_limit(limit: usize) {
    LIMIT.store(limit, Ordering::Relaxed);
}

/// Whether allocating `extra` more bytes keeps the heap within `maxmemory` (the keyspace's
/// tables ask before growing; see [`amber_keyspace::set_growth_guard`]).
pub fn growth_within_limit(extra: usize) -> bool {
    let limit = LIMIT.load(Ordering::Relaxed);
    limit == 0 || USED.load(Ordering::Relaxed).saturating_add(extra) <= limit
}

/// Bytes currently allocated on the heap.
pub fn used_memory() -> usize {
    let used = USED.load(Ordering::Relaxed);
    PEAK.fetch_max(used, Ordering::Relaxed);
    used
}

/// The highest value [`used_memory`] has reported.
pub fn peak_memory() -> usize {
    PEAK.load(Ordering::Relaxed)
        .max(USED.load(Ordering::Relaxed))
}

/// Resident set size of the process, from `/proc/self/statm`.
pub fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// What the C allocator reports about its heap (`INFO memory`'s `allocator_*` fields).
#[derive(Debug, Clone, Copy, Default)]
pub struct HeapStats {
    /// Bytes in blocks handed out (`uordblks` + `hblkhd`).
    pub allocated: usize,
    /// Bytes the allocator holds from the system (`arena` + `hblkhd`).
    pub active: usize,
}

/// The C allocator's own view of its heap (glibc's `mallinfo2`).
pub fn heap_stats() -> HeapStats {
    // SAFETY: mallinfo2 takes no arguments and returns a plain struct of counters; it locks
    // the allocator's arenas itself.
    let info = unsafe { nix::libc::mallinfo2() };
    HeapStats {
        allocated: info.uordblks + info.hblkhd,
        active: info.arena + info.hblkhd,
    }
}

/// Gives freed heap memory back to the system, as jemalloc's decay does for Redis: glibc keeps
/// freed chunks in the middle of its heap resident until `malloc_trim` asks. Trims only when
/// the bytes in use fell by 16 MiB from their highest point since the last trim (connections
/// closed, buffers shrunk, keys deleted), so a steady heap is never walked.
#[derive(Debug, Default)]
pub struct SlackTrimmer {
    /// The most bytes in use seen since the last trim.
    high_water: usize,
}

/// How much memory must have been freed before a trim is worth its walk of the heap.
const TRIM_STEP: usize = 16 << 20;

impl SlackTrimmer {
    /// Runs from the cron, about once a second: trims if enough was freed. Returns the bytes
    /// of RSS given back (0 when it did not trim).
    pub fn tick(&mut self) -> usize {
        let used = used_memory();
        if used >= self.high_water {
            self.high_water = used;
            return 0;
        }
        if self.high_water - used < TRIM_STEP {
            return 0;
        }
        let before = rss_bytes();
        // SAFETY: malloc_trim only takes glibc's own arena locks and releases free pages.
        unsafe { nix::libc::malloc_trim(0) };
        self.high_water = used;
        before.saturating_sub(rss_bytes())
    }
}
