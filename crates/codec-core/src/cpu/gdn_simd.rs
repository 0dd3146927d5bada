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

/// The AVX-512 build: blocks of 48 pixels, 8 rows, 24 accumulators.
///
/// # Safety
/// The CPU must support AVX-512F; `t.src` and `t.dst` must be valid for the `c x plane` tensor and
/// pixels `[p0, p0 + n)` of every channel must belong to this task; `c` must be a multiple of
/// [`ROWS_AVX512`], `beta` hold `c` values, `gamma` `c * c`, and `sq` at least
/// `n.div_ceil(48) * c * 48`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn tile_avx512(t: &Tile<'_>, sq: &mut [f32]) {
    use std::arch::x86_64::*;
    const L: usize = 16;
    const V: usize = 3;
    const R: usize = ROWS_AVX512;
    const B: usize = L * V;
    let (c, n) = (t.c, t.n);
    let blocks = n.div_ceil(B);
    assert!(c.is_multiple_of(R) && sq.len() >= blocks * c * B && t.gamma.len() >= c * c);
    // The lanes of the vector at pixel `q` that lie inside the tile.
    let mask = |q: usize| ((1u32 << n.saturating_sub(q).min(L)) - 1) as __mmask16;
    let sq = sq.as_mut_ptr();
    // SAFETY (every block below): the tensors' accesses are masked to the task's pixels of a
    // channel below `c` (forwarded from the caller; masked-off lanes are never accessed), `sq`
    // holds `blocks * c * B` values, `gamma` `c * c` and `beta` `c`, as asserted above.
    for j in 0..c {
        let row = unsafe { t.src.get().add(j * t.plane + t.p0) };
        for b in 0..blocks {
            for v in 0..V {
                let q = b * B + v * L;
                unsafe {
                    let x = _mm512_maskz_loadu_ps(mask(q), row.add(q));
                    _mm512_storeu_ps(sq.add((b * c + j) * B + v * L), _mm512_mul_ps(x, x));
                }
            }
        }
    }
    let half = _mm512_set1_ps(0.5);
    let three_halves = _mm512_set1_ps(1.5);
    for b in 0..blocks {
        let blk = unsafe { sq.add(b * c * B) };
        for rb in 0..c / R {
            let g = &t.gamma[rb * c * R..][..c * R];
            let mut acc = [[_mm512_setzero_ps(); V]; R];
            for (k, row) in acc.iter_mut().enumerate() {
                *row = [_mm512_set1_ps(t.beta[rb * R + k]); V];
            }
            for (j, gj) in g.chunks_exact(R).enumerate() {
                let mut s = [_mm512_setzero_ps(); V];
                for (v, sv) in s.iter_mut().enumerate() {
                    *sv = unsafe { _mm512_loadu_ps(blk.add(j * B + v * L)) };
                }
                for (row, &gk) in acc.iter_mut().zip(gj) {
                    let gk = _mm512_set1_ps(gk);
                    for (a, &sv) in row.iter_mut().zip(&s) {
                        *a = _mm512_fmadd_ps(gk, sv, *a);
                    }
                }
            }
            for (k, row) in acc.iter().enumerate() {
                let at = (rb * R + k) * t.plane + t.p0;
                for (v, &a) in row.iter().enumerate() {
                    let q = b * B + v * L;
                    let m = mask(q);
                    // One Newton step on the 2^-14 estimate: r = r0 * (3/2 - a/2 * r0²).
                    let r0 = _mm512_rsqrt14_ps(a);
                    let h = _mm512_mul_ps(_mm512_mul_ps(half, a), r0);
                    let r = _mm512_mul_ps(r0, _mm512_fnmadd_ps(h, r0, three_halves));
                    let f = if t.inverse { _mm512_mul_ps(a, r) } else { r };
                    unsafe {
                        let x = _mm512_maskz_loadu_ps(m, t.src.get().add(at + q));
                        _mm512_mask_storeu_ps(t.dst.get().add(at + q), m, _mm512_mul_ps(x, f));
                    }
                }
            }
        }
    }
}

/// The AVX2 build: blocks of 24 pixels, 4 rows, 12 accumulators.
///
/// # Safety
/// As for [`tile_avx512`], with AVX2 and FMA in place of AVX-512F, [`ROWS_AVX2`] in place of
/// [`ROWS_AVX512`] and `sq` at least `n.div_ceil(24) * c * 24`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn tile_avx2(t: &Tile<'_>, sq: &mut [f32]) {
    use std::arch::x86_64::*;
    const L: usize = 8;
    const V: usize = 3;
    const R: usize = ROWS_AVX2;
    const B: usize = L * V;
    let (c, n) = (t.c, t.n);
    let blocks = n.div_ceil(B);
    assert!(c.is_multiple_of(R) && sq.len() >= blocks * c * B && t.gamma.len() >= c * c);
    let mask = |q: usize| lanes_below(n.saturating_sub(q).min(L));
    let sq = sq.as_mut_ptr();
    // SAFETY (every block below): as in `tile_avx512`.
    for j in 0..c {
        let row = unsafe { t.src.get().add(j * t.plane + t.p0) };
        for b in 0..blocks {
            for v in 0..V {
                let q = b * B + v * L;
                unsafe {
                    let x = _mm256_maskload_ps(row.add(q), mask(q));
                    _mm256_storeu_ps(sq.add((b * c + j) * B + v * L), _mm256_mul_ps(x, x));
                }
            }
        }
    }
    let half = _mm256_set1_ps(0.5);
    let three_halves = _mm256_set1_ps(1.5);
    for b in 0..blocks {
        let blk = unsafe { sq.add(b * c * B) };
        for rb in 0..c / R {
            let g = &t.gamma[rb * c * R..][..c * R];
            let mut acc = [[_mm256_setzero_ps(); V]; R];
            for (k, row) in acc.iter_mut().enumerate() {
                *row = [_mm256_set1_ps(t.beta[rb * R + k]); V];
            }
            for (j, gj) in g.chunks_exact(R).enumerate() {
                let mut s = [_mm256_setzero_ps(); V];
                for (v, sv) in s.iter_mut().enumerate() {
                    *sv = unsafe { _mm256_loadu_ps(blk.add(j * B + v * L)) };
                }
                for (row, &gk) in acc.iter_mut().zip(gj) {
                    let gk = _mm256_set1_ps(gk);
                    for (a, &sv) in row.iter_mut().zip(&s) {
                        *a = _mm256_fmadd_ps(gk, sv, *a);
                    }
                }
            }
            for (k, row) in acc.iter().enumerate() {
                let at = (rb * R + k) * t.plane + t.p0;
                for (v, &a) in row.iter().enumerate() {
                    let q = b * B + v * L;
                    let m = mask(q);
                    // One Newton step on the 2^-12 estimate (relative error about 2^-22).
                    let r0 = _mm256_rsqrt_ps(a);
                    let h = _mm256_mul_ps(_mm256_mul_ps(half, a), r0);
                    let r = _mm256_mul_ps(r0, _mm256_fnmadd_ps(h, r0, three_halves));
                    let f = if t.inverse { _mm256_mul_ps(a, r) } else { r };
                    unsafe {
                        let x = _mm256_maskload_ps(t.src.get().add(at + q), m);
                        _mm256_maskstore_ps(t.dst.get().add(at + q), m, _mm256_mul_ps(x, f));
                    }
                }
            }
        }
    }
}

/// The AVX2 mask (sign bits set) of the first `k <= 8` lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn lanes_below(k: usize) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(k as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}
