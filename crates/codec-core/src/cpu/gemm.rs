//! [`Math::Fast`](super::Math::Fast) convolutions: im2col tiles + the `gemm` crate.
//!
//! The grid of output positions (flattened row-major) is cut into tiles of `pt` positions. A
//! rayon task per tile builds, for every phase, the im2col matrix `[K = cin * taps, pt]` of the
//! tile in a per-thread scratch buffer and multiplies the phase's weight matrix `[cout, K]` by it
//! with a single-threaded `gemm` call (on the 2-core AVX-512 dev machine this beat one big tile
//! per layer with `Parallelism::Rayon` by 15-40 %). Plain convolutions write the product straight
//! into the output planes, the bias entering through an extra row of ones; transposed
//! convolutions multiply into a `[cout, pt]` scratch block and scatter it (plus bias) to the
//! phase's sub-pixel positions; those with very few output channels use col2im instead (see
//! [`FastKind::Col2im`]). The im2col reads the input directly (zero padding handled
//! arithmetically, stride-2 rows de-interleaved on the fly), so memory stays bounded by the
//! output plus `O(threads * K * pt)` scratch: the full im2col matrix is never materialized.

use std::cell::RefCell;

use rayon::prelude::*;

use super::conv::{ConvGeom, ConvLayer, Phase, SendPtr};
use super::planes::Planes;
use super::winograd::Winograd;
use super::{has_avx2, zeroed};
use crate::tensor::Tensor;

/// Target size of one im2col tile in floats (1 MiB: stays in L2 together with gemm's packing).
const TILE_FLOATS: usize = 1 << 18;
/// Smallest / largest tile width in grid positions.
const MIN_TILE: usize = 32;
const MAX_TILE: usize = 1024;

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with a per-thread scratch slice of at least `len` floats (contents unspecified).
/// Falls back to a fresh allocation if the thread's buffer is already in use (re-entrancy).
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                // Replaced, not grown: growing copies the old contents (never read again) and
                // writes zeros over the rest, touching every page; a zeroed allocation is left
                // to the kernel, whose pages arrive zeroed where a task first writes them.
                *buf = Vec::new();
                *buf = vec![0.0; len];
            }
            f(&mut buf[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    })
}

/// Tile width (grid positions) for an im2col matrix with `k` rows over `positions` positions.
pub(crate) fn tile_width(k: usize, positions: usize) -> usize {
    let by_cache = (TILE_FLOATS / k.max(1)).clamp(MIN_TILE, MAX_TILE);
    // Enough tiles for load balance: at least ~4 per thread when the layer is large enough.
    let tasks = 4 * rayon::current_num_threads();
    let by_balance = positions.div_ceil(tasks).max(MIN_TILE);
    let pt = by_cache.min(by_balance);
    // A multiple of 16 keeps gemm's micro-kernel columns full.
    pt.div_ceil(16) * 16
}

