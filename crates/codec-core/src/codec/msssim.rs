//! MS-SSIM exactly as the MS-SSIM families were trained with it, and its gradient, for the encoder
//! search (`effort.rs`): the search must optimise the training objective, not another metric.
//!
//! The definition is pytorch_msssim 1.0.0's `ms_ssim(x_hat, x, data_range=1)`: per channel, an
//! 11-tap Gaussian (sigma 1.5, normalised) applied separably as a *valid* convolution (first along
//! the height, then the width; skipped along a side shorter than 11, as pytorch_msssim does with a
//! warning), `K1 = 0.01`, `K2 = 0.03`; at each of 5 scales the mean of the contrast-structure map
//! `cs` (the last scale: of the SSIM map), `relu`, raised to the weights
//! `[0.0448, 0.2856, 0.3001, 0.2363, 0.1333]` and multiplied; between scales 2x2 average pooling
//! with padding `side % 2` that counts the padded zeros (`avg_pool2d`'s default); the mean over
//! channels. (`metrics` has the TensorFlow definition for reports; this is the training one.)
//!
//! Arithmetic is f64; the gradient is the exact adjoint of those steps (the filter's adjoint is
//! the zero-padded "full" convolution with the same symmetric taps, the pooling's spreads a
//! quarter to each pixel of its window).

use rayon::prelude::*;

use crate::tensor::Tensor;

/// pytorch_msssim's scale weights.
const WEIGHTS: [f64; 5] = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333];
const WIN: usize = 11;
const C1: f64 = 0.01 * 0.01;
const C2: f64 = 0.03 * 0.03;

/// The normalised Gaussian window exactly as pytorch_msssim holds it: `_fspecial_gauss_1d(11, 1.5)`
/// is computed in f32 (printed from the training venv), so its taps sum to 1 only within f32
/// rounding; the variances (`G(x²) - G(x)²`) amplify that enough to move `equals_pytorch_msssim`'s
/// value by 3e-6 with an f64 window, hence the literal taps.
const TAPS: [f32; WIN] = [
    0.001_028_380_4,
    0.007_598_758,
    0.036_000_773,
    0.109_360_69,
    0.213_005_53,
    0.266_011_71,
    0.213_005_53,
    0.109_360_69,
    0.036_000_773,
    0.007_598_758,
    0.001_028_380_4,
];

fn window() -> [f64; WIN] {
    TAPS.map(f64::from)
}

/// A plane of `h x w` f64 values, row-major.
#[derive(Clone, Debug)]
struct Plane {
    h: usize,
    w: usize,
    v: Vec<f64>,
}

impl Plane {
    fn zeros(h: usize, w: usize) -> Plane {
        Plane {
            h,
            w,
            v: vec![0.0; h * w],
        }
    }
}

/// Columns per register block of the filters: every output keeps its sum in a register across
/// all taps instead of a pass over the row per tap.
const B: usize = 16;

/// `dst[x] = sum over taps t (ascending, from zero) of g[t] * src[x + t]` (the valid width pass).
///
/// # Safety
/// None; `unsafe` only so that the AVX2 build can share the body.
#[inline(always)]
unsafe fn valid_row(dst: &mut [f64], src: &[f64], g: &[f64; WIN]) {
    let n = dst.len();
    let mut x = 0;
    while x + B <= n {
        let mut acc = [0.0f64; B];
        for (t, &gt) in g.iter().enumerate() {
            let s: &[f64; B] = src[x + t..x + t + B].try_into().expect("B values");
            for l in 0..B {
                acc[l] += gt * s[l];
            }
        }
        dst[x..x + B].copy_from_slice(&acc);
        x += B;
    }
    for (xx, d) in dst.iter_mut().enumerate().skip(x) {
        let mut acc = 0.0;
        for (t, &gt) in g.iter().enumerate() {
            acc += gt * src[xx + t];
        }
        *d = acc;
    }
}

