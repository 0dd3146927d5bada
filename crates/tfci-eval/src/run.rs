//! `tfci-eval run`: the evaluation pipeline.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use codec_core::codec::Objective;
use codec_core::container::Packed;
use codec_core::model::FamilyEntry;
use codec_core::{Codec, Limits, RgbImage};
use indicatif::{ProgressBar, ProgressStyle};

use crate::external::{self, Tool};
use crate::{jpeg, measure, plot, report, RunArgs};

/// One image coded at one setting.
#[derive(Debug, Clone)]
pub struct Row {
    pub codec: String,
    pub setting: String,
    pub image: String,
    pub width: usize,
    pub height: usize,
    pub bytes: u64,
    pub bpp: f64,
    pub n_compression: f64,
    pub psnr: f64,
    pub ssim: f64,
    pub msssim: f64,
    pub msssim_db: f64,
    /// PSNR (dB) of the BT.601 Y, Cb and Cr planes.
    pub psnr_ycbcr: [f64; 3],
    pub encode_s: f64,
    pub decode_s: f64,
    pub backend: &'static str,
}

/// What codes an image.
#[derive(Debug)]
enum Coder {
    Jpeg(u8),
    Learned {
        codec: usize,
        level: u32,
        /// `tfci-enc -e`: 0 is the plain encoder.
        effort: u8,
    },
    External {
        tool: Tool,
        programs: usize,
        value: f64,
    },
}

#[derive(Debug)]
struct Job {
    codec: String,
    setting: String,
    coder: Coder,
}

/// Everything the report needs besides the rows.
#[derive(Debug, Default)]
pub struct RunInfo {
    pub notes: Vec<String>,
    pub images_dir: String,
    pub n_images: usize,
    pub device: String,
    pub command: String,
    pub wall_s: f64,
    pub published: Vec<report::PublishedPoint>,
    pub ssim_target: f64,
}

/// Image files of a folder, sorted by name (hidden files left out); notes for what was skipped.
pub fn list_images(dir: &Path) -> Result<(Vec<PathBuf>, Vec<String>)> {
    if !dir.is_dir() {
        bail!(
            "image folder {} does not exist or is not a folder",
            dir.display()
        );
    }
    let mut paths = Vec::new();
    let mut notes = Vec::new();
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("failed listing {}", dir.display()))?
    {
        let path = entry
            .with_context(|| format!("failed listing {}", dir.display()))?
            .path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_file() {
            paths.push(path);
        } else {
            notes.push(format!("{} is not a file; skipped", path.display()));
        }
    }
    paths.sort();
    Ok((paths, notes))
}

fn device_name() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cpu} ({threads} threads)")
}

