//! Encoder effort: a per-image search for the latent the fixed decoder turns into the best
//! rate-distortion result (Campos et al. 2019; Yang, Bamler & Mandt 2020, "Improving inference for
//! neural image compression"). The decoder and the format do not change, so a file made with
//! effort decodes with any tfci-dec; only the encoder spends more time.
//!
//! What is optimised is the family's own training objective on the shipped decoder, measured the
//! way the file will be: the rate of `y` from the model's integer tables (`entropy::RateTables`,
//! interpolated between integers so it has a slope), the distortion from the manifest (`metric`,
//! `lambdas`, and for MS-SSIM families the MSE term that keeps colours: `mse_term`,
//! `mse_lambdas`). The variable is `v = y * gain - center` (the center is the level's median),
//! started at `g_a`'s value; with a hyperprior it is `y * gain` and `z`, and the means and scales
//! follow `z` through `h_s` ([`hyper`]). Each Adam step soft-rounds `v` (for a hyperprior
//! `y * gain - mean` and `z - median`) by stochastic Gumbel annealing (SGA): `floor(v) + w` with
//! `w = sigmoid((l_c + G_c - l_f - G_f) / tau)`, `l_f = -atanh(v - floor v) / tau`,
//! `l_c = -atanh(floor v + 1 - v) / tau`, Gumbel noise `G` from a fixed-seed generator (so a run is
//! deterministic) and `tau` annealed from 0.5 to 0.05. At the end `v` is rounded, and the result
//! replaces effort 0's symbols only if its objective (the 8-bit decoded image, the integer rate) is
//! lower: effort never makes a file worse by its own measure.
//!
//! Gradients come from `cpu::backprop` (`g_s`, `h_s`) and `msssim.rs`; the search runs on the CPU
//! whichever backend the codec has (a GPU codec says so in a note).

mod hyper;

use std::time::Instant;

use rayon::prelude::*;

use super::limits::bytes_text;
use super::msssim::Reference;
use super::prior::Prior;
use super::{Codec, Latents, Limits};
use crate::cpu::backprop::DiffNet;
use crate::entropy::RateTables;
use crate::error::{Error, Result};
use crate::image::RgbImage;
use crate::model::graph::volume;
use crate::model::{FamilyEntry, Tables};
use crate::tensor::Tensor;

/// The highest effort.
pub const MAX_EFFORT: u8 = 3;

/// Adam iterations of each effort (index = effort).
const ITERATIONS: [usize; MAX_EFFORT as usize + 1] = [0, 20, 40, 150];
/// Adam's step on `v`: on three training photos (not Kodak) at 20 and 40 iterations 0.02 lowered
/// the objective more than 0.013, 0.03, 0.045 and 0.06 (0.1 overshot); docs/effort.md.
const STEP: f64 = 0.02;
/// SGA's temperature at the first and the last iteration.
const TAU: (f64, f64) = (0.5, 0.05);
/// The Gumbel noise generator's seed.
const SEED: u64 = 0x7f0c_1e55_5eed_0001;

/// The Adam iterations of an effort, or [`Error::Argument`] above [`MAX_EFFORT`].
pub fn iterations(effort: u8) -> Result<usize> {
    ITERATIONS.get(effort as usize).copied().ok_or_else(|| {
        Error::Argument(format!(
            "effort {effort}: the encoder's efforts are 0 (none) to {MAX_EFFORT}"
        ))
    })
}

/// A family's training objective at one rate: `ms_ssim_weight * (1 - MS-SSIM) + mse_weight *
/// 255² * MSE + bpp` (pytorch_msssim's MS-SSIM, images in `[0, 1]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Objective {
    pub ms_ssim_weight: f64,
    pub mse_weight: f64,
}

