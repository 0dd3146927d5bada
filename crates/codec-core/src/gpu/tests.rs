//! What only the GPU backend has: f16 weight storage, tile planning within the binding limit,
//! adapter choice, device loss. The ops, nets and tiles are tested with the CPU's in
//! `crate::conformance`.
//!
//! Every test that needs an adapter takes the shared one from [`gpu`]; without an adapter it
//! prints that it is skipped and passes, except under `CI=true`, where that is a failure.
#![allow(clippy::unwrap_used)]

use crate::test_rng::Rng;
use std::sync::{Arc, OnceLock};

use super::{GpuContext, GpuError, GpuNet};
use crate::conformance::analysis_and_synthesis;
use crate::cpu::{CpuNet, Math};
use crate::model::graph::{Layer, Net};
use crate::tensor::Tensor;
use crate::test_ops::{conv_layer, gdn_layer, rel_err};
use crate::tiling::{self, Geometry};

/// The test device: any usable adapter, software ones included (CI runs on lavapipe).
pub(crate) fn gpu() -> Option<Arc<GpuContext>> {
    static CTX: OnceLock<Result<Arc<GpuContext>, String>> = OnceLock::new();
    match CTX.get_or_init(|| {
        let wanted = std::env::var("TFCI_TEST_ADAPTER").ok();
        GpuContext::open(wanted.as_deref().filter(|s| !s.is_empty()), true)
            .map(Arc::new)
            .map_err(|e| e.to_string())
    }) {
        Ok(c) => Some(Arc::clone(c)),
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but no wgpu adapter: {e}");
            }
            {
                // Written past libtest's capture, so the skip shows in the test output even
                // though the test passes.
                use std::io::Write;
                let test = std::thread::current().name().unwrap_or("?").to_string();
                let _ = writeln!(std::io::stderr(), "SKIPPED {test}: no wgpu adapter ({e})");
            }
            None
        }
    }
}

/// A net of one convolution.
fn conv_net(layer: Layer) -> Net {
    Net {
        name: "conv".into(),
        layers: vec![layer],
    }
}

/// Rounds every convolution weight of `net` to the nearest f16 value, as the shipped models are.
fn to_f16(net: &mut Net) {
    for layer in &mut net.layers {
        if let Layer::Conv(c) = layer {
            c.weight = c
                .weight
                .iter()
                .map(|&v| half::f16::from_f32(v).to_f32())
                .collect();
        }
    }
}

#[test]
fn f16_weights_are_bit_identical_to_f32_weights() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng(6);
    // Every kernel variant (2x2 and one pixel per invocation, plain and transposed, the 9x9
    // stride-4 layers) and output channel counts that leave odd f16 pairs and padded groups.
    for (cin, cout, k, stride, transposed, h, w) in [
        (3, 13, 5, 2, false, 19, 23),
        (3, 8, 9, 4, false, 21, 17),
        (20, 3, 5, 2, true, 9, 7),
        (12, 3, 9, 4, true, 5, 6),
        (9, 17, 3, 1, false, 11, 10),
    ] {
        let mut net = conv_net(conv_layer(&mut rng, cin, cout, k, stride, transposed, true));
        let x = Tensor::from_vec(cin, h, w, rng.vec(cin * h * w, 1.0));
        let what = format!("cin {cin} cout {cout} k {k} s {stride} t {transposed}");
        // Random f32 weights are not f16 values: they must stay in the f32 layout.
        assert!(
            !GpuNet::prepare(&ctx, &net).unwrap().f16_weights(),
            "{what}"
        );
        to_f16(&mut net);
        let cpu = CpuNet::prepare(&net, Math::Fast).forward(&x);
        let mut half = GpuNet::prepare(&ctx, &net).unwrap();
        let mut full = GpuNet::prepare_f32(&ctx, &net).unwrap();
        assert!(half.f16_weights() && !full.f16_weights(), "{what}");
        for pass in 0..2 {
            if pass == 1 {
                half.single_pixel_kernels();
                full.single_pixel_kernels();
            }
            let (a, b) = (half.forward(&x).unwrap(), full.forward(&x).unwrap());
            let same = a
                .data
                .iter()
                .zip(&b.data)
                .all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same, "{what} (pass {pass}): f16 storage changed the result");
            let e = rel_err(&a, &cpu);
            assert!(e <= 1e-4, "{what} (pass {pass}): relative error {e:e}");
        }
    }
}

#[test]
fn tiles_cover_the_output_once() {
    // Pure planning, no adapter: every output pixel belongs to exactly one tile's core, for the
    // strides of the models and a 50-megapixel image.
    let mut rng = Rng(5);
    for net in analysis_and_synthesis(&mut rng) {
        let g = Geometry::of(&net);
        for (h, w, core) in [(97, 131, 32), (512, 768, 256), (8660, 5773, 1024)] {
            let (h, w) = if g.up > 1 {
                (h / 16 + 1, w / 16 + 1)
            } else {
                (h, w)
            };
            let (_, oh, ow) = net.output_shape((3, h, w));
            let mut count = vec![0u8; oh * ow];
            for t in tiling::tiles(h, w, core, g) {
                assert!(t.y0 % g.down == 0 && t.x0 % g.down == 0);
                for y in t.oy0..t.oy1 {
                    for x in t.ox0..t.ox1 {
                        count[y * ow + x] += 1;
                    }
                }
            }
            assert!(count.iter().all(|&c| c == 1), "{} {h}x{w}", net.name);
        }
    }
    // The receptive fields of the models' g_a: 4 x (5x5, stride 2) looks 30 pixels out.
    assert_eq!(Geometry::of(&analysis_and_synthesis(&mut rng)[0]).halo, 32);
}

