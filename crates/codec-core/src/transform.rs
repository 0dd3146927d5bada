//! A transform (`g_a`, `g_s`, `h_a`, the means of `h_s`) on the chosen backend: the codec's one
//! seam to the hardware.
//!
//! Both backends implement [`PreparedNet`] and run through the same tiler, so the codec never
//! matches on a backend's errors: a failing GPU run (lost, out of memory, timed out, too large)
//! reruns on the CPU with a note, and a fatal failure ([`BackendError::is_fatal`]) retires the
//! device for the rest of the process. Under `--backend auto` a GPU that cannot even take the
//! weights leaves the transform on the CPU, with a note, instead of failing the image.

use std::sync::Mutex;
#[cfg(feature = "gpu")]
use std::sync::OnceLock;

use crate::backend::Backend;
use crate::cpu::{CpuNet, Math};
use crate::error::{Error, Result};
#[cfg(feature = "gpu")]
use crate::gpu::GpuNet;
use crate::model::graph::Net;
use crate::tensor::Tensor;
#[cfg(feature = "gpu")]
use crate::tiling::BackendError;
use crate::tiling::{self, Sink, Source};

/// Fallbacks from the GPU to the CPU, for the caller to report.
pub(crate) type Notes = Mutex<Vec<String>>;

#[cfg(feature = "gpu")]
fn note(notes: &Notes, text: String) {
    if let Ok(mut n) = notes.lock() {
        n.push(text);
    }
}

#[derive(Debug)]
pub(crate) enum Transform {
    /// The native CPU path.
    Cpu(CpuNet),
    /// A GPU net; the graph is kept to prepare the CPU fallback on first need.
    #[cfg(feature = "gpu")]
    Gpu(Box<GpuTransform>),
}

/// [`Transform::Gpu`]'s parts.
#[cfg(feature = "gpu")]
#[derive(Debug)]
pub(crate) struct GpuTransform {
    gpu: GpuNet,
    net: Net,
    cpu: OnceLock<CpuNet>,
}

impl Transform {
    /// Prepares `net` on `backend` (weights repacked or uploaded once).
    #[cfg(not(feature = "gpu"))]
    pub fn new(net: &Net, _backend: &Backend, _notes: &Notes) -> Result<Self> {
        Ok(Transform::Cpu(CpuNet::prepare(net, Math::Fast)))
    }

    /// Prepares `net` on `backend` (weights repacked or uploaded once).
    #[cfg(feature = "gpu")]
    pub fn new(net: &Net, backend: &Backend, notes: &Notes) -> Result<Self> {
        let Some(ctx) = backend.gpu().filter(|c| !c.failed()) else {
            return Ok(Transform::Cpu(CpuNet::prepare(net, Math::Fast)));
        };
        match GpuNet::prepare(ctx, net) {
            Ok(gpu) => Ok(Transform::Gpu(Box::new(GpuTransform {
                gpu,
                net: net.clone(),
                cpu: OnceLock::new(),
            }))),
            Err(e) if backend.falls_back() => {
                if e.is_fatal() {
                    ctx.mark_failed();
                }
                note(notes, format!("{}: {e}; preparing it on the CPU", net.name));
                Ok(Transform::Cpu(CpuNet::prepare(net, Math::Fast)))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The CPU net where the transform runs on the CPU (not a GPU transform's fallback).
    pub fn cpu_net(&self) -> Option<&CpuNet> {
        match self {
            Transform::Cpu(c) => Some(c),
            #[cfg(feature = "gpu")]
            Transform::Gpu(_) => None,
        }
    }

    /// Output shape for an input shape.
    /// Packs the CPU net's weights now (a GPU transform uploaded its own when it was made).
    pub fn pack_cpu(&self) {
        match self {
            Transform::Cpu(c) => c.pack(),
            #[cfg(feature = "gpu")]
            Transform::Gpu(_) => {}
        }
    }

    pub fn output_shape(&self, shape: (usize, usize, usize)) -> (usize, usize, usize) {
        match self {
            Transform::Cpu(c) => c.output_shape(shape),
            #[cfg(feature = "gpu")]
            Transform::Gpu(g) => g.net.output_shape(shape),
        }
    }

    fn cpu(&self) -> &CpuNet {
        match self {
            Transform::Cpu(c) => c,
            #[cfg(feature = "gpu")]
            Transform::Gpu(g) => g.cpu.get_or_init(|| CpuNet::prepare(&g.net, Math::Fast)),
        }
    }

    /// Runs the transform on `src` into `sink`; on the CPU in tiles whose activations stay within
    /// `budget` bytes.
    #[cfg_attr(not(feature = "gpu"), allow(unused_variables))]
    pub fn forward(
        &self,
        src: &impl Source,
        sink: &mut impl Sink,
        budget: u64,
        notes: &Notes,
    ) -> Result<()> {
        #[cfg(feature = "gpu")]
        if let Transform::Gpu(g) = self {
            let (gpu, net) = (&g.gpu, &g.net);
            if !gpu.context().failed() {
                match tiling::forward(gpu, src, sink, budget) {
                    Ok(()) => return Ok(()),
                    Err(e) => {
                        if e.is_fatal() {
                            gpu.context().mark_failed();
                        }
                        note(
                            notes,
                            format!("{}: {e}; ran it on the CPU instead", net.name),
                        );
                    }
                }
            }
        }
        tiling::forward(self.cpu(), src, sink, budget).map_err(Error::Memory)
    }

    /// [`Transform::forward`] into a new tensor.
    pub fn forward_tensor(&self, src: &impl Source, budget: u64, notes: &Notes) -> Result<Tensor> {
        let (c, h, w) = self.output_shape(src.shape());
        let mut out = Tensor::zeros(c, h, w);
        self.forward(src, &mut out, budget, notes)?;
        Ok(out)
    }
}
