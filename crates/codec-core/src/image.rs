//! 8-bit RGB pixels in and out of the codec; file formats are the binaries' business.

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// An interleaved 8-bit RGB image, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    /// `height * width * 3` bytes.
    pub data: Vec<u8>,
}

impl RgbImage {
    /// An image of `width x height` pixels from `height * width * 3` bytes, or
    /// [`Error::Argument`] when the length differs.
    pub fn new(width: usize, height: usize, data: Vec<u8>) -> Result<Self> {
        let image = Self {
            width,
            height,
            data,
        };
        image.check()?;
        Ok(image)
    }

    /// Whether `data` holds `height * width * 3` bytes (the fields are public).
    pub fn check(&self) -> Result<()> {
        let expected = self
            .width
            .checked_mul(self.height)
            .and_then(|p| p.checked_mul(3));
        if expected != Some(self.data.len()) {
            return Err(Error::Argument(format!(
                "a {}x{} RGB image needs {} bytes, got {}",
                self.width,
                self.height,
                expected.map_or("more than usize".into(), |e| e.to_string()),
                self.data.len()
            )));
        }
        Ok(())
    }

    /// The image as a `3 x H x W` tensor in `[0, 1]` (8-bit value / 255, as TFC and CompressAI).
    pub fn to_tensor(&self) -> Tensor {
        let plane = self.width * self.height;
        let mut data = vec![0.0f32; 3 * plane];
        for (i, px) in self.data.chunks_exact(3).enumerate() {
            for (c, &v) in px.iter().enumerate() {
                data[c * plane + i] = f32::from(v) / 255.0;
            }
        }
        Tensor::from_vec(3, self.height, self.width, data)
    }

    /// Quantizes a `3 x H x W` tensor: clamp to `[0, 1]`, scale by 255, round half to even.
    pub fn from_tensor(t: &Tensor) -> Self {
        let plane = t.plane();
        let mut data = vec![0u8; 3 * plane];
        for c in 0..3 {
            for (i, &v) in t.channel(c).iter().enumerate() {
                data[i * 3 + c] = (v.clamp(0.0, 1.0) * 255.0).round_ties_even() as u8;
            }
        }
        Self {
            width: t.w,
            height: t.h,
            data,
        }
    }
}
