//! What tfci-enc and tfci-dec share: the common flags, where the models are, which files a command
//! reads and writes (paths, `-` for stdin/stdout, batches), and writing outputs so that a failure
//! never leaves half a file and never touches what the user had.

mod args;
mod files;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod huge_alloc;
mod jobs;
mod memory;
mod pack_cache;
pub mod rate;
mod report;
mod search;

pub use args::{parse_size, BackendChoice, Common, EffortArg, NoClobber, RdParameter};
pub use files::{
    check_output, decode_image, png_bytes, read_image, read_input, read_input_image, write_output,
    Clobber, Input, Output, WriteGuard,
};
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub use huge_alloc::HugePageAlloc;
pub use jobs::{plan, run_jobs, Job};
pub use memory::keep_freed_memory;
pub use pack_cache::{pack_cache_dir, save_pack_cache, use_pack_cache, CACHE_DIR_ENV};
pub use report::{exit_code, format_bytes, out, report, say, Reporter, Totals};
pub use search::{search, Axis, Found, Point};

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use codec_core::model::Registry;

/// Environment variable naming the model folder.
pub const MODEL_DIR_ENV: &str = "TFCI_MODEL_DIR";

/// Finds the model folder: `--model-dir`, then `$TFCI_MODEL_DIR`, then `./models`, then the
/// `models/` folder of the source tree this binary was built from.
pub fn open_registry(model_dir: Option<&Path>) -> Result<Registry> {
    open_registry_with(model_dir, None)
}

