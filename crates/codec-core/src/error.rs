//! The crate's error: one variant per layer, each wrapping that layer's typed error.

use crate::container::ContainerError;
use crate::cpu::OverBudget;
use crate::entropy::EntropyError;
#[cfg(feature = "gpu")]
use crate::gpu::GpuError;
use crate::model::ModelError;

/// Anything that can go wrong compressing or decompressing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Model(#[from] ModelError),
    // The layer's message is part of this one, so it is not also a `source` (an error chain
    // printed with `{:#}` would say it twice).
    #[error("invalid .tfci file: {0}")]
    Container(ContainerError),
    #[error("corrupted .tfci payload: {0}")]
    Entropy(EntropyError),
    #[error(
        "{model}: the file needs the decoder weights {needed}, but the installed model has {installed}; \
         install the model version that made the file"
    )]
    WeightsMismatch {
        model: String,
        /// The file's weights id, with the version the manifest knows it as.
        needed: String,
        /// The installed decoder id and version.
        installed: String,
    },
    #[error("{model}: the file has no weights id (not written by tfci-rs)")]
    NoWeightsId { model: String },
    #[error("image is {width}x{height}: {reason}")]
    ImageSize {
        width: u64,
        height: u64,
        reason: String,
    },
    #[error("invalid .tfci file: {0}")]
    Shape(String),
    #[error("the file was made with {file:?}, not with this codec's {codec} (load the family the file names)")]
    WrongModel { file: String, codec: String },
    #[error("invalid model: {0}")]
    BadModel(String),
    #[error("invalid argument: {0}")]
    Argument(String),
    #[error(
        "{family} has one entropy model per level, so it codes at levels only, not at a \
         continuous rate parameter"
    )]
    NoRdParameter { family: String },
    #[error("rate parameter {rd} is outside {family}'s range [1, {levels}]")]
    RdParameter {
        family: String,
        rd: f32,
        levels: u32,
    },
    #[cfg(feature = "gpu")]
    #[error(transparent)]
    Gpu(GpuError),
    #[error("this build has no GPU support (built without the `gpu` feature); use --backend cpu")]
    NoGpuSupport,
    #[error("{0} (raise it with --max-memory or TFCI_MAX_MEMORY)")]
    Memory(OverBudget),
}

impl From<ContainerError> for Error {
    fn from(e: ContainerError) -> Self {
        Error::Container(e)
    }
}

impl From<EntropyError> for Error {
    fn from(e: EntropyError) -> Self {
        Error::Entropy(e)
    }
}

/// Result alias of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The message chain a binary prints (`{:#}` of anyhow: each error, then its sources) names a
    /// container or payload fault once (it used to say `feature "x" is missing` twice).
    #[test]
    fn chains_say_each_thing_once() {
        fn chain(e: &dyn std::error::Error) -> String {
            let mut s = e.to_string();
            let mut src = e.source();
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            s
        }
        let e = Error::from(ContainerError::Missing { key: "x".into() });
        assert_eq!(chain(&e), "invalid .tfci file: feature \"x\" is missing");
    }
}
