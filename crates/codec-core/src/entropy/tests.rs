//! Tests of the entropy module: tables, escapes, string layout, hostile input, determinism, rate.

use crate::test_rng::Rng;
use constriction::stream::model::EncoderModel;
use constriction::stream::stack::DefaultAnsCoder;
use constriction::stream::Encode;

use super::string::testing::{read_varint, write_varint};
use super::tables::{nibble_model, RowModel};
use super::*;

/// Raw table tensors, as the model file stores them.
struct RawTables {
    cdf: Vec<i32>,
    rows: usize,
    row_len: usize,
    cdf_len: Vec<i32>,
    offset: Vec<i32>,
}

impl RawTables {
    fn build(&self) -> Result<CdfTables, EntropyError> {
        CdfTables::new(
            &self.cdf,
            self.rows,
            self.row_len,
            &self.cdf_len,
            &self.offset,
        )
    }
    fn row(&self, r: usize) -> &[i32] {
        &self.cdf[r * self.row_len..(r + 1) * self.row_len]
    }
}

/// Test-only: a valid CDF (`bins + 1` entries) from random positive frequencies summing to 2^16,
/// peaked around a random centre like a real latent distribution, with a small escape bin.
fn random_cdf(rng: &mut Rng, bins: usize) -> Vec<i32> {
    let centre = rng.below_u64(bins as u64 - 1) as f64;
    let spread = 0.5 + rng.unit() * bins as f64 / 4.0;
    let mut w: Vec<f64> = (0..bins - 1)
        .map(|j| (-(j as f64 - centre).abs() / spread).exp() * (0.5 + rng.unit()))
        .collect();
    w.push(1e-4 * (0.5 + rng.unit())); // escape bin
    let total: f64 = w.iter().sum();
    let spare = (1u32 << 16) - bins as u32;
    let mut freq: Vec<u32> = w
        .iter()
        .map(|x| 1 + (f64::from(spare) * x / total).floor() as u32)
        .collect();
    let sum: u32 = freq.iter().sum();
    let biggest = (0..bins)
        .max_by_key(|&j| freq[j])
        .expect("at least one bin");
    freq[biggest] += (1 << 16) - sum;
    let mut cdf = vec![0i32];
    for f in freq {
        cdf.push(cdf[cdf.len() - 1] + f as i32);
    }
    assert_eq!(cdf[bins], 1 << 16);
    cdf
}

/// Random tables: `rows` rows of `row_len` entries, used lengths in `3..=row_len`.
fn random_tables(rng: &mut Rng, rows: usize, row_len: usize) -> RawTables {
    let mut cdf = vec![0i32; rows * row_len];
    let mut cdf_len = Vec::new();
    let mut offset = Vec::new();
    for r in 0..rows {
        let len = 3 + rng.below_u64((row_len - 2) as u64) as usize;
        let row = random_cdf(rng, len - 1);
        cdf[r * row_len..r * row_len + len].copy_from_slice(&row);
        // Padding past cdf_len is garbage in the model file; it must be ignored.
        for x in &mut cdf[r * row_len + len..(r + 1) * row_len] {
            *x = rng.below_u64(1000) as i32 - 500;
        }
        cdf_len.push(len as i32);
        offset.push(-((len as i32 - 2) / 2) + rng.below_u64(5) as i32 - 2);
    }
    RawTables {
        cdf,
        rows,
        row_len,
        cdf_len,
        offset,
    }
}

/// A random symbol for row `r`: mostly in range, sometimes an escape (near or far).
fn random_symbol(rng: &mut Rng, t: &CdfTables, r: usize, escape_rate: f64) -> i32 {
    let off = t.offset(r).expect("row") as i64;
    let max = i64::from(t.max_value(r).expect("row"));
    let v = if rng.unit() < escape_rate {
        match rng.below_u64(8) {
            0 => -1,
            1 => max,
            2 => -1 - rng.below_u64(100) as i64,
            3 => max + rng.below_u64(100) as i64,
            4 => 1_000_000 - off,
            5 => -1_000_000 - off,
            6 => i64::from(i32::MIN / 2) - off,
            _ => i64::from(i32::MAX / 2) - off,
        }
    } else {
        rng.below_u64(max as u64) as i64
    };
    (v + off) as i32
}

