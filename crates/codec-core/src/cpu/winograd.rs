//! [`Math::Fast`](super::Math::Fast) convolutions by Winograd's minimal filtering F(4x4, 3x3)
//! (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
//!
//! Why: the models' wide layers are 5x5 stride-2 convolutions and their transposes, and im2col +
//! GEMM spends 25 multiplications per input channel and output on them. Both become 3x3
//! stride-1 correlations:
//! - a stride-`s` convolution reads `s²` polyphase sub-images of its input (`x[s*u + py][s*v +
//!   px]`), each through a kernel of at most 3x3 taps (5 taps at stride 2 split into 3 + 2);
//! - a stride-`s` transposed convolution writes `s²` sub-pixel phases of its output (see
//!   `conv.rs`), each a correlation of the input with at most 3x3 taps.
//!
//! So a layer is one 3x3 correlation from `cin_w` source channels to `cout_w` sink channels over
//! the grid, missing taps being zero weights. F(4x4, 3x3) computes a 4x4 block of it from a 6x6
//! input patch with 36 multiplications instead of 144: per output and channel pair 2.25, that is
//! 9 per input channel of the original 5x5/2 layer instead of 25. The 36 element-wise products of
//! a block of tiles are 36 GEMMs (`[cout_w, cin_w] x [cin_w, tiles]`) by the `gemm` crate.
//!
//! The transforms (points 0, ±1, ±2, ∞) amplify rounding: on the test shapes the error is at most
//! 1.7e-6 of an output's `Σ|w·x|` and 8e-6 of the largest output, within the
//! Fast path's tolerance; nothing that decides a probability table runs here.

use rayon::prelude::*;

use super::conv::{ConvLayer, SendPtr};
use super::gemm::{sgemm, with_scratch};
use super::pack_cache::Kind;
use super::slab::Packed;
use super::{has_avx2, has_avx512};
use crate::tensor::Tensor;

/// Tiles per block (vector lanes of the transforms, columns of the GEMMs).
const TW: usize = 32;
/// Source channels transformed per GEMM pass (bounds the transformed-input scratch).
const CB: usize = 128;
/// Winograd weights over this many bytes run two blocks of tiles per task (see [`Winograd::run`]).
const GROUP_BYTES: usize = 12 << 20;

/// Layers with fewer source or sink channels keep im2col + GEMM (the transforms would dominate).
const MIN_CHANNELS: usize = 32;

/// A convolution or transposed convolution as a 3x3 correlation in the Winograd domain.
#[derive(Debug)]
pub(crate) struct Winograd {
    /// Source channel `c'`: input plane, polyphase row and column.
    src: Vec<(usize, usize, usize)>,
    /// Sink channel `q`: output plane, sub-pixel row and column.
    sink: Vec<(usize, usize, usize)>,
    /// Input step per grid step (the stride of a convolution, 1 for a transposed one).
    s_in: usize,
    /// Output step per grid step (1 for a convolution, the stride of a transposed one).
    up: usize,
    /// Grid offset of the correlation's first tap.
    o: isize,
    /// `G g Gᵀ` of every sink/source pair: `[cout_w][36][cin_w]` row-major (a GEMM reads the
    /// `[cout_w, cin_w]` matrix of one of the 36 products with row stride `36 * cin_w`).
    u: Packed,
}

/// `Bᵀ` of F(4x4, 3x3): the input transform of a 6-vector.
#[inline(always)]
fn bt(d: [f32; 6]) -> [f32; 6] {
    [
        4.0 * d[0] - 5.0 * d[2] + d[4],
        -4.0 * (d[1] + d[2]) + d[3] + d[4],
        4.0 * (d[1] - d[2]) - d[3] + d[4],
        2.0 * (d[3] - d[1]) - d[2] + d[4],
        2.0 * (d[1] - d[3]) - d[2] + d[4],
        4.0 * d[1] - 5.0 * d[3] + d[5],
    ]
}

