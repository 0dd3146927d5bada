//! Tests of the CPU ops against naive f64 references and the documented exact order.

use crate::test_rng::Rng;
use std::cell::Cell;

use super::exact::exact_scalar;
use super::{CpuLayer, CpuNet, Math};
use crate::conformance::analysis_and_synthesis;
use crate::model::graph::{Conv, Layer, Net};
use crate::tensor::Tensor;
use crate::test_ops::{
    assert_bits_eq, assert_close, conv_layer, gdn_layer, reference, rel_err, tensor,
};

thread_local! {
    /// Makes the kernels this thread calls skip their SIMD builds. Per thread, so that tests
    /// running meanwhile keep their own builds (the Fast GDN's builds differ in their last bits);
    /// every kernel picks its build on the calling thread, before its parallel loop.
    pub(super) static FORCE_GENERIC: Cell<bool> = const { Cell::new(false) };
    /// Holds the AVX-512 kernels this thread calls back (the AVX2 builds run instead).
    pub(super) static FORCE_AVX2: Cell<bool> = const { Cell::new(false) };
    /// Makes every Winograd layer this thread runs take two blocks of tiles per task (layers
    /// with weights too large for the cache do).
    pub(super) static FORCE_GROUPS: Cell<bool> = const { Cell::new(false) };
    /// Tile rows per band of an analysis head (`band.rs`) on this thread; 0 for its own choice.
    pub(super) static BAND_TILE_ROWS: Cell<usize> = const { Cell::new(0) };
}

fn run(layer: &Layer, x: &Tensor, math: Math) -> Tensor {
    CpuLayer::prepare(layer, math).forward(x, math)
}

fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
        .install(f)
}

#[test]
fn transposed_conv_hand_example() {
    // 1 -> 1 channel, k = 3, s = 2, p = 1: out[o] += in[i] * w[k] with o = 2i - 1 + k.
    // Only the middle kernel row is non-zero, so only output row 0 (= 2*0 - 1 + 1) is hit.
    let mut weight = vec![0.0; 9];
    weight[3..6].copy_from_slice(&[1.0, 2.0, 3.0]);
    let layer = Layer::Conv(Conv {
        cin: 1,
        cout: 1,
        k: 3,
        stride: 2,
        weight: weight.into(),
        bias: None,
        transposed: true,
    });
    let x = Tensor::from_vec(1, 1, 2, vec![1.0, 10.0]);
    for math in [Math::Fast, Math::Exact] {
        let y = run(&layer, &x, math);
        assert_eq!((y.c, y.h, y.w), (1, 2, 4));
        assert_eq!(
            y.data,
            vec![2.0, 13.0, 20.0, 30.0, 0.0, 0.0, 0.0, 0.0],
            "{math:?}"
        );
    }
}

#[test]
fn conv_hand_example() {
    // 3x3 all-ones kernel, stride 2 on a 3x3 ramp: output 2x2, windows clipped by zero padding.
    let layer = Layer::Conv(Conv {
        cin: 1,
        cout: 1,
        k: 3,
        stride: 2,
        weight: vec![1.0; 9].into(),
        bias: Some(vec![0.5]),
        transposed: false,
    });
    let x = Tensor::from_vec(1, 3, 3, (1..=9).map(|v| v as f32).collect());
    for math in [Math::Fast, Math::Exact] {
        let y = run(&layer, &x, math);
        assert_eq!((y.c, y.h, y.w), (1, 2, 2));
        // (0,0): 1+2+4+5; (0,1): 2+3+5+6; (1,0): 4+5+7+8; (1,1): 5+6+8+9.
        assert_eq!(y.data, vec![12.5, 16.5, 24.5, 28.5], "{math:?}");
    }
}

