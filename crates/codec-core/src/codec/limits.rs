//! How large an image may be and how much memory coding it may hold: the limits checked before
//! anything sized from a header or an image is allocated, and the CPU's tile budget.

use super::Codec;
use crate::error::{Error, Result};
use crate::model::graph::{volume, Net};
use crate::tiling::Geometry;

/// Size limits checked before any allocation sized from a header or an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_width: usize,
    pub max_height: usize,
    pub max_pixels: usize,
    /// Bytes the transforms may hold at once on the CPU backend (see [`Codec::memory_needed`]);
    /// a tiny file must not be able to claim gigabytes.
    pub max_memory: u64,
}

/// The default [`Limits::max_memory`]: 4 GiB, which a laptop survives; a 24-megapixel photo fits
/// with every shipped model (`tests/hostile.rs` prints the estimates).
pub const DEFAULT_MAX_MEMORY: u64 = 4 << 30;

/// Activation bytes a CPU transform holds at once before it works in tiles: every Kodak image and
/// most photos up to about 2 Mpx run in one piece, larger ones in tiles of this size, so memory
/// grows only with the image and its latents (see [`Codec::memory_needed`]).
pub const CPU_TILE_BUDGET: u64 = 256 << 20;

impl Default for Limits {
    /// 65535 per side (TFC stores int32 shapes; PNG allows more, memory does not), 64 Mpx and
    /// [`DEFAULT_MAX_MEMORY`].
    fn default() -> Self {
        Self {
            max_width: 65_535,
            max_height: 65_535,
            max_pixels: 1 << 26,
            max_memory: DEFAULT_MAX_MEMORY,
        }
    }
}

impl Limits {
    /// Checks an image size (also a size read from a file header).
    pub fn check(&self, width: u64, height: u64) -> Result<()> {
        let err = |reason: String| {
            Err(Error::ImageSize {
                width,
                height,
                reason,
            })
        };
        if width == 0 || height == 0 {
            return err("empty image".into());
        }
        if width > self.max_width as u64 || height > self.max_height as u64 {
            return err(format!(
                "larger than the limit of {}x{}",
                self.max_width, self.max_height
            ));
        }
        if width.saturating_mul(height) > self.max_pixels as u64 {
            return err(format!("more than the limit of {} pixels", self.max_pixels));
        }
        Ok(())
    }
}

impl Codec {
    /// The nets that run on whole images (`g_a`, `g_s`) and on latents (`h_a`, `h_s`).
    fn nets(&self) -> impl Iterator<Item = &Net> {
        let f = &self.family;
        [Some(&f.g_a), Some(&f.g_s), f.h_a.as_ref(), f.h_s.as_ref()]
            .into_iter()
            .flatten()
    }

    /// Bytes that grow with the image whatever the tiles: the image in and out as 8-bit pixels,
    /// and the latents with their symbols, means, scales and indexes (six 4-byte values per
    /// element of `y`).
    fn fixed_bytes(&self, width: usize, height: usize) -> u64 {
        let y_values = volume(self.family.g_a.output_shape((3, height, width)));
        let pixels = volume((1, height, width));
        y_values
            .saturating_mul(24)
            .saturating_add(pixels.saturating_mul(8))
    }

    /// Activation bytes of the largest layer with whole activations (f32 input and output).
    fn whole_activation_bytes(&self, width: usize, height: usize) -> u64 {
        let x = (3, height, width);
        let y = self.family.g_a.output_shape(x);
        let mut peak = self
            .family
            .g_a
            .peak_values(x)
            .max(self.family.g_s.peak_values(y));
        if let (Some(h_a), Some(h_s)) = (&self.family.h_a, &self.family.h_s) {
            peak = peak
                .max(h_a.peak_values(y))
                .max(h_s.peak_values(h_a.output_shape(y)));
        }
        peak.saturating_mul(4)
    }

    /// Activation bytes of the smallest tile any transform can run (one core of its downsampling
    /// factor plus its halos).
    fn smallest_tile_bytes(&self) -> u64 {
        self.nets()
            .map(|net| {
                let g = Geometry::of(net);
                let side = g.smallest_side();
                net.peak_values((net.input_channels().unwrap_or(1), side, side))
                    .saturating_mul(4)
            })
            .max()
            .unwrap_or(0)
    }

    /// Bytes the CPU backend holds at once to code a `width x height` image: the 8-bit pixels in
    /// and out, the latents with their symbols, and the transforms' activations, whole up to
    /// [`CPU_TILE_BUDGET`] and in tiles beyond. Checked against [`Limits::max_memory`] before
    /// anything is allocated (a smaller budget gives smaller tiles, down to the smallest one);
    /// the GPU backend tiles by its own limits.
    pub fn memory_needed(&self, width: usize, height: usize) -> u64 {
        let act = self.whole_activation_bytes(width, height);
        self.fixed_bytes(width, height)
            .saturating_add(act.min(CPU_TILE_BUDGET.max(self.smallest_tile_bytes())))
    }

    /// [`Limits::check`] and, on the CPU backend, the memory budget: returns the activation bytes
    /// a CPU transform may hold at once (its tile budget).
    pub(super) fn check_size(&self, limits: &Limits, width: usize, height: usize) -> Result<u64> {
        limits.check(width as u64, height as u64)?;
        let fixed = self.fixed_bytes(width, height);
        let least = fixed
            + self
                .whole_activation_bytes(width, height)
                .min(self.smallest_tile_bytes());
        if !self.backend.is_gpu() && least > limits.max_memory {
            return Err(Error::ImageSize {
                width: width as u64,
                height: height as u64,
                reason: format!(
                    "coding it on the CPU needs at least about {}, more than the memory limit of {} \
                     (raise it with --max-memory or TFCI_MAX_MEMORY)",
                    bytes_text(least),
                    bytes_text(limits.max_memory)
                ),
            });
        }
        Ok(limits
            .max_memory
            .saturating_sub(fixed)
            .min(CPU_TILE_BUDGET.max(self.smallest_tile_bytes())))
    }
}

/// `1.4 GiB`, `64 MiB` or `1024 bytes`.
pub(super) fn bytes_text(b: u64) -> String {
    const MIB: u64 = 1 << 20;
    if b >= 1 << 30 {
        format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
    } else if b >= MIB {
        format!("{:.0} MiB", b as f64 / MIB as f64)
    } else {
        format!("{b} bytes")
    }
}
