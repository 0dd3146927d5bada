//! The weights id written into `.tfci` files: a digest of what the *decoder* reads.
//!
//! A file decodes with any model whose decoder side is bit-identical to the one that made it. Hashing
//! the whole model file (the old id) tied files to the encoder too, so an encoder-only improvement
//! (a better `g_a`, a per-image latent search) would have made every existing file undecodable.
//! The id covers `g_s`, `h_s`, the decoder-side gains `y_gain_inv`, every entropy table
//! (`y_eb.*`, `z_eb.*`, `y_gc.*`), the architecture, the level count and the LeakyReLU slope: each
//! tensor as `name \0 dtype \0 rank shape... data` (little-endian u64 lengths), in name order, after the
//! header `tfci-decoder/1 ARCH levels=L slope=S`. The exporter (training/tfci_training/export.py)
//! computes the same digest; docs/model-format.md is the contract.

use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};

/// Tensor-name prefixes the decoder reads.
const DECODER_PREFIXES: [&str; 5] = ["g_s.", "h_s.", "y_eb.", "z_eb.", "y_gc."];
const DECODER_TENSORS: [&str; 1] = ["y_gain_inv"];

/// Whether the decoder reads tensor `name`.
pub fn is_decoder_tensor(name: &str) -> bool {
    DECODER_TENSORS.contains(&name) || DECODER_PREFIXES.iter().any(|p| name.starts_with(p))
}

fn dtype_name(d: Dtype) -> String {
    match d {
        Dtype::F16 => "F16".into(),
        Dtype::F32 => "F32".into(),
        Dtype::I32 => "I32".into(),
        Dtype::U8 => "U8".into(),
        other => format!("{other:?}"),
    }
}

/// The first 16 hex digits of the decoder digest of a parsed model file.
pub fn decoder_id(st: &SafeTensors<'_>, architecture: &str, levels: u32, slope: &str) -> String {
    let mut h = Sha256::new();
    h.update(format!("tfci-decoder/1 {architecture} levels={levels} slope={slope}").as_bytes());
    let mut names: Vec<String> = st
        .names()
        .into_iter()
        .filter(|n| is_decoder_tensor(n))
        .map(str::to_string)
        .collect();
    names.sort();
    for name in names {
        let Ok(v) = st.tensor(&name) else { continue };
        h.update(name.as_bytes());
        h.update([0]);
        h.update(dtype_name(v.dtype()).as_bytes());
        h.update([0]);
        h.update((v.shape().len() as u64).to_le_bytes());
        for &d in v.shape() {
            h.update((d as u64).to_le_bytes());
        }
        h.update((v.data().len() as u64).to_le_bytes());
        h.update(v.data());
    }
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}
