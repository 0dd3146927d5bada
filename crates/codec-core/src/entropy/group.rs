//! One ANS stream: the symbols of a contiguous run of channels, with CompressAI's escape scheme.

use constriction::stream::stack::DefaultAnsCoder;
use constriction::stream::{Decode, Encode};

use super::tables::{nibble_model, Row};
use super::{CdfTables, EntropyError};

/// Most nibbles an escape payload may have: the raw value fits in 32 bits.
pub(crate) const MAX_ESCAPE_NIBBLES: u32 = 8;

/// Where the row of each symbol comes from.
#[derive(Clone, Copy, Debug)]
pub enum RowMap<'a> {
    /// Row `first_row + channel` for every symbol of a channel (EntropyBottleneck tables; a
    /// level's tables start at `first_row`).
    PerChannel { first_row: usize },
    /// One row index per symbol, in symbol order (GaussianConditional scale indexes).
    PerElement(&'a [u32]),
}

/// A run of channels `[c0, c1)` of a `[C, plane]` symbol array.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Span {
    pub(crate) c0: usize,
    pub(crate) c1: usize,
    pub(crate) plane: usize,
}

impl Span {
    fn row_of(&self, rows: RowMap<'_>, channel: usize, index: usize) -> Option<usize> {
        match rows {
            RowMap::PerChannel { first_row } => first_row.checked_add(channel),
            RowMap::PerElement(idx) => idx.get(index).map(|&r| r as usize),
        }
    }
}

fn lookup<'t>(
    tables: &'t CdfTables,
    rows: RowMap<'_>,
    span: &Span,
    channel: usize,
    index: usize,
) -> Result<(usize, &'t Row), EntropyError> {
    let row = span
        .row_of(rows, channel, index)
        .ok_or(EntropyError::RowOutOfRange {
            index,
            row: usize::MAX,
            rows: tables.rows(),
        })?;
    let r = tables.row(row).ok_or(EntropyError::RowOutOfRange {
        index,
        row,
        rows: tables.rows(),
    })?;
    Ok((row, r))
}

/// The escape payload of value `v` (outside `0..max_value`), CompressAI's mapping.
fn escape_raw(v: i64, max_value: u32) -> i64 {
    if v < 0 {
        -2 * v - 1
    } else {
        2 * (v - i64::from(max_value))
    }
}

/// Number of 4-bit nibbles of `raw`, at least 1.
fn nibbles(raw: u32) -> u32 {
    (32 - raw.leading_zeros()).div_ceil(4).max(1)
}

const ENCODE_FAILED: EntropyError =
    EntropyError::Internal("ans encoder rejected a symbol of nonzero probability");

/// Encodes `symbols` (the span's symbols, channel-major) into one ANS stream, in reverse so that
/// the decoder reads forward.
pub(crate) fn encode_group(
    symbols: &[i32],
    span: Span,
    rows: RowMap<'_>,
    tables: &CdfTables,
) -> Result<Vec<u32>, EntropyError> {
    let nibble = nibble_model();
    let mut coder = DefaultAnsCoder::new();
    let base = span.c0 * span.plane;
    for channel in (span.c0..span.c1).rev() {
        for j in (0..span.plane).rev() {
            let index = channel * span.plane + j;
            let s = *symbols
                .get(index - base)
                .ok_or(EntropyError::Internal("symbol index"))?;
            let (row, r) = lookup(tables, rows, &span, channel, index)?;
            let model = r.model.as_view();
            let v = i64::from(s) - i64::from(r.offset);
            let max_value = i64::from(r.max_value);
            if (0..max_value).contains(&v) {
                coder
                    .encode_symbol(v as usize, model)
                    .map_err(|_| ENCODE_FAILED)?;
                continue;
            }
            let raw = u32::try_from(escape_raw(v, r.max_value)).map_err(|_| {
                let off = i64::from(r.offset);
                EntropyError::SymbolOutOfRange {
                    index,
                    symbol: s,
                    row,
                    min: (off - (1 << 31)).max(i64::from(i32::MIN)),
                    max: (off + max_value + (1 << 31) - 1).min(i64::from(i32::MAX)),
                }
            })?;
            let n = nibbles(raw);
            // Decode order: escape bin, n, nibble 0 (least significant), ..., nibble n-1.
            for k in (0..n).rev() {
                coder
                    .encode_symbol(((raw >> (4 * k)) & 15) as usize, nibble)
                    .map_err(|_| ENCODE_FAILED)?;
            }
            coder
                .encode_symbol(n as usize, nibble)
                .map_err(|_| ENCODE_FAILED)?;
            coder
                .encode_symbol(r.max_value as usize, model)
                .map_err(|_| ENCODE_FAILED)?;
        }
    }
    coder
        .into_compressed()
        .map_err(|_| EntropyError::Internal("ans flush"))
}

const DECODE_FAILED: EntropyError = EntropyError::Internal("ans decoder failed on a vec backend");

/// Decodes one ANS stream (`words`, as written by [`encode_group`]) into `out` (the span's
/// symbols), then checks that the stream is used up exactly.
pub(crate) fn decode_group(
    words: Vec<u32>,
    out: &mut [i32],
    span: Span,
    rows: RowMap<'_>,
    tables: &CdfTables,
) -> Result<(), EntropyError> {
    let nibble = nibble_model();
    let mut coder = DefaultAnsCoder::from_compressed(words)
        .map_err(|_| EntropyError::corrupt("a group stream ends with a zero word"))?;
    let base = span.c0 * span.plane;
    for channel in span.c0..span.c1 {
        for j in 0..span.plane {
            let index = channel * span.plane + j;
            let (_, r) = lookup(tables, rows, &span, channel, index)?;
            let bin = coder
                .decode_symbol(r.model.as_view())
                .map_err(|_| DECODE_FAILED)?;
            let v = if bin < r.max_value as usize {
                bin as i64
            } else {
                let n = coder.decode_symbol(nibble).map_err(|_| DECODE_FAILED)? as u32;
                if n == 0 || n > MAX_ESCAPE_NIBBLES {
                    return Err(EntropyError::corrupt(format!(
                        "escape of symbol {index} has {n} nibbles, outside 1..={MAX_ESCAPE_NIBBLES}"
                    )));
                }
                let mut raw = 0u32;
                let mut top = 0u32;
                for k in 0..n {
                    top = coder.decode_symbol(nibble).map_err(|_| DECODE_FAILED)? as u32;
                    raw |= top << (4 * k);
                }
                if n > 1 && top == 0 {
                    return Err(EntropyError::corrupt(format!(
                        "escape of symbol {index} has a zero leading nibble (non-minimal length {n})"
                    )));
                }
                let half = i64::from(raw >> 1);
                if raw & 1 == 1 {
                    -half - 1
                } else {
                    half + i64::from(r.max_value)
                }
            };
            let s = i32::try_from(v + i64::from(r.offset)).map_err(|_| {
                EntropyError::corrupt(format!(
                    "symbol {index} decodes to {}, outside the i32 range",
                    v + i64::from(r.offset)
                ))
            })?;
            *out.get_mut(index - base)
                .ok_or(EntropyError::Internal("output index"))? = s;
        }
    }
    if !coder.is_empty() || !coder.bulk().is_empty() {
        return Err(EntropyError::corrupt(format!(
            "the stream of channels {}..{} has data left after its last symbol",
            span.c0, span.c1
        )));
    }
    Ok(())
}
