//! Aggregation over images, the CSV files and the Markdown report.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use metrics::RdPoint;

use crate::fmt_num;
use crate::run::{Row, RunInfo};

/// Means over the images of one codec at one setting.
#[derive(Debug, Clone)]
pub struct Mean {
    pub codec: String,
    pub setting: String,
    pub n: usize,
    pub bytes: f64,
    pub bpp: f64,
    pub n_compression: f64,
    pub psnr: f64,
    pub ssim: f64,
    pub msssim: f64,
    /// `msssim_db` of the mean MS-SSIM (as tensorflow-compression's curves).
    pub msssim_db: f64,
    /// Mean over the images of each plane's PSNR (Y, Cb, Cr), like `psnr`.
    pub psnr_ycbcr: [f64; 3],
    pub encode_s: f64,
    pub decode_s: f64,
    pub backend: &'static str,
}

/// A point of a published curve.
#[derive(Debug, Clone)]
pub struct PublishedPoint {
    pub codec: String,
    pub bpp: f64,
    pub psnr: Option<f64>,
    pub msssim_db: Option<f64>,
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        s / n as f64
    }
}

/// Means per (codec, setting), codecs in order of first appearance, settings by increasing bpp.
pub fn means(rows: &[Row]) -> Vec<Mean> {
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in rows {
        if !keys.iter().any(|(c, s)| *c == r.codec && *s == r.setting) {
            keys.push((r.codec.clone(), r.setting.clone()));
        }
    }
    let mut out: Vec<Mean> = keys
        .into_iter()
        .map(|(codec, setting)| {
            let g: Vec<&Row> = rows
                .iter()
                .filter(|r| r.codec == codec && r.setting == setting)
                .collect();
            let msssim = mean(g.iter().map(|r| r.msssim));
            Mean {
                n: g.len(),
                bytes: mean(g.iter().map(|r| r.bytes as f64)),
                bpp: mean(g.iter().map(|r| r.bpp)),
                n_compression: mean(g.iter().map(|r| r.n_compression)),
                psnr: mean(g.iter().map(|r| r.psnr)),
                ssim: mean(g.iter().map(|r| r.ssim)),
                msssim,
                msssim_db: if msssim.is_nan() {
                    f64::NAN
                } else {
                    metrics::msssim_db(msssim)
                },
                psnr_ycbcr: [0, 1, 2].map(|c| mean(g.iter().map(|r| r.psnr_ycbcr[c]))),
                encode_s: mean(g.iter().map(|r| r.encode_s)),
                decode_s: mean(g.iter().map(|r| r.decode_s)),
                backend: g[0].backend,
                codec,
                setting,
            }
        })
        .collect();
    let order: Vec<String> = {
        let mut o: Vec<String> = Vec::new();
        for m in &out {
            if !o.contains(&m.codec) {
                o.push(m.codec.clone());
            }
        }
        o
    };
    out.sort_by(|a, b| {
        let ia = order.iter().position(|c| *c == a.codec);
        let ib = order.iter().position(|c| *c == b.codec);
        ia.cmp(&ib).then(a.bpp.total_cmp(&b.bpp))
    });
    out
}

/// The codecs of `means` in order.
pub fn codecs(means: &[Mean]) -> Vec<&str> {
    let mut o: Vec<&str> = Vec::new();
    for m in means {
        if !o.contains(&m.codec.as_str()) {
            o.push(&m.codec);
        }
    }
    o
}

/// The measured columns, after the ones that name a row: the same in both CSV files.
const MEASURED: [&str; 12] = [
    "bpp",
    "n_compression",
    "psnr",
    "ssim",
    "msssim",
    "msssim_db",
    "psnr_y",
    "psnr_cb",
    "psnr_cr",
    "encode_s",
    "decode_s",
    "backend",
];

/// The [`MEASURED`] values of a [`Row`] or a [`Mean`] (the same field names in both).
macro_rules! measured {
    ($r:expr) => {
        [
            format!("{:.6}", $r.bpp),
            format!("{:.8}", $r.n_compression),
            format!("{:.4}", $r.psnr),
            format!("{:.6}", $r.ssim),
            format!("{:.6}", $r.msssim),
            format!("{:.4}", $r.msssim_db),
            format!("{:.4}", $r.psnr_ycbcr[0]),
            format!("{:.4}", $r.psnr_ycbcr[1]),
            format!("{:.4}", $r.psnr_ycbcr[2]),
            format!("{:.6}", $r.encode_s),
            format!("{:.6}", $r.decode_s),
            $r.backend.to_string(),
        ]
    };
}

