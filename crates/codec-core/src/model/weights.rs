//! Reads a family's safetensors file into graphs, gains and raw CDF tables, checking every shape.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};

use super::architecture::{Architecture, Op};
use super::file_bytes::{read_file, FileBytes};
use super::graph::{Conv, Layer, Net, Weights};
use super::{FamilyEntry, ModelError};

/// Integer CDF rows as CompressAI's `update()` stores them (`_quantized_cdf`, `_cdf_length`, `_offset`).
#[derive(Clone, Debug)]
pub struct CdfRows {
    /// `[rows, row_len]`, each row valid up to its `cdf_len`.
    pub cdf: I32s,
    pub rows: usize,
    pub row_len: usize,
    pub cdf_len: I32s,
    pub offset: I32s,
}

/// i32 values, read where the model file holds them when they are aligned little-endian values
/// (safetensors aligns its tensors), else converted into memory of their own.
///
/// Why: the tables are only read, once, to build the coder's; copied, they were 1.2 MB of fresh
/// pages (mbt2018-mean-msssim's) on the thread a one-shot call's start waits for.
#[derive(Clone)]
pub struct I32s(I32sRepr);

#[derive(Clone)]
enum I32sRepr {
    Owned(Vec<i32>),
    /// `len` values at byte `start` of the file, checked aligned when made.
    InFile {
        file: Arc<FileBytes>,
        start: usize,
        len: usize,
    },
}

impl std::ops::Deref for I32s {
    type Target = [i32];

    fn deref(&self) -> &[i32] {
        match &self.0 {
            I32sRepr::Owned(v) => v,
            I32sRepr::InFile { file, start, len } => {
                bytemuck::cast_slice(&file.bytes()[*start..*start + 4 * len])
            }
        }
    }
}

impl From<Vec<i32>> for I32s {
    fn from(v: Vec<i32>) -> Self {
        I32s(I32sRepr::Owned(v))
    }
}

