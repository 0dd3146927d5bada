//! The `.tfci` weights id covers the decoder only: a model whose encoder changed still decodes old
//! files; one whose decoder changed refuses them with an error that names the weights they need.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use codec_core::model::{is_decoder_tensor, Registry};
use codec_core::{Codec, Error, Limits};
use safetensors::tensor::TensorView;
use safetensors::SafeTensors;
use sha2::{Digest, Sha256};
use tfci_tests::fixtures_dir;

/// Copies the mbt fixture into `dir` with `change(name)` deciding which float tensors get +1 on
/// their first byte, fixes the manifest's sha256 and drops its decoder id; returns the registry.
fn variant(dir: &Path, change: impl Fn(&str) -> bool, versions: &str) -> Registry {
    edited(
        dir,
        |name, d| {
            if change(name) {
                d[0] ^= 1;
            }
        },
        versions,
    )
}

/// Copies the mbt fixture into `dir` with `edit(name, bytes)` applied to every tensor's bytes,
/// fixes the manifest's sha256 and drops its decoder id; returns the registry.
fn edited(dir: &Path, edit: impl Fn(&str, &mut Vec<u8>), versions: &str) -> Registry {
    let src = fixtures_dir().join("mbt2018-mean");
    let file = "fixture-mbt2018-mean.safetensors";
    let bytes = std::fs::read(src.join(file)).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut data: BTreeMap<String, (safetensors::Dtype, Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for (name, v) in st.tensors() {
        let mut d = v.data().to_vec();
        edit(&name, &mut d);
        data.insert(name, (v.dtype(), v.shape().to_vec(), d));
    }
    let views: Vec<(String, TensorView<'_>)> = data
        .iter()
        .map(|(n, (dt, s, d))| (n.clone(), TensorView::new(*dt, s.clone(), d).unwrap()))
        .collect();
    let out = safetensors::serialize(views, meta.metadata().clone()).unwrap();
    std::fs::write(dir.join(file), &out).unwrap();
    let sha: String = Sha256::digest(&out)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("manifest.json")).unwrap()).unwrap();
    let entry = &mut manifest["families"][0];
    entry["sha256"] = sha.into();
    entry["versions"] = serde_json::from_str(versions).unwrap();
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    Registry::open(dir).unwrap()
}

fn codec(r: &Registry) -> Codec {
    Codec::new(r.load(&r.families()[0]).unwrap()).unwrap()
}

#[test]
fn encoder_changes_keep_the_id_decoder_changes_refuse_with_the_version() {
    let tmp = std::env::temp_dir().join(format!("tfci-weights-id-{}", std::process::id()));
    let (a, b, c) = (tmp.join("orig"), tmp.join("enc"), tmp.join("dec"));
    for d in [&a, &b, &c] {
        std::fs::create_dir_all(d).unwrap();
    }
    let orig = codec(&variant(&a, |_| false, "[]"));
    let encoder_only = |n: &str| n.starts_with("g_a.") || n.starts_with("h_a.") || n == "y_gain";
    let enc = codec(&variant(&b, encoder_only, "[]"));
    let versions = format!(
        r#"[{{"version": 1, "weights_id": "{}", "note": "the first weights"}}]"#,
        orig.family().weights_id
    );
    let dec = codec(&variant(&c, |n| n.starts_with("g_s."), &versions));
    assert!(is_decoder_tensor("g_s.0.weight") && !is_decoder_tensor("g_a.0.weight"));
    assert_eq!(orig.family().weights_id, enc.family().weights_id);
    assert_ne!(orig.family().file_id, enc.family().file_id);
    assert_ne!(orig.family().weights_id, dec.family().weights_id);

    let img = tfci_cli::read_image(&fixtures_dir().join("mbt2018-mean/input.png")).unwrap();
    let limits = Limits::default();
    let bytes = orig.compress(&img, 2, &limits).unwrap();
    let packed = codec_core::container::Packed::from_bytes(&bytes).unwrap();
    let want = orig.decompress_packed(&packed, &limits).unwrap();
    // A new encoder: the old file decodes to the same image.
    assert_eq!(enc.decompress_packed(&packed, &limits).unwrap(), want);
    // A new decoder: refused, naming the version the file needs.
    let err = dec.decompress_packed(&packed, &limits).unwrap_err();
    assert!(matches!(err, Error::WeightsMismatch { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains(&orig.family().weights_id) && msg.contains("version 1: the first weights"),
        "{msg}"
    );
    // Files written before decoder ids carry the file digest: still accepted for the same file.
    let mut legacy = packed.clone();
    legacy.weights_id = Some(orig.family().file_id.clone());
    assert_eq!(orig.decompress_packed(&legacy, &limits).unwrap(), want);
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// A GDN `beta` that is not a positive normal number, or a `gamma` that is not finite, is refused
/// at load (the Fast kernels' reciprocal square root estimate needs `beta + gamma * x²` normal).
#[test]
fn gdn_parameters_outside_their_domain_are_refused() {
    let tmp = std::env::temp_dir().join(format!("tfci-gdn-domain-{}", std::process::id()));
    let set_first = |target: &'static str, value: f32| {
        move |name: &str, d: &mut Vec<u8>| {
            if name == target {
                d[..4].copy_from_slice(&value.to_le_bytes());
            }
        }
    };
    let cases: [(&str, &str, f32, &str); 4] = [
        ("subnormal", "g_a.1.beta", 1e-40, "normal beta"),
        ("zero", "g_s.1.beta", 0.0, "normal beta"),
        ("nan", "g_a.1.gamma", f32::NAN, "non-finite"),
        ("fine", "g_a.1.beta", 0.25, ""),
    ];
    for (what, tensor, value, want) in cases {
        let dir = tmp.join(what);
        std::fs::create_dir_all(&dir).unwrap();
        let r = edited(&dir, set_first(tensor, value), "[]");
        let got = r.load(&r.families()[0]);
        if want.is_empty() {
            assert!(got.is_ok(), "{what}: {:?}", got.err());
        } else {
            let msg = got.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(msg.contains(want), "{what}: {msg:?}");
        }
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}
