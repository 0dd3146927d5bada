//! Which outputs a command writes for its path arguments: tfci.py's `INPUT [OUTPUT]`, or a batch.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::files::{Input, Output};
use crate::report::{Reporter, Totals};
use crate::with_suffix;

/// One input and where its result goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub input: Input,
    pub output: Output,
}

/// Turns the command's paths into jobs.
///
/// One path is an input (output: the path plus `suffix`, or stdout for `-`); two paths are
/// tfci.py's `INPUT OUTPUT`; three or more paths, or any number with `out_dir`, are inputs each
/// written to its own default name (inside `out_dir` when given).
pub fn plan(paths: &[PathBuf], out_dir: Option<&Path>, suffix: &str) -> Result<Vec<Job>> {
    let default_output = |input: &Input| -> Result<Output> {
        match (input, out_dir) {
            (Input::Stdin, None) => Ok(Output::Stdout),
            (Input::Stdin, Some(_)) => {
                bail!("stdin has no file name to write under --out-dir; name the OUTPUT instead")
            }
            (Input::Path(p), None) => Ok(Output::Path(with_suffix(p, suffix))),
            (Input::Path(p), Some(dir)) => match p.file_name() {
                Some(name) => Ok(Output::Path(with_suffix(&dir.join(name), suffix))),
                None => bail!("{} has no file name", p.display()),
            },
        }
    };
    let jobs: Vec<Job> = match (paths, out_dir) {
        ([], _) => bail!("no input given"),
        ([input, output], None) => vec![Job {
            input: Input::from_arg(input),
            output: Output::from_arg(output),
        }],
        _ => paths
            .iter()
            .map(|p| {
                let input = Input::from_arg(p);
                Ok(Job {
                    output: default_output(&input)?,
                    input,
                })
            })
            .collect::<Result<_>>()?,
    };
    if jobs.len() > 1 {
        if jobs.iter().any(|j| j.input == Input::Stdin) {
            bail!("- (stdin) can only be the single input of a command");
        }
        let mut seen = HashSet::new();
        for j in &jobs {
            if let Output::Path(p) = &j.output {
                if !seen.insert(p.clone()) {
                    bail!(
                        "two inputs would both be written to {}; rename one of them",
                        p.display()
                    );
                }
            }
        }
    }
    Ok(jobs)
}

/// Runs `one` on every job: a failing input is reported and the others still run (the command
/// then fails), the progress bar advances, and the summary ends it. With a single job, its error is
/// the command's error.
pub fn run_jobs(
    jobs: &[Job],
    reporter: &Reporter,
    verb: &str,
    mut one: impl FnMut(&Job, &mut Totals) -> Result<()>,
) -> Result<()> {
    let start = std::time::Instant::now();
    let mut totals = Totals {
        files: jobs.len(),
        ..Totals::default()
    };
    for job in jobs {
        if let Err(e) = one(job, &mut totals) {
            if jobs.len() == 1 {
                return Err(e);
            }
            totals.failed += 1;
            reporter.error(&e);
        }
        reporter.advance(&job.input.to_string());
    }
    totals.seconds = start.elapsed().as_secs_f64();
    reporter.finish(&totals, verb);
    if totals.failed > 0 {
        bail!("{} of {} inputs failed", totals.failed, totals.files);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(p: &[&str]) -> Vec<PathBuf> {
        p.iter().map(PathBuf::from).collect()
    }

    fn out(p: &str) -> Output {
        Output::Path(PathBuf::from(p))
    }

    #[test]
    fn tfci_py_forms() {
        let j = plan(&paths(&["a.png"]), None, ".tfci").expect("plan");
        assert_eq!(j[0].output, out("a.png.tfci"));
        let j = plan(&paths(&["a.png", "b.bin"]), None, ".tfci").expect("plan");
        assert_eq!(j.len(), 1);
        assert_eq!(j[0].output, out("b.bin"));
        let j = plan(&paths(&["-", "-"]), None, ".tfci").expect("plan");
        assert_eq!(
            (&j[0].input, &j[0].output),
            (&Input::Stdin, &Output::Stdout)
        );
        let j = plan(&paths(&["-"]), None, ".tfci").expect("plan");
        assert_eq!(j[0].output, Output::Stdout);
    }

    #[test]
    fn batches() {
        let j = plan(&paths(&["a.png", "b.png", "c.png"]), None, ".tfci").expect("plan");
        assert_eq!(j.len(), 3);
        assert_eq!(j[2].output, out("c.png.tfci"));
        let j = plan(&paths(&["x/a.png", "b.png"]), Some(Path::new("o")), ".tfci").expect("plan");
        assert_eq!(j[0].output, out("o/a.png.tfci"));
        assert_eq!(j[1].output, out("o/b.png.tfci"));
    }

    #[test]
    fn refusals() {
        assert!(plan(&paths(&["a.png", "-", "c.png"]), None, ".tfci").is_err());
        assert!(plan(&paths(&["-"]), Some(Path::new("o")), ".tfci").is_err());
        let e = plan(
            &paths(&["x/a.png", "y/a.png"]),
            Some(Path::new("o")),
            ".tfci",
        )
        .expect_err("same output twice");
        assert!(e.to_string().contains("both be written"), "{e}");
    }
}