/// [`open_registry`] with a packaged model folder (the Python wheel's) tried after `./models` and
/// before the source tree's.
pub fn open_registry_with(model_dir: Option<&Path>, packaged: Option<&Path>) -> Result<Registry> {
    let candidates: Vec<PathBuf> = match model_dir {
        Some(dir) => vec![dir.to_path_buf()],
        None => [
            Some(PathBuf::from("models")),
            packaged.map(Path::to_path_buf),
        ]
        .into_iter()
        .flatten()
        .chain([Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("..")
            .join("models")])
        .collect(),
    };
    for dir in &candidates {
        if dir.join("manifest.json").is_file() {
            return Registry::open(dir)
                .with_context(|| format!("failed reading the models in {}", dir.display()));
        }
    }
    bail!(
        "no models found (looked for manifest.json in {}); pass --model-dir or set {MODEL_DIR_ENV}",
        candidates
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// `path` with `suffix` appended to its file name (tfci.py's default output names).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Picks the backend `--backend`/`--adapter` ask for, once per command; says which on `-v`.
pub fn select_backend(common: &Common, reporter: &Reporter) -> Result<codec_core::Backend> {
    let opts = codec_core::BackendOptions {
        kind: common.backend.into(),
        adapter: common.adapter.clone(),
    };
    let backend = codec_core::Backend::select(&opts).context("no usable GPU backend")?;
    reporter.info(&format!("backend {}", backend.describe()));
    if let Some(note) = backend.note() {
        reporter.info(note);
    }
    Ok(backend)
}

/// Loads a family and prepares its transforms on `backend`; says which model on `-v`, and what
/// reading the file and preparing the transforms took (the cold start a one-shot call pays).
pub fn load_codec(
    registry: &Registry,
    entry: &codec_core::model::FamilyEntry,
    backend: &codec_core::Backend,
    reporter: &Reporter,
) -> Result<codec_core::Codec> {
    prepare_codec(
        registry,
        entry,
        read_family(registry, entry),
        backend,
        reporter,
    )
}

/// A family read from its file, with the time that took (for [`prepare_codec`]).
pub type ReadFamily = (
    Result<codec_core::model::Family, codec_core::model::ModelError>,
    std::time::Duration,
);

/// Reads `entry`'s family, timed.
pub fn read_family(registry: &Registry, entry: &codec_core::model::FamilyEntry) -> ReadFamily {
    let t = std::time::Instant::now();
    let family = registry.load(entry);
    (family, t.elapsed())
}

/// [`select_backend`] and reading the model at the same time, with `also` on a third thread (the
/// encoder decodes its first image there), then the transforms prepared on the backend: a one-shot
/// call would otherwise wait for each in turn (listing the GPU adapters takes tens of
/// milliseconds where a Vulkan driver loads, reading a model 10-20, decoding a Kodak PNG about 6).
/// `then` runs on the loaded codec while `also` may still run (the encoder packs its weights
/// there). Errors come in the order of the serial calls: the backend's, then the model's.
pub fn start<T: Send>(
    common: &Common,
    registry: &Registry,
    entry: &codec_core::model::FamilyEntry,
    reporter: &Reporter,
    also: impl FnOnce() -> T + Send,
    then: impl FnOnce(&codec_core::Codec),
) -> (Result<codec_core::Codec>, T) {
    std::thread::scope(|s| {
        let also = s.spawn(also);
        let read = s.spawn(|| read_family(registry, entry));
        let backend = select_backend(common, reporter);
        let read = joined(read);
        let loaded =
            backend.and_then(|backend| prepare_codec(registry, entry, read, &backend, reporter));
        if let Ok(codec) = &loaded {
            then(codec);
        }
        (loaded, joined(also))
    })
}

/// A scoped thread's result; its panic goes on in the caller.
pub fn joined<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// The codec from a read family; says which model on `-v`, and what reading the file and
/// preparing the transforms took (the cold start a one-shot call pays).
pub fn prepare_codec(
    registry: &Registry,
    entry: &codec_core::model::FamilyEntry,
    (family, read): ReadFamily,
    backend: &codec_core::Backend,
    reporter: &Reporter,
) -> Result<codec_core::Codec> {
    let family = family.with_context(|| format!("failed loading model {}", entry.family))?;
    let t1 = std::time::Instant::now();
    let codec = codec_core::Codec::with_backend(family, backend)?;
    use_pack_cache(&codec);
    reporter.info(&format!(
        "model {} ({}, file {}): read in {:.1} ms, transforms prepared in {:.1} ms",
        entry.family,
        entry.architecture,
        registry.dir().join(&entry.file).display(),
        read.as_secs_f64() * 1e3,
        t1.elapsed().as_secs_f64() * 1e3,
    ));
    Ok(codec)
}

/// Prints the codec's notes (a GPU transform that fell back to the CPU) on stderr.
pub fn print_notes(codec: &codec_core::Codec, reporter: &Reporter) {
    for note in codec.take_notes() {
        reporter.note(&note);
    }
}

/// `adapters` in a build without the `gpu` feature.
#[cfg(not(feature = "gpu"))]
pub fn print_adapters() {
    report::out("built without GPU support (the `gpu` feature): only the CPU backend runs");
}

/// `adapters`: every GPU adapter wgpu finds, best first, and whether it can run the codec.
#[cfg(feature = "gpu")]
pub fn print_adapters() {
    let adapters = codec_core::backend::list_adapters();
    if adapters.is_empty() {
        report::out("no GPU adapter found (the CPU backend runs)");
    }
    for a in adapters {
        let state = match (&a.unusable, a.software) {
            (Some(why), _) => format!("unusable: {why}"),
            (None, true) => "usable with --backend gpu (software)".to_string(),
            (None, false) => "usable".to_string(),
        };
        report::out(&format!("{}  [{state}]", a.describe()));
    }
}

/// Call first in `main`, while the process has one thread (it may set an environment variable).
///
/// It sets the heap policy first ([`keep_freed_memory`]: freed memory reused, one heap for every
/// thread), before the codec allocates anything.
///
/// Mesa's implicit Vulkan layer `VK_LAYER_MESA_device_select` opens a Wayland connection to find the
/// desktop's default GPU; without a session (SSH, CI, containers) libwayland prints "error:
/// XDG_RUNTIME_DIR is invalid or not set" on every adapter probe. The backend ranks adapters itself
/// (`--adapter` picks one), so the layer adds nothing here: it is switched off through its own
/// documented variable, unless the user set that variable or has a session. Then it installs the
/// interrupt handler that removes a half-written output's temporary file.
pub fn prepare_environment() {
    keep_freed_memory();
    let session = std::env::var_os("XDG_RUNTIME_DIR")
        .map(|d| std::path::Path::new(&d).is_dir())
        .unwrap_or(false);
    if !session && std::env::var_os("NODEVICE_SELECT").is_none() {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
    files::remove_partial_on_interrupt();
}
