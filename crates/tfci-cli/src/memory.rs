//! The binaries' memory policy for the encoder's search (`--effort`) and its batches.
//!
//! Every search iteration allocates and frees the same activation-sized buffers (megabytes each:
//! `g_s`'s activations, their gradients, MS-SSIM's planes). glibc gives such blocks back to the
//! kernel when they are freed (they are `mmap`ed, or trimmed off the top of the heap), so the
//! next iteration page-faults every page of them in again, zeroed by the kernel. On the 2-core
//! development machine that was up to a sixth of the `g_s` forward and backward passes' time
//! (docs/effort.md, "Speed"). Keeping freed memory in the process lets each
//! iteration reuse the last one's pages; the peak stays what the search needs (the same sizes come
//! back every iteration). A batch is the same: each image's `h_s` faulted in about 500 pages
//! again, and a `tfci-enc` batch of ten Kodak images took 0.94x (mbt2018-mean-msssim), 0.96x
//! (bmshj2018-factorized-msssim) and 1.00x (b2018-gdn-128) the time with freed memory kept
//! (docs/benchmarks.md, fourteenth session). One plain compression gains nothing (every buffer is
//! touched once), so only a search or a batch asks for this. A process-wide setting, so it lives
//! here, in the binaries' code: the library and the Python module never change it.

use std::sync::Once;

/// Blocks up to this size come from the heap instead of their own `mmap` (glibc's largest
/// allowed threshold on 64-bit: 32 MiB). Larger ones (activations of images far above Kodak's
/// size) still map and unmap.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 32 << 20;

/// Keeps freed memory in the process for reuse (module docs); once per process, later calls do
/// nothing. A no-op outside glibc.
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
            libc::mallopt(libc::M_TOP_PAD, 64 << 20);
        }
    });
}