impl std::fmt::Debug for I32s {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

/// CDF tables of an EntropyBottleneck, one row per channel.
#[derive(Clone, Debug)]
pub struct EbTables {
    pub cdf: CdfRows,
    pub medians: Vec<f32>,
}

/// CDF tables of the GaussianConditional, one row per scale of `scale_table`.
#[derive(Clone, Debug)]
pub struct GcTables {
    pub cdf: CdfRows,
    pub scale_table: Vec<f32>,
}

/// The entropy model of a family.
#[derive(Clone, Debug)]
pub enum Tables {
    /// Per-level EntropyBottleneck on `y`: row `(level - 1) * M + c`.
    Factorized { y_eb: EbTables },
    /// EntropyBottleneck on `z` and Gaussian tables for `y`.
    Hyperprior { z_eb: EbTables, y_gc: GcTables },
}

/// A loaded family: every level's weights and tables.
#[derive(Clone, Debug)]
pub struct Family {
    pub name: String,
    pub architecture: Architecture,
    /// The decoder id (first 16 hex digits of the digest of what the decoder reads), written into
    /// every `.tfci` file as `"WI"`.
    pub weights_id: String,
    /// First 16 hex digits of the model file's sha256: the id of files written before decoder ids.
    pub file_id: String,
    /// The manifest's weights version of this file, and every released version it knows.
    pub version: Option<u32>,
    pub versions: Vec<super::WeightsVersion>,
    pub levels: u32,
    /// Latent channels `M` (the channels of `y`).
    pub m: usize,
    /// Hyper-latent channels `N` (the channels of `z`; equal to `M` without a hyperprior).
    pub n: usize,
    pub g_a: Net,
    pub g_s: Net,
    pub h_a: Option<Net>,
    pub h_s: Option<Net>,
    /// `[levels, M]`
    pub y_gain: Vec<f32>,
    /// `[levels, M]`
    pub y_gain_inv: Vec<f32>,
    pub tables: Tables,
}

pub(super) fn load(dir: &Path, entry: &FamilyEntry) -> Result<Family, ModelError> {
    let path = dir.join(&entry.file);
    let buf = Arc::new(read_file(&path).map_err(|source| ModelError::Io {
        path: path.clone(),
        source,
    })?);
    let bytes = buf.bytes();
    // The checksum on one core while the other parses (a cold start waits for both); a file that
    // fails the checksum is refused whatever its parse gave.
    let (actual, parsed) =
        rayon::join(|| hex(&Sha256::digest(bytes)), || parse(&path, entry, &buf));
    crate::stage::mark("model read");
    if !actual.eq_ignore_ascii_case(&entry.sha256) {
        return Err(ModelError::Checksum {
            path,
            expected: entry.sha256.clone(),
            actual,
        });
    }
    parsed
}

/// The family in `file`, `entry`'s file at `path` (whose checksum the caller checks); its
/// convolutions' weights stay in `file` until a layer reads them.
fn parse(path: &Path, entry: &FamilyEntry, file: &Arc<FileBytes>) -> Result<Family, ModelError> {
    let bytes = file.bytes();
    let path = path.to_path_buf();
    let st_err = |e: safetensors::SafeTensorError| ModelError::Safetensors {
        path: path.clone(),
        message: e.to_string(),
    };
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(st_err)?;
    let meta: HashMap<String, String> = meta.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(bytes).map_err(st_err)?;
    let r = Reader { st: &st, file };

    let architecture = Architecture::parse(&entry.architecture)?;
    let meta_arch = meta
        .get("architecture")
        .map(String::as_str)
        .unwrap_or_default();
    if meta_arch != entry.architecture {
        return Err(ModelError::Metadata {
            key: "architecture".into(),
            reason: format!(
                "file says {meta_arch:?}, manifest says {:?}",
                entry.architecture
            ),
        });
    }
    if let Some(p) = meta.get("precision") {
        if p != "16" {
            return Err(ModelError::Metadata {
                key: "precision".into(),
                reason: format!("{p} (only 16 is supported)"),
            });
        }
    }
    // The manifest's decoder id where it gives one: the caller refuses a file whose SHA-256 is
    // not the manifest's, and the exporter computed that id from exactly those bytes (the test
    // `shipped_decoder_ids_match_their_files` recomputes it for every shipped family), so a cold
    // start need not hash the decoder's tensors again. Without one, it is computed here.
    let slope = meta.get("leaky_relu_slope").map_or("0.01", String::as_str);
    let (weights_id, nets) = match &entry.decoder_id {
        Some(id) => (id.clone(), read_nets(&r, entry, architecture, &meta)),
        None => rayon::join(
            || super::decoder_id::decoder_id(&st, &entry.architecture, entry.levels, slope),
            || read_nets(&r, entry, architecture, &meta),
        ),
    };
    let mut family = nets?;
    family.weights_id = weights_id;
    Ok(family)
}

/// Reads the nets, gains and tables, checking every shape (the weights id is left empty).
fn read_nets(
    r: &Reader<'_, '_>,
    entry: &FamilyEntry,
    architecture: Architecture,
    meta: &HashMap<String, String>,
) -> Result<Family, ModelError> {
    let slope = match meta.get("leaky_relu_slope") {
        Some(s) => s.parse::<f32>().map_err(|e| ModelError::Metadata {
            key: "leaky_relu_slope".into(),
            reason: e.to_string(),
        })?,
        None => 0.01,
    };

    let [ga, gs, ha, hs] = architecture.layers();
    let g_a = r.net("g_a", ga, slope, 3)?;
    let m = g_a.output_shape((3, 1, 1)).0;
    let g_s = r.net("g_s", gs, slope, m)?;
    if g_s.output_shape((m, 1, 1)).0 != 3 {
        return Err(ModelError::BadTensor {
            name: "g_s".into(),
            reason: "does not output 3 channels".into(),
        });
    }
    let lv = entry.levels as usize;
    let y_gain = r.f32s("y_gain", &[lv, m])?;
    let y_gain_inv = r.f32s("y_gain_inv", &[lv, m])?;
    let (h_a, h_s, n, tables) = if architecture.has_hyperprior() {
        let h_a = r.net("h_a", ha, slope, m)?;
        let n = h_a.output_shape((m, 1, 1)).0;
        let h_s = r.net("h_s", hs, slope, n)?;
        if h_s.output_shape((n, 1, 1)).0 != 2 * m {
            return Err(ModelError::BadTensor {
                name: "h_s".into(),
                reason: format!("must output 2*M = {} channels", 2 * m),
            });
        }
        let z_eb = r.eb("z_eb", n)?;
        let y_gc = r.gc("y_gc")?;
        (Some(h_a), Some(h_s), n, Tables::Hyperprior { z_eb, y_gc })
    } else {
        (
            None,
            None,
            m,
            Tables::Factorized {
                y_eb: r.eb("y_eb", lv * m)?,
            },
        )
    };
    Ok(Family {
        name: entry.family.clone(),
        architecture,
        weights_id: String::new(),
        file_id: entry.file_id().to_string(),
        version: entry.version,
        versions: entry.versions.clone(),
        levels: entry.levels,
        m,
        n,
        g_a,
        g_s,
        h_a,
        h_s,
        y_gain,
        y_gain_inv,
        tables,
    })
}

impl Family {
    /// A weights id with the release the manifest knows it as, e.g. `0123abcd0123abcd (version 2:
    /// 22,000 steps)`, for error messages.
    pub fn describe_weights(&self, id: &str) -> String {
        let known = self.versions.iter().find(|v| v.weights_id == id);
        match known {
            Some(v) if v.note.is_empty() => format!("{id} (version {})", v.version),
            Some(v) => format!("{id} (version {}: {})", v.version, v.note),
            None if id == self.weights_id => match self.version {
                Some(n) => format!("{id} (version {n})"),
                None => id.to_string(),
            },
            None => format!("{id} (a version this installation does not know)"),
        }
    }
}

struct Reader<'a, 'b> {
    st: &'a SafeTensors<'b>,
    /// The bytes `st` reads, shared with the convolutions' [`Weights`].
    file: &'a Arc<FileBytes>,
}

impl Reader<'_, '_> {
    fn view(&self, name: &str) -> Result<safetensors::tensor::TensorView<'_>, ModelError> {
        self.st
            .tensor(name)
            .map_err(|_| ModelError::MissingTensor(name.into()))
    }

