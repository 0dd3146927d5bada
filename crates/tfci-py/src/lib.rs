//! The `tfci` Python package's native module (`tfci._tfci`): the same codec, model lookup and
//! rate rules as `tfci-enc`/`tfci-dec` (through `tfci-cli`), for NumPy arrays and bytes.
//!
//! Why a separate crate: PyO3 and NumPy stay out of the codec and the binaries. The GIL is
//! released while a codec runs, so a `Codec` shared between Python threads codes in parallel.

use std::path::PathBuf;
use std::sync::OnceLock;

use numpy::{PyArray3, PyArrayMethods, PyReadonlyArray3, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use codec_core::container::Packed;
use codec_core::model::{FamilyEntry, Registry};
use codec_core::{Limits, RgbImage};
use tfci_cli::rate::{self, Effort, Request};

pyo3::create_exception!(
    _tfci,
    TfciError,
    pyo3::exceptions::PyException,
    "A file, image or model the codec refused; the message is the CLI's."
);

/// The error as the CLI prints it (what failed, then its causes after colons).
fn py_err(e: anyhow::Error) -> PyErr {
    TfciError::new_err(format!("{e:#}"))
}

/// The models folder inside the installed package (set once at import; a wheel may carry it).
static BUNDLED: OnceLock<PathBuf> = OnceLock::new();

#[pyfunction]
fn _set_bundled_models(dir: PathBuf) {
    let _ = BUNDLED.set(dir);
}

/// The model folder as the CLI finds it: the given one, else `$TFCI_MODEL_DIR`, else `./models`,
/// then the package's own `models/` when the wheel carries one, else the source tree's `models/`.
fn registry(model_dir: Option<PathBuf>) -> anyhow::Result<Registry> {
    let dir = model_dir.or_else(|| std::env::var_os(tfci_cli::MODEL_DIR_ENV).map(PathBuf::from));
    tfci_cli::open_registry_with(dir.as_deref(), BUNDLED.get().map(PathBuf::as_path))
}

/// The CLI's limits: `max_memory` bytes, else `$TFCI_MAX_MEMORY`, else the default (4 GiB).
fn limits(max_memory: Option<u64>) -> PyResult<Limits> {
    let max_memory = match (max_memory, std::env::var("TFCI_MAX_MEMORY")) {
        (Some(m), _) => m,
        (None, Ok(s)) => tfci_cli::parse_size(&s)
            .map_err(|e| PyValueError::new_err(format!("TFCI_MAX_MEMORY: {e}")))?,
        (None, Err(_)) => codec_core::DEFAULT_MAX_MEMORY,
    };
    Ok(Limits {
        max_memory,
        ..Limits::default()
    })
}

fn backend(name: &str) -> PyResult<codec_core::Backend> {
    let kind: codec_core::BackendKind =
        name.parse()
            .map_err(|e: codec_core::backend::ParseBackendError| {
                PyValueError::new_err(e.to_string())
            })?;
    codec_core::Backend::select(&codec_core::BackendOptions {
        kind,
        adapter: None,
    })
    .map_err(|e| py_err(anyhow::Error::new(e).context("no usable GPU backend")))
}

/// An `H x W x 3` `uint8` array, the path of an image file (PNG, JPEG, BMP, TIFF, WebP) or that
/// file's bytes, as an image; anything else is refused with what was given. Files are decoded by
/// the same code as `tfci-enc`'s, so the same file gives the same `.tfci` bytes.
fn image_of(array: &Bound<'_, PyAny>) -> PyResult<RgbImage> {
    if let Ok(bytes) = array.cast::<PyBytes>() {
        let bytes = bytes.as_bytes();
        let name = tfci_cli::Input::Path(PathBuf::from("the image bytes"));
        return array
            .py()
            .detach(|| tfci_cli::decode_image(bytes, &name).map(|(image, _)| image))
            .map_err(py_err);
    }
    if let Ok(path) = array.extract::<PathBuf>() {
        return array
            .py()
            .detach(|| tfci_cli::read_image(&path))
            .map_err(py_err);
    }
    let a: PyReadonlyArray3<'_, u8> = array.extract().map_err(|_| {
        let what = match (array.getattr("dtype"), array.getattr("shape")) {
            (Ok(d), Ok(s)) => format!("an array of dtype {d} and shape {s}"),
            _ => format!("a {}", array.get_type()),
        };
        PyTypeError::new_err(format!(
            "image must be a numpy uint8 array of shape (height, width, 3), an image file's path or \
             its bytes, not {what}"
        ))
    })?;
    let shape = a.shape();
    if shape[2] != 3 || shape[0] == 0 || shape[1] == 0 {
        return Err(PyValueError::new_err(format!(
            "image must have shape (height, width, 3) with height, width >= 1, not {shape:?}"
        )));
    }
    let data = a.as_array().iter().copied().collect();
    Ok(RgbImage {
        width: shape[1],
        height: shape[0],
        data,
    })
}

