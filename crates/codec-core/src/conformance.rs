//! The backends' shared tests, written once against [`PreparedNet`]: every op and two nets against
//! the naive f64 reference, tiled runs against untiled ones, the refusal of an input whose
//! smallest tile does not fit, and device time. Each backend instantiates them in a module of its
//! own below: the CPU with both arithmetics, the GPU with both kernel variants (skipped without an
//! adapter, a failure under `CI=true`). What only one backend has (the exact order, f16 storage,
//! adapter choice) stays in `cpu::tests` and `gpu::tests`.

use crate::model::graph::{Layer, Net};
use crate::tensor::Tensor;
use crate::test_ops::{
    assert_bits_eq, assert_close, conv_layer, gdn_layer, reference, rel_err, tensor,
};
use crate::test_rng::Rng;
use crate::tiling::{self, Geometry, PreparedNet};

/// Prepares a net whose tiles keep within a budget of bytes (`u64::MAX`: whatever the backend
/// allows by itself).
type Prepare<P> = Box<dyn Fn(&Net, u64) -> P>;

/// A backend under test.
pub(crate) struct Subject<P> {
    pub prepare: Prepare<P>,
    /// Whether a tiled run equals the untiled one bit for bit (else within 1e-6 of its scale).
    pub bit_exact_tiles: bool,
    /// Whether the backend has a device with a clock apart from the caller's.
    pub has_device: bool,
}

