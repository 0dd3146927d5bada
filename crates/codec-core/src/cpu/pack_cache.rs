//! Packed weights in a file per net, which the processes after the one that packed them map.
//!
//! Why: a one-shot `tfci-enc` or `tfci-dec` repacks its nets' weights (Winograd's transform, the
//! exact kernel's rows) into 8-20 MB of fresh memory, which the kernel zeroes page by page and, on
//! a VM that hands its guests' free memory back to the host, the host backs again: after a few idle
//! seconds the same call spent 3-4x the system time (docs/benchmarks.md, fifteenth session). A
//! file's pages in the page cache are neither zeroed nor backed again, so a mapped file of the
//! packed weights costs neither (as the model file itself is mapped, `model/file_bytes.rs`);
//! TensorFlow Lite's XNNPACK delegate offers the same, a weight cache file, as an option.
//!
//! The binaries choose the folder (and whether at all, `tfci_cli::pack_cache_dir`); a library user
//! or the Python module never writes one unless asked ([`crate::Codec::use_pack_cache`]). A file
//! holds one net of one model file (named by its checksum) as one version of this crate packs it:
//! its header says which, and a file for anything else, cut short or malformed is ignored (and
//! replaced when the net is saved). The floats themselves carry no checksum: like a compiler's
//! cache they are this program's own output, written whole to a temporary file and renamed over the
//! old one, so a reader sees a whole file or none (a temporary file a killed process left is
//! removed by a later save); a file changed in place while a process maps it is the model file's
//! case too (module docs there).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::slab::Packed;
use crate::model::file_bytes::{read_file, FileBytes};

const MAGIC: &[u8; 8] = b"TFCIPACK";

/// The header's version.
const VERSION: u32 = 1;

/// The packers' source, hashed when this crate is compiled (FNV-1a): a build whose packing code
/// differs in any byte reads no file another build wrote (every file's tag holds it, beside the
/// crate's version), so no one has to remember to bump a version when a packer changes.
const SOURCE: u64 = fnv1a(&[
    include_bytes!("winograd.rs"),
    include_bytes!("exact.rs"),
    include_bytes!("conv.rs"),
    include_bytes!("slab.rs"),
    include_bytes!("pack_cache.rs"),
    include_bytes!("../model/lazy_weights.rs"),
]);

const fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < parts.len() {
        let mut j = 0;
        while j < parts[i].len() {
            h ^= parts[i][j] as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
            j += 1;
        }
        i += 1;
    }
    h
}

/// What a file's tag says besides its net and model: this crate's version and packers.
pub(crate) fn build_tag() -> String {
    format!("{} {SOURCE:016x}", env!("CARGO_PKG_VERSION"))
}

/// Floats start this many bytes apart from the file's start (cache lines; mapped files start on a
/// page).
const ALIGN: usize = 64;

/// Bytes of one entry in the header.
const ENTRY: usize = 32;

/// Which packed buffer of a net: its layer, the packer, and the packer's part (an exact layer's
/// phase).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub layer: u32,
    pub kind: Kind,
    pub part: u32,
}

/// The packers whose buffers are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// `winograd.rs`'s `U`.
    Winograd = 1,
    /// `exact.rs`'s rows, one part per phase.
    Exact = 2,
}

impl Kind {
    fn from_u32(v: u32) -> Option<Kind> {
        match v {
            1 => Some(Kind::Winograd),
            2 => Some(Kind::Exact),
            _ => None,
        }
    }
}

/// One net's file: where it is, what its header must say, and what it held when first read.
#[derive(Debug)]
pub(crate) struct NetFile {
    path: PathBuf,
    tag: String,
    loaded: OnceLock<Option<Loaded>>,
}

#[derive(Debug)]
struct Loaded {
    file: Arc<FileBytes>,
    /// Byte offset and length in floats of each entry.
    entries: HashMap<Key, (usize, usize)>,
}

impl NetFile {
    /// The file at `path` for the net `tag` names (read at the first lookup).
    pub fn new(path: PathBuf, tag: String) -> NetFile {
        NetFile {
            path,
            tag,
            loaded: OnceLock::new(),
        }
    }

    fn loaded(&self) -> Option<&Loaded> {
        self.loaded
            .get_or_init(|| {
                if !cfg!(target_endian = "little") {
                    return None;
                }
                let file = read_file(&self.path).ok()?;
                let entries = parse(file.bytes(), &self.tag)?;
                Some(Loaded {
                    file: Arc::new(file),
                    entries,
                })
            })
            .as_ref()
    }

