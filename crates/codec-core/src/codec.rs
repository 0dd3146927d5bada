//! The compress and decompress pipelines of the three families (docs/model-format.md,
//! "The computation the tables belong to").
//!
//! Everything that decides a probability table runs on [`Math::Exact`]: the `z` medians are static,
//! `z_hat` is an integer plus a median, and `h_s`'s body and scale half are the fixed-order FMA-free
//! kernel, so the scale indexes are bit-identical on every machine. The transforms and the means run
//! on [`Math::Fast`] or on the GPU ([`crate::backend`]): drift there moves pixels, never the parse.

use crate::backend::Backend;
use crate::container::{Packed, Value};
use crate::cpu::{CpuNet, Math};
use crate::entropy::{self, CdfTables, RowMap};
use crate::error::{Error, Result};
use crate::image::RgbImage;
use crate::model::graph::{Conv, Layer, Net};
use crate::model::{Architecture, CdfRows, Family, Tables};
use crate::tensor::Tensor;
use crate::tiling::Geometry;
use crate::transform::{Notes, Transform};

/// CompressAI's lower bound on Gaussian scales (`GaussianConditional(scale_bound=0.11)`).
pub const SCALE_BOUND: f32 = 0.11;

/// Size limits checked before any allocation sized from a header or an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_width: usize,
    pub max_height: usize,
    pub max_pixels: usize,
    /// Bytes the transforms may hold at once on the CPU backend (see [`Codec::memory_needed`]);
    /// a tiny file must not be able to claim gigabytes.
    pub max_memory: u64,
}

/// The default [`Limits::max_memory`]: 4 GiB, which a laptop survives; a 24-megapixel photo fits
/// with every shipped model (`tests/hostile.rs` prints the estimates).
pub const DEFAULT_MAX_MEMORY: u64 = 4 << 30;

/// Activation bytes a CPU transform holds at once before it works in tiles: every Kodak image and
/// most photos up to about 2 Mpx run in one piece, larger ones in tiles of this size, so memory
/// grows only with the image and its latents (see [`Codec::memory_needed`]).
pub const CPU_TILE_BUDGET: u64 = 256 << 20;

impl Default for Limits {
    /// 65535 per side (TFC stores int32 shapes; PNG allows more, memory does not), 64 Mpx and
    /// [`DEFAULT_MAX_MEMORY`].
    fn default() -> Self {
        Self {
            max_width: 65_535,
            max_height: 65_535,
            max_pixels: 1 << 26,
            max_memory: DEFAULT_MAX_MEMORY,
        }
    }
}

impl Limits {
    /// Checks an image size (also a size read from a file header).
    pub fn check(&self, width: u64, height: u64) -> Result<()> {
        let err = |reason: String| {
            Err(Error::ImageSize {
                width,
                height,
                reason,
            })
        };
        if width == 0 || height == 0 {
            return err("empty image".into());
        }
        if width > self.max_width as u64 || height > self.max_height as u64 {
            return err(format!(
                "larger than the limit of {}x{}",
                self.max_width, self.max_height
            ));
        }
        if width.saturating_mul(height) > self.max_pixels as u64 {
            return err(format!("more than the limit of {} pixels", self.max_pixels));
        }
        Ok(())
    }
}

/// What the encoder computed for one image, named as in the papers and the golden fixtures.
#[derive(Clone, Debug)]
pub struct Latents {
    /// The level whose tables code `y` (`floor(rd_parameter)` for a continuous rate).
    pub level: u32,
    /// The continuous rate parameter in `[1, L]`, when one was used instead of a level.
    pub rd_parameter: Option<f32>,
    /// Image height and width.
    pub x_shape: [usize; 2],
    /// `g_a(x)`, before the gain.
    pub y: Tensor,
    /// `round(y * gain - median)` or `round(y * gain - means)`.
    pub y_symbols: Vec<i32>,
    /// Hyperprior only: `h_a(y * gain)`.
    pub z: Option<Tensor>,
    pub z_symbols: Option<Vec<i32>>,
    /// Hyperprior only: the scale half of `h_s(z_hat)`, cropped to `y`.
    pub scales: Option<Tensor>,
    pub scale_indexes: Option<Vec<u32>>,
    /// Hyperprior only: the mean half of `h_s(z_hat)`, cropped to `y`.
    pub means: Option<Tensor>,
}

