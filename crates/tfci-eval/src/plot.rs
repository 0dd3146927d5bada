//! Rate-distortion plots (PNG and SVG) with plotters. Text needs a TrueType font: the first of
//! `$TFCI_EVAL_FONT` and a few usual system locations; without one the plots are drawn unlabelled.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::{codecs, Mean, PublishedPoint};

/// The quality axis of a plot.
#[derive(Debug, Clone, Copy)]
pub enum Metric {
    Psnr,
    MsssimDb,
}

impl Metric {
    fn label(self) -> &'static str {
        match self {
            Self::Psnr => "PSNR (dB)",
            Self::MsssimDb => "MS-SSIM (dB)",
        }
    }
    fn of(self, m: &Mean) -> f64 {
        match self {
            Self::Psnr => m.psnr,
            Self::MsssimDb => m.msssim_db,
        }
    }
    fn of_published(self, p: &PublishedPoint) -> Option<f64> {
        match self {
            Self::Psnr => p.psnr,
            Self::MsssimDb => p.msssim_db,
        }
    }
}

const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
    "/Library/Fonts/Arial.ttf",
];

/// Registers a font once; `true` when text can be drawn.
fn font_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let env = std::env::var("TFCI_EVAL_FONT").ok();
        let candidates = env
            .iter()
            .map(String::as_str)
            .chain(FONT_CANDIDATES.iter().copied());
        for path in candidates {
            if let Ok(bytes) = std::fs::read(path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

/// Whether the plots have text (a font was found).
pub fn has_text() -> bool {
    font_ready()
}

/// Draws bpp against `metric` for every codec (and the published curves) to `path` (`.png` or `.svg`).
pub fn draw(
    path: &Path,
    metric: Metric,
    means: &[Mean],
    published: &[PublishedPoint],
) -> Result<()> {
    let size = (900, 600);
    let text = font_ready();
    if path.extension().is_some_and(|e| e == "svg") {
        let root = SVGBackend::new(path, size).into_drawing_area();
        draw_on(&root, metric, means, published, text)?;
        root.present().map_err(|e| anyhow!("{e}"))
    } else {
        let root = BitMapBackend::new(path, size).into_drawing_area();
        draw_on(&root, metric, means, published, text)?;
        root.present().map_err(|e| anyhow!("{e}"))
    }
}

fn draw_on<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    metric: Metric,
    means: &[Mean],
    published: &[PublishedPoint],
    text: bool,
) -> Result<()> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("{e:?}");
    root.fill(&WHITE).map_err(err)?;
    // The x range is our curves' (published curves are cut to it), or the published one alone.
    let ours_max = means
        .iter()
        .map(|m| m.bpp)
        .filter(|x| x.is_finite())
        .fold(0.0f64, f64::max);
    let x_limit = if ours_max > 0.0 {
        ours_max * 1.15
    } else {
        f64::INFINITY
    };
    let published: Vec<&PublishedPoint> = published.iter().filter(|p| p.bpp <= x_limit).collect();
    let pts: Vec<(f64, f64)> = means
        .iter()
        .map(|m| (m.bpp, metric.of(m)))
        .chain(
            published
                .iter()
                .filter_map(|p| metric.of_published(p).map(|q| (p.bpp, q))),
        )
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let (mut x_max, mut y_min, mut y_max) = (0.0f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in &pts {
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    if pts.is_empty() {
        (x_max, y_min, y_max) = (1.0, 0.0, 1.0);
    }
    let pad = ((y_max - y_min) * 0.05).max(0.5);
    let mut builder = ChartBuilder::on(root);
    builder.margin(15);
    if text {
        builder
            .caption(format!("bpp vs {}", metric.label()), ("sans-serif", 24))
            .x_label_area_size(45)
            .y_label_area_size(60);
    }
    let mut chart = builder
        .build_cartesian_2d(0.0..x_max * 1.05 + 1e-9, (y_min - pad)..(y_max + pad))
        .map_err(err)?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("bits per pixel").y_desc(metric.label());
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(err)?;
    let mut idx = 0usize;
    for codec in codecs(means) {
        let color = Palette99::pick(idx).to_rgba();
        idx += 1;
        let line: Vec<(f64, f64)> = means
            .iter()
            .filter(|m| m.codec == codec)
            .map(|m| (m.bpp, metric.of(m)))
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        let series = chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
            .map_err(err)?;
        if text {
            series.label(codec.to_string()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
        chart
            .draw_series(line.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(err)?;
    }
    let mut names: Vec<&str> = Vec::new();
    for p in &published {
        if !names.contains(&p.codec.as_str()) {
            names.push(&p.codec);
        }
    }
    for name in names {
        let color = Palette99::pick(idx).mix(0.6);
        idx += 1;
        let mut line: Vec<(f64, f64)> = published
            .iter()
            .filter(|p| p.codec == name)
            .filter_map(|p| metric.of_published(p).map(|q| (p.bpp, q)))
            .collect();
        if line.is_empty() {
            continue;
        }
        line.sort_by(|a, b| a.0.total_cmp(&b.0));
        let series = chart
            .draw_series(DashedLineSeries::new(line, 6, 4, color.stroke_width(2)))
            .map_err(err)?;
        if text {
            let label = format!("{name} (published)");
            series.label(label).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
    }
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}
