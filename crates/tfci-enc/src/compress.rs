//! `tfci-enc compress`: one model loaded once, then every input read, coded at a level, a rate
//! parameter or a `--target_bpp` search, and written safely.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use codec_core::image::RgbImage;
use codec_core::model::Registry;
use codec_core::{Codec, Limits};
use tfci_cli::rate::{describe, Effort, Mode};
use tfci_cli::{Clobber, Common, Input, Job, Reporter, Totals, WriteGuard};

pub const EXAMPLES: &str = "\
Examples:
  tfci-enc compress mbt2018-mean-msssim-5 kodim01.png               # writes kodim01.png.tfci
  tfci-enc compress mbt2018-mean-msssim-5 kodim01.png out.tfci
  tfci-enc compress bmshj2018-factorized-msssim kodim01.png -b 0.5   # search the levels
  tfci-enc compress mbt2018-mean-msssim kodim01.png -b 0.5 --bpp_strict
  tfci-enc compress mbt2018-mean-msssim -r 4.5 kodim01.png          # between levels 4 and 5
  tfci-enc compress -e 2 b2018-gdn-128-3 kodim01.png                # a smaller file, slower
  tfci-enc compress b2018-gdn-128-2 - - < a.png | ssh host tfci-dec decompress - b.png
  tfci-enc compress b2018-gdn-128-3 --out-dir out/ photos/*.png";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model name (see `tfci-enc models`), e.g. mbt2018-mean-msssim-5. With --target_bpp or
    /// --rd_parameter, give the family without the level, e.g. mbt2018-mean-msssim.
    pub model: String,
    /// Input image, then optionally the output file [default: INPUT.tfci]; `-` is stdin or
    /// stdout. Three or more paths, or --out-dir, compress each path as an input.
    #[arg(required = true, value_name = "INPUT [OUTPUT]")]
    pub paths: Vec<PathBuf>,
    /// Target bits per pixel: a binary search over the family's levels (or its rate parameter)
    /// keeps the file closest to it (--rd_parameter is then ignored, as in tfci.py).
    #[arg(
        short = 'b',
        long = "target_bpp",
        visible_alias = "target-bpp",
        value_name = "BPP"
    )]
    pub target_bpp: Option<f64>,
    /// Never exceed --target_bpp; fail if even the lowest rate does. Ignored without --target_bpp.
    #[arg(long = "bpp_strict", visible_alias = "bpp-strict")]
    pub bpp_strict: bool,
    #[command(flatten)]
    pub rd: tfci_cli::RdParameter,
    /// Bracket width at which --target_bpp's search over the rate parameter stops
    #[arg(
        long = "rd_parameter_tolerance",
        visible_alias = "rd-parameter-tolerance",
        default_value_t = tfci_cli::rate::RD_PARAMETER_TOLERANCE,
        value_name = "TOL"
    )]
    pub rd_parameter_tolerance: f32,
    /// Write every output into this folder (created if missing), named INPUT.tfci
    #[arg(
        short = 'o',
        long = "out-dir",
        visible_alias = "out_dir",
        value_name = "DIR"
    )]
    pub out_dir: Option<PathBuf>,
    #[command(flatten)]
    pub effort: tfci_cli::EffortArg,
    #[command(flatten)]
    pub no_clobber: tfci_cli::NoClobber,
}

pub fn run(registry: &Registry, common: &Common, args: Args) -> Result<()> {
    let (entry, level) = tfci_cli::rate::resolve(registry, &args.model)?;
    let jobs = tfci_cli::plan(&args.paths, args.out_dir.as_deref(), ".tfci")?;
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the folder {}", dir.display()))?;
    }
    let reporter = Reporter::new(common, jobs.len());
    if args.target_bpp.is_some() && args.rd.rd_parameter.is_some() {
        reporter.note("--rd_parameter is ignored with --target_bpp (as in tfci.py)");
    }
    if args.bpp_strict && args.target_bpp.is_none() {
        reporter.note("--bpp_strict is ignored without --target_bpp (as in tfci.py)");
    }
    // The first input is read and decoded while the model loads (used after its output check).
    let first = jobs.first().map(|job| &job.input);
    // The weights are packed while that image still decodes.
    let (loaded, mut first) = tfci_cli::start(
        common,
        registry,
        entry,
        &reporter,
        || first.map(read_image_of),
        codec_core::Codec::prepare_compress,
    );
    let codec = loaded?;
    let request = tfci_cli::rate::Request {
        target_bpp: args.target_bpp,
        bpp_strict: args.bpp_strict,
        rd_parameter: args.rd.rd_parameter,
        rd_parameter_tolerance: args.rd_parameter_tolerance,
    };
    let mode = tfci_cli::rate::mode(&codec, level, &request)?;
    let clobber = args.no_clobber.clobber();
    let how = How {
        codec: &codec,
        mode,
        limits: common.limits(),
        effort: Effort {
            effort: args.effort.effort,
            entry,
            progress: &|done, total| reporter.search_progress(done, total),
        },
    };
    // In a batch, each next input is read and decoded on its own thread while the current one
    // compresses (the compress leaves a core idle in its serial steps), so at most two decoded
    // images are held at once.
    let result = std::thread::scope(|s| {
        let mut ahead = None;
        let mut next = jobs.iter().skip(1);
        tfci_cli::run_jobs(&jobs, &reporter, "compressed", |job, totals| {
            let read = first.take().or_else(|| ahead.take().map(tfci_cli::joined));
            ahead = next
                .next()
                .map(|job| s.spawn(move || read_image_of(&job.input)));
            let result = compress_one(&how, job, read, clobber, &reporter, totals);
            tfci_cli::print_notes(&codec, &reporter);
            result
        })
    });
    // After the outputs: a first call's writing of its packed weights delays no file.
    tfci_cli::save_pack_cache(&codec, &reporter);
    result
}

/// How every input of a run is coded.
struct How<'a> {
    codec: &'a Codec,
    mode: Mode,
    limits: Limits,
    effort: Effort<'a>,
}

/// An input read and decoded: its size in bytes, the image, and what was converted.
type ReadImage = Result<(u64, RgbImage, Option<String>)>;

fn read_image_of(input: &Input) -> ReadImage {
    let read = tfci_cli::read_input_image(input)?;
    codec_core::stage::mark("image decoded");
    Ok(read)
}

/// Codes one job; `read` is its input when it was read ahead.
fn compress_one(
    how: &How<'_>,
    job: &Job,
    read: Option<ReadImage>,
    clobber: Clobber,
    reporter: &Reporter,
    totals: &mut Totals,
) -> Result<()> {
    let start = Instant::now();
    tfci_cli::check_output(&job.output, &job.input, clobber, WriteGuard::NotAnImage)?;
    let (input_len, image, note) = read.unwrap_or_else(|| read_image_of(&job.input))?;
    if let Some(note) = note {
        reporter.note(&note);
    }
    let pixels = image.width * image.height;
    codec_core::stage::mark("input ready");
    let failed = || format!("failed compressing {}", job.input);
    let (found, searches) =
        tfci_cli::rate::compress_with_effort(how.codec, &image, how.mode, &how.limits, how.effort)
            .with_context(failed)?;
    if reporter.verbose() {
        for (p, r) in &searches {
            let outcome = if r.kept {
                "kept"
            } else {
                "not lower: effort 0's latent kept"
            };
            reporter.info(&format!(
                "{}: effort {} at {}: {} iterations, objective {:.5} -> {:.5} ({outcome}), {:.2} s",
                job.input,
                r.effort,
                describe(*p),
                r.iterations,
                r.before,
                r.after,
                r.seconds
            ));
        }
    }
    let (bytes, point) = (&found.bytes, found.point);
    if reporter.verbose() && !found.tried.is_empty() {
        let tried: Vec<String> = found
            .tried
            .iter()
            .map(|(p, bpp)| format!("{} -> {bpp:.4}", describe(*p)))
            .collect();
        reporter.info(&format!("{}: tried {}", job.input, tried.join(", ")));
    }
    tfci_cli::write_output(
        &job.output,
        &job.input,
        bytes,
        clobber,
        WriteGuard::NotAnImage,
    )?;
    codec_core::stage::mark("written");
    let bpp = 8.0 * bytes.len() as f64 / pixels as f64;
    reporter.info(&format!(
        "{} -> {}: {} bytes, {bpp:.4} bpp ({}), {:.3} s",
        job.input,
        job.output,
        bytes.len(),
        describe(point),
        start.elapsed().as_secs_f64()
    ));
    totals.bytes_in += input_len;
    totals.bytes_out += bytes.len() as u64;
    totals.compressed += bytes.len() as u64;
    totals.pixels += pixels as u64;
    Ok(())
}