impl Objective {
    /// The objective of `level`, or between levels for a rate parameter (weights interpolated
    /// geometrically, as the gains are), from the manifest entry's `metric`, `lambdas` and, for
    /// `"ms-ssim"`, `mse_term` and `mse_lambdas`.
    ///
    /// # Errors
    /// [`Error::BadModel`] if the entry lacks them or they are not positive numbers.
    pub fn of(entry: &FamilyEntry, level: u32, rd: Option<f32>) -> Result<Objective> {
        let bad = |what: &str| {
            Error::BadModel(format!(
                "{}: the manifest has no usable {what} (needed for --effort)",
                entry.family
            ))
        };
        let list = |key: &str| -> Result<Vec<f64>> {
            let v = entry.record.get(key).and_then(|v| v.as_array());
            let v: Option<Vec<f64>> = v.and_then(|a| {
                a.iter()
                    .map(|x| x.as_f64().filter(|x| *x > 0.0))
                    .collect::<Option<Vec<f64>>>()
            });
            v.filter(|v| v.len() >= entry.levels as usize)
                .ok_or_else(|| bad(key))
        };
        let (l, t) = match rd {
            Some(r) if r.is_finite() && r >= 1.0 && r <= entry.levels as f32 => {
                let l = (r.floor() as u32).min(entry.levels);
                (l, (r - l as f32) as f64)
            }
            Some(_) => return Err(bad("rate parameter")),
            None => (level, 0.0),
        };
        if l == 0 || l > entry.levels {
            return Err(bad("level"));
        }
        let at = |v: &[f64]| {
            let a = v[l as usize - 1];
            if t > 0.0 {
                a.powf(1.0 - t) * v[l as usize].powf(t)
            } else {
                a
            }
        };
        let lambdas = list("lambdas")?;
        match entry.record.get("metric").and_then(|m| m.as_str()) {
            Some("mse") => Ok(Objective {
                ms_ssim_weight: 0.0,
                mse_weight: at(&lambdas),
            }),
            Some("ms-ssim") => {
                let term = entry
                    .record
                    .get("mse_term")
                    .and_then(|v| v.as_f64())
                    .unwrap_or(0.0);
                let mse = if term > 0.0 {
                    term * at(&list("mse_lambdas")?)
                } else {
                    0.0
                };
                Ok(Objective {
                    ms_ssim_weight: at(&lambdas),
                    mse_weight: mse,
                })
            }
            _ => Err(bad("metric")),
        }
    }

    /// The distortion terms of `x_hat` against `x` (both `3 x H x W` in `[0, 1]`; `reference` is
    /// `x`'s MS-SSIM side, needed when the objective has an MS-SSIM term) and, with `grad`, their
    /// gradient with respect to `x_hat`.
    fn distortion(
        &self,
        x_hat: &Tensor,
        x: &Tensor,
        reference: Option<&Reference>,
        grad: bool,
    ) -> (f64, Option<Tensor>) {
        let n = x.data.len().max(1) as f64;
        let k = self.mse_weight * 255.0 * 255.0;
        let mse = x_hat
            .data
            .iter()
            .zip(&x.data)
            .map(|(&a, &b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            / n;
        let mut value = k * mse;
        let mut g = grad.then(|| {
            let data = x_hat
                .data
                .iter()
                .zip(&x.data)
                .map(|(&a, &b)| (2.0 * k * (a - b) as f64 / n) as f32)
                .collect();
            Tensor::from_vec(x.c, x.h, x.w, data)
        });
        if let (true, Some(reference)) = (self.ms_ssim_weight > 0.0, reference) {
            let (ms, ms_grad) = reference.ms_ssim(x_hat, grad);
            value += self.ms_ssim_weight * (1.0 - ms);
            if let (Some(g), Some(mg)) = (g.as_mut(), ms_grad) {
                let w = self.ms_ssim_weight as f32;
                g.data
                    .iter_mut()
                    .zip(&mg.data)
                    .for_each(|(a, &b)| *a -= w * b);
            }
        }
        (value, g)
    }
}

/// What a search did.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchReport {
    pub effort: u8,
    pub iterations: usize,
    /// The objective of effort 0's latent and of the searched one (rounded, 8-bit image); the
    /// file holds the searched one only when `after < before`.
    pub before: f64,
    pub after: f64,
    /// Whether the searched latent replaced effort 0's (`after < before`).
    pub kept: bool,
    pub seconds: f64,
}

/// The `k`-th Gumbel(0, 1) sample (from 1) of the SplitMix64 stream seeded `seed`. SplitMix64's
/// state after `k` steps is `seed + k * golden`, so any sample is computed on its own: the samples of
/// an iteration are drawn in parallel and are, bit for bit, those of the sequential stream.
fn gumbel(seed: u64, k: u64) -> f64 {
    let mut z = seed.wrapping_add(k.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let u = ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -(-u.ln()).ln()
}

/// SGA's soft rounding of `v` at temperature `tau`: `(floor(v) + w, dw/dv)`.
fn soft_round(v: f32, tau: f64, g_f: f64, g_c: f64) -> (f32, f64) {
    const EPS: f64 = 1e-5;
    let f = v.floor();
    let a = (v - f) as f64;
    let (a_f, a_c) = (a.clamp(EPS, 1.0 - EPS), (1.0 - a).clamp(EPS, 1.0 - EPS));
    let l_f = -a_f.atanh() / tau;
    let l_c = -a_c.atanh() / tau;
    let w = 1.0 / (1.0 + (-((l_c + g_c) - (l_f + g_f)) / tau).exp());
    let dl_f = if a > EPS && a < 1.0 - EPS {
        -1.0 / (tau * (1.0 - a * a))
    } else {
        0.0
    };
    let dl_c = if (1.0 - a) > EPS && (1.0 - a) < 1.0 - EPS {
        1.0 / (tau * (1.0 - (1.0 - a) * (1.0 - a)))
    } else {
        0.0
    };
    (f + w as f32, w * (1.0 - w) / tau * (dl_c - dl_f))
}

/// The fixed parts of one image's search.
struct Problem<'a> {
    net: DiffNet,
    x: Tensor,
    /// `x`'s MS-SSIM side, when the objective has an MS-SSIM term.
    reference: Option<Reference>,
    objective: &'a Objective,
    /// Per element of `y`: the center and the table row.
    center: Vec<f32>,
    row: Vec<usize>,
    tables: RateTables,
    gain_inv: Vec<f32>,
    shape: (usize, usize, usize),
    /// Bits of everything but `y` (`z` for the hyperprior).
    other_bits: f64,
    /// The hyperprior's part of the search (`z`, `h_s`), when the family has one.
    hyper: Option<hyper::HyperSearch>,
}

impl Problem<'_> {
    fn pixels(&self) -> f64 {
        (self.x.h * self.x.w).max(1) as f64
    }

