//! How a net's layers map onto the kernels: workgroup tiles, what one workgroup stages, and the
//! weight layouts the kernels read (repacked once when a net is prepared).

use crate::model::graph::{conv_out_hw, Conv};

/// Output pixels per workgroup side of the convolution kernels.
pub(super) const TILE: usize = 8;
/// Output channels per workgroup.
pub(super) const COUT_TILE: usize = 8;
/// Output pixels per workgroup side of the 2x2-per-invocation kernels.
pub(super) const TILE_X4: usize = 16;
/// Floats of staged input, and of staged weights, per workgroup (see conv2d.wgsl and
/// conv2d_x4.wgsl, which trade weight space for a larger input patch).
pub(super) const STAGE_IN: usize = 2040;
pub(super) const STAGE_W: usize = 2040;
pub(super) const STAGE_IN_X4: usize = 3060;
pub(super) const STAGE_W_X4: usize = 1020;
/// Pixels per GDN invocation row (the workgroup covers 4 x this many).
pub(super) const GDN_PIXELS: usize = 64;

#[derive(Clone, Copy, Debug)]
pub(super) struct ConvShape {
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub transposed: bool,
}

impl ConvShape {
    pub fn out(&self, h: usize, w: usize) -> (usize, usize) {
        conv_out_hw(self.stride, self.transposed, h, w)
    }

    /// Whether the 2x2-pixels-per-invocation kernel runs this layer: it does whenever its
    /// 16x16 tile's patch fits the staging memory (all but the 9x9 stride-4 plain conv).
    pub fn x4(&self) -> bool {
        self.chunk_for(true) > 0
    }

    /// Side of the input patch one workgroup stages.
    pub fn patch_for(&self, x4: bool) -> usize {
        let t = if x4 { TILE_X4 } else { TILE };
        let (k, s) = (self.k, self.stride);
        if self.transposed && x4 {
            // One phase over a 16x16 block of the input grid (conv_transpose2d_x4.wgsl).
            let (p, k, s) = ((k / 2) as isize, k as isize, s as isize);
            (16 + (s - 1 + p) / s - (p + 1 - k).div_euclid(s)) as usize
        } else if self.transposed {
            (t - 1 + k - 1).div_ceil(s) + 1
        } else {
            (t - 1) * s + k
        }
    }

    /// Input channels staged per step.
    pub fn chunk_for(&self, x4: bool) -> usize {
        let area = self.patch_for(x4).pow(2);
        // The transposed 2x2 kernel stages only one phase's taps, at most ceil(k / s) per axis.
        let kk = if self.transposed && x4 {
            self.k.div_ceil(self.stride).pow(2)
        } else {
            self.k * self.k
        };
        let (sin, sw) = if x4 {
            (STAGE_IN_X4, STAGE_W_X4)
        } else {
            (STAGE_IN, STAGE_W)
        };
        self.cin.min(sin / area).min(sw / (COUT_TILE * kk))
    }
}

/// The repacked weights as f16 pairs (channel 2i in the low half), or `None` when a weight is
/// not exactly an f16 value. Shipped models store f16 weights, so their convolutions stage half
/// the bytes and unpack to the very f32 values the f32 layout holds: parity is bitwise.
pub(super) fn pack_f16(w: &[f32]) -> Option<Vec<u32>> {
    w.chunks(2)
        .map(|pair| {
            let mut word = 0u32;
            for (i, &v) in pair.iter().enumerate() {
                let h = half::f16::from_f32(v);
                if h.to_f32().to_bits() != v.to_bits() {
                    return None;
                }
                word |= u32::from(h.to_bits()) << (16 * i);
            }
            Some(word)
        })
        .collect()
}

/// `[cin][k*k][cout_pad]` with `cout_pad` a multiple of 8: one staged row feeds 8 outputs.
pub(super) fn repack_conv(c: &Conv) -> Vec<f32> {
    let kk = c.k * c.k;
    let cpad = c.cout.div_ceil(COUT_TILE) * COUT_TILE;
    let mut out = vec![0.0; c.cin * kk * cpad];
    for ci in 0..c.cin {
        for co in 0..c.cout {
            for t in 0..kk {
                let src = if c.transposed {
                    (ci * c.cout + co) * kk + t
                } else {
                    (co * c.cin + ci) * kk + t
                };
                out[(ci * kk + t) * cpad + co] = c.weight[src];
            }
        }
    }
    out
}

/// GDN's gamma as `[j][i_pad]`: column `j` of the matrix, padded to a multiple of 8.
pub(super) fn repack_gamma(c: usize, gamma: &[f32]) -> Vec<f32> {
    let cpad = c.div_ceil(COUT_TILE) * COUT_TILE;
    let mut out = vec![0.0; c * cpad];
    for i in 0..c {
        for j in 0..c {
            out[j * cpad + i] = gamma[i * c + j];
        }
    }
    out
}
