//! Image quality and rate metrics with the definitions fixed in DESIGN.md ("Metrics").
//!
//! Every image metric takes 8-bit interleaved RGB (`R G B R G B ...`, row-major, no padding between
//! rows) through the [`Image`] view, computes in `f64`, and is deterministic: work is split over rows
//! with rayon, but every partial sum is combined in a fixed (row) order, so the result does not depend
//! on the number of threads.
//!
//! # PSNR ([`psnr`], [`psnr_image`])
//!
//! Over all samples of one image (all three channels together), MAX = 255:
//! `MSE = sum (a - b)^2 / (3 W H)`, `PSNR = 10 log10(255^2 / MSE)` dB; identical images give `+inf`.
//! Averaging over a set of images is the caller's business (DESIGN.md: per image, then the mean).
//!
//! # SSIM ([`ssim`]) — scikit-image `structural_similarity` defaults
//!
//! Equal to `skimage.metrics.structural_similarity(a, b, channel_axis=-1, data_range=255)` with every
//! other argument at its default (checked against scikit-image 0.26 source):
//!
//! - per channel, a 7x7 uniform window (N = 49 samples); with the window sums `Sx, Sy, Sxx, Syy, Sxy`:
//!   `ux = Sx/N`, `uy = Sy/N`, and the *sample* (co)variances (`use_sample_covariance=True`)
//!   `vx = (N Sxx - Sx^2) / (N (N-1))`, `vy` alike, `vxy = (N Sxy - Sx Sy) / (N (N-1))`;
//! - `C1 = (0.01 * 255)^2`, `C2 = (0.03 * 255)^2`;
//! - `S = (2 ux uy + C1)(2 vxy + C2) / ((ux^2 + uy^2 + C1)(vx + vy + C2))`;
//! - the map is cropped by `(7-1)/2 = 3` pixels on each border (skimage's `crop(S, pad)`), i.e. only
//!   windows lying wholly inside the image count, so scipy's `reflect` border mode never matters;
//! - SSIM of a channel = mean of the cropped map; SSIM of the image = mean over the 3 channels.
//!
//! The window sums are exact integer box sums (running sums over rows and columns), so the result is the
//! exact value of the formula up to the final `f64` divisions. Images need at least 7x7 pixels
//! (skimage raises `win_size exceeds image extent` below that); smaller ones give
//! [`MetricsError::TooSmall`].
//!
//! # MS-SSIM ([`ms_ssim`], [`msssim_db`]) — `tf.image.ssim_multiscale(a, b, max_val=255)`
//!
//! Transcribed from TensorFlow 2.21 `image_ops_impl.py` (`ssim_multiscale`, `_ssim_per_channel`,
//! `_ssim_helper`, `_fspecial_gauss`), with its defaults:
//!
//! - Gaussian window 11x11, sigma 1.5: `g(i) = exp(-(i-5)^2 / (2 * 1.5^2))` normalised to sum 1 (TF's
//!   softmax of the 2-D exponent is exactly the outer product of this 1-D kernel), applied separably with
//!   VALID filtering (no padding: the maps are `(W-10) x (H-10)`);
//! - `C1 = (0.01 * 255)^2`, `C2 = (0.03 * 255)^2`; with `mx = g*x`, `my = g*y`:
//!   luminance `l = (2 mx my + C1) / (mx^2 + my^2 + C1)`,
//!   contrast-structure `cs = (2 g*(xy) - 2 mx my + C2) / (g*(x^2 + y^2) - mx^2 - my^2 + C2)`
//!   (population weighting, TF's `compensation = 1`);
//! - per scale `s = 0..4` and per channel: `cs_s = mean(cs)`; at the last scale `ssim_4 = mean(l * cs)`;
//! - between scales, 2x2 average pooling with stride 2; a dimension of odd size is first padded by one
//!   row/column repeating the last one (TF's `SYMMETRIC` pad by `size % 2`, then `VALID` pooling), so the
//!   new size is `ceil(size / 2)`;
//! - per channel `ms = prod_{s<4} relu(cs_s)^w_s * relu(ssim_4)^w_4` with
//!   `w = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)`; the result is the mean of `ms` over the 3 channels.
//!
//! TF asserts that every scale is at least as large as the filter (it does *not* shrink the filter), so
//! both sides must satisfy `ceil^4(side / 2) >= 11`, i.e. be at least [`MS_SSIM_MIN_SIDE`] = 161 pixels;
//! smaller images give [`MetricsError::TooSmall`] (where TF raises `InvalidArgumentError`).
//! TF computes in `float32`; this crate computes in `f64`, so the two differ by TF's rounding, typically
//! below 1e-5 and at most about 1.5e-4 on nearly identical photographs.
//! `msssim_db(v) = -10 log10(1 - v)` (tensorflow-compression's "MS-SSIM (dB)"; `+inf` for `v = 1`).
//!
//! # BD-rate / BD-PSNR ([`bd_rate`], [`bd_psnr`])
//!
//! Bjøntegaard deltas with piecewise cubic Hermite interpolation (PCHIP, Fritsch–Carlson monotone
//! slopes with scipy's one-sided three-point end slopes), i.e. the `pchip` method of the `bjontegaard`
//! Python package (= `scipy.interpolate.PchipInterpolator` + exact integration), not the original
//! 2001 cubic polynomial fit nor the JVET spreadsheet's variant:
//!
//! - BD-rate: each curve's `ln(rate)` is interpolated as a function of quality `q` (points sorted by `q`,
//!   which must be distinct); both interpolants are integrated exactly over the overlapping quality
//!   range `[max(min q_a, min q_t), min(max q_a, max q_t)]`;
//!   `d = (int_test - int_anchor) / (q_hi - q_lo)` and `BD-rate = (exp(d) - 1) * 100` percent
//!   (negative: the test codec needs fewer bits). The log base does not matter: PCHIP commutes with
//!   scaling the ordinates, so `log10` and `10^d` give the same number.
//! - BD-PSNR (BD-quality): quality interpolated as a function of `ln(rate)`, integrated over the
//!   overlapping log-rate range; the mean difference `test - anchor` in quality units (dB for PSNR).
//!
//! # Colour ([`psnr_ycbcr`], [`ycbcr`])
//!
//! PSNR of the BT.601 full-range Y, Cb and Cr planes, computed in `f64` (MAX = 255): the colour guard
//! that catches a hue shift MS-SSIM on RGB hardly sees.
//!
//! # Rates
//!
//! - bpp = `8 * file bytes / (H * W)`.
//! - N_compression = `file bytes / (H * W * 3)` (the seed article's compression coefficient).
//!
//! Depends on no project crate.

