//! The symbol-string layout: a group header and the groups' ANS streams, coded in parallel.

use rayon::prelude::*;

use super::group::{decode_group, encode_group, RowMap, Span};
use super::{CdfTables, EntropyError};

/// The encoder aims at this many symbols per group (one ANS stream each).
pub const SYMBOLS_PER_GROUP: usize = 65536;

/// Channels `[c0, c1)` of group `k` of `groups` over `channels` channels.
fn span(k: usize, groups: usize, channels: usize, plane: usize) -> Span {
    let bound = |k: usize| (k as u128 * channels as u128 / groups as u128) as usize;
    Span {
        c0: bound(k),
        c1: bound(k + 1),
        plane,
    }
}

/// Checks that every symbol of a `[channels, plane]` array has a row in `tables`.
fn check_rows(
    rows: RowMap<'_>,
    channels: usize,
    plane: usize,
    tables: &CdfTables,
) -> Result<(), EntropyError> {
    let n = tables.rows();
    match rows {
        RowMap::PerChannel { first_row } => {
            if channels == 0 {
                return Ok(());
            }
            let last = first_row.checked_add(channels - 1);
            if last.is_none_or(|last| last >= n) {
                // The first channel whose row is missing.
                let channel = n.saturating_sub(first_row);
                return Err(EntropyError::RowOutOfRange {
                    index: channel.saturating_mul(plane),
                    row: first_row.saturating_add(channel),
                    rows: n,
                });
            }
            Ok(())
        }
        RowMap::PerElement(idx) => {
            let expected = channels * plane;
            if idx.len() != expected {
                return Err(EntropyError::ShapeMismatch {
                    what: "row indexes (one per symbol)",
                    expected,
                    actual: idx.len(),
                });
            }
            match idx.iter().position(|&r| r as usize >= n) {
                Some(index) => Err(EntropyError::RowOutOfRange {
                    index,
                    row: idx[index] as usize,
                    rows: n,
                }),
                None => Ok(()),
            }
        }
    }
}

