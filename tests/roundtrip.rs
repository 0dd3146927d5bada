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
            let dec = f
                .codec
                .decode_latents(&packed, level, &limits)
                .expect("decode");
            assert_eq!(dec.y_symbols, lat.y_symbols, "{arch}-{level}: y symbols");
            assert_eq!(dec.z_symbols, lat.z_symbols, "{arch}-{level}: z symbols");
            assert_eq!(
                dec.scale_indexes, lat.scale_indexes,
                "{arch}-{level}: scale indexes"
            );
            let y_hat = f.codec.y_hat(&lat).expect("y_hat");
            assert_eq!(dec.y_hat, y_hat, "{arch}-{level}: y_hat");
            let encoder_side = RgbImage::from_tensor(&f.codec.synthesize(&y_hat, lat.x_shape));
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
