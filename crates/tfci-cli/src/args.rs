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
