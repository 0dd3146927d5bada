//! Image quality and rate metrics with the definitions fixed in DESIGN.md ("Metrics").
//!
//! - PSNR on 8-bit RGB, MAX 255, over all three channels of one image: `10 log10(255^2 / MSE)`.
//! - bpp = `8 * file bytes / (H * W)`.
//! - N_compression = `file bytes / (H * W * 3)` (the seed article's compression coefficient).
//!
//! Depends on no project crate.

/// Errors of the metrics.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricsError {
    #[error("images differ in size: {a} vs {b} bytes")]
    SizeMismatch { a: usize, b: usize },
    #[error("empty image")]
    Empty,
}

/// PSNR in dB of two 8-bit images of equal size (any channel layout, compared byte by byte).
/// Identical images give `f64::INFINITY`.
pub fn psnr(a: &[u8], b: &[u8]) -> Result<f64, MetricsError> {
    if a.len() != b.len() {
        return Err(MetricsError::SizeMismatch { a: a.len(), b: b.len() });
    }
    if a.is_empty() {
        return Err(MetricsError::Empty);
    }
    let sse: u64 = a.iter().zip(b).map(|(&x, &y)| (i64::from(x) - i64::from(y)).unsigned_abs().pow(2)).sum();
    if sse == 0 {
        return Ok(f64::INFINITY);
    }
    let mse = sse as f64 / a.len() as f64;
    Ok(10.0 * (255.0f64 * 255.0 / mse).log10())
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
        assert_eq!(psnr(&a, &b[..3]), Err(MetricsError::SizeMismatch { a: 300, b: 3 }));
        assert_eq!(psnr(&[], &[]), Err(MetricsError::Empty));
    }

    #[test]
    fn rate_figures() {
        assert_eq!(bpp(49152, 768, 512), 1.0);
        assert_eq!(n_compression(3 * 768 * 512, 768, 512), 1.0);
    }
}