fn run<P: PreparedNet>(p: &P, x: &Tensor, what: &str) -> Tensor {
    p.run(x).unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn net(name: &str, layers: Vec<Layer>) -> Net {
    Net {
        name: name.into(),
        layers,
    }
}

fn describe(layer: &Layer) -> String {
    match layer {
        Layer::Conv(c) => format!(
            "conv {}->{} k{} s{} transposed {}",
            c.cin, c.cout, c.k, c.stride, c.transposed
        ),
        Layer::Gdn { c, inverse, .. } => format!("gdn c{c} inverse {inverse}"),
        Layer::LeakyRelu { slope } => format!("leaky relu {slope}"),
    }
}

/// The f64 reference of a whole net, one layer at a time.
fn chain(net: &Net, x: &Tensor) -> Tensor {
    net.layers
        .iter()
        .fold(x.clone(), |cur, layer| reference(layer, &cur).0)
}

/// A g_a-like and a g_s-like net (the models' strides and layer kinds, fewer channels).
pub(crate) fn analysis_and_synthesis(rng: &mut Rng) -> [Net; 2] {
    let mut a = vec![conv_layer(rng, 3, 12, 5, 2, false, true)];
    for _ in 0..3 {
        a.extend([
            gdn_layer(rng, 12, false),
            conv_layer(rng, 12, 12, 5, 2, false, true),
        ]);
    }
    let mut s = Vec::new();
    for _ in 0..3 {
        s.extend([
            conv_layer(rng, 12, 12, 5, 2, true, true),
            gdn_layer(rng, 12, true),
        ]);
    }
    s.push(conv_layer(rng, 12, 3, 5, 2, true, true));
    [net("g_a", a), net("g_s", s)]
}

/// Convolutions of every kernel size and stride, plain and transposed (fixed cases like the
/// models' first, widest and last layers, then random shapes including ones smaller than the
/// kernel), GDN and IGDN up to 192 channels: each within 1e-4 of the f64 reference, relative to
/// the magnitude of its terms. (LeakyReLU only follows a convolution, which the GPU fuses it into:
/// see [`nets_match_reference`].)
pub(crate) fn ops_match_reference<P: PreparedNet>(s: &Subject<P>) {
    let mut rng = Rng(0x5eed_c0f0);
    let mut convs = vec![
        (3, 16, 5, 2, false, 33, 47),
        (3, 8, 9, 4, false, 40, 29),
        (24, 24, 5, 2, false, 21, 18),
        (16, 24, 3, 1, false, 17, 9),
        (130, 9, 5, 2, false, 12, 10),
        (24, 16, 5, 2, true, 11, 7),
        (16, 3, 5, 2, true, 9, 13),
        (16, 3, 9, 4, true, 6, 5),
    ];
    for transposed in [false, true] {
        for k in [1, 3, 5, 9] {
            for stride in [1, 2, 4] {
                convs.push((
                    rng.pick(&[1, 3, 5, 16, 19]),
                    rng.pick(&[1, 3, 8, 21, 33]),
                    k,
                    stride,
                    transposed,
                    1 + rng.below(20),
                    1 + rng.below(20),
                ));
            }
        }
    }
    let mut cases = Vec::new();
    for (i, &(cin, cout, k, stride, t, h, w)) in convs.iter().enumerate() {
        cases.push((
            conv_layer(&mut rng, cin, cout, k, stride, t, i % 3 != 0),
            (cin, h, w),
        ));
    }
    for (c, h, w) in [(1, 3, 4), (3, 5, 7), (16, 9, 9), (21, 13, 37), (130, 4, 19)] {
        for inverse in [false, true] {
            cases.push((gdn_layer(&mut rng, c, inverse), (c, h, w)));
        }
    }
    cases.push((gdn_layer(&mut rng, 192, false), (192, 8, 8)));
    for (layer, (c, h, w)) in cases {
        let x = tensor(&mut rng, c, h, w);
        let what = format!("{} on {c}x{h}x{w}", describe(&layer));
        let p = (s.prepare)(&net("op", vec![layer.clone()]), u64::MAX);
        assert_close(&run(&p, &x, &what), &layer, &x, 1e-4, &what);
    }
}

/// Nets that chain the ops (a convolution with a LeakyReLU after it, which the GPU fuses; a g_a-
/// and a g_s-like net) within 1e-4 of the chained f64 reference, relative to the output's scale.
pub(crate) fn nets_match_reference<P: PreparedNet>(s: &Subject<P>) {
    let mut rng = Rng(0x5eed_c0f1);
    let conv_leaky = net(
        "conv+leaky",
        vec![
            conv_layer(&mut rng, 8, 16, 3, 1, false, true),
            Layer::LeakyRelu { slope: 0.01 },
        ],
    );
    let [g_a, g_s] = analysis_and_synthesis(&mut rng);
    for (net, (c, h, w)) in [
        (conv_leaky, (8, 10, 12)),
        (g_a, (3, 70, 45)),
        (g_s, (12, 5, 3)),
    ] {
        let x = tensor(&mut rng, c, h, w);
        let got = run(&(s.prepare)(&net, u64::MAX), &x, &net.name);
        let e = rel_err(&got, &chain(&net, &x));
        assert!(e <= 1e-4, "{}: relative error {e:e}", net.name);
        assert_eq!(net.output_shape((c, h, w)), (got.c, got.h, got.w));
    }
}

/// The largest power-of-two budget under which `net` runs an `h x w` input in at least 4 tiles.
fn tiling_budget<P: PreparedNet>(s: &Subject<P>, net: &Net, h: usize, w: usize) -> (P, u64) {
    let g = Geometry::of(net);
    let mut budget = 1u64 << 40;
    loop {
        let p = (s.prepare)(net, budget);
        let core = tiling::core_size(h, w, g, |th, tw| p.fits(th, tw, budget))
            .unwrap_or_else(|| panic!("{}: no tile fits {budget} bytes", net.name));
        if tiling::tiles(h, w, core, g).len() >= 4 {
            return (p, budget);
        }
        budget /= 2;
    }
}

/// Under a budget that needs at least 4 tiles, the tiled run gives the untiled result (bit for
/// bit where the backend promises it, else within 1e-6 of the largest value: the CPU's Fast GEMM
/// blocks a tile's shorter rows differently, which moves last bits).
pub(crate) fn tiled_equals_untiled<P: PreparedNet>(s: &Subject<P>) {
    let mut rng = Rng(0x5eed_c0f2);
    let [g_a, g_s] = analysis_and_synthesis(&mut rng);
    for (net, (c, h, w)) in [(g_a, (3, 150, 133)), (g_s, (12, 13, 11))] {
        let x = tensor(&mut rng, c, h, w);
        let whole = run(&(s.prepare)(&net, u64::MAX), &x, &net.name);
        let (p, budget) = tiling_budget(s, &net, h, w);
        let tiled = tiling::forward_tensor(&p, &x, net.output_shape((c, h, w)), budget)
            .unwrap_or_else(|e| panic!("{}: {e}", net.name));
        if s.bit_exact_tiles {
            assert_bits_eq(&tiled, &whole, &format!("{} tiled", net.name));
        } else {
            let e = rel_err(&tiled, &whole);
            assert!(e <= 1e-6, "{}: tiled differs by {e:e}", net.name);
        }
    }
}

/// A budget below the smallest tile is the backend's typed error, naming the net, not a panic.
pub(crate) fn too_small_a_budget_is_an_error<P: PreparedNet>(s: &Subject<P>) {
    let mut rng = Rng(0x5eed_c0f3);
    let [g_a, _] = analysis_and_synthesis(&mut rng);
    let x = tensor(&mut rng, 3, 64, 64);
    let p = (s.prepare)(&g_a, 64);
    match tiling::forward_tensor(&p, &x, g_a.output_shape((3, 64, 64)), 64) {
        Ok(_) => panic!("a 64-byte budget ran"),
        Err(e) => assert!(e.to_string().contains("g_a"), "{e}"),
    }
}

/// A backend with a device reports its time for an untiled run; the CPU reports none.
pub(crate) fn device_time<P: PreparedNet>(s: &Subject<P>) {
    let mut rng = Rng(0x5eed_c0f4);
    let op = net("op", vec![conv_layer(&mut rng, 4, 8, 3, 1, false, true)]);
    let x = tensor(&mut rng, 4, 20, 20);
    let p = (s.prepare)(&op, u64::MAX);
    match p.device_time(&x, 3) {
        None => assert!(!s.has_device, "no device time"),
        Some(Ok(t)) => assert!(s.has_device && t > std::time::Duration::ZERO, "{t:?}"),
        Some(Err(e)) => panic!("device time: {e}"),
    }
}

/// One module of tests per backend; `$subject` is an `Option<Subject<_>>` (`None`: skipped).
macro_rules! conformance {
    ($name:ident, $subject:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            fn ops_match_reference() {
                if let Some(s) = $subject {
                    super::ops_match_reference(&s);
                }
            }

            #[test]
            fn nets_match_reference() {
                if let Some(s) = $subject {
                    super::nets_match_reference(&s);
                }
            }

            #[test]
            fn tiled_equals_untiled() {
                if let Some(s) = $subject {
                    super::tiled_equals_untiled(&s);
                }
            }

            #[test]
            fn too_small_a_budget_is_an_error() {
                if let Some(s) = $subject {
                    super::too_small_a_budget_is_an_error(&s);
                }
            }

            #[test]
            fn device_time() {
                if let Some(s) = $subject {
                    super::device_time(&s);
                }
            }
        }
    };
}

