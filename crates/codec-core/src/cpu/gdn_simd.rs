//! The Fast GDN / IGDN as one kernel per tile, its accumulators in registers.
//!
//! Why: as `gemm` on a scratch of squares followed by an element-wise pass, GDN ran at 59-72
//! GMAC/s where the convolutions ran at 90-98 (issue "CPU speed"): `gemm` packs both operands for
//! an inner dimension of only `c` (64 to 192) and the products make one more trip through the
//! cache. Here a tile's squares are formed once, in blocks of three vectors of pixels that stay in
//! L1 (`[block][c][3 x lanes]`); each block times `R` rows of `gamma` (packed `[c / R][c][R]`, so
//! a row block's broadcasts are contiguous) accumulates in `3R` registers that start at `beta`, and
//! the reciprocal square root (the hardware estimate and one Newton step) and the product with `x`
//! are taken before the accumulators leave the registers.

use super::conv::SendPtr;

/// Pixels per block of squares: three vectors of the widest build (the AVX2 build's blocks are
/// half as wide, so a tile that is a multiple of this suits both).
pub(super) const BLOCK: usize = 48;

/// `gamma` (`c x c`, row-major) packed for row blocks of `rows`: `[c / rows][c][rows]`.
pub(super) fn pack_gamma(gamma: &[f32], c: usize, rows: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(c * c);
    for rb in 0..c / rows {
        for j in 0..c {
            out.extend((0..rows).map(|k| gamma[(rb * rows + k) * c + j]));
        }
    }
    out
}

/// One task's pixels `[p0, p0 + n)` of a `c x plane` GDN from `src` to `dst` (the same tensor or
/// two that do not overlap), with `gamma` packed by [`pack_gamma`] for the build's row block
/// (once per layer, `GdnLayer::gamma_rows`).
pub(super) struct Tile<'a> {
    pub src: SendPtr,
    pub dst: SendPtr,
    pub plane: usize,
    pub p0: usize,
    pub n: usize,
    pub c: usize,
    pub beta: &'a [f32],
    pub gamma: &'a [f32],
    pub inverse: bool,
}

/// Rows of `gamma` per register block of the AVX-512 build.
pub(super) const ROWS_AVX512: usize = 8;
/// Rows of `gamma` per register block of the AVX2 build.
pub(super) const ROWS_AVX2: usize = 4;

/// The vector operations the kernel uses, one implementation per build, so that one body
/// ([`tile`]) serves both. Each method is `unsafe`: the CPU must have the build's features, and the
/// pointers must be valid for a vector (or the mask's lanes).
#[cfg(target_arch = "x86_64")]
trait Lanes {
    type V: Copy;
    type M: Copy;
    /// f32 lanes per vector.
    const L: usize;
    unsafe fn splat(x: f32) -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// The mask of the first `k <= L` lanes.
    unsafe fn first(k: usize) -> Self::M;
    /// Lanes outside `m` read as zero and are never accessed.
    unsafe fn load_masked(p: *const f32, m: Self::M) -> Self::V;
    unsafe fn store_masked(p: *mut f32, m: Self::M, v: Self::V);
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    /// `a * b + c`.
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `c - a * b`.
    unsafe fn fnmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// The hardware's reciprocal square root estimate (2^-14 with AVX-512, 2^-12 with AVX2).
    unsafe fn rsqrt(a: Self::V) -> Self::V;
}

/// AVX-512F: 16 lanes, `__mmask16` masks.
#[cfg(target_arch = "x86_64")]
struct Avx512;

