//! `models/manifest.json`: which families are installed, which file holds each, and its checksum.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ModelError;

/// The manifest of a model folder (see docs/model-format.md).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub families: Vec<FamilyEntry>,
}

/// One family: the fields the loader needs, plus its training record kept as it is.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FamilyEntry {
    pub family: String,
    pub architecture: String,
    pub file: String,
    pub sha256: String,
    pub levels: u32,
    /// The family's weights version (counts up with every release of new decoder weights).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The decoder id of the file (see `decoder_id.rs`); checked against the file when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoder_id: Option<String>,
    /// Every released version of the family's weights, so that a file made with other weights is
    /// refused with an error that names them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<WeightsVersion>,
    /// Everything else (metric, lambdas, widths, training record, Kodak results).
    #[serde(flatten)]
    pub record: serde_json::Map<String, serde_json::Value>,
}

/// One released version of a family's weights.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WeightsVersion {
    pub version: u32,
    /// The id its files carry (`"WI"`): a decoder id, or for files written before decoder ids the
    /// first 16 hex digits of the model file's sha256.
    pub weights_id: String,
    /// Where to find it (training steps, the commit that shipped it).
    #[serde(default)]
    pub note: String,
}

impl FamilyEntry {
    /// The first 16 hex digits of the model file's sha256: the id of files written before decoder
    /// ids, still accepted for the same file.
    pub fn file_id(&self) -> &str {
        self.sha256.get(..16).unwrap_or(&self.sha256)
    }

    /// The released version whose files carry `weights_id`, if the manifest knows it.
    pub fn version_of(&self, weights_id: &str) -> Option<&WeightsVersion> {
        self.versions.iter().find(|v| v.weights_id == weights_id)
    }
}

impl Manifest {
    /// Reads and parses a manifest file.
    pub fn read(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.into(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ModelError::Manifest {
            path: path.into(),
            source,
        })
    }
}
