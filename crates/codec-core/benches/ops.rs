//! Per-op timings of the CPU backend on the real layer shapes of a 768x512 image
//! (bmshj2018 / mbt2018 with N = 128, M = 192). Throughput is reported in elements = MACs, so
//! criterion's `Gelem/s` reads as GMAC/s; a best-of-3 summary line per op is printed as well.
//!
//! Run: `just bench-ops` (`OPS_FILTER=deconv` runs the matching ops only; `OPS_BEST=20` takes
//! the summary's best of 20 runs instead of 3, steadier on a noisy machine).

use std::hint::black_box;
use std::time::{Duration, Instant};

use codec_core::cpu::{CpuNet, Math};
use codec_core::model::graph::{Layer, Net};
use codec_core::tensor::Tensor;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

mod common;
use common::{conv, gdn, values};

fn g_a(n: usize, m: usize) -> Net {
    Net {
        name: "g_a".into(),
        layers: vec![
            conv(3, n, 5, 2, false),
            gdn(n, false),
            conv(n, n, 5, 2, false),
            gdn(n, false),
            conv(n, n, 5, 2, false),
            gdn(n, false),
            conv(n, m, 5, 2, false),
        ],
    }
}

fn g_s(n: usize, m: usize) -> Net {
    Net {
        name: "g_s".into(),
        layers: vec![
            conv(m, n, 5, 2, true),
            gdn(n, true),
            conv(n, n, 5, 2, true),
            gdn(n, true),
            conv(n, n, 5, 2, true),
            gdn(n, true),
            conv(n, 3, 5, 2, true),
        ],
    }
}

fn h_s(n: usize, m: usize) -> Net {
    Net {
        name: "h_s".into(),
        layers: vec![
            conv(n, m, 5, 2, true),
            Layer::LeakyRelu { slope: 0.01 },
            conv(m, m * 3 / 2, 5, 2, true),
            Layer::LeakyRelu { slope: 0.01 },
            conv(m * 3 / 2, m * 2, 3, 1, false),
        ],
    }
}

fn single(layer: Layer) -> Net {
    Net {
        name: "op".into(),
        layers: vec![layer],
    }
}

