//! `decompress(compress(x))`: the decoder parses exactly the symbols the encoder wrote and rebuilds
//! exactly the encoder's reconstruction, at every level of every family.

use codec_core::container::Packed;
use codec_core::{Limits, RgbImage};
use tfci_tests::{Fixture, ARCHITECTURES};

#[test]
fn every_level_of_every_family_round_trips() {
    for arch in ARCHITECTURES {
        let f = Fixture::load(arch);
        for level in 1..=f.codec.family().levels {
            let limits = Limits::default();
            let lat = f.codec.analyze(&f.image, level, &limits).expect("analyze");
            let bytes = f.codec.encode(&lat).expect("encode");
            let packed = Packed::from_bytes(&bytes).expect("parse");
            assert_eq!(packed.model, f.codec.model_name(level));
            let dec = f.codec.decode_latents(&packed, &limits).expect("decode");
            assert_eq!(dec.y_symbols, lat.y_symbols, "{arch}-{level}: y symbols");
            assert_eq!(dec.z_symbols, lat.z_symbols, "{arch}-{level}: z symbols");
            assert_eq!(
                dec.scale_indexes, lat.scale_indexes,
                "{arch}-{level}: scale indexes"
            );
            let y_hat = f.codec.y_hat(&lat).expect("y_hat");
            assert_eq!(dec.y_hat, y_hat, "{arch}-{level}: y_hat");
            let encoder_side =
                RgbImage::from_tensor(&f.codec.synthesize(&y_hat, lat.x_shape).expect("synthesis"))
                    .expect("an RGB tensor");
            let (img, model) =
                codec_core::codec::decompress(&f.registry, &bytes, &limits).expect("decompress");
            assert_eq!(model, f.codec.model_name(level));
            assert_eq!(img, encoder_side, "{arch}-{level}: reconstruction");
        }
    }
}

#[test]
fn levels_differ_in_rate() {
    // Gains differ per level, so the files must differ; a level mix-up would make them equal.
    for arch in ARCHITECTURES {
        let f = Fixture::load(arch);
        let sizes: Vec<usize> = (1..=f.codec.family().levels)
            .map(|l| {
                f.codec
                    .compress(&f.image, l, &Limits::default())
                    .expect("compress")
                    .len()
            })
            .collect();
        assert!(
            sizes.windows(2).any(|w| w[0] != w[1]),
            "{arch}: all levels gave {sizes:?}"
        );
    }
}

#[test]
fn tiny_and_odd_images() {
    for arch in ARCHITECTURES {
        let f = Fixture::load(arch);
        for (w, h) in [(1, 1), (1, 17), (33, 2), (16, 16), (65, 63)] {
            let data = (0..w * h * 3).map(|i| (i * 37 % 251) as u8).collect();
            let img = RgbImage {
                width: w,
                height: h,
                data,
            };
            let bytes = f
                .codec
                .compress(&img, 1, &Limits::default())
                .expect("compress");
            let (out, _) = codec_core::codec::decompress(&f.registry, &bytes, &Limits::default())
                .expect("decompress");
            assert_eq!((out.width, out.height), (w, h), "{arch}: {w}x{h}");
        }
    }
}

#[test]
fn every_shipped_model_round_trips() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let registry = codec_core::model::Registry::open(&dir).expect("models/manifest.json");
    let (w, h) = (40, 29);
    let data = (0..w * h * 3).map(|i| (i * 7 % 256) as u8).collect();
    let img = RgbImage {
        width: w,
        height: h,
        data,
    };
    let limits = Limits::default();
    let mut names = 0;
    for entry in registry.families() {
        let codec = codec_core::Codec::new(registry.load(entry).expect("loads")).expect("prepares");
        for level in 1..=entry.levels {
            let bytes = codec.compress(&img, level, &limits).expect("compress");
            let (out, model) =
                codec_core::codec::decompress(&registry, &bytes, &limits).expect("decompress");
            assert_eq!(model, format!("{}-{level}", entry.family));
            assert_eq!((out.width, out.height), (w, h));
            names += 1;
        }
    }
    assert_eq!(names, registry.names().len());
}