/// Encodes `symbols` (`[channels, plane]`, channel-major) into a symbol string (module docs).
///
/// `plane` is `symbols.len() / channels`. The groups are coded in parallel on the current rayon
/// pool; the bytes do not depend on the number of threads.
///
/// # Errors
///
/// [`EntropyError::SymbolCount`] if `symbols.len()` is not a multiple of `channels`,
/// [`EntropyError::ShapeMismatch`] / [`EntropyError::RowOutOfRange`] for a row map that does not
/// fit the symbols or the table, [`EntropyError::SymbolOutOfRange`] for a symbol whose escape
/// payload would exceed 32 bits.
pub fn encode(
    symbols: &[i32],
    channels: usize,
    rows: RowMap<'_>,
    tables: &CdfTables,
) -> Result<Vec<u8>, EntropyError> {
    let plane = match channels {
        0 if symbols.is_empty() => 0,
        c if c > 0 && symbols.len().is_multiple_of(c) => symbols.len() / c,
        _ => {
            return Err(EntropyError::SymbolCount {
                symbols: symbols.len(),
                channels,
            })
        }
    };
    check_rows(rows, channels, plane, tables)?;
    let groups = symbols
        .len()
        .div_ceil(SYMBOLS_PER_GROUP)
        .clamp(1, channels.max(1));
    let streams = (0..groups)
        .into_par_iter()
        .map(|k| {
            let sp = span(k, groups, channels, plane);
            let own = symbols
                .get(sp.c0 * plane..sp.c1 * plane)
                .ok_or(EntropyError::Internal("group symbol range"))?;
            encode_group(own, sp, rows, tables)
        })
        .collect::<Vec<_>>();
    let streams = streams.into_iter().collect::<Result<Vec<_>, _>>()?;

    let words: usize = streams.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(10 * (groups + 1) + 4 * words);
    write_varint(&mut out, groups as u64);
    for s in &streams {
        write_varint(&mut out, 4 * s.len() as u64);
    }
    for s in &streams {
        for w in s {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }
    Ok(out)
}

/// Decodes a symbol string into `channels * plane` symbols (channel-major).
///
/// The caller must bound `channels * plane` (it comes from the container): the output is
/// allocated up front, and ANS streams cannot tell how many symbols they hold.
///
/// # Errors
///
/// [`EntropyError::Corrupt`] for any string that is not exactly a valid encoding for this shape,
/// row map and table (see the module docs for the checks), [`EntropyError::ShapeOverflow`],
/// [`EntropyError::ShapeMismatch`] and [`EntropyError::RowOutOfRange`] as for [`encode`].
pub fn decode(
    bytes: &[u8],
    channels: usize,
    plane: usize,
    rows: RowMap<'_>,
    tables: &CdfTables,
) -> Result<Vec<i32>, EntropyError> {
    let total = channels
        .checked_mul(plane)
        .ok_or(EntropyError::ShapeOverflow { channels, plane })?;
    check_rows(rows, channels, plane, tables)?;

    let mut pos = 0usize;
    let groups = read_varint(bytes, &mut pos, "group count")?;
    let max_groups = channels.max(1);
    let groups = usize::try_from(groups)
        .ok()
        .filter(|g| (1..=max_groups).contains(g))
        .ok_or_else(|| {
            EntropyError::corrupt(format!("group count {groups} is outside 1..={max_groups}"))
        })?;
    if groups > bytes.len() - pos {
        return Err(EntropyError::corrupt(format!(
            "group count {groups} needs more length bytes than the {} left",
            bytes.len() - pos
        )));
    }
    let mut lengths = Vec::with_capacity(groups);
    let mut sum = 0usize;
    for k in 0..groups {
        let len = read_varint(bytes, &mut pos, "group length")?;
        let len = usize::try_from(len)
            .ok()
            .filter(|l| l % 4 == 0)
            .ok_or_else(|| {
                EntropyError::corrupt(format!("group {k} length {len} is not a multiple of 4"))
            })?;
        sum = sum
            .checked_add(len)
            .ok_or_else(|| EntropyError::corrupt("group lengths overflow usize"))?;
        lengths.push(len);
    }
    let rest = bytes.len() - pos;
    if sum != rest {
        return Err(EntropyError::corrupt(format!(
            "group streams claim {sum} bytes but {rest} bytes follow the header"
        )));
    }

    let mut out = vec![0i32; total];
    let mut jobs = Vec::with_capacity(groups);
    let mut data = &bytes[pos..];
    let mut rest_out = out.as_mut_slice();
    for (k, &len) in lengths.iter().enumerate() {
        let sp = span(k, groups, channels, plane);
        let (stream, tail) = data
            .split_at_checked(len)
            .ok_or(EntropyError::Internal("stream split"))?;
        data = tail;
        let (dst, tail) = std::mem::take(&mut rest_out)
            .split_at_mut_checked((sp.c1 - sp.c0) * plane)
            .ok_or(EntropyError::Internal("output split"))?;
        rest_out = tail;
        jobs.push((sp, stream, dst));
    }
    let results = jobs
        .into_par_iter()
        .map(|(sp, stream, dst)| {
            let words = stream
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            decode_group(words, dst, sp, rows, tables)
        })
        .collect::<Vec<_>>();
    results.into_iter().collect::<Result<(), _>>()?;
    Ok(out)
}

/// Appends `v` as an unsigned LEB128 varint (7 bits per byte, least significant first, high bit
/// set on every byte but the last).
fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a minimal unsigned LEB128 varint of at most 64 bits.
fn read_varint(bytes: &[u8], pos: &mut usize, what: &'static str) -> Result<u64, EntropyError> {
    let mut v = 0u64;
    for i in 0..10 {
        let b = *bytes.get(*pos).ok_or_else(|| {
            EntropyError::corrupt(format!("the string ends inside a varint ({what})"))
        })?;
        *pos += 1;
        let bits = u64::from(b & 0x7f);
        if i == 9 && bits > 1 {
            return Err(EntropyError::corrupt(format!(
                "varint ({what}) overflows 64 bits"
            )));
        }
        v |= bits << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                return Err(EntropyError::corrupt(format!(
                    "varint ({what}) is not minimal"
                )));
            }
            return Ok(v);
        }
    }
    Err(EntropyError::corrupt(format!(
        "varint ({what}) is longer than 10 bytes"
    )))
}

#[cfg(test)]
pub(crate) mod testing {
    pub(crate) fn write_varint(out: &mut Vec<u8>, v: u64) {
        super::write_varint(out, v)
    }
    pub(crate) fn read_varint(bytes: &[u8]) -> Result<u64, super::EntropyError> {
        let mut pos = 0;
        let v = super::read_varint(bytes, &mut pos, "test")?;
        if pos == bytes.len() {
            Ok(v)
        } else {
            Err(super::EntropyError::corrupt("trailing bytes"))
        }
    }
}
