//! The compress and decompress pipelines of the three families (docs/model-format.md,
//! "The computation the tables belong to").
//!
//! Everything that decides a probability table runs on `Math::Exact`: the `z` medians are static,
//! `z_hat` is an integer plus a median, and `h_s`'s body and scale half are the fixed-order FMA-free
//! kernel, so the scale indexes are bit-identical on every machine. The transforms and the means run
//! on `Math::Fast` or on the GPU ([`crate::backend`]): drift there moves pixels, never the parse.

use crate::backend::Backend;
use crate::container::{Packed, Value};
use crate::cpu::{CpuNet, Math};
use crate::entropy::{self, RowMap};
use crate::error::{Error, Result};
use crate::image::RgbImage;
use crate::model::{Architecture, Family, Tables};
use crate::tensor::Tensor;
use crate::transform::{Notes, Transform};

mod effort;
mod files;
mod latent;
mod limits;
mod msssim;
mod prior;

pub use effort::{iterations, Objective, SearchReport, MAX_EFFORT};
pub use files::{decompress, decompress_with, resolve_packed};
use latent::{dequantize, quantize, scale_channels};
pub use latent::{scale_indexes, SCALE_BOUND};
pub use limits::{Limits, CPU_TILE_BUDGET, DEFAULT_MAX_MEMORY};
use prior::{cdf_tables, split_h_s, Hyper, Prior};