/// Random shapes: both arithmetics match the f64 reference; Exact matches the scalar order bitwise.
#[test]
fn conv_random_shapes_match_reference() {
    let mut rng = Rng(0x5eed_0001);
    // Every kernel size and stride, plain and transposed, plus 1x1.
    let mut cases = vec![(1, 1, false), (1, 2, false), (1, 2, true)];
    for transposed in [false, true] {
        for k in [3, 5, 9] {
            for s in [1, 2, 4] {
                cases.push((k, s, transposed));
            }
        }
    }
    for (case, &(k, s, transposed)) in cases.iter().enumerate() {
        for rep in 0..3 {
            let cin = rng.pick(&[1, 3, 5, 16, 19]);
            let cout = rng.pick(&[1, 3, 8, 16, 21, 33]);
            // Odd and even sizes, including sizes smaller than the kernel.
            let h = 1 + rng.below(14);
            let w = 1 + rng.below(14);
            let bias = rep % 2 == 0;
            let layer = conv_layer(&mut rng, cin, cout, k, s, transposed, bias);
            let x = tensor(&mut rng, cin, h, w);
            let what = format!("case {case}: k{k} s{s} t{transposed} cin{cin} cout{cout} {h}x{w}");
            let fast = run(&layer, &x, Math::Fast);
            assert_close(&fast, &layer, &x, 1e-4, &format!("fast {what}"));
            let exact = run(&layer, &x, Math::Exact);
            assert_close(&exact, &layer, &x, 1e-4, &format!("exact {what}"));
            assert_bits_eq(
                &exact,
                &exact_scalar(&layer, &x),
                &format!("exact order {what}"),
            );
        }
    }
}

/// Larger layers (several tiles per layer, multi-row tiles) against the reference.
#[test]
fn conv_larger_layers_match_reference() {
    let mut rng = Rng(0x5eed_0002);
    for &(cin, cout, k, s, t, h, w) in &[
        (3, 24, 5, 2, false, 37, 50),
        (24, 32, 5, 2, false, 33, 41),
        (32, 24, 5, 2, true, 17, 23),
        (16, 3, 9, 4, true, 9, 13),
        (40, 48, 3, 1, false, 19, 26),
    ] {
        let layer = conv_layer(&mut rng, cin, cout, k, s, t, true);
        let x = tensor(&mut rng, cin, h, w);
        let what = format!("{cin}->{cout} k{k} s{s} t{t} {h}x{w}");
        assert_close(
            &run(&layer, &x, Math::Fast),
            &layer,
            &x,
            1e-4,
            &format!("fast {what}"),
        );
        let exact = run(&layer, &x, Math::Exact);
        assert_bits_eq(
            &exact,
            &exact_scalar(&layer, &x),
            &format!("exact order {what}"),
        );
    }
}

/// Layers wide enough for the Winograd path: several tile blocks, several source-channel passes
/// (accumulated GEMMs), grids that are not multiples of 4, inputs smaller than one tile, sink
/// channels split between tasks, 3x3, 5x5/2 and 9x9/4 kernels, plain and transposed. The
/// tolerance is ten times tighter than the im2col path's; the worst error is printed
/// (`cargo test -p codec-core --lib winograd_layers -- --nocapture`).
#[test]
fn winograd_layers_match_reference() {
    let mut rng = Rng(0x5eed_000b);
    let (mut worst, mut worst_of_scale) = (0.0f64, 0.0f32);
    for &(cin, cout, k, s, t, h, w) in &[
        (48, 40, 5, 2, false, 70, 90),
        (40, 36, 5, 2, false, 1, 1),
        (33, 40, 5, 2, false, 9, 5),
        (136, 16, 5, 2, true, 11, 13),
        (40, 12, 5, 2, true, 2, 3),
        (140, 36, 3, 1, false, 23, 18),
        (36, 40, 3, 1, false, 3, 2),
        (3, 40, 9, 4, false, 37, 29),
        (40, 9, 9, 4, true, 5, 7),
    ] {
        let layer = conv_layer(&mut rng, cin, cout, k, s, t, true);
        let x = tensor(&mut rng, cin, h, w);
        let what = format!("{cin}->{cout} k{k} s{s} t{t} {h}x{w}");
        let prepared = CpuLayer::prepare(&layer, Math::Fast);
        let CpuLayer::Conv(conv) = &prepared else {
            unreachable!("conv_layer makes a convolution")
        };
        assert!(conv.is_winograd(), "{what}: not on the Winograd path");
        let want = reference(&layer, &x).0;
        for threads in [1, 2] {
            let got = in_pool(threads, || prepared.forward(&x, Math::Fast));
            let what = format!("{what}, {threads} threads");
            worst = worst.max(assert_close(&got, &layer, &x, 1e-5, &what));
            worst_of_scale = worst_of_scale.max(rel_err(&got, &want));
        }
        // The AVX2 and generic builds of the transforms (and the scalar patch gather), and two
        // blocks of tiles per task.
        for (flag, build) in [
            (&FORCE_AVX2, "avx2"),
            (&FORCE_GENERIC, "generic"),
            (&FORCE_GROUPS, "two blocks per task"),
        ] {
            flag.set(true);
            let got = prepared.forward(&x, Math::Fast);
            flag.set(false);
            let what = format!("{what}, {build} build");
            worst = worst.max(assert_close(&got, &layer, &x, 1e-5, &what));
        }
    }
    eprintln!(
        "winograd: worst error {worst:.1e} of an output's sum of |w*x|, {worst_of_scale:.1e} of \
         the largest output"
    );
}