#[cfg(target_arch = "x86_64")]
impl Lanes for Avx512 {
    type V = std::arch::x86_64::__m512;
    type M = std::arch::x86_64::__mmask16;
    const L: usize = 16;
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self::V {
        unsafe { std::arch::x86_64::_mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        unsafe { std::arch::x86_64::_mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        unsafe { std::arch::x86_64::_mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn first(k: usize) -> Self::M {
        ((1u32 << k) - 1) as Self::M
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, m: Self::M) -> Self::V {
        unsafe { std::arch::x86_64::_mm512_maskz_loadu_ps(m, p) }
    }
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, m: Self::M, v: Self::V) {
        unsafe { std::arch::x86_64::_mm512_mask_storeu_ps(p, m, v) }
    }
    #[inline(always)]
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V {
        unsafe { std::arch::x86_64::_mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        unsafe { std::arch::x86_64::_mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn fnmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        unsafe { std::arch::x86_64::_mm512_fnmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn rsqrt(a: Self::V) -> Self::V {
        unsafe { std::arch::x86_64::_mm512_rsqrt14_ps(a) }
    }
}

/// AVX2 with FMA: 8 lanes, masks with the sign bits of the lanes set.
#[cfg(target_arch = "x86_64")]
struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Lanes for Avx2 {
    type V = std::arch::x86_64::__m256;
    type M = std::arch::x86_64::__m256i;
    const L: usize = 8;
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self::V {
        unsafe { std::arch::x86_64::_mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        unsafe { std::arch::x86_64::_mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        unsafe { std::arch::x86_64::_mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn first(k: usize) -> Self::M {
        use std::arch::x86_64::*;
        unsafe {
            _mm256_cmpgt_epi32(
                _mm256_set1_epi32(k as i32),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            )
        }
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, m: Self::M) -> Self::V {
        unsafe { std::arch::x86_64::_mm256_maskload_ps(p, m) }
    }
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, m: Self::M, v: Self::V) {
        unsafe { std::arch::x86_64::_mm256_maskstore_ps(p, m, v) }
    }
    #[inline(always)]
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V {
        unsafe { std::arch::x86_64::_mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        unsafe { std::arch::x86_64::_mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn fnmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        unsafe { std::arch::x86_64::_mm256_fnmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn rsqrt(a: Self::V) -> Self::V {
        unsafe { std::arch::x86_64::_mm256_rsqrt_ps(a) }
    }
}

/// The kernel, for blocks of three vectors of pixels and `R` rows of `gamma` (`3R` accumulators).
/// Inlined into each build's entry point, whose target features its operations then compile with.
///
/// # Safety
/// The CPU must have `S`'s features; `t.src` and `t.dst` must be valid for the `c x plane` tensor
/// and pixels `[p0, p0 + n)` of every channel must belong to this task; `c` must be a multiple of
/// `R`, `beta` hold `c` values, `gamma` `c * c`, and `sq` at least `n.div_ceil(3 L) * c * 3 L`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tile<S: Lanes, const R: usize>(t: &Tile<'_>, sq: &mut [f32]) {
    const V: usize = 3;
    let (l, b_) = (S::L, S::L * V);
    let (c, n) = (t.c, t.n);
    let blocks = n.div_ceil(b_);
    assert!(c.is_multiple_of(R) && sq.len() >= blocks * c * b_ && t.gamma.len() >= c * c);
    let sq = sq.as_mut_ptr();
    // SAFETY (every block below): the CPU has `S`'s features (forwarded from the caller); the
    // tensors' accesses are masked to the task's pixels of a channel below `c` (masked-off lanes
    // are never accessed), `sq` holds `blocks * c * b_` values, `gamma` `c * c` and `beta` `c`, as
    // asserted above.
    unsafe {
        // The lanes of the vector at pixel `q` that lie inside the tile.
        let mask = |q: usize| S::first(n.saturating_sub(q).min(l));
        for j in 0..c {
            let row = t.src.get().add(j * t.plane + t.p0);
            for b in 0..blocks {
                for v in 0..V {
                    let q = b * b_ + v * l;
                    let x = S::load_masked(row.add(q), mask(q));
                    S::store(sq.add((b * c + j) * b_ + v * l), S::mul(x, x));
                }
            }
        }
        let half = S::splat(0.5);
        let three_halves = S::splat(1.5);
        for b in 0..blocks {
            let blk = sq.add(b * c * b_);
            for rb in 0..c / R {
                let g = &t.gamma[rb * c * R..][..c * R];
                let mut acc = [[S::splat(0.0); V]; R];
                for (k, row) in acc.iter_mut().enumerate() {
                    *row = [S::splat(t.beta[rb * R + k]); V];
                }
                for (j, gj) in g.chunks_exact(R).enumerate() {
                    let mut s = [S::splat(0.0); V];
                    for (v, sv) in s.iter_mut().enumerate() {
                        *sv = S::load(blk.add(j * b_ + v * l));
                    }
                    for (row, &gk) in acc.iter_mut().zip(gj) {
                        let gk = S::splat(gk);
                        for (a, &sv) in row.iter_mut().zip(&s) {
                            *a = S::fmadd(gk, sv, *a);
                        }
                    }
                }
                for (k, row) in acc.iter().enumerate() {
                    let at = (rb * R + k) * t.plane + t.p0;
                    for (v, &a) in row.iter().enumerate() {
                        let q = b * b_ + v * l;
                        let m = mask(q);
                        // One Newton step on the estimate: r = r0 * (3/2 - a/2 * r0²) (relative
                        // error about 2^-22 from AVX2's 2^-12).
                        let r0 = S::rsqrt(a);
                        let h = S::mul(S::mul(half, a), r0);
                        let r = S::mul(r0, S::fnmadd(h, r0, three_halves));
                        let f = if t.inverse { S::mul(a, r) } else { r };
                        let x = S::load_masked(t.src.get().add(at + q), m);
                        S::store_masked(t.dst.get().add(at + q), m, S::mul(x, f));
                    }
                }
            }
        }
    }
}

/// The AVX-512 build: blocks of 48 pixels, 8 rows, 24 accumulators.
///
/// # Safety
/// The CPU must support AVX-512F; the rest as for [`tile`] with `R` = [`ROWS_AVX512`] and `L` = 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn tile_avx512(t: &Tile<'_>, sq: &mut [f32]) {
    // SAFETY: forwarded from the caller.
    unsafe { tile::<Avx512, ROWS_AVX512>(t, sq) }
}

/// The AVX2 build: blocks of 24 pixels, 4 rows, 12 accumulators.
///
/// # Safety
/// The CPU must support AVX2 and FMA; the rest as for [`tile`] with `R` = [`ROWS_AVX2`] and `L` = 8.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn tile_avx2(t: &Tile<'_>, sq: &mut [f32]) {
    // SAFETY: forwarded from the caller.
    unsafe { tile::<Avx2, ROWS_AVX2>(t, sq) }
}