fn per_channel_symbols(
    rng: &mut Rng,
    t: &CdfTables,
    first_row: usize,
    channels: usize,
    plane: usize,
    escape_rate: f64,
) -> Vec<i32> {
    (0..channels * plane)
        .map(|i| random_symbol(rng, t, first_row + i / plane.max(1), escape_rate))
        .collect()
}

fn roundtrip(
    symbols: &[i32],
    channels: usize,
    plane: usize,
    rows: RowMap<'_>,
    t: &CdfTables,
) -> Vec<u8> {
    let bytes = encode(symbols, channels, rows, t).expect("encode");
    let back = decode(&bytes, channels, plane, rows, t).expect("decode");
    assert_eq!(back, symbols, "round trip of {channels}x{plane}");
    bytes
}

/// Parses the header: (S, lengths, header size).
fn header(bytes: &[u8]) -> (usize, Vec<usize>, usize) {
    let mut pos = 0;
    let mut next = || {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = bytes[pos];
            pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                return v as usize;
            }
        }
    };
    let s = next();
    let lens = (0..s).map(|_| next()).collect();
    (s, lens, pos)
}

fn is_corrupt(r: Result<Vec<i32>, EntropyError>) -> bool {
    matches!(r, Err(EntropyError::Corrupt(_)))
}

#[test]
fn round_trip_per_channel() {
    let mut rng = Rng(1);
    let raw = random_tables(&mut rng, 24, 40);
    let t = raw.build().expect("tables");
    for (first_row, channels, plane) in [(0, 24, 300), (8, 16, 77), (23, 1, 1000), (5, 3, 1)] {
        let rows = RowMap::PerChannel { first_row };
        let s = per_channel_symbols(&mut rng, &t, first_row, channels, plane, 0.02);
        roundtrip(&s, channels, plane, rows, &t);
    }
}

#[test]
fn round_trip_per_element() {
    let mut rng = Rng(2);
    let raw = random_tables(&mut rng, 64, 120);
    let t = raw.build().expect("tables");
    for (channels, plane) in [(16, 500), (1, 1), (7, 33)] {
        let idx: Vec<u32> = (0..channels * plane)
            .map(|_| rng.below_u64(64) as u32)
            .collect();
        let s: Vec<i32> = idx
            .iter()
            .map(|&r| random_symbol(&mut rng, &t, r as usize, 0.02))
            .collect();
        roundtrip(&s, channels, plane, RowMap::PerElement(&idx), &t);
    }
}

#[test]
fn far_escapes_both_sides() {
    let mut rng = Rng(3);
    let raw = random_tables(&mut rng, 4, 20);
    let t = raw.build().expect("tables");
    let mut s = Vec::new();
    for r in 0..4 {
        let off = i64::from(t.offset(r).expect("row"));
        let max = i64::from(t.max_value(r).expect("row"));
        let vs = [
            -1,
            max,
            max - 1,
            0,
            -(1 << 31),          // smallest codable v: raw = 2^32 - 1
            max + (1 << 31) - 1, // largest codable v: raw = 2^32 - 2
            1_000_000 - off,
            -1_000_000 - off,
            i64::from(i32::MIN / 2) - off,
            i64::from(i32::MAX / 2) - off,
        ];
        let mut row: Vec<i32> = vs
            .iter()
            .filter_map(|v| i32::try_from(v + off).ok())
            .collect();
        row.resize(10, i32::MIN / 2);
        s.extend(row);
    }
    roundtrip(&s, 4, 10, RowMap::PerChannel { first_row: 0 }, &t);
    // i32 extremes where the row makes them codable.
    let raw = RawTables {
        cdf: vec![0, 100, 65536],
        rows: 1,
        row_len: 3,
        cdf_len: vec![3],
        offset: vec![0],
    };
    let t = raw.build().expect("tables");
    roundtrip(
        &[i32::MIN, i32::MAX, 0, 1, -1],
        1,
        5,
        RowMap::PerChannel { first_row: 0 },
        &t,
    );
}

