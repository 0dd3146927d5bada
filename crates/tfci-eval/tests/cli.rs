//! End-to-end tests of the `tfci-eval` binary on small generated images (no shared data needed).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tfci-eval"))
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

/// A textured test image (gradients plus a deterministic pseudo-random pattern).
fn make_image(w: u32, h: u32, seed: u32) -> image::RgbImage {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    image::RgbImage::from_fn(w, h, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state % 32) as u8;
        image::Rgb([
            ((x * 255 / w) as u8).saturating_add(n / 2),
            ((y * 255 / h) as u8).saturating_add(n / 4),
            (((x + y) * 3 % 256) as u8) / 2 + n,
        ])
    })
}

fn save(img: &image::RgbImage, path: &Path) {
    img.save(path).expect("write test image");
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn compare_prints_metrics_as_json_and_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = make_image(200, 176, 1);
    let mut b = a.clone();
    for (i, p) in b.pixels_mut().enumerate() {
        if i % 7 == 0 {
            p.0[0] = p.0[0].saturating_add(9);
        }
    }
    let (pa, pb) = (dir.path().join("a.png"), dir.path().join("b.png"));
    save(&a, &pa);
    save(&b, &pb);

    let out = bin()
        .arg("compare")
        .arg(&pa)
        .arg(&pb)
        .arg("--json")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let psnr = v["psnr"].as_f64().expect("psnr");
    let ssim = v["ssim"].as_f64().expect("ssim");
    let msssim = v["msssim"].as_f64().expect("msssim");
    let db = v["msssim_db"].as_f64().expect("msssim_db");
    assert!(psnr > 30.0 && psnr < 60.0, "psnr {psnr}");
    assert!(ssim > 0.5 && ssim < 1.0, "ssim {ssim}");
    assert!(msssim > 0.5 && msssim < 1.0, "msssim {msssim}");
    assert!((db + 10.0 * (1.0 - msssim).log10()).abs() < 1e-9);

    // Identical images: infinite PSNR, SSIM 1.
    let out = bin()
        .arg("compare")
        .arg(&pa)
        .arg(&pa)
        .arg("--json")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["psnr"], "inf");
    assert!((v["ssim"].as_f64().expect("ssim") - 1.0).abs() < 1e-12);

    let out = bin()
        .arg("compare")
        .arg(&pa)
        .arg(&pb)
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("PSNR:") && text.contains("MS-SSIM dB:"),
        "{text}"
    );
}

#[test]
fn compare_rejects_bad_input_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pa, pb) = (dir.path().join("a.png"), dir.path().join("b.png"));
    save(&make_image(200, 176, 1), &pa);
    save(&make_image(176, 200, 1), &pb);
    let out = bin()
        .arg("compare")
        .arg(&pa)
        .arg(&pb)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("differ in size"), "{}", stderr(&out));

    let txt = dir.path().join("not-an-image.png");
    std::fs::write(&txt, "hello").expect("write");
    let out = bin()
        .arg("compare")
        .arg(&pa)
        .arg(&txt)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not-an-image.png"),
        "{}",
        stderr(&out)
    );

    // Too small for MS-SSIM: the other metrics still come, with a note.
    let (sa, sb) = (dir.path().join("sa.png"), dir.path().join("sb.png"));
    save(&make_image(64, 48, 1), &sa);
    save(&make_image(64, 48, 2), &sb);
    let out = bin()
        .arg("compare")
        .arg(&sa)
        .arg(&sb)
        .arg("--json")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(v["psnr"].as_f64().is_some());
    assert!(v["msssim"].is_null());
    assert!(v["notes"].to_string().contains("MS-SSIM"));
}

