//! 8-bit RGB pixels in and out of the codec; file formats are the binaries' business.

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::tiling::{Sink, Tile};

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

    /// The image as a `3 x H x W` tensor in `[0, 1]` (8-bit value / 255, as TFC and CompressAI),
    /// or [`Error::Argument`] when its public fields disagree.
    pub fn to_tensor(&self) -> Result<Tensor> {
        self.check()?;
        Ok(self.as_tensor())
    }

    /// [`RgbImage::to_tensor`] of an image known to be consistent.
    pub(crate) fn as_tensor(&self) -> Tensor {
        self.window_f32(&Tile::whole(self.height, self.width))
    }

    /// Quantizes a `3 x H x W` tensor: clamp to `[0, 1]`, scale by 255, round half to even; or
    /// [`Error::Argument`] for another channel count or fields that disagree.
    pub fn from_tensor(t: &Tensor) -> Result<Self> {
        t.check()?;
        if t.c != 3 {
            return Err(Error::Argument(format!(
                "an RGB image needs 3 channels, the tensor has {}",
                t.c
            )));
        }
        Ok(Self::quantize(t))
    }

    /// [`RgbImage::from_tensor`] of a tensor known to be `3 x H x W` and consistent.
    pub(crate) fn quantize(t: &Tensor) -> Self {
        let mut image = Self {
            width: t.w,
            height: t.h,
            data: vec![0u8; 3 * t.plane()],
        };
        image.keep(t, &Tile::whole(t.h, t.w), (0, 0));
        image
    }

    /// Tile `t` of the image as f32, 8-bit value / 255 (as TFC and CompressAI read images). Rows
    /// in parallel: the window of a Kodak image is 4.7 MB of fresh memory that the first
    /// convolution waits for.
    pub(crate) fn window_f32(&self, t: &Tile) -> Tensor {
        self.window_f32_into(t, Vec::new())
    }

    /// [`RgbImage::window_f32`] into `buf`'s allocation where it is large enough.
    pub(crate) fn window_f32_into(&self, t: &Tile, mut buf: Vec<f32>) -> Tensor {
        use rayon::prelude::*;
        let (h, w) = (t.y1 - t.y0, t.x1 - t.x0);
        if h == 0 || w == 0 {
            return Tensor::from_vec(3, h, w, Vec::new());
        }
        let len = 3 * h * w;
        if buf.capacity() < len {
            buf = vec![0.0f32; len];
        } else {
            buf.resize(len, 0.0);
        }
        let mut data = buf;
        let (r, gb) = data.split_at_mut(h * w);
        let (g, b) = gb.split_at_mut(h * w);
        let rows = r
            .par_chunks_mut(w)
            .zip(g.par_chunks_mut(w))
            .zip(b.par_chunks_mut(w));
        rows.enumerate().for_each(|(i, ((r, g), b))| {
            let at = ((t.y0 + i) * self.width + t.x0) * 3;
            let px = &self.data[at..at + 3 * w];
            for (j, rgb) in px.chunks_exact(3).enumerate() {
                r[j] = f32::from(rgb[0]) / 255.0;
                g[j] = f32::from(rgb[1]) / 255.0;
                b[j] = f32::from(rgb[2]) / 255.0;
            }
        });
        Tensor::from_vec(3, h, w, data)
    }
}
