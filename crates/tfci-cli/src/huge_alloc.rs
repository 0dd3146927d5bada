//! The binaries' global allocator on Linux: blocks of more than 1 MiB in their own mappings that
//! start on a 2 MiB boundary, rounded up to whole 2 MiB pages, and ask for transparent huge pages.
//!
//! A one-shot `tfci-enc compress` touches about 60 MB of fresh memory (the first activation alone
//! is 25 MB at N = 64 on a Kodak image) and the kernel zeroes every page of it on first touch.
//! glibc maps such blocks at addresses 16 bytes past a 4 KiB page, so even a block that asked for
//! huge pages (`codec_core`'s activations do) is only partly backed by them, and the rest is faulted
//! in 4 KiB at a time: on the development VM 0.45-0.52 ms per MB against 0.02-0.11 ms per MB for
//! an aligned huge-page mapping (`docs/benchmarks.md`, the one-shot section, "Huge-page
//! mappings"; `tools/vm_probe.c` measures both). A perf profile put a fifth of a one-shot
//! compress's CPU time in the kernel's page-fault and zeroing paths.
//!
//! Smaller blocks, and everything outside Linux, go to the system allocator. Freed large mappings
//! are kept for reuse by a block of the same mapped length (a batch codes images of one size, the
//! encoder's search allocates the same buffers every iteration), 64 and 256 MiB at most, and
//! given back beyond that. With eight, the search freed more large buffers per iteration than
//! were kept and mapped the rest afresh every iteration, an eighth to a sixth of its CPU time in
//! the kernel (`docs/effort.md`, "Speed"). The library and the Python module never install this:
//! only `tfci-enc` and `tfci-dec` (`#[global_allocator]` in their `main.rs`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;
use std::sync::Mutex;

/// A huge page.
const HUGE: usize = 2 << 20;

/// Blocks above this size get their own mapping. Not at it: the `gemm` crate reserves 1 MiB per
/// thread for its packing and touches a fifth of it on a Kodak image (about 50 pages a thread,
/// counted with `perf record -e page-faults`), so a 2 MiB page zeroed for it costs more than the
/// pages it uses (docs/benchmarks.md, sixteenth session).
const LARGE: usize = 1 << 20;

/// Freed mappings kept for reuse, at most this many ...
const CACHED: usize = 64;

/// ... and this many bytes in all (a batch of large images must not hold its largest blocks).
const CACHED_BYTES: usize = 256 << 20;

/// See the module docs.
#[derive(Debug)]
pub struct HugePageAlloc;

/// `(address, mapped length)` of freed mappings, `(0, 0)` for an empty slot.
static CACHE: Mutex<[(usize, usize); CACHED]> = Mutex::new([(0, 0); CACHED]);

fn is_large(layout: &Layout) -> bool {
    layout.size() > LARGE && layout.align() <= HUGE
}

/// The length a large block of `size` bytes is mapped with.
fn mapped_len(size: usize) -> Option<usize> {
    size.checked_next_multiple_of(HUGE)
}

/// A cached mapping of exactly `len` bytes (any contents), if one was kept.
fn take_cached(len: usize) -> Option<*mut u8> {
    let mut cache = CACHE.lock().ok()?;
    let slot = cache.iter_mut().find(|(_, l)| *l == len)?;
    let addr = std::mem::take(slot).0;
    Some(addr as *mut u8)
}

/// Keeps a freed mapping for reuse; `false` when the cache is full.
fn keep(addr: *mut u8, len: usize) -> bool {
    let Ok(mut cache) = CACHE.lock() else {
        return false;
    };
    let held: usize = cache.iter().map(|(_, l)| l).sum();
    if held.saturating_add(len) > CACHED_BYTES {
        return false;
    }
    match cache.iter_mut().find(|(_, l)| *l == 0) {
        Some(slot) => {
            *slot = (addr as usize, len);
            true
        }
        None => false,
    }
}

