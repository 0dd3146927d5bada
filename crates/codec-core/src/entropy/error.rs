//! The one error type of the entropy module.

use std::borrow::Cow;

/// Everything that can go wrong while building tables or coding symbol strings.
///
/// Decoding never panics: any byte string either decodes or gives one of these errors
/// (most often [`EntropyError::Corrupt`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntropyError {
    /// A length that must match another one does not (table tensors, row-index maps).
    #[error("{what}: expected {expected}, got {actual}")]
    ShapeMismatch {
        what: &'static str,
        expected: usize,
        actual: usize,
    },

    /// One row of a CDF table breaks the table contract (docs/tfci-format.md, the CDF tables).
    #[error("cdf table row {row} is invalid: {reason}")]
    InvalidTable { row: usize, reason: String },

    /// `encode` got a symbol count that is not `channels * plane` for any `plane`.
    #[error("symbol count {symbols} is not a multiple of the channel count {channels}")]
    SymbolCount { symbols: usize, channels: usize },

    /// `channels * plane` does not fit in `usize`.
    #[error("shape of {channels} channels x {plane} symbols per channel overflows usize")]
    ShapeOverflow { channels: usize, plane: usize },

    /// A row map points outside the table.
    #[error("row {row} for symbol {index} is out of range 0..{rows}")]
    RowOutOfRange {
        index: usize,
        row: usize,
        rows: usize,
    },

    /// A symbol so far from its row's support that its escape payload would need more than
    /// 32 bits.
    #[error(
        "symbol {symbol} at index {index} is outside the codable range {min}..={max} of row {row}"
    )]
    SymbolOutOfRange {
        index: usize,
        symbol: i32,
        row: usize,
        min: i64,
        max: i64,
    },

    /// The byte string is not a valid symbol string for the given shape and tables.
    #[error("corrupt symbol string: {0}")]
    Corrupt(Cow<'static, str>),

    /// A broken internal invariant (a bug, never caused by input data).
    #[error("internal entropy coder error: {0}")]
    Internal(&'static str),
}

impl EntropyError {
    pub(crate) fn corrupt(msg: impl Into<Cow<'static, str>>) -> Self {
        Self::Corrupt(msg.into())
    }
}
