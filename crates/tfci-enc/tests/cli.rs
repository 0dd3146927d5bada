//! The `tfci-enc` binary end to end on the fixture models.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(arch: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(arch)
}

fn enc() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tfci-enc"));
    c.env_remove("TFCI_MODEL_DIR");
    c
}

#[test]
fn compress_writes_input_dot_tfci() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("a.png");
    std::fs::copy(fixture("mbt2018-mean").join("input.png"), &input).expect("copy");
    let out = enc()
        .args(["--model-dir"])
        .arg(fixture("mbt2018-mean"))
        .args(["compress", "fixture-mbt2018-mean-2"])
        .arg(&input)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tfci = std::fs::read(dir.path().join("a.png.tfci")).expect("default output name");
    assert!(
        tfci.windows(22).any(|w| w == b"fixture-mbt2018-mean-2"),
        "model name in the file"
    );
    // No temporary file left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn unknown_model_fails_with_a_suggestion_and_no_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("a.png");
    std::fs::copy(fixture("mbt2018-mean").join("input.png"), &input).expect("copy");
    let out = enc()
        .arg("--model-dir")
        .arg(fixture("mbt2018-mean"))
        .args(["compress", "fixture-mbt2018-maen-2"])
        .arg(&input)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown model") && err.contains("fixture-mbt2018-mean-2"),
        "{err}"
    );
    assert!(!dir.path().join("a.png.tfci").exists());
}

#[test]
fn unreadable_image_fails_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("not-an-image.png");
    std::fs::write(&input, b"hello").expect("write");
    let out = enc()
        .arg("--model-dir")
        .arg(fixture("b2018-gdn"))
        .args(["compress", "fixture-b2018-gdn-1"])
        .arg(&input)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("failed decoding image"));
    assert!(!dir.path().join("not-an-image.png.tfci").exists());
}

#[test]
fn models_lists_the_families() {
    let out = enc()
        .arg("--model-dir")
        .arg(fixture("b2018-gdn"))
        .arg("models")
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("fixture-b2018-gdn-[1-4]"));
}
