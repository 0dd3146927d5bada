//! MS-SSIM as `tf.image.ssim_multiscale` (see the crate docs for the algorithm).

use rayon::prelude::*;

use crate::{check_pair, Image, MetricsError};

/// TF's default power factors, finest scale first.
pub const MS_SSIM_WEIGHTS: [f64; 5] = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333];

/// Smallest width and height TF accepts: after four `ceil(n / 2)` poolings the image must still be
/// at least as large as the 11x11 filter.
pub const MS_SSIM_MIN_SIDE: usize = 161;

const FILTER: usize = 11;
const SIGMA: f64 = 1.5;
const C1: f64 = (0.01 * 255.0) * (0.01 * 255.0);
const C2: f64 = (0.03 * 255.0) * (0.03 * 255.0);

/// MS-SSIM of two RGB images (`tf.image.ssim_multiscale(a, b, max_val=255)` with its defaults),
/// computed per channel and averaged over the channels. Identical images give exactly 1; the value is
/// symmetric in `a` and `b`.
///
/// Errors: [`MetricsError::DimensionMismatch`], [`MetricsError::Empty`], and
/// [`MetricsError::TooSmall`] for a side below [`MS_SSIM_MIN_SIDE`] (TF fails on those too).
pub fn ms_ssim(a: Image<'_>, b: Image<'_>) -> Result<f64, MetricsError> {
    let (w, h) = check_pair(&a, &b)?;
    if w < MS_SSIM_MIN_SIDE || h < MS_SSIM_MIN_SIDE {
        return Err(MetricsError::TooSmall {
            metric: "MS-SSIM",
            width: w,
            height: h,
            min: MS_SSIM_MIN_SIDE,
        });
    }
    let g = gaussian_kernel();
    let mut total = 0.0;
    for c in 0..3 {
        let mut x = Plane::channel(a.data(), w, h, c);
        let mut y = Plane::channel(b.data(), w, h, c);
        let mut product = 1.0f64;
        for (s, weight) in MS_SSIM_WEIGHTS.iter().enumerate() {
            if s > 0 {
                x = x.pool2();
                y = y.pool2();
            }
            let (ssim_s, cs_s) = ssim_and_cs(&x, &y, &g);
            let v = if s + 1 < MS_SSIM_WEIGHTS.len() {
                cs_s
            } else {
                ssim_s
            };
            product *= v.max(0.0).powf(*weight);
        }
        total += product;
    }
    Ok(total / 3.0)
}

/// MS-SSIM in dB as tensorflow-compression reports it: `-10 log10(1 - v)` (`+inf` for `v = 1`).
pub fn msssim_db(v: f64) -> f64 {
    -10.0 * (1.0 - v).log10()
}

/// The normalised 1-D Gaussian whose outer product is TF's `_fspecial_gauss(11, 1.5)`.
fn gaussian_kernel() -> [f64; FILTER] {
    let mut g = [0.0; FILTER];
    let centre = (FILTER - 1) as f64 / 2.0;
    for (i, v) in g.iter_mut().enumerate() {
        let d = i as f64 - centre;
        *v = (-d * d / (2.0 * SIGMA * SIGMA)).exp();
    }
    let sum: f64 = g.iter().sum();
    g.iter_mut().for_each(|v| *v /= sum);
    g
}

/// One channel as a row-major `f64` plane.
#[derive(Debug)]
struct Plane {
    w: usize,
    h: usize,
    v: Vec<f64>,
}

impl Plane {
    fn channel(rgb: &[u8], w: usize, h: usize, c: usize) -> Self {
        Self {
            w,
            h,
            v: rgb
                .iter()
                .skip(c)
                .step_by(3)
                .map(|&x| f64::from(x))
                .collect(),
        }
    }

    /// 2x2 average pooling; an odd side is padded by repeating its last row/column (TF's SYMMETRIC
    /// pad by `size % 2` followed by VALID pooling).
    fn pool2(&self) -> Self {
        let (w2, h2) = (self.w.div_ceil(2), self.h.div_ceil(2));
        let mut v = Vec::with_capacity(w2 * h2);
        for i in 0..h2 {
            let r0 = &self.v[2 * i * self.w..][..self.w];
            let r1 = &self.v[(2 * i + 1).min(self.h - 1) * self.w..][..self.w];
            for j in 0..w2 {
                let (c0, c1) = (2 * j, (2 * j + 1).min(self.w - 1));
                v.push((r0[c0] + r0[c1] + r1[c0] + r1[c1]) * 0.25);
            }
        }
        Self { w: w2, h: h2, v }
    }
}