/// What the decoder read from a file: the symbols it parsed and the latent it reconstructs.
#[derive(Clone, Debug)]
pub struct Decoded {
    /// Image height and width.
    pub x_shape: [usize; 2],
    pub y_symbols: Vec<i32>,
    pub z_symbols: Option<Vec<i32>>,
    pub scale_indexes: Option<Vec<u32>>,
    /// The latent `g_s` runs on (gain applied).
    pub y_hat: Tensor,
}

/// The hyperprior half of `mbt2018-mean`.
#[derive(Debug)]
struct Hyper {
    h_a: Transform,
    /// `h_s` without its last conv (Exact).
    h_s_body: CpuNet,
    /// The scale rows `[0, M)` of `h_s`'s last conv (Exact).
    h_s_scales: CpuNet,
    /// The mean rows `[M, 2M)` of `h_s`'s last conv (Fast).
    h_s_means: Transform,
    z_tables: CdfTables,
    z_medians: Vec<f32>,
    y_tables: CdfTables,
    scale_table: Vec<f32>,
}

/// A loaded family, ready to code images at any of its levels.
#[derive(Debug)]
pub struct Codec {
    family: Family,
    g_a: Transform,
    g_s: Transform,
    prior: Prior,
    backend: Backend,
    /// Fallbacks from the GPU to the CPU since the last [`Codec::take_notes`].
    notes: Notes,
}

/// The entropy model of `y`.
#[derive(Debug)]
enum Prior {
    /// Per-level EntropyBottleneck tables (rows `(level - 1) * M + c`) and their medians.
    Factorized {
        tables: CdfTables,
        medians: Vec<f32>,
    },
    /// Mean-scale hyperprior.
    Hyper(Box<Hyper>),
}

impl Codec {
    /// Prepares the nets and the entropy models of a family on the CPU backend.
    pub fn new(family: Family) -> Result<Self> {
        Self::with_backend(family, &Backend::cpu())
    }

    /// Prepares the nets and the entropy models of a family; the transforms run on `backend`
    /// (weights are uploaded once here), the entropy parameters always on the CPU's exact path.
    pub fn with_backend(family: Family, backend: &Backend) -> Result<Self> {
        let notes = Notes::default();
        let g_a = Transform::new(&family.g_a, backend, &notes)?;
        let g_s = Transform::new(&family.g_s, backend, &notes)?;
        let prior = match &family.tables {
            Tables::Factorized { y_eb } => Prior::Factorized {
                tables: cdf_tables(&y_eb.cdf)?,
                medians: y_eb.medians.clone(),
            },
            Tables::Hyperprior { z_eb, y_gc } => {
                let (h_a, h_s) = match (&family.h_a, &family.h_s) {
                    (Some(a), Some(s)) => (a, s),
                    _ => return Err(Error::Shape("hyperprior model without h_a/h_s".into())),
                };
                let (body, scales, means) = split_h_s(h_s, family.m)?;
                let hyper = Hyper {
                    h_a: Transform::new(h_a, backend, &notes)?,
                    h_s_body: CpuNet::prepare(&body, Math::Exact),
                    h_s_scales: CpuNet::prepare(&scales, Math::Exact),
                    h_s_means: Transform::new(&means, backend, &notes)?,
                    z_tables: cdf_tables(&z_eb.cdf)?,
                    z_medians: z_eb.medians.clone(),
                    y_tables: cdf_tables(&y_gc.cdf)?,
                    scale_table: y_gc.scale_table.clone(),
                };
                Prior::Hyper(Box::new(hyper))
            }
        };
        Ok(Self {
            family,
            g_a,
            g_s,
            prior,
            backend: backend.clone(),
            notes,
        })
    }

    /// The backend the transforms run on.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Takes the notes of GPU failures that fell back to the CPU (empty when none did).
    pub fn take_notes(&self) -> Vec<String> {
        self.notes
            .lock()
            .map(|mut n| std::mem::take(&mut *n))
            .unwrap_or_default()
    }

    /// The loaded family.
    pub fn family(&self) -> &Family {
        &self.family
    }

    /// The model name of a level, as written into `"MD"`.
    pub fn model_name(&self, level: u32) -> String {
        format!("{}-{level}", self.family.name)
    }

