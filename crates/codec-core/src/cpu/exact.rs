//! [`Math::Exact`](super::Math::Exact) convolutions: one fixed summation order, no FMA.
//!
//! # The documented order
//!
//! Let `xpad` be the input with zero padding (a read outside the input yields `0.0`). For a
//! `Conv2d` (`p = k/2`) every output element is
//!
//! ```text
//! acc = bias[co]            // or +0.0 without bias
//! for ci in 0..cin { for ky in 0..k { for kx in 0..k {
//!     acc = acc + w[co, ci, ky, kx] * xpad[ci, s*oy - p + ky, s*ox - p + kx]
//! }}}
//! out[co, oy, ox] = acc
//! ```
//!
//! For a `ConvTranspose2d` the same loops run over the *contributing* taps only, i.e. the
//! `(ky, kx)` with `(oy + p - ky) % s == 0` and `(ox + p - kx) % s == 0` (the taps of the output's
//! sub-pixel phase), reading `xpad[ci, (oy + p - ky) / s, (ox + p - kx) / s]` and
//! `w[ci, co, ky, kx]`; `ky` and `kx` still ascend.
//!
//! Taps that fall into the zero padding are not skipped: they add `w * 0.0` like any other tap
//! (this can only change the sign of a zero result, never a non-zero value).
//!
//! Each step is one rounded f32 multiplication followed by one rounded f32 addition (never
//! `mul_add`; Rust does not contract `a * b + c` into an FMA, nor reassociate float sums) and no
//! reduction is ever split, so every output is a fixed function of the inputs: bit-identical for
//! any thread count, SIMD width and machine with IEEE-754 binary32 arithmetic and no
//! flush-to-zero (x86_64, aarch64, wasm32). The kernels vectorize only *across* independent
//! outputs (16 output channels times a few pixels per register block; an AVX2 build of the same
//! code is picked at run time, which changes the vector width, not the arithmetic) and parallelize
//! over (phase, output row, channel block) tasks. The tests check all of this against a scalar
//! transcription of the loops above ([`exact_scalar`]), across thread counts and between the
//! generic and the AVX2 builds.

use rayon::prelude::*;

use super::conv::{ConvGeom, ConvLayer, Padded, SendPtr};
use super::gemm::recycle;
use super::pack_cache::Kind;
use super::slab::Packed;
use super::{has_avx2, has_avx512};
use crate::tensor::Tensor;

/// Output channels per vector block.
const CO: usize = 16;
/// Output pixels per register block (12 accumulator registers with AVX2).
const PX: usize = 6;
/// Output pixels per register block of the AVX-512 build (12 of its 32 registers).
const PX_AVX512: usize = 12;

/// Weights of one phase as `[cin][taps][cout_pad]` (output channels innermost, zero-padded to a
/// multiple of [`CO`]); taps in `(ty, tx)` order, i.e. ascending `(ky, kx)`.
#[derive(Debug)]
struct ExactPhase {
    /// In a shared slab, beside the other packed weights (2.4 MB of `mbt2018-mean-msssim`'s `h_s`
    /// took nine blocks of fresh 4 KiB pages of their own).
    w: Packed,
    taps: usize,
}

/// A convolution packed for [`Math::Exact`](super::Math::Exact).
#[derive(Debug)]
pub(crate) struct ExactConv {
    phases: Vec<ExactPhase>,
    cout_pad: usize,
}

/// Everything a row task needs.
struct Ctx<'a> {
    xp: &'a Padded,
    w: &'a [f32],
    /// Offset of each tap inside a padded plane, relative to `(gy*step, gx*step)`.
    offs: &'a [usize],
    bias: &'a [f32],
    cout: usize,
    cout_pad: usize,
    step: usize,
    gw: usize,
    up: usize,
    ry: usize,
    rx: usize,
    ow: usize,
    oplane: usize,
    out: SendPtr,
}

impl ExactConv {
    pub fn prepare(layer: &ConvLayer) -> ExactConv {
        let g = &layer.geom;
        let cout_pad = g.cout.div_ceil(CO) * CO;
        let taps: Vec<usize> = g.phases.iter().map(|ph| ph.taps()).collect();
        let lens: Vec<usize> = taps.iter().map(|t| g.cin * t * cout_pad).collect();
        let ws = layer.packed_parts(Kind::Exact, &lens, |ws| pack(layer, cout_pad, &taps, ws));
        let phases = ws
            .into_iter()
            .zip(taps)
            .map(|(w, taps)| ExactPhase { w, taps })
            .collect();
        ExactConv { phases, cout_pad }
    }