mod bd;
mod msssim;
mod ssim;
mod ycbcr;

pub use bd::{bd_psnr, bd_rate, RdPoint};
pub use msssim::{ms_ssim, msssim_db, MS_SSIM_MIN_SIDE, MS_SSIM_WEIGHTS};
pub use ssim::{ssim, SSIM_WINDOW};
pub use ycbcr::{psnr_ycbcr, ycbcr};

/// Errors of the metrics.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricsError {
    /// Two byte buffers of different lengths.
    #[error("images differ in size: {a} vs {b} bytes")]
    SizeMismatch { a: usize, b: usize },
    /// No pixel at all.
    #[error("empty image")]
    Empty,
    /// A buffer whose length is not `width * height * 3`.
    #[error("buffer of {len} bytes is not a {width}x{height} RGB image (3 bytes per pixel)")]
    BadBuffer {
        len: usize,
        width: usize,
        height: usize,
    },
    /// Two images of different dimensions.
    #[error("images differ in dimensions: {a_width}x{a_height} vs {b_width}x{b_height}")]
    DimensionMismatch {
        a_width: usize,
        a_height: usize,
        b_width: usize,
        b_height: usize,
    },
    /// An image too small for the metric's window.
    #[error("{width}x{height} image is too small for {metric}: both sides must be at least {min} pixels")]
    TooSmall {
        metric: &'static str,
        width: usize,
        height: usize,
        min: usize,
    },
    /// A rate-distortion curve unusable for a Bjøntegaard delta.
    #[error("invalid RD curve for BD metric: {0}")]
    InvalidCurve(&'static str),
}

/// A borrowed 8-bit interleaved RGB image (`R G B R G B ...`, row-major, rows without padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Image<'a> {
    data: &'a [u8],
    width: usize,
    height: usize,
}