/// Every transposed kernel/stride with few (col2im path) and many (sub-pixel phase path)
/// output channels, on tiny and odd sizes.
#[test]
fn transposed_both_fast_paths_match_reference() {
    let mut rng = Rng(0x5eed_0007);
    for k in [1, 3, 5, 9] {
        for s in [1, 2, 4] {
            for cout in [3, 12] {
                for (h, w) in [(1, 1), (2, 3), (7, 6), (5, 11)] {
                    let layer = conv_layer(&mut rng, 5, cout, k, s, true, true);
                    let x = tensor(&mut rng, 5, h, w);
                    let what = format!("k{k} s{s} cout{cout} {h}x{w}");
                    assert_close(&run(&layer, &x, Math::Fast), &layer, &x, 1e-4, &what);
                }
            }
        }
    }
}

#[test]
fn transposed_output_is_stride_times_input() {
    let mut rng = Rng(7);
    for s in [1, 2, 4] {
        for k in [3, 5, 9] {
            let layer = conv_layer(&mut rng, 2, 3, k, s, true, true);
            let y = run(&layer, &tensor(&mut rng, 2, 3, 5), Math::Fast);
            assert_eq!((y.c, y.h, y.w), (3, 3 * s, 5 * s));
        }
    }
}

#[test]
fn gdn_matches_reference() {
    let mut rng = Rng(0x5eed_0003);
    // Channel counts for the AVX-512 kernel (multiples of 8), the AVX2 one (12: of 4 only) and the
    // `gemm` path (odd), pixel counts that end tiles, blocks and vectors part-way.
    for &(c, h, w) in &[
        (1, 3, 4),
        (3, 5, 5),
        (16, 1, 1),
        (12, 9, 11),
        (16, 7, 9),
        (21, 13, 37),
        (64, 20, 30),
        (128, 17, 29),
    ] {
        for inverse in [false, true] {
            let layer = gdn_layer(&mut rng, c, inverse);
            let x = tensor(&mut rng, c, h, w);
            let what = format!("gdn c{c} {h}x{w} inverse {inverse}");
            let prepared = CpuLayer::prepare(&layer, Math::Fast);
            let CpuLayer::Gdn(gdn) = &prepared else {
                unreachable!("gdn_layer makes a GDN")
            };
            let fast = prepared.forward(&x, Math::Fast);
            assert_close(&fast, &layer, &x, 1e-5, &format!("fast {what}"));
            // Into a new tensor: the same kernel, the same bits.
            assert_bits_eq(
                &gdn.forward_fast_keeping(&x),
                &fast,
                &format!("fast keeping {what}"),
            );
            for threads in [1, 2] {
                let got = in_pool(threads, || prepared.forward(&x, Math::Fast));
                assert_close(
                    &got,
                    &layer,
                    &x,
                    1e-5,
                    &format!("fast {what} {threads} threads"),
                );
            }
            // The AVX2 and generic (`gemm`) builds.
            for (flag, build) in [(&FORCE_AVX2, "avx2"), (&FORCE_GENERIC, "generic")] {
                flag.set(true);
                let got = prepared.forward(&x, Math::Fast);
                flag.set(false);
                assert_close(
                    &got,
                    &layer,
                    &x,
                    1e-5,
                    &format!("fast {what} {build} build"),
                );
            }
            let exact = run(&layer, &x, Math::Exact);
            assert_close(&exact, &layer, &x, 1e-5, &format!("exact {what}"));
            // The documented order, one pixel at a time.
            let Layer::Gdn { beta, gamma, .. } = &layer else {
                unreachable!()
            };
            let p = h * w;
            for i in 0..c {
                for q in 0..p {
                    let mut acc = beta[i];
                    for j in 0..c {
                        let v = x.data[j * p + q];
                        acc += gamma[i * c + j] * (v * v);
                    }
                    let v = x.data[i * p + q];
                    let want = if inverse {
                        v * acc.sqrt()
                    } else {
                        v / acc.sqrt()
                    };
                    assert_eq!(
                        exact.data[i * p + q].to_bits(),
                        want.to_bits(),
                        "{what}: ({i}, {q})"
                    );
                }
            }
        }
    }
}