    /// The buffer `key` of `len` floats from the file, if it holds it.
    pub fn get(&self, key: Key, len: usize) -> Option<Packed> {
        let loaded = self.loaded()?;
        let &(at, n) = loaded.entries.get(&key)?;
        if n != len {
            return None;
        }
        Packed::in_file(loaded.file.clone(), at, len)
    }

    /// Writes `current` (the net's packed buffers now), with whatever else the file held, as the
    /// new file; nothing when every buffer of `current` came from the file. Returns the bytes
    /// written.
    pub fn save(&self, current: &[(Key, &Packed)]) -> std::io::Result<u64> {
        if current.iter().all(|(_, p)| p.is_in_file()) {
            return Ok(0);
        }
        let mut all: Vec<(Key, &[f32])> = current.iter().map(|(k, p)| (*k, &***p)).collect();
        if let Some(loaded) = self.loaded() {
            for (&key, &(at, len)) in &loaded.entries {
                if !all.iter().any(|(k, _)| *k == key) {
                    let bytes = &loaded.file.bytes()[at..at + 4 * len];
                    if let Ok(floats) = bytemuck::try_cast_slice(bytes) {
                        all.push((key, floats));
                    }
                }
            }
        }
        all.sort_by_key(|(k, _)| (k.layer, k.kind as u32, k.part));
        write_atomically(&self.path, &encode(&self.tag, &all))
    }
}

/// The file's bytes for `entries`.
fn encode(tag: &str, entries: &[(Key, &[f32])]) -> Vec<u8> {
    let head = MAGIC.len() + 12 + tag.len() + ENTRY * entries.len();
    let mut at = head.next_multiple_of(ALIGN);
    let mut index = Vec::with_capacity(ENTRY * entries.len());
    for (key, floats) in entries {
        for v in [key.layer, key.kind as u32, key.part, 0] {
            index.extend_from_slice(&v.to_le_bytes());
        }
        index.extend_from_slice(&(at as u64).to_le_bytes());
        index.extend_from_slice(&(floats.len() as u64).to_le_bytes());
        at = (at + 4 * floats.len()).next_multiple_of(ALIGN);
    }
    let mut out = Vec::with_capacity(at);
    out.extend_from_slice(MAGIC);
    for v in [VERSION, tag.len() as u32, entries.len() as u32] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(&index);
    for (_, floats) in entries {
        out.resize(out.len().next_multiple_of(ALIGN), 0);
        out.extend_from_slice(bytemuck::cast_slice(floats));
    }
    out
}

/// The entries of a file whose header is whole, of this version and for `tag`, every entry inside
/// the file; `None` for anything else.
fn parse(bytes: &[u8], tag: &str) -> Option<HashMap<Key, (usize, usize)>> {
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    let u64_at = |at: usize| -> Option<usize> {
        usize::try_from(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?)).ok()
    };
    if bytes.get(..MAGIC.len())? != MAGIC || u32_at(8)? != VERSION {
        return None;
    }
    let (tag_len, count) = (u32_at(12)? as usize, u32_at(16)? as usize);
    let tag_end = 20usize.checked_add(tag_len)?;
    if bytes.get(20..tag_end)? != tag.as_bytes() {
        return None;
    }
    let mut entries = HashMap::with_capacity(count.min(1024));
    for i in 0..count {
        let e = tag_end.checked_add(i.checked_mul(ENTRY)?)?;
        let key = Key {
            layer: u32_at(e)?,
            kind: Kind::from_u32(u32_at(e + 4)?)?,
            part: u32_at(e + 8)?,
        };
        let (at, len) = (u64_at(e + 16)?, u64_at(e + 24)?);
        let end = at.checked_add(len.checked_mul(4)?)?;
        if at % ALIGN != 0 || end > bytes.len() || entries.insert(key, (at, len)).is_some() {
            return None;
        }
    }
    Some(entries)
}

/// `bytes` as the file at `path`: written to a temporary file beside it and renamed over it, so
/// that a reader sees the old file or the new one, whole.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<u64> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    remove_stale_temporaries(dir, &name);
    written.map(|()| bytes.len() as u64)
}

/// A temporary file this old is one a killed process left, not one being written.
const STALE: std::time::Duration = std::time::Duration::from_secs(600);