/// `Aᵀ` of F(4x4, 3x3): the output transform of a 6-vector.
#[inline(always)]
fn at(m: [f32; 6]) -> [f32; 4] {
    let (a, b) = (m[1] + m[2], m[1] - m[2]);
    let (c, d) = (m[3] + m[4], m[3] - m[4]);
    [m[0] + a + c, b + 2.0 * d, a + 4.0 * c, b + 8.0 * d + m[5]]
}

/// `G` of F(4x4, 3x3): the kernel transform (in f64; each kernel rounded once at the end).
const G: [[f64; 3]; 6] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// Applies `f` to 6 lane vectors (`src[e * ss..][..TW]`) and writes its `N` results to
/// `dst[e * ds..][..TW]`.
#[inline(always)]
fn lanes<const N: usize>(
    src: &[f32],
    ss: usize,
    dst: &mut [f32],
    ds: usize,
    f: impl Fn([f32; 6]) -> [f32; N],
) {
    let s: [&[f32; TW]; 6] = std::array::from_fn(|e| {
        src[e * ss..e * ss + TW]
            .try_into()
            .expect("a lane vector is TW long")
    });
    let mut out = [[0.0f32; TW]; N];
    for t in 0..TW {
        let r = f(std::array::from_fn(|e| s[e][t]));
        for e in 0..N {
            out[e][t] = r[e];
        }
    }
    for (e, o) in out.iter().enumerate() {
        dst[e * ds..e * ds + TW].copy_from_slice(o);
    }
}

/// Taps of a 1-D kernel as `(phase, offset)` pairs, indexed by kernel position.
fn split_taps(k: usize, s: usize, transposed: bool) -> Vec<(usize, isize)> {
    let p = (k / 2) as isize;
    let s = s as isize;
    (0..k as isize)
        .map(|kk| {
            if transposed {
                // Output phase r with r + p - kk = s * off (see `conv.rs`).
                let r = (kk - p).rem_euclid(s);
                (r as usize, (r + p - kk) / s)
            } else {
                // Input at s*g + kk - p = s*(g + j) + py.
                let off = kk - p;
                let py = off.rem_euclid(s);
                (py as usize, (off - py) / s)
            }
        })
        .collect()
}

impl Winograd {
    /// Tiles the kernel computes together (a part-filled block costs as much as a full one).
    pub const BLOCK: usize = TW;

    /// `U` (for the net's packed-weights file).
    pub(crate) fn packed(&self) -> &Packed {
        &self.u
    }

    /// The fewest tiles a call should get: four tasks per thread of whole blocks (two blocks a
    /// task where the weights are large, see [`Winograd::run_tiles`]); with fewer, the sink
    /// channels are split between tasks, each transforming the same input again.
    pub fn min_tiles(&self) -> usize {
        let group = if 4 * self.u.len() > GROUP_BYTES { 2 } else { 1 };
        4 * rayon::current_num_threads() * group * TW
    }