    fn has(&self, name: &str) -> bool {
        self.st.tensor(name).is_ok()
    }

    /// A float tensor (F32 or F16) of any shape, with its shape, as [`Weights`]: F16 ones stay
    /// in the file's bytes until read (checked finite now), F32 ones are converted now.
    fn weights(&self, name: &str) -> Result<(Weights, Vec<usize>), ModelError> {
        let v = self.view(name)?;
        let data = v.data();
        let weights = match v.dtype() {
            Dtype::F32 => finite(
                name,
                data.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect::<Vec<f32>>(),
            )?
            .into(),
            Dtype::F16 => {
                // `data` lies inside the file's bytes (safetensors views borrow them).
                let start = data.as_ptr() as usize - self.file.bytes().as_ptr() as usize;
                let file: Arc<dyn AsRef<[u8]> + Send + Sync> = self.file.clone();
                Weights::from_halves(file, start, data.len() / 2)
                    .map_err(|e| bad(name, e.0.into()))?
            }
            other => return Err(bad(name, format!("dtype {other:?}, expected F32 or F16"))),
        };
        Ok((weights, v.shape().to_vec()))
    }

    /// A float tensor of any shape in f32 (small ones: biases, GDN's parameters, gains).
    fn floats(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>), ModelError> {
        let (w, s) = self.weights(name)?;
        Ok((w.to_vec(), s))
    }