/// A continuous rate parameter (mean-scale hyperprior only): the file names the family and carries
/// "RD"; the decoder rebuilds the encoder's reconstruction exactly; integers are the levels.
#[test]
fn rate_parameter_round_trips() {
    let f = Fixture::load("mbt2018-mean");
    let limits = Limits::default();
    let family = f.codec.family().name.clone();
    let levels = f.codec.family().levels;
    assert!(f.codec.has_rd_parameter());
    for rd in [1.0f32, 1.3, 2.5, 3.75, levels as f32] {
        let lat = f.codec.analyze_rd(&f.image, rd, &limits).expect("analyze");
        let bytes = f.codec.encode(&lat).expect("encode");
        let packed = Packed::from_bytes(&bytes).expect("parse");
        assert_eq!(packed.model, family);
        assert_eq!(packed.rd_parameter, Some(rd));
        let dec = f.codec.decode_latents(&packed, &limits).expect("decode");
        assert_eq!(dec.y_symbols, lat.y_symbols, "rd {rd}");
        assert_eq!(dec.z_symbols, lat.z_symbols, "rd {rd}");
        let y_hat = f.codec.y_hat(&lat).expect("y_hat");
        assert_eq!(dec.y_hat, y_hat, "rd {rd}");
        let (img, model) =
            codec_core::codec::decompress(&f.registry, &bytes, &limits).expect("decompress");
        assert_eq!(model, family);
        assert_eq!(
            img,
            RgbImage::from_tensor(&f.codec.synthesize(&y_hat, lat.x_shape).expect("synthesis"))
                .expect("an RGB tensor"),
            "rd {rd}"
        );
        if rd.fract() == 0.0 {
            let at_level = f
                .codec
                .analyze(&f.image, rd as u32, &limits)
                .expect("level");
            assert_eq!(at_level.y_symbols, lat.y_symbols, "rd {rd} is level {rd}");
        }
    }
    for bad in [0.5f32, levels as f32 + 0.1, f32::NAN] {
        assert!(matches!(
            f.codec.analyze_rd(&f.image, bad, &limits),
            Err(codec_core::Error::RdParameter { .. })
        ));
    }
    let b = Fixture::load("b2018-gdn");
    assert!(!b.codec.has_rd_parameter());
    assert!(matches!(
        b.codec.analyze_rd(&b.image, 1.5, &limits),
        Err(codec_core::Error::NoRdParameter { .. })
    ));
}

/// The convolutions' weights reach the packers either as the file's halves, converted a block at a
/// time, or already converted whole; and they are packed either before the first compress
/// (`prepare_compress`) or at each layer's first run. Every way gives the same bytes and the same
/// decoded image, for every shipped family.
#[test]
fn how_the_weights_are_converted_and_when_packed_changes_nothing() {
    use codec_core::model::graph::Layer;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let registry = codec_core::model::Registry::open(&dir).expect("models/manifest.json");
    let (w, h) = (67, 45);
    let img = RgbImage {
        width: w,
        height: h,
        data: (0..w * h * 3).map(|i| (i * 13 % 251) as u8).collect(),
    };
    let limits = Limits::default();
    for entry in registry.families() {
        let lazy = codec_core::Codec::new(registry.load(entry).expect("loads")).expect("prepares");
        let family = registry.load(entry).expect("loads");
        let nets = [&family.g_a, &family.g_s]
            .into_iter()
            .chain(family.h_a.as_ref())
            .chain(family.h_s.as_ref());
        for net in nets {
            for layer in &net.layers {
                if let Layer::Conv(c) = layer {
                    // Converts the whole tensor now: the packers then read the f32 values.
                    assert!(c.weight.iter().all(|v| v.is_finite()));
                }
            }
        }
        let converted = codec_core::Codec::new(family).expect("prepares");
        converted.prepare_compress();
        let level = entry.levels.div_ceil(2);
        let a = lazy.compress(&img, level, &limits).expect("compress");
        let b = converted.compress(&img, level, &limits).expect("compress");
        assert_eq!(a, b, "{}: compressed bytes differ", entry.family);
        let packed = Packed::from_bytes(&a).expect("parses");
        let da = lazy.decompress_packed(&packed, &limits).expect("decodes");
        let db = converted
            .decompress_packed(&packed, &limits)
            .expect("decodes");
        assert_eq!(da.data, db.data, "{}: decoded images differ", entry.family);
    }
}
