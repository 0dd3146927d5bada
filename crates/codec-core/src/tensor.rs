//! The one activation type the graphs pass around: a batch-1 CHW f32 tensor.
//!
//! Channel-major planes match PyTorch's NCHW, so golden fixtures compare element by element,
//! and the entropy coder scans symbols in the same order CompressAI does.

/// `x.round_ties_even()`, bit for bit, in plain arithmetic. On the baseline x86-64 target (no
/// SSE4.1 `roundps`) the standard method is a call into the runtime's `rintf` per value, once per
/// latent element in the encoder and once per pixel value where the decoder writes its image; this
/// inlines and vectorizes (docs/benchmarks.md: 0.3 % of the instructions). From 2^23 up every f32
/// is an integer; below it, `|x| + 2^23` has a spacing of 1, so the default round-to-nearest-even
/// mode drops the fraction exactly as `rint` does, and the sign is put back (`-0.3` gives `-0.0`).
/// NaN and the infinities pass through.
#[inline(always)]
pub(crate) fn round_ties_even(x: f32) -> f32 {
    const TWO_23: f32 = 8_388_608.0;
    let a = x.abs();
    if a < TWO_23 {
        ((a + TWO_23) - TWO_23).copysign(x)
    } else {
        x
    }
}

/// A `C x H x W` f32 tensor stored as `C` contiguous `H x W` planes.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub data: Vec<f32>,
}

impl Tensor {
    /// An all-zero tensor.
    pub(crate) fn zeros(c: usize, h: usize, w: usize) -> Self {
        Self {
            c,
            h,
            w,
            data: vec![0.0; c * h * w],
        }
    }

    /// Wraps `data`, or [`crate::Error::Argument`] unless it holds exactly `c * h * w` values.
    pub fn new(c: usize, h: usize, w: usize, data: Vec<f32>) -> crate::Result<Self> {
        let t = Self { c, h, w, data };
        t.check()?;
        Ok(t)
    }

    /// Whether `data` holds exactly `c * h * w` values (the fields are public).
    pub fn check(&self) -> crate::Result<()> {
        let (c, h, w) = (self.c, self.h, self.w);
        let expected = c.checked_mul(h).and_then(|v| v.checked_mul(w));
        if expected != Some(self.data.len()) {
            return Err(crate::Error::Argument(format!(
                "a {c}x{h}x{w} tensor needs {} values, got {}",
                expected.map_or("more than usize".into(), |e| e.to_string()),
                self.data.len()
            )));
        }
        Ok(())
    }

    /// Wraps `data`, which must hold exactly `c * h * w` values.
    ///
    /// # Panics
    /// When it does not (internal use; [`Tensor::new`] checks).
    pub(crate) fn from_vec(c: usize, h: usize, w: usize, data: Vec<f32>) -> Self {
        assert_eq!(
            data.len(),
            c * h * w,
            "tensor data length does not match its shape"
        );
        Self { c, h, w, data }
    }

    /// Number of pixels in one channel plane.
    pub(crate) fn plane(&self) -> usize {
        self.h * self.w
    }

    /// The `ch`-th channel plane.
    pub(crate) fn channel(&self, ch: usize) -> &[f32] {
        let p = self.plane();
        &self.data[ch * p..(ch + 1) * p]
    }

    /// The `ch`-th channel plane, mutably.
    pub(crate) fn channel_mut(&mut self, ch: usize) -> &mut [f32] {
        let p = self.plane();
        &mut self.data[ch * p..(ch + 1) * p]
    }

    /// Keeps the top-left `h x w` window (TFC crops synthesis outputs to the sender's shape); a
    /// tensor already that size is returned as it is, not copied (a Kodak image's `x_hat` is 4.7
    /// MB, copied per iteration of the encoder's search and per latent dump).
    pub(crate) fn crop(self, h: usize, w: usize) -> Tensor {
        assert!(h <= self.h && w <= self.w, "crop larger than tensor");
        if h == self.h && w == self.w {
            return self;
        }
        let mut out = Vec::with_capacity(self.c * h * w);
        for ch in 0..self.c {
            let plane = self.channel(ch);
            for row in plane.chunks_exact(self.w).take(h) {
                out.extend_from_slice(&row[..w]);
            }
        }
        Tensor {
            c: self.c,
            h,
            w,
            data: out,
        }
    }
}

#[cfg(test)]
mod round_tests {
    use super::round_ties_even;

    fn same(x: f32) {
        let (a, b) = (round_ties_even(x), x.round_ties_even());
        assert!(
            a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            "{x:e} ({:#x}): {a:e} against the standard {b:e}",
            x.to_bits()
        );
    }

    #[test]
    fn rounds_as_the_standard_method_does_bit_for_bit() {
        // Every 251st bit pattern (17 million values of every exponent, both signs, NaNs).
        for bits in (0..=u32::MAX).step_by(251) {
            same(f32::from_bits(bits));
        }
        // The ties and their neighbours, near zero and near 2^22..2^24 where the trick's spacing
        // changes, and the specials.
        for k in (-3000i32..3000)
            .chain((1 << 22) - 3..(1 << 22) + 3)
            .chain((1 << 23) - 3..(1 << 23) + 3)
        {
            for x in [k as f32 + 0.5, -(k as f32 + 0.5), k as f32, k as f32 - 0.5] {
                same(x);
                same(f32::from_bits(x.to_bits().wrapping_add(1)));
                same(f32::from_bits(x.to_bits().wrapping_sub(1)));
            }
        }
        for x in [
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            2.5,
            -2.5,
            f32::MIN_POSITIVE,
            1e-45,
            8388607.5,
            8388608.0,
            16777215.0,
            16777216.0,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ] {
            same(x);
        }
    }
}
