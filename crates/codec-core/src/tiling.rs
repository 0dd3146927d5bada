//! Spatial tiles with halos.
//!
//! Every layer is a "same"-padded convolution, GDN or activation, so an output pixel depends only
//! on inputs within the net's receptive-field radius. A tile therefore runs the whole net on its
//! core region plus a halo at least that radius wide (zeros only where the image itself ends,
//! exactly as in the untiled run) and keeps the core of its output. Cores start at multiples of
//! the net's downsampling factor so the output grids line up. Each output value is computed by
//! the same kernel in the same order whichever tile holds it, so tiled equals untiled.
//!
//! Backend-neutral: a backend implements [`PreparedNet`] (which inputs run in one piece, and the
//! run itself), [`forward`] does the rest. The input comes from a [`Source`] and each tile's output
//! goes to a [`Sink`], so a large image is read from its 8-bit pixels and written back into them a
//! tile at a time, never held whole in f32.

use std::borrow::Cow;

use crate::image::RgbImage;
use crate::model::graph::{Layer, Net};
use crate::tensor::{round_ties_even, Tensor};

/// A net prepared on one backend: the seam between the codec and the hardware.
pub(crate) trait PreparedNet {
    /// What a failed run says; the backend decides what each failure means.
    type Error: BackendError;
    /// The net's scaling and receptive field.
    fn geometry(&self) -> Geometry;
    /// Whether an `h x w` input runs in one piece with at most `budget` bytes of activations (the
    /// CPU's rule), or within the device's own limits (the GPU's).
    fn fits(&self, h: usize, w: usize, budget: u64) -> bool;
    /// Runs the net on one whole tile.
    fn run(&self, x: &Tensor) -> Result<Tensor, Self::Error>;
    /// [`PreparedNet::run`] of the input window `t` of `image` (as [`Source::window`] would give
    /// it in f32), read from the 8-bit pixels where the backend can, with the same result; `None`
    /// where it cannot (the caller converts the window).
    fn run_rgb(&self, _image: &RgbImage, _t: &Tile) -> Option<Result<Tensor, Self::Error>> {
        None
    }
    /// The error for an input whose smallest tile does not fit.
    fn too_large(&self, h: usize, w: usize, budget: u64) -> Self::Error;
    /// The device's own time for one untiled run of `x`, transfers excluded (the mean of
    /// `repeats`), where the backend has a device apart from the caller's thread; `None` on the
    /// CPU, whose time is the caller's clock. (Only the shared backend tests ask through the
    /// trait; the GPU benchmark calls `GpuNet::device_time` itself.)
    #[cfg(test)]
    fn device_time(
        &self,
        _x: &Tensor,
        _repeats: usize,
    ) -> Option<Result<std::time::Duration, Self::Error>> {
        None
    }
}

/// How a backend's failure is handled: every failure reruns the transform on the CPU; a fatal one
/// also retires the device for the rest of the process.
#[cfg_attr(not(feature = "gpu"), allow(dead_code))]
pub(crate) trait BackendError: std::fmt::Display {
    /// The device itself failed (lost, out of memory, timed out): do not use it again.
    fn is_fatal(&self) -> bool;
}

/// Where a tiled run reads its input.
pub(crate) trait Source {
    /// `(c, h, w)` of the whole input.
    fn shape(&self) -> (usize, usize, usize);
    /// The input window of a tile as f32: borrowed where the input already is that tensor (one
    /// tile over a whole activation, the usual case), so nothing is copied.
    fn window(&self, t: &Tile) -> Cow<'_, Tensor>;
    /// The 8-bit image the windows come from, where they do (see [`PreparedNet::run_rgb`]).
    fn rgb(&self) -> Option<&RgbImage> {
        None
    }
}

/// Where a tiled run writes the output a tile keeps.
pub(crate) trait Sink {
    /// Keeps the core of `part`, the output of tile `t`, whose first row and column sit at output
    /// coordinates `origin`.
    fn keep(&mut self, part: &Tensor, t: &Tile, origin: (usize, usize));

    /// [`Sink::keep`] of a part the run no longer needs (a sink may take it whole).
    fn keep_owned(&mut self, part: Tensor, t: &Tile, origin: (usize, usize)) {
        self.keep(&part, t, origin);
    }
}

impl Source for Tensor {
    fn shape(&self) -> (usize, usize, usize) {
        (self.c, self.h, self.w)
    }