    /// The layer in the Winograd domain, or `None` where im2col + GEMM suits it better (too few
    /// channels) or it does not fit a 3x3 correlation.
    pub fn prepare(layer: &ConvLayer) -> Option<Winograd> {
        let g = &layer.geom;
        let (k, s) = (g.k, g.stride);
        let taps = split_taps(k, s, g.transposed);
        let lo = taps.iter().map(|t| t.1).min()?;
        let hi = taps.iter().map(|t| t.1).max()?;
        if hi - lo > 2 {
            return None;
        }
        let (cin_w, cout_w) = if g.transposed {
            (g.cin, g.cout * s * s)
        } else {
            (g.cin * s * s, g.cout)
        };
        if cin_w < MIN_CHANNELS || cout_w < MIN_CHANNELS {
            return None;
        }
        let phases = |c: usize| (0..s * s).map(move |r| (c, r / s, r % s));
        let (src, sink): (Vec<_>, Vec<_>) = if g.transposed {
            (
                (0..g.cin).map(|c| (c, 0, 0)).collect(),
                (0..g.cout).flat_map(phases).collect(),
            )
        } else {
            (
                (0..g.cin).flat_map(phases).collect(),
                (0..g.cout).map(|c| (c, 0, 0)).collect(),
            )
        };
        // `G w' Gᵀ` of the 3x3 kernels `w'[q][c']` of the correlation (zero where no tap lands),
        // one sink channel per task, each step a loop over the source channels (a cold start pays
        // for this at the layer's first run). In f32: the result is rounded to f32 anyway, and
        // twice the lanes took mbt2018-mean-msssim's encoder from 4.5-6 to 3.5-4.5 ms.
        let tap_of = |j: isize| (j - lo) as usize;
        let g32 = G.map(|row| row.map(|v| v as f32));
        // `dst[c] = Σ_a k[a] rows[a][c]` over the source channels.
        let combine = |dst: &mut [f32], k: &[f32; 3], rows: [&[f32]; 3]| {
            for (((d, &r0), &r1), &r2) in dst.iter_mut().zip(rows[0]).zip(rows[1]).zip(rows[2]) {
                *d = k[0] * r0 + k[1] * r1 + k[2] * r2;
            }
        };
        // A `Conv2d`'s output channel is one contiguous run of its weights, read per task; a
        // `ConvTranspose2d`'s is strided, so its weights are converted whole first.
        let fill = |u: &mut [Packed]| {
            let all = g.transposed.then(|| layer.weights_f32());
            let u_rows = u[0].as_mut_slice();
            u_rows.par_chunks_mut(36 * cin_w).enumerate().for_each_init(
                || (vec![0.0f32; 27 * cin_w], vec![0.0f32; g.cin * k * k]),
                |(buf, block), (q, uq)| {
                    // The weights of the output channel sink `q` belongs to.
                    let co = if g.transposed { q / (s * s) } else { q };
                    let ch = layer.out_channel(co, block, all.as_deref());
                    // w3[a][b][c'], then t[xa][b][c'] = Σ_a G[xa][a] w3[a][b][c'].
                    let (w3, t) = buf.split_at_mut(9 * cin_w);
                    w3.fill(0.0);
                    for (ky, &(ry, jy)) in taps.iter().enumerate() {
                        for (kx, &(rx, jx)) in taps.iter().enumerate() {
                            let row = &mut w3[(tap_of(jy) * 3 + tap_of(jx)) * cin_w..][..cin_w];
                            let phase = ry * s + rx;
                            if g.transposed {
                                // Sink q = (co, ry, rx) reads every source c' = ci.
                                if q % (s * s) == phase {
                                    for (ci, v) in row.iter_mut().enumerate() {
                                        *v = ch.w(ci, ky, kx);
                                    }
                                }
                            } else {
                                // Source c' = (ci, ry, rx) feeds sink q = co.
                                for ci in 0..g.cin {
                                    row[ci * s * s + phase] = ch.w(ci, ky, kx);
                                }
                            }
                        }
                    }
                    for (xa, k) in g32.iter().enumerate() {
                        for b in 0..3 {
                            let rows = std::array::from_fn(|a| &w3[(a * 3 + b) * cin_w..][..cin_w]);
                            combine(&mut t[(xa * 3 + b) * cin_w..][..cin_w], k, rows);
                        }
                    }
                    for xa in 0..6 {
                        let tr: [&[f32]; 3] =
                            std::array::from_fn(|b| &t[(xa * 3 + b) * cin_w..][..cin_w]);
                        for (xb, k) in g32.iter().enumerate() {
                            combine(&mut uq[(xa * 6 + xb) * cin_w..][..cin_w], k, tr);
                        }
                    }
                },
            );
        };
        let u = layer
            .packed_parts(Kind::Winograd, &[36 * cout_w * cin_w], fill)
            .pop()?;
        Some(Winograd {
            src,
            sink,
            s_in: if g.transposed { 1 } else { s },
            up: if g.transposed { s } else { 1 },
            o: lo,
            u,
        })
    }