#[test]
fn symbols_beyond_32_bit_payload_are_rejected() {
    // offset 1: v = i32::MIN - 1 needs raw = 2^32 + 1.
    let raw = RawTables {
        cdf: vec![0, 100, 65536],
        rows: 1,
        row_len: 3,
        cdf_len: vec![3],
        offset: vec![1],
    };
    let t = raw.build().expect("tables");
    let e =
        encode(&[0, i32::MIN], 1, RowMap::PerChannel { first_row: 0 }, &t).expect_err("must fail");
    assert!(
        matches!(
            e,
            EntropyError::SymbolOutOfRange {
                index: 1,
                symbol: i32::MIN,
                row: 0,
                ..
            }
        ),
        "{e}"
    );
    // offset -2, max_value 1: v = i32::MAX + 2 = 2^31 + 1 needs raw = 2 * 2^31 = 2^32.
    let raw = RawTables {
        cdf: vec![0, 100, 65536],
        rows: 1,
        row_len: 3,
        cdf_len: vec![3],
        offset: vec![-2],
    };
    let t = raw.build().expect("tables");
    let e = encode(&[i32::MAX], 1, RowMap::PerChannel { first_row: 0 }, &t).expect_err("must fail");
    assert!(matches!(e, EntropyError::SymbolOutOfRange { .. }), "{e}");
    assert!(e.to_string().contains("outside the codable range"), "{e}");
}

#[test]
fn empty_and_single_channel_planes() {
    let mut rng = Rng(4);
    let raw = random_tables(&mut rng, 8, 16);
    let t = raw.build().expect("tables");
    let rows = RowMap::PerChannel { first_row: 0 };
    // Empty planes: one group, an empty stream.
    let b = roundtrip(&[], 8, 0, rows, &t);
    assert_eq!(b, [1, 0]);
    // No channels at all: also one empty group.
    let b = roundtrip(&[], 0, 0, rows, &t);
    assert_eq!(b, [1, 0]);
    assert_eq!(
        decode(&[1, 0], 0, 12345, rows, &t).expect("zero channels"),
        Vec::<i32>::new()
    );
    assert!(is_corrupt(decode(&[0], 0, 0, rows, &t)));
    assert!(is_corrupt(decode(&[2, 0, 0], 0, 0, rows, &t)));
    // Empty per-element maps.
    roundtrip(&[], 3, 0, RowMap::PerElement(&[]), &t);
    // Single channel, single symbol.
    for first_row in 0..8 {
        let s = per_channel_symbols(&mut rng, &t, first_row, 1, 1, 0.3);
        roundtrip(&s, 1, 1, RowMap::PerChannel { first_row }, &t);
        let s = per_channel_symbols(&mut rng, &t, first_row, 1, 5000, 0.01);
        roundtrip(&s, 1, 5000, RowMap::PerChannel { first_row }, &t);
    }
}

#[test]
fn all_bin_zero_groups_are_empty_streams() {
    let mut rng = Rng(5);
    let raw = random_tables(&mut rng, 4, 16);
    let t = raw.build().expect("tables");
    // Value 0 of every row: bin 0, cumulative start 0 -> the coder never leaves state 0.
    let s: Vec<i32> = (0..4 * 70_000)
        .map(|i| t.offset(i / 70_000).expect("row"))
        .collect();
    let b = roundtrip(&s, 4, 70_000, RowMap::PerChannel { first_row: 0 }, &t);
    assert_eq!(b, [4, 0, 0, 0, 0]);
}

#[test]
fn group_count_and_layout() {
    let mut rng = Rng(6);
    let raw = random_tables(&mut rng, 64, 30);
    let t = raw.build().expect("tables");
    for (channels, plane, groups) in [
        (64, 4096, 4),
        (64, 4097, 5),
        (3, 100_000, 3),
        (64, 1, 1),
        (10, 6554, 2),
        (64, 65536, 64),
    ] {
        let rows = RowMap::PerChannel { first_row: 0 };
        let s = per_channel_symbols(&mut rng, &t, 0, channels, plane, 0.01);
        let b = roundtrip(&s, channels, plane, rows, &t);
        let (n, lens, head) = header(&b);
        assert_eq!(n, groups, "groups for {channels}x{plane}");
        assert!(lens.iter().all(|l| l % 4 == 0));
        assert_eq!(head + lens.iter().sum::<usize>(), b.len());
        // Each stream is exactly constriction's output for its channels.
        let mut at = head;
        for (k, &len) in lens.iter().enumerate() {
            let (c0, c1) = (k * channels / groups, (k + 1) * channels / groups);
            let sub = encode(
                &s[c0 * plane..c1 * plane],
                c1 - c0,
                RowMap::PerChannel { first_row: c0 },
                &t,
            )
            .expect("encode");
            let (one, sl, sh) = header(&sub);
            if one == 1 {
                assert_eq!(sl[0], len);
                assert_eq!(&sub[sh..], &b[at..at + len], "stream {k}");
            }
            at += len;
        }
    }
}

