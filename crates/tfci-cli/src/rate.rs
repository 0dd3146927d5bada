//! Where on a family's rate axis an image is coded: a model name with a level, a family with a
//! rate parameter, or a family with a `--target_bpp` search. One place for the rules, so that
//! `tfci-enc` and the Python package refuse and accept the same requests with the same words.

use anyhow::{bail, Result};
use codec_core::codec::{Objective, SearchReport};
use codec_core::model::{FamilyEntry, Registry};
use codec_core::{Codec, Limits, RgbImage};

use crate::search::{Axis, Found, Point};

/// How an image is coded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    At(Point),
    Search {
        axis: Axis,
        target: f64,
        strict: bool,
    },
}

/// What a caller asks for besides the model name.
#[derive(Clone, Copy, Debug, Default)]
pub struct Request {
    pub target_bpp: Option<f64>,
    pub bpp_strict: bool,
    pub rd_parameter: Option<f32>,
    /// Bracket width at which a search over the rate parameter stops (tfci.py's default 0.0625).
    pub rd_parameter_tolerance: f32,
}

/// Default of `--rd_parameter_tolerance`, as in tfci.py.
pub const RD_PARAMETER_TOLERANCE: f32 = 0.0625;

/// A model name: `FAMILY-LEVEL`, or the family alone (level `None`) where a search or a rate
/// parameter picks the point.
pub fn resolve<'r>(registry: &'r Registry, name: &str) -> Result<(&'r FamilyEntry, Option<u32>)> {
    if let Some(entry) = registry.family(name) {
        return Ok((entry, None));
    }
    let (entry, level) = registry.resolve(name)?;
    Ok((entry, Some(level)))
}

/// Checks the model name against the request: a level alone, a family with a rate parameter,
/// or a family with a search (`--rd_parameter` is then ignored, as in tfci.py).
pub fn mode(codec: &Codec, level: Option<u32>, req: &Request) -> Result<Mode> {
    let family = &codec.family().name;
    let levels = codec.family().levels;
    if let Some(target) = req.target_bpp {
        if level.is_some() {
            bail!("--target_bpp searches a family's levels: give the model as {family}, without the level");
        }
        let axis = if codec.has_rd_parameter() {
            Axis::Continuous {
                lower: 1.0,
                upper: levels as f32,
                tolerance: req.rd_parameter_tolerance,
            }
        } else {
            Axis::Levels(levels)
        };
        return Ok(Mode::Search {
            axis,
            target,
            strict: req.bpp_strict,
        });
    }
    if let Some(rd) = req.rd_parameter {
        if level.is_some() {
            bail!("--rd_parameter picks the point between levels: give the model as {family}, without the level");
        }
        if !codec.has_rd_parameter() {
            return Err(codec_core::Error::NoRdParameter {
                family: family.clone(),
            }
            .into());
        }
        if !(rd.is_finite() && (1.0..=levels as f32).contains(&rd)) {
            return Err(codec_core::Error::RdParameter {
                family: family.clone(),
                rd,
                levels,
            }
            .into());
        }
        return Ok(Mode::At(point_of(rd)));
    }
    match level {
        Some(l) => Ok(Mode::At(Point::Level(l))),
        None => bail!(
            "{family} is a family: name one of its models ({family}-1 to {family}-{levels}), or \
             pass --target_bpp or --rd_parameter"
        ),
    }
}

/// An integral rate parameter is that level (the file then names the level, as any other).
fn point_of(rd: f32) -> Point {
    if rd.fract() == 0.0 {
        Point::Level(rd as u32)
    } else {
        Point::Rd(rd)
    }
}

/// Codes `image` at one point.
pub fn compress_at(
    codec: &Codec,
    image: &RgbImage,
    point: Point,
    limits: &Limits,
) -> Result<Vec<u8>> {
    Ok(match point {
        Point::Level(l) => codec.compress(image, l, limits)?,
        Point::Rd(r) => match point_of(r) {
            Point::Level(l) => codec.compress(image, l, limits)?,
            Point::Rd(r) => codec.compress_rd(image, r, limits)?,
        },
    })
}