fn array_of<'py>(py: Python<'py>, image: RgbImage) -> PyResult<Bound<'py, PyArray3<u8>>> {
    let (h, w) = (image.height, image.width);
    numpy::PyArray1::from_vec(py, image.data).reshape([h, w, 3])
}

/// A model loaded once (one family, all its levels); safe to share between threads.
///
/// ``Codec("mbt2018-mean-msssim")`` or ``Codec("mbt2018-mean-msssim-5")`` (that level becomes the
/// default of ``compress``); ``model_dir`` as for :func:`compress`; ``backend`` is ``"cpu"``,
/// ``"gpu"`` or ``"auto"``; ``max_memory`` caps what one image may hold, in bytes (default
/// ``$TFCI_MAX_MEMORY`` or 4 GiB). Raises :class:`TfciError` for an unknown model.
#[pyclass(frozen, module = "tfci")]
struct Codec {
    codec: codec_core::Codec,
    /// The family's manifest entry (the training objective an effort searches against).
    entry: FamilyEntry,
    /// The level the model name named, if it named one.
    level: Option<u32>,
    limits: Limits,
}

#[pymethods]
impl Codec {
    #[new]
    #[pyo3(signature = (model, *, model_dir=None, backend="cpu", max_memory=None))]
    fn new(
        py: Python<'_>,
        model: &str,
        model_dir: Option<PathBuf>,
        backend: &str,
        max_memory: Option<u64>,
    ) -> PyResult<Self> {
        let backend = self::backend(backend)?;
        let limits = limits(max_memory)?;
        py.detach(|| Self::load(model, model_dir, &backend, limits))
            .map_err(py_err)
    }

    /// The family name, e.g. ``mbt2018-mean-msssim``.
    #[getter]
    fn family(&self) -> &str {
        &self.codec.family().name
    }

    /// How many levels the family has (``family-1`` .. ``family-levels``).
    #[getter]
    fn levels(&self) -> u32 {
        self.codec.family().levels
    }

    fn __repr__(&self) -> String {
        match self.level {
            Some(l) => format!("tfci.Codec('{}-{l}')", self.family()),
            None => format!("tfci.Codec('{}')", self.family()),
        }
    }

    /// Compresses an image into ``.tfci`` bytes, as ``tfci-enc compress`` would write them.
    ///
    /// ``image``: a ``uint8`` array of shape ``(H, W, 3)`` or an image file's path. ``level``
    /// (default: the one the Codec was named with), or ``target_bpp`` (search, ``bpp_strict`` never
    /// above it), or ``rd_parameter`` (between levels, mbt2018-mean only). ``effort`` 1 to 3 searches
    /// the latent per image as ``tfci-enc -e`` does (slower, the same decoder; docs/effort.md).
    #[pyo3(signature = (image, *, level=None, target_bpp=None, rd_parameter=None, bpp_strict=false, effort=0))]
    #[allow(clippy::too_many_arguments)]
    fn compress<'py>(
        &self,
        py: Python<'py>,
        image: &Bound<'py, PyAny>,
        level: Option<u32>,
        target_bpp: Option<f64>,
        rd_parameter: Option<f32>,
        bpp_strict: bool,
        effort: u32,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let effort = check_effort(effort)?;
        let image = image_of(image)?;
        let level = match (target_bpp, rd_parameter, level) {
            (None, None, l) => l.or(self.level),
            (_, _, Some(l)) => {
                return Err(PyValueError::new_err(format!(
                    "give either level ({l}) or target_bpp / rd_parameter, not both"
                )))
            }
            _ => None,
        };
        let request = request(target_bpp, bpp_strict, rd_parameter);
        let bytes = py
            .detach(|| self.compress_image(&image, level, &request, effort))
            .map_err(py_err)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Decompresses ``.tfci`` bytes made by this family into an ``H x W x 3`` ``uint8`` array.
    fn decompress<'py>(&self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyArray3<u8>>> {
        let image = py
            .detach(|| {
                let packed = Packed::from_bytes(data).map_err(codec_core::Error::from)?;
                Ok(self.codec.decompress_packed(&packed, &self.limits)?)
            })
            .map_err(|e: anyhow::Error| py_err(e.context("failed decoding the data")))?;
        array_of(py, image)
    }
}

use anyhow::Context as _;

impl Codec {
    fn load(
        model: &str,
        model_dir: Option<PathBuf>,
        backend: &codec_core::Backend,
        limits: Limits,
    ) -> anyhow::Result<Self> {
        let registry = registry(model_dir)?;
        let (entry, level) = rate::resolve(&registry, model)?;
        let family = registry.load(entry).map_err(|e| {
            anyhow::Error::new(e).context(format!("failed loading model {}", entry.family))
        })?;
        let codec = codec_core::Codec::with_backend(family, backend)?;
        Ok(Self {
            codec,
            entry: entry.clone(),
            level,
            limits,
        })
    }

    fn compress_image(
        &self,
        image: &RgbImage,
        level: Option<u32>,
        request: &Request,
        effort: u8,
    ) -> anyhow::Result<Vec<u8>> {
        let mode = rate::mode(&self.codec, level, request)?;
        let effort = Effort {
            effort,
            entry: &self.entry,
            progress: &|_, _| {},
        };
        let (found, _) = rate::compress_with_effort(&self.codec, image, mode, &self.limits, effort)
            .context("failed compressing the image")?;
        Ok(found.bytes)
    }
}

