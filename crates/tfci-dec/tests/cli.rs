//! `tfci-enc` then `tfci-dec` end to end with default output names, for every fixture family.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(arch: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(arch)
}

/// `tfci-enc` sits beside `tfci-dec` in the target folder (built for its own integration tests).
fn enc_path() -> PathBuf {
    let dec = Path::new(env!("CARGO_BIN_EXE_tfci-dec"));
    dec.with_file_name(format!("tfci-enc{}", std::env::consts::EXE_SUFFIX))
}

#[test]
fn compress_then_decompress_with_default_names() {
    for (arch, model) in [
        ("bmshj2018-factorized", "fixture-bmshj2018-factorized-3"),
        ("b2018-gdn", "fixture-b2018-gdn-4"),
        ("mbt2018-mean", "fixture-mbt2018-mean-1"),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("in.png");
        std::fs::copy(fixture(arch).join("input.png"), &input).expect("copy");
        let st = Command::new(enc_path())
            .arg("--model-dir")
            .arg(fixture(arch))
            .args(["compress", model])
            .arg(&input)
            .status()
            .expect("run tfci-enc (built by `cargo test --workspace`)");
        assert!(st.success(), "{arch}: compress");
        let out = Command::new(env!("CARGO_BIN_EXE_tfci-dec"))
            .env("TFCI_MODEL_DIR", fixture(arch))
            .arg("decompress")
            .arg(dir.path().join("in.png.tfci"))
            .output()
            .expect("run tfci-dec");
        assert!(
            out.status.success(),
            "{arch}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let png = std::fs::read(dir.path().join("in.png.tfci.png")).expect("default output name");
        assert_eq!(&png[1..4], b"PNG", "{arch}");
    }
}

#[test]
fn truncated_file_fails_without_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.tfci");
    std::fs::write(&bad, [0x0a, 0x40, 0x0a]).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_tfci-dec"))
        .env("TFCI_MODEL_DIR", fixture("b2018-gdn"))
        .arg("decompress")
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a .tfci file"));
    assert!(!dir.path().join("bad.tfci.png").exists());
}
