//! Where the binaries keep packed weights between calls, so that a one-shot call maps them
//! instead of repacking them into fresh memory (codec-core's `cpu/pack_cache.rs` says why and
//! what the files hold). A policy of the binaries: the library and the Python module keep none.

use std::path::PathBuf;

use codec_core::Codec;

use crate::Reporter;

/// Environment variable naming the cache folder; set and empty, no packed weights are kept.
pub const CACHE_DIR_ENV: &str = "TFCI_CACHE_DIR";

/// The folder for packed weights: `$TFCI_CACHE_DIR`, else `$XDG_CACHE_HOME/tfci`, else
/// `$HOME/.cache/tfci` (each under `packed/`); `None` where `TFCI_CACHE_DIR` is set and empty, or
/// no folder is known.
pub fn pack_cache_dir() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).map(PathBuf::from);
    let root = match var(CACHE_DIR_ENV) {
        Some(d) if d.as_os_str().is_empty() => return None,
        Some(d) => d,
        None => var("XDG_CACHE_HOME")
            .filter(|d| d.is_absolute())
            .or_else(|| {
                var("HOME")
                    .filter(|d| d.is_absolute())
                    .map(|h| h.join(".cache"))
            })?
            .join("tfci"),
    };
    Some(root.join("packed"))
}

/// Has `codec` keep its packed weights in [`pack_cache_dir`] (before its first image).
pub fn use_pack_cache(codec: &Codec) {
    if let Some(dir) = pack_cache_dir() {
        codec.use_pack_cache(&dir);
    }
}

/// Saves what `codec` packed in this process to its files; says so on `-v`. A cache that cannot be
/// written costs the next call its packing, nothing else: a failure is a `-v` line, not an error.
pub fn save_pack_cache(codec: &Codec, reporter: &Reporter) {
    let Some(dir) = pack_cache_dir() else {
        return;
    };
    match codec.save_pack_cache() {
        Ok(0) => {}
        Ok(n) => reporter.info(&format!(
            "packed weights kept in {} ({:.1} MB; {CACHE_DIR_ENV}= keeps none)",
            dir.display(),
            n as f64 / 1e6
        )),
        Err(e) => reporter.info(&format!(
            "packed weights not kept in {}: {e}",
            dir.display()
        )),
    }
}
