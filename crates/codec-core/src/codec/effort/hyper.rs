//! The hyperprior's part of a search (`mbt2018-mean`): `z` is searched with `y`, so the means and
//! scales `h_s(z_hat)` move too. A `z` that lowers the rate of `y` by better means and scales, or
//! costs fewer bits itself, is found only this way; with `z` fixed the search can only fit `y` to
//! effort 0's hyperprior.
//!
//! Each iteration soft-rounds `z - median` (SGA, as for `y`), runs `h_s` on the tape, soft-rounds
//! `y * gain - mean` and rates it under the Gaussian tables. A scale picks a table row by a step
//! function (`scale_indexes`), which has no slope, so the relaxed rate reads a continuous row
//! position instead: within row `k`'s interval `(t[k-1], t[k]]` of the scale table it is
//! `k - 1/2 + a`, `a` the position of `ln s` between `ln t[k-1]` and `ln t[k]`, and the bits are
//! read from the two nearest rows' probabilities mixed linearly. Row `k` is read exactly at its interval's
//! middle (in log scale), the stand-in is continuous across the intervals, and the tables stay the
//! model's own integers. The gradients of the means and scales go back through `h_s`
//! (`cpu::backprop`) to `z`, which also pays its own rate from the z tables.
//!
//! At the end `z` is rounded, the encoder's own exact path turns it into scales, means and table
//! rows (what the decoder will compute from the file), and `y` is rounded around those means.

use std::f64::consts::LN_2;

use rayon::prelude::*;

use super::super::latent::{dequantize, quantize};
use super::super::prior::Hyper;
use super::super::{Codec, Latents};
use super::{sga, Problem};
use crate::cpu::backprop::DiffNet;
use crate::entropy::RateTables;
use crate::error::{Error, Result};
use crate::model::graph::Net;
use crate::tensor::Tensor;

use super::super::latent::SCALE_BOUND;

/// The fixed parts of the hyperprior's search.
pub(super) struct HyperSearch {
    h_s: DiffNet,
    z_tables: RateTables,
    z_medians: Vec<f32>,
    z_shape: (usize, usize, usize),
    /// `ln` of the scale table (validated positive and increasing when the model was read).
    ln_table: Vec<f64>,
}

/// What the rounded search found, in the encoder's terms.
pub(super) struct Found {
    pub objective: f64,
    y_symbols: Vec<i32>,
    z_symbols: Vec<i32>,
    scales: Tensor,
    means: Tensor,
    scale_indexes: Vec<u32>,
}

impl Found {
    /// Puts the found symbols and their hyperprior into `latents` (the analysis's `y` and `z`
    /// stay).
    pub fn replace(self, latents: &mut Latents) {
        latents.y_symbols = self.y_symbols;
        latents.z_symbols = Some(self.z_symbols);
        latents.scales = Some(self.scales);
        latents.means = Some(self.means);
        latents.scale_indexes = Some(self.scale_indexes);
    }
}

/// One value of `y` in an iteration: the soft-rounded residual, its derivative, and the rate's
/// slopes.
struct YTerm {
    bits: f64,
    u: f32,
    mean: f32,
    du: f64,
    /// d bits / d u.
    slope_u: f64,
    /// d bits / d scale.
    slope_s: f64,
}