/// Per-image rows as CSV.
pub fn write_rows_csv(path: &Path, rows: &[Row]) -> Result<()> {
    let names = ["codec", "setting", "image", "width", "height", "bytes"];
    let records = rows.iter().map(|r| {
        let mut v = vec![
            r.codec.clone(),
            r.setting.clone(),
            r.image.clone(),
            r.width.to_string(),
            r.height.to_string(),
            r.bytes.to_string(),
        ];
        v.extend(measured!(r));
        v
    });
    write_csv(path, &[&names[..], &MEASURED[..]].concat(), records)
}

/// Mean rows as CSV.
pub fn write_means_csv(path: &Path, means: &[Mean]) -> Result<()> {
    let names = ["codec", "setting", "n_images", "mean_bytes"];
    let records = means.iter().map(|m| {
        let mut v = vec![
            m.codec.clone(),
            m.setting.clone(),
            m.n.to_string(),
            format!("{:.1}", m.bytes),
        ];
        v.extend(measured!(m));
        v
    });
    write_csv(path, &[&names[..], &MEASURED[..]].concat(), records)
}

/// Writes a header and records to a CSV file.
fn write_csv(
    path: &Path,
    header: &[&str],
    records: impl Iterator<Item = Vec<String>>,
) -> Result<()> {
    let mut w = csv::Writer::from_path(path)
        .with_context(|| format!("failed creating {}", path.display()))?;
    w.write_record(header)?;
    for r in records {
        w.write_record(&r)?;
    }
    w.flush()?;
    Ok(())
}

/// Reads published curves. Two layouts: wide (a `codec`, `name` or `method` column, `bpp`, and
/// `psnr` and/or `msssim_db` or `msssim`), or long (`method`, `metric` = psnr | msssim, `bpp`,
/// `value`, optional `msssim_db`), as `../shared/anchors/published_curves.csv`.
pub fn read_published(path: &Path) -> Result<Vec<PublishedPoint>> {
    let mut rdr = csv::Reader::from_path(path)
        .with_context(|| format!("failed reading {}", path.display()))?;
    let headers = rdr.headers()?.clone();
    let col = |names: &[&str]| headers.iter().position(|h| names.contains(&h.trim()));
    let c_codec =
        col(&["codec", "name", "method", "model"]).context("no codec (or method) column")?;
    let c_bpp = col(&["bpp"]).context("no bpp column")?;
    let c_metric = col(&["metric"]);
    let c_value = col(&["value"]);
    let c_psnr = col(&["psnr", "psnr_rgb"]);
    let c_db = col(&["msssim_db"]);
    let c_ms = col(&["msssim", "ms_ssim"]);
    let num = |rec: &csv::StringRecord, c: Option<usize>| {
        c.and_then(|c| rec.get(c))
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite())
    };
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec = rec.with_context(|| format!("bad row in {}", path.display()))?;
        let (Some(codec), Some(bpp)) = (rec.get(c_codec), num(&rec, Some(c_bpp))) else {
            continue;
        };
        let (psnr, msssim_db) = match (c_metric.and_then(|c| rec.get(c)), c_value) {
            (Some(metric), Some(_)) => match metric.trim().to_ascii_lowercase().as_str() {
                "psnr" => (num(&rec, c_value), None),
                "msssim" | "ms-ssim" | "ms_ssim" => (
                    None,
                    num(&rec, c_db).or_else(|| num(&rec, c_value).map(metrics::msssim_db)),
                ),
                "msssim_db" => (None, num(&rec, c_value)),
                _ => (None, None),
            },
            _ => (
                num(&rec, c_psnr),
                num(&rec, c_db).or_else(|| num(&rec, c_ms).map(metrics::msssim_db)),
            ),
        };
        if psnr.is_none() && msssim_db.is_none() {
            continue;
        }
        out.push(PublishedPoint {
            codec: codec.to_string(),
            bpp,
            psnr,
            msssim_db,
        });
    }
    anyhow::ensure!(!out.is_empty(), "no usable row in {}", path.display());
    Ok(out)
}