    fn gains(&self, level: u32) -> Result<(&[f32], &[f32])> {
        if level == 0 || level > self.family.levels {
            return Err(Error::Model(crate::model::ModelError::BadLevel {
                family: self.family.name.clone(),
                level,
                levels: self.family.levels,
            }));
        }
        let m = self.family.m;
        let r = (level as usize - 1) * m..level as usize * m;
        Ok((&self.family.y_gain[r.clone()], &self.family.y_gain_inv[r]))
    }

    /// Whether the family codes at a continuous rate parameter between its levels: only the
    /// mean-scale hyperprior, whose Gaussian tables fit any scale; the factorized families have one
    /// learned density per level.
    pub fn has_rd_parameter(&self) -> bool {
        matches!(self.prior, Prior::Hyper(_))
    }

    /// The level and gain vectors of a rate parameter `r` in `[1, L]`: between levels `l` and
    /// `l + 1`, `g = g_l^(1-t) * g_(l+1)^t` with `t = r - l` (Cui et al. 2021, "Asymmetric Gained
    /// Deep Image Compression"), computed with `libm` so every machine gets the same gains.
    fn rd_gains(&self, rd: f32) -> Result<(u32, Vec<f32>, Vec<f32>)> {
        let levels = self.family.levels;
        if !self.has_rd_parameter() {
            return Err(Error::NoRdParameter {
                family: self.family.name.clone(),
            });
        }
        if !rd.is_finite() || rd < 1.0 || rd > levels as f32 {
            return Err(Error::RdParameter {
                family: self.family.name.clone(),
                rd,
                levels,
            });
        }
        let level = (rd.floor() as u32).min(levels);
        let t = rd - level as f32;
        let (g0, i0) = self.gains(level)?;
        if level == levels || t == 0.0 {
            return Ok((level, g0.to_vec(), i0.to_vec()));
        }
        let (g1, i1) = self.gains(level + 1)?;
        let mix = |a: &[f32], b: &[f32]| -> Vec<f32> {
            a.iter()
                .zip(b)
                .map(|(&a, &b)| {
                    if a > 0.0 && b > 0.0 {
                        a * libm::powf(b / a, t)
                    } else {
                        a + (b - a) * t
                    }
                })
                .collect()
        };
        Ok((level, mix(g0, g1), mix(i0, i1)))
    }

    /// The level and gains of a latent or a file: the level's own, or interpolated for `rd`.
    fn gains_for(&self, level: u32, rd: Option<f32>) -> Result<(u32, Vec<f32>, Vec<f32>)> {
        match rd {
            Some(rd) => self.rd_gains(rd),
            None => {
                let (g, i) = self.gains(level)?;
                Ok((level, g.to_vec(), i.to_vec()))
            }
        }
    }

    /// The nets that run on whole images (`g_a`, `g_s`) and on latents (`h_a`, `h_s`).
    fn nets(&self) -> impl Iterator<Item = &Net> {
        let f = &self.family;
        [Some(&f.g_a), Some(&f.g_s), f.h_a.as_ref(), f.h_s.as_ref()]
            .into_iter()
            .flatten()
    }

    /// Bytes that grow with the image whatever the tiles: the image in and out as 8-bit pixels,
    /// and the latents with their symbols, means, scales and indexes (six 4-byte values per
    /// element of `y`).
    fn fixed_bytes(&self, width: usize, height: usize) -> u64 {
        let y = self.family.g_a.output_shape((3, height, width));
        let y_values = (y.0 as u64) * (y.1 as u64) * (y.2 as u64);
        24 * y_values + 8 * (width as u64) * (height as u64)
    }

    /// Activation bytes of the largest layer with whole activations (f32 input and output).
    fn whole_activation_bytes(&self, width: usize, height: usize) -> u64 {
        let x = (3, height, width);
        let y = self.family.g_a.output_shape(x);
        let mut peak = self
            .family
            .g_a
            .peak_values(x)
            .max(self.family.g_s.peak_values(y));
        if let (Some(h_a), Some(h_s)) = (&self.family.h_a, &self.family.h_s) {
            peak = peak
                .max(h_a.peak_values(y))
                .max(h_s.peak_values(h_a.output_shape(y)));
        }
        4 * peak
    }

