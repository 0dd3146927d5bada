//! The head of an analysis transform, `conv → GDN → conv`, a band of rows at a time.
//!
//! Why: the first convolution's output is the largest activation of an encoder (25 MB at N = 64
//! for a Kodak image). Made whole, it is fresh memory in a one-shot process (page faults, the
//! kernel zeroing every page) and falls out of the caches between the three layers that touch it.
//! Here the first convolution (im2col + GEMM) writes only the rows that the next blocks of the
//! Winograd layer's tiles read, into a band buffer of about [`BAND_BYTES`] reused down the image;
//! each of its tasks runs the GDN on the pixels it has just written; the rows two bands share
//! are moved up, not computed again. The same kernels run on the same values, so the result is
//! the layer-by-layer one up to the blocking of the GEMMs' sums (within the Fast tolerance;
//! nothing here decides a probability table). b2018-gdn-128's 9x9/4 first layer is itself a
//! Winograd layer and does not match (its output tiles are four rows high).

use std::ops::Range;

use rayon::prelude::*;

use super::conv::{ConvLayer, CpuLayer, GdnLayer, SendPtr, Spares};
use super::gdn::gdn_fast_pixels;
use super::gemm::{recycle, PlainConv};
use super::planes::{Planes, Rows};
use super::winograd::{Band, Winograd};
use crate::image::RgbImage;
use crate::tensor::Tensor;
use crate::tiling::Tile;

/// What a head reads: an activation, or the input window (a tile) of an image's 8-bit pixels, of
/// which each band converts only the rows it reads (`planes.rs`; the same floats as the window
/// converted whole).
#[derive(Clone, Copy)]
pub(crate) enum HeadInput<'a> {
    Tensor(&'a Tensor),
    Pixels(&'a RgbImage, Tile),
}

/// Target size of the band buffer. Smaller bands measured slower in a one-shot (more, shorter
/// parallel loops); see docs/benchmarks.md.
const BAND_BYTES: usize = 8 << 20;

/// A `conv → GDN → Winograd conv` head, packed for [`Math::Fast`](super::Math::Fast).
pub(crate) struct Head<'a> {
    conv0: &'a ConvLayer,
    plain: PlainConv<'a>,
    gdn: &'a GdnLayer,
    conv2: &'a ConvLayer,
    wino: &'a Winograd,
}