    /// `y_hat = centered(j) * gain_inv` over `y`'s elements (`centered`: a symbol or a soft-rounded
    /// value plus its center).
    fn y_hat(&self, centered: impl Fn(usize) -> f32) -> Tensor {
        let (m, h, w) = self.shape;
        let plane = (h * w).max(1);
        let data = (0..m * h * w)
            .map(|j| centered(j) * self.gain_inv[j / plane])
            .collect();
        Tensor::from_vec(m, h, w, data)
    }

    /// The objective of effort 0's integer symbols, measured on the 8-bit image the decoder will
    /// write.
    fn rounded(&self, symbols: &[i32]) -> f64 {
        self.rounded_at(symbols, &self.center, &self.row, self.other_bits)
    }

    /// The objective of integer symbols `y` with their centers and table rows, and the bits of
    /// everything else.
    fn rounded_at(&self, symbols: &[i32], center: &[f32], row: &[usize], other_bits: f64) -> f64 {
        let y_hat = self.y_hat(|j| symbols[j] as f32 + center[j]);
        let (x_hat, _) = self.net.forward(&y_hat);
        let x8 = RgbImage::quantize(&x_hat.crop(self.x.h, self.x.w)).as_tensor();
        let (d, _) = self
            .objective
            .distortion(&x8, &self.x, self.reference.as_ref(), false);
        let bits: f64 = symbols
            .iter()
            .zip(row)
            .map(|(&s, &r)| self.tables.bits(r, s))
            .sum();
        d + (bits + other_bits) / self.pixels()
    }

