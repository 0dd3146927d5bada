//! `tfci-enc compress -e/--effort` and `dump -e` end to end with the shipped models (the fixture
//! models carry no training objective, which is refused): the search runs at a level, a rate
//! parameter, under `--target_bpp` and in batches; `-v` reports it; runs repeat byte for byte;
//! efforts above 3 are refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

fn fixture(arch: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(arch)
}

/// A scratch folder holding the 72 x 53 fixture image as `a.png` and `b.png`.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["a.png", "b.png"] {
        std::fs::copy(
            fixture("b2018-gdn").join("input.png"),
            dir.path().join(name),
        )
        .expect("copy");
    }
    dir
}

/// `tfci-enc --model-dir MODELS ARGS...` on the CPU backend, inside `dir`.
fn enc(dir: &Path, model_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tfci-enc"))
        .current_dir(dir)
        .env_remove("TFCI_MODEL_DIR")
        .env("TFCI_BACKEND", "cpu")
        .arg("--model-dir")
        .arg(model_dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("spawn")
}

fn ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "failed: {err}");
    err
}

fn fails(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "should fail: {err}");
    err
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).expect(name)
}

#[test]
fn effort_at_a_level_is_reported_and_repeats_byte_for_byte() {
    let dir = scratch();
    let d = dir.path();
    let m = models();
    ok(&enc(
        d,
        &m,
        &["compress", "b2018-gdn-128-2", "a.png", "plain.tfci"],
    ));
    let err = ok(&enc(
        d,
        &m,
        &[
            "-v",
            "compress",
            "-e",
            "1",
            "b2018-gdn-128-2",
            "a.png",
            "e1.tfci",
        ],
    ));
    assert!(
        err.contains("a.png: effort 1 at level 2: 20 iterations, objective "),
        "{err}"
    );
    ok(&enc(
        d,
        &m,
        &[
            "compress",
            "--effort",
            "1",
            "b2018-gdn-128-2",
            "a.png",
            "again.tfci",
        ],
    ));
    assert_eq!(read(d, "e1.tfci"), read(d, "again.tfci"));
    // Effort 0 is the default and today's encoder.
    ok(&enc(
        d,
        &m,
        &["compress", "-e", "0", "b2018-gdn-128-2", "a.png", "e0.tfci"],
    ));
    assert_eq!(read(d, "e0.tfci"), read(d, "plain.tfci"));
}

#[test]
fn effort_with_rd_parameter_target_bpp_batches_and_dump() {
    let dir = scratch();
    let d = dir.path();
    let m = models();
    let err = ok(&enc(
        d,
        &m,
        &[
            "-v",
            "compress",
            "-e",
            "1",
            "mbt2018-mean-msssim",
            "-r",
            "2.5",
            "a.png",
            "rd.tfci",
        ],
    ));
    assert!(
        err.contains("effort 1 at rd_parameter 2.5: 20 iterations"),
        "{err}"
    );
    let err = ok(&enc(
        d,
        &m,
        &[
            "-v",
            "compress",
            "-e",
            "1",
            "bmshj2018-factorized-msssim",
            "-b",
            "1.0",
            "a.png",
            "b.tfci",
        ],
    ));
    // Every level the search tried ran the latent search.
    assert!(err.matches(": effort 1 at level ").count() >= 2, "{err}");
    ok(&enc(
        d,
        &m,
        &[
            "compress",
            "-e",
            "1",
            "b2018-gdn-128-1",
            "--out-dir",
            "out",
            "a.png",
            "b.png",
        ],
    ));
    assert_eq!(read(d, "out/a.png.tfci"), read(d, "out/b.png.tfci"));
    let err = ok(&enc(
        d,
        &m,
        &[
            "-v",
            "dump",
            "-e",
            "1",
            "b2018-gdn-128-1",
            "-t",
            "y_symbols",
            "a.png",
            "a.npz",
        ],
    ));
    assert!(err.contains("effort 1: 20 iterations"), "{err}");
    assert!(d.join("a.npz").exists());
}

#[test]
fn effort_above_3_and_models_without_an_objective_are_refused() {
    let dir = scratch();
    let d = dir.path();
    let err = fails(&enc(
        d,
        &models(),
        &["compress", "-e", "4", "b2018-gdn-128-1", "a.png"],
    ));
    assert!(err.contains("4 is not in 0..=3"), "{err}");
    assert!(!d.join("a.png.tfci").exists());
    let err = fails(&enc(
        d,
        &fixture("b2018-gdn"),
        &["compress", "-e", "1", "fixture-b2018-gdn-1", "a.png"],
    ));
    assert!(err.contains("the manifest has no usable lambdas"), "{err}");
    assert!(!d.join("a.png.tfci").exists());
}
