//! Property tests of codec-core's public API: random and mutated inputs to its constructors and
//! entry points (images and tensors with inconsistent public fields, latents with any field
//! changed, parsed containers with any tensor changed, any level, rate, size or name) give a value
//! or a typed error, never a panic; and what round-trips does (`RgbImage` <-> `Tensor`, files that
//! `encode` accepts decode without a panic).
//!
//! Each case is seeded and run under `catch_unwind`, so one run lists every input that panicked
//! (with its seed and the panic's message) instead of stopping at the first.
#![allow(clippy::unwrap_used)]

use std::panic::{catch_unwind, AssertUnwindSafe};

use codec_core::codec::{self, Latents, Objective};
use codec_core::container::{Packed, Value};
use codec_core::model::split_level;
use codec_core::tensor::Tensor;
use codec_core::{Error, Limits, RgbImage};
use tfci_tests::{Fixture, ARCHITECTURES};

/// SplitMix64: every case reproduces from the seed the failure list names.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }

    /// Mostly small sizes, sometimes zero, sometimes huge.
    fn size(&mut self) -> usize {
        match self.below(10) {
            0 => 0,
            1 => usize::MAX >> self.below(40),
            2 => 1 << self.below(20),
            _ => 1 + self.below(40) as usize,
        }
    }

    fn int(&mut self) -> i64 {
        match self.below(6) {
            0 => i64::MIN,
            1 => i64::MAX,
            2 => -(self.below(100) as i64),
            _ => self.below(100) as i64,
        }
    }

    fn float(&mut self) -> f32 {
        match self.below(8) {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => f32::NEG_INFINITY,
            3 => -(self.below(10) as f32),
            4 => f32::MAX,
            _ => self.below(1000) as f32 / 100.0,
        }
    }

    fn level(&mut self) -> u32 {
        match self.below(5) {
            0 => 0,
            1 => u32::MAX,
            _ => self.below(10) as u32,
        }
    }

    fn symbols(&mut self, n: usize) -> Vec<i32> {
        (0..n)
            .map(|_| match self.below(20) {
                0 => i32::MAX,
                1 => i32::MIN,
                _ => self.below(9) as i32 - 4,
            })
            .collect()
    }

    fn string(&mut self) -> String {
        let parts = [
            "b2018-gdn-128",
            "mbt2018-mean",
            "-",
            "0",
            "4",
            "99999999999",
            "é",
            "\u{0}",
            "--",
            "bmshj2018-factorized",
            "-1",
        ];
        (0..self.below(4))
            .map(|_| parts[self.below(parts.len() as u64) as usize])
            .collect()
    }
}

/// Runs every case, collecting the ones that panic with their message.
struct Cases {
    panics: Vec<String>,
    run: usize,
}

