//! Encoder effort (`Codec::search`, `tfci-enc compress -e`): with every shipped family, effort 1
//! lowers the rounded rate-distortion objective of a small image compared with effort 0, the file
//! decodes with the plain decoder, two runs give the same bytes, and effort 4 is refused.

use std::path::{Path, PathBuf};

use codec_core::codec::{self, Objective, MAX_EFFORT};
use codec_core::model::Registry;
use codec_core::{Codec, Error, Limits, RgbImage};

fn registry() -> Registry {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    Registry::open(&dir).expect("models/manifest.json")
}

/// A 96 x 80 crop of kodim23 when the shared data is there (it is not needed: a synthetic image
/// with edges and texture otherwise).
fn image() -> RgbImage {
    let (w, h) = (96, 80);
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/kodak/kodim23.png");
    if let Ok(full) = tfci_cli::read_image(&path) {
        let (x0, y0) = (300, 200);
        let mut data = Vec::with_capacity(w * h * 3);
        for y in y0..y0 + h {
            let row = (y * full.width + x0) * 3;
            data.extend_from_slice(&full.data[row..row + w * 3]);
        }
        return RgbImage::new(w, h, data).expect("crop");
    }
    let mut data = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let v = ((x as f32 * 0.3).sin() * (y as f32 * 0.2).cos() * 90.0 + 128.0) as u8;
            data.extend([
                v,
                (x * 255 / w) as u8,
                if (x / 8 + y / 8) % 2 == 0 { 40 } else { 200 },
            ]);
        }
    }
    RgbImage::new(w, h, data).expect("synthetic")
}

/// Effort `e` at `level` (or the rate parameter `rd`): the file and the search's objectives.
fn compress(
    codec: &Codec,
    objective: &Objective,
    level: u32,
    rd: Option<f32>,
    e: u8,
) -> (Vec<u8>, Option<(f64, f64)>) {
    let limits = Limits::default();
    let img = image();
    let mut latents = match rd {
        Some(r) => codec.analyze_rd(&img, r, &limits),
        None => codec.analyze(&img, level, &limits),
    }
    .expect("analyze");
    let report = codec
        .search(&img, &mut latents, e, objective, &limits)
        .expect("search");
    let bytes = codec.encode(&latents).expect("encode");
    (bytes, report.map(|r| (r.before, r.after)))
}

#[test]
fn effort_1_lowers_the_objective_of_every_family_and_decodes() {
    let registry = registry();
    let limits = Limits::default();
    for entry in registry.families() {
        let codec = Codec::new(registry.load(entry).expect("loads")).expect("prepares");
        let level = 2;
        let objective = Objective::of(entry, level, None).expect("objective");
        let (plain, none) = compress(&codec, &objective, level, None, 0);
        assert!(none.is_none(), "effort 0 searches nothing");
        assert_eq!(
            plain,
            codec.compress(&image(), level, &limits).expect("compress"),
            "effort 0 is today's encoder"
        );
        let (bytes, report) = compress(&codec, &objective, level, None, 1);
        let (before, after) = report.expect("effort 1 searches");
        eprintln!(
            "{}-{level}: objective {before:.5} -> {after:.5}, {} -> {} bytes",
            entry.family,
            plain.len(),
            bytes.len()
        );
        assert!(
            after < before,
            "{}: effort 1 did not lower the objective ({before} -> {after})",
            entry.family
        );
        assert_ne!(
            bytes, plain,
            "{}: the kept latent must change the file",
            entry.family
        );
        let (decoded, model) =
            codec::decompress(&registry, &bytes, &limits).expect("the plain decoder reads it");
        assert_eq!(model, format!("{}-{level}", entry.family));
        assert_eq!((decoded.width, decoded.height), (96, 80));
        let (again, _) = compress(&codec, &objective, level, None, 1);
        assert_eq!(again, bytes, "{}: two runs differ", entry.family);
    }
}

#[test]
fn effort_works_at_a_rate_parameter() {
    let registry = registry();
    let entry = registry.family("mbt2018-mean-msssim").expect("shipped");
    let codec = Codec::new(registry.load(entry).expect("loads")).expect("prepares");
    let objective = Objective::of(entry, 0, Some(2.5)).expect("objective");
    let (bytes, report) = compress(&codec, &objective, 0, Some(2.5), 1);
    let (before, after) = report.expect("searched");
    assert!(after < before, "{before} -> {after}");
    let (decoded, model) =
        codec::decompress(&registry, &bytes, &Limits::default()).expect("decodes");
    assert_eq!(model, "mbt2018-mean-msssim");
    assert_eq!(decoded.width, 96);
}

