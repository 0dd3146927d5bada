//! What the two binaries share: where the models are, reading and writing image files, and writing
//! outputs so that a failure never leaves half a file and never touches the input.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use codec_core::model::Registry;
use codec_core::RgbImage;

/// Environment variable naming the model folder.
pub const MODEL_DIR_ENV: &str = "TFCI_MODEL_DIR";

/// Finds the model folder: `--model-dir`, then `$TFCI_MODEL_DIR`, then `./models`, then the
/// `models/` folder of the source tree this binary was built from.
pub fn open_registry(model_dir: Option<&Path>) -> Result<Registry> {
    let candidates: Vec<PathBuf> = match model_dir {
        Some(dir) => vec![dir.to_path_buf()],
        None => match std::env::var_os(MODEL_DIR_ENV) {
            Some(dir) => vec![PathBuf::from(dir)],
            None => vec![
                PathBuf::from("models"),
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("..")
                    .join("..")
                    .join("models"),
            ],
        },
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

/// Reads any image the `image` crate knows as 8-bit RGB; says on stderr when it had to convert.
pub fn read_image(path: &Path) -> Result<RgbImage> {
    let img = image::ImageReader::open(path)
        .with_context(|| format!("failed reading {}", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("failed reading {}", path.display()))?
        .decode()
        .with_context(|| format!("failed decoding image {}", path.display()))?;
    let color = img.color();
    if color != image::ColorType::Rgb8 {
        eprintln!(
            "note: {} is {color:?}; converted to 8-bit RGB",
            path.display()
        );
    }
    let rgb = img.into_rgb8();
    Ok(RgbImage {
        width: rgb.width() as usize,
        height: rgb.height() as usize,
        data: rgb.into_raw(),
    })
}

/// Encodes an image as PNG bytes.
pub fn png_bytes(img: &RgbImage) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new(&mut out);
    image::ImageEncoder::write_image(
        encoder,
        &img.data,
        u32::try_from(img.width)?,
        u32::try_from(img.height)?,
        image::ExtendedColorType::Rgb8,
    )
    .context("failed encoding PNG")?;
    Ok(out)
}

/// Writes `bytes` to `output` through a temporary file in the same folder, renamed on success.
/// Refuses to write over `input`.
pub fn write_atomic(output: &Path, input: &Path, bytes: &[u8]) -> Result<()> {
    if same_file(input, output) {
        bail!("refusing to overwrite the input {}", input.display());
    }
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tfci-partial-");
    // A temporary file is private (0600); the output should read like any file the user writes.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let mut tmp = builder
        .tempfile_in(dir)
        .with_context(|| format!("cannot write into {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.flush())
        .with_context(|| format!("failed writing {}", output.display()))?;
    tmp.persist(output)
        .map_err(|e| e.error)
        .with_context(|| format!("failed writing {}", output.display()))?;
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// `path` with `suffix` appended to its file name (tfci.py's default output names).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Prints an error and its causes on stderr, tfci-style: one line, then the chain.
pub fn report(err: &anyhow::Error) {
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}

/// What a binary's `main` returns: success, or the error reported on stderr and exit code 1.
pub fn exit_code(result: Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            std::process::ExitCode::FAILURE
        }
    }
}