    /// The packed rows of each phase (for the net's packed-weights file).
    pub(crate) fn packed(&self) -> impl Iterator<Item = &Packed> {
        self.phases.iter().map(|p| &p.w)
    }
}

/// `layer`'s weights into the rows of each phase (`ws`, zeroed; `taps` per phase).
fn pack(layer: &ConvLayer, cout_pad: usize, taps: &[usize], ws: &mut [Packed]) {
    let g = &layer.geom;
    // Packed rows run over the output channels: a `ConvTranspose2d`'s input channel is one
    // contiguous run of its weights (`[cout, k, k]`), read whole; a `Conv2d` is read
    // `CO` output channels at a time, so the writes stay `CO` values long.
    let (k, kk) = (g.k, g.k * g.k);
    // Kernel tap `t = ky * k + kx` is tap `slot[t]` of phase `phase[t]` (each tap belongs to
    // exactly one phase).
    let mut phase = vec![usize::MAX; kk];
    let mut slot = vec![0; kk];
    for (p, ph) in g.phases.iter().enumerate() {
        for (a, ty) in ph.ty.iter().enumerate() {
            for (b, tx) in ph.tx.iter().enumerate() {
                phase[ty.k * k + tx.k] = p;
                slot[ty.k * k + tx.k] = a * ph.tx.len() + b;
            }
        }
    }
    let mut rows: Vec<&mut [f32]> = ws.iter_mut().map(Packed::as_mut_slice).collect();
    let mut put = |ci: usize, co: usize, t: usize, v: f32| {
        if let (Some(w), Some(&taps)) = (rows.get_mut(phase[t]), taps.get(phase[t])) {
            w[(ci * taps + slot[t]) * cout_pad + co] = v;
        }
    };
    if g.transposed {
        let mut block = vec![0.0f32; g.cout * kk];
        for ci in 0..g.cin {
            layer.read_weights(ci * g.cout * kk, &mut block);
            for t in 0..kk {
                for co in 0..g.cout {
                    put(ci, co, t, block[co * kk + t]);
                }
            }
        }
    } else {
        let mut block = vec![0.0f32; CO * g.cin * kk];
        for co0 in (0..g.cout).step_by(CO) {
            let n = CO.min(g.cout - co0);
            let block = &mut block[..n * g.cin * kk];
            layer.read_weights(co0 * g.cin * kk, block);
            for ci in 0..g.cin {
                for t in 0..kk {
                    for j in 0..n {
                        put(ci, co0 + j, t, block[(j * g.cin + ci) * kk + t]);
                    }
                }
            }
        }
    }
}

impl ExactConv {
    /// Runs the convolution; `buf` is recycled storage for the output (any contents).
    pub fn run(&self, g: &ConvGeom, bias: Option<&[f32]>, x: &Tensor, buf: Vec<f32>) -> Tensor {
        let (gh, gw) = g.grid(x.h, x.w);
        let (oh, ow) = g.out_hw(x.h, x.w);
        let mut out = recycle(buf, g.cout, oh, ow);
        if gh * gw == 0 || g.cout == 0 {
            return out;
        }
        let xp = Padded::new(x, g.pad(x.h, x.w));
        let mut bias_pad = vec![0.0f32; self.cout_pad];
        if let Some(b) = bias {
            bias_pad[..g.cout].copy_from_slice(b);
        }
        let offs: Vec<Vec<usize>> = g
            .phases
            .iter()
            .map(|ph| {
                let mut v = Vec::with_capacity(ph.taps());
                for &ty in &ph.ty {
                    for &tx in &ph.tx {
                        v.push(xp.index(0, 0, ty, tx));
                    }
                }
                v
            })
            .collect();
        let out_ptr = SendPtr(out.data.as_mut_ptr());
        let blocks = self.cout_pad / CO;
        let ctxs: Vec<Ctx<'_>> = g
            .phases
            .iter()
            .zip(&self.phases)
            .zip(&offs)
            .map(|((ph, ep), offs)| Ctx {
                xp: &xp,
                w: &ep.w,
                offs,
                bias: &bias_pad,
                cout: g.cout,
                cout_pad: self.cout_pad,
                step: g.step(),
                gw,
                up: g.up(),
                ry: ph.ry,
                rx: ph.rx,
                ow,
                oplane: oh * ow,
                out: out_ptr,
            })
            .collect();
        debug_assert!(self
            .phases
            .iter()
            .zip(&offs)
            .all(|(p, o)| p.taps == o.len()));
        let use_avx2 = has_avx2();
        let use_avx512 = has_avx512();
        let per_phase = gh * blocks;
        (0..ctxs.len() * per_phase)
            .into_par_iter()
            .for_each(|task| {
                let ctx = &ctxs[task / per_phase];
                let r = task % per_phase;
                let (gy, cb) = (r / blocks, r % blocks);
                // SAFETY: each (phase, row, channel block) task writes its own outputs only; the
                // AVX2 variant only runs where AVX2 was detected.
                unsafe {
                    if use_avx512 {
                        row_avx512(ctx, gy, cb * CO);
                    } else if use_avx2 {
                        row_avx2(ctx, gy, cb * CO);
                    } else {
                        row(ctx, gy, cb * CO);
                    }
                }
            });
        out
    }
}

