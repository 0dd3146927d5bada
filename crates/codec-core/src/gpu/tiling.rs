//! Spatial tiles with halos.
//!
//! Every layer is a "same"-padded convolution, GDN or activation, so an output pixel depends only
//! on inputs within the net's receptive-field radius. A tile therefore runs the whole net on its
//! core region plus a halo at least that radius wide (zeros only where the image itself ends,
//! exactly as in the untiled run) and keeps the core of its output. Cores start at multiples of
//! the net's downsampling factor so the output grids line up. Each output value is computed by
//! the same kernel in the same order whichever tile holds it, so tiled equals untiled.

use crate::model::graph::{Layer, Net};

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