/// `(name, net, math, input shape (c, h, w))`
type Case = (&'static str, Net, Math, (usize, usize, usize));

fn cases() -> Vec<Case> {
    let (n, m) = (128, 192);
    vec![
        (
            "fast conv 3->128 5x5/2 @512x768 (g_a.0)",
            single(conv(3, n, 5, 2, false)),
            Math::Fast,
            (3, 512, 768),
        ),
        (
            "fast conv 128->128 5x5/2 @256x384 (g_a.2)",
            single(conv(n, n, 5, 2, false)),
            Math::Fast,
            (n, 256, 384),
        ),
        (
            "fast conv 128->192 5x5/2 @64x96 (g_a.6)",
            single(conv(n, m, 5, 2, false)),
            Math::Fast,
            (n, 64, 96),
        ),
        (
            "fast gdn 128 @256x384",
            single(gdn(n, false)),
            Math::Fast,
            (n, 256, 384),
        ),
        (
            "fast gdn 128 @64x96 (g_a.5)",
            single(gdn(n, false)),
            Math::Fast,
            (n, 64, 96),
        ),
        (
            "fast deconv 128->128 5x5/2 @64x96 (g_s.2)",
            single(conv(n, n, 5, 2, true)),
            Math::Fast,
            (n, 64, 96),
        ),
        (
            "fast deconv 128->128 5x5/2 @128x192 (g_s.4)",
            single(conv(n, n, 5, 2, true)),
            Math::Fast,
            (n, 128, 192),
        ),
        (
            "fast deconv 128->3 5x5/2 @256x384 (g_s.6)",
            single(conv(n, 3, 5, 2, true)),
            Math::Fast,
            (n, 256, 384),
        ),
        (
            "fast igdn 128 @256x384",
            single(gdn(n, true)),
            Math::Fast,
            (n, 256, 384),
        ),
        (
            "fast g_a N128 M192 @512x768",
            g_a(n, m),
            Math::Fast,
            (3, 512, 768),
        ),
        (
            "fast g_s N128 M192 @32x48",
            g_s(n, m),
            Math::Fast,
            (m, 32, 48),
        ),
        (
            "fast conv 3->128 9x9/4 @512x768 (b2018 g_a.0)",
            single(conv(3, n, 9, 4, false)),
            Math::Fast,
            (3, 512, 768),
        ),
        (
            "fast deconv 128->3 9x9/4 @128x192 (b2018 g_s.4)",
            single(conv(n, 3, 9, 4, true)),
            Math::Fast,
            (n, 128, 192),
        ),
        (
            "exact deconv 128->192 5x5/2 @8x12 (h_s.0)",
            single(conv(n, m, 5, 2, true)),
            Math::Exact,
            (n, 8, 12),
        ),
        (
            "exact deconv 192->288 5x5/2 @16x24 (h_s.2)",
            single(conv(m, 288, 5, 2, true)),
            Math::Exact,
            (m, 16, 24),
        ),
        (
            "exact conv 288->384 3x3/1 @32x48 (h_s.4)",
            single(conv(288, 384, 3, 1, false)),
            Math::Exact,
            (288, 32, 48),
        ),
        ("exact h_s M192 @8x12", h_s(n, m), Math::Exact, (n, 8, 12)),
        // The zoo's q5 width (N = 192): the Winograd weights (21 MB a layer) no longer fit the cache.
        (
            "fast conv 192->192 5x5/2 @256x384 (q5 g_a.2)",
            single(conv(192, 192, 5, 2, false)),
            Math::Fast,
            (192, 256, 384),
        ),
        (
            "fast conv 192->192 5x5/2 @128x192 (q5 g_a.4)",
            single(conv(192, 192, 5, 2, false)),
            Math::Fast,
            (192, 128, 192),
        ),
        // The shipped MS-SSIM families' width (N = 64).
        (
            "fast conv 64->64 5x5/2 @256x384 (N64 g_a.2)",
            single(conv(64, 64, 5, 2, false)),
            Math::Fast,
            (64, 256, 384),
        ),
        (
            "fast gdn 64 @128x192",
            single(gdn(64, false)),
            Math::Fast,
            (64, 128, 192),
        ),
        (
            "fast deconv 64->64 5x5/2 @128x192 (N64 g_s.4)",
            single(conv(64, 64, 5, 2, true)),
            Math::Fast,
            (64, 128, 192),
        ),
        (
            "fast igdn 64 @256x384",
            single(gdn(64, true)),
            Math::Fast,
            (64, 256, 384),
        ),
    ]
}

fn bench_ops(c: &mut Criterion) {
    let mut summary = Vec::new();
    // `OPS_FILTER=substring` restricts the run to matching ops (criterion's own filter only
    // skips its measurements, not the summary).
    let filter = std::env::var("OPS_FILTER").unwrap_or_default();
    let best_of: usize = std::env::var("OPS_BEST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    for (name, net, math, (ch, h, w)) in cases() {
        if !name.contains(filter.as_str()) {
            continue;
        }
        let cpu = CpuNet::prepare(&net, math);
        let x = Tensor::new(ch, h, w, values(ch * h * w, 5, 1.0)).expect("shape");
        let macs = net.macs((ch, h, w));
        // A lone GDN runs in place on an owned input: time it without the copy of its input.
        let in_place = matches!(net.layers.as_slice(), [Layer::Gdn { .. }]);
        let run = |x: Tensor| {
            if in_place {
                cpu.layers[0].forward_owned(x, math)
            } else {
                cpu.forward(&x)
            }
        };
        // Best of `best_of` (after one warm-up run) for the summary.
        black_box(run(x.clone()));
        let best = (0..best_of)
            .map(|_| {
                let input = x.clone();
                let t = Instant::now();
                black_box(run(black_box(input)));
                t.elapsed()
            })
            .min()
            .unwrap_or(Duration::ZERO);
        summary.push(format!(
            "{name:48} {:8.2} ms {:7.2} GMAC/s ({:.2} GMAC)",
            best.as_secs_f64() * 1e3,
            macs as f64 / best.as_secs_f64() / 1e9,
            macs as f64 / 1e9
        ));
        let mut group = c.benchmark_group("cpu");
        group.throughput(Throughput::Elements(macs));
        if in_place {
            group.bench_function(name, |b| {
                b.iter_batched(|| x.clone(), &run, BatchSize::LargeInput)
            });
        } else {
            group.bench_function(name, |b| b.iter(|| black_box(cpu.forward(black_box(&x)))));
        }
        group.finish();
    }
    // Packing a net's weights (what a process pays once, at a layer's first run or in
    // `Codec::prepare_compress`): the Winograd transforms dominate.
    for (name, net) in [
        ("pack g_a N128/M192", g_a(128, 192)),
        ("pack g_a N64/M96", g_a(64, 96)),
        ("pack g_s N128/M192", g_s(128, 192)),
    ] {
        if !name.contains(filter.as_str()) {
            continue;
        }
        let best = (0..best_of)
            .map(|_| {
                let cpu = CpuNet::prepare(&net, Math::Fast);
                let t = Instant::now();
                cpu.pack();
                let dt = t.elapsed();
                black_box(cpu);
                dt
            })
            .min()
            .unwrap_or(Duration::ZERO);
        summary.push(format!("{name:48} {:8.2} ms", best.as_secs_f64() * 1e3));
    }
    println!(
        "\nsummary (best of {best_of}, {} rayon threads):",
        rayon::current_num_threads()
    );
    for line in summary {
        println!("  {line}");
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = bench_ops
}
criterion_main!(benches);
