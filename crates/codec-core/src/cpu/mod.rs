//! The CPU backend: the reference implementation of every op and the test oracle for the GPU.
//!
//! Two kinds of arithmetic:
//! - [`Math::Fast`]: im2col tiles + a cache-blocked GEMM (the `gemm` crate, FMA where the CPU has
//!   it), tiles of output pixels in parallel with rayon. Used for `g_a`, `g_s`, `h_a` and the means
//!   of `h_s`, where float drift only moves pixels. Results may differ in the last bits between
//!   machines and thread counts.
//! - [`Math::Exact`]: a fixed-order, FMA-free f32 kernel whose every output is
//!   `((b + w0*x0) + w1*x1) + ...` in one documented order (see `exact.rs`), independent of thread
//!   count, SIMD width and machine. Used for everything that decides a probability table (the
//!   scales of `h_s`).
//!
//! Transposed convolutions are split into `stride²` sub-pixel phases at prepare time (see
//! `conv.rs`), so neither arithmetic multiplies by the zeros a naive upsampling would insert.
//!
//! Never imports wgpu.

pub mod backprop;
mod band;
mod conv;
mod exact;
mod gdn;
#[cfg(target_arch = "x86_64")]
mod gdn_simd;
mod gemm;
mod pack_cache;
mod planes;
mod slab;
#[cfg(test)]
mod tests;
mod winograd;

#[cfg(any(test, feature = "internals"))]
pub use conv::CpuLayer;
pub use conv::{CpuNet, OverBudget};

/// Whether the AVX2 builds of the kernels may run (see `avx2_variant!`).
pub(crate) fn has_avx2() -> bool {
    #[cfg(test)]
    if tests::FORCE_GENERIC.get() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the AVX-512 builds of the kernels may run (tests can hold them back to check the AVX2
/// builds on an AVX-512 machine).
pub(crate) fn has_avx512() -> bool {
    #[cfg(test)]
    if tests::FORCE_AVX2.get() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        has_avx2() && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether kernels written with AVX2 and FMA intrinsics may run.
pub(crate) fn has_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        has_avx2() && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A zeroed buffer of `len` floats whose whole 2 MiB pages ask for transparent huge pages (see
/// [`advise_huge_pages`]; every buffer of 4 MiB or more has some).
pub(crate) fn zeroed(len: usize) -> Vec<f32> {
    let v = vec![0.0f32; len];
    advise_huge_pages(&v);
    v
}

/// On Linux, asks for transparent huge pages for the whole 2 MiB pages `v` spans, before its first
/// touch: a fresh buffer is faulted in page by page on first write, about 2 us a 4 KiB page on the
/// development VM (a cold start's weights and first activations are tens of MiB), and a 2 MiB page
/// costs one fault. Elsewhere, nothing.
pub(crate) fn advise_huge_pages<T>(v: &[T]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let (start, bytes) = (v.as_ptr() as usize, std::mem::size_of_val(v));
        let (lo, hi) = (start.next_multiple_of(HUGE), (start + bytes) / HUGE * HUGE);
        if hi > lo {
            // SAFETY: `[lo, hi)` lies inside `v`'s allocation; the advice changes how its pages
            // are backed, never their contents (a kernel without THP ignores or refuses it).
            unsafe {
                libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

/// Which arithmetic a net runs with (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Math {
    /// im2col + GEMM with FMA: fast, machine- and thread-count-dependent rounding.
    Fast,
    /// One fixed summation order without FMA: bit-identical everywhere.
    Exact,
}