#[test]
fn leaky_relu() {
    let layer = Layer::LeakyRelu { slope: 0.01 };
    let x = Tensor::from_vec(1, 1, 4, vec![-2.0, -0.0, 0.0, 3.0]);
    for math in [Math::Fast, Math::Exact] {
        let y = run(&layer, &x, math);
        assert_eq!(y.data, vec![-0.02, -0.0, 0.0, 3.0]);
    }
}

/// A small net with every layer type: Fast and Exact against the chained f64 reference.
fn small_net(rng: &mut Rng) -> Net {
    Net {
        name: "test".into(),
        layers: vec![
            conv_layer(rng, 3, 16, 5, 2, false, true),
            gdn_layer(rng, 16, false),
            conv_layer(rng, 16, 20, 3, 1, false, false),
            Layer::LeakyRelu { slope: 0.01 },
            conv_layer(rng, 20, 12, 5, 2, true, true),
            gdn_layer(rng, 12, true),
            conv_layer(rng, 12, 3, 9, 4, true, true),
        ],
    }
}

#[test]
fn net_forward_matches_layer_by_layer_reference() {
    let mut rng = Rng(0x5eed_0004);
    let net = small_net(&mut rng);
    let x = tensor(&mut rng, 3, 23, 18);
    for math in [Math::Fast, Math::Exact] {
        let cpu = CpuNet::prepare(&net, math);
        let y = cpu.forward(&x);
        // Chain the layers one by one, each checked against the reference on its own input.
        let mut cur = x.clone();
        for (l, cl) in net.layers.iter().zip(&cpu.layers) {
            let next = cl.forward(&cur, math);
            assert_close(&next, l, &cur, 1e-4, &format!("{math:?} layer {l:?}"));
            cur = next;
        }
        assert_bits_eq(&y, &cur, "forward == layer by layer");
        assert_eq!(net.output_shape((3, 23, 18)), (y.c, y.h, y.w));
    }
}

/// An analysis head (`conv -> GDN -> Winograd conv`) and two more layers, as `g_a` starts.
fn head_net(rng: &mut Rng) -> Net {
    Net {
        name: "g_a".into(),
        layers: vec![
            conv_layer(rng, 3, 40, 5, 2, false, true),
            gdn_layer(rng, 40, false),
            conv_layer(rng, 40, 36, 5, 2, false, true),
            gdn_layer(rng, 36, false),
            conv_layer(rng, 36, 8, 5, 2, false, false),
        ],
    }
}

/// `f` on `threads` threads with `rows` tile rows per band of an analysis head (0: its own).
fn in_bands<R: Send>(rows: usize, threads: usize, f: impl FnOnce() -> R + Send) -> R {
    in_pool(threads, || {
        BAND_TILE_ROWS.set(rows);
        let y = f();
        BAND_TILE_ROWS.set(0);
        y
    })
}

