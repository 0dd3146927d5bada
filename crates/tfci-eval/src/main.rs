//! `tfci-eval`: rate-distortion evaluation of the learned codecs against JPEG (and WebP, AVIF,
//! JPEG XL when their command-line tools are installed). See docs/evaluation.md.

mod colour;
mod external;
mod jpeg;
mod measure;
mod plot;
mod report;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tfci-eval",
    version,
    about = "Rate-distortion evaluation of the tfci-rs codecs"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Prints PSNR, SSIM, MS-SSIM, MS-SSIM (dB) and the Y/Cb/Cr plane PSNRs of two images of the
    /// same size.
    Compare {
        /// Reference image.
        a: PathBuf,
        /// Distorted image.
        b: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Encodes, decodes and measures a folder of images with our models, JPEG and the optional
    /// external codecs; writes CSVs, a Markdown report and RD plots.
    Run(Box<RunArgs>),
    /// Codes a chart of saturated patches (primaries, skin tones, a hue ramp) with every model at
    /// its middle level and JPEG q50, and prints each patch's mean-colour shift (CIELAB ΔE*ab).
    Colour {
        /// Model folder (default: as tfci-enc finds it).
        #[arg(long)]
        model_dir: Option<PathBuf>,
    },
    /// Total JPEG bytes over a folder per quality, optionally against a reference CSV
    /// (columns codec, setting, total_bytes; rows of codec `pil_jpeg`).
    JpegSizes {
        /// Folder of images.
        #[arg(long, default_value = "../shared/data/kodak")]
        images: PathBuf,
        /// libjpeg qualities.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "5,10,15,20,30,40,50,60,70,80,90,95"
        )]
        qualities: Vec<u8>,
        /// Reference totals (e.g. ../shared/anchors/kodak_classical.csv).
        #[arg(long)]
        reference: Option<PathBuf>,
    },
}

