//! STUB: to be implemented (prepared layers and the forward pass).
use super::Math;
use crate::model::graph::Net;
use crate::tensor::Tensor;

/// A layer with its weights repacked for the CPU kernels (done once per model load).
#[derive(Debug)]
pub struct CpuLayer {}

/// A [`Net`] prepared for the CPU.
#[derive(Debug)]
pub struct CpuNet {
    pub layers: Vec<CpuLayer>,
    pub math: Math,
}

impl CpuNet {
    /// Repacks the weights of `net` for the CPU kernels.
    pub fn prepare(_net: &Net, math: Math) -> CpuNet {
        CpuNet { layers: vec![], math }
    }

    /// Runs the net on `x`.
    pub fn forward(&self, _x: &Tensor) -> Tensor {
        todo!()
    }
}
