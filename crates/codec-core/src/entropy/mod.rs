//! The only user of `constriction`: integer CDF tables from the model file and symbol strings.
//!
//! # Tables
//!
//! [`CdfTables`] holds CompressAI's exported tables (`_quantized_cdf` rows `[R, maxlen]`,
//! `_cdf_length [R]`, `_offset [R]`, precision 16), validated row by row and turned into one
//! `ContiguousCategoricalEntropyModel<u32, Vec<u32>, 16>` per row with
//! `from_nonzero_fixed_point_probabilities` (`pmf[j] = cdf[j+1] - cdf[j]`). Tables are never
//! rebuilt from floats, so both sides code with bit-identical models.
//!
//! # Symbols
//!
//! A symbol is a signed integer `s` (`round(y - median)` or `round(y - mean)`) coded with row
//! `r` of the table. Let `v = s - offset[r]` and `max_value = cdf_len[r] - 2`:
//!
//! - `0 <= v < max_value`: `v` is coded with row `r`'s model;
//! - otherwise the escape bin `max_value` is coded with row `r`'s model, followed by a bypass
//!   payload (CompressAI's scheme): `raw = -2v - 1` if `v < 0`, `raw = 2(v - max_value)` if
//!   `v >= max_value`; `n` = number of 4-bit nibbles of `raw`, at least 1 (so `n` is in `1..=8`:
//!   `raw` must fit in 32 bits). Then `n` itself as one 4-bit value (CompressAI sends a run
//!   `15, 15, ..., rem < 15`; since `n <= 8` the run is always the single value `n`), then the `n`
//!   nibbles of `raw`, least significant first. Every 4-bit value uses a uniform 16-bin model of
//!   4096 per bin at precision 16, i.e. exactly 4 bits.
//!
//! The decoder inverts this (`raw` odd: `v = -(raw >> 1) - 1`, even: `v = (raw >> 1) + max_value`;
//! `s = v + offset[r]`). It rejects as [`EntropyError::Corrupt`] a nibble count outside `1..=8`
//! (including any run value 15), a non-minimal payload (`n > 1` with a zero last nibble) and a
//! symbol outside the `i32` range. The encoder rejects symbols whose `raw` would not fit in 32
//! bits ([`EntropyError::SymbolOutOfRange`]; the codable range of row `r` is
//! `offset - 2^31 ..= offset + max_value + 2^31 - 1`, clipped to `i32`).
//!
//! # Symbol strings
//!
//! The bytes of one string (`y_string`, `z_string`) code `C x plane` symbols (`plane = H * W`)
//! given in channel-major order `[C, H, W]`. Each symbol's row comes from a [`RowMap`]:
//! `PerChannel { first_row }` (row `first_row + c` for channel `c`: EntropyBottleneck tables,
//! a level's rows starting at `first_row`) or `PerElement(indexes)` (one row per symbol:
//! GaussianConditional scale indexes). Neither the shape nor the row map is stored.
//!
//! The channels are split into `S` contiguous groups, group `k` being channels
//! `[floor(k*C/S), floor((k+1)*C/S))`, each coded as its own ANS stream
//! (`constriction::stream::stack::DefaultAnsCoder`: 64-bit state, 32-bit words), in parallel.
//! The encoder picks `S = clamp(ceil(C*plane / 65536), 1, max(C, 1))`; the decoder accepts any
//! `S` in `1..=max(C, 1)` (`C = 0` is coded as one empty group). The layout is
//!
//! ```text
//! string = varint(S) varint(L_0) ... varint(L_{S-1}) stream_0 ... stream_{S-1}
//! ```
//!
//! - `varint`: unsigned LEB128 (7 bits per byte, least significant group first, bit 7 set on
//!   every byte but the last), minimal length, at most 64 bits;
//! - `L_k`: byte length of `stream_k`, a multiple of 4; the `L_k` sum to exactly the number of
//!   bytes after the header (nothing may follow the last stream);
//! - `stream_k`: the words of constriction's `AnsCoder::into_compressed()` for group `k`, each
//!   `u32` little-endian, in the order returned (the decoder starts from the last word, which is
//!   never zero). The encoder codes the group's symbols in reverse so that decoding yields them in
//!   channel-major order; within a symbol the decode order is: bin, then (escape only) `n`, then
//!   nibbles 0..n.
//! - A stream may be empty (`L_k = 0`): an ANS coder starts in state 0 and stays there while it
//!   codes bins whose cumulative start is 0, so a group whose every symbol is bin 0 of its row
//!   (and every group without symbols) compresses to nothing. The decoder treats it like any
//!   other stream.
//!
//! After decoding its symbols every group's coder must be exactly used up (state back to the
//! initial 0, no words left); otherwise, or if its last word is zero, the string is
//! [`EntropyError::Corrupt`]. ANS decoding itself never fails, so a damaged stream that still
//! passes these checks decodes to wrong symbols: the container should carry shapes and, if wanted,
//! a checksum. Decoding never panics on any bytes.

mod error;
mod group;
mod rate;
mod string;
mod tables;

#[cfg(test)]
mod tests;

pub use error::EntropyError;
pub use group::RowMap;
pub use rate::RateTables;
pub use string::{decode, encode};
pub use tables::CdfTables;