    /// Activation bytes of the smallest tile any transform can run (one core of its downsampling
    /// factor plus its halos).
    fn smallest_tile_bytes(&self) -> u64 {
        self.nets()
            .map(|net| {
                let g = Geometry::of(net);
                let side = g.down + 2 * g.halo;
                4 * net.peak_values((net.input_channels().unwrap_or(1), side, side))
            })
            .max()
            .unwrap_or(0)
    }

    /// Bytes the CPU backend holds at once to code a `width x height` image: the 8-bit pixels in
    /// and out, the latents with their symbols, and the transforms' activations, whole up to
    /// [`CPU_TILE_BUDGET`] and in tiles beyond. Checked against [`Limits::max_memory`] before
    /// anything is allocated (a smaller budget gives smaller tiles, down to the smallest one);
    /// the GPU backend tiles by its own limits.
    pub fn memory_needed(&self, width: usize, height: usize) -> u64 {
        let act = self.whole_activation_bytes(width, height);
        self.fixed_bytes(width, height) + act.min(CPU_TILE_BUDGET.max(self.smallest_tile_bytes()))
    }

    /// [`Limits::check`] and, on the CPU backend, the memory budget: returns the activation bytes
    /// a CPU transform may hold at once (its tile budget).
    fn check_size(&self, limits: &Limits, width: usize, height: usize) -> Result<u64> {
        limits.check(width as u64, height as u64)?;
        let fixed = self.fixed_bytes(width, height);
        let least = fixed
            + self
                .whole_activation_bytes(width, height)
                .min(self.smallest_tile_bytes());
        if !self.backend.is_gpu() && least > limits.max_memory {
            return Err(Error::ImageSize {
                width: width as u64,
                height: height as u64,
                reason: format!(
                    "coding it on the CPU needs at least about {}, more than the memory limit of {} \
                     (raise it with --max-memory or TFCI_MAX_MEMORY)",
                    bytes_text(least),
                    bytes_text(limits.max_memory)
                ),
            });
        }
        Ok(limits
            .max_memory
            .saturating_sub(fixed)
            .min(CPU_TILE_BUDGET.max(self.smallest_tile_bytes())))
    }

    /// Runs the analysis side: `g_a`, the gain, the hyperprior and quantization.
    pub fn analyze(&self, image: &RgbImage, level: u32, limits: &Limits) -> Result<Latents> {
        self.analyze_at(image, level, None, limits)
    }

    /// [`Codec::analyze`] at a continuous rate parameter `rd` in `[1, L]` (see
    /// [`Codec::has_rd_parameter`]).
    pub fn analyze_rd(&self, image: &RgbImage, rd: f32, limits: &Limits) -> Result<Latents> {
        self.analyze_at(image, 0, Some(rd), limits)
    }

    fn analyze_at(
        &self,
        image: &RgbImage,
        level: u32,
        rd: Option<f32>,
        limits: &Limits,
    ) -> Result<Latents> {
        let budget = self.check_size(limits, image.width, image.height)?;
        let (level, gain, _) = self.gains_for(level, rd)?;
        let y = self.g_a.forward_tensor(image, budget, &self.notes)?;
        let y_g = scale_channels(&y, &gain);
        let mut latents = Latents {
            level,
            rd_parameter: rd,
            x_shape: [image.height, image.width],
            y,
            y_symbols: Vec::new(),
            z: None,
            z_symbols: None,
            scales: None,
            scale_indexes: None,
            means: None,
        };
        match &self.prior {
            Prior::Factorized { medians, .. } => {
                let m = self.family.m;
                let med = &medians[(level as usize - 1) * m..level as usize * m];
                latents.y_symbols = quantize(&y_g, |c, _| med[c]);
            }
            Prior::Hyper(h) => {
                let z = h.h_a.forward_tensor(&y_g, budget, &self.notes)?;
                let z_symbols = quantize(&z, |c, _| h.z_medians[c]);
                let z_hat = dequantize(&z_symbols, z.c, z.h, z.w, |c, _| h.z_medians[c]);
                let (scales, means, indexes) =
                    self.hyper_params(h, &z_hat, y_g.h, y_g.w, budget)?;
                latents.y_symbols = quantize(&y_g, |c, i| means.channel(c)[i]);
                latents.z = Some(z);
                latents.z_symbols = Some(z_symbols);
                latents.scales = Some(scales);
                latents.scale_indexes = Some(indexes);
                latents.means = Some(means);
            }
        }
        Ok(latents)
    }