/// Mean of `l * cs` and mean of `cs` over the VALID-filtered maps of one scale.
fn ssim_and_cs(x: &Plane, y: &Plane, g: &[f64; FILTER]) -> (f64, f64) {
    let (w, h) = (x.w, x.h);
    let (ow, oh) = (w - FILTER + 1, h - FILTER + 1);
    // Horizontal pass: for every input row, 4 filtered sub-rows of `ow`: x, y, x*y, x^2 + y^2.
    let mut hor = vec![0.0f64; h * 4 * ow];
    hor.par_chunks_mut(4 * ow).enumerate().for_each_init(
        || (vec![0.0f64; w], vec![0.0f64; w]),
        |(xy, ss), (i, out)| {
            let xr = &x.v[i * w..][..w];
            let yr = &y.v[i * w..][..w];
            for j in 0..w {
                xy[j] = xr[j] * yr[j];
                ss[j] = xr[j] * xr[j] + yr[j] * yr[j];
            }
            let (ox, rest) = out.split_at_mut(ow);
            let (oy, rest) = rest.split_at_mut(ow);
            let (oxy, oss) = rest.split_at_mut(ow);
            filter_row(xr, g, ox);
            filter_row(yr, g, oy);
            filter_row(xy, g, oxy);
            filter_row(ss, g, oss);
        },
    );
    // Vertical pass and the per-pixel terms, one output row at a time, summed in row order.
    let rows: Vec<(f64, f64)> = (0..oh)
        .into_par_iter()
        .map_init(
            || vec![0.0f64; 4 * ow],
            |acc, r| {
                acc.fill(0.0);
                for (k, gk) in g.iter().enumerate() {
                    let src = &hor[(r + k) * 4 * ow..][..4 * ow];
                    for (a, s) in acc.iter_mut().zip(src) {
                        *a += gk * s;
                    }
                }
                let (mx, rest) = acc.split_at(ow);
                let (my, rest) = rest.split_at(ow);
                let (mxy, mss) = rest.split_at(ow);
                let (mut sum_ssim, mut sum_cs) = (0.0f64, 0.0f64);
                for j in 0..ow {
                    let num0 = 2.0 * mx[j] * my[j];
                    let den0 = mx[j] * mx[j] + my[j] * my[j];
                    let lum = (num0 + C1) / (den0 + C1);
                    let cs = (2.0 * mxy[j] - num0 + C2) / (mss[j] - den0 + C2);
                    sum_ssim += lum * cs;
                    sum_cs += cs;
                }
                (sum_ssim, sum_cs)
            },
        )
        .collect();
    let (mut s, mut c) = (0.0f64, 0.0f64);
    for (rs, rc) in rows {
        s += rs;
        c += rc;
    }
    let n = (ow * oh) as f64;
    (s / n, c / n)
}

/// VALID 1-D filtering of `src` with `g` into `out` (`out.len() == src.len() - g.len() + 1`).
#[inline]
fn filter_row(src: &[f64], g: &[f64; FILTER], out: &mut [f64]) {
    out.fill(0.0);
    for (k, gk) in g.iter().enumerate() {
        for (o, s) in out.iter_mut().zip(&src[k..]) {
            *o += gk * s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_is_normalised_and_symmetric() {
        let g = gaussian_kernel();
        assert!((g.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        for i in 0..FILTER {
            assert_eq!(g[i], g[FILTER - 1 - i]);
        }
    }

    #[test]
    fn pooling_repeats_the_last_row_and_column() {
        let p = Plane {
            w: 3,
            h: 3,
            v: (1..=9).map(f64::from).collect(),
        };
        let q = p.pool2();
        assert_eq!((q.w, q.h), (2, 2));
        assert_eq!(q.v, vec![3.0, 4.5, 7.5, 9.0]);
    }

    #[test]
    fn db_scale() {
        assert!((msssim_db(0.9) - 10.0).abs() < 1e-12);
        assert_eq!(msssim_db(1.0), f64::INFINITY);
    }

    #[test]
    fn minimum_side() {
        // ceil(n/2) four times must stay >= 11.
        let fits = |n: usize| (0..4).fold(n, |m, _| m.div_ceil(2)) >= FILTER;
        assert!(fits(MS_SSIM_MIN_SIDE) && !fits(MS_SSIM_MIN_SIDE - 1));
        let buf = vec![7u8; 160 * 200 * 3];
        let img = Image::new(&buf, 160, 200).expect("fits");
        assert_eq!(
            ms_ssim(img, img),
            Err(MetricsError::TooSmall {
                metric: "MS-SSIM",
                width: 160,
                height: 200,
                min: 161
            })
        );
    }
}
