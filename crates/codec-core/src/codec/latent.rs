//! The latent arithmetic around the entropy coder: gains, quantization around a center, and the
//! scale indexes of the Gaussian tables.

use crate::tensor::{round_ties_even, Tensor};

/// CompressAI's lower bound on Gaussian scales (`GaussianConditional(scale_bound=0.11)`).
pub const SCALE_BOUND: f32 = 0.11;

/// Multiplies channel `c` by `g[c]` (the gain vectors).
pub(super) fn scale_channels(t: &Tensor, g: &[f32]) -> Tensor {
    let mut out = t.clone();
    for (c, &gc) in g.iter().enumerate().take(t.c) {
        out.channel_mut(c).iter_mut().for_each(|v| *v *= gc);
    }
    out
}

/// `round_half_even(t - center(c, i))` as integers (torch.round semantics).
pub(super) fn quantize(t: &Tensor, center: impl Fn(usize, usize) -> f32) -> Vec<i32> {
    let mut out = Vec::with_capacity(t.data.len());
    for c in 0..t.c {
        out.extend(
            t.channel(c)
                .iter()
                .enumerate()
                .map(|(i, &v)| round_ties_even(v - center(c, i)) as i32),
        );
    }
    out
}

/// `symbol + center(c, i)`: the decoder's latent.
pub(super) fn dequantize(
    sym: &[i32],
    c: usize,
    h: usize,
    w: usize,
    center: impl Fn(usize, usize) -> f32,
) -> Tensor {
    let plane = h * w;
    let data = sym
        .iter()
        .enumerate()
        .map(|(j, &s)| s as f32 + center(j / plane.max(1), j % plane.max(1)))
        .collect();
    Tensor::from_vec(c, h, w, data)
}

/// CompressAI's `build_indexes`: for `s' = max(s, 0.11)`, the smallest `k` with `s' <= table[k]`,
/// else the last index. Comparisons only, so exact wherever the scales are.
pub fn scale_indexes(scales: &[f32], table: &[f32]) -> Vec<u32> {
    let last = table.len().saturating_sub(1);
    let head = &table[..last];
    if head.windows(2).all(|w| w[0] < w[1]) {
        // Sorted (every trained table is): the count of entries >= s is `last` minus the count of
        // entries < s, a binary search; the same index as the scan below, bit for bit.
        scales
            .iter()
            .map(|&s| {
                let s = s.max(SCALE_BOUND);
                head.partition_point(|&t| t < s) as u32
            })
            .collect()
    } else {
        scales
            .iter()
            .map(|&s| {
                let s = s.max(SCALE_BOUND);
                (last - head.iter().filter(|&&t| s <= t).count()) as u32
            })
            .collect()
    }
}

#[cfg(test)]
mod scale_index_tests {
    use super::*;
    use crate::test_rng::Rng;

    /// The linear scan the binary search replaced: the reference.
    fn scan(scales: &[f32], table: &[f32]) -> Vec<u32> {
        let last = table.len().saturating_sub(1);
        scales
            .iter()
            .map(|&s| {
                let s = s.max(SCALE_BOUND);
                (last - table[..last].iter().filter(|&&t| s <= t).count()) as u32
            })
            .collect()
    }

    /// CompressAI's 64-entry table: exp(linspace(ln 0.11, ln 256, 64)).
    fn table() -> Vec<f32> {
        let (lo, hi) = (0.11f64.ln(), 256f64.ln());
        (0..64)
            .map(|i| (lo + (hi - lo) * i as f64 / 63.0).exp() as f32)
            .collect()
    }

    #[test]
    fn binary_search_gives_the_scan_s_indexes() {
        let t = table();
        let mut rng = Rng(7);
        let mut scales: Vec<f32> = (0..20_000)
            .map(|_| (rng.unit() as f32 * 14.0 - 5.0).exp())
            .collect();
        // Every table entry, its neighbours in f32, the bounds, and NaN / infinities.
        for &v in &t {
            scales.extend([
                v,
                f32::from_bits(v.to_bits() - 1),
                f32::from_bits(v.to_bits() + 1),
            ]);
        }
        scales.extend([0.0, -1.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30]);
        assert_eq!(scale_indexes(&scales, &t), scan(&scales, &t));
        // An unsorted table (a hostile model file) takes the scan.
        let mut bad = t.clone();
        bad.swap(3, 40);
        assert_eq!(scale_indexes(&scales, &bad), scan(&scales, &bad));
    }
}
