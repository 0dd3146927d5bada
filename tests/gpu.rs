//! The GPU backend against the CPU backend on the shipped models: reconstructions within 2/255 on
//! a Kodak-sized image, and the cross-backend matrix (files encoded on one backend decode on the
//! other with identical symbols: a desync is a failure, not a tolerance).
//!
//! Without a wgpu adapter these tests print that they are skipped, except under `CI=true`, where
//! that fails (CI installs Mesa's lavapipe).

use std::path::{Path, PathBuf};
use std::time::Instant;

use codec_core::container::Packed;
use codec_core::gpu::GpuNet;
use codec_core::model::Registry;
use codec_core::{Backend, BackendKind, BackendOptions, Codec, Limits, RgbImage};

fn gpu() -> Option<Backend> {
    let opts = BackendOptions {
        kind: BackendKind::Gpu,
        adapter: std::env::var("TFCI_TEST_ADAPTER").ok(),
    };
    match Backend::select(&opts) {
        Ok(b) => {
            eprintln!("backend: {}", b.describe());
            Some(b)
        }
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but the GPU backend is unavailable: {e}")
        }
        Err(e) => {
            {
                // Written past libtest's capture, so the skip shows in the test output even
                // though the test passes.
                use std::io::Write;
                let test = std::thread::current().name().unwrap_or("?").to_string();
                let _ = writeln!(std::io::stderr(), "SKIPPED {test}: no wgpu adapter ({e})");
            }
            None
        }
    }
}

fn registry() -> Registry {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    Registry::open(&dir).expect("models/manifest.json")
}

/// kodim01 when the shared data is there, else a synthetic image of the same size.
fn kodak_sized() -> RgbImage {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/kodak/kodim01.png");
    if let Ok(img) = tfci_cli::read_image(&path) {
        return img;
    }
    eprintln!(
        "note: {} not found, using a synthetic 768x512 image",
        path.display()
    );
    synthetic(768, 512)
}

fn synthetic(width: usize, height: usize) -> RgbImage {
    let mut data = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            let v = ((x as f32 * 0.05).sin() * (y as f32 * 0.03).cos() * 100.0 + 128.0) as u8;
            data.extend([v, (x * 255 / width) as u8, ((x ^ y) & 0xff) as u8]);
        }
    }
    RgbImage {
        width,
        height,
        data,
    }
}

