//! The colour guard: PSNR of the Y, Cb and Cr planes (ITU-R BT.601, full range, as JPEG/JFIF).
//!
//! An MS-SSIM-trained codec can lose a colour axis while its MS-SSIM looks fine: MS-SSIM on RGB
//! weighs means (and so hue) only at its coarsest scale. A red parrot decoded brown shows up here as
//! a low Cr PSNR, which is why the evaluation reports these next to PSNR/SSIM/MS-SSIM.
//!
//! Planes are computed in `f64` without rounding:
//! `Y = 0.299 R + 0.587 G + 0.114 B`,
//! `Cb = 128 - 0.168736 R - 0.331264 G + 0.5 B`, `Cr = 128 + 0.5 R - 0.418688 G - 0.081312 B`,
//! and each plane's PSNR uses MAX = 255 (identical planes give `+inf`).

use crate::{check_pair, Image, MetricsError};

/// BT.601 full-range `[Y, Cb, Cr]` of one 8-bit RGB pixel.
pub fn ycbcr(rgb: [u8; 3]) -> [f64; 3] {
    let [r, g, b] = rgb.map(f64::from);
    [
        0.299 * r + 0.587 * g + 0.114 * b,
        128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b,
        128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b,
    ]
}

/// PSNR (dB) of the Y, Cb and Cr planes of `b` against `a`.
pub fn psnr_ycbcr(a: Image<'_>, b: Image<'_>) -> Result<[f64; 3], MetricsError> {
    check_pair(&a, &b)?;
    let mut sse = [0.0f64; 3];
    for (pa, pb) in a.data().chunks_exact(3).zip(b.data().chunks_exact(3)) {
        let ya = ycbcr([pa[0], pa[1], pa[2]]);
        let yb = ycbcr([pb[0], pb[1], pb[2]]);
        for c in 0..3 {
            sse[c] += (ya[c] - yb[c]).powi(2);
        }
    }
    let n = (a.width() * a.height()) as f64;
    Ok(sse.map(|s| {
        if s == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (255.0f64 * 255.0 / (s / n)).log10()
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_of_primaries() {
        let close = |a: [f64; 3], b: [f64; 3]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9);
        assert!(close(ycbcr([0, 0, 0]), [0.0, 128.0, 128.0]));
        assert!(close(ycbcr([255, 255, 255]), [255.0, 128.0, 128.0]));
        // Pure red: Cr at its maximum (255.5 before clamping), Cb below neutral.
        assert!(close(ycbcr([255, 0, 0]), [76.245, 84.972_32, 255.5]));
    }

    #[test]
    fn a_hue_shift_hits_chroma_not_luma() {
        // Red (200, 40, 40) decoded as a brown of about the same luma: Cr drops, Y barely moves.
        let red: Vec<u8> = [200u8, 40, 40].repeat(64);
        let brown: Vec<u8> = [150u8, 66, 40].repeat(64);
        let a = Image::new(&red, 8, 8).expect("fits");
        let b = Image::new(&brown, 8, 8).expect("fits");
        let [y, cb, cr] = psnr_ycbcr(a, b).expect("same size");
        assert!(y > 40.0 && cr < 25.0 && cb > cr, "{y} {cb} {cr}");
        assert_eq!(psnr_ycbcr(a, a), Ok([f64::INFINITY; 3]));
        let c = Image::new(&red[..48], 4, 4).expect("fits");
        assert!(matches!(
            psnr_ycbcr(a, c),
            Err(MetricsError::DimensionMismatch { .. })
        ));
    }
}