    /// Runs the layer on `x` into `out` (every element written).
    ///
    /// A task is a block of `TW` tiles and a range of sink channels: small layers (few blocks)
    /// split their sink channels so both threads get work, each range transforming the block's
    /// input again.
    pub fn run(&self, grid: (usize, usize), bias: Option<&[f32]>, x: &Tensor, out: &mut Tensor) {
        let band = Band { x, y0: 0, h: x.h };
        let tiles = grid.0.div_ceil(4) * grid.1.div_ceil(4);
        self.run_tiles(grid, 0..tiles, band, bias, out);
    }

    /// Input rows (of an input `h` rows high) that the tiles `tiles` (row-major over a grid
    /// `gw` wide, each four grid rows and columns) read.
    pub fn rows_read(
        &self,
        tiles: std::ops::Range<usize>,
        gw: usize,
        h: usize,
    ) -> std::ops::Range<usize> {
        if tiles.is_empty() {
            return 0..0;
        }
        let tw = gw.div_ceil(4);
        let (first, last) = ((tiles.start / tw) as isize, ((tiles.end - 1) / tw) as isize);
        let s = self.s_in as isize;
        // The last tile row's six input rows of its last polyphase row.
        let end = s * (4 * last + self.o + 5) + s;
        let clamp = |r: isize| r.clamp(0, h as isize) as usize;
        clamp(s * (4 * first + self.o))..clamp(end)
    }

