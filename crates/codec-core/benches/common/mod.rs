//! What the benchmark harnesses share: deterministic layer data and the timing rule.
//!
//! Each harness uses a subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::time::Instant;

use codec_core::model::graph::{Conv, Layer};

/// Median wall time in milliseconds of `runs` calls after `warmup` calls.
pub fn median_ms<T>(warmup: usize, runs: usize, mut f: impl FnMut() -> T) -> f64 {
    for _ in 0..warmup {
        std::hint::black_box(f());
    }
    median(
        (0..runs.max(1))
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(f());
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

/// The median of `t` (not empty).
pub fn median(mut t: Vec<f64>) -> f64 {
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// Deterministic pseudo-random values in `[-scale, scale)` (xorshift).
pub fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// A convolution with weights at the fan-in scale of a trained layer, rounded to f16 values as
/// the shipped models store them (so the GPU stages them as f16, as it does the models').
pub fn conv(cin: usize, cout: usize, k: usize, stride: usize, transposed: bool) -> Layer {
    let scale = 1.0 / ((cin * k * k) as f32).sqrt();
    Layer::Conv(Conv {
        cin,
        cout,
        k,
        stride,
        transposed,
        weight: values(cin * cout * k * k, (cin * 31 + cout) as u64, scale)
            .into_iter()
            .map(|v| half::f16::from_f32(v).to_f32())
            .collect(),
        bias: Some(values(cout, 3, 0.1)),
    })
}

/// GDN / IGDN with a dominant diagonal, as trained ones have.
pub fn gdn(c: usize, inverse: bool) -> Layer {
    let mut gamma: Vec<f32> = values(c * c, 11, 0.01).iter().map(|v| v.abs()).collect();
    for i in 0..c {
        gamma[i * c + i] += 0.1;
    }
    Layer::Gdn {
        c,
        inverse,
        beta: vec![1.0; c],
        gamma,
    }
}
