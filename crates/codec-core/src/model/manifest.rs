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
    /// Everything else (metric, lambdas, widths, training record, Kodak results).
    #[serde(flatten)]
    pub record: serde_json::Map<String, serde_json::Value>,
}

impl FamilyEntry {
    /// The id written into `.tfci` files: the first 16 hex digits of the file's sha256.
    pub fn weights_id(&self) -> &str {
        self.sha256.get(..16).unwrap_or(&self.sha256)
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