impl Codec {
    /// The hyperprior part of a search from `latents` (which must hold `h_a`'s `z` of their `y`)
    /// and the bits of effort 0's `z`.
    ///
    /// # Errors
    /// [`Error::Argument`] for latents without `z` or with a `z` that is not `h_a`'s output for
    /// their `y`; [`Error::BadModel`] as [`HyperSearch::new`].
    pub(super) fn hyper_search(
        &self,
        h: &Hyper,
        z_tables: RateTables,
        latents: &Latents,
    ) -> Result<(HyperSearch, f64)> {
        let (Some(z), Some(z_sym)) = (&latents.z, &latents.z_symbols) else {
            return Err(Error::Argument(
                "search: hyperprior latents without z".into(),
            ));
        };
        let (Some(h_a), Some(h_s)) = (&self.family.h_a, &self.family.h_s) else {
            return Err(Error::BadModel("hyperprior model without h_a/h_s".into()));
        };
        let y = &latents.y;
        if (z.c, z.h, z.w) != h_a.output_shape((y.c, y.h, y.w)) || z_sym.len() != z.data.len() {
            return Err(Error::Argument(format!(
                "search: z is {}x{}x{} with {} symbols, not h_a's output for this y",
                z.c,
                z.h,
                z.w,
                z_sym.len()
            )));
        }
        let hyper = HyperSearch::new(h_s, z_tables, h, z, (y.c, y.h, y.w))?;
        let z_bits = hyper.z_bits(z_sym);
        Ok((hyper, z_bits))
    }
}

impl HyperSearch {
    /// # Errors
    /// [`Error::BadModel`] if `z` has more channels than the z tables or medians have rows, or
    /// `h_s` does not give `y_shape`'s means and scales.
    pub fn new(
        h_s: &Net,
        z_tables: RateTables,
        h: &Hyper,
        z: &Tensor,
        y_shape: (usize, usize, usize),
    ) -> Result<Self> {
        if z.c > h.z_medians.len() || z.c > z_tables.rows() {
            return Err(Error::BadModel(format!(
                "z has {} channels, the model's z medians and tables fewer",
                z.c
            )));
        }
        let (c, hh, ww) = h_s.output_shape((z.c, z.h, z.w));
        let (m, yh, yw) = y_shape;
        if c != 2 * m || hh < yh || ww < yw {
            return Err(Error::BadModel(format!(
                "h_s turns z into {c}x{hh}x{ww}, not the means and scales of a {m}x{yh}x{yw} y"
            )));
        }
        Ok(Self {
            h_s: DiffNet::prepare(h_s),
            z_tables,
            z_medians: h.z_medians.clone(),
            z_shape: (z.c, z.h, z.w),
            ln_table: h.scale_table.iter().map(|&t| (t as f64).ln()).collect(),
        })
    }

    /// Bits of `z`'s integer symbols (channel-major, `z_shape`) under the z tables.
    fn z_bits(&self, symbols: &[i32]) -> f64 {
        let zp = (self.z_shape.1 * self.z_shape.2).max(1);
        symbols
            .iter()
            .enumerate()
            .map(|(j, &s)| self.z_tables.bits(j / zp, s))
            .sum()
    }

    /// The continuous row position of scale `s` (module docs) and its derivative in `s`.
    fn row_position(&self, s: f32) -> (f64, f64) {
        let t = &self.ln_table;
        let last = t.len().saturating_sub(1);
        let bounded = s < SCALE_BOUND;
        let s = s.max(SCALE_BOUND) as f64;
        let ln_s = s.ln();
        // The row the coder uses: the smallest k with s <= t[k], else the last.
        let k = t[..last].partition_point(|&tk| tk < ln_s);
        if k == 0 || bounded {
            return (k as f64, 0.0);
        }
        let width = t[k] - t[k - 1];
        let rho = k as f64 - 0.5 + (ln_s - t[k - 1]) / width;
        if rho >= last as f64 {
            (last as f64, 0.0)
        } else {
            (rho, 1.0 / (width * s))
        }
    }

    /// The bits of `u` at row position `rho` of `tables`, `-log2` of the two nearest rows'
    /// probabilities mixed `(1 - a, a)` with `a = rho - floor(rho)`, and their slopes in `u` and
    /// in `rho`.
    fn bits_between_rows(tables: &RateTables, rho: f64, u: f32) -> (f64, f64, f64) {
        let r0 = rho.floor() as usize;
        let a = rho - r0 as f64;
        let (p0, d0) = tables.prob_and_slope(r0, u);
        if a == 0.0 || r0 + 1 >= tables.rows() {
            return (-p0.log2(), -d0 / (p0 * LN_2), 0.0);
        }
        let (p1, d1) = tables.prob_and_slope(r0 + 1, u);
        let p = (1.0 - a) * p0 + a * p1;
        let k = -1.0 / (p * LN_2);
        (-p.log2(), k * ((1.0 - a) * d0 + a * d1), k * (p1 - p0))
    }

