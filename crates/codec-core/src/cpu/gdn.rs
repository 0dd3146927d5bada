//! GDN / IGDN and LeakyReLU, in place.
//!
//! GDN: `y_i = x_i / sqrt(beta_i + sum_j gamma[i, j] * x_j²)`; IGDN multiplies by the square root
//! instead. Per pixel, across channels only.
//!
//! - [`Math::Fast`](super::Math::Fast): per tile of pixels, `x²` is formed in scratch and
//!   multiplied by `gamma` with `gemm`.
//! - [`Math::Exact`](super::Math::Exact): `acc = beta_i; for j in 0..c { acc = acc + gamma[i, j] *
//!   (x_j * x_j) }`, then `x_i / sqrt(acc)` (or `x_i * sqrt(acc)`), separate multiply and add,
//!   correctly rounded `sqrt` and division; vectorized across pixels only.

use std::ops::Range;

use rayon::prelude::*;

use super::conv::{GdnLayer, SendPtr};
use super::gemm::{sgemm, tile_width, with_scratch};
use super::{has_avx2, has_fma};
use crate::tensor::Tensor;

/// Pixels per task of the exact kernel and per vector block.
const EXACT_TILE: usize = 256;
const LANES: usize = 16;

/// Tiles of `pt` pixels over the pixels `span` of a plane, run in parallel (or in turn on this
/// thread); each task owns pixels `[p0, p0 + n)` of every channel.
fn for_each_tile(
    span: Range<usize>,
    c: usize,
    pt: usize,
    parallel: bool,
    f: impl Fn(usize, usize) + Sync,
) {
    if span.is_empty() || c == 0 {
        return;
    }
    let tile = |t: usize| {
        let p0 = span.start + t * pt;
        f(p0, pt.min(span.end - p0));
    };
    let tiles = span.len().div_ceil(pt);
    if parallel {
        (0..tiles).into_par_iter().for_each(tile);
    } else {
        (0..tiles).for_each(tile);
    }
}

#[inline(always)]
fn finish(x: f32, acc: f32, inverse: bool) -> f32 {
    if inverse {
        x * acc.sqrt()
    } else {
        x / acc.sqrt()
    }
}

/// `sq[j, i] = x[j, p0 + i]²` for the `n` pixels of a tile.
///
/// # Safety
/// `ptr` must point to a `c x plane` CHW tensor whose pixels `[p0, p0 + n)` no other task writes.
#[inline(always)]
unsafe fn squares(ptr: SendPtr, plane: usize, p0: usize, n: usize, sq: &mut [f32]) {
    for (j, row) in sq.chunks_exact_mut(n).enumerate() {
        // SAFETY: forwarded from the caller.
        let xj = unsafe { std::slice::from_raw_parts(ptr.get().add(j * plane + p0), n) };
        for (s, &v) in row.iter_mut().zip(xj) {
            *s = v * v;
        }
    }
}

/// The Fast tile body after the GEMM: `dst[i] = src[i] / sqrt(beta[i] + norm[i])` (or `*`);
/// `src` and `dst` are the same tensor or two that do not overlap.
///
/// # Safety
/// As for [`squares`], for both `src` and `dst`.
#[inline(always)]
unsafe fn normalize(
    g: &GdnLayer,
    (src, dst): (SendPtr, SendPtr),
    plane: usize,
    p0: usize,
    n: usize,
    norm: &[f32],
) {
    for (i, row) in norm.chunks_exact(n).enumerate() {
        let b = g.beta[i];
        let at = i * plane + p0;
        if src.get() == dst.get() {
            // SAFETY: forwarded from the caller.
            let xi = unsafe { std::slice::from_raw_parts_mut(dst.get().add(at), n) };
            for (v, &s) in xi.iter_mut().zip(row) {
                *v = finish(*v, b + s, g.inverse);
            }
        } else {
            // SAFETY: forwarded from the caller; the two tensors do not overlap.
            let (xi, yi) = unsafe {
                (
                    std::slice::from_raw_parts(src.get().add(at), n),
                    std::slice::from_raw_parts_mut(dst.get().add(at), n),
                )
            };
            for ((y, &v), &s) in yi.iter_mut().zip(xi).zip(row) {
                *y = finish(v, b + s, g.inverse);
            }
        }
    }
}

