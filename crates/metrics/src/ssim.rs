//! SSIM as scikit-image's `structural_similarity` defaults (see the crate docs for the formula).

use rayon::prelude::*;

use crate::{check_pair, Image, MetricsError};

/// Side of scikit-image's default uniform window.
pub const SSIM_WINDOW: usize = 7;

/// Samples in one window.
const N: i64 = (SSIM_WINDOW * SSIM_WINDOW) as i64;
const C1: f64 = (0.01 * 255.0) * (0.01 * 255.0);
const C2: f64 = (0.03 * 255.0) * (0.03 * 255.0);

/// SSIM of two RGB images: the mean over channels of the mean of each channel's SSIM map, the map
/// cropped by 3 pixels on every border (scikit-image `structural_similarity(a, b, channel_axis=-1,
/// data_range=255)`). Identical images give exactly 1; the value is symmetric in `a` and `b`.
///
/// Errors: [`MetricsError::DimensionMismatch`], [`MetricsError::Empty`], and
/// [`MetricsError::TooSmall`] for a side below 7 pixels.
pub fn ssim(a: Image<'_>, b: Image<'_>) -> Result<f64, MetricsError> {
    let (w, h) = check_pair(&a, &b)?;
    if w < SSIM_WINDOW || h < SSIM_WINDOW {
        return Err(MetricsError::TooSmall {
            metric: "SSIM",
            width: w,
            height: h,
            min: SSIM_WINDOW,
        });
    }
    let (xa, xb) = (a.data(), b.data());
    let (ow, oh) = (w - SSIM_WINDOW + 1, h - SSIM_WINDOW + 1);
    // One entry per row of the cropped map (the windows wholly inside the image), in row order.
    let rows: Vec<[f64; 3]> = (0..oh)
        .into_par_iter()
        .map_init(
            || ColumnSums::new(w * 3),
            |sums, r| ssim_row(xa, xb, w, r, sums),
        )
        .collect();
    let mut total = [0.0f64; 3];
    for row in &rows {
        for (t, v) in total.iter_mut().zip(row) {
            *t += v;
        }
    }
    let n = (ow * oh) as f64;
    Ok(total.iter().map(|t| t / n).sum::<f64>() / 3.0)
}

/// Per-sample sums over `SSIM_WINDOW` consecutive rows.
struct ColumnSums {
    x: Vec<u32>,
    y: Vec<u32>,
    xx: Vec<u32>,
    yy: Vec<u32>,
    xy: Vec<u32>,
}

impl ColumnSums {
    fn new(len: usize) -> Self {
        Self {
            x: vec![0; len],
            y: vec![0; len],
            xx: vec![0; len],
            yy: vec![0; len],
            xy: vec![0; len],
        }
    }
}

/// Sums of the SSIM map over one output row (windows with top row `r`), per channel.
fn ssim_row(a: &[u8], b: &[u8], w: usize, r: usize, s: &mut ColumnSums) -> [f64; 3] {
    let stride = w * 3;
    for v in [&mut s.x, &mut s.y, &mut s.xx, &mut s.yy, &mut s.xy] {
        v.fill(0);
    }
    for k in 0..SSIM_WINDOW {
        let ra = &a[(r + k) * stride..(r + k + 1) * stride];
        let rb = &b[(r + k) * stride..(r + k + 1) * stride];
        for i in 0..stride {
            let (x, y) = (u32::from(ra[i]), u32::from(rb[i]));
            s.x[i] += x;
            s.y[i] += y;
            s.xx[i] += x * x;
            s.yy[i] += y * y;
            s.xy[i] += x * y;
        }
    }
    let mut out = [0.0f64; 3];
    for (c, o) in out.iter_mut().enumerate() {
        // Window sums over columns j..j+7 of channel c, slid along the row.
        let col = |v: &[u32], j: usize| i64::from(v[j * 3 + c]);
        let mut win = [0i64; 5];
        for j in 0..SSIM_WINDOW {
            win[0] += col(&s.x, j);
            win[1] += col(&s.y, j);
            win[2] += col(&s.xx, j);
            win[3] += col(&s.yy, j);
            win[4] += col(&s.xy, j);
        }
        let mut acc = 0.0f64;
        let last = w - SSIM_WINDOW;
        for j in 0..=last {
            acc += ssim_of_sums(win);
            if j < last {
                let (old, new) = (j, j + SSIM_WINDOW);
                win[0] += col(&s.x, new) - col(&s.x, old);
                win[1] += col(&s.y, new) - col(&s.y, old);
                win[2] += col(&s.xx, new) - col(&s.xx, old);
                win[3] += col(&s.yy, new) - col(&s.yy, old);
                win[4] += col(&s.xy, new) - col(&s.xy, old);
            }
        }
        *o = acc;
    }
    out
}