#[test]
fn small_run_writes_every_output_and_notes_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let images = dir.path().join("images");
    std::fs::create_dir(&images).expect("mkdir");
    save(&make_image(200, 176, 1), &images.join("a.png"));
    save(&make_image(176, 200, 2), &images.join("b.png"));
    std::fs::write(images.join("readme.txt"), "not an image").expect("write");
    let published = dir.path().join("published.csv");
    std::fs::write(
        &published,
        "method,metric,bpp,value,msssim_db,source\n\
         ref,psnr,0.2,25.0,,t\nref,psnr,1.0,33.0,,t\nref,msssim,0.2,0.9,,t\nref,msssim,1.0,0.98,,t\n",
    )
    .expect("write");
    // An empty PATH folder: cwebp cannot be found.
    let empty_path = dir.path().join("bin");
    std::fs::create_dir(&empty_path).expect("mkdir");
    let out_dir = dir.path().join("out");
    let out = bin()
        .env("PATH", &empty_path)
        .args(["run", "--jpeg-qualities", "30,50,80", "--external", "webp"])
        .arg("--images")
        .arg(&images)
        .arg("--model-dir")
        .arg(repo_root().join("tests/fixtures/mbt2018-mean"))
        .arg("--published")
        .arg(&published)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    for f in [
        "per_image.csv",
        "means.csv",
        "report.md",
        "rd_psnr.png",
        "rd_psnr.svg",
        "rd_msssim.png",
        "rd_msssim.svg",
    ] {
        let p = out_dir.join(f);
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "{f} missing or empty");
    }
    let csv = std::fs::read_to_string(out_dir.join("per_image.csv")).expect("csv");
    let header = csv.lines().next().expect("header");
    assert_eq!(
        header,
        "codec,setting,image,width,height,bytes,bpp,n_compression,psnr,ssim,msssim,msssim_db,psnr_y,psnr_cb,psnr_cr,encode_s,decode_s,backend"
    );
    // 2 images x (3 JPEG qualities + 4 fixture levels).
    assert_eq!(csv.lines().count(), 1 + 2 * (3 + 4), "{csv}");
    let means = std::fs::read_to_string(out_dir.join("means.csv")).expect("means");
    assert_eq!(
        means.lines().next().expect("header"),
        "codec,setting,n_images,mean_bytes,bpp,n_compression,psnr,ssim,msssim,msssim_db,psnr_y,psnr_cb,psnr_cr,encode_s,decode_s,backend"
    );
    // One mean per (codec, setting), each over both images, with every column filled.
    assert_eq!(means.lines().count(), 1 + 3 + 4, "{means}");
    for line in means.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        assert_eq!(cols.len(), 16, "{line}");
        assert_eq!(cols[2], "2", "{line}");
        assert!(cols.iter().all(|c| !c.is_empty()), "{line}");
    }
    assert!(csv.contains("jpeg,q=50,a.png,200,176,"));
    assert!(csv.contains("fixture-mbt2018-mean,level=1,b.png,176,200,"));
    let report = std::fs::read_to_string(out_dir.join("report.md")).expect("report");
    for needle in [
        "## Table 1",
        "## Table 2",
        "## BD-rate against JPEG",
        "fixture-mbt2018-mean",
        "webp skipped: cwebp and dwebp not found",
        "readme.txt",
        "ref (published)",
    ] {
        assert!(
            report.contains(needle),
            "report lacks {needle:?}:\n{report}"
        );
    }
    let err = stderr(&out);
    assert!(err.contains("readme.txt") && err.contains("cwebp"), "{err}");
    let png = image::open(out_dir.join("rd_psnr.png")).expect("png");
    assert_eq!((png.width(), png.height()), (900, 600));
}

#[test]
fn empty_folder_still_writes_a_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let images = dir.path().join("empty");
    std::fs::create_dir(&images).expect("mkdir");
    let out_dir = dir.path().join("out");
    let out = bin()
        .args([
            "run",
            "--models",
            "none",
            "--external",
            "none",
            "--jpeg-qualities",
            "50",
        ])
        .arg("--images")
        .arg(&images)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no readable image"),
        "{}",
        stderr(&out)
    );
    let report = std::fs::read_to_string(out_dir.join("report.md")).expect("report");
    assert!(report.contains("no readable image"), "{report}");

    // A folder that does not exist: the same.
    let out = bin()
        .args(["run", "--models", "none", "--external", "none"])
        .arg("--images")
        .arg(dir.path().join("missing"))
        .arg("--out")
        .arg(&out_dir)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}

/// `--efforts 0,1`: the effort-1 files are a codec of their own (FAMILY-e1) beside the plain one,
/// searched with the shipped model's objective; an effort above 3 is skipped with a warning.
#[test]
fn efforts_are_codecs_of_their_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let images = dir.path().join("images");
    std::fs::create_dir(&images).expect("mkdir");
    save(&make_image(64, 48, 3), &images.join("a.png"));
    let out_dir = dir.path().join("out");
    let out = bin()
        .args(["run", "--models", "b2018-gdn-128-1", "--efforts", "0,1,5"])
        .args(["--external", "none", "--jpeg-qualities", "30,60"])
        .arg("--images")
        .arg(&images)
        .arg("--model-dir")
        .arg(repo_root().join("models"))
        .arg("--published")
        .arg(dir.path().join("none.csv"))
        .arg("--out")
        .arg(&out_dir)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("effort 5 is outside 0..=3; skipped"),
        "{}",
        stderr(&out)
    );
    let csv = std::fs::read_to_string(out_dir.join("per_image.csv")).expect("csv");
    let size = |codec: &str| -> u64 {
        let prefix = format!("{codec},level=1,a.png,64,48,");
        let line = csv.lines().find(|l| l.starts_with(&prefix));
        let line = line.unwrap_or_else(|| panic!("no {codec} row in\n{csv}"));
        line[prefix.len()..]
            .split(',')
            .next()
            .and_then(|b| b.parse().ok())
            .expect("bytes")
    };
    assert!(size("b2018-gdn-128") > 0);
    assert!(size("b2018-gdn-128-e1") > 0);
    assert_eq!(csv.lines().count(), 1 + 2 + 2, "{csv}");
}
