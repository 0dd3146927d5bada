//! The three architectures as layer lists: which safetensors module sits where, with which stride.
//!
//! Kernel sizes and channel counts come from the weight shapes; strides and the order of layers come
//! from here, so a file can never smuggle in a different topology.

use super::ModelError;

/// A model architecture (the papers', see docs/model-format.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// Ballé et al. 2018, factorized prior (`bmshj2018-factorized`).
    Bmshj2018Factorized,
    /// Ballé 2018 PCS, the bls2017 network (`b2018-gdn`).
    B2018Gdn,
    /// Minnen et al. 2018, mean-scale hyperprior (`mbt2018-mean`).
    Mbt2018Mean,
}

/// One entry of a layer list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `Conv2d` at module `idx` with this stride and kernel size.
    Conv { idx: usize, k: usize, stride: usize },
    /// `ConvTranspose2d` at module `idx`.
    Deconv { idx: usize, k: usize, stride: usize },
    /// GDN (or IGDN when `inverse`) at module `idx`.
    Gdn { idx: usize, inverse: bool },
    /// LeakyReLU, no tensors.
    LeakyRelu,
}

const fn c(idx: usize, k: usize, stride: usize) -> Op {
    Op::Conv { idx, k, stride }
}
const fn d(idx: usize, k: usize, stride: usize) -> Op {
    Op::Deconv { idx, k, stride }
}
const fn gdn(idx: usize) -> Op {
    Op::Gdn {
        idx,
        inverse: false,
    }
}
const fn igdn(idx: usize) -> Op {
    Op::Gdn { idx, inverse: true }
}
const L: Op = Op::LeakyRelu;

const BMSHJ_G_A: &[Op] = &[
    c(0, 5, 2),
    gdn(1),
    c(2, 5, 2),
    gdn(3),
    c(4, 5, 2),
    gdn(5),
    c(6, 5, 2),
];
const BMSHJ_G_S: &[Op] = &[
    d(0, 5, 2),
    igdn(1),
    d(2, 5, 2),
    igdn(3),
    d(4, 5, 2),
    igdn(5),
    d(6, 5, 2),
];
const BLS_G_A: &[Op] = &[c(0, 9, 4), gdn(1), c(2, 5, 2), gdn(3), c(4, 5, 2)];
const BLS_G_S: &[Op] = &[d(0, 5, 2), igdn(1), d(2, 5, 2), igdn(3), d(4, 9, 4)];
const MBT_H_A: &[Op] = &[c(0, 3, 1), L, c(2, 5, 2), L, c(4, 5, 2)];
const MBT_H_S: &[Op] = &[d(0, 5, 2), L, d(2, 5, 2), L, c(4, 3, 1)];

impl Architecture {
    /// Parses the manifest / metadata spelling.
    pub fn parse(s: &str) -> Result<Self, ModelError> {
        match s {
            "bmshj2018-factorized" => Ok(Self::Bmshj2018Factorized),
            "b2018-gdn" => Ok(Self::B2018Gdn),
            "mbt2018-mean" => Ok(Self::Mbt2018Mean),
            other => Err(ModelError::UnknownArchitecture(other.into())),
        }
    }

    /// The manifest / metadata spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bmshj2018Factorized => "bmshj2018-factorized",
            Self::B2018Gdn => "b2018-gdn",
            Self::Mbt2018Mean => "mbt2018-mean",
        }
    }

    /// Whether the latent has a hyperprior (`z`, `h_a`, `h_s`).
    pub fn has_hyperprior(self) -> bool {
        self == Self::Mbt2018Mean
    }

    /// Layer lists of `(g_a, g_s, h_a, h_s)`; the last two empty without a hyperprior.
    pub fn layers(self) -> [&'static [Op]; 4] {
        match self {
            Self::Bmshj2018Factorized => [BMSHJ_G_A, BMSHJ_G_S, &[], &[]],
            Self::B2018Gdn => [BLS_G_A, BLS_G_S, &[], &[]],
            Self::Mbt2018Mean => [BMSHJ_G_A, BMSHJ_G_S, MBT_H_A, MBT_H_S],
        }
    }

    /// Total downsampling of `g_a` (`y` is `ceil(H / 16) x ceil(W / 16)` for all three).
    pub const Y_STRIDE: usize = 16;
    /// Downsampling of `h_a` relative to `y`.
    pub const Z_STRIDE: usize = 4;
}