/// Removes the temporary files of `name` in `dir` that processes killed while writing left.
fn remove_stale_temporaries(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{name}.");
    for e in entries.flatten() {
        let file = e.file_name();
        let ours = file
            .to_str()
            .is_some_and(|f| f.starts_with(&prefix) && f.ends_with(".tmp"));
        let age = e.metadata().and_then(|m| m.modified()).ok();
        let old = age
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|a| a > STALE);
        if ours && old {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(layer: u32, kind: Kind, part: u32) -> Key {
        Key { layer, kind, part }
    }

    fn packed(values: &[f32]) -> Packed {
        let mut p = Packed::zeroed(values.len());
        p.as_mut_slice().copy_from_slice(values);
        p
    }

    /// Saved buffers come back from the file, read in place; a new buffer rewrites the file with
    /// the old ones kept.
    #[test]
    fn saved_buffers_are_read_back_in_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("net.pack");
        let (a, b) = (packed(&[1.0, 2.0, 3.0]), packed(&[-4.5; 100]));
        let first = NetFile::new(path.clone(), "tag".into());
        let entries = [
            (key(0, Kind::Winograd, 0), &a),
            (key(3, Kind::Exact, 1), &b),
        ];
        assert!(first.save(&entries).expect("saved") > 0);

        let second = NetFile::new(path.clone(), "tag".into());
        let got = second
            .get(key(3, Kind::Exact, 1), 100)
            .expect("in the file");
        assert!(got.is_in_file());
        assert_eq!(&*got, &*b);
        assert!(
            second.get(key(3, Kind::Exact, 1), 99).is_none(),
            "wrong length"
        );
        assert!(second.get(key(3, Kind::Exact, 0), 100).is_none(), "absent");
        let got_a = second
            .get(key(0, Kind::Winograd, 0), 3)
            .expect("in the file");
        // Everything came from the file: nothing to write.
        let both = [
            (key(0, Kind::Winograd, 0), &got_a),
            (key(3, Kind::Exact, 1), &got),
        ];
        assert_eq!(second.save(&both).expect("nothing"), 0);
        // A new buffer: the file is rewritten, the old entries kept.
        let c = packed(&[7.0; 17]);
        assert!(
            second
                .save(&[(key(5, Kind::Winograd, 0), &c)])
                .expect("saved")
                > 0
        );
        let third = NetFile::new(path, "tag".into());
        for (k, v) in [
            (key(0, Kind::Winograd, 0), &a),
            (key(3, Kind::Exact, 1), &b),
            (key(5, Kind::Winograd, 0), &c),
        ] {
            assert_eq!(&*third.get(k, v.len()).expect("kept"), &**v);
        }
    }

    /// A temporary file a killed process left is removed by the next save; a fresh one (a
    /// process writing now) and other files stay.
    #[test]
    fn stale_temporaries_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("net.pack");
        let (stale, fresh, other) = (
            dir.path().join(".net.pack.1.tmp"),
            dir.path().join(".net.pack.2.tmp"),
            dir.path().join(".other.pack.1.tmp"),
        );
        for f in [&stale, &fresh, &other] {
            std::fs::write(f, b"partial").expect("write");
        }
        let long_ago = std::time::SystemTime::now() - 2 * STALE;
        for f in [&stale, &other] {
            let file = std::fs::File::options().write(true).open(f).expect("open");
            file.set_modified(long_ago).expect("set mtime");
        }
        let a = packed(&[1.0; 8]);
        assert!(
            NetFile::new(path, "tag".into())
                .save(&[(key(0, Kind::Winograd, 0), &a)])
                .expect("saved")
                > 0
        );
        assert!(!stale.exists(), "a stale temporary kept");
        assert!(
            fresh.exists() && other.exists(),
            "a live or unrelated file removed"
        );
    }

    /// Another tag, another version, a cut or a bad entry: the file is not read.
    #[test]
    fn foreign_or_damaged_files_are_ignored() {
        let a = packed(&[1.0; 64]);
        let bytes = encode("tag", &[(key(1, Kind::Winograd, 0), &a)]);
        assert!(parse(&bytes, "tag").is_some());
        assert!(parse(&bytes, "other").is_none());
        let mut v = bytes.clone();
        v[8] ^= 1;
        assert!(parse(&v, "tag").is_none(), "version");
        for cut in [0, 7, 20, bytes.len() - 1] {
            assert!(parse(&bytes[..cut], "tag").is_none(), "cut at {cut}");
        }
        let mut v = bytes.clone();
        v[20 + 3 + 4] = 9;
        assert!(parse(&v, "tag").is_none(), "unknown kind");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("net.pack");
        std::fs::write(&path, &bytes[..bytes.len() - 4]).expect("write");
        assert!(NetFile::new(path, "tag".into())
            .get(key(1, Kind::Winograd, 0), 64)
            .is_none());
    }
}