/// `dst[x] = sum over taps t (ascending) of g[t] * src[x - t]` where `0 <= x - t < src.len()`:
/// the adjoint of [`valid_row`], the terms in the order a scatter over the taps would add them.
///
/// # Safety
/// None; `unsafe` only so that the AVX2 build can share the body.
#[inline(always)]
unsafe fn full_row(dst: &mut [f64], src: &[f64], g: &[f64; WIN]) {
    debug_assert!(!src.is_empty(), "the adjoint of an empty row");
    let (n, m) = (dst.len(), src.len());
    let edge = |x: usize| {
        let mut acc = 0.0;
        // Taps with 0 <= x - t < m, ascending.
        for t in x.saturating_sub(m - 1)..=x.min(WIN - 1) {
            acc += g[t] * src[x - t];
        }
        acc
    };
    // Interior outputs see all taps: x >= WIN - 1 and x <= m - 1.
    let (lo, hi) = (WIN - 1, m);
    let mut x = 0;
    while x < n {
        if x >= lo && x + B <= hi {
            let mut acc = [0.0f64; B];
            for (t, &gt) in g.iter().enumerate() {
                let s: &[f64; B] = src[x - t..x - t + B].try_into().expect("B values");
                for l in 0..B {
                    acc[l] += gt * s[l];
                }
            }
            dst[x..x + B].copy_from_slice(&acc);
            x += B;
        } else {
            dst[x] = edge(x);
            x += 1;
        }
    }
}

/// The height pass of [`moments`] for output row `y`: the three `w`-wide parts of `rows` get the
/// column sums of `a`, `a·a` and `a·b` (planes `w` wide) over rows `y..y + WIN`, taps in order from
/// zero.
///
/// # Safety
/// None; `unsafe` only so that the AVX2 build can share the body.
#[inline(always)]
unsafe fn vertical(a: &[f64], b: &[f64], w: usize, y: usize, g: &[f64; WIN], rows: &mut [f64]) {
    let (v_m, rest) = rows[..3 * w].split_at_mut(w);
    let (v_aa, v_ab) = rest.split_at_mut(w);
    let at = |t: usize, i: usize| (a[(y + t) * w + i], b[(y + t) * w + i]);
    let mut i = 0;
    while i + B <= w {
        let (mut am, mut aa, mut ab) = ([0.0f64; B], [0.0f64; B], [0.0f64; B]);
        for (t, &gt) in g.iter().enumerate() {
            let o = (y + t) * w + i;
            let ra: &[f64; B] = a[o..o + B].try_into().expect("B values");
            let rb: &[f64; B] = b[o..o + B].try_into().expect("B values");
            for l in 0..B {
                let (p, q) = (ra[l], rb[l]);
                am[l] += gt * p;
                aa[l] += gt * (p * p);
                ab[l] += gt * (p * q);
            }
        }
        v_m[i..i + B].copy_from_slice(&am);
        v_aa[i..i + B].copy_from_slice(&aa);
        v_ab[i..i + B].copy_from_slice(&ab);
        i += B;
    }
    for ii in i..w {
        let (mut am, mut aa, mut ab) = (0.0, 0.0, 0.0);
        for (t, &gt) in g.iter().enumerate() {
            let (p, q) = at(t, ii);
            am += gt * p;
            aa += gt * (p * p);
            ab += gt * (p * q);
        }
        (v_m[ii], v_aa[ii], v_ab[ii]) = (am, aa, ab);
    }
}

/// The height adjoint of [`moments_adjoint`] for output row `y` of one map (`p`, `w` wide): the
/// source rows `first..=last` in ascending order, weighted `g[y - src]`; blocks of columns stay
/// in registers.
///
/// # Safety
/// None; `unsafe` only so that the AVX2 build can share the body.
#[inline(always)]
unsafe fn gather_rows(
    dst: &mut [f64],
    p: &[f64],
    w: usize,
    y: usize,
    first: usize,
    last: usize,
    g: &[f64; WIN],
) {
    let mut i = 0;
    while i + B <= w {
        let mut r = [0.0f64; B];
        for src in first..=last {
            let gt = g[y - src];
            let s: &[f64; B] = p[src * w + i..src * w + i + B]
                .try_into()
                .expect("B values");
            for l in 0..B {
                r[l] += gt * s[l];
            }
        }
        dst[i..i + B].copy_from_slice(&r);
        i += B;
    }
    for (ii, dv) in dst.iter_mut().enumerate().skip(i) {
        let mut r = 0.0;
        for src in first..=last {
            r += g[y - src] * p[src * w + ii];
        }
        *dv = r;
    }
}

avx2_variant!(valid_row_avx2 => valid_row(dst: &mut [f64], src: &[f64], g: &[f64; WIN]));
avx2_variant!(full_row_avx2 => full_row(dst: &mut [f64], src: &[f64], g: &[f64; WIN]));
avx2_variant!(vertical_avx2 => vertical(a: &[f64], b: &[f64], w: usize, y: usize, g: &[f64; WIN], rows: &mut [f64]));
avx2_variant!(gather_rows_avx2 => gather_rows(dst: &mut [f64], p: &[f64], w: usize, y: usize, first: usize, last: usize, g: &[f64; WIN]));