/// An analysis head (`conv → GDN → Winograd conv`) run in bands of rows gives the layer-by-layer
/// result: bands of one, two and three tile rows (rounded up to whole blocks of tiles, so bands
/// that start inside a tile row) and the default, sizes that are not multiples of a tile and
/// inputs smaller than one band, on 1 and 2 threads.
/// The kernels are the same, only the tiles of the first layer's GEMM and of the GDN differ, so
/// the results agree within rounding (the worst difference is printed:
/// `cargo test -p codec-core --lib analysis_head -- --nocapture`).
#[test]
fn analysis_head_in_bands_matches_layer_by_layer() {
    let mut rng = Rng(0x5eed_000c);
    let mut worst = 0.0f32;
    for &(h, w) in &[(200, 150), (171, 263), (9, 11), (1, 1)] {
        let net = head_net(&mut rng);
        let x = tensor(&mut rng, 3, h, w);
        let cpu = CpuNet::prepare(&net, Math::Fast);
        assert!(super::band::Head::of(&cpu.layers).is_some(), "not a head");
        let mut chained = x.clone();
        for cl in &cpu.layers {
            chained = cl.forward(&chained, Math::Fast);
        }
        for rows in [1, 2, 3, 0] {
            for threads in [1, 2] {
                let got = in_bands(rows, threads, || cpu.forward(&x));
                let what = format!("{h}x{w}, {rows} tile rows, {threads} threads");
                assert_eq!(
                    (got.c, got.h, got.w),
                    (chained.c, chained.h, chained.w),
                    "{what}"
                );
                let err = rel_err(&got, &chained);
                assert!(err <= 1e-5, "{what}: {err:.1e} of the largest output");
                worst = worst.max(err);
            }
        }
    }
    eprintln!("analysis head in bands: worst difference {worst:.1e} of the largest output");
}

/// An analysis head that reads an image's 8-bit pixels, converting only the rows each band reads,
/// gives the bits of the same net on the window converted whole, for windows at the image's
/// corner, inside it and of one pixel, every band size and 1 and 2 threads; a net that starts with
/// a Winograd layer (b2018-gdn-128's 9x9/4), or an Exact one, declines.
#[test]
fn analysis_head_reads_8bit_pixels_bit_for_bit() {
    use crate::image::RgbImage;
    use crate::tiling::Tile;
    let mut rng = Rng(0x5eed_0010);
    let head = head_net(&mut rng);
    let wide = Net {
        name: "g_a".into(),
        layers: vec![
            conv_layer(&mut rng, 3, 40, 9, 4, false, true),
            gdn_layer(&mut rng, 40, false),
            conv_layer(&mut rng, 40, 8, 5, 2, false, false),
        ],
    };
    let (width, height) = (131, 97);
    let image = RgbImage {
        width,
        height,
        data: (0..width * height * 3)
            .map(|_| (rng.f(128.0) + 128.0) as u8)
            .collect(),
    };
    let window = |y0, y1, x0, x1| Tile {
        y0,
        y1,
        x0,
        x1,
        oy0: 0,
        oy1: 0,
        ox0: 0,
        ox1: 0,
    };
    let cpu = CpuNet::prepare(&head, Math::Fast);
    assert!(super::band::Head::of(&cpu.layers).is_some(), "not a head");
    for t in [
        window(0, height, 0, width),
        window(13, 80, 7, 120),
        window(96, 97, 130, 131),
    ] {
        let expected = cpu.forward(&image.window_f32(&t));
        for rows in [1, 2, 0] {
            for threads in [1, 2] {
                let got = in_bands(rows, threads, || cpu.forward_rgb(&image, &t)).expect("a head");
                let what = format!("window {t:?}, {rows} tile rows, {threads} threads");
                assert_bits_eq(&got, &expected, &what);
            }
        }
    }
    let whole = window(0, height, 0, width);
    for (net, math) in [(&wide, Math::Fast), (&head, Math::Exact)] {
        assert!(CpuNet::prepare(net, math)
            .forward_rgb(&image, &whole)
            .is_none());
    }
}