/// BD-rate (%) of a published curve against our JPEG.
pub fn bd_rate_published_vs_jpeg(
    means: &[Mean],
    published: &[PublishedPoint],
    name: &str,
    psnr: bool,
) -> Result<f64, String> {
    let anchor: Vec<RdPoint> = means
        .iter()
        .filter(|m| m.codec == "jpeg")
        .map(|m| RdPoint::new(m.bpp, if psnr { m.psnr } else { m.msssim_db }))
        .collect();
    if anchor.is_empty() {
        return Err("no JPEG curve".into());
    }
    let test: Vec<RdPoint> = published
        .iter()
        .filter(|p| p.codec == name)
        .filter_map(|p| if psnr { p.psnr } else { p.msssim_db }.map(|q| RdPoint::new(p.bpp, q)))
        .collect();
    if test.is_empty() {
        return Err("no points".into());
    }
    metrics::bd_rate(&anchor, &test).map_err(|e| e.to_string())
}

/// The mean row of each codec whose mean SSIM is closest to `target`.
pub fn at_ssim_target(means: &[Mean], target: f64) -> Vec<&Mean> {
    codecs(means)
        .into_iter()
        .filter_map(|c| {
            means
                .iter()
                .filter(|m| m.codec == c && m.ssim.is_finite())
                .min_by(|a, b| (a.ssim - target).abs().total_cmp(&(b.ssim - target).abs()))
        })
        .collect()
}

/// BD-rate (%) of `codec` against `anchor` for a quality axis; `Err` says why there is none.
pub fn bd_rate_between(
    means: &[Mean],
    anchor: &str,
    codec: &str,
    quality: impl Fn(&Mean) -> f64,
) -> Result<f64, String> {
    let curve = |c: &str| -> Vec<RdPoint> {
        means
            .iter()
            .filter(|m| m.codec == c)
            .map(|m| RdPoint::new(m.bpp, quality(m)))
            .collect()
    };
    let anchor_curve = curve(anchor);
    if anchor_curve.is_empty() {
        return Err(format!("no {anchor} curve"));
    }
    metrics::bd_rate(&anchor_curve, &curve(codec)).map_err(|e| e.to_string())
}

/// BD-rate (%) of `codec` against JPEG for a quality axis; `Err` says why there is none.
pub fn bd_rate_vs_jpeg(
    means: &[Mean],
    codec: &str,
    quality: impl Fn(&Mean) -> f64,
) -> Result<f64, String> {
    bd_rate_between(means, "jpeg", codec, quality)
}

/// The effort codecs (`FAMILY-eN`) whose family's effort-0 curve is there too, as `(family, codec)`.
pub fn effort_pairs(means: &[Mean]) -> Vec<(&str, &str)> {
    let all = codecs(means);
    all.iter()
        .filter_map(|&c| {
            let (family, e) = c.rsplit_once("-e")?;
            (e.parse::<u8>().is_ok() && all.contains(&family)).then_some((family, c))
        })
        .collect()
}

/// The largest drop of Cb and Cr PSNR (dB, `[cb, cr]`, negative: lower) of `codec` against
/// `anchor` over the settings (levels) both have; `None` without a common setting.
pub fn chroma_drop(means: &[Mean], anchor: &str, codec: &str) -> Option<[f64; 2]> {
    let mut worst: Option<[f64; 2]> = None;
    for m in means.iter().filter(|m| m.codec == codec) {
        let Some(a) = means
            .iter()
            .find(|a| a.codec == anchor && a.setting == m.setting)
        else {
            continue;
        };
        let d = [
            m.psnr_ycbcr[1] - a.psnr_ycbcr[1],
            m.psnr_ycbcr[2] - a.psnr_ycbcr[2],
        ];
        worst = Some(match worst {
            None => d,
            Some(w) => [w[0].min(d[0]), w[1].min(d[1])],
        });
    }
    worst
}

