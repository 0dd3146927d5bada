//! What a command says on stderr: notes, `-v` details, a progress bar for batches on a terminal,
//! one line per error, and the batch summary. Data goes to stdout only.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::Common;

/// Writes one line on stderr. Messages are best effort: a closed stderr (`2>&1 | head -1`) must not
/// stop the work or panic, as `eprintln!` would.
pub fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Writes one line of a listing on stdout; a reader that went away (`| head -1`) ends it quietly.
pub fn out(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Prints an error on stderr as one line: what failed, then its causes after colons.
pub fn report(err: &anyhow::Error) {
    say(&format!("error: {err:#}"));
}

/// What a binary's `main` returns: success, or the error reported on stderr and exit code 1.
pub fn exit_code(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            std::process::ExitCode::FAILURE
        }
    }
}

/// `1234567` as `1.23 MB` (decimal units, like `ls -lh --si`).
pub fn format_bytes(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.1} kB", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2} MB", n as f64 / 1e6),
        _ => format!("{:.2} GB", n as f64 / 1e9),
    }
}

/// stderr for one command.
#[derive(Debug)]
pub struct Reporter {
    verbose: bool,
    quiet: bool,
    bar: Option<ProgressBar>,
    /// The latent search's iterations of a single input (`-e 1..3`), on a terminal.
    search_bar: std::sync::Mutex<Option<ProgressBar>>,
}

impl Reporter {
    /// A reporter for `jobs` inputs: a progress bar when there are several, stderr is a terminal
    /// and `-q` is not given.
    pub fn new(common: &Common, jobs: usize) -> Self {
        let bar = (jobs > 1 && !common.quiet && std::io::stderr().is_terminal()).then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(jobs as u64), ProgressDrawTarget::stderr());
            if let Ok(style) =
                ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} {wide_msg}")
            {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            verbose: common.verbose,
            quiet: common.quiet,
            bar,
            search_bar: std::sync::Mutex::new(None),
        }
    }

    /// `done` of `total` iterations of an encoder-effort search: in the batch bar's message, or
    /// for a single input a bar of its own (stderr a terminal, no `-q`), cleared at the end.
    pub fn search_progress(&self, done: usize, total: usize) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("searching the latent: {done}/{total}"));
            return;
        }
        if self.quiet || !std::io::stderr().is_terminal() {
            return;
        }
        let Ok(mut slot) = self.search_bar.lock() else {
            return;
        };
        // One bar per search (a --target_bpp run searches at every point it tries).
        let bar = slot.get_or_insert_with(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "searching the latent {bar:30} {pos}/{len} iterations {elapsed_precise}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        bar.set_position(done as u64);
        if done >= total {
            bar.finish_and_clear();
            *slot = None;
        }
    }

    fn print(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| say(line)),
            None => say(line),
        }
    }

    /// A note (conversions, ignored flags); silenced by `-q`.
    pub fn note(&self, msg: &str) {
        if !self.quiet {
            self.print(&format!("note: {msg}"));
        }
    }

    /// A detail shown with `-v`.
    pub fn info(&self, msg: &str) {
        if self.verbose {
            self.print(msg);
        }
    }

    /// Whether `-v` was given.
    pub fn verbose(&self) -> bool {
        self.verbose
    }

    /// An error about one input of a batch; always shown.
    pub fn error(&self, err: &anyhow::Error) {
        self.print(&format!("error: {err:#}"));
    }

    /// One input done.
    pub fn advance(&self, name: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(name.to_string());
            bar.inc(1);
        }
    }

    /// Clears the bar and prints the summary: for batches unless `-q`, for one input with `-v`.
    pub fn finish(&self, totals: &Totals, verb: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if !self.quiet && (totals.files > 1 || self.verbose) {
            say(&totals.line(verb));
        }
    }
}

/// Totals of a batch, for the summary line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    pub files: usize,
    pub failed: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Pixels of the images coded (for bpp).
    pub pixels: u64,
    /// Bytes of the `.tfci` side (for bpp).
    pub compressed: u64,
    pub seconds: f64,
}

impl Totals {
    /// `compressed 3 images (2.36 MB -> 91.4 kB, 0.620 bpp) in 1.21 s; 1 failed`
    pub fn line(&self, verb: &str) -> String {
        let done = self.files - self.failed;
        let bpp = if self.pixels > 0 {
            format!(
                ", {:.3} bpp",
                8.0 * self.compressed as f64 / self.pixels as f64
            )
        } else {
            String::new()
        };
        let failed = if self.failed > 0 {
            format!("; {} failed", self.failed)
        } else {
            String::new()
        };
        format!(
            "{verb} {done} image{} ({} -> {}{bpp}) in {:.2} s{failed}",
            if done == 1 { "" } else { "s" },
            format_bytes(self.bytes_in),
            format_bytes(self.bytes_out),
            self.seconds
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line() {
        let t = Totals {
            files: 3,
            failed: 1,
            bytes_in: 2_359_000,
            bytes_out: 61_000,
            pixels: 786_432,
            compressed: 61_000,
            seconds: 1.214,
        };
        assert_eq!(
            t.line("compressed"),
            "compressed 2 images (2.36 MB -> 61.0 kB, 0.621 bpp) in 1.21 s; 1 failed"
        );
        assert_eq!(format_bytes(999), "999 B");
    }
}
