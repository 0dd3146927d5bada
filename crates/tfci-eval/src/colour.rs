//! The colour chart: does a codec keep the colours of saturated patches?
//!
//! `mbt2018-mean-msssim` once decoded a red parrot brown with an MS-SSIM that looked fine. This chart
//! (primaries, secondaries, orange, three skin tones and a hue ramp cut into eight patches) is coded
//! by a model and by PIL-equivalent JPEG at quality 50; for each patch the mean colour of its interior
//! (a 12 px border left out, so edges and ringing do not count) is compared with the original's as
//! CIELAB ΔE*ab (CIE76, D65). A model fails a patch when its ΔE exceeds JPEG q50's by more than
//! [`MARGIN_DE`]: about one just-noticeable difference (ΔE ≈ 2.3, Sharma 2003) plus slack for
//! the learned codecs' small low-frequency drifts, far below a hue change (red to brown is ΔE > 20).

use anyhow::Result;
use codec_core::{Codec, Limits, RgbImage};

use crate::jpeg;

/// Allowed ΔE*ab above JPEG q50's on the same patch.
pub const MARGIN_DE: f64 = 3.0;
/// The JPEG reference quality.
pub const JPEG_QUALITY: u8 = 50;
const PATCH: usize = 64;
const INSET: usize = 12;
const COLS: usize = 4;

/// The solid patches: name and sRGB colour.
const SOLIDS: [(&str, [u8; 3]); 12] = [
    ("red", [220, 30, 35]),
    ("green", [40, 170, 60]),
    ("blue", [35, 55, 200]),
    ("yellow", [240, 215, 40]),
    ("magenta", [200, 40, 170]),
    ("cyan", [40, 190, 210]),
    ("orange", [245, 135, 25]),
    ("purple", [110, 40, 150]),
    ("skin light", [241, 204, 177]),
    ("skin medium", [198, 143, 104]),
    ("skin dark", [112, 72, 52]),
    ("grey", [128, 128, 128]),
];
const RAMP_PATCHES: usize = 8;

/// One patch: its name and rectangle (x, y, w, h).
#[derive(Debug, Clone)]
pub struct Patch {
    pub name: String,
    rect: [usize; 4],
}

/// Fully saturated hue at `h` in [0, 1) (HSV with S = V = 1, scaled to 0..=230).
fn hue(h: f64) -> [u8; 3] {
    let f = |n: f64| {
        let k = (n + h * 6.0) % 6.0;
        let v = 1.0 - (k.min(4.0 - k).clamp(0.0, 1.0));
        (v * 230.0 + 15.0).round() as u8
    };
    [f(5.0), f(3.0), f(1.0)]
}

/// The chart (256 x 256) and its patches: three rows of four solids, then a horizontal hue ramp.
pub fn chart() -> (RgbImage, Vec<Patch>) {
    let rows = SOLIDS.len() / COLS;
    let (w, h) = (COLS * PATCH, (rows + 1) * PATCH);
    let mut data = vec![0u8; w * h * 3];
    let mut patches = Vec::new();
    for (i, (name, rgb)) in SOLIDS.iter().enumerate() {
        let (x0, y0) = ((i % COLS) * PATCH, (i / COLS) * PATCH);
        for y in y0..y0 + PATCH {
            for x in x0..x0 + PATCH {
                data[(y * w + x) * 3..][..3].copy_from_slice(rgb);
            }
        }
        patches.push(Patch {
            name: (*name).to_string(),
            rect: [x0, y0, PATCH, PATCH],
        });
    }
    let y0 = rows * PATCH;
    for y in y0..h {
        for x in 0..w {
            data[(y * w + x) * 3..][..3].copy_from_slice(&hue(x as f64 / w as f64));
        }
    }
    let seg = w / RAMP_PATCHES;
    for i in 0..RAMP_PATCHES {
        patches.push(Patch {
            name: format!("hue {:03}°", i * 360 / RAMP_PATCHES),
            rect: [i * seg, y0, seg, PATCH],
        });
    }
    (
        RgbImage {
            width: w,
            height: h,
            data,
        },
        patches,
    )
}

/// Mean sRGB colour of a patch's interior.
fn mean_rgb(img: &RgbImage, p: &Patch) -> [f64; 3] {
    let [x0, y0, pw, ph] = p.rect;
    let inset_x = INSET.min(pw / 4);
    let mut sum = [0.0f64; 3];
    let mut n = 0.0;
    for y in y0 + INSET..y0 + ph - INSET {
        for x in x0 + inset_x..x0 + pw - inset_x {
            let px = &img.data[(y * img.width + x) * 3..][..3];
            for c in 0..3 {
                sum[c] += f64::from(px[c]);
            }
            n += 1.0;
        }
    }
    sum.map(|s| s / n)
}

