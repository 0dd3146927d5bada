//! Whether this machine may have a hardware GPU at all, asked before wgpu is.
//!
//! Why: `auto` enumerated wgpu's adapters on every call, and on a machine without a GPU that
//! loads the Vulkan loader and every installed driver, Mesa's software rasterizer and its LLVM
//! among them, only to find the software adapter `auto` never takes: a one-shot compress of a
//! Kodak image took 113 ms with it, 80 ms with `--backend cpu` (docs/benchmarks.md, fourteenth
//! session). On Linux a hardware GPU's user-space driver reaches
//! the kernel through a device node: DRM's `/dev/dri` (Mesa's AMD, Intel, Arm, Qualcomm,
//! Broadcom and Apple drivers), NVIDIA's `/dev/nvidia*`, WSL's `/dev/dxg`, and the vendor
//! kernels' `kgsl`, `mali`, `galcore` and `pvr` nodes. Without any, `auto` keeps the CPU and
//! says so; `--backend gpu` and `--adapter` still ask wgpu. Elsewhere the driver is asked.

use std::path::Path;

/// Names in `/dev` that hardware GPU drivers open, besides DRM's nodes in `/dev/dri`.
const NODE_PREFIXES: [&str; 6] = ["nvidia", "dxg", "kgsl", "mali", "galcore", "pvr"];

/// The note `auto` gives when it skips wgpu.
pub const NO_DEVICE_NODE: &str =
    "no GPU device node (/dev/dri, /dev/nvidia*, /dev/dxg) on this machine; using the CPU backend";

/// `false` only where no hardware GPU can be reached (Linux without a GPU device node).
pub fn may_have_hardware_gpu() -> bool {
    #[cfg(target_os = "linux")]
    return has_device_node(Path::new("/dev"));
    #[cfg(not(target_os = "linux"))]
    true
}

/// Whether the device folder `dev` holds a GPU device node; `true` when it cannot be read (the
/// driver is asked then, as before).
fn has_device_node(dev: &Path) -> bool {
    let named = |dir: &Path, prefixes: &[&str]| {
        std::fs::read_dir(dir).map(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                prefixes.iter().any(|p| name.starts_with(p))
            })
        })
    };
    named(&dev.join("dri"), &["renderD", "card"]).unwrap_or(false)
        || named(dev, &NODE_PREFIXES).unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device folder with no GPU node says no; any one DRM, NVIDIA or WSL node says maybe, and
    /// so does a folder that cannot be read.
    #[test]
    fn device_nodes_decide() {
        let dev = tempfile::tempdir().expect("tempdir");
        let touch = |p: &str| {
            let path = dev.path().join(p);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, b"").expect("touch");
        };
        touch("null");
        touch("tty0");
        std::fs::create_dir(dev.path().join("dri")).expect("mkdir");
        assert!(!has_device_node(dev.path()));
        for node in ["dri/renderD128", "nvidia0", "dxg"] {
            let one = tempfile::tempdir().expect("tempdir");
            let path = one.path().join(node);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, b"").expect("touch");
            assert!(has_device_node(one.path()), "{node}");
        }
        assert!(has_device_node(&dev.path().join("missing")));
    }

    /// `auto` on a machine without a GPU device node is the CPU with the note, wgpu not asked; a
    /// machine with a node says the test is skipped.
    #[test]
    fn auto_without_a_node_keeps_the_cpu() {
        if may_have_hardware_gpu() {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED auto_without_a_node_keeps_the_cpu: this machine has a GPU device node"
            );
            return;
        }
        let backend = crate::Backend::select(&crate::BackendOptions::default()).expect("auto");
        assert!(!backend.is_gpu());
        assert!(backend.falls_back());
        assert_eq!(backend.note(), Some(NO_DEVICE_NODE));
    }
}