/// Computes output channels `co0..co0+CO` of grid row `gy` of one phase, [`PX`] pixels per
/// register block.
///
/// # Safety
/// `ctx.out` must be the output of this convolution and no other task may write this row and
/// channel block.
#[inline(always)]
unsafe fn row(ctx: &Ctx<'_>, gy: usize, co0: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { row_blocks::<PX>(ctx, gy, co0) }
}

/// [`row`] with `P` pixels per register block (the order of each output's sum is the same for
/// every block size: blocks only group independent outputs).
///
/// # Safety
/// As for [`row`].
#[inline(always)]
unsafe fn row_blocks<const P: usize>(ctx: &Ctx<'_>, gy: usize, co0: usize) {
    let mut gx = 0;
    while gx + P <= ctx.gw {
        let acc = block::<P>(ctx, gy, gx, co0);
        // SAFETY: forwarded from the caller.
        unsafe { store(ctx, &acc, gy, gx, co0) };
        gx += P;
    }
    // Tail: smaller register blocks.
    while gx + 4 <= ctx.gw {
        let acc = block::<4>(ctx, gy, gx, co0);
        // SAFETY: forwarded from the caller.
        unsafe { store(ctx, &acc, gy, gx, co0) };
        gx += 4;
    }
    if gx + 2 <= ctx.gw {
        let acc = block::<2>(ctx, gy, gx, co0);
        // SAFETY: forwarded from the caller.
        unsafe { store(ctx, &acc, gy, gx, co0) };
        gx += 2;
    }
    if gx < ctx.gw {
        let acc = block::<1>(ctx, gy, gx, co0);
        // SAFETY: forwarded from the caller.
        unsafe { store(ctx, &acc, gy, gx, co0) };
    }
}