#[test]
fn decoder_accepts_other_group_counts() {
    // The decoder takes S from the string; any S in 1..=C works (e.g. a single group).
    let mut rng = Rng(7);
    let raw = random_tables(&mut rng, 6, 30);
    let t = raw.build().expect("tables");
    let rows = RowMap::PerChannel { first_row: 0 };
    let s = per_channel_symbols(&mut rng, &t, 0, 6, 50_000, 0.01);
    let b = encode(&s, 6, rows, &t).expect("encode");
    assert_eq!(header(&b).0, 5);
    // Rebuild the string with S = 1 from a whole-array stream.
    let words = super::group::encode_group(
        &s,
        super::group::Span {
            c0: 0,
            c1: 6,
            plane: 50_000,
        },
        rows,
        &t,
    )
    .expect("group");
    let mut one = Vec::new();
    write_varint(&mut one, 1);
    write_varint(&mut one, 4 * words.len() as u64);
    for w in words {
        one.extend_from_slice(&w.to_le_bytes());
    }
    assert_eq!(decode(&one, 6, 50_000, rows, &t).expect("S = 1"), s);
    // S > C is corrupt.
    let mut bad = Vec::new();
    write_varint(&mut bad, 7);
    bad.extend_from_slice(&[0; 7]);
    assert!(is_corrupt(decode(&bad, 6, 50_000, rows, &t)));
}

#[test]
fn golden_small_string() {
    // Pins the byte layout: a change here breaks every existing .tfci file.
    let raw = RawTables {
        cdf: vec![0, 1000, 40000, 65000, 65536, 0, 30000, 65535, 65536, 0],
        rows: 2,
        row_len: 5,
        cdf_len: vec![5, 4],
        offset: vec![-1, 0],
    };
    let t = raw.build().expect("tables");
    assert_eq!((t.max_value(0), t.max_value(1)), (Some(3), Some(2)));
    let s = [-1, 0, 1, 2, -2, 0, 1, 2, 300, -1];
    let b = roundtrip(&s, 2, 5, RowMap::PerChannel { first_row: 0 }, &t);
    assert_eq!(b, GOLDEN, "{b:?}");
}

/// Cross-checked with an independent Python model of the escape scheme, constriction's ANS
/// (u64 state, u32 words, precision 16) and the header.
const GOLDEN: [u8; 22] = [
    1, 20, 255, 63, 84, 242, 9, 16, 99, 5, 161, 141, 222, 216, 52, 2, 231, 25, 1, 0, 0, 0,
];

#[test]
fn every_truncation_is_an_error() {
    let mut rng = Rng(8);
    let raw = random_tables(&mut rng, 12, 30);
    let t = raw.build().expect("tables");
    let rows = RowMap::PerChannel { first_row: 0 };
    let (channels, plane) = (12, 12_000);
    let s = per_channel_symbols(&mut rng, &t, 0, channels, plane, 0.01);
    let b = encode(&s, channels, rows, &t).expect("encode");
    assert!(header(&b).0 > 1);
    for k in 0..b.len() {
        let r = decode(&b[..k], channels, plane, rows, &t);
        assert!(
            is_corrupt(r),
            "truncation to {k} of {} bytes decoded",
            b.len()
        );
    }
    // Trailing garbage is an error too.
    let mut longer = b.clone();
    longer.extend_from_slice(&[1, 2, 3, 4]);
    assert!(is_corrupt(decode(&longer, channels, plane, rows, &t)));
}

#[test]
fn leftover_data_is_corrupt() {
    let mut rng = Rng(9);
    let raw = random_tables(&mut rng, 4, 30);
    let t = raw.build().expect("tables");
    let rows = RowMap::PerChannel { first_row: 0 };
    let s = per_channel_symbols(&mut rng, &t, 0, 1, 5000, 0.01);
    let b = encode(&s, 1, rows, &t).expect("encode");
    let r = decode(&b, 1, 4000, rows, &t);
    assert!(is_corrupt(r.clone()), "{r:?}");
    assert!(format!("{:?}", r).contains("left after"));
}

