//! The flags both binaries take, declared once so their spelling and help never drift apart.

use std::path::PathBuf;

use crate::MODEL_DIR_ENV;

/// Where the transforms run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// A hardware GPU when there is one, else the CPU.
    #[default]
    Auto,
    /// A wgpu adapter (software ones included), or an error.
    Gpu,
    /// The native CPU path.
    Cpu,
}

impl From<BackendChoice> for codec_core::BackendKind {
    fn from(c: BackendChoice) -> Self {
        match c {
            BackendChoice::Auto => Self::Auto,
            BackendChoice::Gpu => Self::Gpu,
            BackendChoice::Cpu => Self::Cpu,
        }
    }
}

/// Global flags of `tfci-enc` and `tfci-dec`.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "Global options")]
pub struct Common {
    /// Folder holding manifest.json and the model files [default: ./models, then the models of
    /// the source tree the binary was built from]
    #[arg(
        long = "model-dir",
        visible_alias = "model_dir",
        global = true,
        env = MODEL_DIR_ENV,
        value_name = "DIR"
    )]
    pub model_dir: Option<PathBuf>,
    /// Say more on stderr: backend, model, sizes and time per file
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Print nothing but errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Where the transforms run (the entropy parameters are computed the same way on all)
    #[arg(long, global = true, env = "TFCI_BACKEND", value_enum, default_value_t)]
    pub backend: BackendChoice,
    /// Use the GPU adapter whose name contains this text (see `adapters`)
    #[arg(long, global = true, value_name = "SUBSTRING")]
    pub adapter: Option<String>,
    /// Refuse images whose coding on the CPU would hold more memory than this (bytes, or with
    /// K, M, G: 512M, 8G) [default: 4G]
    #[arg(
        long = "max-memory",
        visible_alias = "max_memory",
        global = true,
        env = "TFCI_MAX_MEMORY",
        value_name = "SIZE",
        value_parser = parse_size
    )]
    pub max_memory: Option<u64>,
}

impl Common {
    /// The codec's limits, with `--max-memory` when given.
    pub fn limits(&self) -> codec_core::Limits {
        codec_core::Limits {
            max_memory: self.max_memory.unwrap_or(codec_core::DEFAULT_MAX_MEMORY),
            ..Default::default()
        }
    }
}

/// A byte count: digits with an optional fraction, then an optional K, M, G or T (powers of 1024,
/// an optional trailing `B` or `iB`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let body = upper
        .strip_suffix("IB")
        .or_else(|| upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (num, shift) = match body.chars().last() {
        Some('K') => (&body[..body.len() - 1], 10),
        Some('M') => (&body[..body.len() - 1], 20),
        Some('G') => (&body[..body.len() - 1], 30),
        Some('T') => (&body[..body.len() - 1], 40),
        _ => (body, 0),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 4096, 512M, 8G)"))?;
    let bytes = v * (1u64 << shift) as f64;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!("{s:?} is not a size (e.g. 4096, 512M, 8G)"));
    }
    Ok(bytes as u64)
}

/// `--no-clobber`, for every command that writes files.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct NoClobber {
    /// Fail instead of replacing an existing output
    #[arg(short = 'n', long = "no-clobber", visible_alias = "no_clobber")]
    pub no_clobber: bool,
}

impl NoClobber {
    /// What the flag means for [`crate::write_output`].
    pub fn clobber(self) -> crate::Clobber {
        if self.no_clobber {
            crate::Clobber::Keep
        } else {
            crate::Clobber::Replace
        }
    }
}

/// `--rd_parameter`, for the commands that code an image.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct RdParameter {
    /// Rate-distortion parameter in [1, LEVELS], between the levels of a family that has one
    /// (mbt2018-mean); integers are the levels
    #[arg(
        short = 'r',
        long = "rd_parameter",
        visible_alias = "rd-parameter",
        value_name = "R"
    )]
    pub rd_parameter: Option<f32>,
}

/// `-e/--effort`, for the commands that code an image.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct EffortArg {
    /// Encoder effort: 0 = the plain encoder; 1, 2, 3 = a per-image search of the latent for a
    /// lower rate-distortion loss (20, 40, 150 iterations; slower, smaller files that the
    /// same decoder reads). See docs/effort.md
    #[arg(
        short = 'e',
        long = "effort",
        default_value_t = 0,
        value_name = "N",
        value_parser = clap::value_parser!(u8).range(0..=codec_core::codec::MAX_EFFORT as i64)
    )]
    pub effort: u8,
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("8G"), Ok(8 << 30));
        assert_eq!(parse_size("8GiB"), Ok(8 << 30));
        assert_eq!(parse_size("1.5g"), Ok(3 << 29));
        assert_eq!(parse_size(" 2K "), Ok(2048));
        for bad in ["", "G", "-1G", "0", "lots", "1e30T", "NaN"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }
}
