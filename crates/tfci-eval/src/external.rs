//! Optional codecs driven through their command-line tools (WebP, AVIF, JPEG XL). Each needs an
//! encoder and a decoder on `PATH`; a codec whose tools are missing is skipped with a note.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use codec_core::RgbImage;

/// An external codec family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Webp,
    Avif,
    Jxl,
}

impl Tool {
    /// Parses `webp`, `avif` or `jxl`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "webp" => Some(Self::Webp),
            "avif" => Some(Self::Avif),
            "jxl" | "jpegxl" | "jpeg-xl" => Some(Self::Jxl),
            _ => None,
        }
    }

    /// The codec name used in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Webp => "webp",
            Self::Avif => "avif",
            Self::Jxl => "jxl",
        }
    }

    /// Encoder and decoder program names.
    pub fn programs(self) -> [&'static str; 2] {
        match self {
            Self::Webp => ["cwebp", "dwebp"],
            Self::Avif => ["avifenc", "avifdec"],
            Self::Jxl => ["cjxl", "djxl"],
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Self::Webp => "webp",
            Self::Avif => "avif",
            Self::Jxl => "jxl",
        }
    }

    /// Finds both programs on `PATH`; `Err` names the missing ones.
    pub fn locate(self) -> Result<[PathBuf; 2], String> {
        let [e, d] = self.programs();
        match (which(e), which(d)) {
            (Some(pe), Some(pd)) => Ok([pe, pd]),
            (pe, pd) => {
                let missing: Vec<&str> = [(pe, e), (pd, d)]
                    .into_iter()
                    .filter(|(p, _)| p.is_none())
                    .map(|(_, n)| n)
                    .collect();
                Err(format!(
                    "{} skipped: {} not found on PATH",
                    self.name(),
                    missing.join(" and ")
                ))
            }
        }
    }
}

/// The first executable file called `name` in a `PATH` folder.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Result of one external encode + decode.
#[derive(Debug)]
pub struct Coded {
    pub bytes: u64,
    pub decoded: RgbImage,
    pub encode: Duration,
    pub decode: Duration,
}

/// Encodes the PNG `input` (the original image) with `tool` at `setting` (cwebp -q, avifenc
/// --min/--max, cjxl -d), decodes it back to PNG in `work`, and reads it.
pub fn code(
    tool: Tool,
    programs: &[PathBuf; 2],
    input: &Path,
    setting: f64,
    work: &Path,
) -> Result<Coded> {
    let coded = work.join(format!("coded.{}", tool.extension()));
    let decoded = work.join("decoded.png");
    let mut enc = Command::new(&programs[0]);
    let s = format_setting(setting);
    match tool {
        Tool::Webp => enc
            .args(["-quiet", "-q", &s])
            .arg(input)
            .arg("-o")
            .arg(&coded),
        Tool::Avif => enc
            .args(["-j", "1", "--min", &s, "--max", &s])
            .arg(input)
            .arg(&coded),
        Tool::Jxl => enc.arg(input).arg(&coded).args(["-d", &s]),
    };
    let t0 = Instant::now();
    run_quiet(&mut enc)?;
    let encode = t0.elapsed();
    let bytes = std::fs::metadata(&coded)
        .with_context(|| format!("{} wrote no output", programs[0].display()))?
        .len();
    let mut dec = Command::new(&programs[1]);
    match tool {
        Tool::Webp => dec.arg(&coded).arg("-o").arg(&decoded),
        Tool::Avif | Tool::Jxl => dec.arg(&coded).arg(&decoded),
    };
    let t0 = Instant::now();
    run_quiet(&mut dec)?;
    let decode = t0.elapsed();
    let decoded_img = tfci_cli::read_image(&decoded)?;
    Ok(Coded {
        bytes,
        decoded: decoded_img,
        encode,
        decode,
    })
}

/// A setting as the tools want it: integers without a decimal point.
pub fn format_setting(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn run_quiet(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("failed to start {:?}", cmd.get_program()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "{:?} failed ({}): {}",
            cmd.get_program(),
            out.status,
            err.trim()
        );
    }
    Ok(())
}
