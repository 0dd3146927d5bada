//! Reading inputs and writing outputs: `-` is stdin/stdout; files are written through a temporary
//! file in the target folder and renamed on success, so a failure (a full disk, a bad image, a
//! crash) never leaves a partial file, and nothing the user had is replaced by accident.

use std::ffi::OsStr;
use std::fmt;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use codec_core::RgbImage;

/// Where a command reads from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Stdin,
    Path(PathBuf),
}

/// Where a command writes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Stdout,
    Path(PathBuf),
}

impl Input {
    /// `-` is stdin, anything else a path.
    pub fn from_arg(p: &Path) -> Self {
        if p.as_os_str() == OsStr::new("-") {
            Input::Stdin
        } else {
            Input::Path(p.to_path_buf())
        }
    }
}

impl Output {
    /// `-` is stdout, anything else a path.
    pub fn from_arg(p: &Path) -> Self {
        if p.as_os_str() == OsStr::new("-") {
            Output::Stdout
        } else {
            Output::Path(p.to_path_buf())
        }
    }
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Stdin => f.write_str("<stdin>"),
            Input::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Stdout => f.write_str("<stdout>"),
            Output::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Reads a whole input. Refuses a terminal on stdin (it would wait for typing, not a file).
pub fn read_input(input: &Input) -> Result<Vec<u8>> {
    match input {
        Input::Stdin => {
            let mut stdin = std::io::stdin().lock();
            if stdin.is_terminal() {
                bail!("stdin is a terminal; pipe a file into - or name the input file");
            }
            let mut bytes = Vec::new();
            stdin
                .read_to_end(&mut bytes)
                .context("failed reading stdin")?;
            Ok(bytes)
        }
        Input::Path(p) => std::fs::read(p).with_context(|| format!("cannot read {}", p.display())),
    }
}

/// Reads and decodes an input image: its size in bytes, the image, and what was converted (see
/// [`decode_image`]).
///
/// A regular file is decoded as it is read, through a small buffer: its bytes are never held
/// whole (for a Kodak PNG, 0.7 MB of fresh pages a one-shot call would fault in on the thread
/// its compress waits for). Stdin, pipes and other special files are read whole first, as the
/// decoders seek.
pub fn read_input_image(input: &Input) -> Result<(u64, RgbImage, Option<String>)> {
    let Input::Path(p) = input else {
        let bytes = read_input(input)?;
        let (image, note) = decode_image(&bytes, input)?;
        return Ok((bytes.len() as u64, image, note));
    };
    let cannot = || format!("cannot read {}", p.display());
    let mut file = std::fs::File::open(p).with_context(cannot)?;
    let meta = file.metadata().with_context(cannot)?;
    if meta.is_file() {
        let reader = std::io::BufReader::with_capacity(READ_BUFFER, file);
        let (image, note) = decode_from(reader, input)?;
        return Ok((meta.len(), image, note));
    }
    // From the file already open: a named pipe opened again would wait for another writer.
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).with_context(cannot)?;
    let (image, note) = decode_image(&bytes, input)?;
    Ok((bytes.len() as u64, image, note))
}

/// [`read_input_image`]'s buffer: a few dozen reads for a Kodak PNG.
const READ_BUFFER: usize = 64 << 10;

/// Decodes PNG, JPEG, BMP, TIFF or WebP bytes as 8-bit RGB. The second value says what was
/// converted (gray, alpha, 16 bits), for a note on stderr.
pub fn decode_image(bytes: &[u8], name: &Input) -> Result<(RgbImage, Option<String>)> {
    decode_from(std::io::Cursor::new(bytes), name)
}

