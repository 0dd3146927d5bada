//! The binaries' heap policy: freed memory stays in the process for reuse, and every thread
//! allocates from one heap.
//!
//! Why: every page a process touches for the first time is a page fault and a page the kernel
//! zeroes, and on the development VM, after a few idle seconds, also a page the host must back
//! again. A one-shot `mbt2018-mean-msssim` compress allocates about 5.5 MB in blocks of 0.1-1 MB
//! after its analysis transform (the hyperprior's activations and padded planes, the symbols, the
//! scale indexes); glibc maps each such block on its own and unmaps it when freed, and gives each
//! worker thread an arena of its own, so each block faulted its pages in afresh. In one heap that
//! keeps what is freed, a later block reuses an earlier one's pages: 3,000 -> 2,360 faults a call
//! (mbt2018-mean-msssim-4), and a user's one-shot compress after 3 s idle took 0.95 / 0.95 / 0.99x
//! the time (bmshj2018-factorized / b2018-gdn-128 / mbt2018-mean), back to back 1.01 / 1.00 /
//! 0.97x (docs/benchmarks.md, seventeenth session). A search or a batch allocates the same buffers
//! again and again (a batch of ten Kodak images took 0.94x the time with freed memory kept,
//! fourteenth session). Tried and left out: the heap also advised for transparent huge pages
//! (fewer faults still, 0.91-1.04x back to back, but 1.08-1.12x after a pause: each 2 MiB page is
//! zeroed, and backed by the host, whole). A process-wide setting, so it lives here, in the
//! binaries' code: the library and the Python module never change it.

use std::sync::Once;

/// Blocks up to this size come from the heap instead of their own `mmap` (glibc's largest
/// allowed threshold on 64-bit: 32 MiB). Larger ones (activations of images far above Kodak's
/// size) go to `HugePageAlloc`'s own mappings or, without it, map and unmap.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 32 << 20;

/// What the heap grows by beyond a request (address space; pages are touched as used).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TOP_PAD: i32 = 64 << 20;

/// Keeps freed memory in the process for reuse and makes every thread allocate from the main
/// heap (module docs); once per process, later calls do nothing. Call it first in `main`: a thread
/// that allocated before it keeps the arena it has. A no-op outside glibc.
pub fn keep_freed_memory() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only changes allocator parameters; glibc applies them under its lock,
        // and any value is valid (an out-of-range one is refused with a 0 return, which is fine:
        // the defaults stay).
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
            libc::mallopt(libc::M_TOP_PAD, TOP_PAD);
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    });
}
