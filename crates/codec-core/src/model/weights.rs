//! Reads a family's safetensors file into graphs, gains and raw CDF tables, checking every shape.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};

use super::architecture::{Architecture, Op};
use super::graph::{Conv, Layer, Net};
use super::{FamilyEntry, ModelError};

/// Integer CDF rows as CompressAI's `update()` stores them (`_quantized_cdf`, `_cdf_length`, `_offset`).
#[derive(Clone, Debug)]
pub struct CdfRows {
    /// `[rows, row_len]`, each row valid up to its `cdf_len`.
    pub cdf: Vec<i32>,
    pub rows: usize,
    pub row_len: usize,
    pub cdf_len: Vec<i32>,
    pub offset: Vec<i32>,
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
    let buf = read_file(&path).map_err(|source| ModelError::Io {
        path: path.clone(),
        source,
    })?;
    let bytes = buf.bytes();
    // The checksum on one core while the other parses (a cold start waits for both); a file that
    // fails the checksum is refused whatever its parse gave.
    let (actual, parsed) = rayon::join(
        || hex(&Sha256::digest(bytes)),
        || parse(&path, entry, bytes),
    );
    if !actual.eq_ignore_ascii_case(&entry.sha256) {
        return Err(ModelError::Checksum {
            path,
            expected: entry.sha256.clone(),
            actual,
        });
    }
    parsed
}

/// The family in `bytes`, `entry`'s file at `path` (whose checksum the caller checks).
fn parse(path: &Path, entry: &FamilyEntry, bytes: &[u8]) -> Result<Family, ModelError> {
    let path = path.to_path_buf();
    let st_err = |e: safetensors::SafeTensorError| ModelError::Safetensors {
        path: path.clone(),
        message: e.to_string(),
    };
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(st_err)?;
    let meta: HashMap<String, String> = meta.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(bytes).map_err(st_err)?;
    let r = Reader::new(&st);

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
    /// The convolutions' weights, converted to f32 up front on all threads (the bulk of a load's
    /// work); the nets then take them from here as they check the shapes in order.
    weights: HashMap<String, (Arc<[f32]>, Vec<usize>)>,
}

impl<'a, 'b> Reader<'a, 'b> {
    fn new(st: &'a SafeTensors<'b>) -> Self {
        let names: Vec<&str> = st
            .names()
            .into_iter()
            .filter(|n| n.ends_with(".weight"))
            .collect();
        let bare = Reader {
            st,
            weights: HashMap::new(),
        };
        // A tensor that fails here is read again, and its error reported, where a net asks for it.
        let weights = names
            .par_iter()
            .filter_map(|&n| Some((n.to_string(), bare.convert(n).ok()?)))
            .collect();
        Reader { st, weights }
    }