    /// The distortion of `g_s(y_hat)` (clamped to `[0, 1]`, as the decoder writes it) and its
    /// gradient with respect to `y_hat`.
    fn distortion_grad(&self, y_hat: &Tensor) -> (f64, Tensor) {
        let (out, tape) = self.net.forward(y_hat);
        let (h, w) = (self.x.h, self.x.w);
        let (oc, oh, ow) = (out.c, out.h, out.w);
        let mut x_hat = out.crop(h, w);
        let inside: Vec<bool> = x_hat.data.iter().map(|v| (0.0..=1.0).contains(v)).collect();
        x_hat.data.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
        let (d, g) = self
            .objective
            .distortion(&x_hat, &self.x, self.reference.as_ref(), true);
        let mut g_out = Tensor::zeros(oc, oh, ow);
        if let Some(g) = g {
            for c in 0..g.c {
                for y in 0..h {
                    let src = &g.channel(c)[y * w..(y + 1) * w];
                    let ok = &inside[c * h * w + y * w..c * h * w + (y + 1) * w];
                    let dst = &mut g_out.channel_mut(c)[y * ow..y * ow + w];
                    for ((d, &s), &k) in dst.iter_mut().zip(src).zip(ok) {
                        *d = if k { s } else { 0.0 };
                    }
                }
            }
        }
        (d, self.net.backward(tape, g_out))
    }

    /// The relaxed objective and its gradient with respect to the search variable `v` at SGA
    /// temperature `tau`, the Gumbel samples of value `j` being `first + 2j + 1` and `+ 2`.
    fn gradient(&self, v: &[f32], tau: f64, first: u64) -> (f64, Vec<f64>) {
        if let Some(hyper) = &self.hyper {
            return hyper.gradient(self, v, tau, first);
        }
        let (u, du): (Vec<f32>, Vec<f64>) = v
            .par_iter()
            .enumerate()
            .with_min_len(4096)
            .map(|(j, &vj)| sga(vj, tau, first, j))
            .unzip();
        let mut bits = 0.0;
        let mut grad: Vec<f32> = u
            .iter()
            .zip(&self.row)
            .map(|(&uj, &r)| {
                let (b, slope) = self.tables.bits_and_slope(r, uj);
                bits += b;
                (slope / self.pixels()) as f32
            })
            .collect();
        let y_hat = self.y_hat(|j| u[j] + self.center[j]);
        let plane = (self.shape.1 * self.shape.2).max(1);
        let (d, g_y) = self.distortion_grad(&y_hat);
        for (j, (gj, &gy)) in grad.iter_mut().zip(&g_y.data).enumerate() {
            *gj += gy * self.gain_inv[j / plane];
        }
        let value = d + (bits + self.other_bits) / self.pixels();
        (
            value,
            grad.iter().zip(&du).map(|(&g, &d)| g as f64 * d).collect(),
        )
    }
}

/// SGA's soft rounding of value `j` of the search variable at iteration samples `first`.
fn sga(v: f32, tau: f64, first: u64, j: usize) -> (f32, f64) {
    let k = first + 2 * j as u64;
    soft_round(v, tau, gumbel(SEED, k + 1), gumbel(SEED, k + 2))
}

impl Codec {
    /// Searches `latents.y_symbols` for a lower objective with the fixed decoder (module docs) and
    /// replaces them when it finds one. Effort 0 does nothing (`Ok(None)`); the latents must come
    /// from [`Codec::analyze`] or [`Codec::analyze_rd`] of `image`.
    ///
    /// The search holds whole activations (no tiles): an image whose search would need more than
    /// `limits.max_memory` ([`Codec::search_memory`]) is refused before anything is allocated.
    ///
    /// # Errors
    /// [`Error::Argument`] for an effort above [`MAX_EFFORT`] or latents that do not belong to the
    /// image; [`Error::ImageSize`] over the memory limit; the errors of the tables.
    pub fn search(
        &self,
        image: &RgbImage,
        latents: &mut Latents,
        effort: u8,
        objective: &Objective,
        limits: &Limits,
    ) -> Result<Option<SearchReport>> {
        self.search_with_progress(image, latents, effort, objective, limits, &|_, _| {})
    }

