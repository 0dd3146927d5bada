//! `tfci-dec`: decompresses `.tfci` files into PNG (tensorflow-compression's `tfci.py decompress`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use codec_core::Limits;

#[derive(Parser, Debug)]
#[command(
    name = "tfci-dec",
    version,
    about = "Decompress .tfci files made by tfci-enc into PNG images"
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
    /// Decompress a .tfci file into a PNG image.
    #[command(
        after_help = "Example:\n  tfci-dec decompress kodim01.png.tfci   # writes kodim01.png.tfci.png"
    )]
    Decompress {
        /// Input .tfci file.
        input: PathBuf,
        /// Output PNG [default: INPUT.png].
        output: Option<PathBuf>,
    },
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Decompress { input, output } => {
            let registry = tfci_cli::open_registry(cli.model_dir.as_deref())?;
            let bytes = std::fs::read(&input)
                .with_context(|| format!("failed reading {}", input.display()))?;
            let (image, _model) =
                codec_core::codec::decompress(&registry, &bytes, &Limits::default())
                    .with_context(|| format!("failed decoding {}", input.display()))?;
            let output = output.unwrap_or_else(|| tfci_cli::with_suffix(&input, ".png"));
            tfci_cli::write_atomic(&output, &input, &tfci_cli::png_bytes(&image)?)?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    tfci_cli::exit_code(run(Cli::parse()))
}