fn cpu(math: crate::cpu::Math) -> Option<Subject<crate::cpu::CpuNet>> {
    Some(Subject {
        prepare: Box::new(move |net, _budget| crate::cpu::CpuNet::prepare(net, math)),
        bit_exact_tiles: matches!(math, crate::cpu::Math::Exact),
        has_device: false,
    })
}

conformance!(cpu_fast, cpu(crate::cpu::Math::Fast));
conformance!(cpu_exact, cpu(crate::cpu::Math::Exact));

/// The shared test adapter, with 2x2 or one-pixel-per-invocation kernels.
#[cfg(feature = "gpu")]
fn gpu(single_pixel: bool) -> Option<Subject<crate::gpu::GpuNet>> {
    let ctx = crate::gpu::tests::gpu()?;
    Some(Subject {
        prepare: Box::new(move |net, budget| {
            let mut g = crate::gpu::GpuNet::prepare(&ctx, net)
                .unwrap_or_else(|e| panic!("{}: {e}", net.name));
            if budget != u64::MAX {
                g.set_tile_budget(budget);
            }
            if single_pixel {
                g.single_pixel_kernels();
            }
            g
        }),
        bit_exact_tiles: false,
        has_device: true,
    })
}

#[cfg(feature = "gpu")]
conformance!(gpu_2x2, gpu(false));
#[cfg(feature = "gpu")]
conformance!(gpu_one_pixel, gpu(true));