/// The Exact tile body: the documented order, vectorized across pixels only.
///
/// # Safety
/// As for [`squares`].
#[inline(always)]
unsafe fn exact_tile(
    g: &GdnLayer,
    ptr: SendPtr,
    plane: usize,
    p0: usize,
    n: usize,
    sq: &mut [f32],
) {
    let c = g.c;
    // SAFETY: forwarded from the caller.
    unsafe { squares(ptr, plane, p0, n, sq) };
    for i in 0..c {
        let row = &g.gamma[i * c..(i + 1) * c];
        // SAFETY: as above (all squares were taken before the first write).
        let xi = unsafe { std::slice::from_raw_parts_mut(ptr.get().add(i * plane + p0), n) };
        let mut q = 0;
        while q + LANES <= n {
            let mut acc = [g.beta[i]; LANES];
            for (j, &gij) in row.iter().enumerate() {
                let s: &[f32; LANES] = match sq[j * n + q..][..LANES].try_into() {
                    Ok(s) => s,
                    Err(_) => unreachable!(),
                };
                for l in 0..LANES {
                    acc[l] += gij * s[l];
                }
            }
            for (v, &a) in xi[q..q + LANES].iter_mut().zip(&acc) {
                *v = finish(*v, a, g.inverse);
            }
            q += LANES;
        }
        for (qq, v) in xi.iter_mut().enumerate().skip(q) {
            let mut acc = g.beta[i];
            for (j, &gij) in row.iter().enumerate() {
                acc += gij * sq[j * n + qq];
            }
            *v = finish(*v, acc, g.inverse);
        }
    }
}

/// [`normalize`] with the hardware's reciprocal square root estimate refined by one Newton step
/// (relative error about 2^-22, inside the Fast path's tolerance) in place of a correctly rounded
/// square root and division: those two cost about a fifth of the GEMM's time at 128 channels.
/// The model loader refuses a `beta` that is not a positive normal number, so `beta + norm` is a
/// positive normal number for every finite input, where the estimate is defined.
///
/// # Safety
/// As for [`normalize`]; the CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn normalize_fma(
    g: &GdnLayer,
    (src, dst): (SendPtr, SendPtr),
    plane: usize,
    p0: usize,
    n: usize,
    norm: &[f32],
) {
    use std::arch::x86_64::*;
    const W: usize = 8;
    let half = _mm256_set1_ps(0.5);
    let three_halves = _mm256_set1_ps(1.5);
    for (i, row) in norm.chunks_exact(n).enumerate() {
        let b = _mm256_set1_ps(g.beta[i]);
        let at = i * plane + p0;
        let mut q = 0;
        while q + W <= n {
            // SAFETY: `q + W <= n`, `row` holds `n` values and the tensors' pixels
            // `[p0, p0 + n)` of channel `i` belong to this task (forwarded from the caller);
            // each lane is read before it is written, so `src == dst` is fine.
            unsafe {
                let a = _mm256_add_ps(b, _mm256_loadu_ps(row.as_ptr().add(q)));
                let r0 = _mm256_rsqrt_ps(a);
                // One Newton step: r = r0 * (3/2 - a/2 * r0²).
                let h = _mm256_mul_ps(_mm256_mul_ps(half, a), r0);
                let r = _mm256_mul_ps(r0, _mm256_fnmadd_ps(h, r0, three_halves));
                let f = if g.inverse { _mm256_mul_ps(a, r) } else { r };
                let x = _mm256_loadu_ps(src.get().add(at + q));
                _mm256_storeu_ps(dst.get().add(at + q), _mm256_mul_ps(x, f));
            }
            q += W;
        }
        for (q, &s) in row.iter().enumerate().skip(q) {
            // SAFETY: as above, one value at a time.
            unsafe {
                let v = *src.get().add(at + q);
                *dst.get().add(at + q) = finish(v, g.beta[i] + s, g.inverse);
            }
        }
    }
}