    fn window(&self, t: &Tile) -> Cow<'_, Tensor> {
        let (h, w) = (t.y1 - t.y0, t.x1 - t.x0);
        if (t.y0, t.x0, h, w) == (0, 0, self.h, self.w) {
            return Cow::Borrowed(self);
        }
        if h == 0 || w == 0 {
            // No row loop over an empty window (a 0 x 2^60 image is consistent).
            return Cow::Owned(Tensor::from_vec(self.c, h, w, Vec::new()));
        }
        let mut data = Vec::with_capacity(self.c * h * w);
        for c in 0..self.c {
            let plane = self.channel(c);
            for row in t.y0..t.y1 {
                data.extend_from_slice(&plane[row * self.w + t.x0..row * self.w + t.x1]);
            }
        }
        Cow::Owned(Tensor::from_vec(self.c, h, w, data))
    }
}

impl Source for RgbImage {
    fn shape(&self) -> (usize, usize, usize) {
        (3, self.height, self.width)
    }

    fn window(&self, t: &Tile) -> Cow<'_, Tensor> {
        Cow::Owned(self.window_f32(t))
    }

    fn rgb(&self) -> Option<&RgbImage> {
        Some(self)
    }
}

/// The part of a tile's output window `[o0, o1)` inside an output of `n` pixels, as ranges in
/// output and in part coordinates.
fn kept(o0: usize, o1: usize, n: usize, origin: usize) -> (std::ops::Range<usize>, usize) {
    let end = o1.min(n);
    (o0.min(end)..end, o0.min(end) - origin)
}

impl Sink for Tensor {
    /// A part that is the whole output (one tile) becomes the sink, not copied into it.
    fn keep_owned(&mut self, part: Tensor, t: &Tile, origin: (usize, usize)) {
        let whole = (part.c, part.h, part.w) == (self.c, self.h, self.w)
            && origin == (0, 0)
            && (t.oy0, t.ox0) == (0, 0)
            && t.oy1 >= self.h
            && t.ox1 >= self.w;
        if whole {
            *self = part;
        } else {
            self.keep(&part, t, origin);
        }
    }

    fn keep(&mut self, part: &Tensor, t: &Tile, (py, px): (usize, usize)) {
        let (rows, _) = kept(t.oy0, t.oy1, self.h, py);
        let (cols, pc) = kept(t.ox0, t.ox1, self.w, px);
        if rows.is_empty() || cols.is_empty() {
            return;
        }
        for c in 0..self.c.min(part.c) {
            for oy in rows.clone() {
                let src = &part.channel(c)[(oy - py) * part.w + pc..][..cols.len()];
                let w = self.w;
                self.channel_mut(c)[oy * w + cols.start..][..cols.len()].copy_from_slice(src);
            }
        }
    }
}

impl Sink for RgbImage {
    /// Quantizes: clamp to `[0, 1]`, scale by 255, round half to even; output beyond the image
    /// (the synthesis' padding) is dropped, as a crop would.
    fn keep(&mut self, part: &Tensor, t: &Tile, (py, px): (usize, usize)) {
        let (rows, _) = kept(t.oy0, t.oy1, self.height, py);
        let (cols, pc) = kept(t.ox0, t.ox1, self.width, px);
        if rows.is_empty() || cols.is_empty() {
            return;
        }
        for oy in rows {
            for c in 0..3.min(part.c) {
                let src = &part.channel(c)[(oy - py) * part.w + pc..][..cols.len()];
                for (i, &v) in src.iter().enumerate() {
                    self.data[(oy * self.width + cols.start + i) * 3 + c] =
                        round_ties_even(v.clamp(0.0, 1.0) * 255.0) as u8;
                }
            }
        }
    }
}

/// Runs `net` on `src` into `sink`: in one piece when it fits `budget`, else in the largest
/// square tiles that do.
pub(crate) fn forward<N: PreparedNet>(
    net: &N,
    src: &impl Source,
    sink: &mut impl Sink,
    budget: u64,
) -> Result<(), N::Error> {
    let (_, h, w) = src.shape();
    let g = net.geometry();
    let core = core_size(h, w, g, |th, tw| net.fits(th, tw, budget))
        .ok_or_else(|| net.too_large(h, w, budget))?;
    for t in tiles(h, w, core, g) {
        let part = match src.rgb().and_then(|image| net.run_rgb(image, &t)) {
            Some(part) => part?,
            None => net.run(&src.window(&t))?,
        };
        sink.keep_owned(part, &t, (t.y0 * g.up / g.down, t.x0 * g.up / g.down));
    }
    Ok(())
}

