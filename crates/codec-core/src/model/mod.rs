//! Models: the registry (name -> family + level), manifest and weights loading, layer graphs.
//!
//! Runs no ops: it turns `models/manifest.json` and a safetensors file into [`graph::Net`]s, gain
//! vectors and the raw integer CDF tables, checking every shape on the way so a backend can trust them.

pub mod architecture;
mod decoder_id;
pub(crate) mod file_bytes;
pub mod graph;
mod lazy_weights;
mod manifest;
mod weights;

use std::path::{Path, PathBuf};

pub use architecture::Architecture;
pub use decoder_id::is_decoder_tensor;
pub use manifest::{FamilyEntry, Manifest, WeightsVersion};
pub use weights::{CdfRows, EbTables, Family, GcTables, I32s, Tables};

/// Errors finding or loading a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid model manifest {path}: {source}")]
    Manifest {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("unknown model {name:?}{}", suggest(.suggestions))]
    UnknownModel {
        name: String,
        suggestions: Vec<String>,
    },
    #[error("model {family:?} has levels 1..={levels}, not {level}")]
    BadLevel {
        family: String,
        level: u32,
        levels: u32,
    },
    #[error("unknown architecture {0:?} (known: bmshj2018-factorized, b2018-gdn, mbt2018-mean)")]
    UnknownArchitecture(String),
    #[error(
        "model file {path} is corrupted: sha256 {actual} does not match the manifest's {expected}"
    )]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("invalid safetensors file {path}: {message}")]
    Safetensors { path: PathBuf, message: String },
    #[error("model file is missing tensor {0:?}")]
    MissingTensor(String),
    #[error("tensor {name:?}: {reason}")]
    BadTensor { name: String, reason: String },
    #[error("model metadata {key:?}: {reason}")]
    Metadata { key: String, reason: String },
}

/// `FAMILY-LEVEL` as the family and the level (any number; the range is the family's to check).
pub fn split_level(name: &str) -> Option<(&str, u32)> {
    let (family, level) = name.rsplit_once('-')?;
    Some((family, level.parse().ok()?))
}

fn suggest(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", s.join(", "))
    }
}

/// The installed models: a folder with `manifest.json` and one safetensors file per family.
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
    manifest: Manifest,
}

impl Registry {
    /// Reads `dir/manifest.json`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, ModelError> {
        let dir = dir.as_ref().to_path_buf();
        let manifest = Manifest::read(&dir.join("manifest.json"))?;
        Ok(Self { dir, manifest })
    }

    /// The folder the registry reads.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest entries.
    pub fn families(&self) -> &[FamilyEntry] {
        &self.manifest.families
    }

    /// Every model name (`FAMILY-LEVEL`) in manifest order.
    pub fn names(&self) -> Vec<String> {
        self.manifest
            .families
            .iter()
            .flat_map(|f| (1..=f.levels).map(move |l| format!("{}-{l}", f.family)))
            .collect()
    }

    /// Splits a model name into its family entry and level (1-based).
    pub fn resolve(&self, name: &str) -> Result<(&FamilyEntry, u32), ModelError> {
        if let Some((family, level)) = split_level(name) {
            if let Some(entry) = self.family(family) {
                if level == 0 || level > entry.levels {
                    return Err(ModelError::BadLevel {
                        family: family.into(),
                        level,
                        levels: entry.levels,
                    });
                }
                return Ok((entry, level));
            }
        }
        Err(self.unknown(name))
    }

    /// The entry of a family name (without level).
    pub fn family(&self, family: &str) -> Option<&FamilyEntry> {
        self.manifest.families.iter().find(|f| f.family == family)
    }

    /// Loads and checks a family's weights.
    pub fn load(&self, entry: &FamilyEntry) -> Result<Family, ModelError> {
        weights::load(&self.dir, entry)
    }

    /// An [`ModelError::UnknownModel`] with the closest known names.
    pub fn unknown(&self, name: &str) -> ModelError {
        let mut scored: Vec<(f64, String)> = self
            .names()
            .into_iter()
            .chain(self.manifest.families.iter().map(|f| f.family.clone()))
            .map(|n| (strsim::normalized_levenshtein(name, &n), n))
            // The refused name itself (a family given without a level) is no suggestion.
            .filter(|(s, n)| *s > 0.5 && n != name)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let suggestions = scored.into_iter().take(3).map(|(_, n)| n).collect();
        ModelError::UnknownModel {
            name: name.into(),
            suggestions,
        }
    }
}

#[cfg(test)]
mod suggest_tests {
    use super::*;

    /// The name that was refused is never its own suggestion (a family name asked for where a
    /// model name is needed used to get "did you mean FAMILY?").
    #[test]
    fn the_refused_name_is_not_suggested() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/b2018-gdn");
        let r = Registry::open(&dir).expect("fixture");
        let ModelError::UnknownModel { suggestions, .. } = r.unknown("fixture-b2018-gdn") else {
            panic!("not an unknown-model error");
        };
        assert!(!suggestions.is_empty());
        assert!(
            !suggestions.iter().any(|s| s == "fixture-b2018-gdn"),
            "{suggestions:?}"
        );
    }
}