/// The Markdown report.
pub fn markdown(means: &[Mean], ctx: &RunInfo) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Rate-distortion evaluation\n");
    let _ = writeln!(
        s,
        "Images: `{}` ({} evaluated). Device: {}. Backend: cpu. Wall time: {:.1} s.\n",
        ctx.images_dir, ctx.n_images, ctx.device, ctx.wall_s
    );
    let _ = writeln!(s, "Made by `{}`.\n", ctx.command);
    let _ = writeln!(
        s,
        "Metrics: PSNR over all RGB samples; SSIM as scikit-image's `structural_similarity` defaults \
         (7x7 uniform window, data_range 255, channel mean); MS-SSIM as `tf.image.ssim_multiscale` \
         (max_val 255, per channel mean); all are means over the images, except MS-SSIM (dB) = \
         -10 log10(1 - mean MS-SSIM). Y / Cb / Cr: PSNR of the BT.601 full-range planes (the \
         colour guard: a hue shift lowers Cb/Cr while MS-SSIM hardly moves). bpp = 8 bytes / (W H); N_compression = bytes / (3 W H). \
         Times are means per image, in seconds, single process.\n"
    );
    if !ctx.notes.is_empty() {
        let _ = writeln!(s, "## Notes\n");
        for n in &ctx.notes {
            let _ = writeln!(s, "- {}", n.replace('\n', " "));
        }
        let _ = writeln!(s);
    }
    if means.is_empty() {
        let _ = writeln!(s, "No result: nothing could be evaluated (see the notes).");
        return s;
    }
    let target = at_ssim_target(means, ctx.ssim_target);
    let _ = writeln!(
        s,
        "## Table 1: quality and compression at mean SSIM closest to {}\n",
        ctx.ssim_target
    );
    let _ = writeln!(
        s,
        "| codec | setting | SSIM | PSNR (dB) | N_compression | bpp |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|");
    for m in &target {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            m.codec,
            m.setting,
            fmt_num(m.ssim, 4),
            fmt_num(m.psnr, 2),
            fmt_num(m.n_compression, 5),
            fmt_num(m.bpp, 4)
        );
    }
    let _ = writeln!(
        s,
        "\n## Table 2: speed at mean SSIM closest to {}\n",
        ctx.ssim_target
    );
    let _ = writeln!(
        s,
        "| codec | setting | encode (s) | decode (s) | backend | device |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---|---|");
    for m in &target {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            m.codec,
            m.setting,
            fmt_num(m.encode_s, 4),
            fmt_num(m.decode_s, 4),
            m.backend,
            ctx.device
        );
    }
    let _ = writeln!(s, "\n## BD-rate against JPEG\n");
    let _ = writeln!(
        s,
        "Bjøntegaard delta rate (PCHIP, over the overlapping quality range); negative: fewer bits than JPEG at equal quality.\n"
    );
    let _ = writeln!(s, "| codec | BD-rate (PSNR) | BD-rate (MS-SSIM dB) |");
    let _ = writeln!(s, "|---|---:|---:|");
    let show = |r: Result<f64, String>| match r {
        Ok(v) => format!("{v:+.2}%"),
        Err(e) => format!("n/a ({e})"),
    };
    for c in codecs(means).into_iter().filter(|c| *c != "jpeg") {
        let _ = writeln!(
            s,
            "| {c} | {} | {} |",
            show(bd_rate_vs_jpeg(means, c, |m| m.psnr)),
            show(bd_rate_vs_jpeg(means, c, |m| m.msssim_db))
        );
    }
    let mut names: Vec<&str> = Vec::new();
    for p in &ctx.published {
        if !names.contains(&p.codec.as_str()) {
            names.push(&p.codec);
        }
    }
    for name in names {
        let _ = writeln!(
            s,
            "| {name} (published) | {} | {} |",
            show(bd_rate_published_vs_jpeg(means, &ctx.published, name, true)),
            show(bd_rate_published_vs_jpeg(
                means,
                &ctx.published,
                name,
                false
            ))
        );
    }
    let pairs = effort_pairs(means);
    if !pairs.is_empty() {
        let _ = writeln!(s, "\n## Encoder effort against effort 0\n");
        let _ = writeln!(
            s,
            "BD-rate of each effort codec against its family's effort-0 curve (negative: fewer bits at equal quality), and the largest drop of the Cb and Cr PSNR at an equal level (negative: lower than effort 0).\n"
        );
        let _ = writeln!(
            s,
            "| codec | BD-rate (PSNR) | BD-rate (MS-SSIM dB) | largest Cb / Cr change (dB) |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|");
        for (family, c) in pairs {
            let chroma = chroma_drop(means, family, c)
                .map_or("n/a".into(), |[cb, cr]| format!("{cb:+.2} / {cr:+.2}"));
            let _ = writeln!(
                s,
                "| {c} | {} | {} | {chroma} |",
                show(bd_rate_between(means, family, c, |m| m.psnr)),
                show(bd_rate_between(means, family, c, |m| m.msssim_db))
            );
        }
    }
    let _ = writeln!(s, "\n## Mean rate-distortion tables\n");
    for c in codecs(means) {
        let _ = writeln!(s, "### {c}\n");
        let _ = writeln!(
            s,
            "| setting | images | bpp | N_compression | PSNR (dB) | SSIM | MS-SSIM | MS-SSIM (dB) | Y (dB) | Cb (dB) | Cr (dB) | encode (s) | decode (s) |"
        );
        let _ = writeln!(
            s,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for m in means.iter().filter(|m| m.codec == c) {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                m.setting,
                m.n,
                fmt_num(m.bpp, 4),
                fmt_num(m.n_compression, 5),
                fmt_num(m.psnr, 3),
                fmt_num(m.ssim, 4),
                fmt_num(m.msssim, 5),
                fmt_num(m.msssim_db, 3),
                fmt_num(m.psnr_ycbcr[0], 2),
                fmt_num(m.psnr_ycbcr[1], 2),
                fmt_num(m.psnr_ycbcr[2], 2),
                fmt_num(m.encode_s, 4),
                fmt_num(m.decode_s, 4)
            );
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "## Plots\n");
    let _ = writeln!(
        s,
        "![bpp vs PSNR](rd_psnr.svg)\n\n![bpp vs MS-SSIM dB](rd_msssim.svg)\n"
    );
    let _ = writeln!(
        s,
        "PNG versions: `rd_psnr.png`, `rd_msssim.png`. Per-image values: `per_image.csv`; means: `means.csv`."
    );
    s
}