/// [`forward`] into a new tensor of the net's output shape `out`.
#[cfg(any(all(feature = "gpu", feature = "internals"), test))]
pub(crate) fn forward_tensor<N: PreparedNet>(
    net: &N,
    src: &impl Source,
    out: (usize, usize, usize),
    budget: u64,
) -> Result<Tensor, N::Error> {
    let mut t = Tensor::zeros(out.0, out.1, out.2);
    forward(net, src, &mut t, budget)?;
    Ok(t)
}

/// How a net scales space, and how far its outputs look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Product of the plain convolutions' strides.
    pub down: usize,
    /// Product of the transposed convolutions' strides.
    pub up: usize,
    /// Receptive-field radius in input pixels, rounded up to a multiple of `down`.
    pub halo: usize,
}

impl Geometry {
    /// Side of the smallest square tile: one core of `down` pixels plus a halo on each side.
    pub fn smallest_side(&self) -> usize {
        self.down + 2 * self.halo
    }

    pub fn of(net: &Net) -> Geometry {
        let mut down = 1;
        let mut up = 1;
        for l in &net.layers {
            if let Layer::Conv(c) = l {
                if c.transposed {
                    up *= c.stride;
                } else {
                    down *= c.stride;
                }
            }
        }
        // Walk back from one output pixel (and its sub-pixel siblings) to the input.
        let mut r = up.saturating_sub(1);
        for l in net.layers.iter().rev() {
            if let Layer::Conv(c) = l {
                let p = c.k / 2;
                r = if c.transposed {
                    (r + p).div_ceil(c.stride)
                } else {
                    r * c.stride + p
                };
            }
        }
        let halo = r.div_ceil(down) * down;
        Geometry { down, up, halo }
    }
}

/// One tile: the input window it reads and the output window it keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tile {
    /// Input window `[y0, y1) x [x0, x1)` (core plus halo, clipped to the image).
    pub y0: usize,
    pub y1: usize,
    pub x0: usize,
    pub x1: usize,
    /// Output window the core covers, in full-output coordinates.
    pub oy0: usize,
    pub oy1: usize,
    pub ox0: usize,
    pub ox1: usize,
}

impl Tile {
    /// The whole `h x w` input of a net that does not scale space.
    pub(crate) fn whole(h: usize, w: usize) -> Tile {
        Tile {
            y0: 0,
            y1: h,
            x0: 0,
            x1: w,
            oy0: 0,
            oy1: h,
            ox0: 0,
            ox1: w,
        }
    }
}

/// Output coordinate of input coordinate `i` (a multiple of `down`, or the image end).
fn out_coord(i: usize, g: Geometry) -> usize {
    (i * g.up).div_ceil(g.down)
}

/// Splits an `h x w` input into tiles of `core x core` (a multiple of `down`).
pub(crate) fn tiles(h: usize, w: usize, core: usize, g: Geometry) -> Vec<Tile> {
    let core = core.max(g.down).div_ceil(g.down) * g.down;
    let mut v = Vec::new();
    for cy in (0..h).step_by(core) {
        let cy1 = (cy + core).min(h);
        for cx in (0..w).step_by(core) {
            let cx1 = (cx + core).min(w);
            v.push(Tile {
                y0: cy.saturating_sub(g.halo),
                y1: (cy1 + g.halo).min(h),
                x0: cx.saturating_sub(g.halo),
                x1: (cx1 + g.halo).min(w),
                oy0: out_coord(cy, g),
                oy1: out_coord(cy1, g),
                ox0: out_coord(cx, g),
                ox1: out_coord(cx1, g),
            });
        }
    }
    v
}

/// The largest square core (a multiple of `down`) whose tile with halos `fits`, or `None` when
/// even a core of `down` pixels does not.
pub(crate) fn core_size(
    h: usize,
    w: usize,
    g: Geometry,
    fits: impl Fn(usize, usize) -> bool,
) -> Option<usize> {
    if fits(h, w) {
        return Some(h.max(w).div_ceil(g.down) * g.down);
    }
    let mut core = h.max(w).div_ceil(g.down) * g.down;
    loop {
        let side_h = (core + 2 * g.halo).min(h);
        let side_w = (core + 2 * g.halo).min(w);
        if fits(side_h, side_w) {
            return Some(core);
        }
        if core <= g.down {
            return None;
        }
        core = (core / 2).div_ceil(g.down) * g.down;
    }
}