    fn view(&self, name: &str) -> Result<safetensors::tensor::TensorView<'_>, ModelError> {
        self.st
            .tensor(name)
            .map_err(|_| ModelError::MissingTensor(name.into()))
    }

    fn has(&self, name: &str) -> bool {
        self.st.tensor(name).is_ok()
    }

    /// A float tensor (F32 or F16) of any shape, with its shape (shared with the nets: the
    /// convolutions' weights are kept as they are, never copied again).
    fn floats(&self, name: &str) -> Result<(Arc<[f32]>, Vec<usize>), ModelError> {
        match self.weights.get(name) {
            Some((w, s)) => Ok((Arc::clone(w), s.clone())),
            None => self.convert(name),
        }
    }

    /// [`Reader::floats`] from the file's bytes, built in place in its shared allocation.
    fn convert(&self, name: &str) -> Result<(Arc<[f32]>, Vec<usize>), ModelError> {
        let v = self.view(name)?;
        let data = v.data();
        let values: Arc<[f32]> = match v.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => {
                // The slice conversion runs F16C's 8-wide instruction where the CPU has it (a
                // value at a time checked for it on every call); the same exact values. The
                // file's bytes are read in place when they are aligned little-endian halves
                // (safetensors aligns its tensors), else copied once.
                let mut out: Arc<[f32]> = std::iter::repeat_n(0.0f32, data.len() / 2).collect();
                // A fresh `Arc` is unique, so `get_mut` always gives the slice.
                if let Some(dst) = Arc::get_mut(&mut out) {
                    match halves_in_place(data) {
                        Some(halves) => halves.convert_to_f32_slice(dst),
                        None => {
                            let halves: Vec<half::f16> = data
                                .chunks_exact(2)
                                .map(|b| half::f16::from_le_bytes([b[0], b[1]]))
                                .collect();
                            halves.convert_to_f32_slice(dst);
                        }
                    }
                }
                out
            }
            other => return Err(bad(name, format!("dtype {other:?}, expected F32 or F16"))),
        };
        Ok((values, v.shape().to_vec()))
    }

    fn f32s(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError> {
        let (v, s) = self.floats(name)?;
        let v = v.to_vec();
        if s != shape {
            return Err(bad(name, format!("shape {s:?}, expected {shape:?}")));
        }
        finite(name, v)
    }

    fn i32s(&self, name: &str) -> Result<(Vec<i32>, Vec<usize>), ModelError> {
        let v = self.view(name)?;
        if v.dtype() != Dtype::I32 {
            return Err(bad(name, format!("dtype {:?}, expected I32", v.dtype())));
        }
        // The file's bytes copied as they are where they are aligned little-endian values
        // (safetensors aligns its tensors), else converted one value at a time.
        let values = match bytemuck::try_cast_slice::<u8, i32>(v.data()) {
            Ok(values) if cfg!(target_endian = "little") => values.to_vec(),
            _ => v
                .data()
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
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
                    let (weight, s) = self.floats(&name)?;
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
                    let (cin, weight) = (c, finite(&name, weight)?);
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

/// A file's bytes in a buffer that starts on a 2 MiB boundary.
struct FileBytes {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl FileBytes {
    fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
}

/// Reads `path` into a fresh buffer whose whole 2 MiB pages ask for transparent huge pages before
/// the read touches them: a model file is megabytes, and faulting its copy in 4 KiB pages (each
/// zeroed by the kernel) took most of the 5-9 ms its read took on a cold start. The buffer is
/// over-allocated by up to 2 MiB of untouched address space so that the bytes start on a huge page.
fn read_file(path: &Path) -> std::io::Result<FileBytes> {
    const HUGE: usize = 2 << 20;
    let mut file = std::fs::File::open(path)?;
    // Above 256 MiB (no model is near it) `std::fs::read`, whose allocation failure is an error
    // rather than an abort.
    const MAX: usize = 256 << 20;
    let len = usize::try_from(file.metadata()?.len()).unwrap_or(usize::MAX);
    if !(HUGE..=MAX).contains(&len) {
        let buf = std::fs::read(path)?;
        let len = buf.len();
        return Ok(FileBytes { buf, start: 0, len });
    }
    let mut buf = vec![0u8; len.saturating_add(HUGE)];
    let start = buf.as_ptr().align_offset(HUGE).min(HUGE);
    crate::cpu::advise_huge_pages(&buf[start..start + len]);
    file.read_exact(&mut buf[start..start + len])?;
    // A file that grew since its length was taken is read again whole.
    if file.read(&mut [0u8; 1])? != 0 {
        let buf = std::fs::read(path)?;
        let len = buf.len();
        return Ok(FileBytes { buf, start: 0, len });
    }
    Ok(FileBytes { buf, start, len })
}

/// `data` as f16 values without a copy, where its layout allows (little-endian, 2-byte aligned).
fn halves_in_place(data: &[u8]) -> Option<&[half::f16]> {
    if cfg!(target_endian = "little") {
        bytemuck::try_cast_slice(data).ok()
    } else {
        None
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

    /// A model file read through the huge-page buffer holds exactly the file's bytes.
    #[test]
    fn read_file_gives_the_files_bytes() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
        for name in ["manifest.json", "b2018-gdn-128.safetensors"] {
            let path = dir.join(name);
            let got = read_file(&path).expect("read");
            assert_eq!(got.bytes(), std::fs::read(&path).expect("read").as_slice());
        }
    }
}