/// `[G(a), G(a·a), G(a·b)]`, the three maps SSIM filters, where `G` is pytorch_msssim's valid
/// separable Gaussian (height, then width; a side shorter than the window is left unfiltered).
/// One pass over the rows reads `a` and `b` once for all three, each output keeps its sum in a
/// register over the taps, and output rows run in parallel; every sum still runs over the taps
/// in order from zero, so the bits do not depend on the thread count (and equal a
/// plane-by-plane filter's).
fn moments(a: &Plane, b: &Plane, g: &[f64; WIN]) -> [Plane; 3] {
    let (h, w) = (a.h, a.w);
    let (tall, wide) = (h >= WIN, w >= WIN);
    let oh = if tall { h - WIN + 1 } else { h };
    let ow = if wide { w - WIN + 1 } else { w };
    let mut out = [
        Plane::zeros(oh, ow),
        Plane::zeros(oh, ow),
        Plane::zeros(oh, ow),
    ];
    if oh * ow == 0 {
        return out;
    }
    let avx2 = crate::cpu::has_avx2();
    let [m, s_aa, s_ab] = &mut out;
    m.v.par_chunks_mut(ow)
        .zip(s_aa.v.par_chunks_mut(ow))
        .zip(s_ab.v.par_chunks_mut(ow))
        .enumerate()
        .for_each(|(y, ((r_m, r_aa), r_ab))| {
            let mut rows = vec![0.0f64; 3 * w];
            if tall {
                // SAFETY: the AVX2 build only runs where AVX2 was detected.
                unsafe {
                    if avx2 {
                        vertical_avx2(&a.v, &b.v, w, y, g, &mut rows);
                    } else {
                        vertical(&a.v, &b.v, w, y, g, &mut rows);
                    }
                }
            }
            let (v_m, rest) = rows.split_at_mut(w);
            let (v_aa, v_ab) = rest.split_at_mut(w);
            if !tall {
                let (ra, rb) = (&a.v[y * w..][..w], &b.v[y * w..][..w]);
                for i in 0..w {
                    let (p, q) = (ra[i], rb[i]);
                    (v_m[i], v_aa[i], v_ab[i]) = (p, p * p, p * q);
                }
            }
            for (dst, src) in [(r_m, &*v_m), (r_aa, &*v_aa), (r_ab, &*v_ab)] {
                if wide {
                    // SAFETY: as above.
                    unsafe {
                        if avx2 {
                            valid_row_avx2(dst, src, g);
                        } else {
                            valid_row(dst, src, g);
                        }
                    }
                } else {
                    dst.copy_from_slice(src);
                }
            }
        });
    out
}

/// The adjoint of [`moments`] at `a`, `b` (`h x w`) applied to `d = [d_m, d_aa, d_ab]`:
/// `Gᵀ d_m + 2 a · Gᵀ d_aa + b · Gᵀ d_ab`, where `Gᵀ` is the "full" convolution with the same taps
/// (width, then height). Rows run in parallel; each output value sums its terms in the order of
/// the source rows and taps, whatever the thread count.
fn moments_adjoint(d: &[Plane; 3], a: &Plane, b: &Plane, g: &[f64; WIN]) -> Plane {
    let (h, w) = (a.h, a.w);
    let (oh, ow) = (d[0].h, d[0].w);
    let mut dx = Plane::zeros(h, w);
    if h * w == 0 {
        return dx;
    }
    let avx2 = crate::cpu::has_avx2();
    // The width adjoint of each map: `oh x w`.
    let widen = |p: &Plane| -> Plane {
        if w < WIN {
            return p.clone();
        }
        let mut out = Plane::zeros(oh, w);
        if ow > 0 {
            out.v
                .par_chunks_mut(w)
                .zip(p.v.par_chunks(ow))
                // SAFETY: the AVX2 build only runs where AVX2 was detected.
                .for_each(|(dst, src)| unsafe {
                    if avx2 {
                        full_row_avx2(dst, src, g);
                    } else {
                        full_row(dst, src, g);
                    }
                });
        }
        out
    };
    let wide = [widen(&d[0]), widen(&d[1]), widen(&d[2])];
    let tall = h >= WIN;
    dx.v.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        let mut acc = vec![0.0f64; 3 * w];
        if tall {
            // Output row y gathers source rows y - t in ascending order, as a scatter over the
            // source rows would add them; blocks of B columns stay in registers.
            let first = y.saturating_sub(WIN - 1);
            let last = y.min(oh - 1);
            for (k, p) in wide.iter().enumerate() {
                let dst = &mut acc[k * w..(k + 1) * w];
                // SAFETY: the AVX2 build only runs where AVX2 was detected.
                unsafe {
                    if avx2 {
                        gather_rows_avx2(dst, &p.v, w, y, first, last, g);
                    } else {
                        gather_rows(dst, &p.v, w, y, first, last, g);
                    }
                }
            }
        } else {
            for (k, p) in wide.iter().enumerate() {
                acc[k * w..(k + 1) * w].copy_from_slice(&p.v[y * w..(y + 1) * w]);
            }
        }
        let (ra, rb) = (&a.v[y * w..][..w], &b.v[y * w..][..w]);
        for i in 0..w {
            row[i] = acc[i] + 2.0 * ra[i] * acc[w + i] + rb[i] * acc[2 * w + i];
        }
    });
    dx
}