#[test]
fn zero_last_word_is_corrupt() {
    let t = RawTables {
        cdf: vec![0, 100, 65536],
        rows: 1,
        row_len: 3,
        cdf_len: vec![3],
        offset: vec![0],
    }
    .build()
    .expect("tables");
    let rows = RowMap::PerChannel { first_row: 0 };
    let r = decode(&[1, 8, 7, 0, 0, 0, 0, 0, 0, 0], 1, 3, rows, &t);
    assert!(
        matches!(&r, Err(EntropyError::Corrupt(m)) if m.contains("zero word")),
        "{r:?}"
    );
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(10);
    let raw = random_tables(&mut rng, 16, 24);
    let t = raw.build().expect("tables");
    let idx: Vec<u32> = (0..16 * 64).map(|_| rng.below_u64(16) as u32).collect();
    let maps = [
        RowMap::PerChannel { first_row: 0 },
        RowMap::PerElement(&idx),
    ];
    for i in 0..20_000 {
        let len = rng.below_u64(80) as usize;
        let mut b: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        // Make a fraction of them structurally valid so the ANS part is exercised.
        if i % 2 == 0 && len >= 1 {
            let s = 1 + rng.below_u64(4) as usize;
            let body = (len / 4) * 4;
            let mut h = Vec::new();
            write_varint(&mut h, s as u64);
            let mut left = body;
            for k in 0..s {
                let l = if k + 1 == s {
                    left
                } else {
                    4 * rng.below_u64(left as u64 / 4 + 1) as usize
                };
                left -= l;
                write_varint(&mut h, l as u64);
            }
            h.extend_from_slice(&b[..body]);
            b = h;
        }
        let map = maps[i % 2];
        let _ = decode(&b, 16, 64, map, &t);
        let _ = decode(&b, 4, 16, RowMap::PerChannel { first_row: 3 }, &t);
    }
    // Bit flips of a valid string.
    let s = per_channel_symbols(&mut rng, &t, 0, 16, 64, 0.05);
    let b = encode(&s, 16, maps[0], &t).expect("encode");
    for i in 0..b.len() * 8 {
        let mut c = b.clone();
        c[i / 8] ^= 1 << (i % 8);
        let _ = decode(&c, 16, 64, maps[0], &t);
    }
}

enum Item {
    Bin(usize, usize),
    Nibble(usize),
}

/// A one-group string whose stream decodes to `items` (in decode order).
fn crafted(t: &CdfTables, items: &[Item]) -> Vec<u8> {
    let mut coder = DefaultAnsCoder::new();
    for item in items.iter().rev() {
        match *item {
            Item::Bin(row, bin) => coder
                .encode_symbol(bin, t.row(row).expect("row").model.as_view())
                .expect("bin"),
            Item::Nibble(x) => coder.encode_symbol(x, nibble_model()).expect("nibble"),
        }
    }
    let words = coder.into_compressed().expect("flush");
    let mut b = Vec::new();
    write_varint(&mut b, 1);
    write_varint(&mut b, 4 * words.len() as u64);
    for w in words {
        b.extend_from_slice(&w.to_le_bytes());
    }
    b
}