/// Largest per-sample difference of two 8-bit images.
fn max_diff(a: &RgbImage, b: &RgbImage) -> u8 {
    assert_eq!((a.width, a.height), (b.width, b.height));
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

#[test]
fn every_model_reconstructs_within_2_of_255_of_the_cpu() {
    let Some(gpu) = gpu() else { return };
    let registry = registry();
    let image = kodak_sized();
    let limits = Limits::default();
    for entry in registry.families() {
        let family = registry.load(entry).expect("loads");
        if let Some(ctx) = gpu.gpu() {
            // The shipped weights are f16 values: the kernels stage them as f16 pairs.
            for net in [&family.g_a, &family.g_s] {
                let g = GpuNet::prepare(ctx, net).expect("prepare");
                assert!(g.f16_weights(), "{}: {} not in f16", entry.family, net.name);
            }
        }
        let cpu = Codec::new(family.clone()).expect("cpu codec");
        let gpu = Codec::with_backend(family, &gpu).expect("gpu codec");
        let level = entry.levels.div_ceil(2);
        let t = Instant::now();
        let lat = cpu.analyze(&image, level, &limits).expect("analyze");
        let y_hat = cpu.y_hat(&lat).expect("y_hat");
        let x_cpu = RgbImage::from_tensor(&cpu.synthesize(&y_hat, lat.x_shape).expect("synthesis"))
            .expect("an RGB tensor");
        let t_cpu = t.elapsed();
        let t = Instant::now();
        let lat_gpu = gpu.analyze(&image, level, &limits).expect("analyze");
        let x_gpu = RgbImage::from_tensor(&gpu.synthesize(&y_hat, lat.x_shape).expect("synthesis"))
            .expect("an RGB tensor");
        let t_gpu = t.elapsed();
        assert!(gpu.take_notes().is_empty(), "the GPU fell back to the CPU");
        let y_scale = lat.y.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let y_err = lat
            .y
            .data
            .iter()
            .zip(&lat_gpu.y.data)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
            / y_scale.max(1e-6);
        let d = max_diff(&x_cpu, &x_gpu);
        eprintln!(
            "{}-{level} {}x{}: x_hat max diff {d}/255, y relative error {y_err:e} (cpu {t_cpu:.1?}, gpu {t_gpu:.1?})",
            entry.family, image.width, image.height
        );
        assert!(d <= 2, "{}: x_hat differs by {d}/255", entry.family);
        assert!(
            y_err <= 1e-4,
            "{}: y relative error {y_err:e}",
            entry.family
        );
    }
}

#[test]
fn files_cross_backends_with_identical_symbols() {
    let Some(gpu) = gpu() else { return };
    let registry = registry();
    let image = synthetic(96, 80);
    let limits = Limits::default();
    for entry in registry.families() {
        let family = registry.load(entry).expect("loads");
        let codecs = [
            ("cpu", Codec::new(family.clone()).expect("cpu codec")),
            ("gpu", Codec::with_backend(family, &gpu).expect("gpu codec")),
        ];
        for level in [1, entry.levels] {
            for (enc_name, enc) in &codecs {
                let lat = enc.analyze(&image, level, &limits).expect("analyze");
                let bytes = enc.encode(&lat).expect("encode");
                let packed = Packed::from_bytes(&bytes).expect("parse");
                let mut images = Vec::new();
                for (dec_name, dec) in &codecs {
                    let what = format!("{}-{level}: {enc_name} -> {dec_name}", entry.family);
                    let d = dec.decode_latents(&packed, &limits).expect("decode");
                    assert_eq!(d.y_symbols, lat.y_symbols, "{what}: y symbols desync");
                    assert_eq!(d.z_symbols, lat.z_symbols, "{what}: z symbols desync");
                    assert_eq!(d.scale_indexes, lat.scale_indexes, "{what}: scale indexes");
                    images.push(
                        RgbImage::from_tensor(
                            &dec.synthesize(&d.y_hat, d.x_shape).expect("synthesis"),
                        )
                        .expect("an RGB tensor"),
                    );
                }
                let d = max_diff(&images[0], &images[1]);
                assert!(
                    d <= 2,
                    "{}-{level}: decoders differ by {d}/255",
                    entry.family
                );
            }
        }
        for (_, c) in &codecs {
            assert!(c.take_notes().is_empty(), "the GPU fell back to the CPU");
        }
    }
}

#[test]
fn decompress_with_a_backend_matches_the_cpu() {
    let Some(gpu) = gpu() else { return };
    let registry = registry();
    let image = synthetic(50, 37);
    let limits = Limits::default();
    let entry = &registry.families()[0];
    let codec = Codec::new(registry.load(entry).expect("loads")).expect("codec");
    let bytes = codec.compress(&image, 1, &limits).expect("compress");
    let (cpu, _) = codec_core::codec::decompress(&registry, &bytes, &limits).expect("cpu");
    let (img, model, notes) =
        codec_core::codec::decompress_with(&registry, &bytes, &limits, &gpu).expect("gpu");
    assert_eq!(model, format!("{}-1", entry.family));
    assert!(notes.is_empty(), "{notes:?}");
    assert!(max_diff(&cpu, &img) <= 2);
}

#[test]
fn a_lost_device_falls_back_to_the_cpu_and_says_so() {
    if gpu().is_none() {
        return;
    }
    // A device of its own, destroyed mid-way (what a driver reset looks like to wgpu).
    let opts = BackendOptions {
        kind: BackendKind::Gpu,
        adapter: std::env::var("TFCI_TEST_ADAPTER").ok(),
    };
    let backend = Backend::select(&opts).expect("gpu");
    let registry = registry();
    let entry = &registry.families()[0];
    let family = registry.load(entry).expect("loads");
    let cpu = Codec::new(family.clone()).expect("cpu codec");
    let codec = Codec::with_backend(family, &backend).expect("gpu codec");
    let image = synthetic(40, 33);
    let limits = Limits::default();
    let before = codec.compress(&image, 1, &limits).expect("compress");
    assert!(codec.take_notes().is_empty());
    backend.gpu().expect("a gpu backend").destroy();
    let after = codec
        .compress(&image, 1, &limits)
        .expect("compress after device loss");
    let notes = codec.take_notes();
    eprintln!("notes: {notes:?}");
    assert!(!notes.is_empty(), "the fallback must say so");
    assert_eq!(after, cpu.compress(&image, 1, &limits).expect("cpu"));
    // Both files decode on the CPU.
    for bytes in [before, after] {
        codec_core::codec::decompress(&registry, &bytes, &limits).expect("decodes");
    }
}

/// A fresh GPU backend of its own (its settings must not leak into the other tests).
fn own_gpu() -> Option<Backend> {
    gpu()?;
    let opts = BackendOptions {
        kind: BackendKind::Gpu,
        adapter: std::env::var("TFCI_TEST_ADAPTER").ok(),
    };
    Some(Backend::select(&opts).expect("gpu"))
}

#[test]
fn tiled_codec_writes_the_same_file_as_untiled() {
    let Some(whole) = gpu() else { return };
    let Some(tiled) = own_gpu() else { return };
    // 1 MiB per activation: several tiles for every g_a and g_s at this size.
    tiled.gpu().expect("gpu").set_tile_budget(1 << 20);
    let registry = registry();
    let image = synthetic(256, 192);
    let limits = Limits::default();
    for entry in registry.families() {
        let family = registry.load(entry).expect("loads");
        let a = Codec::with_backend(family.clone(), &whole).expect("codec");
        let b = Codec::with_backend(family, &tiled).expect("codec");
        let fa = a.compress(&image, 1, &limits).expect("compress");
        let fb = b.compress(&image, 1, &limits).expect("compress");
        assert_eq!(
            fa, fb,
            "{}: tiled g_a/h_a wrote a different file",
            entry.family
        );
        let packed = Packed::from_bytes(&fa).expect("parse");
        let da = a.decompress_packed(&packed, &limits).expect("decompress");
        let db = b.decompress_packed(&packed, &limits).expect("decompress");
        assert_eq!(da, db, "{}: tiled g_s differs", entry.family);
        let notes = [a.take_notes(), b.take_notes()];
        assert!(
            notes.iter().all(Vec::is_empty),
            "{}: {notes:?}",
            entry.family
        );
    }
}

/// 50 megapixels through the default tiling. Far too slow for lavapipe in CI; run it by hand on a
/// real GPU: `cargo test -p tfci-tests --test gpu -- --ignored fifty`.
#[test]
#[ignore]
fn fifty_megapixels_compress_and_decompress() {
    let Some(gpu) = gpu() else { return };
    let registry = registry();
    let image = synthetic(8660, 5774);
    let limits = Limits::default();
    let entry = &registry.families()[0];
    let codec = Codec::with_backend(registry.load(entry).expect("loads"), &gpu).expect("codec");
    let t = Instant::now();
    let bytes = codec.compress(&image, 1, &limits).expect("compress");
    let packed = Packed::from_bytes(&bytes).expect("parse");
    let out = codec
        .decompress_packed(&packed, &limits)
        .expect("decompress");
    assert_eq!((out.width, out.height), (image.width, image.height));
    assert!(codec.take_notes().is_empty(), "fell back to the CPU");
    eprintln!("50 Mpx: {} bytes in {:.1?}", bytes.len(), t.elapsed());
}
