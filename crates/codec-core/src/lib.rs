//! Learned image codecs: pixels <-> `.tfci` bytes.
//!
//! Layers of the crate, dependencies pointing down:
//! - [`codec`]: the compress/decompress pipelines of the three families;
//! - [`model`]: registry, manifest and weights loading, layer graphs (runs no ops);
//! - [`backend`]: which hardware runs the transforms (`auto`, `gpu`, `cpu`);
//! - [`cpu`]: the reference backend (every op; the deterministic entropy-parameter path);
//! - `gpu`: the wgpu backend (WGSL kernels for the transforms; the only user of wgpu), behind the
//!   default `gpu` feature;
//! - [`entropy`]: the only user of constriction;
//! - [`container`]: the only code that knows the `.tfci` bytes.

pub mod backend;
pub mod codec;
pub mod container;
pub mod cpu;
pub mod entropy;
mod error;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod image;
pub mod model;
pub mod tensor;
#[cfg(test)]
mod test_rng;
mod tiling;
mod transform;

pub use backend::{Backend, BackendKind, BackendOptions};
pub use codec::{Codec, Decoded, Latents, Limits, CPU_TILE_BUDGET, DEFAULT_MAX_MEMORY};
pub use error::{Error, Result};
pub use image::RgbImage;