    /// [`Codec::search`], calling `progress(done, total)` after every iteration (for a progress
    /// bar; the search is the same).
    pub fn search_with_progress(
        &self,
        image: &RgbImage,
        latents: &mut Latents,
        effort: u8,
        objective: &Objective,
        limits: &Limits,
        progress: &dyn Fn(usize, usize),
    ) -> Result<Option<SearchReport>> {
        let n = iterations(effort)?;
        if n == 0 {
            return Ok(None);
        }
        image.check()?;
        self.check_latents(latents)?;
        let need = self.search_memory(image.width, image.height, objective);
        if need > limits.max_memory {
            return Err(Error::ImageSize {
                width: image.width as u64,
                height: image.height as u64,
                reason: format!(
                    "a search at effort {effort} needs about {}, more than the memory limit of {} \
                     (raise it with --max-memory or TFCI_MAX_MEMORY, or use effort 0)",
                    bytes_text(need),
                    bytes_text(limits.max_memory)
                ),
            });
        }
        let start = Instant::now();
        if self.backend.is_gpu() {
            if let Ok(mut notes) = self.notes.lock() {
                notes.push(format!(
                    "effort {effort}: the latent search runs on the CPU (the GPU backend has no backward passes)"
                ));
            }
        }
        let p = self.problem(image, latents, objective)?;
        let (m, yh, yw) = p.shape;
        let plane = yh * yw;
        let gain = {
            let (_, gain, _) = self.gains_for(latents.level, latents.rd_parameter)?;
            gain
        };
        // `v`: `y * gain - center`, or for the hyperprior `y * gain` and then `z` (their centers
        // move with `z`).
        let mut v: Vec<f32> = (0..m * plane)
            .map(|j| latents.y.data[j] * gain[j / plane.max(1)])
            .collect();
        match (&p.hyper, &latents.z) {
            (Some(_), Some(z)) => v.extend_from_slice(&z.data),
            _ => v.iter_mut().zip(&p.center).for_each(|(x, &c)| *x -= c),
        }
        let before = p.rounded(&latents.y_symbols);
        let (mut m1, mut m2) = (vec![0.0f64; v.len()], vec![0.0f64; v.len()]);
        let (b1, b2) = (0.9f64, 0.999f64);
        for i in 0..n {
            let frac = if n > 1 {
                i as f64 / (n - 1) as f64
            } else {
                1.0
            };
            let tau = TAU.0 * (TAU.1 / TAU.0).powf(frac);
            // Two samples per value per iteration, in the order of the values.
            let (_, g) = p.gradient(&v, tau, 2 * (i as u64) * (v.len() as u64));
            let t = (i + 1) as i32;
            let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
            for j in 0..v.len() {
                let gj = g[j];
                m1[j] = b1 * m1[j] + (1.0 - b1) * gj;
                m2[j] = b2 * m2[j] + (1.0 - b2) * gj * gj;
                v[j] -= (STEP * (m1[j] / c1) / ((m2[j] / c2).sqrt() + 1e-8)) as f32;
            }
            progress(i + 1, n);
        }
        let (after, kept) = match (&self.prior, &p.hyper) {
            (Prior::Hyper(h), Some(hyper)) => {
                let budget = self.check_size(limits, image.width, image.height)?;
                let found = hyper.round(self, h, &p, &v, budget)?;
                let kept = found.objective < before;
                let after = found.objective;
                if kept {
                    found.replace(latents);
                }
                (after, kept)
            }
            _ => {
                let symbols: Vec<i32> = v
                    .iter()
                    .map(|&x| crate::tensor::round_ties_even(x) as i32)
                    .collect();
                let after = p.rounded(&symbols);
                let kept = after < before;
                if kept {
                    latents.y_symbols = symbols;
                }
                (after, kept)
            }
        };
        Ok(Some(SearchReport {
            effort,
            iterations: n,
            before,
            after,
            kept,
            seconds: start.elapsed().as_secs_f64(),
        }))
    }

    /// About the most bytes [`Codec::search`] holds for a `width x height` image: every activation
    /// of `g_s` three times (the live one, the tape's copy, the gradient), MS-SSIM's f64 planes
    /// (about 20 per channel, the channels in parallel), the image and the reconstruction, and 48
    /// bytes of search state per latent value.
    pub fn search_memory(&self, width: usize, height: usize, objective: &Objective) -> u64 {
        let y = self.family.g_a.output_shape((3, height, width));
        let mut shape = y;
        let mut values = volume(shape);
        for layer in &self.family.g_s.layers {
            shape = layer.output_shape(shape);
            values = values.saturating_add(volume(shape));
        }
        // The hyperprior's `h_s` on the tape, and `z`'s search state.
        if let (Some(h_a), Some(h_s)) = (&self.family.h_a, &self.family.h_s) {
            let mut shape = h_a.output_shape(y);
            values = values.saturating_add(volume(shape).saturating_mul(4));
            for layer in &h_s.layers {
                shape = layer.output_shape(shape);
                values = values.saturating_add(volume(shape));
            }
        }
        let pixels = volume((1, height, width));
        let ms_ssim = if objective.ms_ssim_weight > 0.0 {
            pixels.saturating_mul(3 * 20 * 8)
        } else {
            0
        };
        [
            values.saturating_mul(12),
            ms_ssim,
            pixels.saturating_mul(24),
            volume(y).saturating_mul(48),
        ]
        .into_iter()
        .fold(0u64, u64::saturating_add)
    }