/// [`decode_image`] of what `reader` holds.
fn decode_from(
    reader: impl std::io::BufRead + std::io::Seek,
    name: &Input,
) -> Result<(RgbImage, Option<String>)> {
    let img = image::ImageReader::new(reader)
        .with_guessed_format()
        .context("failed reading image data")?;
    let Some(format) = img.format() else {
        bail!("{name} is not an image (PNG, JPEG, BMP, TIFF or WebP)");
    };
    let img = img
        .decode()
        .with_context(|| format!("{name} is not a readable {format:?} image"))?;
    let color = img.color();
    let note = (color != image::ColorType::Rgb8).then(|| {
        format!("{name} is {color:?}; converted to 8-bit RGB (alpha dropped, gray replicated, 16 bits rounded)")
    });
    let rgb = img.into_rgb8();
    Ok((
        RgbImage {
            width: rgb.width() as usize,
            height: rgb.height() as usize,
            data: rgb.into_raw(),
        },
        note,
    ))
}

/// Reads an image file as 8-bit RGB, with the conversion note on stderr (for tools that read one
/// image at a time, like tfci-eval).
pub fn read_image(path: &Path) -> Result<RgbImage> {
    let (_, img, note) = read_input_image(&Input::Path(path.into()))?;
    if let Some(note) = note {
        crate::report::say(&format!("note: {note}"));
    }
    Ok(img)
}

/// Encodes an image as PNG bytes.
pub fn png_bytes(img: &RgbImage) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new(&mut out);
    image::ImageEncoder::write_image(
        encoder,
        &img.data,
        u32::try_from(img.width)?,
        u32::try_from(img.height)?,
        image::ExtendedColorType::Rgb8,
    )
    .context("failed encoding PNG")?;
    Ok(out)
}

/// How much of an existing output [`WriteGuard`] reads.
const MAX_GUARD_READ: u64 = 64 << 20;

/// The first bytes of an existing output, which hold any image signature.
const GUARD_HEAD: u64 = 64;

/// Whether an existing output may be replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clobber {
    /// Replace it, as tfci.py does.
    Replace,
    /// Leave it and fail (`--no-clobber`).
    Keep,
}

/// What an existing output must not hold for a command to replace it: compressing never writes
/// over an image, decompressing never over a `.tfci` file (the user's data, not an old result).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteGuard {
    NotAnImage,
    NotATfci,
}

/// Whether `head` starts like an image file of a format the binaries read or write.
fn is_image(head: &[u8]) -> bool {
    matches!(
        image::guess_format(head),
        Ok(image::ImageFormat::Png
            | image::ImageFormat::Jpeg
            | image::ImageFormat::Bmp
            | image::ImageFormat::Tiff
            | image::ImageFormat::WebP
            | image::ImageFormat::Gif)
    )
}

impl WriteGuard {
    /// Whether an existing output whose first [`GUARD_HEAD`] bytes are `head` must be read
    /// further: only a file that is no image may be a .tfci, which parses only whole.
    fn reads_past(self, head: &[u8]) -> bool {
        matches!(self, WriteGuard::NotATfci) && !is_image(head)
    }

    fn refuses(self, existing: &[u8]) -> Option<&'static str> {
        match self {
            WriteGuard::NotAnImage => is_image(existing).then_some("an image"),
            WriteGuard::NotATfci => codec_core::container::Packed::from_bytes(existing)
                .is_ok()
                .then_some("a .tfci file"),
        }
    }
}

/// Writes `bytes` to `output` (stdout, or a file through a temporary file renamed on success).
/// Never writes over `input`, over an existing file the guard refuses, or, with
/// [`Clobber::Keep`], over any existing file; never writes binary data to a terminal.
pub fn write_output(
    output: &Output,
    input: &Input,
    bytes: &[u8],
    clobber: Clobber,
    guard: WriteGuard,
) -> Result<()> {
    match output {
        Output::Stdout => {
            let mut stdout = std::io::stdout().lock();
            if stdout.is_terminal() {
                return Err(terminal_error());
            }
            stdout
                .write_all(bytes)
                .and_then(|()| stdout.flush())
                .context("failed writing stdout")
        }
        Output::Path(path) => {
            check_path(path, input, clobber, guard)?;
            if is_special(path) {
                // A device, a FIFO or /dev/stdout: write into it, as cp would; renaming a temporary
                // file over it would replace the device with a regular file.
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .with_context(|| format!("cannot open {} for writing", path.display()))?;
                return f
                    .write_all(bytes)
                    .and_then(|()| f.flush())
                    .with_context(|| format!("failed writing {}", path.display()));
            }
            write_atomic_with(path, clobber, |w| w.write_all(bytes))
        }
    }
}