/// sRGB (0..=255) to CIELAB (D65).
fn lab(rgb: [f64; 3]) -> [f64; 3] {
    let lin = rgb.map(|v| {
        let c = v / 255.0;
        if c <= 0.040_45 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    });
    let [r, g, b] = lin;
    let x = (0.412_456_4 * r + 0.357_576_1 * g + 0.180_437_5 * b) / 0.950_47;
    let y = 0.212_672_9 * r + 0.715_152_2 * g + 0.072_175 * b;
    let z = (0.019_333_9 * r + 0.119_192 * g + 0.950_304_1 * b) / 1.088_83;
    let f = |t: f64| {
        if t > 216.0 / 24389.0 {
            t.cbrt()
        } else {
            (24389.0 / 27.0 * t + 16.0) / 116.0
        }
    };
    let (fx, fy, fz) = (f(x), f(y), f(z));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// ΔE*ab (CIE76) between the mean colours of `p` in `a` and `b`.
pub fn delta_e(a: &RgbImage, b: &RgbImage, p: &Patch) -> f64 {
    let (la, lb) = (lab(mean_rgb(a, p)), lab(mean_rgb(b, p)));
    la.iter()
        .zip(lb)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Per patch: name, ΔE of the codec at `level`, ΔE of JPEG q50.
pub fn check(codec: &Codec, level: u32) -> Result<Vec<(String, f64, f64)>> {
    let (img, patches) = chart();
    let limits = Limits::default();
    let bytes = codec.compress(&img, level, &limits)?;
    let packed = codec_core::container::Packed::from_bytes(&bytes)?;
    let decoded = codec.decompress_packed(&packed, &limits)?;
    let jpeg = jpeg::decode(&jpeg::encode(&img, JPEG_QUALITY)?)?;
    Ok(patches
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                delta_e(&img, &decoded, p),
                delta_e(&img, &jpeg, p),
            )
        })
        .collect())
}

/// The level the chart is checked at: the middle of the family's range (4 of 8, 2 of 4).
pub fn mid_level(levels: u32) -> u32 {
    levels.div_ceil(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_of_references() {
        let close =
            |a: [f64; 3], b: [f64; 3], tol: f64| a.iter().zip(b).all(|(x, y)| (x - y).abs() < tol);
        assert!(close(lab([255.0; 3]), [100.0, 0.0, 0.0], 1e-3));
        assert!(close(lab([0.0; 3]), [0.0, 0.0, 0.0], 1e-9));
        // sRGB red: L 53.24, a 80.09, b 67.20 (Lindbloom's calculator).
        assert!(close(lab([255.0, 0.0, 0.0]), [53.24, 80.09, 67.20], 0.02));
    }

    #[test]
    fn chart_patches_are_flat_and_a_hue_shift_is_large() {
        let (img, patches) = chart();
        assert_eq!((img.width, img.height, patches.len()), (256, 256, 20));
        for p in &patches {
            assert!(delta_e(&img, &img, p) == 0.0);
        }
        // The parrot failure: red decoded as brown is far outside the margin.
        let mut brown = img.clone();
        for px in brown.data.chunks_exact_mut(3) {
            if px == [220, 30, 35] {
                px.copy_from_slice(&[150, 70, 45]);
            }
        }
        assert!(delta_e(&img, &brown, &patches[0]) > 20.0);
    }

    /// Shipped families whose weights still move the chart's colours beyond the margin (issue 17,
    /// "Models a user would accept"). Like a strict expected failure: the test fails when one of
    /// them starts passing (then remove it here) and when any other family fails.
    const KNOWN_MOVING: [&str; 1] = ["b2018-gdn-128"];

    /// Every shipped model keeps the chart's colours at its middle level within [`MARGIN_DE`] of what
    /// JPEG q50 does, except the declared [`KNOWN_MOVING`] families, which must still fail.
    #[test]
    fn shipped_models_keep_colours() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
        let registry = codec_core::model::Registry::open(&dir).expect("models/manifest.json");
        let mut unexpected = Vec::new();
        for entry in registry.families() {
            let codec = Codec::new(registry.load(entry).expect("loads")).expect("prepares");
            let level = mid_level(entry.levels);
            let mut moved = Vec::new();
            for (name, de, de_jpeg) in check(&codec, level).expect("codes the chart") {
                if de > de_jpeg + MARGIN_DE {
                    moved.push(format!("{name} ΔE {de:.2} (JPEG q50 {de_jpeg:.2})"));
                }
            }
            let family = entry.family.as_str();
            let known = KNOWN_MOVING.contains(&family);
            eprintln!(
                "{family}-{level}: {} of 20 patches moved{}{}",
                moved.len(),
                if known { " (known)" } else { "" },
                if moved.is_empty() {
                    String::new()
                } else {
                    format!(": {}", moved.join(", "))
                }
            );
            if moved.is_empty() == known {
                unexpected.push(if known {
                    format!("{family} keeps its colours now: remove it from KNOWN_MOVING")
                } else {
                    format!("{family}-{level} moved colours: {}", moved.join(", "))
                });
            }
        }
        assert!(unexpected.is_empty(), "{}", unexpected.join("\n"));
    }
}
