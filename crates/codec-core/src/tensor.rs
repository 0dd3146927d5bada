//! The one activation type the graphs pass around: a batch-1 CHW f32 tensor.
//!
//! Channel-major planes match PyTorch's NCHW, so golden fixtures compare element by element,
//! and the entropy coder scans symbols in the same order CompressAI does.

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

    /// Keeps the top-left `h x w` window (TFC crops synthesis outputs to the sender's shape).
    pub(crate) fn crop(&self, h: usize, w: usize) -> Tensor {
        assert!(h <= self.h && w <= self.w, "crop larger than tensor");
        if h == self.h && w == self.w {
            return self.clone();
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
