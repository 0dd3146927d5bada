//! `--target_bpp`: tfci.py's binary search over a family's levels, or over the continuous rate
//! parameter where the family has one, keeping the result closest to the target (and, with
//! `--bpp_strict`, never above it).

use anyhow::{bail, Result};

/// At most this many compressions along a continuous axis: a bracket of `[1, 8]` reaches f32's
/// resolution in about 24 halvings, so this only bounds a search that could not end otherwise.
pub const MAX_CONTINUOUS_TRIES: usize = 40;

/// What the search moves along.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Axis {
    /// Levels `1..=count`; the search stops when no untried level lies between the bounds.
    Levels(u32),
    /// A rate parameter in `(lower, upper)`; the search stops when the bracket is at most
    /// `tolerance` wide (tfci.py's `--rd_parameter_tolerance`).
    Continuous {
        lower: f32,
        upper: f32,
        tolerance: f32,
    },
}

/// A point the search compressed at.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Point {
    Level(u32),
    Rd(f32),
}

/// The chosen result.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    pub point: Point,
    pub bytes: Vec<u8>,
    pub bpp: f64,
    /// Every point tried, in order, with its bpp.
    pub tried: Vec<(Point, f64)>,
}

/// Runs the search: `compress` codes the image at a point and returns the file bytes.
///
/// As in tfci.py, the bounds start outside the range (levels: `0` and `count + 1`; continuous:
/// the given bounds, never tried themselves) and move to the last point below or above the target.
pub fn search(
    axis: Axis,
    target_bpp: f64,
    strict: bool,
    pixels: usize,
    mut compress: impl FnMut(Point) -> Result<Vec<u8>>,
) -> Result<Found> {
    if !(target_bpp.is_finite() && target_bpp > 0.0) {
        bail!("--target_bpp must be a positive number, not {target_bpp}");
    }
    let (mut lower, mut upper) = match axis {
        Axis::Levels(count) => (0.0, f64::from(count) + 1.0),
        Axis::Continuous {
            lower,
            upper,
            tolerance,
        } => {
            if !(tolerance.is_finite() && tolerance > 0.0) {
                bail!("--rd_parameter_tolerance must be a positive number, not {tolerance}");
            }
            (f64::from(lower), f64::from(upper))
        }
    };
    let mut best: Option<Found> = None;
    let mut tried = Vec::new();
    loop {
        let point = match axis {
            Axis::Levels(_) => {
                if upper - lower < 2.0 {
                    break;
                }
                Point::Level(((upper + lower) / 2.0).floor() as u32)
            }
            Axis::Continuous { tolerance, .. } => {
                if upper - lower <= f64::from(tolerance) || tried.len() >= MAX_CONTINUOUS_TRIES {
                    break;
                }
                Point::Rd(((upper + lower) / 2.0) as f32)
            }
        };
        let at = match point {
            Point::Level(l) => f64::from(l),
            Point::Rd(r) => f64::from(r),
        };
        // Below f32's resolution the midpoint rounds onto a bound: the bracket cannot shrink any
        // more, whatever the tolerance asked for.
        if at <= lower || at >= upper {
            break;
        }
        let bytes = compress(point)?;
        let bpp = 8.0 * bytes.len() as f64 / pixels.max(1) as f64;
        tried.push((point, bpp));
        let admissible = bpp <= target_bpp || !strict;
        let better = best
            .as_ref()
            .is_none_or(|b| (bpp - target_bpp).abs() < (b.bpp - target_bpp).abs());
        if admissible && better {
            best = Some(Found {
                point,
                bytes,
                bpp,
                tried: Vec::new(),
            });
        }
        if bpp < target_bpp {
            lower = at;
        }
        if bpp > target_bpp {
            upper = at;
        }
        if bpp == target_bpp {
            break;
        }
    }
    match best {
        Some(mut found) => {
            found.tried = tried;
            Ok(found)
        }
        None => {
            let lowest = tried.iter().map(|t| t.1).fold(f64::INFINITY, f64::min);
            bail!(
                "cannot compress to at most {target_bpp} bpp (--bpp_strict): the lowest rate \
                 tried gives {lowest:.4} bpp"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file whose size grows with the point: `bytes = 100 * point^2`, 800 pixels, so
    /// `bpp = point^2`.
    fn fake(point: Point) -> Result<Vec<u8>> {
        let p = match point {
            Point::Level(l) => l as f64,
            Point::Rd(r) => r as f64,
        };
        Ok(vec![0; (100.0 * p * p).round() as usize])
    }

    #[test]
    fn levels_pick_the_closest() {
        for target in [0.5, 1.0, 3.9, 6.0, 20.0, 64.0, 100.0] {
            let found = search(Axis::Levels(8), target, false, 800, fake).expect("found");
            let best = (1..=8u32)
                .min_by(|a, b| {
                    let d = |l: u32| ((l * l) as f64 - target).abs();
                    d(*a).total_cmp(&d(*b))
                })
                .expect("levels");
            assert_eq!(found.point, Point::Level(best), "target {target}");
            // A binary search: at most ceil(log2(9)) compressions.
            assert!(found.tried.len() <= 4, "{:?}", found.tried);
        }
    }

    #[test]
    fn strict_never_exceeds() {
        for target in [1.0, 3.9, 6.0, 20.0, 63.9, 100.0] {
            let found = search(Axis::Levels(8), target, true, 800, fake).expect("found");
            assert!(found.bpp <= target, "target {target}: {}", found.bpp);
            let l = match found.point {
                Point::Level(l) => l,
                Point::Rd(_) => unreachable!(),
            };
            assert!(((l + 1) * (l + 1)) as f64 > target || l == 8);
        }
        let err = search(Axis::Levels(8), 0.5, true, 800, fake).expect_err("below level 1");
        assert!(
            err.to_string().contains("lowest rate tried gives 1.0000"),
            "{err}"
        );
    }

    #[test]
    fn continuous_within_resolution() {
        let tolerance = 1.0 / 16.0;
        let axis = Axis::Continuous {
            lower: 1.0,
            upper: 8.0,
            tolerance,
        };
        for target in [2.0, 10.0, 17.3, 40.0] {
            let found = search(axis, target, false, 800, fake).expect("found");
            let r = match found.point {
                Point::Rd(r) => f64::from(r),
                Point::Level(_) => unreachable!(),
            };
            // bpp = r^2: the search's resolution in r is the tolerance, so in bpp it is the slope
            // times the tolerance.
            let resolution = 2.0 * (target.sqrt() + tolerance as f64) * tolerance as f64;
            assert!(
                (found.bpp - target).abs() <= resolution,
                "target {target}: r {r} bpp {}",
                found.bpp
            );
            let strict = search(axis, target, true, 800, fake).expect("strict");
            assert!(strict.bpp <= target);
            assert!(target - strict.bpp <= resolution);
        }
    }

    /// A tolerance below f32's resolution (`--rd_parameter_tolerance 1e-9`) used to loop forever:
    /// the f32 midpoint stopped moving. It ends once the bracket cannot shrink.
    #[test]
    fn tiny_tolerance_ends() {
        let axis = Axis::Continuous {
            lower: 1.0,
            upper: 8.0,
            tolerance: 1e-9,
        };
        // A file size that is a step function of r, as real files are (whole bytes): it never
        // equals the target exactly.
        let stepped = |p: Point| fake(p).map(|b| vec![0; b.len() / 7 * 7]);
        for target in [2.0, 17.3] {
            let found = search(axis, target, false, 800, stepped).expect("found");
            assert!(found.tried.len() <= 30, "{}", found.tried.len());
        }
        const { assert!(MAX_CONTINUOUS_TRIES >= 30) };
    }

    #[test]
    fn rejects_bad_targets() {
        assert!(search(Axis::Levels(8), -1.0, false, 800, fake).is_err());
        assert!(search(Axis::Levels(8), f64::NAN, false, 800, fake).is_err());
    }
}