    /// The relaxed objective and its gradient with respect to `v = [y * gain, z]`.
    pub fn gradient(&self, p: &Problem, v: &[f32], tau: f64, first: u64) -> (f64, Vec<f64>) {
        let (m, yh, yw) = p.shape;
        let plane = (yh * yw).max(1);
        let ny = m * yh * yw;
        let (vy, vz) = v.split_at(ny);
        let (zc, zh, zw) = self.z_shape;
        let zp = (zh * zw).max(1);
        let pixels = p.pixels();
        // z: soft-rounded around its medians, its own rate.
        let z_terms: Vec<(f32, f64, (f64, f64))> = vz
            .par_iter()
            .enumerate()
            .map(|(jz, &x)| {
                let c = jz / zp;
                let (u, du) = sga(x - self.z_medians[c], tau, first, ny + jz);
                (u, du, self.z_tables.bits_and_slope(c, u))
            })
            .collect();
        let z_hat = Tensor::from_vec(
            zc,
            zh,
            zw,
            z_terms
                .iter()
                .enumerate()
                .map(|(jz, t)| t.0 + self.z_medians[jz / zp])
                .collect(),
        );
        let (hs, tape) = self.h_s.forward(&z_hat);
        let at = |c: usize, i: usize| (c * hs.h + i / yw) * hs.w + i % yw;
        // y: soft-rounded around the means, rated between the rows its scale falls between.
        let y_terms: Vec<YTerm> = (0..ny)
            .into_par_iter()
            .with_min_len(4096)
            .map(|j| {
                let (c, i) = (j / plane, j % plane);
                let (s, mean) = (hs.data[at(c, i)], hs.data[at(m + c, i)]);
                let (u, du) = sga(vy[j] - mean, tau, first, j);
                let (rho, drho) = self.row_position(s);
                let (bits, slope_u, slope_rho) = Self::bits_between_rows(&p.tables, rho, u);
                YTerm {
                    bits,
                    u,
                    mean,
                    du,
                    slope_u,
                    slope_s: slope_rho * drho,
                }
            })
            .collect();
        let y_hat = p.y_hat(|j| y_terms[j].u + y_terms[j].mean);
        let (d, g_y) = p.distortion_grad(&y_hat);
        let mut grad = vec![0.0f64; v.len()];
        let mut g_hs = Tensor::zeros(hs.c, hs.h, hs.w);
        for (j, t) in y_terms.iter().enumerate() {
            let (c, i) = (j / plane, j % plane);
            // y_hat * gain = u + mean, u = sga(y * gain - mean).
            let g_yg = g_y.data[j] as f64 * p.gain_inv[c] as f64;
            let g_u = t.slope_u / pixels + g_yg;
            grad[j] = g_u * t.du;
            g_hs.data[at(m + c, i)] = (g_yg - g_u * t.du) as f32;
            g_hs.data[at(c, i)] = (t.slope_s / pixels) as f32;
        }
        let g_z = self.h_s.backward(tape, g_hs);
        for (jz, (&(_, du, (_, slope)), &gz)) in z_terms.iter().zip(&g_z.data).enumerate() {
            grad[ny + jz] = (gz as f64 + slope / pixels) * du;
        }
        let bits = y_terms.iter().map(|t| t.bits).sum::<f64>()
            + z_terms.iter().map(|t| t.2 .0).sum::<f64>();
        (d + bits / pixels, grad)
    }

