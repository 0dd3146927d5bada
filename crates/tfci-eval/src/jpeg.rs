//! The JPEG baseline: libjpeg's quality scale, 4:2:0 with box-filtered chroma, the standard
//! (Annex K) Huffman tables and no optimisation, as PIL's `save(..., "JPEG", quality=q)`.

use anyhow::{Context, Result};
use codec_core::RgbImage;
use jpeg_encoder::{ChromaSubsamplingMethod, ColorType, Encoder, SamplingFactor};

/// Encodes `img` as a baseline JPEG at libjpeg quality `quality` (1..=100).
pub fn encode(img: &RgbImage, quality: u8) -> Result<Vec<u8>> {
    let width = u16::try_from(img.width).context("image too wide for JPEG (max 65535)")?;
    let height = u16::try_from(img.height).context("image too tall for JPEG (max 65535)")?;
    let mut out = Vec::new();
    let mut enc = Encoder::new(&mut out, quality.clamp(1, 100));
    // PIL (libjpeg) uses 4:2:0 at every quality, with libjpeg's averaging downsampler.
    enc.set_sampling_factor(SamplingFactor::F_2_2);
    enc.set_chroma_subsampling_method(ChromaSubsamplingMethod::Average);
    enc.set_optimized_huffman_tables(false);
    enc.encode(&img.data, width, height, ColorType::Rgb)
        .context("JPEG encoding failed")?;
    Ok(out)
}

/// Decodes JPEG bytes to 8-bit RGB with the `image` crate.
pub fn decode(bytes: &[u8]) -> Result<RgbImage> {
    let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Jpeg)
        .context("JPEG decoding failed")?
        .into_rgb8();
    Ok(RgbImage {
        width: img.width() as usize,
        height: img.height() as usize,
        data: img.into_raw(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_size_and_is_close() {
        let (w, h) = (40usize, 24usize);
        let data: Vec<u8> = (0..w * h * 3).map(|i| ((i * 7) % 251) as u8).collect();
        let img = RgbImage {
            width: w,
            height: h,
            data,
        };
        let bytes = encode(&img, 90).expect("encode");
        assert_eq!(&bytes[..2], &[0xFF, 0xD8]);
        let dec = decode(&bytes).expect("decode");
        assert_eq!((dec.width, dec.height), (w, h));
        let small = encode(&img, 10).expect("encode");
        assert!(small.len() < bytes.len());
    }
}