    /// The tiles `tiles` of [`Winograd::run`] (row-major; their outputs only), reading `band`,
    /// which must hold at least [`Winograd::rows_read`] of them.
    pub fn run_tiles(
        &self,
        grid: (usize, usize),
        tiles: std::ops::Range<usize>,
        band: Band<'_>,
        bias: Option<&[f32]>,
        out: &mut Tensor,
    ) {
        let (gh, gw) = grid;
        let tw = gw.div_ceil(4);
        debug_assert!(tiles.end <= gh.div_ceil(4) * tw);
        debug_assert!({
            let need = self.rows_read(tiles.clone(), gw, band.h);
            need.is_empty() || (band.y0 <= need.start && need.end <= band.y0 + band.x.h)
        });
        let (first, count) = (tiles.start, tiles.len());
        let blocks = count.div_ceil(TW);
        let (cin_w, cout_w) = (self.src.len(), self.sink.len());
        // Weights too large for the cache are streamed once per task: a task of several blocks
        // streams them once for all of them.
        let big = 4 * self.u.len() > GROUP_BYTES && blocks >= 8;
        #[cfg(test)]
        let big = big || super::tests::FORCE_GROUPS.get();
        let group = if big { 2 } else { 1 };
        let groups = blocks.div_ceil(group);
        // About 4 tasks per thread, none with fewer sink rows than a layer this path takes.
        let splits = (4 * rayon::current_num_threads())
            .div_ceil(groups)
            .clamp(1, cout_w.div_ceil(MIN_CHANNELS));
        let qn = cout_w.div_ceil(splits);
        // Two blocks per task also take twice the source channels per GEMM pass (fewer passes
        // over the accumulated products; 3-10 % faster on the q5 layer, docs/benchmarks.md).
        let cb = cin_w.min(group * CB);
        let ld = group * TW;
        let (p_len, v_len, m_len) = (72 * TW, 36 * cb * ld, 36 * qn * ld);
        let optr = SendPtr(out.data.as_mut_ptr());
        let simd = Simd::detect();
        let plane = (out.h, out.w);
        (0..groups * splits).into_par_iter().for_each(|task| {
            let (grp, q0) = (task / splits, (task % splits) * qn);
            let qs = q0..cout_w.min(q0 + qn);
            if qs.is_empty() {
                return;
            }
            with_scratch(p_len + v_len + m_len, |buf| {
                let (p, rest) = buf.split_at_mut(p_len);
                let (v, m) = rest.split_at_mut(v_len);
                // Top-left grid position of each tile of each block (`None` past the last tile).
                let tiles: Vec<[Option<(isize, isize)>; TW]> = (0..group)
                    .map(|b| {
                        std::array::from_fn(|t| {
                            let i = (grp * group + b) * TW + t;
                            (i < count).then(|| {
                                let i = first + i;
                                (4 * (i / tw) as isize, 4 * (i % tw) as isize)
                            })
                        })
                    })
                    .collect();
                for c0 in (0..cin_w).step_by(cb) {
                    let n = cb.min(cin_w - c0);
                    for (b, tiles) in tiles.iter().enumerate() {
                        let src = Source {
                            band,
                            tiles,
                            cb,
                            ld,
                            off: b * TW,
                        };
                        for c in 0..n {
                            // SAFETY: each build only runs where its instructions were detected.
                            unsafe {
                                match simd {
                                    Simd::Avx512 => input_avx512(self, &src, c0 + c, c, p, v),
                                    Simd::Avx2 => input_avx2(self, &src, c0 + c, c, p, v),
                                    Simd::None => input(self, &src, c0 + c, c, p, v),
                                }
                            }
                        }
                    }
                    for xi in 0..36 {
                        // SAFETY: `m[xi]` is `qs.len() x ld`, `u[qs][xi][c0..c0 + n]` is
                        // `qs.len() x n` (row stride `36 * cin_w`), `v[xi]` is `n x ld`.
                        unsafe {
                            sgemm(
                                c0 > 0,
                                qs.len(),
                                ld,
                                n,
                                m.as_mut_ptr().add(xi * qs.len() * ld),
                                ld,
                                self.u.as_ptr().add((qs.start * 36 + xi) * cin_w + c0),
                                36 * cin_w,
                                v.as_ptr().add(xi * cb * ld),
                                ld,
                            );
                        }
                    }
                }
                for (b, tiles) in tiles.iter().enumerate() {
                    let ctx = Sink {
                        tiles,
                        rows: qs.len(),
                        ld,
                        off: b * TW,
                        bias,
                        out: optr,
                        plane,
                        grid,
                    };
                    for q in qs.clone() {
                        // SAFETY: as above; each task writes only its own tiles and sink channels.
                        unsafe {
                            match simd {
                                Simd::Avx512 => output_avx512(self, &ctx, q, q - qs.start, m, p),
                                Simd::Avx2 => output_avx2(self, &ctx, q, q - qs.start, m, p),
                                Simd::None => output(self, &ctx, q, q - qs.start, m, p),
                            }
                        }
                    }
                }
            });
        });
    }
}

/// Which build of the transforms runs.
#[derive(Clone, Copy, Debug)]
enum Simd {
    Avx512,
    Avx2,
    None,
}

impl Simd {
    fn detect() -> Simd {
        if has_avx512() {
            Simd::Avx512
        } else if has_avx2() {
            Simd::Avx2
        } else {
            Simd::None
        }
    }
}

/// Rows `y0..y0 + x.h` of an input `h` rows high (the rows outside are never read: they are
/// zero padding or another band's).
#[derive(Clone, Copy)]
pub(crate) struct Band<'a> {
    pub x: &'a Tensor,
    pub y0: usize,
    pub h: usize,
}

/// Where a task's source channels come from.
#[derive(Clone, Copy)]
struct Source<'a> {
    band: Band<'a>,
    tiles: &'a [Option<(isize, isize)>; TW],
    /// Source channels per pass (rows of each of the 36 matrices in `v`).
    cb: usize,
    /// Row stride of `v` (the tiles of the task's blocks side by side) and this block's column.
    ld: usize,
    off: usize,
}

