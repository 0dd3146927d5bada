//! `GpuNet` as the codec's [`PreparedNet`] (the GPU's own limits decide the tiles), and what the
//! tests and benchmarks run on it: a whole tensor through the tiler, and device time.

#[cfg(any(test, feature = "internals"))]
use std::time::{Duration, Instant};

use super::GpuNet;
use crate::gpu::GpuError;
use crate::tensor::Tensor;
#[cfg(any(test, feature = "internals"))]
use crate::tiling;
use crate::tiling::{Geometry, PreparedNet};

impl GpuNet {
    /// An input of another channel count is the caller's error, before anything is uploaded.
    fn check_channels(&self, x: &Tensor) -> Result<(), GpuError> {
        if x.c == self.cin {
            return Ok(());
        }
        Err(GpuError::Unsupported(format!(
            "{}: input has {} channels, the net expects {}",
            self.name, x.c, self.cin
        )))
    }

    /// Runs the net on `x`, in tiles when the whole input would not fit.
    #[cfg(any(test, feature = "internals"))]
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, GpuError> {
        self.check_channels(x)?;
        let &out = self.shapes(x.h, x.w).last().unwrap_or(&(0, 0, 0));
        tiling::forward_tensor(self, x, out, self.budget())
    }

    /// Device time of one pass over `x` (untiled), upload and readback excluded: the mean of
    /// `repeats` passes recorded into one submission after a warm-up [`GpuNet::forward`]. For
    /// benchmarks (kernel GMAC/s against the device's peak); every pass re-reads the input
    /// buffer, which only a one-op net leaves intact, but the kernels' time does not depend on
    /// the values.
    #[cfg(any(test, feature = "internals"))]
    pub fn device_time(&self, x: &Tensor, repeats: usize) -> Result<Duration, GpuError> {
        if !self.fits_device(x.h, x.w) {
            return Err(GpuError::Unsupported(format!(
                "{}: device_time needs an input that runs untiled",
                self.name
            )));
        }
        self.forward(x)?;
        let ctx = &self.ctx;
        let shapes = self.shapes(x.h, x.w);
        let scratch = self
            .scratch
            .lock()
            .map_err(|_| GpuError::Readback("scratch lock poisoned".into()))?;
        let (Some(a), Some(b)) = (scratch.act.first(), scratch.act.get(1)) else {
            return Err(GpuError::Readback("no scratch buffers".into()));
        };
        ctx.scoped(|| {
            let mut enc = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some(&self.name),
                });
            for _ in 0..repeats.max(1) {
                self.encode_pass(&mut enc, &shapes, a, b)?;
            }
            let start = Instant::now();
            let index = ctx.queue.submit([enc.finish()]);
            self.wait(index)?;
            Ok(start.elapsed() / repeats.max(1) as u32)
        })
    }
}

/// The GPU's own limits decide the tiles (the CPU's memory budget does not apply).
impl PreparedNet for GpuNet {
    type Error = GpuError;

    fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn fits(&self, h: usize, w: usize, _budget: u64) -> bool {
        self.fits_device(h, w)
    }

    fn run(&self, x: &Tensor) -> Result<Tensor, GpuError> {
        self.check_channels(x)?;
        self.run_piece(x)
    }

    /// Reports the largest activation of the smallest tile (one core plus its halos).
    fn too_large(&self, h: usize, w: usize, _budget: u64) -> GpuError {
        let g = self.geometry;
        let side = g.smallest_side();
        let (c, th, tw) = self
            .shapes(side.min(h), side.min(w))
            .into_iter()
            .max_by_key(|s| s.0 * s.1 * s.2)
            .unwrap_or((0, 0, 0));
        GpuError::TooLarge {
            what: format!("{}: a {c}x{th}x{tw} activation", self.name),
            needed: (c * th * tw * 4) as u64,
            limit: self.budget(),
        }
    }

    #[cfg(test)]
    fn device_time(&self, x: &Tensor, repeats: usize) -> Option<Result<Duration, GpuError>> {
        Some(GpuNet::device_time(self, x, repeats))
    }
}