    /// `h_s(z_hat)` cropped to `y`'s size: scales (Exact), means (Fast) and the scale indexes.
    fn hyper_params(
        &self,
        h: &Hyper,
        z_hat: &Tensor,
        yh: usize,
        yw: usize,
        budget: u64,
    ) -> Result<(Tensor, Tensor, Vec<u32>)> {
        let body = h.h_s_body.forward(z_hat);
        let scales = h.h_s_scales.forward(&body).crop(yh, yw);
        let means = h
            .h_s_means
            .forward_tensor(&body, budget, &self.notes)?
            .crop(yh, yw);
        let indexes = scale_indexes(&scales.data, &h.scale_table);
        Ok((scales, means, indexes))
    }

    /// Entropy-codes latents into the `.tfci` bytes.
    pub fn encode(&self, latents: &Latents) -> Result<Vec<u8>> {
        let m = self.family.m;
        let y = &latents.y;
        let shape = |h: usize, w: usize| Value::Int64(vec![h as i64, w as i64]);
        let x_shape = shape(latents.x_shape[0], latents.x_shape[1]);
        let tensors = match &self.prior {
            Prior::Factorized { tables, .. } => {
                let rows = RowMap::PerChannel {
                    first_row: (latents.level as usize - 1) * m,
                };
                let y_string = entropy::encode(&latents.y_symbols, m, rows, tables)?;
                vec![Value::Bytes(vec![y_string]), x_shape, shape(y.h, y.w)]
            }
            Prior::Hyper(h) => {
                let (z, z_symbols, indexes) =
                    match (&latents.z, &latents.z_symbols, &latents.scale_indexes) {
                        (Some(z), Some(s), Some(i)) => (z, s, i),
                        _ => return Err(Error::Shape("hyperprior latents without z".into())),
                    };
                let z_string = entropy::encode(
                    z_symbols,
                    z.c,
                    RowMap::PerChannel { first_row: 0 },
                    &h.z_tables,
                )?;
                let y_string = entropy::encode(
                    &latents.y_symbols,
                    m,
                    RowMap::PerElement(indexes),
                    &h.y_tables,
                )?;
                vec![
                    Value::Bytes(vec![y_string]),
                    Value::Bytes(vec![z_string]),
                    x_shape,
                    shape(y.h, y.w),
                    shape(z.h, z.w),
                ]
            }
        };
        let packed = Packed {
            // A continuous rate is no level of the family: the name carries none, "RD" the rate.
            model: match latents.rd_parameter {
                Some(_) => self.family.name.clone(),
                None => self.model_name(latents.level),
            },
            tensors,
            weights_id: Some(self.family.weights_id.clone()),
            rd_parameter: latents.rd_parameter,
        };
        Ok(packed.to_bytes())
    }

    /// Compresses an image at a level into `.tfci` bytes.
    pub fn compress(&self, image: &RgbImage, level: u32, limits: &Limits) -> Result<Vec<u8>> {
        self.encode(&self.analyze(image, level, limits)?)
    }

    /// Compresses an image at a continuous rate parameter into `.tfci` bytes.
    pub fn compress_rd(&self, image: &RgbImage, rd: f32, limits: &Limits) -> Result<Vec<u8>> {
        self.encode(&self.analyze_rd(image, rd, limits)?)
    }

    /// Decodes the latents of a parsed container made by this family at `level` (ignored when the
    /// file carries a rate parameter, which then decides the level and the gains).
    pub fn decode_latents(&self, packed: &Packed, level: u32, limits: &Limits) -> Result<Decoded> {
        self.decode_budgeted(packed, level, limits).map(|(d, _)| d)
    }