/// `avg_pool2d(kernel 2, padding side % 2)`, zeros counted.
fn pool(p: &Plane) -> Plane {
    let (py, px) = (p.h % 2, p.w % 2);
    let (oh, ow) = ((p.h + 2 * py) / 2, (p.w + 2 * px) / 2);
    let mut out = Plane::zeros(oh, ow);
    for oy in 0..oh {
        for ox in 0..ow {
            let mut s = 0.0;
            for dy in 0..2 {
                for dx in 0..2 {
                    let (y, x) = (
                        (2 * oy + dy) as isize - py as isize,
                        (2 * ox + dx) as isize - px as isize,
                    );
                    if y >= 0 && x >= 0 && (y as usize) < p.h && (x as usize) < p.w {
                        s += p.v[y as usize * p.w + x as usize];
                    }
                }
            }
            out.v[oy * ow + ox] = s / 4.0;
        }
    }
    out
}

/// The adjoint of [`pool`] onto an `h x w` plane.
fn pool_adjoint(d: &Plane, h: usize, w: usize) -> Plane {
    let (py, px) = (h % 2, w % 2);
    let mut out = Plane::zeros(h, w);
    for y in 0..h {
        for x in 0..w {
            let (oy, ox) = ((y + py) / 2, (x + px) / 2);
            out.v[y * w + x] = d.v[oy * d.w + ox] / 4.0;
        }
    }
    out
}

/// One scale of the reference image: the plane, its filtered mean and second moment.
#[derive(Debug)]
struct RefScale {
    y: Plane,
    mu2: Plane,
    syy: Plane,
}

/// The reference image's side of MS-SSIM, which a search computes once: per channel its
/// 5-scale pyramid and, per scale, `G(y)` and `G(y²)`.
#[derive(Debug)]
pub(crate) struct Reference {
    c: usize,
    h: usize,
    w: usize,
    channels: Vec<Vec<RefScale>>,
}

impl Reference {
    /// Prepares the reference `x` (`C x H x W`, values in `[0, 1]`).
    pub(crate) fn new(x: &Tensor) -> Reference {
        let g = window();
        let channels = (0..x.c)
            .into_par_iter()
            .map(|c| {
                let mut y = Plane {
                    h: x.h,
                    w: x.w,
                    v: x.channel(c).iter().map(|&v| v as f64).collect(),
                };
                let mut scales = Vec::with_capacity(WEIGHTS.len());
                for s in 0..WEIGHTS.len() {
                    let next = (s + 1 < WEIGHTS.len()).then(|| pool(&y));
                    let [mu2, syy, _] = moments(&y, &y, &g);
                    scales.push(RefScale { y, mu2, syy });
                    match next {
                        Some(n) => y = n,
                        None => break,
                    }
                }
                scales
            })
            .collect();
        Reference {
            c: x.c,
            h: x.h,
            w: x.w,
            channels,
        }
    }

    /// pytorch_msssim's `ms_ssim(x_hat, x, data_range=1)` against this reference and, with
    /// `grad`, its gradient with respect to `x_hat` (channels in parallel).
    ///
    /// # Panics
    /// If `x_hat`'s shape is not the reference's.
    pub(crate) fn ms_ssim(&self, x_hat: &Tensor, grad: bool) -> (f64, Option<Tensor>) {
        assert!(
            (x_hat.c, x_hat.h, x_hat.w) == (self.c, self.h, self.w),
            "ms_ssim of different shapes"
        );
        let per: Vec<(f64, Option<Vec<f64>>)> = (0..self.c)
            .into_par_iter()
            .map(|c| channel(x_hat.channel(c), &self.channels[c], self.h, self.w, grad))
            .collect();
        let k = self.c.max(1) as f64;
        let value = per.iter().map(|(v, _)| v).sum::<f64>() / k;
        let grad = grad.then(|| {
            let data = per
                .iter()
                .flat_map(|(_, g)| g.iter().flatten().map(|&v| (v / k) as f32))
                .collect();
            Tensor::from_vec(self.c, self.h, self.w, data)
        });
        (value, grad)
    }
}