/// Forwards to [`normalize`] (no AVX2 on this architecture).
///
/// # Safety
/// As for [`normalize`].
#[cfg(not(target_arch = "x86_64"))]
unsafe fn normalize_fma(
    g: &GdnLayer,
    ptrs: (SendPtr, SendPtr),
    plane: usize,
    p0: usize,
    n: usize,
    norm: &[f32],
) {
    // SAFETY: forwarded from the caller.
    unsafe { normalize(g, ptrs, plane, p0, n, norm) }
}

avx2_variant!(squares_avx2 => squares(ptr: SendPtr, plane: usize, p0: usize, n: usize, sq: &mut [f32]));
avx2_variant!(normalize_avx2 => normalize(g: &GdnLayer, ptrs: (SendPtr, SendPtr), plane: usize, p0: usize, n: usize, norm: &[f32]));
avx2_variant!(exact_tile_avx2 => exact_tile(g: &GdnLayer, ptr: SendPtr, plane: usize, p0: usize, n: usize, sq: &mut [f32]));

/// Floats of `x` per GDN tile: the tile of `x`, its squares and their product with `gamma` (three
/// of these) then stay in a core's L2 between the passes (1 MiB per core on the dev machine; at
/// 128 channels, 256-pixel tiles ran 5-10 % faster than 1024-pixel ones, one thread, best of 15).
const GDN_TILE_FLOATS: usize = 1 << 15;

/// Pixels per GDN tile over `c` channels: [`tile_width`]'s, capped for the cache (multiple of 16).
fn gdn_tile_width(c: usize, plane: usize) -> usize {
    let by_cache = (GDN_TILE_FLOATS / c.max(1)).max(64).div_ceil(16) * 16;
    tile_width(c, plane).min(by_cache)
}

/// GDN / IGDN with `gemm` on tiles of `x²`, in place.
pub(crate) fn gdn_fast_in_place(g: &GdnLayer, x: &mut Tensor) {
    let ptr = SendPtr(x.data.as_mut_ptr());
    // SAFETY: `ptr` is `x`'s `c x plane` data, borrowed mutably for the call.
    unsafe { gdn_fast(g, ptr, ptr, x.c, x.plane(), 0..x.plane(), true) }
}

/// [`gdn_fast_in_place`] on the pixels `span` of a `c x plane` tensor at `ptr`, on this thread
/// (for a task that has just computed them).
///
/// # Safety
/// `ptr` must be valid for `c * plane` values, `span` must lie inside a plane, and nothing else
/// may access the span's pixels meanwhile.
pub(crate) unsafe fn gdn_fast_pixels(g: &GdnLayer, ptr: SendPtr, plane: usize, span: Range<usize>) {
    // SAFETY: forwarded from the caller.
    unsafe { gdn_fast(g, ptr, ptr, g.c, plane, span, false) }
}

/// GDN / IGDN with `gemm` on tiles of `x²`, into a new tensor (for a caller that keeps `x`, as the
/// backward pass's tape does, without copying it first).
pub(crate) fn gdn_fast_into(g: &GdnLayer, x: &Tensor) -> Tensor {
    let mut out = Tensor::zeros(x.c, x.h, x.w);
    // Only read through `src` (the pointer type is shared with the writers).
    let src = SendPtr(x.data.as_ptr().cast_mut());
    let dst = SendPtr(out.data.as_mut_ptr());
    // SAFETY: `src` is `x`'s data (only read), `dst` the distinct `out` of the same shape.
    unsafe { gdn_fast(g, src, dst, x.c, x.plane(), 0..x.plane(), true) };
    out
}

