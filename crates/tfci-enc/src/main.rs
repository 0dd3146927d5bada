//! `tfci-enc`: compresses images into `.tfci` files, with tensorflow-compression's `tfci.py`
//! command line (`compress`, `models`, `tensors`, `dump`) plus pipes and batches.

mod compress;
mod dump;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use tfci_cli::Common;

const EXAMPLES: &str = "\
Examples:
  tfci-enc compress mbt2018-mean-msssim-5 kodim01.png          # writes kodim01.png.tfci
  tfci-enc compress b2018-gdn-128 kodim01.png --target_bpp 0.5  # level closest to 0.5 bpp
  tfci-enc compress b2018-gdn-128-2 - - < a.png | ssh host tfci-dec decompress - b.png
  tfci-enc compress b2018-gdn-128-3 --out-dir out/ photos/*.png
  tfci-enc models";

#[derive(Parser, Debug)]
#[command(
    name = "tfci-enc",
    version,
    about = "Compress images with learned image codecs into .tfci files (tfci.py compress, models, tensors, dump)",
    after_help = EXAMPLES
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Reads an image (PNG, JPEG, BMP, TIFF, WebP), compresses it with the given model, and writes
    /// a .tfci file.
    #[command(after_help = compress::EXAMPLES)]
    Compress(compress::Args),
    /// Lists the installed models: name, levels, architecture, size, and where they are.
    #[command(
        after_help = "Example:\n  tfci-enc models\n  tfci-enc --model-dir ~/tfci-models models"
    )]
    Models,
    /// Lists the internal tensors of a model that `dump` can write: name, shape, dtype.
    #[command(after_help = "Example:\n  tfci-enc tensors mbt2018-mean-msssim-5")]
    Tensors {
        /// Model name (see `models`); the family name without level works too.
        model: String,
    },
    /// Compresses an image and dumps the given internal tensors into a NumPy .npz file.
    #[command(after_help = dump::EXAMPLES)]
    Dump(dump::Args),
    /// Lists the GPU adapters wgpu finds, best first, and whether each can run the codec.
    #[command(after_help = ADAPTERS_EXAMPLES)]
    Adapters,
}

const ADAPTERS_EXAMPLES: &str = "\
Examples:
  tfci-enc adapters
  tfci-enc --backend gpu --adapter nvidia compress mbt2018-mean-msssim-5 kodim01.png";

fn run(cli: Cli) -> Result<()> {
    if let Command::Adapters = cli.command {
        tfci_cli::print_adapters();
        return Ok(());
    }
    let registry = tfci_cli::open_registry(cli.common.model_dir.as_deref())?;
    match cli.command {
        Command::Compress(args) => compress::run(&registry, &cli.common, args),
        Command::Models => {
            list_models(&registry);
            Ok(())
        }
        Command::Tensors { model } => dump::list(&registry, &model),
        Command::Dump(args) => dump::run(&registry, &cli.common, args),
        Command::Adapters => Ok(()),
    }
}

/// `models`: one row per family, then the folder they come from.
fn list_models(registry: &codec_core::model::Registry) {
    let names: Vec<String> = registry
        .families()
        .iter()
        .map(|f| format!("{}-[1-{}]", f.family, f.levels))
        .collect();
    let w = names.iter().map(String::len).max().unwrap_or(5).max(5);
    tfci_cli::out(&format!(
        "{:<w$}  {:<20} {:>9}  training",
        "model", "architecture", "size"
    ));
    for (f, name) in registry.families().iter().zip(&names) {
        let size = std::fs::metadata(registry.dir().join(&f.file))
            .map(|m| tfci_cli::format_bytes(m.len()))
            .unwrap_or_else(|_| "missing".into());
        let trained = match f.record.get("trained").and_then(|t| t.as_bool()) {
            Some(false) => "untrained placeholder".to_string(),
            _ => f
                .record
                .get("training")
                .map(|t| {
                    let field = |k: &str| t.get(k).map(|v| v.to_string()).unwrap_or_default();
                    format!(
                        "{} steps on {}, {} min",
                        field("steps"),
                        field("device").trim_matches('"'),
                        field("minutes")
                    )
                })
                .unwrap_or_default(),
        };
        tfci_cli::out(&format!(
            "{name:<w$}  {:<20} {size:>9}  {trained}",
            f.architecture
        ));
    }
    let dir = registry.dir();
    tfci_cli::out(&format!(
        "from {}",
        dir.canonicalize().as_deref().unwrap_or(dir).display()
    ));
}

/// Large blocks in aligned huge-page mappings (see `tfci_cli::HugePageAlloc`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static ALLOC: tfci_cli::HugePageAlloc = tfci_cli::HugePageAlloc;

fn main() -> ExitCode {
    codec_core::stage::mark("main");
    tfci_cli::prepare_environment();
    let code = tfci_cli::exit_code(run(Cli::parse()));
    codec_core::stage::mark("returned");
    code
}