/// A fresh mapping of `len` bytes (a multiple of [`HUGE`]) starting on a huge-page boundary,
/// zeroed by the kernel; null when the kernel refuses.
unsafe fn map(len: usize) -> *mut u8 {
    let Some(over) = len.checked_add(HUGE) else {
        return ptr::null_mut();
    };
    // SAFETY: an anonymous private mapping at an address the kernel picks touches nothing else;
    // the unmaps below only cut off the parts of it outside the aligned range.
    unsafe {
        let base = libc::mmap(
            ptr::null_mut(),
            over,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if base == libc::MAP_FAILED {
            return ptr::null_mut();
        }
        let start = (base as usize).next_multiple_of(HUGE);
        let head = start - base as usize;
        if head > 0 {
            libc::munmap(base, head);
        }
        let tail = HUGE - head;
        if tail > 0 {
            libc::munmap((start + len) as *mut libc::c_void, tail);
        }
        // Advice only: a kernel without THP refuses or ignores it and the pages stay 4 KiB.
        libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        start as *mut u8
    }
}

/// A large block: a cached mapping of its length (zeroed again where asked), else a fresh one.
unsafe fn alloc_large(size: usize, zeroed: bool) -> *mut u8 {
    let Some(len) = mapped_len(size) else {
        return ptr::null_mut();
    };
    match take_cached(len) {
        Some(p) => {
            if zeroed {
                // SAFETY: the cached mapping is `len >= size` bytes, owned by nobody now.
                unsafe { ptr::write_bytes(p, 0, size) };
            }
            p
        }
        // SAFETY: forwarded.
        None => unsafe { map(len) },
    }
}

/// Frees a large block: kept for reuse, else unmapped.
unsafe fn free_large(p: *mut u8, size: usize) {
    let Some(len) = mapped_len(size) else {
        return;
    };
    if !keep(p, len) {
        // SAFETY: `p` is the start of a mapping of `len` bytes this allocator made.
        unsafe { libc::munmap(p.cast(), len) };
    }
}

// SAFETY: large blocks are whole mappings of at least their size, aligned to 2 MiB (at least any
// alignment they may ask for), owned by one block at a time (taken out of the cache under its
// lock); the size decides which allocator owns a block, and Rust passes `dealloc` and `realloc`
// the layout the block was made with, so each block goes back where it came from.
unsafe impl GlobalAlloc for HugePageAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_large(&layout) {
            // SAFETY: forwarded.
            unsafe { alloc_large(layout.size(), false) }
        } else {
            // SAFETY: forwarded.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_large(&layout) {
            // SAFETY: forwarded.
            unsafe { alloc_large(layout.size(), true) }
        } else {
            // SAFETY: forwarded.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if is_large(&layout) {
            // SAFETY: forwarded.
            unsafe { free_large(p, layout.size()) }
        } else {
            // SAFETY: forwarded.
            unsafe { System.dealloc(p, layout) }
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return ptr::null_mut();
        };
        match (is_large(&layout), is_large(&new_layout)) {
            // SAFETY: forwarded.
            (false, false) => unsafe { System.realloc(p, layout, new_size) },
            (true, true) if mapped_len(layout.size()) == mapped_len(new_size) => p,
            _ => {
                // SAFETY: a new block, the common prefix copied, the old one freed (the two do
                // not overlap: the old block is still allocated while the new one is made).
                unsafe {
                    let q = self.alloc(new_layout);
                    if !q.is_null() {
                        ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                        self.dealloc(p, layout);
                    }
                    q
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Own mappings start above 1 MiB: exactly 1 MiB (the `gemm` crate's per-thread slab) stays
    /// with the system allocator.
    #[test]
    fn own_mappings_start_above_one_mib() {
        let layout = |size| Layout::from_size_align(size, 8).expect("layout");
        assert!(!is_large(&layout(1 << 20)));
        assert!(is_large(&layout((1 << 20) + 1)));
        assert!(!is_large(
            &Layout::from_size_align(4 << 20, 2 * HUGE).expect("layout")
        ));
    }

    /// Large blocks are aligned, zeroed where asked, keep their contents through every kind of
    /// resize, and come back from the cache for the same length.
    #[test]
    fn large_blocks_behave_like_any_allocation() {
        let a = HugePageAlloc;
        let big = Layout::from_size_align(3 * HUGE + 100, 8).expect("layout");
        // SAFETY: each block is used within its size and freed once with its layout.
        unsafe {
            let p = a.alloc_zeroed(big);
            assert!(!p.is_null());
            assert_eq!(p as usize % HUGE, 0);
            assert!(std::slice::from_raw_parts(p, big.size())
                .iter()
                .all(|&b| b == 0));
            ptr::write_bytes(p, 7, big.size());
            // Grow within the mapping, then past it, then down to a small block.
            let p = a.realloc(p, big, 3 * HUGE + 200);
            assert_eq!(*p.add(3 * HUGE + 99), 7);
            let grown = Layout::from_size_align(3 * HUGE + 200, 8).expect("layout");
            let p = a.realloc(p, grown, 5 * HUGE);
            assert_eq!(*p.add(3 * HUGE + 99), 7);
            let five = Layout::from_size_align(5 * HUGE, 8).expect("layout");
            let p = a.realloc(p, five, 1000);
            assert!(std::slice::from_raw_parts(p, 1000).iter().all(|&b| b == 7));
            // Small to large keeps the contents too.
            let small = Layout::from_size_align(1000, 8).expect("layout");
            let p = a.realloc(p, small, 2 * HUGE);
            assert!(std::slice::from_raw_parts(p, 1000).iter().all(|&b| b == 7));
            let two = Layout::from_size_align(2 * HUGE, 8).expect("layout");
            a.dealloc(p, two);
            // The freed mapping of that length comes back, zeroed again.
            let q = a.alloc_zeroed(two);
            assert!(std::slice::from_raw_parts(q, two.size())
                .iter()
                .all(|&b| b == 0));
            a.dealloc(q, two);
        }
    }
}