/// The buffer a forward pass keeps for the next one never shows through: a net run on a larger
/// input, then on a smaller one (which writes into that buffer), gives the smaller one's bits of
/// a freshly prepared net, and the same again when it runs once more.
#[test]
fn the_kept_buffer_does_not_change_results() {
    let mut rng = Rng(0x5eed_0009);
    let net = small_net(&mut rng);
    let big = tensor(&mut rng, 3, 40, 36);
    let small = tensor(&mut rng, 3, 9, 13);
    for math in [Math::Exact, Math::Fast] {
        let fresh = CpuNet::prepare(&net, math).forward(&small);
        let used = CpuNet::prepare(&net, math);
        used.forward(&big);
        assert_bits_eq(&fresh, &used.forward(&small), "after a larger input");
        assert_bits_eq(&fresh, &used.forward(&small), "run again");
    }
}

/// Exact results do not depend on the number of threads (nor on `math` being switched later).
#[test]
fn exact_is_thread_count_invariant() {
    let mut rng = Rng(0x5eed_0005);
    let net = Net {
        name: "hs".into(),
        layers: vec![
            conv_layer(&mut rng, 24, 32, 5, 2, true, true),
            Layer::LeakyRelu { slope: 0.01 },
            conv_layer(&mut rng, 32, 40, 5, 2, true, true),
            Layer::LeakyRelu { slope: 0.01 },
            conv_layer(&mut rng, 40, 50, 3, 1, false, true),
            gdn_layer(&mut rng, 50, false),
        ],
    };
    let x = tensor(&mut rng, 24, 5, 7);
    let cpu = CpuNet::prepare(&net, Math::Exact);
    let one = in_pool(1, || cpu.forward(&x));
    for threads in [2, 3, 8] {
        let many = in_pool(threads, || cpu.forward(&x));
        assert_bits_eq(&one, &many, &format!("1 vs {threads} threads"));
    }
    // Packing lazily for Exact gives the same bits as packing eagerly.
    let mut lazy = CpuNet::prepare(&net, Math::Fast);
    lazy.math = Math::Exact;
    assert_bits_eq(&one, &lazy.forward(&x), "lazy exact packing");
}

/// The generic, the AVX2 and (where the CPU has it) the AVX-512 builds of the exact kernels give
/// the same bits.
#[test]
fn exact_generic_build_matches_simd_build() {
    let mut rng = Rng(0x5eed_0008);
    let net = Net {
        name: "mix".into(),
        layers: vec![
            conv_layer(&mut rng, 20, 24, 5, 2, true, true),
            conv_layer(&mut rng, 24, 19, 3, 1, false, true),
            gdn_layer(&mut rng, 19, false),
            conv_layer(&mut rng, 19, 17, 5, 2, false, false),
            gdn_layer(&mut rng, 17, true),
        ],
    };
    let x = tensor(&mut rng, 20, 9, 13);
    let cpu = CpuNet::prepare(&net, Math::Exact);
    let simd = cpu.forward(&x);
    FORCE_AVX2.set(true);
    let avx2 = cpu.forward(&x);
    FORCE_AVX2.set(false);
    FORCE_GENERIC.set(true);
    let generic = cpu.forward(&x);
    FORCE_GENERIC.set(false);
    assert_bits_eq(&simd, &generic, "generic vs widest simd build");
    assert_bits_eq(&avx2, &generic, "generic vs avx2 build");
}

/// Fast results are also independent of the thread count up to rounding.
#[test]
fn fast_thread_counts_agree() {
    let mut rng = Rng(0x5eed_0006);
    let layer = conv_layer(&mut rng, 16, 24, 5, 2, false, true);
    let x = tensor(&mut rng, 16, 40, 33);
    let one = in_pool(1, || run(&layer, &x, Math::Fast));
    let two = in_pool(2, || run(&layer, &x, Math::Fast));
    assert_close(&one, &layer, &x, 1e-4, "1 thread");
    assert_close(&two, &layer, &x, 1e-4, "2 threads");
}