#[test]
fn hostile_escapes_are_corrupt() {
    let raw = RawTables {
        cdf: vec![0, 30000, 60000, 65536, 0, 30000, 65536, 0],
        rows: 2,
        row_len: 4,
        cdf_len: vec![4, 3],
        offset: vec![-1, i32::MAX - 1],
    };
    let t = raw.build().expect("tables");
    let rows = RowMap::PerChannel { first_row: 0 };
    let esc = |n: usize, nibs: &[usize]| {
        let mut v = vec![Item::Bin(0, 2), Item::Nibble(n)];
        v.extend(nibs.iter().map(|&x| Item::Nibble(x)));
        v
    };
    // A well-formed escape decodes: raw = 0x21 (odd) -> v = -17 -> s = -18.
    assert_eq!(
        decode(&crafted(&t, &esc(2, &[1, 2])), 1, 1, rows, &t).expect("ok"),
        [-18]
    );
    // Nibble runs beyond 8 (CompressAI's run would continue after 15).
    for n in [9, 14, 15] {
        let r = decode(&crafted(&t, &esc(n, &[1; 16])), 1, 1, rows, &t);
        assert!(
            matches!(&r, Err(EntropyError::Corrupt(m)) if m.contains("nibbles")),
            "n={n}: {r:?}"
        );
    }
    // n = 0 is not a valid length.
    assert!(is_corrupt(decode(
        &crafted(&t, &esc(0, &[])),
        1,
        1,
        rows,
        &t
    )));
    // Non-minimal payload: zero leading nibble.
    let r = decode(&crafted(&t, &esc(3, &[1, 2, 0])), 1, 1, rows, &t);
    assert!(
        matches!(&r, Err(EntropyError::Corrupt(m)) if m.contains("non-minimal")),
        "{r:?}"
    );
    // A symbol beyond i32: row 1 has offset i32::MAX - 1, max_value 1; raw = 8 -> v = 5.
    let items = [
        Item::Bin(0, 0),
        Item::Bin(1, 1),
        Item::Nibble(1),
        Item::Nibble(8),
    ];
    let r = decode(&crafted(&t, &items), 2, 1, rows, &t);
    assert!(
        matches!(&r, Err(EntropyError::Corrupt(m)) if m.contains("i32")),
        "{r:?}"
    );
    // The largest 8-nibble payload still decodes when it fits.
    let items = esc(8, &[15; 8]); // raw = 2^32 - 1 -> v = -2^31 -> s = -2^31 - 1: too small
    assert!(is_corrupt(decode(&crafted(&t, &items), 1, 1, rows, &t)));
    let items = esc(8, &[13, 15, 15, 15, 15, 15, 15, 15]); // raw = 2^32 - 3 -> s = -2^31
    assert_eq!(
        decode(&crafted(&t, &items), 1, 1, rows, &t).expect("min"),
        [i32::MIN]
    );
}

#[test]
fn header_errors() {
    let t = RawTables {
        cdf: vec![0, 100, 65536],
        rows: 1,
        row_len: 3,
        cdf_len: vec![3],
        offset: vec![0],
    }
    .build()
    .expect("tables");
    let rows = RowMap::PerChannel { first_row: 0 };
    let s = [5, -3, 0, 0, 1, 0, 0, 0];
    let good = encode(&s, 1, rows, &t).expect("encode");
    assert_eq!(decode(&good, 1, 8, rows, &t).expect("decode"), s);
    let body = &good[2..];
    assert_eq!(good[0], 1);
    assert_eq!(usize::from(good[1]), body.len());
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![], "ends inside a varint"),
        (vec![0], "outside 1..=1"),
        (vec![2, 0, 0], "outside 1..=1"),
        (vec![0x81, 0x00, 0], "not minimal"),
        (vec![1, 3, 1, 2, 3], "multiple of 4"),
        (
            [vec![1, body.len() as u8 + 4], body.to_vec()].concat(),
            "follow the header",
        ),
        (
            [vec![1, body.len() as u8 - 4], body.to_vec()].concat(),
            "follow the header",
        ),
        (vec![0xff; 11], "64 bits"),
    ];
    for (b, what) in cases {
        let r = decode(&b, 1, 8, rows, &t);
        assert!(
            matches!(&r, Err(EntropyError::Corrupt(m)) if m.contains(what)),
            "{b:?}: {r:?}"
        );
    }
}

#[test]
fn varints() {
    for v in [0u64, 1, 127, 128, 300, 65535, 1 << 35, u64::MAX] {
        let mut b = Vec::new();
        write_varint(&mut b, v);
        assert_eq!(read_varint(&b).expect("varint"), v);
    }
    let mut b = Vec::new();
    write_varint(&mut b, 300);
    assert_eq!(b, [0xac, 0x02]);
    assert!(read_varint(&[0x80, 0x00]).is_err());
    assert!(read_varint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]).is_err());
    assert!(read_varint(&[0x80]).is_err());
}