    fn f32s(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError> {
        let (v, s) = self.floats(name)?;
        if s != shape {
            return Err(bad(name, format!("shape {s:?}, expected {shape:?}")));
        }
        finite(name, v)
    }

    fn i32s(&self, name: &str) -> Result<(I32s, Vec<usize>), ModelError> {
        let v = self.view(name)?;
        if v.dtype() != Dtype::I32 {
            return Err(bad(name, format!("dtype {:?}, expected I32", v.dtype())));
        }
        let data = v.data();
        let values = match bytemuck::try_cast_slice::<u8, i32>(data) {
            Ok(values) if cfg!(target_endian = "little") => I32s(I32sRepr::InFile {
                file: Arc::clone(self.file),
                // `data` lies inside the file's bytes (safetensors views borrow them).
                start: data.as_ptr() as usize - self.file.bytes().as_ptr() as usize,
                len: values.len(),
            }),
            _ => data
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect::<Vec<i32>>()
                .into(),
        };
        Ok((values, v.shape().to_vec()))
    }

    fn net(&self, prefix: &str, ops: &[Op], slope: f32, cin: usize) -> Result<Net, ModelError> {
        let mut layers = Vec::with_capacity(ops.len());
        let mut c = cin;
        for op in ops {
            let layer = match *op {
                Op::Conv { idx, k, stride } | Op::Deconv { idx, k, stride } => {
                    let name = format!("{prefix}.{idx}.weight");
                    let (weight, s) = self.weights(&name)?;
                    let transposed = matches!(op, Op::Deconv { .. });
                    // Conv2d [cout, cin, k, k]; ConvTranspose2d [cin, cout, k, k].
                    let (wi, wo) = if transposed { (0, 1) } else { (1, 0) };
                    if s.len() != 4 || s[wi] != c || s[2] != k || s[3] != k {
                        return Err(bad(
                            &name,
                            format!(
                                "shape {s:?}, expected {k}x{k} kernels over {c} input channels"
                            ),
                        ));
                    }
                    let cout = s[wo];
                    let bias_name = format!("{prefix}.{idx}.bias");
                    let bias = if self.has(&bias_name) {
                        Some(self.f32s(&bias_name, &[cout])?)
                    } else {
                        None
                    };
                    let cin = c;
                    c = cout;
                    Layer::Conv(Conv {
                        cin,
                        cout,
                        k,
                        stride,
                        transposed,
                        weight,
                        bias,
                    })
                }
                Op::Gdn { idx, inverse } => {
                    let beta = self.f32s(&format!("{prefix}.{idx}.beta"), &[c])?;
                    let gamma = self.f32s(&format!("{prefix}.{idx}.gamma"), &[c, c])?;
                    // A normal positive beta keeps `beta + gamma * x²` a positive normal number
                    // for finite inputs, which the reciprocal square root estimate relies on.
                    let beta_ok = |b: f32| b.is_normal() && b > 0.0;
                    let gamma_ok = |g: f32| g.is_finite() && g >= 0.0;
                    if !beta.iter().all(|&b| beta_ok(b)) || !gamma.iter().all(|&g| gamma_ok(g)) {
                        return Err(bad(
                            &format!("{prefix}.{idx}"),
                            "GDN needs a normal beta > 0 and a finite gamma >= 0".into(),
                        ));
                    }
                    Layer::Gdn {
                        c,
                        inverse,
                        beta,
                        gamma,
                    }
                }
                Op::LeakyRelu => Layer::LeakyRelu { slope },
            };
            layers.push(layer);
        }
        Ok(Net {
            name: prefix.into(),
            layers,
        })
    }

    fn table(&self, prefix: &str) -> Result<CdfRows, ModelError> {
        let (cdf, s) = self.i32s(&format!("{prefix}.cdf"))?;
        let [rows, row_len] = s[..] else {
            return Err(bad(
                &format!("{prefix}.cdf"),
                format!("shape {s:?}, expected 2-D"),
            ));
        };
        let (cdf_len, s1) = self.i32s(&format!("{prefix}.cdf_len"))?;
        let (offset, s2) = self.i32s(&format!("{prefix}.offset"))?;
        if s1 != [rows] || s2 != [rows] {
            return Err(bad(
                prefix,
                format!("cdf_len {s1:?} / offset {s2:?} do not match {rows} rows"),
            ));
        }
        Ok(CdfRows {
            cdf,
            rows,
            row_len,
            cdf_len,
            offset,
        })
    }

    fn eb(&self, prefix: &str, rows_expected: usize) -> Result<EbTables, ModelError> {
        let cdf = self.table(prefix)?;
        if cdf.rows != rows_expected {
            return Err(bad(
                prefix,
                format!("{} rows, expected {rows_expected}", cdf.rows),
            ));
        }
        let medians = self.f32s(&format!("{prefix}.medians"), &[cdf.rows])?;
        Ok(EbTables { cdf, medians })
    }

    fn gc(&self, prefix: &str) -> Result<GcTables, ModelError> {
        let cdf = self.table(prefix)?;
        let scale_table = self.f32s(&format!("{prefix}.scale_table"), &[cdf.rows])?;
        if scale_table.windows(2).any(|w| w[0] >= w[1])
            || scale_table.first().is_none_or(|&s| s <= 0.0)
        {
            return Err(bad(
                prefix,
                "scale_table must be positive and increasing".into(),
            ));
        }
        Ok(GcTables { cdf, scale_table })
    }
}

fn finite<V: AsRef<[f32]>>(name: &str, v: V) -> Result<V, ModelError> {
    // A fold without an early exit, a block at a time: it vectorizes (`all` stops at each value).
    let ok = v
        .as_ref()
        .chunks(256)
        .all(|b| b.iter().fold(true, |ok, x| ok & x.is_finite()));
    if ok {
        Ok(v)
    } else {
        Err(bad(name, "holds a non-finite value".into()))
    }
}

fn bad(name: &str, reason: String) -> ModelError {
    ModelError::BadTensor {
        name: name.into(),
        reason,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loader trusts the manifest's decoder id once the file's SHA-256 matches; this checks
    /// that every shipped family's id is the digest this crate computes from its file (so the
    /// exporter and the decoder agree on it).
    #[test]
    fn shipped_decoder_ids_match_their_files() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
        let registry = super::super::Registry::open(&dir).expect("shipped models");
        assert!(!registry.families().is_empty());
        for entry in registry.families() {
            let bytes = std::fs::read(dir.join(&entry.file)).expect("model file");
            let (_, meta) = SafeTensors::read_metadata(&bytes).expect("header");
            let meta = meta.metadata().clone().unwrap_or_default();
            let slope = meta.get("leaky_relu_slope").map_or("0.01", String::as_str);
            let st = SafeTensors::deserialize(&bytes).expect("tensors");
            let id =
                super::super::decoder_id::decoder_id(&st, &entry.architecture, entry.levels, slope);
            assert_eq!(
                entry.decoder_id.as_deref(),
                Some(id.as_str()),
                "{}",
                entry.family
            );
            // And the loader gives that id.
            assert_eq!(registry.load(entry).expect("load").weights_id, id);
        }
    }
}
