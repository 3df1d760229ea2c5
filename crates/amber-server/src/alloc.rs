//! The server's heap: jemalloc, as Redis uses, behind a global allocator that counts live
//! heap bytes as jemalloc's size classes reserve them, so `INFO memory` reports `used_memory`
//! from the allocator's own accounting rather than an estimate of the data's size.
//!
//! jemalloc rather than glibc's malloc, measured (docs/BENCHMARKS.md, session 22): its
//! per-thread caches and size-class slabs make loading a snapshot on two threads about 1.8x
//! faster (glibc grew a helper thread's arena one `mprotect` at a time and contended on its
//! lock), it returns freed pages to the system by itself, and its size classes match what
//! Redis's memory figures assume.

use std::alloc::{GlobalAlloc, Layout};

use std::sync::atomic::{AtomicUsize, Ordering};
use tikv_jemallocator::Jemalloc;

static USED: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// jemalloc, counting the bytes it hands out.
pub struct CountingAllocator;

// SAFETY: every call is forwarded to jemalloc unchanged; only counters are added.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: `layout` comes from our caller, who upholds `GlobalAlloc::alloc`'s contract.
        let ptr = unsafe { Jemalloc.alloc(layout) };
        if !ptr.is_null() {
            USED.fetch_add(chunk_size(layout.size()), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        USED.fetch_sub(chunk_size(layout.size()), Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by jemalloc with `layout` (every allocation here is).
        unsafe { Jemalloc.dealloc(ptr, layout) };
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`: the caller's layout, passed on unchanged.
        let ptr = unsafe { Jemalloc.alloc_zeroed(layout) };
        if !ptr.is_null() {
            USED.fetch_add(chunk_size(layout.size()), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr`/`layout` come from jemalloc through this allocator, and the caller
        // upholds `realloc`'s contract for `new_size`.
        let new = unsafe { Jemalloc.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            USED.fetch_add(chunk_size(new_size), Ordering::Relaxed);
            USED.fetch_sub(chunk_size(layout.size()), Ordering::Relaxed);
        }
        new
    }
}

/// The heap bytes a buffer of `capacity` bytes really takes (its size class), 0 for none:
/// what memory figures built from capacities must report so they match `used_memory`.
pub fn allocated_size(capacity: usize) -> usize {
    if capacity == 0 {
        0
    } else {
        chunk_size(capacity)
    }
}

/// The bytes jemalloc reserves for a request of `size` bytes: its size class (8, then steps
/// of 16 up to 128, then four classes per power of two). A plain formula: asking the
/// allocator for every allocation's usable size costs a lookup per call.
fn chunk_size(size: usize) -> usize {
    if size <= 8 {
        return 8;
    }
    if size <= 128 {
        return (size + 15) & !15;
    }
    let log2 = usize::BITS - (size - 1).leading_zeros();
    let step = 1usize << (log2 - 3);
    (size + step - 1) & !(step - 1)
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
    limit == 0 || in_use().saturating_add(extra) <= limit
}

/// Bytes currently allocated on the heap and in use: the keyspace's free entry slots are
/// left out, as jemalloc leaves the free regions of its slabs out of its count
/// ([`amber_keyspace::unused_slot_bytes`]).
pub fn used_memory() -> usize {
    let used = in_use();
    PEAK.fetch_max(used, Ordering::Relaxed);
    used
}

fn in_use() -> usize {
    USED.load(Ordering::Relaxed)
        .saturating_sub(amber_keyspace::unused_slot_bytes())
}

/// The highest value [`used_memory`] has reported.
pub fn peak_memory() -> usize {
    PEAK.load(Ordering::Relaxed).max(in_use())
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

/// What jemalloc reports about its heap (`INFO memory`'s `allocator_*` fields).
#[derive(Debug, Clone, Copy, Default)]
pub struct HeapStats {
    /// Bytes in blocks handed out (`stats.allocated`).
    pub allocated: usize,
    /// Bytes in the pages those blocks occupy (`stats.active`).
    pub active: usize,
    /// Bytes of the allocator's pages that are resident (`stats.resident`).
    pub resident: usize,
}

/// jemalloc's own view of its heap, refreshed first (its statistics are cached per epoch).
pub fn heap_stats() -> HeapStats {
    use tikv_jemalloc_ctl::{epoch, stats};
    let _ = epoch::advance();
    HeapStats {
        allocated: stats::allocated::read().unwrap_or(0),
        active: stats::active::read().unwrap_or(0),
        resident: stats::resident::read().unwrap_or(0),
    }
}

/// `MEMORY MALLOC-STATS`: jemalloc's statistics report, as Redis prints it.
pub fn malloc_stats() -> Vec<u8> {
    let mut report = Vec::new();
    let options = tikv_jemalloc_ctl::stats_print::Options::default();
    if tikv_jemalloc_ctl::stats_print::stats_print(&mut report, options).is_err() {
        report = b"Stats not supported for the current allocator".to_vec();
    }
    report
}

/// The allocator's name and version, as `INFO memory` shows it (`mem_allocator`).
pub fn allocator_name() -> String {
    let version = tikv_jemalloc_ctl::version::read().unwrap_or("5");
    let version = version.split('-').next().unwrap_or(version);
    format!("jemalloc-{version}")
}

/// Gives every arena's dirty pages back to the system now (`MEMORY PURGE`, and the cron
/// after a large free) rather than when jemalloc's decay would.
pub fn purge() {
    // "arena.<MALLCTL_ARENAS_ALL>.purge" takes no value in or out.
    let name = c"arena.4096.purge";
    // SAFETY: a NUL-terminated control name with null old and new pointers, as this control
    // requires; jemalloc takes its own locks.
    unsafe {
        tikv_jemalloc_sys::mallctl(
            name.as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        );
    }
}

/// Gives freed heap memory back to the system soon after a large free (connections closed,
/// buffers shrunk, keys deleted) rather than after jemalloc's decay (10 s). Purges only when
/// the bytes in use fell by 16 MiB from their highest point since the last purge, so a
/// steady heap is never walked.
#[derive(Debug, Default)]
pub struct SlackTrimmer {
    /// The most bytes in use seen since the last purge.
    high_water: usize,
}

/// How much memory must have been freed before a purge is worth its walk of the arenas.
const TRIM_STEP: usize = 16 << 20;

impl SlackTrimmer {
    /// Runs from the cron, about once a second: purges if enough was freed. Returns the
    /// bytes of RSS given back (0 when it did not purge).
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
        purge();
        self.high_water = used;
        before.saturating_sub(rss_bytes())
    }
}

#[cfg(test)]
mod tests {
    /// The formula gives jemalloc's own size classes.
    #[test]
    fn chunk_size_is_jemallocs_size_class() {
        for size in [
            1,
            8,
            9,
            16,
            17,
            100,
            128,
            129,
            160,
            161,
            1000,
            4096,
            4097,
            20_000,
            1 << 20,
        ] {
            // SAFETY: malloc of a non-zero size; the pointer is checked before use.
            let pointer = unsafe { tikv_jemalloc_sys::malloc(size) };
            assert!(!pointer.is_null());
            // SAFETY: `pointer` was just returned by jemalloc's malloc and is freed once.
            let usable = unsafe {
                let usable = tikv_jemalloc_sys::malloc_usable_size(pointer);
                tikv_jemalloc_sys::free(pointer);
                usable
            };
            assert_eq!(super::chunk_size(size), usable, "size {size}");
        }
    }
}
