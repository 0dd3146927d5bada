//! The `tfci-enc` binary end to end on the fixture models (small random-weight models of each
//! architecture in tests/fixtures): every subcommand and flag, pipes, batches and bad input.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn fixture(arch: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(arch)
}

/// A scratch folder holding the fixture image as `a.png`.
fn scratch(arch: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(fixture(arch).join("input.png"), dir.path().join("a.png")).expect("copy");
    dir
}

/// `tfci-enc --model-dir FIXTURE ARGS...` run inside `dir`.
fn enc(dir: &Path, arch: &str, args: &[&str]) -> Output {
    run(
        Command::new(env!("CARGO_BIN_EXE_tfci-enc")),
        dir,
        arch,
        args,
        None,
    )
}

/// `tfci-dec`, built beside `tfci-enc` by `cargo test --workspace`.
fn dec(dir: &Path, arch: &str, args: &[&str]) -> Output {
    let path = Path::new(env!("CARGO_BIN_EXE_tfci-enc"))
        .with_file_name(format!("tfci-dec{}", std::env::consts::EXE_SUFFIX));
    run(Command::new(path), dir, arch, args, None)
}

fn run(mut c: Command, dir: &Path, arch: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    // The CPU backend unless a test asks otherwise: GPU parity is tests/gpu.rs's job.
    c.current_dir(dir)
        .env_remove("TFCI_MODEL_DIR")
        .env("TFCI_BACKEND", "cpu")
        .arg("--model-dir")
        .arg(fixture(arch))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    let mut pipe = child.stdin.take().expect("stdin");
    if let Some(bytes) = stdin {
        pipe.write_all(bytes).expect("write stdin");
    }
    drop(pipe);
    child.wait_with_output().expect("wait")
}

fn ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "failed: {err}");
    err
}