    /// [`Codec::decode_latents`] and the CPU tile budget for the synthesis.
    fn decode_budgeted(
        &self,
        packed: &Packed,
        level: u32,
        limits: &Limits,
    ) -> Result<(Decoded, u64)> {
        match &packed.weights_id {
            // The decoder id, or the whole-file id that files carried before decoder ids.
            Some(id) if *id == self.family.weights_id || *id == self.family.file_id => {}
            Some(id) => {
                return Err(Error::WeightsMismatch {
                    model: packed.model.clone(),
                    needed: self.family.describe_weights(id),
                    installed: self.family.describe_weights(&self.family.weights_id),
                })
            }
            None => {
                return Err(Error::NoWeightsId {
                    model: packed.model.clone(),
                })
            }
        }
        let (level, _, gain_inv) = self.gains_for(level, packed.rd_parameter)?;
        let m = self.family.m;
        let hyper = self.family.architecture.has_hyperprior();
        let x_at = if hyper { 2 } else { 1 };
        let x = read_shape(packed, x_at)?;
        let budget = self.check_size(limits, x[1], x[0])?;
        let y = read_shape(packed, x_at + 1)?;
        expect_shape("y_shape", y, x.map(|v| v.div_ceil(Architecture::Y_STRIDE)))?;
        let y_string = packed.bytes_at(0)?;
        let plane = y[0] * y[1];
        let mut z_symbols = None;
        let mut scale_indexes = None;
        let (y_symbols, y_hat_g) = match &self.prior {
            Prior::Factorized { tables, medians } => {
                let first_row = (level as usize - 1) * m;
                let sym =
                    entropy::decode(y_string, m, plane, RowMap::PerChannel { first_row }, tables)?;
                let med = &medians[first_row..first_row + m];
                let y_hat_g = dequantize(&sym, m, y[0], y[1], |c, _| med[c]);
                (sym, y_hat_g)
            }
            Prior::Hyper(h) => {
                let z = read_shape(packed, 4)?;
                expect_shape("z_shape", z, y.map(|v| v.div_ceil(Architecture::Z_STRIDE)))?;
                let z_string = packed.bytes_at(1)?;
                let n = self.family.n;
                let z_sym = entropy::decode(
                    z_string,
                    n,
                    z[0] * z[1],
                    RowMap::PerChannel { first_row: 0 },
                    &h.z_tables,
                )?;
                let z_hat = dequantize(&z_sym, n, z[0], z[1], |c, _| h.z_medians[c]);
                let (_, means, indexes) = self.hyper_params(h, &z_hat, y[0], y[1], budget)?;
                let sym = entropy::decode(
                    y_string,
                    m,
                    plane,
                    RowMap::PerElement(&indexes),
                    &h.y_tables,
                )?;
                let y_hat_g = dequantize(&sym, m, y[0], y[1], |c, i| means.channel(c)[i]);
                z_symbols = Some(z_sym);
                scale_indexes = Some(indexes);
                (sym, y_hat_g)
            }
        };
        let y_hat = scale_channels(&y_hat_g, &gain_inv);
        let decoded = Decoded {
            x_shape: x,
            y_symbols,
            z_symbols,
            scale_indexes,
            y_hat,
        };
        Ok((decoded, budget))
    }

    /// Runs `g_s` on `y_hat`: `x_hat` clamped to `[0, 1]` and cropped to the image size (whole
    /// activations: for tests and latent dumps; [`Codec::decompress_packed`] tiles).
    pub fn synthesize(&self, y_hat: &Tensor, x_shape: [usize; 2]) -> Result<Tensor> {
        let mut x_hat = self
            .g_s
            .forward_tensor(y_hat, u64::MAX, &self.notes)?
            .crop(x_shape[0], x_shape[1]);
        x_hat.data.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
        Ok(x_hat)
    }

    /// `y_hat` of encoder-side latents (what the decoder will reconstruct).
    pub fn y_hat(&self, latents: &Latents) -> Result<Tensor> {
        let (_, _, gain_inv) = self.gains_for(latents.level, latents.rd_parameter)?;
        let y = &latents.y;
        let m = self.family.m;
        let y_hat_g = match (&self.prior, &latents.means) {
            (Prior::Factorized { medians, .. }, _) => {
                let med = &medians[(latents.level as usize - 1) * m..latents.level as usize * m];
                dequantize(&latents.y_symbols, m, y.h, y.w, |c, _| med[c])
            }
            (Prior::Hyper(_), Some(means)) => {
                dequantize(&latents.y_symbols, m, y.h, y.w, |c, i| means.channel(c)[i])
            }
            (Prior::Hyper(_), None) => {
                return Err(Error::Shape("hyperprior latents without means".into()))
            }
        };
        Ok(scale_channels(&y_hat_g, &gain_inv))
    }