/// `dst[m x n] = lhs[m x k] * rhs[k x n]` (or `dst += ..` when `accumulate`, then `dst` is read
/// too), all row-major with the given row strides.
///
/// # Safety
/// `dst`, `lhs`, `rhs` must be valid for the strided `m x n`, `m x k`, `k x n` accesses, and
/// `dst` must not overlap the inputs nor be accessed concurrently.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm(
    accumulate: bool,
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    lhs: *const f32,
    lhs_rs: usize,
    rhs: *const f32,
    rhs_rs: usize,
) {
    // SAFETY: forwarded from the caller; without `accumulate`, `dst` is write-only.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            lhs,
            1,
            lhs_rs as isize,
            rhs,
            1,
            rhs_rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Weights of one phase as a row-major `[cout, kdim]` matrix, columns ordered `(ci, ty, tx)`
/// like the im2col rows; when the grid is the output (`up == 1`) and there is a bias, one more
/// column holds the bias and the im2col tile gets a matching row of ones (no separate bias pass
/// over the output).
#[derive(Debug)]
struct FastPhase {
    w: Vec<f32>,
    kdim: usize,
    bias_row: bool,
}

/// Transposed convolutions with at most this many output channels use [`FastKind::Col2im`].
const COL2IM_MAX_COUT: usize = 8;

#[derive(Debug)]
enum FastKind {
    /// One im2col + GEMM per sub-pixel phase (no multiplications by inserted zeros).
    Phases(Vec<FastPhase>),
    /// Transposed convolutions with few output channels (the last layer of a synthesis
    /// transform): `cols[(co, ky, kx), pixel] = W^T[(co, ky, kx), ci] * x[ci, pixel]` straight
    /// from the input planes (no im2col, GEMM `m = cout*k*k` instead of `cout`), then each column
    /// is added to the `k x k` output pixels it touches ("col2im"). Every product is still a real
    /// tap; tiles of input rows run in two waves so that concurrent tiles never touch the same
    /// output row.
    Col2im {
        /// `[(co, ky, kx), ci]` row-major.
        w: Vec<f32>,
    },
    /// Wide layers whose taps fit a 3x3 correlation (see [`Winograd`]).
    Winograd(Winograd),
}

/// A convolution packed for [`Math::Fast`](super::Math::Fast).
#[derive(Debug)]
pub(crate) struct FastConv {
    kind: FastKind,
}

impl FastConv {
    pub fn prepare(layer: &ConvLayer) -> FastConv {
        let g = &layer.geom;
        if g.transposed && g.cout <= COL2IM_MAX_COUT {
            let k = g.k;
            let mut w = Vec::with_capacity(g.cout * k * k * g.cin);
            layer.for_each_out_channel(|_, ch| {
                for ky in 0..k {
                    for kx in 0..k {
                        w.extend((0..g.cin).map(|ci| ch.w(ci, ky, kx)));
                    }
                }
            });
            return FastConv {
                kind: FastKind::Col2im { w },
            };
        }
        if let Some(w) = Winograd::prepare(layer) {
            return FastConv {
                kind: FastKind::Winograd(w),
            };
        }
        let bias = layer.bias().filter(|_| g.up() == 1);
        let mut phases: Vec<FastPhase> = g
            .phases
            .iter()
            .map(|ph| {
                let kdim = g.cin * ph.taps() + usize::from(bias.is_some());
                FastPhase {
                    w: Vec::with_capacity(g.cout * kdim),
                    kdim,
                    bias_row: bias.is_some(),
                }
            })
            .collect();
        layer.for_each_out_channel(|co, ch| {
            for (ph, fp) in g.phases.iter().zip(&mut phases) {
                for ci in 0..g.cin {
                    for ty in &ph.ty {
                        for tx in &ph.tx {
                            fp.w.push(ch.w(ci, ty.k, tx.k));
                        }
                    }
                }
                if let Some(b) = bias {
                    fp.w.push(b[co]);
                }
            }
        });
        FastConv {
            kind: FastKind::Phases(phases),
        }
    }

    #[cfg(test)]
    pub fn is_winograd(&self) -> bool {
        matches!(self.kind, FastKind::Winograd(_))
    }

    /// Runs the convolution; `buf` is recycled storage for the output (any contents).
    pub fn run(&self, g: &ConvGeom, bias: Option<&[f32]>, x: &Tensor, buf: Vec<f32>) -> Tensor {
        let (oh, ow) = g.out_hw(x.h, x.w);
        let mut out = recycle(buf, g.cout, oh, ow);
        if oh * ow == 0 || g.cout == 0 {
            return out;
        }
        match &self.kind {
            FastKind::Phases(phases) => {
                let (ptr, stride) = (SendPtr(out.data.as_mut_ptr()), out.plane());
                let rows = 0..g.grid(x.h, x.w).0;
                run_phases(phases, g, bias, x, rows, (ptr, stride, ow), None);
            }
            FastKind::Col2im { w } => run_col2im(w, g, bias, x, &mut out),
            FastKind::Winograd(w) => w.run(g.grid(x.h, x.w), bias, x, &mut out),
        }
        out
    }

    /// The im2col + GEMM build of a plain convolution (`Some` only for one that has it), for
    /// [`PlainConv::run_rows`].
    pub fn plain(&self, g: &ConvGeom) -> Option<PlainConv<'_>> {
        match &self.kind {
            FastKind::Phases(phases) if g.up() == 1 => Some(PlainConv { phases }),
            _ => None,
        }
    }

    /// The Winograd build, if the layer has one.
    pub fn winograd(&self) -> Option<&Winograd> {
        match &self.kind {
            FastKind::Winograd(w) => Some(w),
            _ => None,
        }
    }
}

