//! The backward passes of the encoder's latent search (`cpu::backprop`) against PyTorch's autograd
//! on the golden fixtures' models: for every transform (`g_a`, `g_s`, and `h_a`, `h_s` of the
//! hyperprior, so every op the models use: convolutions plain and transposed at every stride they
//! have, GDN, IGDN, LeakyReLU), the forward output and the input gradient of
//! `sum(net(input) * upstream)`, as `training/tfci_training/grad_fixtures.py` computed them with
//! the reference ops (`just fixtures` rewrites them). The finite-difference tests in
//! `cpu/backprop.rs` check each op alone; these check the chains of the real layer layouts.
#![allow(clippy::unwrap_used)]

use codec_core::cpu::backprop::DiffNet;
use codec_core::model::graph::Net;
use codec_core::tensor::Tensor;
use safetensors::{Dtype, SafeTensors};
use tfci_tests::{fixtures_dir, max_abs_diff, Fixture, ARCHITECTURES};

fn tensor(st: &SafeTensors<'_>, name: &str) -> Tensor {
    let v = st.tensor(name).unwrap();
    assert_eq!(v.dtype(), Dtype::F32, "{name}");
    let data: Vec<f32> = v
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let s = v.shape();
    Tensor::new(s[0], s[1], s[2], data).unwrap()
}

/// `max |a - b| / max |b|`.
fn rel(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!((a.c, a.h, a.w), (b.c, b.h, b.w), "shapes");
    let scale = b.data.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    max_abs_diff(&a.data, &b.data).0 / scale
}

#[test]
fn backward_passes_match_pytorch_autograd() {
    let mut checked = Vec::new();
    for arch in ARCHITECTURES {
        let f = Fixture::load(arch);
        let bytes = std::fs::read(fixtures_dir().join(arch).join("gradients.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let fam = f.codec.family();
        let nets: Vec<(&str, &Net)> = [
            ("g_a", Some(&fam.g_a)),
            ("g_s", Some(&fam.g_s)),
            ("h_a", fam.h_a.as_ref()),
            ("h_s", fam.h_s.as_ref()),
        ]
        .into_iter()
        .filter_map(|(n, net)| net.map(|net| (n, net)))
        .collect();
        for (name, net) in nets {
            let input = tensor(&st, &format!("{name}.input"));
            let diff = DiffNet::prepare(net);
            let (out, tape) = diff.forward(&input);
            let e_out = rel(&out, &tensor(&st, &format!("{name}.output")));
            let grad = diff.backward(tape, tensor(&st, &format!("{name}.upstream")));
            let e_grad = rel(&grad, &tensor(&st, &format!("{name}.grad")));
            eprintln!("{arch} {name}: output {e_out:e}, input gradient {e_grad:e} (relative to the largest value)");
            assert!(e_out <= 1e-5, "{arch} {name}: output differs by {e_out:e}");
            assert!(
                e_grad <= 1e-5,
                "{arch} {name}: gradient differs by {e_grad:e}"
            );
            checked.push(format!("{arch} {name}"));
        }
    }
    assert_eq!(checked.len(), 8, "{checked:?}");
}
