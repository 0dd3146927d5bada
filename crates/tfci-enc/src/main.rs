//! `tfci-enc`: compresses images into `.tfci` files (tensorflow-compression's `tfci.py compress`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use codec_core::{Codec, Limits};

#[derive(Parser, Debug)]
#[command(
    name = "tfci-enc",
    version,
    about = "Compress images with learned image codecs into .tfci files"
)]
struct Cli {
    /// Folder holding manifest.json and the model files.
    #[arg(long = "model-dir", alias = "model_dir", global = true, env = tfci_cli::MODEL_DIR_ENV)]
    model_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Compress an image (PNG, JPEG, BMP, TIFF, WebP) into a .tfci file.
    #[command(
        after_help = "Example:\n  tfci-enc compress mbt2018-mean-msssim-5 kodim01.png   # writes kodim01.png.tfci"
    )]
    Compress {
        /// Model name, FAMILY-LEVEL (see `tfci-enc models`).
        model: String,
        /// Input image.
        input: PathBuf,
        /// Output file [default: INPUT.tfci].
        output: Option<PathBuf>,
    },
    /// List the installed models.
    Models,
}

fn run(cli: Cli) -> Result<()> {
    let registry = tfci_cli::open_registry(cli.model_dir.as_deref())?;
    match cli.command {
        Command::Compress {
            model,
            input,
            output,
        } => {
            let (entry, level) = registry.resolve(&model)?;
            let codec = Codec::new(registry.load(entry)?)
                .with_context(|| format!("failed loading {model}"))?;
            let image = tfci_cli::read_image(&input)?;
            let bytes = codec
                .compress(&image, level, &Limits::default())
                .with_context(|| format!("failed compressing {}", input.display()))?;
            let output = output.unwrap_or_else(|| tfci_cli::with_suffix(&input, ".tfci"));
            tfci_cli::write_atomic(&output, &input, &bytes)?;
        }
        Command::Models => {
            for f in registry.families() {
                println!(
                    "{}-[1-{}]\t{}\t{}",
                    f.family, f.levels, f.architecture, f.file
                );
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    tfci_cli::exit_code(run(Cli::parse()))
}
