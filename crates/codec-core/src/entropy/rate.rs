//! The rate of a symbol under the coder's own integer tables, with a gradient: what an encoder that
//! searches its latents (`codec::effort`) minimises, so it optimises the bits the file will hold
//! and not a float density that only approximates them.
//!
//! For an integer symbol `s` of row `r` the cost is the information content of what
//! [`super::encode`] writes (module docs of `entropy`): `-log2(pmf[v] / 2^16)` for `v = s - offset`
//! in `0..max_value`; otherwise the escape bin's, plus 4 bits for the nibble count and 4 per
//! nibble. Between integers the probability is interpolated linearly, `p(u) = (1 - t) p(floor u) +
//! t p(floor u + 1)`, so `-log2 p(u)` is continuous and differentiable almost everywhere and equals
//! the integer cost on the integers.

use super::tables::PRECISION;
use super::EntropyError;

/// One row: the probability of every regular value and of the escape bin.
#[derive(Clone, Debug)]
struct RateRow {
    offset: i32,
    /// `pmf[v] / 2^16` for `v` in `0..=max_value` (the last is the escape bin).
    p: Vec<f64>,
}

/// Per-row symbol probabilities of a [`super::CdfTables`]' rows (the same validated integers).
#[derive(Clone, Debug)]
pub struct RateTables {
    rows: Vec<RateRow>,
}

impl RateTables {
    /// Reads the rows as [`super::CdfTables::new`] does (same arguments), validating them the same way.
    ///
    /// # Errors
    /// As [`super::CdfTables::new`].
    pub fn new(
        cdf: &[i32],
        rows: usize,
        row_len: usize,
        cdf_len: &[i32],
        offset: &[i32],
    ) -> Result<Self, EntropyError> {
        // The coder's validation first: a table it refuses has no rate either.
        super::CdfTables::new(cdf, rows, row_len, cdf_len, offset)?;
        let scale = 1.0 / (1u64 << PRECISION) as f64;
        let rows = (0..rows)
            .map(|r| {
                let used = cdf_len[r] as usize;
                let row = &cdf[r * row_len..r * row_len + used];
                RateRow {
                    offset: offset[r],
                    p: row
                        .windows(2)
                        .map(|w| (w[1] - w[0]) as f64 * scale)
                        .collect(),
                }
            })
            .collect();
        Ok(Self { rows })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    /// The probability with which symbol `s` of row `row` is written (escapes included).
    fn prob(&self, row: &RateRow, s: i64) -> f64 {
        let max_value = row.p.len() as i64 - 1;
        let v = s - row.offset as i64;
        if (0..max_value).contains(&v) {
            return row.p[v as usize];
        }
        let raw = if v < 0 {
            -2 * v - 1
        } else {
            2 * (v - max_value)
        };
        let nibbles = ((64 - (raw as u64).leading_zeros()).div_ceil(4)).max(1) as i32;
        row.p[max_value as usize] * 2f64.powi(-4 * (nibbles + 1))
    }

    /// Bits of the integer symbol `s` in row `row`.
    ///
    /// # Panics
    /// If `row` is out of range.
    pub fn bits(&self, row: usize, s: i32) -> f64 {
        -self.prob(&self.rows[row], s as i64).log2()
    }

    /// Bits at the continuous value `u` of row `row` (interpolated, see the module docs) and their
    /// derivative with respect to `u`.
    ///
    /// # Panics
    /// If `row` is out of range.
    pub fn bits_and_slope(&self, row: usize, u: f32) -> (f64, f64) {
        let (p, dp) = self.prob_and_slope(row, u);
        (-p.log2(), -dp / (p * std::f64::consts::LN_2))
    }

    /// The interpolated probability at the continuous value `u` of row `row` and its derivative
    /// with respect to `u` (for a rate between rows: `codec::effort`'s hyperprior search).
    ///
    /// # Panics
    /// If `row` is out of range.
    pub fn prob_and_slope(&self, row: usize, u: f32) -> (f64, f64) {
        let r = &self.rows[row];
        let u = (u as f64).clamp(i32::MIN as f64 / 2.0, i32::MAX as f64 / 2.0);
        let f = u.floor();
        let t = u - f;
        let (p0, p1) = (self.prob(r, f as i64), self.prob(r, f as i64 + 1));
        ((1.0 - t) * p0 + t * p1, p1 - p0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row, offset -2: values -2..=1 regular with pmf 1/2, 1/4, 1/8, 1/16, escape 1/16.
    fn table() -> RateTables {
        let cdf = [0, 32768, 49152, 57344, 61440, 65536];
        RateTables::new(&cdf, 1, 6, &[6], &[-2]).expect("valid")
    }

    #[test]
    fn integer_bits_are_the_coder_s() {
        let t = table();
        assert_eq!(t.bits(0, -2), 1.0);
        assert_eq!(t.bits(0, 1), 4.0);
        // 2 is v = 4 = max_value: raw 0, one nibble: escape 4 bits + count 4 + nibble 4.
        assert_eq!(t.bits(0, 2), 12.0);
        // -3 is v = -1: raw 1, one nibble; 40 is v = 42: raw 76, two nibbles.
        assert_eq!(t.bits(0, -3), 12.0);
        assert_eq!(t.bits(0, 40), 16.0);
        let (b, _) = t.bits_and_slope(0, -1.0);
        assert_eq!(b, 2.0);
    }

    #[test]
    fn the_slope_matches_finite_differences() {
        let t = table();
        for u in [-2.7f32, -1.5, -0.25, 0.6, 1.3, 7.9] {
            let (_, slope) = t.bits_and_slope(0, u);
            let h = 1e-3f32;
            let fd =
                (t.bits_and_slope(0, u + h).0 - t.bits_and_slope(0, u - h).0) / (2.0 * h as f64);
            assert!(
                (fd - slope).abs() < 1e-3 * slope.abs().max(1.0),
                "{u}: {fd} vs {slope}"
            );
        }
    }

    #[test]
    fn invalid_tables_are_refused() {
        assert!(RateTables::new(&[0, 10, 5, 65536], 1, 4, &[4], &[0]).is_err());
    }
}