#[test]
fn empty_input() {
    let mut rng = Rng(9);
    let layer = conv_layer(&mut rng, 2, 3, 3, 2, false, true);
    for math in [Math::Fast, Math::Exact] {
        let y = run(&layer, &Tensor::zeros(2, 0, 5), math);
        assert_eq!((y.c, y.h, y.w), (3, 0, 3));
    }
}

/// The CPU's tiles read the 8-bit image and write into one (tensor to tensor is in
/// `crate::conformance`) with the untiled result: bit for bit on the Exact path, within 1e-6 of
/// the largest value on the Fast one; a budget below the smallest tile is a typed error.
#[test]
fn tiles_read_and_write_8bit_pixels() {
    use crate::image::RgbImage;
    use crate::tiling::{self, Geometry, PreparedNet};
    let mut rng = Rng(0x5eed_0007);
    let [g_a, g_s] = analysis_and_synthesis(&mut rng);
    let image = RgbImage {
        width: 157,
        height: 139,
        data: (0..157 * 139 * 3)
            .map(|_| (rng.f(128.0) + 128.0) as u8)
            .collect(),
    };
    for math in [Math::Fast, Math::Exact] {
        let (a, s) = (CpuNet::prepare(&g_a, math), CpuNet::prepare(&g_s, math));
        let y_whole = a.forward(&image.as_tensor());
        for (net, budget) in [(&a, 12 * 4 * 72 * 72), (&s, 12 * 4 * 80 * 80)] {
            let (c, h, w) = if net.name() == "g_a" {
                (3, image.height, image.width)
            } else {
                (y_whole.c, y_whole.h, y_whole.w)
            };
            let g = Geometry::of(if net.name() == "g_a" { &g_a } else { &g_s });
            let core = tiling::core_size(h, w, g, |h, w| net.fits(h, w, budget)).expect("fits");
            let n = tiling::tiles(h, w, core, g).len();
            assert!(n >= 4, "{}: only {n} tiles", net.name());
            assert!(!net.fits(h, w, budget), "{c}x{h}x{w}");
        }
        let budget_a = 12 * 4 * 72 * 72;
        let same = |a: &Tensor, b: &Tensor, what: &str| match math {
            Math::Exact => assert_bits_eq(a, b, what),
            Math::Fast => {
                assert_eq!((a.c, a.h, a.w), (b.c, b.h, b.w), "{what}: shape");
                let scale = b.data.iter().fold(0f32, |m, v| m.max(v.abs()));
                let diff = a
                    .data
                    .iter()
                    .zip(&b.data)
                    .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                assert!(diff <= 1e-6 * scale, "{what}: {diff:e} of {scale:e}");
            }
        };
        let y = tiling::forward_tensor(&a, &image, a.output_shape((3, 139, 157)), budget_a)
            .expect("g_a tiles");
        same(
            &y,
            &y_whole,
            &format!("{math:?} g_a tiled from the 8-bit image"),
        );
        let budget_s = 12 * 4 * 80 * 80;
        // Into an 8-bit image smaller than the synthesis (its padding is cropped), with weights
        // small enough that most pixels are not clamped.
        let mut g_s_small = g_s.clone();
        for l in &mut g_s_small.layers {
            if let Layer::Conv(c) = l {
                c.weight = c.weight.iter().map(|w| w * 0.05).collect();
            }
        }
        let s = CpuNet::prepare(&g_s_small, math);
        let unit = &y_whole;
        let x_unit = s.forward(unit);
        let mut out = RgbImage {
            width: 150,
            height: 130,
            data: vec![0; 150 * 130 * 3],
        };
        tiling::forward(&s, unit, &mut out, budget_s).expect("g_s into pixels");
        let expected = RgbImage::quantize(&x_unit.crop(130, 150));
        let off = out
            .data
            .iter()
            .zip(&expected.data)
            .filter(|(a, b)| a != b)
            .count();
        let distinct = expected
            .data
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        assert!(
            off == 0 && distinct > 16,
            "{math:?}: {off} pixels differ, {distinct} values"
        );
        let err = tiling::forward(&s, &y_whole, &mut out, 1000).expect_err("over budget");
        assert!(
            err.needed > 1000 && err.to_string().contains("g_s"),
            "{err}"
        );
    }
}