fn check_effort(effort: u32) -> PyResult<u8> {
    let max = codec_core::codec::MAX_EFFORT;
    match u8::try_from(effort) {
        Ok(e) if e <= max => Ok(e),
        _ => Err(PyValueError::new_err(format!(
            "effort {effort} is not in 0..={max}"
        ))),
    }
}

fn request(target_bpp: Option<f64>, bpp_strict: bool, rd_parameter: Option<f32>) -> Request {
    Request {
        target_bpp,
        bpp_strict,
        rd_parameter,
        rd_parameter_tolerance: rate::RD_PARAMETER_TOLERANCE,
    }
}

/// Compresses an image into ``.tfci`` bytes, as ``tfci-enc compress`` writes them.
///
/// ``image``: a ``uint8`` array of shape ``(H, W, 3)`` or an image file's path. ``model`` as
/// ``tfci-enc compress`` takes it: ``"mbt2018-mean-msssim-5"``, or the family with ``target_bpp``
/// (a search over its levels or rate parameter; ``bpp_strict``: never above it) or
/// ``rd_parameter`` (a point between levels). ``effort`` 1 to 3: the per-image latent search of
/// ``tfci-enc -e`` (docs/effort.md). Loads the model on
/// every call: use :class:`Codec` for many images. Raises :class:`TfciError` with the CLI's message.
#[pyfunction]
#[pyo3(signature = (image, model, effort=0, target_bpp=None, rd_parameter=None, *, bpp_strict=false, model_dir=None, backend="cpu", max_memory=None))]
#[allow(clippy::too_many_arguments)]
fn compress<'py>(
    py: Python<'py>,
    image: &Bound<'py, PyAny>,
    model: &str,
    effort: u32,
    target_bpp: Option<f64>,
    rd_parameter: Option<f32>,
    bpp_strict: bool,
    model_dir: Option<PathBuf>,
    backend: &str,
    max_memory: Option<u64>,
) -> PyResult<Bound<'py, PyBytes>> {
    let effort = check_effort(effort)?;
    let image = image_of(image)?;
    let backend = self::backend(backend)?;
    let limits = limits(max_memory)?;
    let request = request(target_bpp, bpp_strict, rd_parameter);
    let bytes = py
        .detach(|| {
            let codec = Codec::load(model, model_dir, &backend, limits)?;
            codec.compress_image(&image, codec.level, &request, effort)
        })
        .map_err(py_err)?;
    Ok(PyBytes::new(py, &bytes))
}

/// Reads an image file (a path or the file's bytes: PNG, JPEG, BMP, TIFF, WebP) as a ``uint8``
/// array of shape ``(H, W, 3)``, decoded by the same code as ``tfci-enc`` (gray, alpha and 16-bit
/// images become 8-bit RGB).
#[pyfunction]
fn read_image<'py>(
    py: Python<'py>,
    image: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray3<u8>>> {
    if image.is_instance_of::<numpy::PyUntypedArray>() {
        return Err(PyTypeError::new_err(
            "read_image takes a path or an image file's bytes, not an array",
        ));
    }
    let image = image_of(image)?;
    array_of(py, image)
}

/// Every installed model name (``family-level``), as ``tfci-enc models`` lists them.
#[pyfunction]
#[pyo3(signature = (*, model_dir=None))]
fn models(model_dir: Option<PathBuf>) -> PyResult<Vec<String>> {
    Ok(registry(model_dir).map_err(py_err)?.names())
}

/// Decompresses ``.tfci`` bytes with the model the file names.
#[pyfunction]
#[pyo3(signature = (data, *, model_dir=None, backend="cpu", max_memory=None))]
fn decompress<'py>(
    py: Python<'py>,
    data: &[u8],
    model_dir: Option<PathBuf>,
    backend: &str,
    max_memory: Option<u64>,
) -> PyResult<Bound<'py, PyArray3<u8>>> {
    let backend = self::backend(backend)?;
    let limits = limits(max_memory)?;
    let image = py
        .detach(|| {
            let registry = registry(model_dir)?;
            let (image, _, _) =
                codec_core::codec::decompress_with(&registry, data, &limits, &backend)
                    .context("failed decoding the data")?;
            Ok(image)
        })
        .map_err(py_err)?;
    array_of(py, image)
}

#[pymodule]
fn _tfci(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Codec>()?;
    m.add_function(wrap_pyfunction!(models, m)?)?;
    m.add_function(wrap_pyfunction!(compress, m)?)?;
    m.add_function(wrap_pyfunction!(read_image, m)?)?;
    m.add_function(wrap_pyfunction!(_set_bundled_models, m)?)?;
    m.add_function(wrap_pyfunction!(decompress, m)?)?;
    m.add("TfciError", m.py().get_type::<TfciError>())?;
    Ok(())
}
