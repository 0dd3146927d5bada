//! A model file's bytes, shared by the nets whose weights stay in the file until a layer packs them.
//!
//! Why mapped: a one-shot `tfci-enc compress` reads its model once, and reading copies the file
//! (4-6 MB) from the page cache into fresh memory, which the kernel zeroes page by page first; on
//! the development VM fresh memory costs 0.15-2.8 ms per MiB, several times that after a few idle
//! seconds (docs/benchmarks.md, the one-shot section). A read-only private mapping uses the page
//! cache's own pages: nothing zeroed, nothing copied. Like a shared library, the file must not be
//! rewritten in place while a process maps it (pages past a truncated end would fault, changed
//! bytes would show through after the checksum); installers replace model files by writing a new
//! file and renaming it, which leaves the mapped one intact. Files under [`MAPPED_FROM`] bytes,
//! and every file outside Linux (where the crate has no `libc`), are read.

use std::path::Path;

/// The smallest file that is mapped rather than read (a model is megabytes; the tests' files are
/// kilobytes, for which a mapping gains nothing).
#[cfg(target_os = "linux")]
const MAPPED_FROM: u64 = 1 << 16;

/// A file's bytes, mapped or read (module docs).
pub(crate) struct FileBytes(Repr);

enum Repr {
    #[cfg(target_os = "linux")]
    Mapped {
        ptr: std::ptr::NonNull<u8>,
        len: usize,
    },
    Read(Vec<u8>),
}

// SAFETY: a mapped file is read-only memory this value owns alone (unmapped on drop); shared
// references only read it.
unsafe impl Send for FileBytes {}
// SAFETY: as above.
unsafe impl Sync for FileBytes {}

impl FileBytes {
    pub(crate) fn bytes(&self) -> &[u8] {
        match &self.0 {
            // SAFETY: `len` bytes mapped readable at `ptr` for as long as `self` lives.
            #[cfg(target_os = "linux")]
            Repr::Mapped { ptr, len } => unsafe { std::slice::from_raw_parts(ptr.as_ptr(), *len) },
            Repr::Read(v) => v,
        }
    }
}

impl std::fmt::Debug for FileBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileBytes({} bytes)", self.bytes().len())
    }
}

impl AsRef<[u8]> for FileBytes {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

impl Drop for FileBytes {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Repr::Mapped { ptr, len } = self.0 {
            // SAFETY: the mapping this value made, unmapped once.
            unsafe { libc::munmap(ptr.as_ptr().cast(), len) };
        }
    }
}

/// The bytes of the file at `path` (module docs).
pub(crate) fn read_file(path: &Path) -> std::io::Result<FileBytes> {
    #[cfg(target_os = "linux")]
    {
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        if len >= MAPPED_FROM {
            if let Some(mapped) = map(&file, len) {
                return Ok(mapped);
            }
        }
    }
    // `std::fs::read` reports a buffer it cannot allocate as an error instead of aborting.
    Ok(FileBytes(Repr::Read(std::fs::read(path)?)))
}

/// `file`'s first `len` bytes mapped read-only, its pages entered at once (one call instead of a
/// fault per few pages); `None` where the kernel refuses or the file shrank meanwhile (then it is
/// read).
#[cfg(target_os = "linux")]
fn map(file: &std::fs::File, len: u64) -> Option<FileBytes> {
    use std::os::fd::AsRawFd;
    let len = usize::try_from(len).ok()?;
    let flags = libc::MAP_PRIVATE | libc::MAP_POPULATE;
    // SAFETY: a new read-only mapping of an open file at an address the kernel picks; it aliases
    // nothing this process holds.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            flags,
            file.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return None;
    }
    let mapped = FileBytes(Repr::Mapped {
        ptr: std::ptr::NonNull::new(ptr.cast())?,
        len,
    });
    // A file cut shorter between its length and the mapping would fault past its new end.
    let still = file.metadata().ok()?.len();
    (still >= len as u64).then_some(mapped)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mapped (a model, on Linux) or read (the manifest), the bytes are the file's.
    #[test]
    fn read_file_gives_the_files_bytes() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
        for (name, mapped) in [
            ("manifest.json", false),
            ("b2018-gdn-128.safetensors", cfg!(target_os = "linux")),
        ] {
            let path = dir.join(name);
            let got = read_file(&path).expect("read");
            assert_eq!(got.bytes(), std::fs::read(&path).expect("read").as_slice());
            assert_eq!(!matches!(got.0, Repr::Read(_)), mapped, "{name} mapped");
        }
    }
}