/// The encoder's effort (`-e`, 0 = today's encoder), the manifest entry whose training
/// objective a search optimises, and what hears of each iteration (`(done, total)`: a progress bar).
#[derive(Clone, Copy)]
pub struct Effort<'a> {
    pub effort: u8,
    pub entry: &'a FamilyEntry,
    pub progress: &'a (dyn Fn(usize, usize) + Sync),
}

impl std::fmt::Debug for Effort<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Effort")
            .field("effort", &self.effort)
            .field("family", &self.entry.family)
            .finish_non_exhaustive()
    }
}

/// Codes `image` at one point with `effort`: effort 0 is [`compress_at`]; above, the latent search
/// of `Codec::search` runs between the analysis and the entropy coding, and its report comes back.
pub fn compress_at_effort(
    codec: &Codec,
    image: &RgbImage,
    point: Point,
    limits: &Limits,
    effort: Effort<'_>,
) -> Result<(Vec<u8>, Option<SearchReport>)> {
    if effort.effort == 0 {
        return Ok((compress_at(codec, image, point, limits)?, None));
    }
    let (mut latents, objective) = match point_of_point(point) {
        Point::Level(l) => (
            codec.analyze(image, l, limits)?,
            Objective::of(effort.entry, l, None)?,
        ),
        Point::Rd(r) => (
            codec.analyze_rd(image, r, limits)?,
            Objective::of(effort.entry, 0, Some(r))?,
        ),
    };
    let report = codec.search_with_progress(
        image,
        &mut latents,
        effort.effort,
        &objective,
        limits,
        effort.progress,
    )?;
    Ok((codec.encode(&latents)?, report))
}

/// An integral rate parameter as its level (what [`compress_at`] codes).
fn point_of_point(point: Point) -> Point {
    match point {
        Point::Rd(r) => point_of(r),
        p => p,
    }
}

/// Codes `image` as `mode` says: the file, the point it was coded at, and (for a search) every
/// point tried with its bpp.
pub fn compress(codec: &Codec, image: &RgbImage, mode: Mode, limits: &Limits) -> Result<Found> {
    code_as(mode, image, |p| compress_at(codec, image, p, limits))
}

/// The file of `mode`: `code` at its point, or the `--target_bpp` search over `code`.
fn code_as(
    mode: Mode,
    image: &RgbImage,
    mut code: impl FnMut(Point) -> Result<Vec<u8>>,
) -> Result<Found> {
    let pixels = image.width * image.height;
    match mode {
        Mode::At(point) => {
            let bytes = code(point)?;
            Ok(Found {
                point,
                bpp: 8.0 * bytes.len() as f64 / pixels as f64,
                bytes,
                tried: Vec::new(),
            })
        }
        Mode::Search {
            axis,
            target,
            strict,
        } => crate::search(axis, target, strict, pixels, code),
    }
}

/// [`compress`] with an effort: every point coded (each one a `--target_bpp` search tries too)
/// runs the latent search, so the bpp compared with the target is the searched file's. Returns
/// the reports of the searches, in order, with their points.
pub fn compress_with_effort(
    codec: &Codec,
    image: &RgbImage,
    mode: Mode,
    limits: &Limits,
    effort: Effort<'_>,
) -> Result<(Found, Vec<(Point, SearchReport)>)> {
    let mut reports = Vec::new();
    let found = code_as(mode, image, |p: Point| -> Result<Vec<u8>> {
        let (bytes, report) = compress_at_effort(codec, image, p, limits, effort)?;
        reports.extend(report.map(|r| (p, r)));
        Ok(bytes)
    })?;
    Ok((found, reports))
}

/// `level 3` or `rd_parameter 4.5`.
pub fn describe(point: Point) -> String {
    match point {
        Point::Level(l) => format!("level {l}"),
        Point::Rd(r) => format!("rd_parameter {r}"),
    }
}