/// A `c x h x w` tensor reusing `buf`'s allocation (contents unspecified: callers overwrite all).
pub(crate) fn recycle(mut buf: Vec<f32>, c: usize, h: usize, w: usize) -> Tensor {
    let len = c * h * w;
    if buf.capacity() < len {
        // A fresh zeroed allocation is cheaper than growing (no copy of stale data).
        buf = zeroed(len);
    } else {
        buf.truncate(len);
        buf.resize(len, 0.0);
    }
    Tensor { c, h, w, data: buf }
}

/// A plain convolution's im2col + GEMM phases (see [`FastConv::plain`]).
pub(crate) struct PlainConv<'a> {
    phases: &'a [FastPhase],
}

impl PlainConv<'_> {
    /// Output rows `rows` of the convolution of `x`, channel `co`'s row `rows.start + r` written
    /// at `out + co * stride + r * w` (`w` the output width); each task then calls `then(p0, n)`
    /// on the positions `[p0, p0 + n)` (counted from `out`) it has just written.
    ///
    /// # Safety
    /// `out` must be valid for those writes, and nothing else may access them meanwhile.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn run_rows<X: Planes>(
        &self,
        g: &ConvGeom,
        bias: Option<&[f32]>,
        x: &X,
        rows: std::ops::Range<usize>,
        out: SendPtr,
        stride: usize,
        then: &(dyn Fn(usize, usize) + Sync),
    ) {
        let (_, xh, xw) = x.shape();
        let ow = g.grid(xh, xw).1;
        run_phases(self.phases, g, bias, x, rows, (out, stride, ow), Some(then));
    }
}

/// Grid rows `rows` of a convolution. `out` is `(pointer, channel stride, width)`: for a plain
/// convolution (`up == 1`) grid row `rows.start + r` of channel `co` lands at `pointer + co *
/// stride + r * width`; a transposed one runs whole (`rows` all the grid) into its output tensor.
/// `then(p0, n)` runs in each task after its positions are written (see [`PlainConv::run_rows`]).
fn run_phases<X: Planes>(
    phases: &[FastPhase],
    g: &ConvGeom,
    bias: Option<&[f32]>,
    x: &X,
    rows: std::ops::Range<usize>,
    (optr, oplane, ow): (SendPtr, usize, usize),
    then: Option<&(dyn Fn(usize, usize) + Sync)>,
) {
    let (_, xh, xw) = x.shape();
    let gw = g.grid(xh, xw).1;
    let first = rows.start * gw;
    let positions = rows.len() * gw;
    let avx2 = has_avx2();
    let kmax = phases.iter().map(|p| p.kdim).max().unwrap_or(0);
    let pt = tile_width(kmax, positions);
    let tiles = positions.div_ceil(pt);
    let up = g.up();
    let tmp_len = if up == 1 { 0 } else { g.cout * pt };
    debug_assert!(up == 1 || first == 0, "a transposed convolution runs whole");
    (0..tiles).into_par_iter().for_each(|t| {
        let p0 = t * pt;
        let n = pt.min(positions - p0);
        with_scratch(kmax * n + tmp_len, |buf| {
            let (col, tmp) = buf.split_at_mut(kmax * n);
            for (ph, fp) in g.phases.iter().zip(phases) {
                let kd = fp.kdim;
                let taps_kd = kd - usize::from(fp.bias_row);
                if taps_kd > 0 {
                    let col = &mut col[..taps_kd * n];
                    // SAFETY: the AVX2 build only runs where AVX2 was detected.
                    unsafe {
                        if avx2 {
                            im2col_avx2(x, ph, g.step(), first + p0, n, gw, col);
                        } else {
                            im2col(x, ph, g.step(), first + p0, n, gw, col);
                        }
                    }
                }
                col[taps_kd * n..kd * n].fill(1.0);
                if up == 1 {
                    // The grid is the output: multiply straight into the planes (the bias comes
                    // in through the row of ones).
                    // SAFETY: rows `co * oplane + [p0, p0 + n)` lie inside `out` and belong
                    // to this tile only.
                    unsafe {
                        let dst = optr.get().add(p0);
                        if kd > 0 {
                            sgemm(
                                false,
                                g.cout,
                                n,
                                kd,
                                dst,
                                oplane,
                                fp.w.as_ptr(),
                                kd,
                                col.as_ptr(),
                                n,
                            );
                        } else {
                            for co in 0..g.cout {
                                std::slice::from_raw_parts_mut(dst.add(co * oplane), n).fill(0.0);
                            }
                        }
                    }
                } else {
                    let tmp = &mut tmp[..g.cout * n];
                    if kd > 0 {
                        // SAFETY: `tmp` is `cout x n`, `fp.w` is `cout x kd`, `col` is `kd x n`.
                        unsafe {
                            sgemm(
                                false,
                                g.cout,
                                n,
                                kd,
                                tmp.as_mut_ptr(),
                                n,
                                fp.w.as_ptr(),
                                kd,
                                col.as_ptr(),
                                n,
                            );
                        }
                    } else {
                        tmp.fill(0.0);
                    }
                    scatter(tmp, n, bias, g.cout, p0, gw, up, ph, optr, oplane, ow);
                }
            }
        });
        if let Some(then) = then {
            then(p0, n);
        }
    });
}