/// SSIM of one window from its exact sums `[Sx, Sy, Sxx, Syy, Sxy]`.
#[inline]
fn ssim_of_sums([sx, sy, sxx, syy, sxy]: [i64; 5]) -> f64 {
    let nn = (N * N) as f64;
    let cov_den = (N * (N - 1)) as f64;
    let a1 = (2 * sx * sy) as f64 / nn + C1;
    let b1 = (sx * sx + sy * sy) as f64 / nn + C1;
    let vx = (N * sxx - sx * sx) as f64 / cov_den;
    let vy = (N * syy - sy * sy) as f64 / cov_den;
    let vxy = (N * sxy - sx * sy) as f64 / cov_den;
    let a2 = 2.0 * vxy + C2;
    let b2 = vx + vy + C2;
    (a1 * a2) / (b1 * b2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(w: usize, h: usize, seed: u32) -> Vec<u8> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..w * h * 3)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                ((i % 251) as u32 / 2 + (s >> 26)) as u8
            })
            .collect()
    }

    /// Direct transcription of the formula with population moments in f64, for a cross-check.
    fn naive(a: &[u8], b: &[u8], w: usize, h: usize) -> f64 {
        let mut chans = [0.0; 3];
        for (c, ch) in chans.iter_mut().enumerate() {
            let mut acc = 0.0;
            for r in 0..=h - 7 {
                for j in 0..=w - 7 {
                    let (mut mx, mut my, mut mxx, mut myy, mut mxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
                    for dr in 0..7 {
                        for dj in 0..7 {
                            let i = ((r + dr) * w + j + dj) * 3 + c;
                            let (x, y) = (f64::from(a[i]), f64::from(b[i]));
                            mx += x / 49.0;
                            my += y / 49.0;
                            mxx += x * x / 49.0;
                            myy += y * y / 49.0;
                            mxy += x * y / 49.0;
                        }
                    }
                    let k = 49.0 / 48.0;
                    let (vx, vy, vxy) = (
                        k * (mxx - mx * mx),
                        k * (myy - my * my),
                        k * (mxy - mx * my),
                    );
                    acc += (2.0 * mx * my + C1) * (2.0 * vxy + C2)
                        / ((mx * mx + my * my + C1) * (vx + vy + C2));
                }
            }
            *ch = acc / ((w - 6) * (h - 6)) as f64;
        }
        chans.iter().sum::<f64>() / 3.0
    }

    #[test]
    fn matches_naive_formula() {
        for (w, h) in [(7, 7), (9, 13), (20, 8)] {
            let a = pattern(w, h, 1);
            let b = pattern(w, h, 2);
            let got = ssim(
                Image::new(&a, w, h).expect("a"),
                Image::new(&b, w, h).expect("b"),
            )
            .expect("ssim");
            let want = naive(&a, &b, w, h);
            assert!((got - want).abs() < 1e-12, "{w}x{h}: {got} vs {want}");
        }
    }

    #[test]
    fn identity_symmetry_and_errors() {
        let (w, h) = (31, 17);
        let a = pattern(w, h, 3);
        let b = pattern(w, h, 4);
        let ia = Image::new(&a, w, h).expect("a");
        let ib = Image::new(&b, w, h).expect("b");
        assert_eq!(ssim(ia, ia), Ok(1.0));
        let ab = ssim(ia, ib).expect("ab");
        let ba = ssim(ib, ia).expect("ba");
        assert_eq!(ab, ba);
        assert!(ab < 1.0);
        let small = vec![0u8; 6 * 10 * 3];
        let is = Image::new(&small, 6, 10).expect("small");
        assert_eq!(
            ssim(is, is),
            Err(MetricsError::TooSmall {
                metric: "SSIM",
                width: 6,
                height: 10,
                min: 7
            })
        );
        let other = vec![0u8; 10 * 6 * 3];
        let io = Image::new(&other, 10, 6).expect("other");
        assert!(matches!(
            ssim(is, io),
            Err(MetricsError::DimensionMismatch { .. })
        ));
    }
}