#[test]
fn effort_above_the_maximum_is_refused() {
    let registry = registry();
    let entry = registry.family("b2018-gdn-128").expect("shipped");
    let codec = Codec::new(registry.load(entry).expect("loads")).expect("prepares");
    let objective = Objective::of(entry, 1, None).expect("objective");
    let img = image();
    let mut latents = codec.analyze(&img, 1, &Limits::default()).expect("analyze");
    let symbols = latents.y_symbols.clone();
    let err = codec
        .search(
            &img,
            &mut latents,
            MAX_EFFORT + 1,
            &objective,
            &Limits::default(),
        )
        .expect_err("refused");
    assert!(matches!(err, Error::Argument(_)), "{err}");
    assert!(
        err.to_string().contains("efforts are 0 (none) to 3"),
        "{err}"
    );
    assert_eq!(
        latents.y_symbols, symbols,
        "a refused search changes nothing"
    );
    assert!(codec::iterations(MAX_EFFORT).is_ok());
    // A manifest entry without the training objective cannot drive a search.
    let mut bare = entry.clone();
    bare.record.remove("lambdas");
    assert!(matches!(
        Objective::of(&bare, 1, None),
        Err(Error::BadModel(_))
    ));
}

/// On the GPU backend the search runs on the CPU and the codec says so in a note; the file is the
/// CPU search's choice of symbols, and it decodes. Skipped (visibly) without a wgpu adapter.
#[test]
fn the_gpu_backend_searches_on_the_cpu_and_says_so() {
    use codec_core::{Backend, BackendKind, BackendOptions};
    let opts = BackendOptions {
        kind: BackendKind::Gpu,
        adapter: std::env::var("TFCI_TEST_ADAPTER").ok(),
    };
    let backend = match Backend::select(&opts) {
        Ok(b) => b,
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but the GPU backend is unavailable: {e}")
        }
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED the_gpu_backend_searches_on_the_cpu_and_says_so: no wgpu adapter ({e})"
            );
            return;
        }
    };
    let registry = registry();
    let entry = registry.family("b2018-gdn-128").expect("shipped");
    let codec = Codec::with_backend(registry.load(entry).expect("loads"), &backend).expect("gpu");
    let objective = Objective::of(entry, 2, None).expect("objective");
    codec.take_notes();
    let (bytes, report) = compress(&codec, &objective, 2, None, 1);
    assert!(report.is_some());
    let notes = codec.take_notes();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("the latent search runs on the CPU")),
        "{notes:?}"
    );
    codec::decompress(&registry, &bytes, &Limits::default()).expect("decodes");
}

/// The search holds whole activations: over `--max-memory` it is refused before it allocates, with
/// what it would need, and the latents stay effort 0's; at the limit it runs and reports each
/// iteration to the progress callback (what `tfci-enc`'s bar shows).
#[test]
fn a_search_over_the_memory_limit_is_refused_and_one_within_reports_progress() {
    let registry = registry();
    let entry = registry
        .family("bmshj2018-factorized-msssim")
        .expect("shipped");
    let codec = Codec::new(registry.load(entry).expect("loads")).expect("prepares");
    let objective = Objective::of(entry, 1, None).expect("objective");
    let img = image();
    let mut latents = codec.analyze(&img, 1, &Limits::default()).expect("analyze");
    let symbols = latents.y_symbols.clone();
    let need = codec.search_memory(img.width, img.height, &objective);
    // More than the pixels and latents alone, and it grows with the image.
    assert!(need > 100 * (img.width * img.height) as u64, "{need}");
    assert!(codec.search_memory(2 * img.width, 2 * img.height, &objective) > 3 * need);
    let limits = Limits {
        max_memory: need - 1,
        ..Limits::default()
    };
    let err = codec
        .search(&img, &mut latents, 1, &objective, &limits)
        .expect_err("refused");
    assert!(matches!(err, Error::ImageSize { .. }), "{err}");
    assert!(
        err.to_string().contains("a search at effort 1 needs about"),
        "{err}"
    );
    assert_eq!(latents.y_symbols, symbols);
    let limits = Limits {
        max_memory: need,
        ..Limits::default()
    };
    // At the limit it runs, and reports every iteration once, in order, to a progress callback.
    let calls = std::sync::Mutex::new(Vec::new());
    let report = codec
        .search_with_progress(
            &img,
            &mut latents,
            1,
            &objective,
            &limits,
            &|done, total| calls.lock().expect("lock").push((done, total)),
        )
        .expect("search")
        .expect("effort 1 searches");
    let n = codec_core::codec::iterations(1).expect("effort 1");
    let calls = calls.into_inner().expect("lock");
    assert_eq!(report.iterations, n);
    assert_eq!(calls, (1..=n).map(|i| (i, n)).collect::<Vec<_>>());
}
