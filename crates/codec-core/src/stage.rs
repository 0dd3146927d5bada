//! Stage marks: where a one-shot call spends what a warm process does not (`just bench-anatomy`).
//!
//! Why: a one-shot compress costs about 1.5x the warm in-process one, and what remains is spread
//! over a dozen steps of a few milliseconds each (docs/benchmarks.md). With the `stage-marks`
//! feature each mark prints one line on stderr, `stage LABEL WALL_MS CPU_MS SYS_MS MINFLT MONO_US`
//! (wall time since the first mark; CPU, system time and minor page faults of the whole process,
//! from `getrusage`; `CLOCK_MONOTONIC` in microseconds, for the parent's clock; the last four Linux
//! only), so the benchmark can difference them. Without the feature a mark is nothing.

/// Marks the end of the stage `label` (a no-op without the `stage-marks` feature).
#[inline(always)]
pub fn mark(label: &str) {
    #[cfg(feature = "stage-marks")]
    imp::mark(label);
    #[cfg(not(feature = "stage-marks"))]
    let _ = label;
}

#[cfg(feature = "stage-marks")]
mod imp {
    use std::sync::OnceLock;
    use std::time::Instant;

    static START: OnceLock<Instant> = OnceLock::new();

    pub fn mark(label: &str) {
        let wall = START.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e3;
        let (cpu, sys, minflt, mono) = usage();
        eprintln!("stage {label} {wall:.3} {cpu:.3} {sys:.3} {minflt} {mono}");
    }

    /// CPU and system milliseconds and minor faults of the process so far, and the monotonic
    /// clock in microseconds.
    #[cfg(target_os = "linux")]
    #[allow(clippy::unnecessary_cast)] // `time_t` and `c_long` are 32 bits on 32-bit Linux.
    fn usage() -> (f64, f64, i64, i64) {
        // SAFETY: both calls write only the structs they are given; all-zero values of those
        // structs are valid.
        let (ru, ts) = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            let mut ts: libc::timespec = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_SELF, &mut ru);
            libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
            (ru, ts)
        };
        let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
        let sys = ms(ru.ru_stime);
        let mono = ts.tv_sec as i64 * 1_000_000 + ts.tv_nsec as i64 / 1000;
        (ms(ru.ru_utime) + sys, sys, ru.ru_minflt as i64, mono)
    }

    #[cfg(not(target_os = "linux"))]
    fn usage() -> (f64, f64, i64, i64) {
        (0.0, 0.0, 0, 0)
    }
}