    /// The fixed parts of a search: the decoder, the image, the centers, rows and tables of `y`.
    fn problem<'a>(
        &self,
        image: &RgbImage,
        latents: &Latents,
        objective: &'a Objective,
    ) -> Result<Problem<'a>> {
        let m = self.family.m;
        let y = &latents.y;
        let plane = y.h * y.w;
        let fits = y.c == m
            && latents.y_symbols.len() == y.data.len()
            && latents.x_shape == [image.height, image.width]
            && [y.h, y.w]
                == latents
                    .x_shape
                    .map(|v| v.div_ceil(crate::model::Architecture::Y_STRIDE));
        if !fits {
            return Err(Error::Argument(
                "search: the latents are not the analysis of this image".into(),
            ));
        }
        let (level, _, gain_inv) = self.gains_for(latents.level, latents.rd_parameter)?;
        let rate = |t: &crate::model::CdfRows| {
            RateTables::new(&t.cdf, t.rows, t.row_len, &t.cdf_len, &t.offset)
        };
        let (center, row, tables, other_bits, hyper): (Vec<f32>, Vec<usize>, _, f64, _) =
            match (&self.prior, &self.family.tables) {
                (Prior::Factorized { medians, .. }, Tables::Factorized { y_eb }) => {
                    let first = (level as usize - 1) * m;
                    let med = medians
                        .get(first..first + m)
                        .ok_or_else(|| Error::BadModel(format!("no medians for level {level}")))?;
                    let center = (0..m * plane).map(|j| med[j / plane]).collect();
                    let row = (0..m * plane).map(|j| first + j / plane).collect();
                    (center, row, rate(&y_eb.cdf)?, 0.0, None)
                }
                (Prior::Hyper(h), Tables::Hyperprior { z_eb, y_gc }) => {
                    let (hyper, z_bits) = self.hyper_search(h, rate(&z_eb.cdf)?, latents)?;
                    let (Some(means), Some(indexes)) = (&latents.means, &latents.scale_indexes)
                    else {
                        return Err(Error::Argument(
                            "search: hyperprior latents without means".into(),
                        ));
                    };
                    let row = indexes.iter().map(|&i| i as usize).collect();
                    (
                        means.data.clone(),
                        row,
                        rate(&y_gc.cdf)?,
                        z_bits,
                        Some(hyper),
                    )
                }
                _ => return Err(Error::BadModel("prior and tables disagree".into())),
            };
        // A row the coder would refuse (a hostile model file) is an error here too, not a panic.
        let rows = tables.rows();
        if row.iter().any(|&r| r >= rows) {
            return Err(Error::BadModel(format!(
                "a symbol of y needs a table row the model's {rows} rows do not have"
            )));
        }
        let x = image.to_tensor()?;
        Ok(Problem {
            net: DiffNet::prepare(&self.family.g_s),
            reference: (objective.ms_ssim_weight > 0.0).then(|| Reference::new(&x)),
            x,
            objective,
            center,
            row,
            tables,
            gain_inv,
            shape: (m, y.h, y.w),
            other_bits,
            hyper,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The counter-based samples are the sequential SplitMix64 stream's, bit for bit (what the
    /// files of the first release of `--effort` were searched with).
    #[test]
    fn gumbel_samples_are_the_sequential_stream() {
        let mut state = SEED;
        for k in 1..=10_000u64 {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let u = ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            let want = -(-u.ln()).ln();
            assert_eq!(gumbel(SEED, k).to_bits(), want.to_bits(), "sample {k}");
        }
    }
}