/// Where a task's sink channels go.
struct Sink<'a> {
    tiles: &'a [Option<(isize, isize)>; TW],
    /// Rows of the task's `m` (its sink channels).
    rows: usize,
    /// Row stride of `m` and this block's column (as in [`Source`]).
    ld: usize,
    off: usize,
    bias: Option<&'a [f32]>,
    out: SendPtr,
    plane: (usize, usize),
    grid: (usize, usize),
}

/// Gathers the 6x6 input patch of every tile of a block from source channel `c` and writes its
/// transform `Bᵀ d B` to `v[xi][cv][off..off + TW]` (`v` is `[36][src.cb][ld]`).
///
/// # Safety
/// None beyond the signature; `unsafe` only so that the AVX2 build can share the body.
#[inline(always)]
unsafe fn input(w: &Winograd, src: &Source<'_>, c: usize, cv: usize, p: &mut [f32], v: &mut [f32]) {
    let Source {
        band,
        tiles,
        cb,
        ld,
        off,
    } = *src;
    let (ci, py, px) = w.src[c];
    let (s, o) = (w.s_in as isize, w.o);
    let (h, wd) = (band.h as isize, band.x.w as isize);
    // The band's rows start at `y0`: row `r` of the input is row `r - y0` of its planes.
    let plane = band.x.channel(ci);
    let base = -(band.y0 as isize) * wd;
    let (d, z) = p.split_at_mut(36 * TW);
    for (t, tile) in tiles.iter().enumerate() {
        let Some((u0, v0)) = *tile else {
            for e in 0..36 {
                d[e * TW + t] = 0.0;
            }
            continue;
        };
        let (r0, c0) = (s * (u0 + o) + py as isize, s * (v0 + o) + px as isize);
        let inside = u0 + o >= 0 && v0 + o >= 0 && r0 + 5 * s < h && c0 + 5 * s < wd;
        if inside {
            for i in 0..6 {
                let row = &plane[(base + (r0 + s * i as isize) * wd + c0) as usize..]
                    [..5 * s as usize + 1];
                for j in 0..6 {
                    d[(i * 6 + j) * TW + t] = row[j * s as usize];
                }
            }
            continue;
        }
        for i in 0..6 {
            let r = r0 + s * i as isize;
            for j in 0..6 {
                let col = c0 + s * j as isize;
                d[(i * 6 + j) * TW + t] =
                    if u0 + o + i as isize >= 0 && r < h && v0 + o + j as isize >= 0 && col < wd {
                        plane[(base + r * wd + col) as usize]
                    } else {
                        0.0
                    };
            }
        }
    }
    // Columns: z[a][j] = Σ_i Bᵀ[a][i] d[i][j]; then rows: v[(a, b)] = Σ_j Bᵀ[b][j] z[a][j].
    for j in 0..6 {
        lanes(&d[j * TW..], 6 * TW, &mut z[j * TW..], 6 * TW, bt);
    }
    for a in 0..6 {
        lanes(
            &z[a * 6 * TW..],
            TW,
            &mut v[((a * 6) * cb + cv) * ld + off..],
            cb * ld,
            bt,
        );
    }
}

