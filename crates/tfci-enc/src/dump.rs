//! `tfci-enc tensors` and `tfci-enc dump`: the encoder's internal tensors, named as in the papers
//! and CompressAI, written as a NumPy `.npz` (one `NAME.npy` per tensor, shapes `(1, C, H, W)`).

use std::io::{Cursor, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use codec_core::model::Registry;
use codec_core::tensor::Tensor;
use codec_core::Codec;
use npyz::WriterBuilder;
use tfci_cli::{Common, Input, Reporter, WriteGuard};

pub const EXAMPLES: &str = "\
Examples:
  tfci-enc dump mbt2018-mean-msssim-5 --tensor y z_symbols kodim01.png   # writes kodim01.png.npz
  tfci-enc dump b2018-gdn-128-2 -t y_hat -t x_hat kodim01.png out.npz
  python -c \"import numpy; print(numpy.load('kodim01.png.npz')['y'].shape)\"";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model name (see `tfci-enc models`); the family name with --rd_parameter
    pub model: String,
    /// Names of the tensors to dump (see `tfci-enc tensors MODEL`); the names end at the first
    /// argument that is not one
    #[arg(short = 't', long = "tensor", required = true, num_args = 1.., value_name = "T")]
    pub tensors: Vec<String>,
    /// Input image, then optionally the output file [default: INPUT.npz]; `-` is stdin or stdout
    #[arg(value_name = "INPUT [OUTPUT]")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub rd: tfci_cli::RdParameter,
    #[command(flatten)]
    pub effort: tfci_cli::EffortArg,
    #[command(flatten)]
    pub no_clobber: tfci_cli::NoClobber,
}

/// One dumpable tensor: its name, shape in terms of the image size, dtype, and meaning.
struct Spec {
    name: &'static str,
    shape: &'static str,
    dtype: &'static str,
    hyper_only: bool,
    about: &'static str,
}

const SPECS: &[Spec] = &[
    Spec {
        name: "x",
        shape: "(1, 3, H, W)",
        dtype: "float32",
        hyper_only: false,
        about: "input image in [0, 1]",
    },
    Spec {
        name: "y",
        shape: "(1, M, H/16, W/16)",
        dtype: "float32",
        hyper_only: false,
        about: "g_a(x), before the level's gain",
    },
    Spec {
        name: "y_symbols",
        shape: "(1, M, H/16, W/16)",
        dtype: "int32",
        hyper_only: false,
        about: "the coded integers: round(y * gain - median or means)",
    },
    Spec {
        name: "y_hat",
        shape: "(1, M, H/16, W/16)",
        dtype: "float32",
        hyper_only: false,
        about: "the decoder's latent, after the inverse gain (what g_s runs on)",
    },
    Spec {
        name: "x_hat",
        shape: "(1, 3, H, W)",
        dtype: "float32",
        hyper_only: false,
        about: "g_s(y_hat), clamped to [0, 1]: the decoded image",
    },
    Spec {
        name: "z",
        shape: "(1, N, H/64, W/64)",
        dtype: "float32",
        hyper_only: true,
        about: "h_a(y * gain)",
    },
    Spec {
        name: "z_symbols",
        shape: "(1, N, H/64, W/64)",
        dtype: "int32",
        hyper_only: true,
        about: "round(z - medians), the coded hyper-latent",
    },
    Spec {
        name: "scales",
        shape: "(1, M, H/16, W/16)",
        dtype: "float32",
        hyper_only: true,
        about: "scale half of h_s(z_hat)",
    },
    Spec {
        name: "means",
        shape: "(1, M, H/16, W/16)",
        dtype: "float32",
        hyper_only: true,
        about: "mean half of h_s(z_hat)",
    },
    Spec {
        name: "scale_indexes",
        shape: "(1, M, H/16, W/16)",
        dtype: "int32",
        hyper_only: true,
        about: "row of the Gaussian table each y symbol is coded with",
    },
];

fn specs(codec_has_hyper: bool) -> impl Iterator<Item = &'static Spec> {
    SPECS
        .iter()
        .filter(move |s| codec_has_hyper || !s.hyper_only)
}