#[test]
fn table_validation() {
    let ok = || RawTables {
        cdf: vec![0, 10, 20, 65536, 0, 0, 5, 65536, 7, 7],
        rows: 2,
        row_len: 5,
        cdf_len: vec![4, 3],
        offset: vec![0, -3],
    };
    let t = ok().build().expect("valid");
    assert_eq!(t.rows(), 2);
    assert_eq!(
        (t.offset(1), t.max_value(1), t.offset(2), t.max_value(2)),
        (Some(-3), Some(1), None, None)
    );
    assert!(format!("{t:?}").contains("rows: 2"));

    let row_err = |raw: RawTables, row: usize, what: &str| {
        let e = raw.build().expect_err("must fail");
        assert!(
            matches!(&e, EntropyError::InvalidTable { row: r, reason } if *r == row && reason.contains(what)),
            "{e}"
        );
        assert!(
            e.to_string()
                .starts_with(&format!("cdf table row {row} is invalid")),
            "{e}"
        );
    };
    // Zero-width bin (the escape bin of row 0).
    let mut r = ok();
    r.cdf[2] = 65536;
    r.cdf[3] = 65536;
    row_err(r, 0, "non-positive width");
    // Non-monotone.
    let mut r = ok();
    r.cdf[6] = 70000;
    row_err(r, 1, "non-positive width");
    let mut r = ok();
    r.cdf[2] = 5;
    row_err(r, 0, "non-positive width");
    // Wrong last value.
    let mut r = ok();
    r.cdf[3] = 65535;
    row_err(r, 0, "expected 65536");
    let mut r = ok();
    r.cdf[7] = 1 << 17;
    row_err(r, 1, "expected 65536");
    // First entry.
    let mut r = ok();
    r.cdf[5] = -1;
    row_err(r, 1, "cdf[0] is -1");
    // cdf_len out of range.
    for bad in [2, 6, -1, 0, i32::MAX] {
        let mut r = ok();
        r.cdf_len[1] = bad;
        row_err(r, 1, &format!("cdf_len {bad} is outside 3..=5"));
    }
    // Shapes.
    let mut r = ok();
    r.cdf.pop();
    assert!(matches!(
        r.build(),
        Err(EntropyError::ShapeMismatch {
            expected: 10,
            actual: 9,
            ..
        })
    ));
    let mut r = ok();
    r.offset.push(0);
    assert!(matches!(
        r.build(),
        Err(EntropyError::ShapeMismatch {
            expected: 2,
            actual: 3,
            ..
        })
    ));
    let mut r = ok();
    r.cdf_len.pop();
    assert!(matches!(
        r.build(),
        Err(EntropyError::ShapeMismatch {
            expected: 2,
            actual: 1,
            ..
        })
    ));
    // No rows is a valid (useless) table.
    assert_eq!(
        CdfTables::new(&[], 0, 7, &[], &[]).expect("empty").rows(),
        0
    );
}

#[test]
fn shape_and_row_errors() {
    let mut rng = Rng(11);
    let raw = random_tables(&mut rng, 8, 16);
    let t = raw.build().expect("tables");
    let s = per_channel_symbols(&mut rng, &t, 0, 4, 10, 0.0);
    let e = encode(&s, 3, RowMap::PerChannel { first_row: 0 }, &t).expect_err("must fail");
    assert_eq!(
        e,
        EntropyError::SymbolCount {
            symbols: 40,
            channels: 3
        }
    );
    assert_eq!(
        e.to_string(),
        "symbol count 40 is not a multiple of the channel count 3"
    );
    assert!(matches!(
        encode(&s, 0, RowMap::PerChannel { first_row: 0 }, &t),
        Err(EntropyError::SymbolCount { .. })
    ));
    // Per-channel rows past the table.
    let e = encode(&s, 4, RowMap::PerChannel { first_row: 5 }, &t).expect_err("must fail");
    assert_eq!(
        e,
        EntropyError::RowOutOfRange {
            index: 30,
            row: 8,
            rows: 8
        }
    );
    assert_eq!(e.to_string(), "row 8 for symbol 30 is out of range 0..8");
    let e = encode(
        &s,
        4,
        RowMap::PerChannel {
            first_row: usize::MAX,
        },
        &t,
    )
    .expect_err("must fail");
    assert!(
        matches!(
            e,
            EntropyError::RowOutOfRange {
                index: 0,
                row: usize::MAX,
                rows: 8
            }
        ),
        "{e}"
    );
    let b = encode(&s, 4, RowMap::PerChannel { first_row: 0 }, &t).expect("encode");
    assert!(matches!(
        decode(&b, 4, 10, RowMap::PerChannel { first_row: 6 }, &t),
        Err(EntropyError::RowOutOfRange { .. })
    ));
    // Per-element maps.
    let mut idx = vec![0u32; 40];
    idx[17] = 8;
    let e = encode(&s, 4, RowMap::PerElement(&idx), &t).expect_err("must fail");
    assert_eq!(
        e,
        EntropyError::RowOutOfRange {
            index: 17,
            row: 8,
            rows: 8
        }
    );
    assert!(matches!(
        decode(&b, 4, 10, RowMap::PerElement(&idx), &t),
        Err(EntropyError::RowOutOfRange { .. })
    ));
    let e = encode(&s, 4, RowMap::PerElement(&idx[..39]), &t).expect_err("must fail");
    assert!(
        matches!(
            e,
            EntropyError::ShapeMismatch {
                expected: 40,
                actual: 39,
                ..
            }
        ),
        "{e}"
    );
    // Shape overflow.
    let e =
        decode(&b, usize::MAX, 2, RowMap::PerChannel { first_row: 0 }, &t).expect_err("must fail");
    assert_eq!(
        e,
        EntropyError::ShapeOverflow {
            channels: usize::MAX,
            plane: 2
        }
    );
}

