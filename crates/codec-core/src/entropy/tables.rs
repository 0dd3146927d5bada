//! Integer CDF tables as stored in the model file, turned into constriction models.

use constriction::stream::model::{ContiguousCategoricalEntropyModel, UniformModel};

use super::EntropyError;

/// CDF precision in bits: every table row ends at `1 << PRECISION`.
pub const PRECISION: usize = 16;

/// The categorical model of one table row (its last bin is the escape bin).
pub(crate) type RowModel = ContiguousCategoricalEntropyModel<u32, Vec<u32>, PRECISION>;

/// The model of one 4-bit escape nibble: 16 bins of 4096 each, exactly 4 bits.
pub(crate) type NibbleModel = UniformModel<u32, PRECISION>;

pub(crate) fn nibble_model() -> NibbleModel {
    NibbleModel::new(16)
}

/// One validated table row.
pub(crate) struct Row {
    pub(crate) model: RowModel,
    pub(crate) offset: i32,
    /// Number of regular bins; bin `max_value` is the escape bin.
    pub(crate) max_value: u32,
}

/// The validated CDF tables of one entropy model (CompressAI's `_quantized_cdf`, `_cdf_length`
/// and `_offset` buffers), one constriction model per row.
///
/// Row `r` codes values `v = symbol - offset(r)` in `0..max_value(r)` directly; anything else
/// goes through the escape bin `max_value(r)` plus a bypass payload (module docs).
pub struct CdfTables {
    rows: Vec<Row>,
}

impl std::fmt::Debug for CdfTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CdfTables")
            .field("rows", &self.rows.len())
            .finish_non_exhaustive()
    }
}

impl CdfTables {
    /// Validates and builds the tables.
    ///
    /// - `cdf`: `rows x row_len` entries, row-major (CompressAI's `_quantized_cdf`, padded rows);
    /// - `cdf_len`: `rows` entries, the used length of each row (CompressAI's `_cdf_length`);
    /// - `offset`: `rows` entries, the symbol of value 0 (CompressAI's `_offset`).
    ///
    /// Each row must have `cdf_len` in `3..=row_len`, `cdf[0] == 0`, strictly increasing entries
    /// and `cdf[cdf_len - 1] == 1 << 16`, so that every bin (including the escape bin
    /// `cdf_len - 2`) has a probability of at least `2^-16`. Entries past `cdf_len` are ignored.
    ///
    /// # Errors
    ///
    /// [`EntropyError::ShapeMismatch`] if the slices do not have `rows * row_len`, `rows` and
    /// `rows` entries, [`EntropyError::InvalidTable`] naming the first invalid row.
    pub fn new(
        cdf: &[i32],
        rows: usize,
        row_len: usize,
        cdf_len: &[i32],
        offset: &[i32],
    ) -> Result<Self, EntropyError> {
        let entries = rows.saturating_mul(row_len);
        if cdf.len() != entries {
            return Err(EntropyError::ShapeMismatch {
                what: "cdf table entries (rows x row_len)",
                expected: entries,
                actual: cdf.len(),
            });
        }
        if cdf_len.len() != rows {
            return Err(EntropyError::ShapeMismatch {
                what: "cdf_len entries (one per row)",
                expected: rows,
                actual: cdf_len.len(),
            });
        }
        if offset.len() != rows {
            return Err(EntropyError::ShapeMismatch {
                what: "offset entries (one per row)",
                expected: rows,
                actual: offset.len(),
            });
        }
        let built = (0..rows)
            .map(|r| {
                let full =
                    cdf.get(r * row_len..(r + 1) * row_len)
                        .ok_or(EntropyError::Internal(
                            "cdf row slice out of bounds after the shape check",
                        ))?;
                build_row(r, full, cdf_len[r], offset[r])
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { rows: built })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    /// The offset of row `row` (the symbol coded as value 0), `None` if out of range.
    #[cfg(test)]
    pub fn offset(&self, row: usize) -> Option<i32> {
        self.rows.get(row).map(|r| r.offset)
    }

    /// The number of regular values of row `row` (`cdf_len - 2`; value `max_value` is the escape
    /// bin), `None` if out of range.
    #[cfg(test)]
    pub fn max_value(&self, row: usize) -> Option<u32> {
        self.rows.get(row).map(|r| r.max_value)
    }

    pub(crate) fn row(&self, row: usize) -> Option<&Row> {
        self.rows.get(row)
    }
}

fn build_row(row: usize, full: &[i32], len: i32, offset: i32) -> Result<Row, EntropyError> {
    let invalid = |reason: String| EntropyError::InvalidTable { row, reason };
    let row_len = full.len();
    let used = usize::try_from(len)
        .ok()
        .filter(|l| (3..=row_len).contains(l))
        .ok_or_else(|| invalid(format!("cdf_len {len} is outside 3..={row_len}")))?;
    let cdf = &full[..used];
    if cdf[0] != 0 {
        return Err(invalid(format!("cdf[0] is {}, expected 0", cdf[0])));
    }
    for (j, w) in cdf.windows(2).enumerate() {
        if w[1] <= w[0] {
            return Err(invalid(format!(
                "bin {j} has non-positive width: cdf[{}] = {} is not above cdf[{j}] = {}",
                j + 1,
                w[1],
                w[0]
            )));
        }
    }
    let last = cdf[used - 1];
    if last != 1 << PRECISION {
        return Err(invalid(format!(
            "last entry cdf[{}] is {last}, expected {}",
            used - 1,
            1u32 << PRECISION
        )));
    }
    // Strictly increasing from 0 to 2^16: every difference is in 1..2^16 and they sum to 2^16.
    let pmf = cdf.windows(2).map(|w| w[1].abs_diff(w[0]));
    let model = RowModel::from_nonzero_fixed_point_probabilities(pmf, false)
        .map_err(|()| invalid("constriction rejected the probabilities".to_owned()))?;
    let max_value =
        u32::try_from(used - 2).map_err(|_| invalid(format!("cdf_len {len} is too large")))?;
    Ok(Row {
        model,
        offset,
        max_value,
    })
}
