//! What an im2col reads: a whole f32 activation, or the rows of one that a band needs.
//!
//! Why: an encoder's input in f32 is four times its 8-bit pixels (4.7 MB for a Kodak image). Made
//! whole before `g_a` runs, it is fresh memory in a one-shot call, which the kernel zeroes, read
//! once by the first convolution and dropped. An analysis head (`band.rs`) converts only the rows
//! each band reads, into one small buffer reused down the image ([`Rows`]).

use crate::tensor::Tensor;

/// `c` planes of `h x w` values, read a row segment at a time.
pub(crate) trait Planes: Sync {
    /// `(c, h, w)`.
    fn shape(&self) -> (usize, usize, usize);

    /// `dst[j] = x[ci][iy][ix0 + j * step]` for every `j` of `dst`.
    ///
    /// # Panics
    /// If a read falls outside row `iy` of plane `ci`.
    fn gather(&self, ci: usize, iy: usize, ix0: usize, step: usize, dst: &mut [f32]);
}

impl Planes for Tensor {
    #[inline(always)]
    fn shape(&self) -> (usize, usize, usize) {
        (self.c, self.h, self.w)
    }

    #[inline(always)]
    fn gather(&self, ci: usize, iy: usize, ix0: usize, step: usize, dst: &mut [f32]) {
        let row = &self.channel(ci)[iy * self.w..(iy + 1) * self.w];
        gather(dst, &row[ix0..], step);
    }
}

/// `dst[j] = src[j * step]`.
#[inline(always)]
fn gather(dst: &mut [f32], src: &[f32], step: usize) {
    let len = dst.len();
    match step {
        1 => dst.copy_from_slice(&src[..len]),
        2 => {
            let src = &src[..2 * len - 1];
            let (head, last) = dst.split_at_mut(len - 1);
            for (d, pair) in head.iter_mut().zip(src.chunks_exact(2)) {
                *d = pair[0];
            }
            last[0] = src[2 * len - 2];
        }
        _ => {
            for (d, s) in dst.iter_mut().zip(src.iter().step_by(step)) {
                *d = *s;
            }
        }
    }
}

/// Rows `[y0, y0 + t.h)` of `h`-row planes, held in `t`: the part of an input a band of an
/// analysis head reads (see `band.rs`).
pub(crate) struct Rows<'a> {
    pub t: &'a Tensor,
    pub y0: usize,
    pub h: usize,
}

impl Planes for Rows<'_> {
    #[inline(always)]
    fn shape(&self) -> (usize, usize, usize) {
        (self.t.c, self.h, self.t.w)
    }

    #[inline(always)]
    fn gather(&self, ci: usize, iy: usize, ix0: usize, step: usize, dst: &mut [f32]) {
        let r = iy
            .checked_sub(self.y0)
            .filter(|&r| r < self.t.h)
            .expect("a row the band does not hold");
        self.t.gather(ci, r, ix0, step, dst);
    }
}