#[test]
fn encoding_is_independent_of_thread_count() {
    let mut rng = Rng(12);
    let raw = random_tables(&mut rng, 40, 64);
    let t = raw.build().expect("tables");
    let (channels, plane) = (40, 9000);
    let s = per_channel_symbols(&mut rng, &t, 0, channels, plane, 0.01);
    let idx: Vec<u32> = (0..channels * plane)
        .map(|_| rng.below_u64(40) as u32)
        .collect();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        pool.install(|| {
            let a = encode(&s, channels, RowMap::PerChannel { first_row: 0 }, &t).expect("encode");
            let b = encode(&s, channels, RowMap::PerElement(&idx), &t).expect("encode");
            assert_eq!(
                decode(&a, channels, plane, RowMap::PerChannel { first_row: 0 }, &t)
                    .expect("decode"),
                s
            );
            (a, b)
        })
    };
    let one = run(1);
    assert!(header(&one.0).0 > 1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(3));
}

#[test]
fn size_is_close_to_the_entropy() {
    let mut rng = Rng(13);
    let raw = random_tables(&mut rng, 32, 200);
    let t = raw.build().expect("tables");
    let (channels, plane) = (32, 3125); // 100k symbols, 2 groups
    let mut ideal_bits = 0.0f64;
    let mut s = Vec::with_capacity(channels * plane);
    for c in 0..channels {
        let row = raw.row(c);
        let len = raw.cdf_len[c] as usize;
        let off = raw.offset[c];
        for _ in 0..plane {
            // Sample a bin from the quantized pmf itself.
            let u = rng.below_u64(1 << 16) as i32;
            let bin = (0..len - 1).find(|&j| u < row[j + 1]).expect("bin");
            let p = f64::from(row[bin + 1] - row[bin]) / 65536.0;
            ideal_bits -= p.log2();
            if bin == len - 2 {
                // Escape: v = -1 -> raw 1, one nibble: 4 bits of n + 4 bits of payload.
                ideal_bits += 8.0;
                s.push(off - 1);
            } else {
                s.push(off + bin as i32);
            }
        }
    }
    let b = roundtrip(&s, channels, plane, RowMap::PerChannel { first_row: 0 }, &t);
    let groups = header(&b).0;
    assert_eq!(groups, 2);
    let ideal = ideal_bits / 8.0;
    let got = b.len() as f64;
    assert!(
        got <= ideal * 1.01 + 12.0 * groups as f64,
        "{got} bytes vs entropy {ideal:.1}"
    );
    assert!(
        got >= ideal - 8.0 * groups as f64,
        "{got} bytes vs entropy {ideal:.1}"
    );
}

#[test]
fn nibble_model_is_exactly_four_bits() {
    let flat =
        RowModel::from_nonzero_fixed_point_probabilities([4096u32; 16], false).expect("flat");
    let u = nibble_model();
    for x in 0..16usize {
        let a = EncoderModel::<16>::left_cumulative_and_probability(&u, x).expect("u");
        let b = EncoderModel::<16>::left_cumulative_and_probability(&flat.as_view(), x).expect("c");
        assert_eq!((a.0, a.1.get()), (b.0, b.1.get()));
        assert_eq!((a.0, a.1.get()), (4096 * x as u32, 4096));
    }
    assert!(EncoderModel::<16>::left_cumulative_and_probability(&u, 16usize).is_none());
}