/// `tensors MODEL`.
pub fn list(registry: &Registry, model: &str) -> Result<()> {
    let (entry, _) = tfci_cli::rate::resolve(registry, model)?;
    let arch = codec_core::model::Architecture::parse(&entry.architecture)?;
    let hyper = arch.has_hyperprior();
    let m = entry
        .record
        .get("M")
        .map(|v| v.to_string())
        .unwrap_or("?".into());
    let n = entry
        .record
        .get("N")
        .map(|v| v.to_string())
        .unwrap_or("?".into());
    tfci_cli::out(&format!(
        "tensors of {} (M = {m}, N = {n}; sizes round up):",
        entry.family
    ));
    for s in specs(hyper) {
        tfci_cli::out(&format!(
            "  {:<14} {:<20} {:<8} {}",
            s.name, s.shape, s.dtype, s.about
        ));
    }
    Ok(())
}

/// A dumped array.
enum Array {
    F32(Vec<u64>, Vec<f32>),
    I32(Vec<u64>, Vec<i32>),
}

fn f32_array(t: &Tensor) -> Array {
    Array::F32(vec![1, t.c as u64, t.h as u64, t.w as u64], t.data.clone())
}

fn i32_array(like: &Tensor, data: Vec<i32>) -> Array {
    Array::I32(vec![1, like.c as u64, like.h as u64, like.w as u64], data)
}

/// `dump MODEL --tensor T... INPUT [OUTPUT]`.
pub fn run(registry: &Registry, common: &Common, mut args: Args) -> Result<()> {
    // `--tensor y z in.png`: the names stop at the first argument that is not one.
    let known = |t: &str| SPECS.iter().any(|s| s.name == t);
    if let Some(first_path) = args.tensors.iter().position(|t| !known(t)) {
        let rest: Vec<PathBuf> = args
            .tensors
            .drain(first_path..)
            .map(PathBuf::from)
            .collect();
        args.paths.splice(0..0, rest);
    }
    if args.tensors.is_empty() {
        // The first word after the model was not a tensor name: if it is not a file either, it
        // was most likely a misspelt tensor, so name it.
        match args.paths.first() {
            Some(p) if !p.exists() && p.as_os_str() != "-" => bail!(
                "unknown tensor {:?} (see `tfci-enc tensors {}`)",
                p.display().to_string(),
                args.model
            ),
            _ => bail!(
                "no tensor names given (see `tfci-enc tensors {}`)",
                args.model
            ),
        }
    }
    let (input, output) = match args.paths.as_slice() {
        [i] => (Input::from_arg(i), None),
        [i, o] => (Input::from_arg(i), Some(o.clone())),
        [] => bail!("no input image given"),
        _ => bail!(
            "dump takes one INPUT and at most one OUTPUT, got {} paths",
            args.paths.len()
        ),
    };
    let output = match (output, &input) {
        (Some(o), _) => tfci_cli::Output::from_arg(&o),
        (None, Input::Stdin) => tfci_cli::Output::Stdout,
        (None, Input::Path(p)) => tfci_cli::Output::Path(tfci_cli::with_suffix(p, ".npz")),
    };
    let (entry, level) = tfci_cli::rate::resolve(registry, &args.model)?;
    let reporter = Reporter::new(common, 1);
    let backend = tfci_cli::select_backend(common, &reporter)?;
    let codec = tfci_cli::load_codec(registry, entry, &backend, &reporter)?;
    let hyper = codec.has_rd_parameter();
    for t in &args.tensors {
        if !specs(hyper).any(|s| s.name == t) {
            let names: Vec<&str> = specs(hyper).map(|s| s.name).collect();
            bail!(
                "{} has no tensor {t:?}; it has {}",
                entry.family,
                names.join(", ")
            );
        }
    }
    let clobber = args.no_clobber.clobber();
    tfci_cli::check_output(&output, &input, clobber, WriteGuard::NotAnImage)?;
    let (_, image, note) = tfci_cli::read_input_image(&input)?;
    if let Some(note) = note {
        reporter.note(&note);
    }
    let limits = common.limits();
    let (mut latents, objective) = match (level, args.rd.rd_parameter) {
        (Some(l), None) => (codec.analyze(&image, l, &limits)?, (l, None)),
        (None, Some(r)) => (codec.analyze_rd(&image, r, &limits)?, (0, Some(r))),
        (Some(_), Some(_)) => bail!(
            "--rd_parameter takes the family name ({}), without the level",
            entry.family
        ),
        (None, None) => bail!(
            "{} is a family: name one of its models ({0}-1 to {0}-{1}), or pass --rd_parameter",
            entry.family,
            entry.levels
        ),
    };
    if args.effort.effort > 0 {
        let objective = codec_core::codec::Objective::of(entry, objective.0, objective.1)?;
        if let Some(r) = codec.search(
            &image,
            &mut latents,
            args.effort.effort,
            &objective,
            &limits,
        )? {
            reporter.info(&format!(
                "{input}: effort {}: {} iterations, objective {:.5} -> {:.5}{}, {:.2} s",
                r.effort,
                r.iterations,
                r.before,
                r.after,
                if r.kept {
                    ""
                } else {
                    " (effort 0's latent kept)"
                },
                r.seconds
            ));
        }
    }
    let arrays = arrays(&codec, &image, &latents, &args.tensors)?;
    tfci_cli::print_notes(&codec, &reporter);
    let npz = npz(&arrays).context("failed writing the .npz")?;
    tfci_cli::write_output(&output, &input, &npz, clobber, WriteGuard::NotAnImage)?;
    reporter.info(&format!(
        "{input} -> {output}: {} tensors, {} bytes",
        arrays.len(),
        npz.len()
    ));
    Ok(())
}