thread_local! {
    /// Set while a case runs under `catch_unwind`: its panic is collected, not printed.
    static IN_CASE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Cases {
    fn new() -> Self {
        // One hook for the process (the tests run in parallel): silent for a case's collected
        // panic, the default one for anything else (a failing assertion still prints).
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| {
            let default = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if !IN_CASE.with(|c| c.get()) {
                    default(info)
                }
            }));
        });
        Cases {
            panics: Vec::new(),
            run: 0,
        }
    }

    fn check<T>(&mut self, what: impl FnOnce() -> String, f: impl FnOnce() -> T) -> Option<T> {
        self.run += 1;
        IN_CASE.with(|c| c.set(true));
        let result = catch_unwind(AssertUnwindSafe(f));
        IN_CASE.with(|c| c.set(false));
        match result {
            Ok(v) => Some(v),
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                self.panics.push(format!("{}: {msg}", what()));
                None
            }
        }
    }

    fn assert_none(self, name: &str) {
        eprintln!("{name}: {} cases, {} panicked", self.run, self.panics.len());
        assert!(
            self.panics.is_empty(),
            "{name}: {} of {} cases panicked:\n{}",
            self.panics.len(),
            self.run,
            self.panics
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// `RgbImage` and `Tensor`: the checked constructors accept exactly the consistent inputs, and
/// what they accept converts both ways without loss; inconsistent public fields are an error.
#[test]
fn constructors_and_conversions() {
    let mut cases = Cases::new();
    for seed in 0..3000u64 {
        let mut r = Rng(seed);
        let (w, h) = (r.size(), r.size());
        let len = match r.below(3) {
            0 => w.saturating_mul(h).saturating_mul(3),
            1 => r.below(5000) as usize,
            _ => w.saturating_mul(h).saturating_mul(3).saturating_sub(1),
        };
        let len = len.min(1 << 16);
        let data: Vec<u8> = (0..len).map(|_| r.below(256) as u8).collect();
        cases.check(
            || format!("image seed {seed}: {w}x{h} with {len} bytes"),
            || {
                let consistent = w.checked_mul(h).and_then(|p| p.checked_mul(3)) == Some(len);
                let made = RgbImage::new(w, h, data.clone());
                assert_eq!(made.is_ok(), consistent, "RgbImage::new");
                let raw = RgbImage {
                    width: w,
                    height: h,
                    data: data.clone(),
                };
                match raw.to_tensor() {
                    Ok(t) => {
                        assert!(consistent, "to_tensor of an inconsistent image");
                        let back = RgbImage::from_tensor(&t).expect("from_tensor");
                        assert_eq!(back, raw, "RgbImage -> Tensor -> RgbImage");
                    }
                    Err(e) => assert!(!consistent && matches!(e, Error::Argument(_)), "{e}"),
                }
            },
        );
        let (c, th, tw) = (r.size().min(5), r.size(), r.size());
        let n = match r.below(2) {
            0 => c.saturating_mul(th).saturating_mul(tw).min(1 << 16),
            _ => r.below(300) as usize,
        };
        let values: Vec<f32> = (0..n).map(|_| r.float()).collect();
        cases.check(
            || format!("tensor seed {seed}: {c}x{th}x{tw} with {n} values"),
            || {
                let consistent = c.checked_mul(th).and_then(|p| p.checked_mul(tw)) == Some(n);
                assert_eq!(
                    Tensor::new(c, th, tw, values.clone()).is_ok(),
                    consistent,
                    "Tensor::new"
                );
                let raw = Tensor {
                    c,
                    h: th,
                    w: tw,
                    data: values.clone(),
                };
                let image = RgbImage::from_tensor(&raw);
                assert_eq!(image.is_ok(), consistent && c == 3, "from_tensor");
            },
        );
    }
    cases.assert_none("constructors");
}

/// One random change to valid latents.
fn mutate_latents(r: &mut Rng, lat: &mut Latents) {
    match r.below(12) {
        0 => lat.level = r.level(),
        1 => lat.rd_parameter = r.chance(2).then(|| r.float()),
        2 => lat.x_shape = [r.size(), r.size()],
        3 => lat.y.c = r.size(),
        4 => {
            lat.y.h = r.size();
            lat.y.w = r.size();
        }
        5 => {
            let n = (lat.y_symbols.len() as i64 + r.below(5) as i64 - 2).max(0) as usize;
            lat.y_symbols = r.symbols(n);
        }
        6 => lat
            .y
            .data
            .truncate(r.below(lat.y.data.len() as u64 + 1) as usize),
        7 => {
            if let Some(z) = &mut lat.z {
                z.c = r.size();
                z.h = r.size().min(64);
            } else {
                lat.z = Some(Tensor::new(1, 1, 1, vec![0.0]).unwrap());
            }
        }
        8 => match &mut lat.z_symbols {
            Some(s) if r.chance(2) => {
                let n = (s.len() as i64 + r.below(5) as i64 - 2).max(0) as usize;
                *s = r.symbols(n);
            }
            _ => lat.z_symbols = None,
        },
        9 => {
            if let Some(idx) = &mut lat.scale_indexes {
                for v in idx.iter_mut() {
                    if r.chance(7) {
                        *v = r.next() as u32;
                    }
                }
                if r.chance(2) {
                    idx.pop();
                }
            } else {
                lat.scale_indexes = Some(vec![0; lat.y_symbols.len()]);
            }
        }
        10 => {
            if let Some(m) = &mut lat.means {
                m.w = r.size();
            } else {
                lat.means = Some(Tensor::new(1, 1, 1, vec![0.0]).unwrap());
            }
        }
        _ => lat.means = None,
    }
}

/// One random change to a parsed container.
fn mutate_packed(r: &mut Rng, p: &mut Packed) {
    match r.below(8) {
        0 => p.model = r.string(),
        1 => p.rd_parameter = r.chance(2).then(|| r.float()),
        2 => p.weights_id = r.chance(2).then(|| r.string()),
        3 => {
            p.tensors
                .truncate(r.below(p.tensors.len() as u64 + 1) as usize);
        }
        4 => p.tensors.push(Value::Int64(vec![r.int(), r.int()])),
        _ => {
            if p.tensors.is_empty() {
                return;
            }
            let i = r.below(p.tensors.len() as u64) as usize;
            p.tensors[i] = match r.below(5) {
                0 => Value::Int64((0..r.below(4)).map(|_| r.int()).collect()),
                1 => Value::Float(vec![r.float()]),
                2 => Value::Bytes(vec![]),
                3 => Value::Bytes(vec![(0..r.below(64)).map(|_| r.next() as u8).collect()]),
                _ => match &p.tensors[i] {
                    Value::Int64(v) => {
                        Value::Int64(v.iter().map(|&d| d.wrapping_add(r.int() % 3)).collect())
                    }
                    Value::Bytes(b) => Value::Bytes(
                        b.iter()
                            .map(|s| {
                                let mut s = s.clone();
                                if let Some(x) = s.get_mut(r.below(64) as usize) {
                                    *x ^= 1 << r.below(8);
                                }
                                s
                            })
                            .collect(),
                    ),
                    other => other.clone(),
                },
            };
        }
    }
}

/// Every entry point of a `Codec`, with each fixture family: random images, levels and rates;
/// latents and parsed files with random changes; tensors with inconsistent fields; limits, sizes,
/// names and tables. Whatever `encode` accepts must decode without a panic.
#[test]
fn codec_entry_points_never_panic() {
    let mut cases = Cases::new();
    let limits = Limits::default();
    for arch in ARCHITECTURES {
        let f = Fixture::load(arch);
        let codec = &f.codec;
        let valid = codec.analyze(&f.image, f.level, &limits).unwrap();
        let bytes = codec.encode(&valid).unwrap();
        let packed = Packed::from_bytes(&bytes).unwrap();
        let entry = f.registry.families()[0].clone();
        for seed in 0..1000u64 {
            let mut r = Rng(seed ^ 0xA11CE);
            let what = |s: &str| format!("{arch} seed {seed}: {s}");
            // Images of any size and consistency, at any level or rate.
            let (w, h) = (r.size().min(48), r.size().min(48));
            let n = if r.chance(4) {
                r.below(50) as usize
            } else {
                w * h * 3
            };
            let image = RgbImage {
                width: w,
                height: h,
                data: (0..n).map(|_| r.below(256) as u8).collect(),
            };
            let level = r.level();
            cases.check(
                || what(&format!("compress {w}x{h} ({n} bytes) level {level}")),
                || codec.compress(&image, level, &limits).map(|_| ()),
            );
            let rd = r.float();
            cases.check(
                || what(&format!("compress_rd {w}x{h} rd {rd}")),
                || codec.compress_rd(&image, rd, &limits).map(|_| ()),
            );
            // Latents with one to three changes: encode, y_hat, and the decoder on what encode made.
            let mut lat = valid.clone();
            for _ in 0..1 + r.below(3) {
                mutate_latents(&mut r, &mut lat);
            }
            let encoded = cases.check(
                || {
                    what(
                        &format!("encode {lat:?}")
                            .chars()
                            .take(400)
                            .collect::<String>(),
                    )
                },
                || codec.encode(&lat),
            );
            if let Some(Ok(file)) = encoded {
                cases.check(
                    || what("decompress what encode accepted"),
                    || codec::decompress(&f.registry, &file, &limits).map(|_| ()),
                );
            }
            cases.check(
                || what("y_hat of changed latents"),
                || codec.y_hat(&lat).map(|_| ()),
            );
            // Synthesis of any tensor to any size.
            let y_hat = Tensor {
                c: if r.chance(2) { valid.y.c } else { r.size() },
                h: r.size().min(8),
                w: r.size().min(8),
                data: (0..r.below(600)).map(|_| r.float()).collect(),
            };
            let x_shape = [r.size(), r.size()];
            cases.check(
                || {
                    what(&format!(
                        "synthesize {}x{}x{} ({} values) to {x_shape:?}",
                        y_hat.c,
                        y_hat.h,
                        y_hat.w,
                        y_hat.data.len()
                    ))
                },
                || codec.synthesize(&y_hat, x_shape).map(|_| ()),
            );
            // Parsed files with one to three changes, through every decoding entry point.
            let mut p = packed.clone();
            for _ in 0..1 + r.below(3) {
                mutate_packed(&mut r, &mut p);
            }
            cases.check(
                || {
                    what(
                        &format!("decode_latents {p:?}")
                            .chars()
                            .take(400)
                            .collect::<String>(),
                    )
                },
                || codec.decode_latents(&p, &limits).map(|_| ()),
            );
            cases.check(
                || what("decompress_packed of a changed file"),
                || codec.decompress_packed(&p, &limits).map(|_| ()),
            );
            let file = p.to_bytes();
            cases.check(
                || what("codec::decompress of a changed file"),
                || codec::decompress(&f.registry, &file, &limits).map(|_| ()),
            );
            let i = r.below(8) as usize;
            let k = r.below(4) as usize;
            cases.check(
                || what(&format!("bytes_at({i}) / shape_at({i}, {k})")),
                || (p.bytes_at(i).is_ok(), p.shape_at(i, k).is_ok()),
            );
            // Sizes, limits, names, objectives.
            let (sw, sh) = (r.size(), r.size());
            cases.check(
                || what(&format!("limits and memory of {sw}x{sh}")),
                || {
                    let _ = limits.check(sw as u64, sh as u64);
                    let _ = codec.memory_needed(sw, sh);
                    if let Ok(o) = Objective::of(&entry, f.level, None) {
                        let _ = codec.search_memory(sw, sh, &o);
                    }
                },
            );
            let name = r.string();
            let (lv, rdp) = (r.level(), r.chance(2).then(|| r.float()));
            cases.check(
                || {
                    what(&format!(
                        "names {name:?}, objective at level {lv} rd {rdp:?}"
                    ))
                },
                || {
                    let _ = f.registry.resolve(&name);
                    let _ = split_level(&name);
                    let _ = codec.model_name(lv);
                    let _ = Objective::of(&entry, lv, rdp);
                    let _ = codec::iterations(r.below(256) as u8);
                },
            );
            let scales: Vec<f32> = (0..r.below(20)).map(|_| r.float()).collect();
            let table: Vec<f32> = (0..r.below(6)).map(|_| r.float()).collect();
            cases.check(
                || what(&format!("scale_indexes({scales:?}, {table:?})")),
                || {
                    let idx = codec::scale_indexes(&scales, &table);
                    assert_eq!(idx.len(), scales.len());
                    assert!(idx.iter().all(|&i| (i as usize) < table.len().max(1)));
                },
            );
        }
    }
    cases.assert_none("codec entry points");
}