avx2_variant!(row_avx2 => row(ctx: &Ctx<'_>, gy: usize, co0: usize));

/// AVX-512 build of [`row`]: the 16 output channels of a block in one register instead of two,
/// and [`PX_AVX512`] pixels per block (12 accumulators, of its 32 registers) instead of [`PX`]
/// (the same multiplications and additions in the same order, so the same bits; faster on the
/// development machine's `h_s`: 25-30 % for the registers, 10-25 % more for the wider blocks,
/// docs/benchmarks.md; 16 pixels per block ran 30x slower).
///
/// # Safety
/// As for [`row`]; on x86_64 the CPU must also support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn row_avx512(ctx: &Ctx<'_>, gy: usize, co0: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { row_blocks::<PX_AVX512>(ctx, gy, co0) }
}

/// Forwards to the generic build (no AVX-512 on this architecture).
///
/// # Safety
/// As for [`row`].
#[cfg(not(target_arch = "x86_64"))]
unsafe fn row_avx512(ctx: &Ctx<'_>, gy: usize, co0: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { row(ctx, gy, co0) }
}

/// Accumulates `N` consecutive grid positions x `CO` output channels in the documented order.
///
/// `N` grid positions starting at `gx` must exist in the row (`gx + N <= gw`).
#[inline(always)]
fn block<const N: usize>(ctx: &Ctx<'_>, gy: usize, gx: usize, co0: usize) -> [[f32; CO]; N] {
    let b: [f32; CO] = ctx.bias[co0..co0 + CO].try_into().unwrap_or([0.0; CO]);
    let mut acc = [b; N];
    let xp = ctx.xp;
    let plane_len = xp.h * xp.w;
    let base = gy * ctx.step * xp.w + gx * ctx.step;
    let taps = ctx.offs.len();
    // Bounds, checked once here instead of per tap (the padding makes every read of every grid
    // position legal; these asserts document and enforce it).
    let span = ctx.offs.iter().copied().max().unwrap_or(0) + (N - 1) * ctx.step + 1;
    assert!(gx + N <= ctx.gw && base + span <= plane_len && xp.data.len() == xp.c * plane_len);
    assert!(co0 + CO <= ctx.cout_pad && ctx.w.len() == xp.c * taps * ctx.cout_pad);
    let x_ptr = xp.data.as_ptr();
    let w_ptr = ctx.w.as_ptr();
    for ci in 0..xp.c {
        // SAFETY: `ci * plane_len + base + off + p * step < (ci + 1) * plane_len` for every tap
        // offset `off` and `p < N` (asserted above via `span`).
        let plane = unsafe { x_ptr.add(ci * plane_len + base) };
        // SAFETY: `(ci * taps + t) * cout_pad + co0 + CO <= w.len()` for every `t < taps`.
        let wci = unsafe { w_ptr.add(ci * taps * ctx.cout_pad + co0) };
        for (t, &off) in ctx.offs.iter().enumerate() {
            // SAFETY: see `wci`; `[f32; CO]` has the alignment of `f32`.
            let wv: [f32; CO] = unsafe { *(wci.add(t * ctx.cout_pad) as *const [f32; CO]) };
            for (p, a) in acc.iter_mut().enumerate() {
                // SAFETY: see `plane`.
                let xv = unsafe { *plane.add(off + p * ctx.step) };
                for j in 0..CO {
                    a[j] += wv[j] * xv;
                }
            }
        }
    }
    acc
}

/// Writes a register block to the output.
///
/// # Safety
/// As for [`row`].
#[inline(always)]
unsafe fn store<const N: usize>(
    ctx: &Ctx<'_>,
    acc: &[[f32; CO]; N],
    gy: usize,
    gx: usize,
    co0: usize,
) {
    let oy = ctx.up * gy + ctx.ry;
    let n_co = CO.min(ctx.cout - co0);
    for (p, a) in acc.iter().enumerate() {
        let ox = ctx.up * (gx + p) + ctx.rx;
        for (j, &v) in a[..n_co].iter().enumerate() {
            // SAFETY: `(co0 + j, oy, ox)` is inside the output; the caller owns this row and
            // channel block.
            unsafe { *ctx.out.get().add((co0 + j) * ctx.oplane + oy * ctx.ow + ox) = v };
        }
    }
}

/// Reference implementation of the documented order, one output at a time (tests only).
#[cfg(test)]
pub(crate) fn exact_scalar(layer: &crate::model::graph::Layer, x: &Tensor) -> Tensor {
    use crate::model::graph::Layer;
    let Layer::Conv(c) = layer else {
        panic!("not a convolution")
    };
    let (cin, cout, k, s, weight, bias, transposed) = (
        c.cin,
        c.cout,
        c.k,
        c.stride,
        &c.weight,
        &c.bias,
        c.transposed,
    );
    let p = (k / 2) as isize;
    let (oc, oh, ow) = layer.output_shape((x.c, x.h, x.w));
    assert_eq!(oc, cout);
    let mut out = Tensor::zeros(cout, oh, ow);
    let read = |ci: usize, iy: isize, ix: isize| -> f32 {
        if iy < 0 || ix < 0 || iy >= x.h as isize || ix >= x.w as isize {
            0.0
        } else {
            x.data[(ci * x.h + iy as usize) * x.w + ix as usize]
        }
    };
    let si = s as isize;
    for co in 0..cout {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = bias.as_ref().map_or(0.0f32, |b| b[co]);
                for ci in 0..cin {
                    for ky in 0..k {
                        for kx in 0..k {
                            let (wv, xv) = if transposed {
                                let ny = oy as isize + p - ky as isize;
                                let nx = ox as isize + p - kx as isize;
                                if ny.rem_euclid(si) != 0 || nx.rem_euclid(si) != 0 {
                                    continue;
                                }
                                (
                                    weight[((ci * cout + co) * k + ky) * k + kx],
                                    read(ci, ny.div_euclid(si), nx.div_euclid(si)),
                                )
                            } else {
                                let iy = (s * oy + ky) as isize - p;
                                let ix = (s * ox + kx) as isize - p;
                                (
                                    weight[((co * cin + ci) * k + ky) * k + kx],
                                    read(ci, iy, ix),
                                )
                            };
                            acc += wv * xv;
                        }
                    }
                }
                out.data[(co * oh + oy) * ow + ox] = acc;
            }
        }
    }
    out
}