#[cfg(test)]
mod effort_tests {
    use super::*;

    fn mean(codec: &str, setting: &str, bpp: f64, psnr: f64, cb: f64) -> Mean {
        Mean {
            codec: codec.into(),
            setting: setting.into(),
            n: 1,
            bytes: 0.0,
            bpp,
            n_compression: 0.0,
            psnr,
            ssim: 0.9,
            msssim: 0.9,
            msssim_db: psnr / 2.0,
            psnr_ycbcr: [psnr, cb, cb + 1.0],
            encode_s: 0.0,
            decode_s: 0.0,
            backend: "cpu",
        }
    }

    /// An effort codec pairs with its family; the same quality at 10 % fewer bits is a BD-rate of
    /// about -10 %; the chroma change is the worst over the common levels.
    #[test]
    fn effort_codecs_are_compared_with_effort_0() {
        let mut means = Vec::new();
        for (l, (bpp, psnr)) in [(0.2, 28.0), (0.4, 31.0), (0.8, 34.0), (1.6, 37.0)]
            .into_iter()
            .enumerate()
        {
            let level = format!("{}", l + 1);
            means.push(mean("fam", &level, bpp, psnr, 40.0));
            means.push(mean(
                "fam-e2",
                &level,
                0.9 * bpp,
                psnr,
                40.0 - l as f64 * 0.1,
            ));
            means.push(mean("jpeg", &level, 2.0 * bpp, psnr, 40.0));
        }
        assert_eq!(effort_pairs(&means), vec![("fam", "fam-e2")]);
        let bd = bd_rate_between(&means, "fam", "fam-e2", |m| m.psnr).expect("bd-rate");
        assert!((bd + 10.0).abs() < 0.01, "{bd}");
        let [cb, cr] = chroma_drop(&means, "fam", "fam-e2").expect("common levels");
        assert!(
            (cb + 0.3).abs() < 1e-9 && (cr + 0.3).abs() < 1e-9,
            "{cb} {cr}"
        );
        // No family of that name: no pair.
        assert!(effort_pairs(&means[1..2]).is_empty());
    }
}