avx2_variant!(input_avx2 => input(w: &Winograd, src: &Source<'_>, c: usize, cv: usize, p: &mut [f32], v: &mut [f32]));

/// Transforms sink channel `q` (row `r` of the task's `m`, `[36][rows][ld]`, columns `off..off + TW`) back
/// (`Aᵀ m A`) and writes each tile's 4x4 outputs plus bias to the output.
///
/// # Safety
/// `ctx.out` must point to the output tensor of shape `[.., plane.0, plane.1]`, and no other
/// thread may write these tiles of sink `q`.
#[inline(always)]
unsafe fn output(w: &Winograd, ctx: &Sink<'_>, q: usize, r: usize, m: &[f32], p: &mut [f32]) {
    let (co, ry, rx) = w.sink[q];
    let rows = ctx.rows;
    let (zs, y) = p.split_at_mut(24 * TW);
    // Columns: zs[i][b] = Σ_a Aᵀ[i][a] m[(a, b)]; then rows: y[i][j] = Σ_b Aᵀ[j][b] zs[i][b].
    for b in 0..6 {
        lanes(
            &m[(b * rows + r) * ctx.ld + ctx.off..],
            6 * rows * ctx.ld,
            &mut zs[b * TW..],
            6 * TW,
            at,
        );
    }
    for i in 0..4 {
        lanes(&zs[i * 6 * TW..], TW, &mut y[i * 4 * TW..], TW, at);
    }
    let b = ctx.bias.map_or(0.0, |b| b[co]);
    y.iter_mut().for_each(|v| *v += b);
    let (oh, ow) = ctx.plane;
    let (up, base) = (w.up, co * oh * ow + ry * ow + rx);
    for (t, tile) in ctx.tiles.iter().enumerate() {
        let Some((u0, v0)) = *tile else { continue };
        let (u0, v0) = (u0 as usize, v0 as usize);
        let (ni, nj) = (4.min(ctx.grid.0 - u0), 4.min(ctx.grid.1 - v0));
        for i in 0..ni {
            let at = base + up * ((u0 + i) * ow + v0);
            debug_assert!(up * (u0 + i) + ry < oh && up * (v0 + nj - 1) + rx < ow);
            if nj == 4 {
                for j in 0..4 {
                    // SAFETY: inside the output; tile `(u0, v0)` of sink `q` belongs to this
                    // task.
                    unsafe { *ctx.out.get().add(at + up * j) = y[(i * 4 + j) * TW + t] };
                }
            } else {
                for j in 0..nj {
                    // SAFETY: as above.
                    unsafe { *ctx.out.get().add(at + up * j) = y[(i * 4 + j) * TW + t] };
                }
            }
        }
    }
}

avx2_variant!(output_avx2 => output(w: &Winograd, ctx: &Sink<'_>, q: usize, r: usize, m: &[f32], p: &mut [f32]));

/// AVX-512 builds of [`input`] and [`output`] (the transforms' lanes in one register per 16
/// tiles). Forwarders elsewhere.
macro_rules! avx512_variant {
    ($name:ident => $body:ident ($($arg:ident : $ty:ty),*)) => {
        /// AVX-512 build of the function it forwards to.
        ///
        /// # Safety
        /// As for that function; on x86_64 the CPU must also support AVX-512F.
        #[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f"))]
        unsafe fn $name($($arg: $ty),*) {
            // SAFETY: forwarded from the caller.
            unsafe { $body($($arg),*) }
        }
    };
}

avx512_variant!(input_avx512 => input(w: &Winograd, src: &Source<'_>, c: usize, cv: usize, p: &mut [f32], v: &mut [f32]));
avx512_variant!(output_avx512 => output(w: &Winograd, ctx: &Sink<'_>, q: usize, r: usize, m: &[f32], p: &mut [f32]));

#[cfg(test)]
mod tests {
    use super::*;

    /// F(4, 3) in 1-D against the direct correlation: `Aᵀ[(G g) ⊙ (Bᵀ d)] = y`,
    /// `y[i] = Σ_k d[i + k] g[k]`.
    #[test]
    fn one_dimensional_identity() {
        let d = [0.3f32, -1.2, 2.5, 0.7, -0.4, 1.9];
        let g = [0.5f64, -0.25, 1.5];
        let bd = bt(d);
        let gg: [f64; 6] = std::array::from_fn(|e| (0..3).map(|k| G[e][k] * g[k]).sum());
        let y = at(std::array::from_fn(|e| bd[e] * gg[e] as f32));
        for i in 0..4 {
            let want: f64 = (0..3).map(|k| f64::from(d[i + k]) * g[k]).sum();
            assert!(
                (f64::from(y[i]) - want).abs() < 1e-5,
                "{i}: {} vs {want}",
                y[i]
            );
        }
    }
}
