//! The wgpu backend: the only user of wgpu in the project.
//!
//! - `context`: adapter enumeration and choice, the device with the adapter's own limits,
//!   error capture (validation, out of memory, device loss) mapped to [`GpuError`];
//! - `kernels`: the shader table (one `shaders/*.wgsl` per kernel) and the pipelines, built
//!   once per device;
//! - `net`: [`GpuNet`], a [`crate::model::graph::Net`] with its weights uploaded once, run with
//!   reused activation buffers;
//! - `nodes`: whether a hardware GPU can be there at all, before `auto` loads any driver;
//!
//! [`GpuNet`] runs in spatial tiles (`tiling`) so an image of any size stays under the
//! adapter's binding limits and a memory budget.
//!
//! Only the transforms run here (`g_a`, `g_s`, `h_a` and the means of `h_s`): everything that
//! decides a probability table stays on the CPU's exact path (docs/determinism.md).

mod context;
mod kernels;
mod layout;
mod net;
mod nodes;
#[cfg(test)]
pub(crate) mod tests;

pub use context::{list_adapters, AdapterInfo, GpuContext};
pub use net::GpuNet;
pub use nodes::{may_have_hardware_gpu, NO_DEVICE_NODE};

/// Anything that can go wrong on the GPU. None of them panics; the codec falls back to the
/// CPU where the caller allowed it (see [`crate::backend`]).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum GpuError {
    #[error(
        "no usable wgpu adapter{}{}",
        wanted_text(wanted),
        available_text(available)
    )]
    NoAdapter {
        /// The `--adapter` substring, if one was given.
        wanted: Option<String>,
        /// Every adapter found, with the reason it was not taken.
        available: Vec<String>,
    },
    #[error("cannot open a device on {adapter}: {reason}")]
    RequestDevice { adapter: String, reason: String },
    #[error("{what} needs {needed} bytes, more than the GPU allows even in the smallest tile ({limit} bytes)")]
    TooLarge {
        what: String,
        needed: u64,
        limit: u64,
    },
    #[error("unsupported layer on the GPU: {0}")]
    Unsupported(String),
    #[error("GPU validation error: {0}")]
    Validation(String),
    #[error("GPU out of memory: {0}")]
    OutOfMemory(String),
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    #[error("GPU did not finish within {0} s")]
    Timeout(u64),
    #[error("reading the GPU result back failed: {0}")]
    Readback(String),
}

/// Every GPU failure reruns the transform on the CPU; these also retire the device.
impl crate::tiling::BackendError for GpuError {
    /// An input too large for the smallest tile, or a layer the kernels lack, leaves the device
    /// usable; anything else (lost, out of memory, timed out, validation, readback) does not.
    fn is_fatal(&self) -> bool {
        !matches!(self, GpuError::TooLarge { .. } | GpuError::Unsupported(_))
    }
}

fn wanted_text(w: &Option<String>) -> String {
    match w {
        Some(s) => format!(" matching {s:?}"),
        None => String::new(),
    }
}

fn available_text(a: &[String]) -> String {
    if a.is_empty() {
        " (none found: install a Vulkan, Metal or DX12 driver, e.g. Mesa's lavapipe for a software one)"
            .into()
    } else {
        format!(" (found: {})", a.join("; "))
    }
}