    /// Decompresses a parsed container made by this family at `level`.
    pub fn decompress_packed(
        &self,
        packed: &Packed,
        level: u32,
        limits: &Limits,
    ) -> Result<RgbImage> {
        let (d, budget) = self.decode_budgeted(packed, level, limits)?;
        // g_s writes its tiles straight into the 8-bit image (an f32 copy of a large image is
        // never held); the synthesis' padding beyond the image is dropped as a crop would.
        let mut image = RgbImage {
            width: d.x_shape[1],
            height: d.x_shape[0],
            data: vec![0; d.x_shape[0] * d.x_shape[1] * 3],
        };
        self.g_s
            .forward(&d.y_hat, &mut image, budget, &self.notes)?;
        Ok(image)
    }
}

/// Parses `.tfci` bytes, loads the family named in them from `registry`, and decodes the image
/// (on the CPU backend).
pub fn decompress(
    registry: &crate::model::Registry,
    bytes: &[u8],
    limits: &Limits,
) -> Result<(RgbImage, String)> {
    let (image, model, _) = decompress_with(registry, bytes, limits, &Backend::cpu())?;
    Ok((image, model))
}

/// [`decompress`] with the transforms on `backend`; also returns the codec's fallback notes.
pub fn decompress_with(
    registry: &crate::model::Registry,
    bytes: &[u8],
    limits: &Limits,
    backend: &Backend,
) -> Result<(RgbImage, String, Vec<String>)> {
    let packed = Packed::from_bytes(bytes)?;
    let (entry, level) = resolve_packed(registry, &packed)?;
    let codec = Codec::with_backend(registry.load(entry)?, backend)?;
    let image = codec.decompress_packed(&packed, level, limits)?;
    let notes = codec.take_notes();
    Ok((image, packed.model, notes))
}

/// The installed family and level a parsed file names: `FAMILY-LEVEL`, or the family alone when
/// the file carries a continuous rate parameter (the level then comes from `"RD"`).
pub fn resolve_packed<'r>(
    registry: &'r crate::model::Registry,
    packed: &Packed,
) -> Result<(&'r crate::model::FamilyEntry, u32)> {
    Ok(match packed.rd_parameter {
        Some(_) => (
            registry
                .family(&packed.model)
                .ok_or_else(|| registry.unknown(&packed.model))?,
            0,
        ),
        None => registry.resolve(&packed.model)?,
    })
}

/// `1.4 GiB`, `64 MiB` or `1024 bytes`.
fn bytes_text(b: u64) -> String {
    const MIB: u64 = 1 << 20;
    if b >= 1 << 30 {
        format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
    } else if b >= MIB {
        format!("{:.0} MiB", b as f64 / MIB as f64)
    } else {
        format!("{b} bytes")
    }
}

/// Builds the coder's tables from a model file's rows (validating every row).
fn cdf_tables(t: &CdfRows) -> Result<CdfTables> {
    Ok(CdfTables::new(
        &t.cdf, t.rows, t.row_len, &t.cdf_len, &t.offset,
    )?)
}

/// Splits `h_s` into its body and the scale and mean halves of its last conv.
fn split_h_s(h_s: &Net, m: usize) -> Result<(Net, Net, Net)> {
    let mut body = h_s.clone();
    let Some(Layer::Conv(Conv {
        cin,
        cout,
        k,
        stride,
        transposed: false,
        weight,
        bias,
    })) = body.layers.pop()
    else {
        return Err(Error::Shape("h_s must end with a convolution".into()));
    };
    if cout != 2 * m {
        return Err(Error::Shape(format!(
            "h_s outputs {cout} channels, expected {}",
            2 * m
        )));
    }
    let per_out = cin * k * k;
    let half = |lo: usize, name: &str| Net {
        name: format!("h_s.{name}"),
        layers: vec![Layer::Conv(Conv {
            cin,
            cout: m,
            k,
            stride,
            transposed: false,
            weight: weight[lo * per_out..(lo + m) * per_out].to_vec(),
            bias: bias.as_ref().map(|b| b[lo..lo + m].to_vec()),
        })],
    };
    let scales = half(0, "scales");
    let means = half(m, "means");
    body.name = "h_s.body".into();
    Ok((body, scales, means))
}

/// Multiplies channel `c` by `g[c]` (the gain vectors).
fn scale_channels(t: &Tensor, g: &[f32]) -> Tensor {
    let mut out = t.clone();
    for (c, &gc) in g.iter().enumerate().take(t.c) {
        out.channel_mut(c).iter_mut().for_each(|v| *v *= gc);
    }
    out
}