/// One channel's MS-SSIM of `x` (the reconstruction) against the reference's scales, and with
/// `grad` its gradient with respect to `x`.
fn channel(x: &[f32], r: &[RefScale], h: usize, w: usize, grad: bool) -> (f64, Option<Vec<f64>>) {
    let g = window();
    let mut xs = vec![Plane {
        h,
        w,
        v: x.iter().map(|&v| v as f64).collect(),
    }];
    for s in 1..WEIGHTS.len() {
        xs.push(pool(&xs[s - 1]));
    }
    // Per scale: the mean of cs (or ssim at the last scale) and the maps the gradient needs.
    let mut means = [0.0f64; 5];
    let mut parts = Vec::with_capacity(5);
    for s in 0..WEIGHTS.len() {
        let (xp, RefScale { y: yp, mu2, syy }) = (&xs[s], &r[s]);
        let [mu1, sxx, sxy] = moments(xp, yp, &g);
        let n = mu1.v.len();
        let last = s == WEIGHTS.len() - 1;
        let mut sum = 0.0;
        for i in 0..n {
            let (m1, m2) = (mu1.v[i], mu2.v[i]);
            let s1 = sxx.v[i] - m1 * m1;
            let s2 = syy.v[i] - m2 * m2;
            let s12 = sxy.v[i] - m1 * m2;
            let cs = (2.0 * s12 + C2) / (s1 + s2 + C2);
            sum += if last {
                (2.0 * m1 * m2 + C1) / (m1 * m1 + m2 * m2 + C1) * cs
            } else {
                cs
            };
        }
        means[s] = sum / n as f64;
        parts.push((mu1, sxx, sxy));
    }
    let value: f64 = means
        .iter()
        .zip(WEIGHTS)
        .map(|(&m, wt)| m.max(0.0).powf(wt))
        .product();
    if !grad {
        return (value, None);
    }
    // Coarse to fine: this scale's term plus the pooled-back gradient of the coarser ones.
    let mut acc: Option<Plane> = None;
    for s in (0..WEIGHTS.len()).rev() {
        let (xp, RefScale { y: yp, mu2, syy }) = (&xs[s], &r[s]);
        let (mu1, sxx, sxy) = &parts[s];
        let n = mu1.v.len();
        let last = s == WEIGHTS.len() - 1;
        // d value / d mean_s (relu: nothing flows through a non-positive mean).
        let a = if means[s] > 0.0 {
            value * WEIGHTS[s] / means[s] / n as f64
        } else {
            0.0
        };
        let mut d = [
            Plane::zeros(mu1.h, mu1.w),
            Plane::zeros(mu1.h, mu1.w),
            Plane::zeros(mu1.h, mu1.w),
        ];
        let [d_mu1, d_s1, d_s12] = &mut d;
        d_mu1
            .v
            .par_iter_mut()
            .zip(d_s1.v.par_iter_mut())
            .zip(d_s12.v.par_iter_mut())
            .enumerate()
            .with_min_len(4096)
            .for_each(|(i, ((d_m, d_1), d_12))| {
                let (m1, m2) = (mu1.v[i], mu2.v[i]);
                let s1 = sxx.v[i] - m1 * m1;
                let s2 = syy.v[i] - m2 * m2;
                let s12 = sxy.v[i] - m1 * m2;
                let (num, den) = (2.0 * s12 + C2, s1 + s2 + C2);
                let cs = num / den;
                let (l_num, l_den) = (2.0 * m1 * m2 + C1, m1 * m1 + m2 * m2 + C1);
                let (d_cs, d_l) = if last {
                    (a * l_num / l_den, a * cs)
                } else {
                    (a, 0.0)
                };
                let ds12 = d_cs * 2.0 / den;
                let ds1 = -d_cs * num / (den * den);
                let dm1_l = d_l * (2.0 * m2 / l_den - l_num * 2.0 * m1 / (l_den * l_den));
                *d_m = dm1_l - 2.0 * m1 * ds1 - m2 * ds12;
                *d_1 = ds1;
                *d_12 = ds12;
            });
        let mut dx = moments_adjoint(&d, xp, yp, &g);
        if let Some(coarse) = acc.take() {
            let back = pool_adjoint(&coarse, xp.h, xp.w);
            dx.v.iter_mut().zip(&back.v).for_each(|(d, b)| *d += b);
        }
        acc = Some(dx);
    }
    (value, acc.map(|p| p.v))
}