/// The checks [`write_output`] makes, for callers to run before long work so that a refused
/// output fails fast.
pub fn check_output(
    output: &Output,
    input: &Input,
    clobber: Clobber,
    guard: WriteGuard,
) -> Result<()> {
    match output {
        Output::Stdout if std::io::stdout().is_terminal() => Err(terminal_error()),
        Output::Stdout => Ok(()),
        Output::Path(p) => check_path(p, input, clobber, guard),
    }
}

fn terminal_error() -> anyhow::Error {
    anyhow::anyhow!(
        "refusing to write binary data to a terminal; redirect stdout or name an output file"
    )
}

fn check_path(path: &Path, input: &Input, clobber: Clobber, guard: WriteGuard) -> Result<()> {
    if let Input::Path(input) = input {
        if same_file(input, path) {
            bail!("refusing to overwrite the input {}", input.display());
        }
    }
    if path.is_dir() {
        bail!("{} is a folder; name an output file", path.display());
    }
    if is_special(path) {
        // Nothing to guard in a device or a pipe, and reading one would wait for data (a pipe on
        // our own stdout never sends any).
        return Ok(());
    }
    if path.exists() {
        if clobber == Clobber::Keep {
            bail!("{} exists (--no-clobber)", path.display());
        }
        let mut existing = Vec::new();
        if let Ok(f) = std::fs::File::open(path) {
            // An image signature is in the first bytes, which decide for an image (a decoder
            // rewriting its own large PNG read all of it, twice); a .tfci file parses only
            // whole, and the largest (64 Mpx) stay well below the bound.
            let mut f = f.take(MAX_GUARD_READ);
            let _ = (&mut f).take(GUARD_HEAD).read_to_end(&mut existing);
            if guard.reads_past(&existing) {
                let _ = f.read_to_end(&mut existing);
            }
        }
        if let Some(what) = guard.refuses(&existing) {
            bail!(
                "refusing to replace {}, which holds {what}; name another output (two paths are \
                 INPUT OUTPUT, as in tfci.py; use --out-dir for several inputs)",
                path.display()
            );
        }
    }
    Ok(())
}

/// The temporary-file-and-rename write, with the writing step injectable so tests can make it
/// fail like a full disk.
pub(crate) fn write_atomic_with(
    output: &Path,
    clobber: Clobber,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tfci-partial-");
    // A temporary file is private (0600); the output should read like any file the user writes.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let mut tmp = builder
        .tempfile_in(dir)
        .with_context(|| format!("cannot write into the folder {}", dir.display()))?;
    let _registered = Partial::register(tmp.path());
    // On any error below, dropping `tmp` deletes the temporary file.
    write(&mut tmp)
        .and_then(|()| tmp.flush())
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("failed writing {}", output.display()))?;
    let persisted = match clobber {
        Clobber::Replace => tmp.persist(output),
        Clobber::Keep => tmp.persist_noclobber(output),
    };
    persisted
        .map_err(|e| e.error)
        .with_context(|| format!("failed writing {}", output.display()))?;
    Ok(())
}

/// Temporary files being written: what an interrupt removes before the process ends.
static PARTIALS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// One temporary file in [`PARTIALS`] for as long as this lives.
struct Partial(PathBuf);

impl Partial {
    fn register(path: &Path) -> Partial {
        if let Ok(mut v) = PARTIALS.lock() {
            v.push(path.to_path_buf());
        }
        Partial(path.to_path_buf())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if let Ok(mut v) = PARTIALS.lock() {
            v.retain(|p| *p != self.0);
        }
    }
}

/// Removes every temporary file still being written; returns how many.
fn remove_partials() -> usize {
    remove_partials_in(None)
}