fn fails(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "should fail: {err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

/// [`fails`], keeping the message.
fn fails_logged(seen: &mut Vec<String>, out: &Output) -> String {
    let err = fails(out);
    seen.push(err.clone());
    err
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn size(dir: &Path, name: &str) -> usize {
    std::fs::read(dir.join(name)).expect("output").len()
}

/// 72x53 fixture image.
const PIXELS: f64 = 72.0 * 53.0;

fn bpp(bytes: usize) -> f64 {
    8.0 * bytes as f64 / PIXELS
}

#[test]
fn compress_default_and_explicit_output_names() {
    let d = scratch("mbt2018-mean");
    ok(&enc(
        d.path(),
        "mbt2018-mean",
        &["compress", "fixture-mbt2018-mean-2", "a.png"],
    ));
    ok(&enc(
        d.path(),
        "mbt2018-mean",
        &["compress", "fixture-mbt2018-mean-2", "a.png", "b.bin"],
    ));
    assert_eq!(files(d.path()), ["a.png", "a.png.tfci", "b.bin"]);
    let tfci = std::fs::read(d.path().join("a.png.tfci")).expect("read");
    assert_eq!(tfci, std::fs::read(d.path().join("b.bin")).expect("read"));
    assert!(tfci.windows(22).any(|w| w == b"fixture-mbt2018-mean-2"));
    // Replacing an earlier output is what tfci.py does.
    ok(&enc(
        d.path(),
        "mbt2018-mean",
        &["compress", "fixture-mbt2018-mean-1", "a.png"],
    ));
    assert_ne!(
        std::fs::read(d.path().join("a.png.tfci")).expect("read"),
        tfci
    );
}

#[test]
fn target_bpp_over_levels_picks_the_closest_level() {
    let d = scratch("bmshj2018-factorized");
    let arch = "bmshj2018-factorized";
    let levels: Vec<usize> = (1..=4)
        .map(|l| {
            let name = format!("l{l}.tfci");
            ok(&enc(
                d.path(),
                arch,
                &["compress", &format!("fixture-{arch}-{l}"), "a.png", &name],
            ));
            size(d.path(), &name)
        })
        .collect();
    assert!(
        levels.windows(2).all(|w| w[0] < w[1]),
        "fixture rates {levels:?}"
    );
    for (i, target) in [
        0.3,
        bpp(levels[1]) + 0.01,
        0.5 * (bpp(levels[2]) + bpp(levels[3])) - 0.01,
        5.0,
    ]
    .into_iter()
    .enumerate()
    {
        let out = format!("t{i}.tfci");
        // tfci.py's spelling and the kebab-case alias.
        let flag = if i % 2 == 0 {
            "--target_bpp"
        } else {
            "--target-bpp"
        };
        ok(&enc(
            d.path(),
            arch,
            &[
                "compress",
                &format!("fixture-{arch}"),
                "a.png",
                &out,
                flag,
                &target.to_string(),
            ],
        ));
        let got = bpp(size(d.path(), &out));
        let closest = levels
            .iter()
            .map(|&b| bpp(b))
            .min_by(|a, b| (a - target).abs().total_cmp(&(b - target).abs()))
            .expect("levels");
        assert_eq!(got, closest, "target {target}");
    }
}

#[test]
fn bpp_strict_never_exceeds_the_target() {
    let d = scratch("bmshj2018-factorized");
    let arch = "bmshj2018-factorized";
    let model = format!("fixture-{arch}");
    for (i, target) in [0.6, 0.65, 0.7, 0.8, 0.9, 1.0].into_iter().enumerate() {
        let out = format!("s{i}.tfci");
        let res = enc(
            d.path(),
            arch,
            &[
                "compress",
                &model,
                "a.png",
                &out,
                "-b",
                &target.to_string(),
                "--bpp_strict",
            ],
        );
        if res.status.success() {
            assert!(bpp(size(d.path(), &out)) <= target, "target {target}");
        } else {
            let err = fails(&res);
            assert!(err.contains("cannot compress to at most"), "{err}");
            assert!(!d.path().join(&out).exists());
        }
    }
    // Below the lowest level: an error, no file.
    let err = fails(&enc(
        d.path(),
        arch,
        &[
            "compress",
            &model,
            "a.png",
            "low.tfci",
            "-b",
            "0.01",
            "--bpp-strict",
        ],
    ));
    assert!(err.contains("cannot compress to at most 0.01 bpp"), "{err}");
    assert!(!d.path().join("low.tfci").exists());
}

#[test]
fn target_bpp_searches_the_rate_parameter_of_mbt() {
    let d = scratch("mbt2018-mean");
    let arch = "mbt2018-mean";
    for l in [3, 4] {
        ok(&enc(
            d.path(),
            arch,
            &[
                "compress",
                &format!("fixture-{arch}-{l}"),
                "a.png",
                &format!("l{l}.tfci"),
            ],
        ));
    }
    let (b3, b4) = (
        bpp(size(d.path(), "l3.tfci")),
        bpp(size(d.path(), "l4.tfci")),
    );
    assert!(b4 - b3 > 0.2, "fixture rates {b3} {b4}");
    let target = 0.5 * (b3 + b4);
    let err = ok(&enc(
        d.path(),
        arch,
        &[
            "-v",
            "compress",
            &format!("fixture-{arch}"),
            "a.png",
            "c.tfci",
            "-b",
            &target.to_string(),
            "--rd_parameter_tolerance",
            "0.0625",
        ],
    ));
    assert!(err.contains("rd_parameter"), "{err}");
    let got = bpp(size(d.path(), "c.tfci"));
    // Between levels 3 and 4 one rate-parameter step of 1/16 moves the rate by about (b4 - b3) / 16.
    assert!(
        (got - target).abs() <= (b4 - b3) / 16.0 * 2.0,
        "target {target}, got {got} ({b3}..{b4})"
    );
    let c = std::fs::read(d.path().join("c.tfci")).expect("read");
    assert!(c.windows(2).any(|w| w == b"RD"), "rate parameter recorded");
    let strict = enc(
        d.path(),
        arch,
        &[
            "compress",
            &format!("fixture-{arch}"),
            "a.png",
            "s.tfci",
            "-b",
            &target.to_string(),
            "--bpp_strict",
        ],
    );
    ok(&strict);
    assert!(bpp(size(d.path(), "s.tfci")) <= target);
    ok(&dec(d.path(), arch, &["decompress", "c.tfci"]));
    assert!(d.path().join("c.tfci.png").exists());
}

#[test]
fn rd_parameter_codes_between_levels_and_decodes() {
    let d = scratch("mbt2018-mean");
    let arch = "mbt2018-mean";
    ok(&enc(
        d.path(),
        arch,
        &[
            "compress",
            "fixture-mbt2018-mean",
            "-r",
            "3.5",
            "a.png",
            "r.tfci",
        ],
    ));
    ok(&enc(
        d.path(),
        arch,
        &[
            "compress",
            "fixture-mbt2018-mean",
            "--rd-parameter",
            "3",
            "a.png",
            "r3.tfci",
        ],
    ));
    ok(&enc(
        d.path(),
        arch,
        &["compress", "fixture-mbt2018-mean-3", "a.png", "l3.tfci"],
    ));
    // An integral rate parameter is the level: the same file.
    assert_eq!(
        std::fs::read(d.path().join("r3.tfci")).expect("r3"),
        std::fs::read(d.path().join("l3.tfci")).expect("l3")
    );
    let r = std::fs::read(d.path().join("r.tfci")).expect("r");
    assert_ne!(r, std::fs::read(d.path().join("l3.tfci")).expect("l3"));
    ok(&dec(d.path(), arch, &["decompress", "r.tfci", "r.png"]));
    assert!(d.path().join("r.png").exists());
    // Out of range, with a level, or on a family without a rate parameter: clear errors.
    let err = fails(&enc(
        d.path(),
        arch,
        &[
            "compress",
            "fixture-mbt2018-mean",
            "-r",
            "9",
            "a.png",
            "x.tfci",
        ],
    ));
    assert!(err.contains("outside"), "{err}");
    let err = fails(&enc(
        d.path(),
        arch,
        &[
            "compress",
            "fixture-mbt2018-mean-2",
            "-r",
            "2.5",
            "a.png",
            "x.tfci",
        ],
    ));
    assert!(err.contains("without the level"), "{err}");
    let b = scratch("b2018-gdn");
    let err = fails(&enc(
        b.path(),
        "b2018-gdn",
        &["compress", "fixture-b2018-gdn", "-r", "2.5", "a.png"],
    ));
    assert!(err.contains("levels only"), "{err}");
    let err = fails(&enc(
        b.path(),
        "b2018-gdn",
        &["compress", "fixture-b2018-gdn", "a.png"],
    ));
    assert!(err.contains("is a family"), "{err}");
    assert!(!d.path().join("x.tfci").exists());
    assert_eq!(files(b.path()), ["a.png"]);
}

#[test]
fn pipes_stdin_to_stdout_and_into_tfci_dec() {
    let d = scratch("b2018-gdn");
    let arch = "b2018-gdn";
    ok(&enc(
        d.path(),
        arch,
        &["compress", "fixture-b2018-gdn-2", "a.png"],
    ));
    let file = std::fs::read(d.path().join("a.png.tfci")).expect("read");
    let png = std::fs::read(d.path().join("a.png")).expect("read");
    let exe = || Command::new(env!("CARGO_BIN_EXE_tfci-enc"));
    for args in [
        &["compress", "fixture-b2018-gdn-2", "-", "-"][..],
        &["compress", "fixture-b2018-gdn-2", "-"],
    ] {
        let out = run(exe(), d.path(), arch, args, Some(&png));
        let err = ok(&out);
        assert_eq!(out.stdout, file, "stdout is the data");
        assert!(err.is_empty(), "nothing else on stderr: {err}");
    }
    let dec_exe = Path::new(env!("CARGO_BIN_EXE_tfci-enc"))
        .with_file_name(format!("tfci-dec{}", std::env::consts::EXE_SUFFIX));
    let out = run(
        Command::new(&dec_exe),
        d.path(),
        arch,
        &["decompress", "-", "-"],
        Some(&file),
    );
    ok(&out);
    ok(&dec(d.path(), arch, &["decompress", "a.png.tfci", "b.png"]));
    assert_eq!(
        out.stdout,
        std::fs::read(d.path().join("b.png")).expect("read")
    );
    // Stdin into a file.
    ok(&run(
        Command::new(&dec_exe),
        d.path(),
        arch,
        &["decompress", "-", "c.png"],
        Some(&file),
    ));
    assert!(d.path().join("c.png").exists());
}

#[test]
fn batch_with_one_bad_input_completes_the_others() {
    let d = scratch("b2018-gdn");
    let arch = "b2018-gdn";
    std::fs::copy(d.path().join("a.png"), d.path().join("c.png")).expect("copy");
    std::fs::write(d.path().join("bad.png"), b"not an image").expect("write");
    let out = enc(
        d.path(),
        arch,
        &[
            "compress",
            "fixture-b2018-gdn-1",
            "--out-dir",
            "out",
            "a.png",
            "bad.png",
            "c.png",
        ],
    );
    let err = fails(&out);
    assert!(err.contains("bad.png is not an image"), "{err}");
    assert!(
        err.contains("compressed 2 images") && err.contains("1 failed"),
        "summary: {err}"
    );
    assert_eq!(files(&d.path().join("out")), ["a.png.tfci", "c.png.tfci"]);
    // Three paths without --out-dir: each an input, written beside it.
    std::fs::remove_file(d.path().join("bad.png")).expect("rm");
    std::fs::copy(d.path().join("a.png"), d.path().join("e.png")).expect("copy");
    let err = ok(&enc(
        d.path(),
        arch,
        &["compress", "fixture-b2018-gdn-1", "a.png", "c.png", "e.png"],
    ));
    assert!(err.contains("compressed 3 images"), "{err}");
    assert!(d.path().join("e.png.tfci").exists());
    // And back, in a batch too.
    let err = ok(&dec(
        d.path(),
        arch,
        &[
            "decompress",
            "-o",
            "png",
            "a.png.tfci",
            "c.png.tfci",
            "e.png.tfci",
        ],
    ));
    assert!(err.contains("decompressed 3 images"), "{err}");
    assert_eq!(
        files(&d.path().join("png")),
        ["a.png.tfci.png", "c.png.tfci.png", "e.png.tfci.png"]
    );
    // -q: nothing but errors.
    let err = ok(&enc(
        d.path(),
        arch,
        &[
            "-q",
            "compress",
            "fixture-b2018-gdn-1",
            "a.png",
            "c.png",
            "e.png",
        ],
    ));
    assert!(err.is_empty(), "{err}");
}

#[test]
fn no_clobber_and_never_losing_the_users_files() {
    let d = scratch("b2018-gdn");
    let arch = "b2018-gdn";
    std::fs::write(d.path().join("a.png.tfci"), b"keep me").expect("write");
    let err = fails(&enc(
        d.path(),
        arch,
        &["compress", "fixture-b2018-gdn-1", "a.png", "--no-clobber"],
    ));
    assert!(err.contains("exists (--no-clobber)"), "{err}");
    assert_eq!(
        std::fs::read(d.path().join("a.png.tfci")).expect("read"),
        b"keep me"
    );
    // The input is never an output.
    let err = fails(&enc(
        d.path(),
        arch,
        &["compress", "fixture-b2018-gdn-1", "a.png", "a.png"],
    ));
    assert!(err.contains("overwrite the input"), "{err}");
    // Two paths are INPUT OUTPUT: an existing image is not replaced by compressed data.
    std::fs::copy(d.path().join("a.png"), d.path().join("b.png")).expect("copy");
    let before = std::fs::read(d.path().join("b.png")).expect("read");
    let err = fails(&enc(
        d.path(),
        arch,
        &["compress", "fixture-b2018-gdn-1", "a.png", "b.png"],
    ));
    assert!(
        err.contains("holds an image") && err.contains("--out-dir"),
        "{err}"
    );
    assert_eq!(std::fs::read(d.path().join("b.png")).expect("read"), before);
    assert_eq!(files(d.path()), ["a.png", "a.png.tfci", "b.png"]);
}

#[test]
fn bad_inputs_fail_with_one_line_and_no_output() {
    let d = scratch("b2018-gdn");
    let arch = "b2018-gdn";
    let m = "fixture-b2018-gdn-1";
    let mut seen = Vec::new();
    let err = fails_logged(
        &mut seen,
        &enc(d.path(), arch, &["compress", m, "missing.png"]),
    );
    assert!(err.contains("cannot read missing.png"), "{err}");
    std::fs::write(d.path().join("text.png"), b"hello").expect("write");
    let err = fails_logged(
        &mut seen,
        &enc(d.path(), arch, &["compress", m, "text.png"]),
    );
    assert!(err.contains("text.png is not an image"), "{err}");
    // A PNG signature with a broken body.
    let mut broken = std::fs::read(d.path().join("a.png")).expect("read");
    broken.truncate(60);
    std::fs::write(d.path().join("broken.png"), &broken).expect("write");
    let err = fails_logged(
        &mut seen,
        &enc(d.path(), arch, &["compress", m, "broken.png"]),
    );
    assert!(
        err.contains("broken.png is not a readable Png image"),
        "{err}"
    );
    let err = fails_logged(
        &mut seen,
        &enc(
            d.path(),
            arch,
            &["compress", "fixture-b2018-gdm-1", "a.png"],
        ),
    );
    assert!(
        err.contains("unknown model") && err.contains("fixture-b2018-gdn-1"),
        "{err}"
    );
    // A family without a level names its levels.
    let err = fails_logged(
        &mut seen,
        &enc(d.path(), arch, &["compress", "fixture-b2018-gdn", "a.png"]),
    );
    assert!(
        err.contains("fixture-b2018-gdn-1 to fixture-b2018-gdn-4"),
        "{err}"
    );
    // A misspelt tensor name is named.
    let err = fails_logged(
        &mut seen,
        &enc(d.path(), arch, &["dump", m, "--tensor", "nope", "a.png"]),
    );
    assert!(err.contains("unknown tensor \"nope\""), "{err}");
    // Output folders that cannot be written: missing, or a file.
    let err = fails_logged(
        &mut seen,
        &enc(d.path(), arch, &["compress", m, "a.png", "nowhere/a.tfci"]),
    );
    assert!(
        err.contains("cannot write into the folder nowhere"),
        "{err}"
    );
    let err = fails_logged(
        &mut seen,
        &enc(d.path(), arch, &["compress", m, "a.png", "a.png/x.tfci"]),
    );
    assert!(err.contains("cannot write into the folder a.png"), "{err}");
    for e in &seen {
        assert_eq!(e.lines().count(), 1, "one line: {e}");
    }
    assert_eq!(files(d.path()), ["a.png", "broken.png", "text.png"]);
}

#[cfg(unix)]
#[test]
fn read_only_output_folder() {
    use std::os::unix::fs::PermissionsExt;
    let d = scratch("b2018-gdn");
    let ro = d.path().join("ro");
    std::fs::create_dir(&ro).expect("mkdir");
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    if std::fs::write(ro.join("probe"), b"").is_ok() {
        // Running as root: permissions do not stop writes; the other folder cases still run.
        eprintln!("skipped: root ignores folder permissions");
        return;
    }
    let err = fails(&enc(
        d.path(),
        "b2018-gdn",
        &["compress", "fixture-b2018-gdn-1", "a.png", "ro/a.tfci"],
    ));
    assert!(err.contains("cannot write into the folder ro"), "{err}");
}

#[test]
fn image_formats_and_conversions() {
    let d = scratch("b2018-gdn");
    let arch = "b2018-gdn";
    let rgb = image::open(d.path().join("a.png")).expect("open");
    let cases: Vec<(&str, image::DynamicImage, bool)> = vec![
        ("a.jpg", rgb.clone(), false),
        ("a.bmp", rgb.clone(), false),
        ("a.tif", rgb.clone(), false),
        (
            "a.webp",
            image::DynamicImage::ImageRgba8(rgb.to_rgba8()),
            true,
        ),
        (
            "gray.png",
            image::DynamicImage::ImageLuma8(rgb.to_luma8()),
            true,
        ),
        (
            "alpha.png",
            image::DynamicImage::ImageRgba8(rgb.to_rgba8()),
            true,
        ),
        (
            "deep.png",
            image::DynamicImage::ImageRgb16(rgb.to_rgb16()),
            true,
        ),
    ];
    for (name, img, converted) in cases {
        img.save(d.path().join(name)).expect("save");
        let err = ok(&enc(
            d.path(),
            arch,
            &["compress", "fixture-b2018-gdn-1", name],
        ));
        assert_eq!(
            err.contains("converted to 8-bit RGB"),
            converted,
            "{name}: {err}"
        );
        assert!(d.path().join(format!("{name}.tfci")).exists(), "{name}");
    }
    // -q silences the note.
    let err = ok(&enc(
        d.path(),
        arch,
        &["-q", "compress", "fixture-b2018-gdn-1", "gray.png"],
    ));
    assert!(err.is_empty(), "{err}");
}

#[test]
fn models_tensors_and_help() {
    let d = scratch("mbt2018-mean");
    let out = enc(d.path(), "mbt2018-mean", &["models"]);
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("fixture-mbt2018-mean-[1-4]") && text.contains("mbt2018-mean"),
        "{text}"
    );
    let out = enc(
        d.path(),
        "mbt2018-mean",
        &["tensors", "fixture-mbt2018-mean-1"],
    );
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    for t in [
        "y_symbols",
        "z_symbols",
        "scale_indexes",
        "x_hat",
        "int32",
        "float32",
    ] {
        assert!(text.contains(t), "{t}: {text}");
    }
    let out = enc(d.path(), "b2018-gdn", &["tensors", "fixture-b2018-gdn-1"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("z_symbols"));
    for sub in [
        &["--help"][..],
        &["compress", "--help"],
        &["dump", "--help"],
        &["models", "--help"],
        &["tensors", "--help"],
    ] {
        let out = enc(d.path(), "b2018-gdn", sub);
        ok(&out);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Example"), "{sub:?}: {text}");
    }
    let out = enc(d.path(), "b2018-gdn", &["compress", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--target_bpp",
        "--bpp_strict",
        "--rd_parameter",
        "--rd_parameter_tolerance",
        "--target-bpp",
        "--out-dir",
        "--no-clobber",
        "--backend",
        "--model-dir",
    ] {
        assert!(text.contains(flag), "{flag}: {text}");
    }
}

/// Reads one array of an `.npz` back: its shape and raw little-endian values.
fn npz_array(path: &Path, name: &str) -> (Vec<u64>, String, Vec<u8>) {
    let file = std::fs::File::open(path).expect("open npz");
    let mut zip = zip::ZipArchive::new(file).expect("zip");
    let entry = zip.by_name(&format!("{name}.npy")).expect("member");
    let npy = npyz::NpyFile::new(entry).expect("npy");
    let shape = npy.shape().to_vec();
    let dtype = npy.dtype().descr();
    let mut data = Vec::new();
    let mut reader = npy.into_inner();
    std::io::Read::read_to_end(&mut reader, &mut data).expect("data");
    (shape, dtype, data)
}

#[test]
fn dump_writes_an_npz_numpy_reads() {
    let d = scratch("mbt2018-mean");
    let arch = "mbt2018-mean";
    ok(&enc(
        d.path(),
        arch,
        &[
            "dump",
            "fixture-mbt2018-mean-2",
            "--tensor",
            "y",
            "y_symbols",
            "z_symbols",
            "x_hat",
            "a.png",
        ],
    ));
    let npz = d.path().join("a.png.npz");
    let (shape, dtype, _) = npz_array(&npz, "y");
    assert_eq!((shape, dtype.as_str()), (vec![1, 12, 4, 5], "'<f4'"));
    let (shape, dtype, _) = npz_array(&npz, "z_symbols");
    assert_eq!((shape, dtype.as_str()), (vec![1, 8, 1, 2], "'<i4'"));
    let (shape, _, data) = npz_array(&npz, "x_hat");
    assert_eq!(shape, vec![1, 3, 53, 72]);
    assert_eq!(data.len(), 3 * 53 * 72 * 4);
    // -t repeated, explicit output; an unknown name is an error naming the known ones.
    ok(&enc(
        d.path(),
        arch,
        &[
            "dump",
            "fixture-mbt2018-mean-2",
            "-t",
            "scales",
            "-t",
            "means",
            "a.png",
            "b.npz",
        ],
    ));
    assert_eq!(
        npz_array(&d.path().join("b.npz"), "means").0,
        vec![1, 12, 4, 5]
    );
    let err = fails(&enc(
        d.path(),
        arch,
        &[
            "dump",
            "fixture-mbt2018-mean-2",
            "--tensor",
            "y",
            "a.png",
            "c.npz",
            "extra",
        ],
    ));
    assert!(err.contains("at most one OUTPUT"), "{err}");
    let b = scratch("b2018-gdn");
    let err = fails(&enc(
        b.path(),
        "b2018-gdn",
        &["dump", "fixture-b2018-gdn-1", "-t", "scales", "a.png"],
    ));
    assert!(
        err.contains("not a tensor") || err.contains("has no tensor"),
        "{err}"
    );
}

#[test]
fn backend_flags() {
    let d = scratch("b2018-gdn");
    let arch = "b2018-gdn";
    let err = ok(&enc(
        d.path(),
        arch,
        &[
            "-v",
            "--backend",
            "cpu",
            "compress",
            "fixture-b2018-gdn-1",
            "a.png",
        ],
    ));
    assert!(err.contains("backend cpu"), "{err}");
    let err = fails(&enc(
        d.path(),
        arch,
        &[
            "--backend",
            "gpu",
            "--adapter",
            "no-such-adapter-xyz",
            "compress",
            "fixture-b2018-gdn-1",
            "a.png",
            "x.tfci",
        ],
    ));
    assert!(err.contains("no usable GPU backend"), "{err}");
    assert!(!d.path().join("x.tfci").exists());
    let bad = enc(
        d.path(),
        arch,
        &[
            "--backend",
            "tpu",
            "compress",
            "fixture-b2018-gdn-1",
            "a.png",
        ],
    );
    assert_eq!(bad.status.code(), Some(2), "usage error");
    let out = enc(d.path(), arch, &["adapters"]);
    ok(&out);
    assert!(!out.stdout.is_empty());
    // Without a desktop session Mesa's device-select layer used to print its libwayland error.
    let mut c = Command::new(env!("CARGO_BIN_EXE_tfci-enc"));
    c.env_remove("XDG_RUNTIME_DIR")
        .env_remove("NODEVICE_SELECT");
    let out = run(c, d.path(), arch, &["adapters"], None);
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("XDG_RUNTIME_DIR"), "{stderr}");
}

/// tfci.py's underscore spellings and the kebab-case ones are the same flags.
#[test]
fn underscore_and_kebab_aliases() {
    let d = scratch("b2018-gdn");
    let spellings = [
        [
            "--model_dir",
            "--out_dir",
            "--no_clobber",
            "--rd_parameter_tolerance",
        ],
        [
            "--model-dir",
            "--out-dir",
            "--no-clobber",
            "--rd-parameter-tolerance",
        ],
    ];
    for (i, [model_dir, out_dir, no_clobber, tolerance]) in spellings.into_iter().enumerate() {
        let out = Command::new(env!("CARGO_BIN_EXE_tfci-enc"))
            .current_dir(d.path())
            .env_remove("TFCI_MODEL_DIR")
            .env("TFCI_BACKEND", "cpu")
            .arg(model_dir)
            .arg(fixture("b2018-gdn"))
            .args([
                "compress",
                "fixture-b2018-gdn-1",
                out_dir,
                "o",
                no_clobber,
                tolerance,
                "0.1",
                "a.png",
            ])
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        if i == 0 {
            assert!(out.status.success(), "{err}");
        } else {
            // The same flags: the first spelling's output is there and --no-clobber keeps it.
            assert!(err.contains("exists (--no-clobber)"), "{err}");
        }
    }
    assert_eq!(files(&d.path().join("o")), ["a.png.tfci"]);
}

/// Messages are best effort: with stderr (or stdout, for a listing) closed by its reader, as in
/// `tfci-enc -v compress ... 2>&1 | head -1`, the work still finishes and nothing panics (exit 101).
#[test]
fn closed_stderr_or_stdout_is_not_a_panic() {
    let d = scratch("b2018-gdn");
    let spawn = |args: &[&str], close_stdout: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tfci-enc"));
        c.current_dir(d.path())
            .env("TFCI_BACKEND", "cpu")
            .arg("--model-dir")
            .arg(fixture("b2018-gdn"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn");
        // Close the read end before the binary writes anything.
        if close_stdout {
            drop(child.stdout.take());
        }
        drop(child.stderr.take());
        child.wait().expect("wait")
    };
    let status = spawn(
        &["-v", "compress", "fixture-b2018-gdn-2", "a.png", "p.tfci"],
        false,
    );
    assert_eq!(status.code(), Some(0));
    assert!(d.path().join("p.tfci").is_file());
    let status = spawn(&["models"], true);
    assert_eq!(status.code(), Some(0));
}

/// The first call keeps its packed weights in `TFCI_CACHE_DIR` and says so on `-v`; the next maps
/// them (nothing new to keep) and writes the same file; `TFCI_CACHE_DIR=` keeps none.
#[test]
fn packed_weights_are_kept_between_calls() {
    let arch = "mbt2018-mean";
    let d = scratch(arch);
    let cache = tempfile::tempdir().expect("tempdir");
    let call = |cache_dir: &Path, out: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tfci-enc"));
        c.env("TFCI_CACHE_DIR", cache_dir);
        let args = ["-v", "compress", "fixture-mbt2018-mean-2", "a.png", out];
        ok(&run(c, d.path(), arch, &args, None))
    };
    let first = call(cache.path(), "1.tfci");
    assert!(first.contains("packed weights kept in"), "{first}");
    let kept = std::fs::read_dir(cache.path().join("packed"))
        .expect("the cache folder")
        .count();
    assert_eq!(kept, 1, "one folder for the one model file");
    let second = call(cache.path(), "2.tfci");
    assert!(!second.contains("packed weights kept"), "{second}");
    let none = tempfile::tempdir().expect("tempdir");
    let mut c = Command::new(env!("CARGO_BIN_EXE_tfci-enc"));
    // Where the defaults would put it, were the empty variable not heeded.
    c.env("TFCI_CACHE_DIR", "")
        .env("XDG_CACHE_HOME", none.path())
        .env("HOME", none.path());
    let args = [
        "-v",
        "compress",
        "fixture-mbt2018-mean-2",
        "a.png",
        "3.tfci",
    ];
    let third = ok(&run(c, d.path(), arch, &args, None));
    assert!(!third.contains("packed weights kept"), "{third}");
    assert_eq!(std::fs::read_dir(none.path()).expect("empty").count(), 0);
    let read = |name: &str| std::fs::read(d.path().join(name)).expect("output");
    assert_eq!(read("1.tfci"), read("2.tfci"));
    assert_eq!(read("1.tfci"), read("3.tfci"));
}
