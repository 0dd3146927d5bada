//! Which hardware runs the transforms: the backend-neutral seam the binaries use.
//!
//! `auto` takes a hardware GPU when wgpu finds one and the native CPU path otherwise; a software
//! adapter (lavapipe, llvmpipe, WARP) only when asked for (`gpu`, or `--adapter` naming it),
//! because the multithreaded CPU path beats an emulated GPU. On Linux without a GPU device node
//! `auto` does not ask wgpu at all (`gpu::nodes`: loading the drivers cost a one-shot call about
//! a third of its time). Whatever is chosen, the entropy parameters run on the CPU's exact path
//! (docs/determinism.md), so files cross backends.

use std::fmt;
use std::str::FromStr;
#[cfg(feature = "gpu")]
use std::sync::Arc;

use crate::error::Result;
#[cfg(feature = "gpu")]
use crate::gpu::{AdapterInfo, GpuContext, GpuError};

/// `--backend auto|gpu|cpu` (the binaries also read `TFCI_BACKEND`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendKind {
    /// A hardware GPU if there is one, else the CPU.
    #[default]
    Auto,
    /// A wgpu adapter (software ones included), or an error.
    Gpu,
    /// The native CPU path.
    Cpu,
}

/// A `--backend` value that is not `auto`, `gpu` or `cpu`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend {0:?} (expected auto, gpu or cpu)")]
pub struct ParseBackendError(pub String);

impl FromStr for BackendKind {
    type Err = ParseBackendError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "gpu" => Ok(Self::Gpu),
            "cpu" => Ok(Self::Cpu),
            _ => Err(ParseBackendError(s.into())),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Gpu => "gpu",
            Self::Cpu => "cpu",
        })
    }
}

/// What the user asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackendOptions {
    pub kind: BackendKind,
    /// `--adapter`: a case-insensitive substring of the adapter name.
    pub adapter: Option<String>,
}

/// The chosen backend; cheap to clone (the device is shared).
#[derive(Clone, Debug)]
pub struct Backend {
    #[cfg(feature = "gpu")]
    gpu: Option<Arc<GpuContext>>,
    /// Why `auto` fell back to the CPU, if it did.
    note: Option<String>,
    /// Chosen by `auto`: a GPU that fails to take a model's weights leaves it on the CPU.
    auto: bool,
}

impl Default for Backend {
    fn default() -> Self {
        Self::cpu()
    }
}

impl Backend {
    /// The native CPU path.
    pub fn cpu() -> Self {
        Backend {
            #[cfg(feature = "gpu")]
            gpu: None,
            note: None,
            auto: false,
        }
    }

    /// A GPU backend on an already open device.
    #[cfg(feature = "gpu")]
    pub fn from_context(ctx: Arc<GpuContext>) -> Self {
        Backend {
            gpu: Some(ctx),
            note: None,
            auto: false,
        }
    }

    /// Chooses and opens a backend. `gpu` fails with [`GpuError`] when no adapter fits; `auto`
    /// falls back to the CPU and says why in [`Backend::note`].
    #[cfg(feature = "gpu")]
    pub fn select(opts: &BackendOptions) -> Result<Self> {
        let wanted = opts.adapter.as_deref().filter(|s| !s.is_empty());
        match opts.kind {
            BackendKind::Cpu => Ok(Self::cpu()),
            BackendKind::Gpu => Ok(Self::from_context(Arc::new(GpuContext::open(
                wanted, true,
            )?))),
            BackendKind::Auto if wanted.is_none() && !crate::gpu::may_have_hardware_gpu() => {
                Ok(Backend {
                    gpu: None,
                    note: Some(crate::gpu::NO_DEVICE_NODE.into()),
                    auto: true,
                })
            }
            BackendKind::Auto => match GpuContext::open(wanted, false) {
                Ok(ctx) => Ok(Backend {
                    auto: true,
                    ..Self::from_context(Arc::new(ctx))
                }),
                Err(e) => Ok(Backend {
                    gpu: None,
                    note: Some(format!("{e}; using the CPU backend")),
                    auto: true,
                }),
            },
        }
    }

    /// Without the `gpu` feature: `gpu` is an error that says so, `auto` the CPU with a note.
    #[cfg(not(feature = "gpu"))]
    pub fn select(opts: &BackendOptions) -> Result<Self> {
        match opts.kind {
            BackendKind::Cpu => Ok(Self::cpu()),
            BackendKind::Gpu => Err(crate::Error::NoGpuSupport),
            BackendKind::Auto => {
                let mut b = Self::cpu();
                b.note = Some("built without GPU support; using the CPU backend".into());
                b.auto = true;
                Ok(b)
            }
        }
    }

    /// Whether a model the GPU cannot take runs on the CPU instead of failing (`auto`).
    pub fn falls_back(&self) -> bool {
        self.auto
    }

    /// Whether the transforms run on a GPU.
    pub fn is_gpu(&self) -> bool {
        #[cfg(feature = "gpu")]
        return self.gpu.is_some();
        #[cfg(not(feature = "gpu"))]
        false
    }

    /// The adapter, on the GPU backend.
    #[cfg(feature = "gpu")]
    pub fn adapter(&self) -> Option<&AdapterInfo> {
        self.gpu.as_ref().map(|g| g.info())
    }

    /// The device, on the GPU backend.
    #[cfg(feature = "gpu")]
    pub fn gpu(&self) -> Option<&Arc<GpuContext>> {
        self.gpu.as_ref()
    }

    /// Why `auto` chose the CPU, if it did.
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// One line for `-v`: the backend and, on the GPU, the adapter and driver.
    pub fn describe(&self) -> String {
        #[cfg(feature = "gpu")]
        if let Some(g) = &self.gpu {
            return format!("gpu: {}", g.info().describe());
        }
        format!("cpu: native ({} threads)", rayon::current_num_threads())
    }
}

/// Every wgpu adapter on this machine, best first (for an `adapters` command).
#[cfg(feature = "gpu")]
pub fn list_adapters() -> Vec<AdapterInfo> {
    crate::gpu::list_adapters()
}

#[cfg(feature = "gpu")]
impl From<GpuError> for crate::Error {
    fn from(e: GpuError) -> Self {
        crate::Error::Gpu(e)
    }
}