/// [`remove_partials`], or only those under `dir` (a test must not remove the files that tests
/// running beside it are writing).
fn remove_partials_in(dir: Option<&Path>) -> usize {
    let Ok(v) = PARTIALS.lock() else { return 0 };
    v.iter()
        .filter(|p| dir.is_none_or(|d| p.starts_with(d)) && std::fs::remove_file(p).is_ok())
        .count()
}

/// On Ctrl-C (SIGINT) or SIGTERM, remove the temporary file of a write in progress and exit with
/// 130, so an interrupted run leaves no hidden `.tfci-partial-*` file. Call once, early in `main`.
pub fn remove_partial_on_interrupt() {
    // `ctrlc` runs this on its own thread, not inside the signal handler, so it may lock and
    // touch the file system. Failing to install it (a handler already set) only loses the cleanup.
    let _ = ctrlc::set_handler(|| {
        remove_partials();
        std::process::exit(130);
    });
}

/// Whether `path` exists and is not a regular file or folder (a device, a FIFO, a socket; links are
/// followed, so `/dev/stdout` is whatever stdout is).
fn is_special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// An image file decoded as it is read gives what its bytes decode to, and its size; a FIFO
    /// (a shell's `<(cat a.png)`), which cannot seek, is read whole first and gives the same; a
    /// folder is refused as unreadable.
    #[cfg(unix)]
    #[test]
    fn image_files_and_pipes_read_alike() {
        let dir = tempfile::tempdir().expect("tempdir");
        let image = RgbImage {
            width: 7,
            height: 5,
            data: (0..7 * 5 * 3).map(|i| (i * 37 % 256) as u8).collect(),
        };
        let png = png_bytes(&image).expect("png");
        let file = dir.path().join("a.png");
        std::fs::write(&file, &png).expect("write");
        let (len, read, note) = read_input_image(&Input::Path(file)).expect("file");
        assert_eq!((len, &read, note), (png.len() as u64, &image, None));
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let writer = {
                let (fifo, png) = (fifo.clone(), png.clone());
                std::thread::spawn(move || std::fs::write(fifo, png).expect("write the fifo"))
            };
            let (len, read, _) = read_input_image(&Input::Path(fifo)).expect("fifo");
            writer.join().expect("writer");
            assert_eq!((len, &read), (png.len() as u64, &image));
        } else {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED the FIFO half of image_files_and_pipes_read_alike: mkfifo is not available"
            );
        }
        let err = read_input_image(&Input::Path(dir.path().into())).expect_err("a folder");
        assert!(format!("{err:#}").contains("cannot read"), "{err:#}");
    }

    /// A full disk: the writer fails half way; no output and no temporary file remain.
    #[test]
    fn full_disk_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("a.tfci");
        let err = write_atomic_with(&out, Clobber::Replace, |w| {
            w.write_all(&[0u8; 1000])?;
            Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "No space left on device",
            ))
        })
        .expect_err("must fail");
        assert!(format!("{err:#}").contains("No space left"), "{err:#}");
        assert!(
            leftovers(dir.path()).is_empty(),
            "{:?}",
            leftovers(dir.path())
        );
    }

    /// A full disk while replacing: the old file stays as it was.
    #[test]
    fn failed_replace_keeps_the_old_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("a.tfci");
        std::fs::write(&out, b"old").expect("write");
        let res = write_atomic_with(&out, Clobber::Replace, |_| {
            Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "full"))
        });
        assert!(res.is_err());
        assert_eq!(std::fs::read(&out).expect("read"), b"old");
        assert_eq!(leftovers(dir.path()), vec!["a.tfci".to_string()]);
    }

    /// A FIFO (standing in for /dev/null, a tty or /dev/stdout in a pipe) is written into and stays
    /// a FIFO; the guard never reads it (which used to wait forever).
    #[cfg(unix)]
    #[test]
    fn special_files_are_written_into_not_replaced() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            // Written past libtest's capture, so the skip shows although the test passes.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED special_files_are_written_into_not_replaced: mkfifo is not available"
            );
            return;
        }
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).expect("read the fifo"))
        };
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                let input = Input::Path("in.png".into());
                let res = write_output(
                    &Output::Path(fifo),
                    &input,
                    b"payload",
                    Clobber::Replace,
                    WriteGuard::NotATfci,
                );
                let _ = tx.send(res.map_err(|e| format!("{e:#}")));
            });
        }
        let res = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("writing into a FIFO must not hang");
        assert_eq!(res, Ok(()));
        assert_eq!(reader.join().expect("reader"), b"payload");
        let kind = std::fs::metadata(&fifo).expect("still there").file_type();
        assert!(kind.is_fifo(), "the FIFO was replaced: {kind:?}");
        assert_eq!(leftovers(dir.path()), vec!["pipe".to_string()]);
    }

    /// What an interrupt does: the temporary file of a write in progress goes, the output never
    /// appears, and a finished write is no longer on the list.
    #[test]
    fn interrupt_removes_the_partial_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("a.tfci");
        let mut removed = None;
        let res = write_atomic_with(&out, Clobber::Replace, |w| {
            w.write_all(&[0u8; 1000])?;
            assert_eq!(leftovers(dir.path()).len(), 1, "the temporary file exists");
            removed = Some(remove_partials_in(Some(dir.path())));
            Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "SIGINT",
            ))
        });
        assert!(res.is_err());
        assert!(removed.expect("ran") >= 1);
        assert!(leftovers(dir.path()).is_empty());
        write_atomic_with(&out, Clobber::Replace, |w| w.write_all(b"x")).expect("written");
        assert!(PARTIALS
            .lock()
            .expect("lock")
            .iter()
            .all(|p| !p.starts_with(dir.path())));
    }

    #[test]
    fn no_clobber_and_guards() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = Input::Path(dir.path().join("in.png"));
        let out = dir.path().join("out.bin");
        std::fs::write(&out, b"previous").expect("write");
        let keep = write_output(
            &Output::Path(out.clone()),
            &input,
            b"new",
            Clobber::Keep,
            WriteGuard::NotAnImage,
        );
        assert!(format!("{:#}", keep.expect_err("kept")).contains("--no-clobber"));
        write_output(
            &Output::Path(out.clone()),
            &input,
            b"new",
            Clobber::Replace,
            WriteGuard::NotAnImage,
        )
        .expect("replaced");
        assert_eq!(std::fs::read(&out).expect("read"), b"new");
        // An existing PNG is never replaced by compressed data.
        let png = dir.path().join("b.png");
        let img = RgbImage {
            width: 1,
            height: 1,
            data: vec![1, 2, 3],
        };
        std::fs::write(&png, png_bytes(&img).expect("png")).expect("write");
        let err = write_output(
            &Output::Path(png.clone()),
            &input,
            b"x",
            Clobber::Replace,
            WriteGuard::NotAnImage,
        )
        .expect_err("guarded");
        assert!(format!("{err:#}").contains("holds an image"), "{err:#}");
        // The input itself is never an output.
        std::fs::write(dir.path().join("in.png"), b"in").expect("write");
        let err = write_output(
            &Output::Path(dir.path().join("in.png")),
            &input,
            b"x",
            Clobber::Replace,
            WriteGuard::NotATfci,
        )
        .expect_err("input");
        assert!(
            format!("{err:#}").contains("overwrite the input"),
            "{err:#}"
        );
    }

    /// The first bytes of an image settle both guards; anything else is read on for the .tfci
    /// guard only (a .tfci file parses only whole).
    #[test]
    fn an_image_head_settles_the_guard() {
        let img = RgbImage {
            width: 2,
            height: 2,
            data: vec![7; 12],
        };
        let png = png_bytes(&img).expect("png");
        let head = &png[..GUARD_HEAD as usize];
        assert!(!WriteGuard::NotATfci.reads_past(head));
        assert!(!WriteGuard::NotAnImage.reads_past(head));
        assert_eq!(WriteGuard::NotAnImage.refuses(head), Some("an image"));
        assert_eq!(WriteGuard::NotATfci.refuses(head), None);
        assert!(WriteGuard::NotATfci.reads_past(b"not an image at all"));
        assert!(!WriteGuard::NotAnImage.reads_past(b"not an image at all"));
    }
}