    /// Rounds the search variable `v = [y * gain, z]` the way the encoder codes it and measures
    /// its objective.
    ///
    /// # Errors
    /// Those of the exact hyperprior path; [`Error::BadModel`] for a table row the model lacks.
    pub fn round(
        &self,
        codec: &Codec,
        h: &Hyper,
        p: &Problem,
        v: &[f32],
        budget: u64,
    ) -> Result<Found> {
        let (m, yh, yw) = p.shape;
        let ny = m * yh * yw;
        let (zc, zh, zw) = self.z_shape;
        let z = Tensor::from_vec(zc, zh, zw, v[ny..].to_vec());
        let z_symbols = quantize(&z, |c, _| self.z_medians[c]);
        let z_hat = dequantize(&z_symbols, zc, zh, zw, |c, _| self.z_medians[c]);
        let (scales, means, scale_indexes) = codec.hyper_params(h, &z_hat, yh, yw, budget)?;
        let y = Tensor::from_vec(m, yh, yw, v[..ny].to_vec());
        let y_symbols = quantize(&y, |c, i| means.channel(c)[i]);
        let rows = p.tables.rows();
        let row: Vec<usize> = scale_indexes.iter().map(|&i| i as usize).collect();
        if row.iter().any(|&r| r >= rows) {
            return Err(Error::BadModel(format!(
                "a symbol of y needs a table row the model's {rows} rows do not have"
            )));
        }
        let z_bits = self.z_bits(&z_symbols);
        let objective = p.rounded_at(&y_symbols, &means.data, &row, z_bits);
        Ok(Found {
            objective,
            y_symbols,
            z_symbols,
            scales,
            means,
            scale_indexes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Objective;
    use super::*;
    use crate::image::RgbImage;
    use crate::model::Registry;
    use crate::test_rng::Rng;
    use crate::Limits;

    /// The relaxed objective's gradient in `z` (through the Gaussian rows, the means, the scales
    /// and `h_s`) and in `y` matches central differences of the objective itself, with the
    /// shipped mbt2018-mean-msssim on a small synthetic image at a fixed temperature and noise.
    fn shipped_mbt() -> (Codec, crate::model::FamilyEntry) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
        let registry = Registry::open(&dir).expect("models/manifest.json");
        let entry = registry.family("mbt2018-mean-msssim").expect("shipped");
        let codec = Codec::new(registry.load(entry).expect("load")).expect("codec");
        (codec, entry.clone())
    }

    /// Latents whose `z` is not `h_a`'s output for their `y` (the fields are public) are an
    /// argument error before `h_s` runs on them, not a panic.
    #[test]
    fn a_z_of_another_shape_is_refused() {
        let (codec, entry) = shipped_mbt();
        let image = RgbImage::new(40, 24, vec![128; 40 * 24 * 3]).expect("image");
        let limits = Limits::default();
        let objective = Objective::of(&entry, 1, None).expect("objective");
        let good = codec.analyze(&image, 1, &limits).expect("analyze");
        for (c, h, w) in [
            (1, 1, 1),
            (codec.family().n, 2, 1),
            (codec.family().n + 1, 1, 1),
        ] {
            let mut latents = good.clone();
            latents.z = Some(Tensor::from_vec(c, h, w, vec![0.5; c * h * w]));
            latents.z_symbols = Some(vec![0; c * h * w]);
            let got = codec.search(&image, &mut latents, 1, &objective, &limits);
            assert!(
                matches!(got, Err(Error::Argument(_))),
                "z {c}x{h}x{w}: {got:?}"
            );
        }
    }

    #[test]
    fn the_gradient_matches_finite_differences() {
        let (codec, entry) = shipped_mbt();
        let entry = &entry;
        let (w, h) = (80, 64);
        let data = (0..w * h)
            .flat_map(|i| {
                let (x, y) = ((i % w) as f32, (i / w) as f32);
                let v = ((x * 0.31).sin() * (y * 0.17).cos() * 90.0 + 128.0) as u8;
                [
                    v,
                    (x * 3.0) as u8,
                    if (x as usize / 8 + y as usize / 8).is_multiple_of(2) {
                        40
                    } else {
                        200
                    },
                ]
            })
            .collect();
        let image = RgbImage::new(w, h, data).expect("image");
        let level = 2;
        let objective = Objective::of(entry, level, None).expect("objective");
        let latents = codec
            .analyze(&image, level, &Limits::default())
            .expect("analyze");
        let p = codec
            .problem(&image, &latents, &objective)
            .expect("problem");
        let hyper = p.hyper.as_ref().expect("a hyperprior search");
        let (_, gain, _) = codec.gains_for(level, None).expect("gains");
        let (m, yh, yw) = p.shape;
        let ny = m * yh * yw;
        let mut v: Vec<f32> = (0..ny)
            .map(|j| latents.y.data[j] * gain[j / (yh * yw)])
            .collect();
        v.extend_from_slice(&latents.z.as_ref().expect("z").data);
        let (tau, first) = (0.3, 977);
        let (_, g) = hyper.gradient(&p, &v, tau, first);
        let mut rng = Rng(11);
        for (name, range) in [("z", ny..v.len()), ("y", 0..ny)] {
            let d: Vec<f32> = (0..v.len())
                .map(|j| if range.contains(&j) { rng.f(1.0) } else { 0.0 })
                .collect();
            let at = |eps: f32| {
                let x: Vec<f32> = v.iter().zip(&d).map(|(&a, &b)| a + eps * b).collect();
                hyper.gradient(&p, &x, tau, first).0
            };
            let eps = 5e-3f32;
            let fd = (at(eps) - at(-eps)) / (2.0 * eps as f64);
            let dot: f64 = g.iter().zip(&d).map(|(&a, &b)| a * b as f64).sum();
            assert!(
                (fd - dot).abs() <= 0.03 * dot.abs() && dot.abs() > 1e-6,
                "{name}: finite difference {fd}, gradient {dot}"
            );
        }
    }

    /// CompressAI's 64 scales and two made-up rows per scale are not needed for the position:
    /// only the table.
    fn search_with_table() -> HyperSearch {
        let (lo, hi) = (0.11f64.ln(), 256f64.ln());
        let table: Vec<f32> = (0..64)
            .map(|i| (lo + (hi - lo) * i as f64 / 63.0).exp() as f32)
            .collect();
        let cdf = [0, 32768, 65536];
        HyperSearch {
            h_s: DiffNet::prepare(&Net {
                name: "none".into(),
                layers: vec![],
            }),
            z_tables: RateTables::new(&cdf, 1, 3, &[3], &[0]).expect("valid"),
            z_medians: vec![0.0],
            z_shape: (1, 1, 1),
            ln_table: table.iter().map(|&t| (t as f64).ln()).collect(),
        }
    }

    /// The position rounds to the coder's row (`scale_indexes`) inside each interval, is
    /// continuous across intervals, and its slope matches finite differences.
    #[test]
    fn row_position_follows_the_coder_s_rows() {
        let s = search_with_table();
        let table: Vec<f32> = s.ln_table.iter().map(|&l| l.exp() as f32).collect();
        let mut scale = 0.05f32;
        while scale < 400.0 {
            let (rho, slope) = s.row_position(scale);
            let k = super::super::super::scale_indexes(&[scale], &table)[0] as f64;
            assert!(
                (rho - k).abs() <= 0.5 + 1e-6,
                "scale {scale}: position {rho}, row {k}"
            );
            if scale > 0.12 && scale < 200.0 {
                let h = scale * 1e-4;
                let fd =
                    (s.row_position(scale + h).0 - s.row_position(scale - h).0) / (2.0 * h as f64);
                assert!(
                    (fd - slope).abs() <= 1e-2 * slope.abs(),
                    "scale {scale}: {fd} vs {slope}"
                );
            }
            scale *= 1.0137;
        }
        // Below the bound and above the table: the end rows, no slope.
        assert_eq!(s.row_position(0.01), (0.0, 0.0));
        assert_eq!(s.row_position(1e6), (63.0, 0.0));
    }
}