/// `name` with anything but ASCII letters, digits, `-`, `_` and `.` replaced (a file name).
fn folder_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Removes the folders beside `folder` named `FAMILY-` and 16 hex digits (another model file of
/// the family `family` names), whatever fails.
fn prune_other_model_files(folder: &std::path::Path, family: &str) {
    let (Some(dir), Some(own)) = (folder.parent(), folder.file_name()) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let other = name
            .to_str()
            .and_then(|n| n.strip_prefix(family)?.strip_prefix('-'));
        let is_id =
            other.is_some_and(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()));
        if is_id && name != own {
            let _ = std::fs::remove_dir_all(e.path());
        }
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
    /// The folder of this model file's packed-weights files, once [`Codec::use_pack_cache`] set it.
    pack_folder: std::sync::OnceLock<std::path::PathBuf>,
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
                    _ => return Err(Error::BadModel("hyperprior model without h_a/h_s".into())),
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
            pack_folder: std::sync::OnceLock::new(),
        })
    }

    /// Packs now the CPU weights that compressing reads (`g_a` and the hyperprior's nets), which
    /// each layer otherwise packs at its first run. A process that has its model before its first
    /// image (a one-shot `tfci-enc` still decoding its PNG) calls this to do that work beside the
    /// decoding; the results are the same either way.
    pub fn prepare_compress(&self) {
        crate::stage::mark("codec prepared");
        rayon::join(
            || self.g_a.pack_cpu(),
            || {
                if let Prior::Hyper(h) = &self.prior {
                    h.h_a.pack_cpu();
                    h.h_s_body.pack();
                    h.h_s_scales.pack();
                    h.h_s_means.pack_cpu();
                }
            },
        );
        crate::stage::mark("weights packed");
    }

    /// Keeps the CPU nets' packed weights in files under `dir`, one per net and model file (see
    /// `cpu/pack_cache.rs`): a net packed after this reads its weights from its file where an
    /// earlier process saved them ([`Codec::save_pack_cache`]) instead of packing them into fresh
    /// memory; the results are the same. For a binary's one-shot calls; call it before the first
    /// image. A family with no model file checksum keeps none; later calls change nothing.
    pub fn use_pack_cache(&self, dir: &std::path::Path) {
        let family = &self.family;
        if family.file_id.is_empty() || self.pack_folder.get().is_some() {
            return;
        }
        let model = format!("{}-{}", family.name, family.file_id);
        let folder = dir.join(folder_name(&model));
        for net in self.cpu_nets() {
            let path = folder.join(format!("{}.pack", folder_name(net.name())));
            net.use_pack_file(path, &model);
        }
        let _ = self.pack_folder.set(folder);
    }

    /// Writes the packed weights of the nets this process packed (rather than read from their
    /// files) to their files under the folder given to [`Codec::use_pack_cache`]; the bytes
    /// written (0 when there was nothing new or no folder). A family keeps the files of one model
    /// file: where this wrote any, the folders of the family's other model files (an earlier
    /// release's weights) are removed, so the cache does not grow with every release.
    pub fn save_pack_cache(&self) -> std::io::Result<u64> {
        let mut written = 0;
        for net in self.cpu_nets() {
            written += net.save_pack_file()?;
        }
        if let (true, Some(folder)) = (written > 0, self.pack_folder.get()) {
            prune_other_model_files(folder, &folder_name(&self.family.name));
        }
        Ok(written)
    }

    /// The nets that run on the CPU.
    fn cpu_nets(&self) -> Vec<&CpuNet> {
        let mut nets: Vec<&CpuNet> = [&self.g_a, &self.g_s]
            .into_iter()
            .filter_map(Transform::cpu_net)
            .collect();
        if let Prior::Hyper(h) = &self.prior {
            nets.extend(h.h_a.cpu_net());
            nets.extend([&h.h_s_body, &h.h_s_scales]);
            nets.extend(h.h_s_means.cpu_net());
        }
        nets
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
        image.check()?;
        let budget = self.check_size(limits, image.width, image.height)?;
        let (level, gain, _) = self.gains_for(level, rd)?;
        let y = self.g_a.forward_tensor(image, budget, &self.notes)?;
        crate::stage::mark("g_a");
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
                crate::stage::mark("h_a");
                let z_symbols = quantize(&z, |c, _| h.z_medians[c]);
                let z_hat = dequantize(&z_symbols, z.c, z.h, z.w, |c, _| h.z_medians[c]);
                let (scales, means, indexes) =
                    self.hyper_params(h, &z_hat, y_g.h, y_g.w, budget)?;
                crate::stage::mark("h_s");
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

    /// Latents whose public fields disagree with each other or with this family are an
    /// [`Error::Argument`] before anything indexes them.
    fn check_latents(&self, l: &Latents) -> Result<()> {
        let m = self.family.m;
        let y = &l.y;
        let arg = |what: String| Err(Error::Argument(format!("latents: {what}")));
        y.check()?;
        if y.c != m || l.y_symbols.len() != y.data.len() {
            return arg(format!(
                "y is {}x{}x{} with {} symbols; this family codes {m} channels, one symbol each",
                y.c,
                y.h,
                y.w,
                l.y_symbols.len()
            ));
        }
        for t in [&l.z, &l.scales, &l.means].into_iter().flatten() {
            t.check()?;
        }
        for (name, t) in [("scales", &l.scales), ("means", &l.means)] {
            if let Some(t) = t.as_ref().filter(|t| (t.c, t.h, t.w) != (y.c, y.h, y.w)) {
                return arg(format!("{name} are {}x{}x{}, y is not", t.c, t.h, t.w));
            }
        }
        if let (Some(z), Some(s)) = (&l.z, &l.z_symbols) {
            if s.len() != z.data.len() {
                return arg(format!("{} z symbols for {} values", s.len(), z.data.len()));
            }
        }
        if let Some(i) = l
            .scale_indexes
            .as_ref()
            .filter(|i| i.len() != l.y_symbols.len())
        {
            return arg(format!(
                "{} scale indexes for {} symbols",
                i.len(),
                l.y_symbols.len()
            ));
        }
        Ok(())
    }

    /// Entropy-codes latents into the `.tfci` bytes.
    pub fn encode(&self, latents: &Latents) -> Result<Vec<u8>> {
        let m = self.family.m;
        let y = &latents.y;
        // The level whose tables code y: a rate parameter's own, as the decoder will derive it.
        let (level, _, _) = self.gains_for(latents.level, latents.rd_parameter)?;
        self.check_latents(latents)?;
        let shape = |h: usize, w: usize| Value::Int64(vec![h as i64, w as i64]);
        let x_shape = shape(latents.x_shape[0], latents.x_shape[1]);
        let tensors = match &self.prior {
            Prior::Factorized { tables, .. } => {
                let rows = RowMap::PerChannel {
                    first_row: (level as usize - 1) * m,
                };
                let y_string = entropy::encode(&latents.y_symbols, m, rows, tables)?;
                vec![Value::Bytes(vec![y_string]), x_shape, shape(y.h, y.w)]
            }
            Prior::Hyper(h) => {
                let (z, z_symbols, indexes) =
                    match (&latents.z, &latents.z_symbols, &latents.scale_indexes) {
                        (Some(z), Some(s), Some(i)) => (z, s, i),
                        _ => return Err(Error::Argument("hyperprior latents without z".into())),
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
        let bytes = self.encode(&self.analyze(image, level, limits)?);
        crate::stage::mark("entropy coded");
        bytes
    }

    /// Compresses an image at a continuous rate parameter into `.tfci` bytes.
    pub fn compress_rd(&self, image: &RgbImage, rd: f32, limits: &Limits) -> Result<Vec<u8>> {
        self.encode(&self.analyze_rd(image, rd, limits)?)
    }

    /// Decodes the latents of a parsed container made by this family, at the level its model name
    /// says (or the rate parameter it carries).
    pub fn decode_latents(&self, packed: &Packed, limits: &Limits) -> Result<Decoded> {
        self.decode_budgeted(packed, limits).map(|(d, _)| d)
    }

    /// The level of a file made by this family: `FAMILY-LEVEL`, or the family alone with a rate
    /// parameter (level 0: the rate decides); a file of another family is [`Error::WrongModel`].
    fn level_of(&self, packed: &Packed) -> Result<u32> {
        let name = &self.family.name;
        let level = match packed.rd_parameter {
            Some(_) => (packed.model == *name).then_some(0),
            None => crate::model::split_level(&packed.model)
                .filter(|(family, _)| family == name)
                .map(|(_, level)| level),
        };
        level.ok_or_else(|| Error::WrongModel {
            file: packed.model.clone(),
            codec: name.clone(),
        })
    }

    /// [`Codec::decode_latents`] and the CPU tile budget for the synthesis.
    fn decode_budgeted(&self, packed: &Packed, limits: &Limits) -> Result<(Decoded, u64)> {
        let level = self.level_of(packed)?;
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
        y_hat.check()?;
        let (c, h, w) = self.g_s.output_shape((y_hat.c, y_hat.h, y_hat.w));
        if y_hat.c != self.family.m || x_shape[0] > h || x_shape[1] > w {
            return Err(Error::Argument(format!(
                "synthesize: y_hat {}x{}x{} gives a {c}x{h}x{w} image, not {}x{}x{}",
                y_hat.c, y_hat.h, y_hat.w, 3, x_shape[0], x_shape[1]
            )));
        }
        let mut x_hat = self
            .g_s
            .forward_tensor(y_hat, u64::MAX, &self.notes)?
            .crop(x_shape[0], x_shape[1]);
        x_hat.data.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
        Ok(x_hat)
    }

    /// `y_hat` of encoder-side latents (what the decoder will reconstruct).
    pub fn y_hat(&self, latents: &Latents) -> Result<Tensor> {
        let (level, _, gain_inv) = self.gains_for(latents.level, latents.rd_parameter)?;
        self.check_latents(latents)?;
        let y = &latents.y;
        let m = self.family.m;
        let y_hat_g = match (&self.prior, &latents.means) {
            (Prior::Factorized { medians, .. }, _) => {
                let med = &medians[(level as usize - 1) * m..level as usize * m];
                dequantize(&latents.y_symbols, m, y.h, y.w, |c, _| med[c])
            }
            (Prior::Hyper(_), Some(means)) => {
                dequantize(&latents.y_symbols, m, y.h, y.w, |c, i| means.channel(c)[i])
            }
            (Prior::Hyper(_), None) => {
                return Err(Error::Argument("hyperprior latents without means".into()))
            }
        };
        Ok(scale_channels(&y_hat_g, &gain_inv))
    }

    /// Decompresses a parsed container made by this family (at the level its model name says).
    pub fn decompress_packed(&self, packed: &Packed, limits: &Limits) -> Result<RgbImage> {
        let (d, budget) = self.decode_budgeted(packed, limits)?;
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
