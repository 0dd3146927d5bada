//! Quality metrics of one decoded image against its original.

use anyhow::{bail, Result};
use codec_core::RgbImage;
use metrics::{Image, MetricsError};

/// PSNR (dB), SSIM (scikit-image defaults), MS-SSIM (tf.image.ssim_multiscale), MS-SSIM in dB and
/// the colour guard: PSNR of the BT.601 Y, Cb and Cr planes. A metric the image is too small for is
/// NaN, with a note saying why.
#[derive(Debug, Clone)]
pub struct Quality {
    pub psnr: f64,
    pub ssim: f64,
    pub msssim: f64,
    pub msssim_db: f64,
    /// PSNR (dB) of the Y, Cb and Cr planes.
    pub psnr_ycbcr: [f64; 3],
    pub notes: Vec<String>,
}

/// Measures `b` (decoded) against `a` (original); different dimensions are an error.
pub fn quality(a: &RgbImage, b: &RgbImage) -> Result<Quality> {
    if (a.width, a.height) != (b.width, b.height) {
        bail!(
            "the images differ in size: {}x{} vs {}x{}",
            a.width,
            a.height,
            b.width,
            b.height
        );
    }
    let ia = Image::new(&a.data, a.width, a.height)?;
    let ib = Image::new(&b.data, b.width, b.height)?;
    let mut notes = Vec::new();
    let psnr = metrics::psnr_image(ia, ib)?;
    let psnr_ycbcr = metrics::psnr_ycbcr(ia, ib)?;
    let mut soft = |name: &str, r: Result<f64, MetricsError>| -> Result<f64> {
        match r {
            Ok(v) => Ok(v),
            Err(e @ MetricsError::TooSmall { .. }) => {
                notes.push(format!("{name} not computed: {e}"));
                Ok(f64::NAN)
            }
            Err(e) => Err(e.into()),
        }
    };
    let ssim = soft("SSIM", metrics::ssim(ia, ib))?;
    let msssim = soft("MS-SSIM", metrics::ms_ssim(ia, ib))?;
    let msssim_db = if msssim.is_nan() {
        f64::NAN
    } else {
        metrics::msssim_db(msssim)
    };
    Ok(Quality {
        psnr,
        ssim,
        msssim,
        msssim_db,
        psnr_ycbcr,
        notes,
    })
}