impl<'a> Image<'a> {
    /// Wraps `data`, which must hold exactly `width * height * 3` bytes.
    pub fn new(data: &'a [u8], width: usize, height: usize) -> Result<Self, MetricsError> {
        if width.checked_mul(height).and_then(|n| n.checked_mul(3)) != Some(data.len()) {
            return Err(MetricsError::BadBuffer {
                len: data.len(),
                width,
                height,
            });
        }
        Ok(Self {
            data,
            width,
            height,
        })
    }

    /// The interleaved RGB bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }
}

/// Checks that two images have equal, non-zero dimensions; returns `(width, height)`.
pub(crate) fn check_pair(a: &Image<'_>, b: &Image<'_>) -> Result<(usize, usize), MetricsError> {
    if (a.width, a.height) != (b.width, b.height) {
        return Err(MetricsError::DimensionMismatch {
            a_width: a.width,
            a_height: a.height,
            b_width: b.width,
            b_height: b.height,
        });
    }
    if a.width == 0 || a.height == 0 {
        return Err(MetricsError::Empty);
    }
    Ok((a.width, a.height))
}

/// PSNR in dB of two 8-bit images of equal size (any channel layout, compared byte by byte).
/// Identical images give `f64::INFINITY`.
pub fn psnr(a: &[u8], b: &[u8]) -> Result<f64, MetricsError> {
    if a.len() != b.len() {
        return Err(MetricsError::SizeMismatch {
            a: a.len(),
            b: b.len(),
        });
    }
    if a.is_empty() {
        return Err(MetricsError::Empty);
    }
    let sse: u64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| u64::from(x.abs_diff(y)).pow(2))
        .sum();
    if sse == 0 {
        return Ok(f64::INFINITY);
    }
    let mse = sse as f64 / a.len() as f64;
    Ok(10.0 * (255.0f64 * 255.0 / mse).log10())
}

/// [`psnr`] of two RGB images, also checking that their dimensions agree.
pub fn psnr_image(a: Image<'_>, b: Image<'_>) -> Result<f64, MetricsError> {
    check_pair(&a, &b)?;
    psnr(a.data, b.data)
}

/// Bits per pixel of a file of `bytes` bytes for an image of `width x height`.
pub fn bpp(bytes: u64, width: u64, height: u64) -> f64 {
    8.0 * bytes as f64 / (width * height) as f64
}

/// The seed article's compression coefficient: file bytes per byte of 8-bit RGB.
pub fn n_compression(bytes: u64, width: u64, height: u64) -> f64 {
    bytes as f64 / (width * height * 3) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psnr_of_known_error() {
        // Every sample off by 5: MSE 25, PSNR = 10 log10(65025 / 25) = 34.1514 dB.
        let a = vec![100u8; 300];
        let b = vec![105u8; 300];
        let p = psnr(&a, &b).expect("same size");
        assert!((p - 34.151_403_521_958_4).abs() < 1e-9, "{p}");
        assert_eq!(psnr(&a, &a), Ok(f64::INFINITY));
        assert_eq!(
            psnr(&a, &b[..3]),
            Err(MetricsError::SizeMismatch { a: 300, b: 3 })
        );
        assert_eq!(psnr(&[], &[]), Err(MetricsError::Empty));
    }

    #[test]
    fn rate_figures() {
        assert_eq!(bpp(49152, 768, 512), 1.0);
        assert_eq!(n_compression(3 * 768 * 512, 768, 512), 1.0);
    }

    #[test]
    fn image_view_checks_its_buffer() {
        let buf = vec![0u8; 10 * 4 * 3];
        assert!(Image::new(&buf, 10, 4).is_ok());
        assert_eq!(
            Image::new(&buf, 10, 5),
            Err(MetricsError::BadBuffer {
                len: 120,
                width: 10,
                height: 5
            })
        );
        assert_eq!(
            Image::new(&buf, usize::MAX, 2),
            Err(MetricsError::BadBuffer {
                len: 120,
                width: usize::MAX,
                height: 2
            })
        );
        let a = Image::new(&buf, 10, 4).expect("fits");
        let b = Image::new(&buf, 4, 10).expect("fits");
        assert_eq!(
            psnr_image(a, b),
            Err(MetricsError::DimensionMismatch {
                a_width: 10,
                a_height: 4,
                b_width: 4,
                b_height: 10
            })
        );
        assert_eq!(psnr_image(a, a), Ok(f64::INFINITY));
        let e = Image::new(&[], 0, 7).expect("empty fits");
        assert_eq!(psnr_image(e, e), Err(MetricsError::Empty));
    }
}