/// `round_half_even(t - center(c, i))` as integers (torch.round semantics).
fn quantize(t: &Tensor, center: impl Fn(usize, usize) -> f32) -> Vec<i32> {
    let mut out = Vec::with_capacity(t.data.len());
    for c in 0..t.c {
        out.extend(
            t.channel(c)
                .iter()
                .enumerate()
                .map(|(i, &v)| (v - center(c, i)).round_ties_even() as i32),
        );
    }
    out
}

/// `symbol + center(c, i)`: the decoder's latent.
fn dequantize(
    sym: &[i32],
    c: usize,
    h: usize,
    w: usize,
    center: impl Fn(usize, usize) -> f32,
) -> Tensor {
    let plane = h * w;
    let data = sym
        .iter()
        .enumerate()
        .map(|(j, &s)| s as f32 + center(j / plane.max(1), j % plane.max(1)))
        .collect();
    Tensor::from_vec(c, h, w, data)
}

/// CompressAI's `build_indexes`: for `s' = max(s, 0.11)`, the smallest `k` with `s' <= table[k]`,
/// else the last index. Comparisons only, so exact wherever the scales are.
pub fn scale_indexes(scales: &[f32], table: &[f32]) -> Vec<u32> {
    let last = table.len().saturating_sub(1);
    let head = &table[..last];
    if head.windows(2).all(|w| w[0] < w[1]) {
        // Sorted (every trained table is): the count of entries >= s is `last` minus the count of
        // entries < s, a binary search; the same index as the scan below, bit for bit.
        scales
            .iter()
            .map(|&s| {
                let s = s.max(SCALE_BOUND);
                head.partition_point(|&t| t < s) as u32
            })
            .collect()
    } else {
        scales
            .iter()
            .map(|&s| {
                let s = s.max(SCALE_BOUND);
                (last - head.iter().filter(|&&t| s <= t).count()) as u32
            })
            .collect()
    }
}

fn read_shape(packed: &Packed, i: usize) -> Result<[usize; 2]> {
    let s = packed.shape_at(i, 2)?;
    let dim =
        |v: i64| usize::try_from(v).map_err(|_| Error::Shape(format!("negative dimension {v}")));
    Ok([dim(s[0])?, dim(s[1])?])
}

fn expect_shape(name: &str, got: [usize; 2], expected: [usize; 2]) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(Error::Shape(format!(
            "{name} is {got:?}, expected {expected:?} for the image size"
        )))
    }
}

#[cfg(test)]
mod scale_index_tests {
    use super::*;
    use crate::test_rng::Rng;

    /// The linear scan the binary search replaced: the reference.
    fn scan(scales: &[f32], table: &[f32]) -> Vec<u32> {
        let last = table.len().saturating_sub(1);
        scales
            .iter()
            .map(|&s| {
                let s = s.max(SCALE_BOUND);
                (last - table[..last].iter().filter(|&&t| s <= t).count()) as u32
            })
            .collect()
    }

    /// CompressAI's 64-entry table: exp(linspace(ln 0.11, ln 256, 64)).
    fn table() -> Vec<f32> {
        let (lo, hi) = (0.11f64.ln(), 256f64.ln());
        (0..64)
            .map(|i| (lo + (hi - lo) * i as f64 / 63.0).exp() as f32)
            .collect()
    }

    #[test]
    fn binary_search_gives_the_scan_s_indexes() {
        let t = table();
        let mut rng = Rng(7);
        let mut scales: Vec<f32> = (0..20_000)
            .map(|_| (rng.unit() as f32 * 14.0 - 5.0).exp())
            .collect();
        // Every table entry, its neighbours in f32, the bounds, and NaN / infinities.
        for &v in &t {
            scales.extend([
                v,
                f32::from_bits(v.to_bits() - 1),
                f32::from_bits(v.to_bits() + 1),
            ]);
        }
        scales.extend([0.0, -1.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30]);
        assert_eq!(scale_indexes(&scales, &t), scan(&scales, &t));
        // An unsorted table (a hostile model file) takes the scan.
        let mut bad = t.clone();
        bad.swap(3, 40);
        assert_eq!(scale_indexes(&scales, &bad), scan(&scales, &bad));
    }
}