fn arrays(
    codec: &Codec,
    image: &codec_core::RgbImage,
    lat: &codec_core::Latents,
    names: &[String],
) -> Result<Vec<(String, Array)>> {
    let y = &lat.y;
    let mut y_hat = None;
    let mut out = Vec::new();
    let missing = |what: &str| anyhow::anyhow!("the model computed no {what}");
    for name in names {
        let array = match name.as_str() {
            "x" => f32_array(&image.to_tensor()?),
            "y" => f32_array(y),
            "y_symbols" => i32_array(y, lat.y_symbols.clone()),
            "y_hat" | "x_hat" => {
                if y_hat.is_none() {
                    y_hat = Some(codec.y_hat(lat)?);
                }
                let y_hat = y_hat.as_ref().ok_or_else(|| missing("y_hat"))?;
                if name == "y_hat" {
                    f32_array(y_hat)
                } else {
                    f32_array(&codec.synthesize(y_hat, lat.x_shape)?)
                }
            }
            "z" => f32_array(lat.z.as_ref().ok_or_else(|| missing("z"))?),
            "z_symbols" => {
                let z = lat.z.as_ref().ok_or_else(|| missing("z"))?;
                i32_array(
                    z,
                    lat.z_symbols.clone().ok_or_else(|| missing("z_symbols"))?,
                )
            }
            "scales" => f32_array(lat.scales.as_ref().ok_or_else(|| missing("scales"))?),
            "means" => f32_array(lat.means.as_ref().ok_or_else(|| missing("means"))?),
            "scale_indexes" => {
                let idx = lat
                    .scale_indexes
                    .as_ref()
                    .ok_or_else(|| missing("scale_indexes"))?;
                i32_array(y, idx.iter().map(|&i| i as i32).collect())
            }
            other => bail!("unknown tensor {other:?}"),
        };
        out.push((name.clone(), array));
    }
    Ok(out)
}

/// An uncompressed `.npz` (what `numpy.savez` writes): a zip of `.npy` files.
fn npz(arrays: &[(String, Array)]) -> Result<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, array) in arrays {
        zip.start_file(format!("{name}.npy"), options)?;
        match array {
            Array::F32(shape, data) => npy(&mut zip, shape, data)?,
            Array::I32(shape, data) => npy(&mut zip, shape, data)?,
        }
    }
    Ok(zip.finish()?.into_inner())
}

fn npy<T: npyz::AutoSerialize + Copy>(w: &mut impl Write, shape: &[u64], data: &[T]) -> Result<()> {
    let mut writer = npyz::WriteOptions::<T>::new()
        .default_dtype()
        .shape(shape)
        .writer(w)
        .begin_nd()?;
    writer.extend(data.iter().copied())?;
    writer.finish()?;
    Ok(())
}