/// Options of `tfci-eval run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Folder of images (every file the `image` crate can read; others are skipped with a warning).
    #[arg(long, default_value = "../shared/data/kodak")]
    pub images: PathBuf,
    /// Models: family names (all levels) or model names (FAMILY-LEVEL); default every family of
    /// the model folder at every level; `none` for no learned model.
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    pub models: Vec<String>,
    /// Model folder (default: as tfci-enc finds it).
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// Encoder efforts of the learned codecs (`tfci-enc compress -e`, 0 to 3); each effort above 0 is
    /// a codec of its own, FAMILY-eN, e.g. `--efforts 0,2`.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub efforts: Vec<u8>,
    /// JPEG qualities (libjpeg scale, 4:2:0); empty for no JPEG.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "5,10,20,30,40,50,60,70,80,90,95"
    )]
    pub jpeg_qualities: Vec<u8>,
    /// Optional external codecs to try: webp, avif, jxl, or none.
    #[arg(long, value_delimiter = ',', default_value = "webp,avif,jxl")]
    pub external: Vec<String>,
    /// cwebp -q settings.
    #[arg(long, value_delimiter = ',', default_value = "5,15,30,50,70,85,95")]
    pub webp_qualities: Vec<u8>,
    /// avifenc --min Q --max Q settings (0..63).
    #[arg(long, value_delimiter = ',', default_value = "8,16,24,32,40,48,56")]
    pub avif_quantizers: Vec<u8>,
    /// cjxl -d distances.
    #[arg(long, value_delimiter = ',', default_value = "0.5,1,2,3,5,8")]
    pub jxl_distances: Vec<f64>,
    /// Published curves to draw as reference (columns codec, bpp and psnr and/or msssim_db or msssim).
    #[arg(long, default_value = "../shared/anchors/published_curves.csv")]
    pub published: PathBuf,
    /// Mean SSIM the article's tables are taken at.
    #[arg(long, default_value_t = 0.97)]
    pub ssim_target: f64,
    /// Evaluate only the first N images (sorted by name).
    #[arg(long)]
    pub max_images: Option<usize>,
    /// Output folder.
    #[arg(long, default_value = "docs/eval")]
    pub out: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Compare { a, b, json } => compare(&a, &b, json).map(|()| ExitCode::SUCCESS),
        Cmd::Run(args) => run::run(&args),
        Cmd::Colour { model_dir } => colour_table(model_dir.as_deref()),
        Cmd::JpegSizes {
            images,
            qualities,
            reference,
        } => jpeg_sizes(&images, &qualities, reference.as_deref()).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn colour_table(model_dir: Option<&std::path::Path>) -> Result<ExitCode> {
    let registry = tfci_cli::open_registry(model_dir)?;
    let mut failed = false;
    for entry in registry.families() {
        let codec = codec_core::Codec::new(registry.load(entry)?)?;
        let level = colour::mid_level(entry.levels);
        println!(
            "{}-{level}: patch, ΔE*ab of the model, of JPEG q{}",
            entry.family,
            colour::JPEG_QUALITY
        );
        for (name, de, de_jpeg) in colour::check(&codec, level)? {
            let bad = de > de_jpeg + colour::MARGIN_DE;
            failed |= bad;
            let mark = if bad { "  MOVED" } else { "" };
            println!("  {name:<12} {de:6.2} {de_jpeg:6.2}{mark}");
        }
    }
    println!(
        "MOVED: more than {} above JPEG q{}'s shift",
        colour::MARGIN_DE,
        colour::JPEG_QUALITY
    );
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn compare(a: &std::path::Path, b: &std::path::Path, json: bool) -> Result<()> {
    let ia = tfci_cli::read_image(a)?;
    let ib = tfci_cli::read_image(b)?;
    if (ia.width, ia.height) != (ib.width, ib.height) {
        anyhow::bail!(
            "the images differ in size: {} is {}x{}, {} is {}x{}",
            a.display(),
            ia.width,
            ia.height,
            b.display(),
            ib.width,
            ib.height
        );
    }
    let m = measure::quality(&ia, &ib)?;
    if json {
        let v = serde_json::json!({
            "a": a.display().to_string(),
            "b": b.display().to_string(),
            "width": ia.width,
            "height": ia.height,
            "psnr": json_num(m.psnr),
            "ssim": json_num(m.ssim),
            "msssim": json_num(m.msssim),
            "msssim_db": json_num(m.msssim_db),
            "psnr_y": json_num(m.psnr_ycbcr[0]),
            "psnr_cb": json_num(m.psnr_ycbcr[1]),
            "psnr_cr": json_num(m.psnr_ycbcr[2]),
            "notes": m.notes,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("size:       {}x{}", ia.width, ia.height);
        println!("PSNR:       {} dB", fmt_num(m.psnr, 4));
        println!("SSIM:       {}", fmt_num(m.ssim, 6));
        println!("MS-SSIM:    {}", fmt_num(m.msssim, 6));
        println!("MS-SSIM dB: {} dB", fmt_num(m.msssim_db, 4));
        let [y, cb, cr] = m.psnr_ycbcr.map(|v| fmt_num(v, 4));
        println!("Y/Cb/Cr:    {y} / {cb} / {cr} dB (PSNR of the BT.601 planes)");
        for n in &m.notes {
            eprintln!("note: {n}");
        }
    }
    Ok(())
}

/// JSON has no NaN or infinity: those become strings ("inf" for identical images).
fn json_num(v: f64) -> serde_json::Value {
    if v.is_finite() {
        serde_json::json!(v)
    } else if v.is_nan() {
        serde_json::Value::Null
    } else {
        serde_json::json!(if v > 0.0 { "inf" } else { "-inf" })
    }
}

/// `v` with `prec` decimals, "n/a" for NaN.
pub fn fmt_num(v: f64, prec: usize) -> String {
    if v.is_nan() {
        "n/a".into()
    } else {
        format!("{v:.prec$}")
    }
}

fn jpeg_sizes(
    images: &std::path::Path,
    qualities: &[u8],
    reference: Option<&std::path::Path>,
) -> Result<()> {
    let (paths, notes) = run::list_images(images)?;
    for n in &notes {
        eprintln!("warning: {n}");
    }
    let mut imgs = Vec::new();
    for p in &paths {
        match tfci_cli::read_image(p) {
            Ok(img) => imgs.push(img),
            Err(e) => eprintln!("warning: skipped {}: {e:#}", p.display()),
        }
    }
    anyhow::ensure!(
        !imgs.is_empty(),
        "no readable image in {}",
        images.display()
    );
    let refs = match reference {
        Some(path) => read_reference_totals(path)?,
        None => Default::default(),
    };
    println!("| quality | ours (bytes) | reference (bytes) | difference |");
    println!("|---:|---:|---:|---:|");
    for &q in qualities {
        let mut total = 0usize;
        for img in &imgs {
            total += jpeg::encode(img, q)?.len();
        }
        match refs.get(&q) {
            Some(&r) => println!(
                "| {q} | {total} | {r} | {:+.3}% |",
                (total as f64 / r as f64 - 1.0) * 100.0
            ),
            None => println!("| {q} | {total} | | |"),
        }
    }
    Ok(())
}

/// `quality -> total_bytes` of the `pil_jpeg` rows of an anchors CSV.
fn read_reference_totals(path: &std::path::Path) -> Result<std::collections::BTreeMap<u8, u64>> {
    let mut rdr = csv::Reader::from_path(path)
        .with_context(|| format!("failed reading {}", path.display()))?;
    let headers = rdr.headers()?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{} has no column {name}", path.display()))
    };
    let (c_codec, c_setting, c_total) = (col("codec")?, col("setting")?, col("total_bytes")?);
    let mut out = std::collections::BTreeMap::new();
    for rec in rdr.records() {
        let rec = rec.with_context(|| format!("bad CSV row in {}", path.display()))?;
        if rec.get(c_codec) != Some("pil_jpeg") {
            continue;
        }
        if let (Some(Ok(q)), Some(Ok(t))) = (
            rec.get(c_setting).map(str::parse::<u8>),
            rec.get(c_total).map(str::parse::<u64>),
        ) {
            out.insert(q, t);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn shared() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
    }

    /// Skips (with a notice) when shared data is absent, except under CI=true where that fails.
    fn require(path: &Path) -> bool {
        if path.exists() {
            return true;
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{} is missing (required when CI=true)",
            path.display()
        );
        {
            // Written past libtest's capture, so the skip shows in the test output even
            // though the test passes.
            use std::io::Write;
            let test = std::thread::current().name().unwrap_or("?").to_string();
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: {} not found",
                path.display()
            );
        }
        false
    }

    /// Acceptance: our JPEG sizes are within 1% of PIL's (libjpeg-turbo, 4:2:0, no optimize) on
    /// Kodak at qualities 10..95 (the anchors hold PIL's totals over the 24 images).
    #[test]
    fn jpeg_sizes_match_pil_on_kodak() {
        let kodak = shared().join("data/kodak");
        let anchors = shared().join("anchors/kodak_classical.csv");
        if !require(&kodak) || !require(&anchors) {
            return;
        }
        let refs = read_reference_totals(&anchors).expect("anchors");
        let (paths, _) = run::list_images(&kodak).expect("kodak");
        let imgs: Vec<_> = paths
            .iter()
            .map(|p| tfci_cli::read_image(p).expect("kodak image"))
            .collect();
        assert_eq!(imgs.len(), 24);
        let mut checked = 0;
        for (&q, &pil) in refs.iter().filter(|(&q, _)| (10..=95).contains(&q)) {
            let ours: usize = imgs
                .iter()
                .map(|img| jpeg::encode(img, q).expect("encode").len())
                .sum();
            let diff = (ours as f64 / pil as f64 - 1.0) * 100.0;
            assert!(
                diff.abs() < 1.0,
                "q={q}: ours {ours} vs PIL {pil} ({diff:+.3}%)"
            );
            checked += 1;
        }
        assert!(checked >= 10, "only {checked} qualities in the anchors");
    }
}