#[test]
fn a_50_megapixel_image_is_planned_within_the_binding_limit() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng(6);
    // The models' widest analysis: 128 channels at half resolution after the first layer.
    let mut layers = vec![conv_layer(&mut rng, 3, 128, 5, 2, false, true)];
    layers.extend([
        gdn_layer(&mut rng, 128, false),
        conv_layer(&mut rng, 128, 128, 5, 2, false, true),
    ]);
    let net = Net {
        name: "g_a".into(),
        layers,
    };
    let gnet = GpuNet::prepare(&ctx, &net).unwrap();
    let (h, w) = (8660, 5773);
    assert!(
        !gnet.fits_device(h, w),
        "a 50 Mpx activation cannot fit one binding"
    );
    let g = Geometry::of(&net);
    let core = tiling::core_size(h, w, g, |h, w| gnet.fits_device(h, w)).unwrap();
    let tiles = tiling::tiles(h, w, core, g);
    for t in &tiles {
        assert!(gnet.fits_device(t.y1 - t.y0, t.x1 - t.x0));
    }
    eprintln!(
        "50 Mpx: {} tiles of core {core} under a {} byte budget",
        tiles.len(),
        gnet.budget()
    );
}

#[test]
fn unknown_adapter_is_a_clean_error() {
    // Needs no adapter: with none, or none matching, the answer is the same typed error.
    match GpuContext::open(Some("no-such-adapter-xyz"), true) {
        Err(GpuError::NoAdapter { wanted, .. }) => {
            assert_eq!(wanted.as_deref(), Some("no-such-adapter-xyz"))
        }
        other => panic!("expected NoAdapter, got {other:?}"),
    }
    let b = crate::backend::Backend::select(&crate::backend::BackendOptions {
        kind: crate::backend::BackendKind::Auto,
        adapter: Some("no-such-adapter-xyz".into()),
    })
    .unwrap();
    assert!(!b.is_gpu());
    assert!(
        b.note().unwrap_or_default().contains("CPU"),
        "{:?}",
        b.note()
    );
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng(7);
    let net = conv_net(conv_layer(&mut rng, 3, 8, 3, 1, false, true));
    let g = GpuNet::prepare(&ctx, &net).unwrap();
    // Wrong channel count.
    assert!(g.forward(&Tensor::zeros(4, 8, 8)).is_err());
    // An even kernel is refused at prepare time.
    let even = Net {
        name: "even".into(),
        layers: vec![conv_layer(&mut rng, 3, 8, 4, 1, false, true)],
    };
    assert!(matches!(
        GpuNet::prepare(&ctx, &even),
        Err(GpuError::Unsupported(_))
    ));
    // A budget below one minimal tile is a typed error.
    let mut tiny = GpuNet::prepare(&ctx, &net).unwrap();
    tiny.set_tile_budget(16);
    assert!(matches!(
        tiny.forward(&Tensor::zeros(3, 64, 64)),
        Err(GpuError::TooLarge { .. })
    ));
    // Empty input.
    let out = g.forward(&Tensor::zeros(3, 0, 5)).unwrap();
    assert_eq!(out.data.len(), 0);
}

#[test]
fn device_loss_is_an_error_not_a_panic_or_a_hang() {
    let Some(_) = gpu() else { return };
    // A device of its own: the shared one must survive.
    let ctx = Arc::new(GpuContext::open(None, true).unwrap());
    let mut rng = Rng(8);
    let net = conv_net(conv_layer(&mut rng, 3, 8, 3, 1, false, true));
    let g = GpuNet::prepare(&ctx, &net).unwrap();
    let x = Tensor::from_vec(3, 9, 9, rng.vec(3 * 81, 1.0));
    assert!(g.forward(&x).is_ok());
    ctx.destroy();
    let r = g.forward(&x);
    eprintln!("after destroy: {r:?}");
    assert!(r.is_err(), "a destroyed device returned a result");
}

#[test]
fn adapter_limits_are_checked_not_assumed() {
    // WebGL2-class limits: no compute at all.
    let why = super::context::unusable_reason(true, &wgpu::Limits::downlevel_webgl2_defaults());
    assert!(why.is_some());
    assert!(super::context::unusable_reason(false, &wgpu::Limits::default()).is_some());
    // The WebGPU defaults and the downlevel defaults are enough for every kernel.
    assert_eq!(
        super::context::unusable_reason(true, &wgpu::Limits::default()),
        None
    );
    assert_eq!(
        super::context::unusable_reason(true, &wgpu::Limits::downlevel_defaults()),
        None
    );
}

#[test]
fn listing_adapters_never_fails() {
    // With no driver the list is empty; with lavapipe it holds a software adapter.
    for a in super::list_adapters() {
        eprintln!(
            "adapter: {} software={} unusable={:?}",
            a.describe(),
            a.software,
            a.unusable
        );
        assert!(!a.name.is_empty());
    }
}

#[test]
fn device_time_runs_untiled_inputs_and_refuses_tiled_ones() {
    let Some(ctx) = gpu() else { return };
    let mut rng = Rng(7);
    let net = conv_net(conv_layer(&mut rng, 4, 8, 3, 1, false, true));
    let x = Tensor::from_vec(4, 20, 20, rng.vec(4 * 20 * 20, 1.0));
    let mut g = GpuNet::prepare(&ctx, &net).unwrap();
    let before = g.forward(&x).unwrap();
    assert!(g.device_time(&x, 3).unwrap() > std::time::Duration::ZERO);
    // The timing passes leave a one-op net's input intact: a later forward gives the same result.
    assert_eq!(g.forward(&x).unwrap().data, before.data);
    g.set_tile_budget(8 * 8 * 8 * 4);
    assert!(matches!(
        g.device_time(&x, 1),
        Err(GpuError::Unsupported(_))
    ));
}
