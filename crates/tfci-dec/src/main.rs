//! `tfci-dec`: decompresses `.tfci` files into PNG (tensorflow-compression's `tfci.py
//! decompress`), with pipes and batches; each family a batch needs is loaded once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use codec_core::container::Packed;
use codec_core::model::Registry;
use codec_core::{Codec, Limits};
use tfci_cli::{Clobber, Common, Input, Job, ReadFamily, Reporter, Totals, WriteGuard};

const EXAMPLES: &str = "\
Examples:
  tfci-dec decompress kodim01.png.tfci            # writes kodim01.png.tfci.png
  tfci-dec decompress kodim01.png.tfci out.png
  ssh host tfci-enc compress b2018-gdn-128-2 - - < a.png | tfci-dec decompress - b.png
  tfci-dec decompress --out-dir png/ *.tfci";

#[derive(Parser, Debug)]
#[command(
    name = "tfci-dec",
    version,
    about = "Decompress .tfci files made by tfci-enc into PNG images (tfci.py decompress)",
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
    /// Reads a .tfci file, reconstructs the image with the model it names, and writes a PNG file.
    #[command(after_help = EXAMPLES)]
    Decompress(DecompressArgs),
    /// Lists the GPU adapters wgpu finds, best first, and whether each can run the codec.
    #[command(
        after_help = "Examples:\n  tfci-dec adapters\n  tfci-dec --backend gpu --adapter amd decompress kodim01.png.tfci"
    )]
    Adapters,
}

#[derive(clap::Args, Debug)]
struct DecompressArgs {
    /// Input .tfci file, then optionally the output PNG [default: INPUT.png]; `-` is stdin or
    /// stdout. Three or more paths, or --out-dir, decompress each path as an input.
    #[arg(required = true, value_name = "INPUT [OUTPUT]")]
    paths: Vec<PathBuf>,
    /// Write every output into this folder (created if missing), named INPUT.png
    #[arg(
        short = 'o',
        long = "out-dir",
        visible_alias = "out_dir",
        value_name = "DIR"
    )]
    out_dir: Option<PathBuf>,
    #[command(flatten)]
    no_clobber: tfci_cli::NoClobber,
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Decompress(args) => decompress(&cli.common, args),
        Command::Adapters => {
            tfci_cli::print_adapters();
            Ok(())
        }
    }
}

fn decompress(common: &Common, args: DecompressArgs) -> Result<()> {
    let jobs = tfci_cli::plan(&args.paths, args.out_dir.as_deref(), ".png")?;
    let registry = tfci_cli::open_registry(common.model_dir.as_deref())?;
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the folder {}", dir.display()))?;
    }
    let clobber = args.no_clobber.clobber();
    let reporter = Reporter::new(common, jobs.len());
    // The backend is selected on another thread (wgpu lists the adapters, which can load a Vulkan
    // driver) while the first file is read here and its model loaded; a failed selection is still
    // the run's one error, before any file's.
    let (backend, mut ahead) = std::thread::scope(|s| {
        let selecting = s.spawn(|| tfci_cli::select_backend(common, &reporter));
        let ahead = jobs.first().map(|job| read_ahead(&registry, &job.input));
        (tfci_cli::joined(selecting), ahead)
    });
    let backend = backend?;
    let mut decoders = Decoders {
        registry: &registry,
        backend: &backend,
        limits: common.limits(),
        codecs: HashMap::new(),
    };
    let result = tfci_cli::run_jobs(&jobs, &reporter, "decompressed", |job, totals| {
        let read = ahead.take();
        decompress_one(&mut decoders, job, read, clobber, &reporter, totals)
    });
    // After the outputs: a first call's writing of its packed weights delays no file.
    for codec in decoders.codecs.values() {
        tfci_cli::save_pack_cache(codec, &reporter);
    }
    result
}

/// A `.tfci` input read and parsed.
type ReadFile = Result<(Vec<u8>, Packed)>;

fn read_file(input: &Input) -> ReadFile {
    let bytes = tfci_cli::read_input(input)?;
    let packed = Packed::from_bytes(&bytes).with_context(|| input.to_string())?;
    Ok((bytes, packed))
}

/// The first input read ahead, with its model's family when the file names one.
fn read_ahead(registry: &Registry, input: &Input) -> (ReadFile, Option<ReadFamily>) {
    let file = read_file(input);
    let family = file.as_ref().ok().and_then(|(_, packed)| {
        let (entry, _) = codec_core::codec::resolve_packed(registry, packed).ok()?;
        Some(tfci_cli::read_family(registry, entry))
    });
    (file, family)
}

/// What decodes the files of a run: one codec per family, loaded when a file first names it.
struct Decoders<'a> {
    registry: &'a Registry,
    backend: &'a codec_core::Backend,
    limits: Limits,
    codecs: HashMap<String, Codec>,
}

/// Decodes one job; `ahead` is its input (and model) when they were read ahead.
fn decompress_one(
    decoders: &mut Decoders<'_>,
    job: &Job,
    ahead: Option<(ReadFile, Option<ReadFamily>)>,
    clobber: Clobber,
    reporter: &Reporter,
    totals: &mut Totals,
) -> Result<()> {
    let start = Instant::now();
    let (registry, backend, limits) = (decoders.registry, decoders.backend, &decoders.limits);
    tfci_cli::check_output(&job.output, &job.input, clobber, WriteGuard::NotATfci)?;
    let (file, family) = ahead.unwrap_or_else(|| (read_file(&job.input), None));
    let (bytes, packed) = file?;
    let name = || job.input.to_string();
    let (entry, _) = codec_core::codec::resolve_packed(registry, &packed).with_context(name)?;
    let codec = match decoders.codecs.entry(entry.family.clone()) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => {
            let read = family.unwrap_or_else(|| tfci_cli::read_family(registry, entry));
            e.insert(tfci_cli::prepare_codec(
                registry, entry, read, backend, reporter,
            )?)
        }
    };
    let image = codec
        .decompress_packed(&packed, limits)
        .with_context(|| format!("failed decoding {}", job.input));
    tfci_cli::print_notes(codec, reporter);
    let image = image?;
    let png = tfci_cli::png_bytes(&image)?;
    tfci_cli::write_output(&job.output, &job.input, &png, clobber, WriteGuard::NotATfci)?;
    let pixels = (image.width * image.height) as u64;
    reporter.info(&format!(
        "{} -> {}: {} {}x{}, {:.4} bpp, {:.3} s",
        job.input,
        job.output,
        packed.model,
        image.width,
        image.height,
        8.0 * bytes.len() as f64 / pixels as f64,
        start.elapsed().as_secs_f64()
    ));
    totals.bytes_in += bytes.len() as u64;
    totals.compressed += bytes.len() as u64;
    totals.bytes_out += png.len() as u64;
    totals.pixels += pixels;
    Ok(())
}

/// Large blocks in aligned huge-page mappings (see `tfci_cli::HugePageAlloc`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static ALLOC: tfci_cli::HugePageAlloc = tfci_cli::HugePageAlloc;

fn main() -> ExitCode {
    tfci_cli::prepare_environment();
    tfci_cli::exit_code(run(Cli::parse()))
}
