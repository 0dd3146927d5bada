//! Bjøntegaard deltas with PCHIP interpolation (see the crate docs).

use crate::MetricsError;

/// One point of a rate-distortion curve: a rate (bpp, bytes, kbit/s: any positive unit, the same for
/// both curves) and a quality (PSNR dB, MS-SSIM dB, ...; higher is better).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RdPoint {
    pub rate: f64,
    pub quality: f64,
}

impl RdPoint {
    pub fn new(rate: f64, quality: f64) -> Self {
        Self { rate, quality }
    }
}

/// BD-rate in percent of `test` against `anchor`: the mean difference of the PCHIP-interpolated
/// `ln(rate)` over the overlapping quality range, as `(exp(d) - 1) * 100` (negative: `test` saves bits).
///
/// Each curve needs at least 2 points with finite values, positive rates and distinct qualities (in
/// any order; they are sorted by quality); the quality ranges must overlap. Otherwise
/// [`MetricsError::InvalidCurve`].
pub fn bd_rate(anchor: &[RdPoint], test: &[RdPoint]) -> Result<f64, MetricsError> {
    let a = Pchip::new(points(anchor, |p| (p.quality, p.rate.ln()))?)?;
    let t = Pchip::new(points(test, |p| (p.quality, p.rate.ln()))?)?;
    Ok(mean_difference(&a, &t)?.exp_m1() * 100.0)
}

/// BD-PSNR (more generally BD-quality) of `test` against `anchor`, in quality units: the mean
/// difference of the PCHIP-interpolated quality as a function of `ln(rate)` over the overlapping
/// log-rate range (positive: `test` is better). Same requirements as [`bd_rate`], with distinct rates.
pub fn bd_psnr(anchor: &[RdPoint], test: &[RdPoint]) -> Result<f64, MetricsError> {
    let a = Pchip::new(points(anchor, |p| (p.rate.ln(), p.quality))?)?;
    let t = Pchip::new(points(test, |p| (p.rate.ln(), p.quality))?)?;
    mean_difference(&a, &t)
}

/// Validated `(x, y)` pairs sorted by `x`.
fn points(
    curve: &[RdPoint],
    f: impl Fn(&RdPoint) -> (f64, f64),
) -> Result<Vec<(f64, f64)>, MetricsError> {
    if curve.len() < 2 {
        return Err(MetricsError::InvalidCurve(
            "a curve needs at least 2 points",
        ));
    }
    if curve
        .iter()
        .any(|p| !p.rate.is_finite() || !p.quality.is_finite())
    {
        return Err(MetricsError::InvalidCurve("non-finite rate or quality"));
    }
    if curve.iter().any(|p| p.rate <= 0.0) {
        return Err(MetricsError::InvalidCurve("rates must be positive"));
    }
    let mut xy: Vec<(f64, f64)> = curve.iter().map(f).collect();
    xy.sort_by(|p, q| p.0.total_cmp(&q.0));
    if xy.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(MetricsError::InvalidCurve(
            "two points share the same abscissa",
        ));
    }
    Ok(xy)
}

/// `(integral of t - integral of a) / length` over the common abscissa range.
fn mean_difference(a: &Pchip, t: &Pchip) -> Result<f64, MetricsError> {
    let lo = a.x[0].max(t.x[0]);
    let hi = a.x[a.x.len() - 1].min(t.x[t.x.len() - 1]);
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return Err(MetricsError::InvalidCurve("the curves do not overlap"));
    }
    Ok((t.integrate(lo, hi) - a.integrate(lo, hi)) / (hi - lo))
}

/// Piecewise cubic Hermite interpolant with scipy `PchipInterpolator`'s slopes.
#[derive(Debug)]
struct Pchip {
    x: Vec<f64>,
    y: Vec<f64>,
    d: Vec<f64>,
}