impl<'a> Head<'a> {
    /// The head of `layers` if they start with a plain im2col convolution, a forward GDN and a
    /// Winograd convolution (the analysis transforms' first three layers). Packs their weights.
    pub fn of(layers: &'a [CpuLayer]) -> Option<Head<'a>> {
        let [CpuLayer::Conv(conv0), CpuLayer::Gdn(gdn), CpuLayer::Conv(conv2), ..] = layers else {
            return None;
        };
        if gdn.inverse || conv0.geom.transposed || conv2.geom.transposed {
            return None;
        }
        if conv0.geom.cout != gdn.c || gdn.c != conv2.geom.cin {
            return None;
        }
        Some(Head {
            plain: conv0.fast().plain(&conv0.geom)?,
            wino: conv2.fast().winograd()?,
            conv0,
            gdn,
            conv2,
        })
    }

    /// Runs the three layers on `x`, their output and the band in buffers from `spares` (the
    /// band's given back).
    pub fn run(&self, x: HeadInput<'_>, spares: &mut Spares) -> Tensor {
        let (g0, g2) = (&self.conv0.geom, &self.conv2.geom);
        let (xh, xw) = match x {
            HeadInput::Tensor(t) => (t.h, t.w),
            HeadInput::Pixels(_, t) => (t.y1 - t.y0, t.x1 - t.x0),
        };
        let (h1, w1) = g0.out_hw(xh, xw);
        let (c1, c2) = (g0.cout, g2.cout);
        let grid = g2.grid(h1, w1);
        let (oh, ow) = g2.out_hw(h1, w1);
        let mut y = recycle(spares.take(c2 * oh * ow), c2, oh, ow);
        let tw = grid.1.div_ceil(4);
        let tiles = grid.0.div_ceil(4) * tw;
        if oh * ow == 0 || h1 * w1 == 0 {
            return y;
        }
        // Tiles per band: about `BAND_BYTES` of input rows (each tile row is `4 * stride` rows
        // of `c1 x w1` values), in whole blocks of the Winograd kernel (a part-filled block
        // computes as much as a full one).
        let row_bytes = 4 * c1 * w1;
        let tile_rows = (BAND_BYTES / (row_bytes * 4 * g2.step()).max(1)).max(1);
        let whole_blocks = |rows: usize| (rows * tw).div_ceil(Winograd::BLOCK) * Winograd::BLOCK;
        let per_band = whole_blocks(tile_rows).max(self.wino.min_tiles());
        #[cfg(test)]
        let per_band = match super::tests::BAND_TILE_ROWS.get() {
            0 => per_band,
            n => whole_blocks(n),
        };
        let bands: Vec<Range<usize>> = (0..tiles)
            .step_by(per_band)
            .map(|t| t..tiles.min(t + per_band))
            .collect();
        let rows: Vec<Range<usize>> = bands
            .iter()
            .map(|t| self.wino.rows_read(t.clone(), grid.1, h1))
            .collect();
        let cap = rows.iter().map(Range::len).max().unwrap_or(0);
        let mut b = recycle(spares.take(c1 * cap * w1), c1, cap, w1);
        let stride = cap * w1;
        // Rows of the input held by `b` now, from `held.start` at its row 0.
        let mut held = 0..0;
        // The f32 rows of the pixels the current band reads, when the input is an image.
        let mut pixels = Vec::new();
        for (tiles, need) in bands.into_iter().zip(rows) {
            let start = need.start;
            debug_assert!(start >= held.start, "bands move down");
            // Move the rows this band shares with the last one to the top.
            let keep = start..need.end.min(held.end);
            if !keep.is_empty() && start > held.start {
                let (from, len) = ((start - held.start) * w1, keep.len() * w1);
                b.data
                    .par_chunks_exact_mut(stride)
                    .for_each(|plane| plane.copy_within(from..from + len, 0));
            }
            let fresh = held.end.clamp(start, need.end)..need.end;
            if !fresh.is_empty() {
                let at = (fresh.start - start) * w1;
                let ptr = SendPtr(b.data.as_mut_ptr());
                // GDN on each tile of the convolution's rows as soon as it is written.
                let gdn = |p0: usize, n: usize| {
                    // SAFETY: the task that calls this has just written these pixels of every
                    // plane of `b` and owns them; they lie inside the planes (below).
                    unsafe { gdn_fast_pixels(self.gdn, ptr, stride, at + p0..at + p0 + n) }
                };
                let to = SendPtr(ptr.get().wrapping_add(at));
                // SAFETY: rows `fresh` land at rows `fresh - start` of each of `b`'s planes (all
                // inside: `need.len() <= cap`), and nothing else touches `b` meanwhile.
                match x {
                    HeadInput::Tensor(x) => unsafe { self.conv0_rows(x, fresh, to, stride, &gdn) },
                    HeadInput::Pixels(image, t) => {
                        // Only the rows of pixels this band's convolution reads, in f32.
                        let read = g0.input_rows(fresh.clone(), xh);
                        let window = Tile {
                            y0: t.y0 + read.start,
                            y1: t.y0 + read.end,
                            ..t
                        };
                        let f32s = image.window_f32_into(&window, std::mem::take(&mut pixels));
                        let x = Rows {
                            t: &f32s,
                            y0: read.start,
                            h: xh,
                        };
                        // SAFETY: as above.
                        unsafe { self.conv0_rows(&x, fresh, to, stride, &gdn) };
                        pixels = f32s.data;
                    }
                }
            }
            held = need;
            let src = Band {
                x: &b,
                y0: start,
                h: h1,
            };
            self.wino
                .run_tiles(grid, tiles, src, self.conv2.bias(), &mut y);
        }
        spares.give(b.data);
        y
    }

    /// Grid rows `rows` of the first convolution of `x`, then `gdn` on each task's pixels (see
    /// [`PlainConv::run_rows`], whose safety contract this forwards).
    unsafe fn conv0_rows(
        &self,
        x: &impl Planes,
        rows: Range<usize>,
        out: SendPtr,
        stride: usize,
        gdn: &(dyn Fn(usize, usize) + Sync),
    ) {
        let (g, bias) = (&self.conv0.geom, self.conv0.bias());
        // SAFETY: forwarded.
        unsafe { self.plain.run_rows(g, bias, x, rows, out, stride, gdn) }
    }
}