/// The Fast GDN from `src` to `dst` (`c x plane` each; the same tensor or two that do not overlap):
/// the register-blocked kernel of `gdn_simd` where the CPU and `c` allow it, else squares, `gemm`
/// and a normalization pass.
///
/// # Safety
/// Both pointers must be valid for `c * plane` values, `span` must lie inside a plane, and nothing
/// else may access the span's pixels meanwhile. `parallel`: the tiles as rayon tasks, else in turn.
unsafe fn gdn_fast(
    g: &GdnLayer,
    src: SendPtr,
    dst: SendPtr,
    c: usize,
    plane: usize,
    span: Range<usize>,
    parallel: bool,
) {
    assert_eq!(c, g.c, "GDN input has {c} channels, layer expects {}", g.c);
    #[cfg(target_arch = "x86_64")]
    {
        use super::gdn_simd::{tile_avx2, tile_avx512, Tile, BLOCK};
        use super::gdn_simd::{ROWS_AVX2, ROWS_AVX512};
        use super::has_avx512;
        let build = if has_avx512() && c.is_multiple_of(ROWS_AVX512) {
            Some(ROWS_AVX512)
        } else if has_fma() && c.is_multiple_of(ROWS_AVX2) {
            Some(ROWS_AVX2)
        } else {
            None
        };
        if let Some(rows) = build {
            let gamma = g.gamma_rows(rows);
            let pt = gdn_tile_width(c, span.len()).div_ceil(BLOCK) * BLOCK;
            for_each_tile(span.clone(), c, pt, parallel, |p0, n| {
                with_scratch(n.div_ceil(BLOCK) * BLOCK * c, |sq| {
                    let t = Tile {
                        src,
                        dst,
                        plane,
                        p0,
                        n,
                        c,
                        beta: &g.beta,
                        gamma,
                        inverse: g.inverse,
                    };
                    // SAFETY: pixels `[p0, p0 + n)` of every channel belong to this task (the
                    // caller's tensors, forwarded); the build's CPU features were detected and
                    // `c` is a multiple of its rows; `sq` holds `n` rounded up to whole blocks
                    // for `c` channels (the AVX2 build's blocks divide `BLOCK`).
                    unsafe {
                        if rows == ROWS_AVX512 {
                            tile_avx512(&t, sq);
                        } else {
                            tile_avx2(&t, sq);
                        }
                    }
                });
            });
            return;
        }
    }
    let pt = gdn_tile_width(c, span.len());
    let avx2 = has_avx2();
    let fma = has_fma();
    for_each_tile(span.clone(), c, pt, parallel, |p0, n| {
        with_scratch(2 * c * n, |buf| {
            let (sq, norm) = buf.split_at_mut(c * n);
            // SAFETY: pixels `[p0, p0 + n)` of every channel belong to this task; the AVX2
            // variants only run where AVX2 was detected; `norm` is `c x n`, `gamma` `c x c`,
            // `sq` `c x n`.
            unsafe {
                if avx2 {
                    squares_avx2(src, plane, p0, n, sq);
                } else {
                    squares(src, plane, p0, n, sq);
                }
                sgemm(
                    false,
                    c,
                    n,
                    c,
                    norm.as_mut_ptr(),
                    n,
                    g.gamma.as_ptr(),
                    c,
                    sq.as_ptr(),
                    n,
                );
                if fma {
                    normalize_fma(g, (src, dst), plane, p0, n, norm);
                } else if avx2 {
                    normalize_avx2(g, (src, dst), plane, p0, n, norm);
                } else {
                    normalize(g, (src, dst), plane, p0, n, norm);
                }
            }
        });
    });
}

/// GDN / IGDN in the fixed order documented in the module docs.
pub(crate) fn gdn_exact_in_place(g: &GdnLayer, x: &mut Tensor) {
    let plane = x.plane();
    let avx2 = has_avx2();
    let ptr = SendPtr(x.data.as_mut_ptr());
    for_each_tile(0..plane, x.c, EXACT_TILE, true, |p0, n| {
        with_scratch(g.c * n, |sq| {
            // SAFETY: pixels `[p0, p0 + n)` of every channel belong to this task; the AVX2
            // variant only runs where AVX2 was detected.
            unsafe {
                if avx2 {
                    exact_tile_avx2(g, ptr, plane, p0, n, sq);
                } else {
                    exact_tile(g, ptr, plane, p0, n, sq);
                }
            }
        });
    });
}

/// `x` if `x > 0`, else `slope * x` (exact in both arithmetics).
pub(crate) fn leaky_relu_in_place(data: &mut [f32], slope: f32) {
    data.par_chunks_mut(1 << 14).for_each(|chunk| {
        for v in chunk {
            *v = if *v > 0.0 { *v } else { *v * slope };
        }
    });
}