fn sign(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

impl Pchip {
    fn new(xy: Vec<(f64, f64)>) -> Result<Self, MetricsError> {
        let (x, y): (Vec<f64>, Vec<f64>) = xy.into_iter().unzip();
        let n = x.len();
        let h: Vec<f64> = x.windows(2).map(|w| w[1] - w[0]).collect();
        let m: Vec<f64> = (0..n - 1).map(|k| (y[k + 1] - y[k]) / h[k]).collect();
        if m.iter().any(|v| !v.is_finite()) {
            return Err(MetricsError::InvalidCurve("points too close together"));
        }
        let mut d = vec![0.0; n];
        if n == 2 {
            d[0] = m[0];
            d[1] = m[0];
        } else {
            for k in 1..n - 1 {
                let (m0, m1) = (m[k - 1], m[k]);
                if sign(m0) != sign(m1) || m0 == 0.0 || m1 == 0.0 {
                    d[k] = 0.0;
                } else {
                    // Weighted harmonic mean (Fritsch-Butland), as scipy.
                    let w1 = 2.0 * h[k] + h[k - 1];
                    let w2 = h[k] + 2.0 * h[k - 1];
                    d[k] = (w1 + w2) / (w1 / m0 + w2 / m1);
                }
            }
            d[0] = edge_slope(h[0], h[1], m[0], m[1]);
            d[n - 1] = edge_slope(h[n - 2], h[n - 3], m[n - 2], m[n - 3]);
        }
        Ok(Self { x, y, d })
    }

    /// Exact integral of the interpolant over `[lo, hi]`, a sub-range of `[x_0, x_{n-1}]`.
    fn integrate(&self, lo: f64, hi: f64) -> f64 {
        let mut total = 0.0;
        for k in 0..self.x.len() - 1 {
            let (x0, x1) = (self.x[k], self.x[k + 1]);
            let (a, b) = (lo.max(x0), hi.min(x1));
            if b <= a {
                continue;
            }
            let hk = x1 - x0;
            let mk = (self.y[k + 1] - self.y[k]) / hk;
            // y(t) = c0 + c1 t + c2 t^2 + c3 t^3 with t = x - x0.
            let c0 = self.y[k];
            let c1 = self.d[k];
            let c2 = (3.0 * mk - 2.0 * self.d[k] - self.d[k + 1]) / hk;
            let c3 = (self.d[k] + self.d[k + 1] - 2.0 * mk) / (hk * hk);
            let prim = |t: f64| t * (c0 + t * (c1 / 2.0 + t * (c2 / 3.0 + t * (c3 / 4.0))));
            total += prim(b - x0) - prim(a - x0);
        }
        total
    }
}

/// scipy's one-sided three-point end slope, made shape-preserving.
fn edge_slope(h0: f64, h1: f64, m0: f64, m1: f64) -> f64 {
    let d = ((2.0 * h0 + h1) * m0 - h0 * m1) / (h0 + h1);
    if sign(d) != sign(m0) {
        0.0
    } else if sign(m0) != sign(m1) && d.abs() > 3.0 * m0.abs() {
        3.0 * m0
    } else {
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(pts: &[(f64, f64)]) -> Vec<RdPoint> {
        pts.iter().map(|&(r, q)| RdPoint::new(r, q)).collect()
    }

    #[test]
    fn scaled_rates_give_the_scale() {
        let a = curve(&[(0.2, 28.0), (0.4, 31.0), (0.8, 34.5), (1.6, 37.0)]);
        let t: Vec<RdPoint> = a
            .iter()
            .map(|p| RdPoint::new(p.rate * 0.8, p.quality))
            .collect();
        let r = bd_rate(&a, &t).expect("bd");
        assert!((r + 20.0).abs() < 1e-9, "{r}");
        assert!(bd_rate(&a, &a).expect("bd").abs() < 1e-12);
        // Shifting quality by +0.5 dB gives BD-PSNR +0.5.
        let u: Vec<RdPoint> = a
            .iter()
            .map(|p| RdPoint::new(p.rate, p.quality + 0.5))
            .collect();
        assert!((bd_psnr(&a, &u).expect("bd") - 0.5).abs() < 1e-12);
    }

    #[test]
    fn interpolant_passes_through_points_and_is_linear_for_two() {
        let p = Pchip::new(vec![(0.0, 1.0), (2.0, 5.0)]).expect("pchip");
        assert!((p.integrate(0.0, 2.0) - 6.0).abs() < 1e-12);
        let q = Pchip::new(vec![(0.0, 0.0), (1.0, 1.0), (3.0, 1.5), (4.0, 4.0)]).expect("pchip");
        // Integrals over adjacent pieces add up.
        let whole = q.integrate(0.0, 4.0);
        let parts = q.integrate(0.0, 0.7) + q.integrate(0.7, 2.2) + q.integrate(2.2, 4.0);
        assert!((whole - parts).abs() < 1e-12);
    }

    #[test]
    fn errors() {
        let a = curve(&[(0.2, 28.0), (0.4, 31.0)]);
        assert!(matches!(
            bd_rate(&a[..1], &a),
            Err(MetricsError::InvalidCurve(_))
        ));
        let far = curve(&[(0.2, 40.0), (0.4, 41.0)]);
        assert!(matches!(
            bd_rate(&a, &far),
            Err(MetricsError::InvalidCurve(_))
        ));
        let dup = curve(&[(0.2, 28.0), (0.4, 28.0)]);
        assert!(matches!(
            bd_rate(&a, &dup),
            Err(MetricsError::InvalidCurve(_))
        ));
        let neg = curve(&[(0.0, 28.0), (0.4, 30.0)]);
        assert!(matches!(
            bd_rate(&a, &neg),
            Err(MetricsError::InvalidCurve(_))
        ));
        let nan = curve(&[(0.1, f64::NAN), (0.4, 30.0)]);
        assert!(matches!(
            bd_psnr(&a, &nan),
            Err(MetricsError::InvalidCurve(_))
        ));
    }
}
