//! `keep_freed_memory` on the main thread: a block of megabytes comes from the heap (not a mapping
//! of its own), so does a block another thread allocates, and a freed block's pages are reused.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn main() {
    tfci_cli::keep_freed_memory();
    let big = vec![1u8; 8 << 20];
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("read /proc/self/smaps");
    let heap = heap_range(&smaps).expect("a [heap] mapping");
    let at = std::hint::black_box(&big).as_ptr() as usize;
    assert!(
        (heap.0..heap.1).contains(&at),
        "an 8 MiB block at {at:x} lies outside the heap {heap:x?}"
    );
    drop(big);
    // Another thread's block: from the main heap (one arena), not a mapping or arena of its own.
    let addr = std::thread::spawn(|| {
        let v = vec![1u8; 1 << 20];
        std::hint::black_box(&v).as_ptr() as usize
    })
    .join()
    .expect("thread");
    assert!(
        (heap.0..heap.1).contains(&addr),
        "a worker thread's 1 MiB block at {addr:x} lies outside the heap {heap:x?}"
    );
    // Freed and allocated again: the same pages, no fresh faults.
    let first = vec![1u8; 4 << 20];
    drop(std::hint::black_box(first));
    let before = minor_faults();
    let again = vec![2u8; 4 << 20];
    std::hint::black_box(&again);
    let faults = minor_faults() - before;
    assert!(
        faults < 64,
        "4 MiB allocated again after a free faulted {faults} pages in"
    );
    println!("heap policy: ok");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn main() {
    println!("skipped: the heap policy is glibc's (Linux with the GNU C library only)");
}

/// The address range of the `[heap]` mappings.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn heap_range(smaps: &str) -> Option<(usize, usize)> {
    let ranges = smaps
        .lines()
        .filter(|l| l.ends_with("[heap]"))
        .filter_map(|l| {
            let (a, b) = l.split_whitespace().next()?.split_once('-')?;
            Some((
                usize::from_str_radix(a, 16).ok()?,
                usize::from_str_radix(b, 16).ok()?,
            ))
        });
    ranges.reduce(|(a0, a1), (b0, b1)| (a0.min(b0), a1.max(b1)))
}

/// The process's minor page faults so far.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn minor_faults() -> i64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // Field 10 (minflt), counted after the command name's closing parenthesis.
    let rest = &stat[stat.rfind(')').expect("stat") + 2..];
    rest.split_whitespace()
        .nth(7)
        .and_then(|f| f.parse().ok())
        .expect("minflt")
}