fn run_col2im(w: &[f32], g: &ConvGeom, bias: Option<&[f32]>, x: &Tensor, out: &mut Tensor) {
    let (k, s, p) = (g.k, g.stride, g.k / 2);
    let rows = g.cout * k * k;
    let (oh, ow, oplane) = (out.h, out.w, out.plane());
    for co in 0..g.cout {
        out.channel_mut(co).fill(bias.map_or(0.0, |b| b[co]));
    }
    if g.cin == 0 {
        return;
    }
    // Input rows per tile: enough for the cache budget, and more than (k-1-s)/s so that tiles
    // t and t+2 never write the same output row.
    let min_rows = (k - 1) / s + 1;
    let th = (TILE_FLOATS / (rows * x.w)).max(min_rows).min(x.h.max(1));
    let tiles = x.h.div_ceil(th);
    let xplane = x.plane();
    let optr = SendPtr(out.data.as_mut_ptr());
    for wave in 0..2 {
        (wave..tiles).into_par_iter().step_by(2).for_each(|t| {
            let iy0 = t * th;
            let nr = th.min(x.h - iy0);
            let n = nr * x.w;
            with_scratch(rows * n, |cols| {
                // SAFETY: `cols` is `rows x n`; `w` is `rows x cin`; the input columns
                // `[iy0 * w, iy0 * w + n)` of each of the `cin` planes exist.
                unsafe {
                    sgemm(
                        false,
                        rows,
                        n,
                        g.cin,
                        cols.as_mut_ptr(),
                        n,
                        w.as_ptr(),
                        g.cin,
                        x.data.as_ptr().add(iy0 * x.w),
                        xplane,
                    );
                }
                for co in 0..g.cout {
                    for ky in 0..k {
                        for kx in 0..k {
                            let r = (co * k + ky) * k + kx;
                            // Output columns ox = s*ix + kx - p for ix in [ix_lo, ix_hi).
                            let ix_lo = p.saturating_sub(kx).div_ceil(s);
                            let ix_hi = (ow + p).saturating_sub(kx).div_ceil(s).min(x.w);
                            if ix_lo >= ix_hi {
                                continue;
                            }
                            for ry in 0..nr {
                                let oy = s * (iy0 + ry) + ky;
                                if oy < p || oy - p >= oh {
                                    continue;
                                }
                                let src = &cols[r * n + ry * x.w..][..x.w];
                                let base = co * oplane + (oy - p) * ow + s * ix_lo + kx - p;
                                for (j, v) in src[ix_lo..ix_hi].iter().enumerate() {
                                    // SAFETY: inside output row `oy - p` of channel `co`; only
                                    // this tile of the current wave writes that row.
                                    unsafe { *optr.get().add(base + j * s) += *v };
                                }
                            }
                        }
                    }
                }
            });
        });
    }
}