/// Runs the evaluation and writes the outputs; the exit code is non-zero when nothing could be
/// evaluated (the report saying why is still written).
pub fn run(args: &RunArgs) -> Result<ExitCode> {
    let started = Instant::now();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("failed creating {}", args.out.display()))?;
    let mut ctx = RunInfo {
        images_dir: args.images.display().to_string(),
        device: device_name(),
        command: std::iter::once("tfci-eval".to_string())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" "),
        ssim_target: args.ssim_target,
        ..Default::default()
    };
    let warn = |ctx: &mut RunInfo, msg: String| {
        eprintln!("warning: {msg}");
        ctx.notes.push(msg);
    };

    // Images.
    let mut images: Vec<(String, PathBuf, RgbImage)> = Vec::new();
    match list_images(&args.images) {
        Ok((paths, notes)) => {
            for n in notes {
                warn(&mut ctx, n);
            }
            for p in paths {
                if args.max_images.is_some_and(|m| images.len() >= m) {
                    break;
                }
                match tfci_cli::read_image(&p) {
                    Ok(img) if img.width == 0 || img.height == 0 => {
                        warn(&mut ctx, format!("{} is empty; skipped", p.display()))
                    }
                    Ok(img) => {
                        let name = p
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        images.push((name, p, img));
                    }
                    Err(e) => warn(&mut ctx, format!("skipped {}: {e:#}", p.display())),
                }
            }
            if images.is_empty() {
                warn(
                    &mut ctx,
                    format!(
                        "no readable image in {}: nothing evaluated",
                        args.images.display()
                    ),
                );
            }
        }
        Err(e) => warn(&mut ctx, format!("{e:#}")),
    }
    ctx.n_images = images.len();

    // Settings.
    let mut jobs: Vec<Job> = Vec::new();
    for &q in &args.jpeg_qualities {
        if !(1..=100).contains(&q) {
            warn(
                &mut ctx,
                format!("JPEG quality {q} is outside 1..=100; skipped"),
            );
            continue;
        }
        jobs.push(Job {
            codec: "jpeg".into(),
            setting: format!("q={q}"),
            coder: Coder::Jpeg(q),
        });
    }
    let mut codecs: Vec<(Codec, FamilyEntry)> = Vec::new();
    let mut efforts: Vec<u8> = Vec::new();
    for &e in &args.efforts {
        if e > codec_core::codec::MAX_EFFORT {
            let max = codec_core::codec::MAX_EFFORT;
            warn(
                &mut ctx,
                format!("effort {e} is outside 0..={max}; skipped"),
            );
        } else if !efforts.contains(&e) {
            efforts.push(e);
        }
        if efforts.iter().any(|&e| e > 0) {
            tfci_cli::keep_freed_memory();
        }
    }
    let want_models = !(args.models.len() == 1 && args.models[0] == "none");
    if want_models {
        match tfci_cli::open_registry(args.model_dir.as_deref()) {
            Ok(registry) => {
                // (family, levels) in request order.
                let mut wanted: Vec<(String, Vec<u32>)> = Vec::new();
                let mut add =
                    |family: &str, level: u32| match wanted.iter_mut().find(|(f, _)| f == family) {
                        Some((_, levels)) if !levels.contains(&level) => levels.push(level),
                        Some(_) => {}
                        None => wanted.push((family.to_string(), vec![level])),
                    };
                if args.models.is_empty() {
                    for f in registry.families() {
                        (1..=f.levels).for_each(|l| add(&f.family, l));
                    }
                } else {
                    for name in &args.models {
                        if let Some(f) = registry.family(name) {
                            (1..=f.levels).for_each(|l| add(&f.family, l));
                        } else {
                            match registry.resolve(name) {
                                Ok((f, l)) => add(&f.family, l),
                                Err(e) => warn(&mut ctx, format!("model {name} skipped: {e}")),
                            }
                        }
                    }
                }
                for (family, levels) in wanted {
                    let Some(entry) = registry.family(&family) else {
                        continue;
                    };
                    let codec = registry
                        .load(entry)
                        .map_err(anyhow::Error::from)
                        .and_then(|f| Codec::new(f).map_err(anyhow::Error::from));
                    match codec {
                        Ok(codec) => {
                            codecs.push((codec, entry.clone()));
                            for &effort in &efforts {
                                // Each effort above 0 is a codec of its own (its own curve).
                                let name = match effort {
                                    0 => family.clone(),
                                    e => format!("{family}-e{e}"),
                                };
                                for &level in &levels {
                                    jobs.push(Job {
                                        codec: name.clone(),
                                        setting: format!("level={level}"),
                                        coder: Coder::Learned {
                                            codec: codecs.len() - 1,
                                            level,
                                            effort,
                                        },
                                    });
                                }
                            }
                        }
                        Err(e) => warn(&mut ctx, format!("model family {family} skipped: {e:#}")),
                    }
                }
            }
            Err(e) => warn(&mut ctx, format!("learned codecs skipped: {e:#}")),
        }
    }
    let mut programs: Vec<[PathBuf; 2]> = Vec::new();
    for name in &args.external {
        if name == "none" || name.is_empty() {
            continue;
        }
        let Some(tool) = Tool::parse(name) else {
            warn(
                &mut ctx,
                format!("unknown external codec {name} (known: webp, avif, jxl); skipped"),
            );
            continue;
        };
        match tool.locate() {
            Ok(p) => {
                programs.push(p);
                let values: Vec<f64> = match tool {
                    Tool::Webp => args.webp_qualities.iter().map(|&v| f64::from(v)).collect(),
                    Tool::Avif => args.avif_quantizers.iter().map(|&v| f64::from(v)).collect(),
                    Tool::Jxl => args.jxl_distances.clone(),
                };
                let key = match tool {
                    Tool::Webp => "q",
                    Tool::Avif => "Q",
                    Tool::Jxl => "d",
                };
                for value in values {
                    jobs.push(Job {
                        codec: tool.name().into(),
                        setting: format!("{key}={}", external::format_setting(value)),
                        coder: Coder::External {
                            tool,
                            programs: programs.len() - 1,
                            value,
                        },
                    });
                }
            }
            Err(msg) => warn(&mut ctx, msg),
        }
    }

    // Published reference curves.
    if args.published.as_os_str().is_empty() {
        // Nothing asked for.
    } else if args.published.is_file() {
        match report::read_published(&args.published) {
            Ok(p) => ctx.published = p,
            Err(e) => warn(&mut ctx, format!("published curves not drawn: {e:#}")),
        }
    } else {
        ctx.notes.push(format!(
            "no published curves drawn: {} not found",
            args.published.display()
        ));
    }

    // Work.
    let rows = evaluate(&images, &jobs, &codecs, &programs, &mut ctx)?;
    ctx.wall_s = started.elapsed().as_secs_f64();

    // Outputs: each one independently, so that one failure leaves the others.
    let mut failed = Vec::new();
    if let Err(e) = report::write_rows_csv(&args.out.join("per_image.csv"), &rows) {
        failed.push(format!("per_image.csv: {e:#}"));
    }
    let means = report::means(&rows);
    if let Err(e) = report::write_means_csv(&args.out.join("means.csv"), &means) {
        failed.push(format!("means.csv: {e:#}"));
    }
    for (name, metric) in [
        ("rd_psnr", plot::Metric::Psnr),
        ("rd_msssim", plot::Metric::MsssimDb),
    ] {
        for ext in ["png", "svg"] {
            let path = args.out.join(format!("{name}.{ext}"));
            if let Err(e) = plot::draw(&path, metric, &means, &ctx.published) {
                failed.push(format!("{}: {e:#}", path.display()));
            }
        }
    }
    if !plot::has_text() {
        ctx.notes.push(
            "no TrueType font found: plots drawn without labels (set TFCI_EVAL_FONT to a .ttf file)".into(),
        );
    }
    for f in &failed {
        warn(&mut ctx, format!("output not written: {f}"));
    }
    let md = report::markdown(&means, &ctx);
    let report_path = args.out.join("report.md");
    std::fs::write(&report_path, md)
        .with_context(|| format!("failed writing {}", report_path.display()))?;
    eprintln!(
        "wrote {} ({} rows, {:.1} s)",
        report_path.display(),
        rows.len(),
        ctx.wall_s
    );
    Ok(if rows.is_empty() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn evaluate(
    images: &[(String, PathBuf, RgbImage)],
    jobs: &[Job],
    codecs: &[(Codec, FamilyEntry)],
    programs: &[[PathBuf; 2]],
    ctx: &mut RunInfo,
) -> Result<Vec<Row>> {
    let total = (images.len() * jobs.len()) as u64;
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} (eta {eta}) {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    // The bar draws nothing off a terminal: a background run says one line per image instead.
    let plain = !std::io::stderr().is_terminal();
    let started = Instant::now();
    let work = tempfile::tempdir().context("failed creating a temporary folder")?;
    let limits = Limits::default();
    let mut rows = Vec::new();
    // Failures are reported once per codec setting, with a count.
    let mut failures: Vec<(String, String, usize)> = Vec::new();
    for (name, _path, img) in images {
        // The external tools read the original as PNG.
        let png_in = work.path().join("input.png");
        let png_ok = if programs.is_empty() {
            false
        } else {
            match tfci_cli::png_bytes(img).and_then(|b| Ok(std::fs::write(&png_in, b)?)) {
                Ok(()) => true,
                Err(e) => {
                    ctx.notes.push(format!(
                        "{name}: could not write a PNG for the external tools: {e:#}"
                    ));
                    false
                }
            }
        };
        for job in jobs {
            bar.set_message(format!("{name} {} {}", job.codec, job.setting));
            let coded: Result<(u64, RgbImage, Duration, Duration)> = match &job.coder {
                Coder::Jpeg(q) => (|| {
                    let t0 = Instant::now();
                    let bytes = jpeg::encode(img, *q)?;
                    let enc = t0.elapsed();
                    let t0 = Instant::now();
                    let dec = jpeg::decode(&bytes)?;
                    Ok((bytes.len() as u64, dec, enc, t0.elapsed()))
                })(),
                Coder::Learned {
                    codec,
                    level,
                    effort,
                } => (|| {
                    let (codec, entry) = &codecs[*codec];
                    let t0 = Instant::now();
                    let bytes = if *effort == 0 {
                        codec.compress(img, *level, &limits)?
                    } else {
                        let mut latents = codec.analyze(img, *level, &limits)?;
                        let objective = Objective::of(entry, *level, None)?;
                        codec.search(img, &mut latents, *effort, &objective, &limits)?;
                        codec.encode(&latents)?
                    };
                    let enc = t0.elapsed();
                    let t0 = Instant::now();
                    let dec = codec.decompress_packed(&Packed::from_bytes(&bytes)?, &limits)?;
                    Ok((bytes.len() as u64, dec, enc, t0.elapsed()))
                })(),
                Coder::External {
                    tool,
                    programs: p,
                    value,
                } => {
                    if png_ok {
                        external::code(*tool, &programs[*p], &png_in, *value, work.path())
                            .map(|c| (c.bytes, c.decoded, c.encode, c.decode))
                    } else {
                        Err(anyhow::anyhow!("no PNG input for the external tool"))
                    }
                }
            };
            let row = coded.and_then(|(bytes, dec, enc, dect)| {
                let q = measure::quality(img, &dec)?;
                for n in q.notes {
                    let msg = format!("{name}: {n}");
                    if !ctx.notes.contains(&msg) {
                        ctx.notes.push(msg);
                    }
                }
                let (w, h) = (img.width as u64, img.height as u64);
                Ok(Row {
                    codec: job.codec.clone(),
                    setting: job.setting.clone(),
                    image: name.clone(),
                    width: img.width,
                    height: img.height,
                    bytes,
                    bpp: metrics::bpp(bytes, w, h),
                    n_compression: metrics::n_compression(bytes, w, h),
                    psnr: q.psnr,
                    ssim: q.ssim,
                    msssim: q.msssim,
                    msssim_db: q.msssim_db,
                    psnr_ycbcr: q.psnr_ycbcr,
                    encode_s: enc.as_secs_f64(),
                    decode_s: dect.as_secs_f64(),
                    backend: "cpu",
                })
            });
            match row {
                Ok(r) => rows.push(r),
                Err(e) => {
                    let key = format!("{} {}", job.codec, job.setting);
                    match failures.iter_mut().find(|(k, _, _)| *k == key) {
                        Some(f) => f.2 += 1,
                        None => {
                            bar.suspend(|| eprintln!("warning: {key} failed on {name}: {e:#}"));
                            failures.push((key, format!("{name}: {e:#}"), 1));
                        }
                    }
                }
            }
            bar.inc(1);
        }
        if plain {
            eprintln!(
                "{name}: done ({}/{total} codings, {:.0} s)",
                bar.position(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    bar.finish_and_clear();
    for (key, first, n) in failures {
        ctx.notes
            .push(format!("{key} failed on {n} image(s); first: {first}"));
    }
    Ok(rows)
}