/// pytorch_msssim's `ms_ssim(x_hat, x, data_range=1)` of two `C x H x W` images with values in
/// `[0, 1]`, and with `grad` its gradient with respect to `x_hat`.
///
/// # Panics
/// If the two shapes differ.
#[cfg(test)]
pub(crate) fn ms_ssim(x_hat: &Tensor, x: &Tensor, grad: bool) -> (f64, Option<Tensor>) {
    Reference::new(x).ms_ssim(x_hat, grad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    fn image(rng: &mut Rng, h: usize, w: usize) -> Tensor {
        Tensor::from_vec(3, h, w, (0..3 * h * w).map(|_| rng.unit() as f32).collect())
    }

    #[test]
    fn identical_images_score_one() {
        let mut rng = Rng(5);
        let x = image(&mut rng, 40, 37);
        let (v, _) = ms_ssim(&x, &x, false);
        assert!((v - 1.0).abs() < 1e-12, "{v}");
    }

    /// The value pytorch_msssim gives for a fixed pair: `x[c, i, j] = ((7c + 3i + 5j) mod 17) / 16`,
    /// `x_hat = x + 0.25 sin(i + 2j + c)` clamped to `[0, 1]`, 180 x 172 (both sides over 160,
    /// pytorch_msssim's minimum for 5 scales). The reference came from the training venv:
    /// `pytorch_msssim.ms_ssim(x_hat, x, data_range=1.0)` on float64 tensors built by that rule
    /// (0.7872254848480225 on float32 ones); this f64 implementation agrees within 1e-9.
    #[test]
    fn equals_pytorch_msssim() {
        let (h, w) = (180, 172);
        let mut x = Tensor::zeros(3, h, w);
        let mut x_hat = Tensor::zeros(3, h, w);
        for c in 0..3 {
            for i in 0..h {
                for j in 0..w {
                    let v = ((7 * c + 3 * i + 5 * j) % 17) as f64 / 16.0;
                    x.channel_mut(c)[i * w + j] = v as f32;
                    x_hat.channel_mut(c)[i * w + j] =
                        (v + 0.25 * ((i + 2 * j + c) as f64).sin()).clamp(0.0, 1.0) as f32;
                }
            }
        }
        let (v, _) = ms_ssim(&x_hat, &x, false);
        assert!((v - 0.7872259533960605).abs() < 1e-9, "{v}");
    }

    #[test]
    fn the_gradient_matches_finite_differences() {
        let mut rng = Rng(6);
        // A smooth reference and a noisy reconstruction (MS-SSIM well inside (0, 1)).
        let (h, w) = (48, 45);
        let x = Tensor::from_vec(
            3,
            h,
            w,
            (0..3 * h * w)
                .map(|i| {
                    let (c, p) = (i / (h * w), i % (h * w));
                    (0.5 + 0.3
                        * ((p / w) as f32 * 0.2 + c as f32).sin()
                        * ((p % w) as f32 * 0.15).cos())
                    .clamp(0.0, 1.0)
                })
                .collect(),
        );
        let x_hat = Tensor::from_vec(3, h, w, x.data.iter().map(|&v| v + rng.f(0.1)).collect());
        let (v0, g) = ms_ssim(&x_hat, &x, true);
        let g = g.expect("asked for");
        assert!(v0 > 0.1 && v0 < 0.99, "{v0}");
        let dir = rng.vec(x.data.len(), 1.0);
        let eps = 1e-3f32;
        let at = |s: f32| {
            let p: Vec<f32> = x_hat
                .data
                .iter()
                .zip(&dir)
                .map(|(&a, &b)| a + s * b)
                .collect();
            ms_ssim(&Tensor::from_vec(3, h, w, p), &x, false).0
        };
        let fd = (at(eps) - at(-eps)) / (2.0 * eps as f64);
        let an: f64 = g
            .data
            .iter()
            .zip(&dir)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum();
        assert!(
            (fd - an).abs() <= 1e-3 * an.abs().max(fd.abs()),
            "fd {fd}, backward {an}"
        );
    }
}