/// Fills `col[(ci, ty, tx), j]` (row-major, `n` columns) with the input seen by grid position
/// `p0 + j` through tap `(ty, tx)` of channel `ci`, reading `x` directly: taps that fall outside
/// the input (the zero padding) are filled with zeros, stride-2 reads are de-interleaved on the
/// fly. No padded copy of the input is ever made.
///
/// # Safety
/// None beyond the signature; `unsafe` only so that the AVX2 build can share the body.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn im2col<X: Planes>(
    x: &X,
    ph: &Phase,
    step: usize,
    p0: usize,
    n: usize,
    gw: usize,
    col: &mut [f32],
) {
    let (c, h, w) = x.shape();
    let (h, w) = (h as isize, w as isize);
    let st = step as isize;
    let mut rows = col.chunks_exact_mut(n);
    for ci in 0..c {
        for &ty in &ph.ty {
            for &tx in &ph.tx {
                let Some(dst) = rows.next() else { return };
                // Grid columns whose tap lands inside the row: gx in [lo, hi).
                let lo = if tx.off < 0 {
                    (-tx.off + st - 1) / st
                } else {
                    0
                };
                let hi = if w - 1 - tx.off < 0 {
                    0
                } else {
                    (w - 1 - tx.off) / st + 1
                };
                let mut p = p0;
                let mut i = 0;
                while i < n {
                    let gy = p / gw;
                    let gx = p % gw;
                    let cnt = (gw - gx).min(n - i);
                    let d = &mut dst[i..i + cnt];
                    let iy = (gy * step) as isize + ty.off;
                    if iy < 0 || iy >= h {
                        d.fill(0.0);
                    } else {
                        let a = (lo.max(gx as isize) - gx as isize).clamp(0, cnt as isize) as usize;
                        let b = (hi.min((gx + cnt) as isize) - gx as isize)
                            .clamp(a as isize, cnt as isize)
                            as usize;
                        d[..a].fill(0.0);
                        d[b..].fill(0.0);
                        if a < b {
                            let ix0 = ((gx + a) * step) as isize + tx.off;
                            x.gather(ci, iy as usize, ix0 as usize, step, &mut d[a..b]);
                        }
                    }
                    i += cnt;
                    p += cnt;
                }
            }
        }
    }
}

avx2_variant!(im2col_avx2<X: Planes> => im2col(x: &X, ph: &Phase, step: usize, p0: usize, n: usize, gw: usize, col: &mut [f32]));

/// Writes a `[cout, n]` block of phase results (plus bias) to the phase's output positions.
#[allow(clippy::too_many_arguments)]
fn scatter(
    tmp: &[f32],
    n: usize,
    bias: Option<&[f32]>,
    cout: usize,
    p0: usize,
    gw: usize,
    up: usize,
    ph: &Phase,
    optr: SendPtr,
    oplane: usize,
    ow: usize,
) {
    for co in 0..cout {
        let b = bias.map_or(0.0, |b| b[co]);
        let src = &tmp[co * n..(co + 1) * n];
        let mut p = p0;
        let mut i = 0;
        while i < n {
            let gy = p / gw;
            let gx = p % gw;
            let cnt = (gw - gx).min(n - i);
            let base = co * oplane + (up * gy + ph.ry) * ow + up * gx + ph.rx;
            for (j, v) in src[i..i + cnt].iter().enumerate() {
                // SAFETY: `(up*gy + ry, up*(gx+j) + rx)` is inside the output and is written
                // only by this tile's phase `ph`.
                unsafe { *optr.get().add(base + j * up) = *v + b };
            }
            i += cnt;
            p += cnt;
        }
    }
}
