//! Learned image codecs: pixels <-> `.tfci` bytes.
//!
//! Layers of the crate, dependencies pointing down:
//! - [`codec`]: the compress/decompress pipelines of the three families;
//! - [`model`]: registry, manifest and weights loading, layer graphs (runs no ops);
//! - [`backend`]: which hardware runs the transforms (`auto`, `gpu`, `cpu`);
//! - `cpu`: the reference backend (every op; the deterministic entropy-parameter path);
//! - `gpu`: the wgpu backend (WGSL kernels for the transforms; the only user of wgpu), behind the
//!   default `gpu` feature;
//! - `entropy`: the only user of constriction;
//! - [`container`]: the only code that knows the `.tfci` bytes.
//!
//! `cpu`, `gpu` and the prepared nets in them are internal: the `internals` feature makes them
//! public for this repository's benchmarks and tests, with no stability promise.
//!
//! Compress an image with an installed model and decompress the file (CPU backend):
//! ```
//! use codec_core::{codec, model::Registry, Codec, Limits, RgbImage};
//! # let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
//! let registry = Registry::open(&models)?; // a folder with manifest.json and the model files
//! let (entry, level) = registry.resolve("b2018-gdn-128-4")?;
//! let codec = Codec::new(registry.load(entry)?)?;
//! let image = RgbImage::new(64, 48, vec![128; 64 * 48 * 3])?;
//! let bytes = codec.compress(&image, level, &Limits::default())?; // a .tfci file
//! // The file names its model: decompress finds and loads it.
//! let (decoded, model) = codec::decompress(&registry, &bytes, &Limits::default())?;
//! assert_eq!((decoded.width, decoded.height), (64, 48));
//! assert_eq!(model, "b2018-gdn-128-4");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

/// Defines `$name`, a copy of the `unsafe fn $body` compiled with AVX2 enabled on x86_64 (the
/// same IEEE operations on wider vectors, no FMA: results are identical to the generic build), or
/// a plain forwarder elsewhere. Call it only where `cpu::has_avx2` returned true.
macro_rules! avx2_variant {
    ($name:ident => $body:ident ($($arg:ident : $ty:ty),*)) => {
        avx2_variant!($name<> => $body($($arg: $ty),*));
    };
    ($name:ident <$($g:ident : $bound:path),*> => $body:ident ($($arg:ident : $ty:ty),*)) => {
        /// AVX2 build of the function it forwards to.
        ///
        /// # Safety
        /// As for that function; on x86_64 the CPU must also support AVX2.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn $name<$($g: $bound),*>($($arg: $ty),*) {
            // SAFETY: forwarded from the caller.
            unsafe { $body($($arg),*) }
        }
        /// Forwards to the generic build (no AVX2 on this architecture).
        ///
        /// # Safety
        /// As for the function it forwards to.
        #[cfg(not(target_arch = "x86_64"))]
        unsafe fn $name<$($g: $bound),*>($($arg: $ty),*) {
            // SAFETY: forwarded from the caller.
            unsafe { $body($($arg),*) }
        }
    };
}

pub mod backend;
pub mod codec;
#[cfg(test)]
mod conformance;
pub mod container;
#[cfg(feature = "internals")]
pub mod cpu;
#[cfg(not(feature = "internals"))]
mod cpu;
mod entropy;
mod error;
#[cfg(all(feature = "gpu", feature = "internals"))]
pub mod gpu;
#[cfg(all(feature = "gpu", not(feature = "internals")))]
mod gpu;
pub mod image;
pub mod model;
pub mod stage;
pub mod tensor;
#[cfg(test)]
mod test_ops;
#[cfg(test)]
mod test_rng;
mod tiling;
mod transform;

pub use backend::{Backend, BackendKind, BackendOptions};
pub use codec::{Codec, Decoded, Latents, Limits, CPU_TILE_BUDGET, DEFAULT_MAX_MEMORY};
pub use cpu::OverBudget;
pub use entropy::EntropyError;
pub use error::{Error, Result};
#[cfg(feature = "gpu")]
pub use gpu::{AdapterInfo, GpuError};
pub use image::RgbImage;
