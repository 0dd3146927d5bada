//! Packed weights kept in files between processes (`codec-core/src/cpu/pack_cache.rs`): a codec
//! that reads them codes exactly what one that packs its own does, a damaged or foreign file is
//! packed anew and replaced, and a family keeps the files of one model file.

use std::path::Path;

use codec_core::container::Packed;
use codec_core::model::Registry;
use codec_core::{Codec, Limits};

/// Every shipped family (their wide layers are the Winograd ones, with more than the fixtures'
/// channels), on the fixture image: bytes and pixels with and without the files, and a second
/// codec reading every buffer from them.
#[test]
fn packed_weights_from_files_code_the_same() {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let registry = Registry::open(&models).expect("models");
    let image = tfci_cli::read_image(&tfci_tests::fixtures_dir().join("mbt2018-mean/input.png"))
        .expect("image");
    let limits = Limits::default();
    let cache = tempfile::tempdir().expect("tempdir");
    for entry in registry.families() {
        let level = entry.levels.div_ceil(2);
        let codec = |with_files: bool| {
            let c = Codec::new(registry.load(entry).expect("load")).expect("codec");
            if with_files {
                c.use_pack_cache(cache.path());
            }
            c
        };
        let run = |c: &Codec| {
            let bytes = c.compress(&image, level, &limits).expect("compress");
            let packed = Packed::from_bytes(&bytes).expect("parse");
            (
                bytes,
                c.decompress_packed(&packed, &limits).expect("decompress"),
            )
        };
        let plain = run(&codec(false));
        let first = codec(true);
        assert_eq!(
            run(&first),
            plain,
            "{}: packing beside a cache",
            entry.family
        );
        // Another model file of the family (an earlier release's) is pruned when this one saves;
        // a folder that is not a family's model file stays.
        let stale = cache
            .path()
            .join(format!("{}-0123456789abcdef", entry.family));
        let other = cache.path().join(format!("{}-notes", entry.family));
        for f in [&stale, &other] {
            std::fs::create_dir_all(f).expect("folder");
            std::fs::write(f.join("g_a.pack"), b"old").expect("file");
        }
        assert!(
            first.save_pack_cache().expect("saved") > 0,
            "{}: nothing saved",
            entry.family
        );
        assert!(
            !stale.exists(),
            "{}: another model file's folder kept",
            entry.family
        );
        assert!(
            other.join("g_a.pack").exists(),
            "{}: an unrelated folder removed",
            entry.family
        );
        let second = codec(true);
        assert_eq!(
            run(&second),
            plain,
            "{}: weights from the files",
            entry.family
        );
        assert_eq!(
            second.save_pack_cache().expect("nothing to save"),
            0,
            "{}: a buffer was packed again instead of read",
            entry.family
        );
        // Cut one file short: that net packs its weights again, codes the same, and replaces it.
        let folder = std::fs::read_dir(cache.path())
            .expect("cache folder")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.to_string_lossy().contains(&entry.family))
            .expect("the family's folder");
        let g_a = folder.join("g_a.pack");
        let len = std::fs::metadata(&g_a).expect("g_a's file").len();
        std::fs::write(
            &g_a,
            &std::fs::read(&g_a).expect("read")[..(len / 2) as usize],
        )
        .expect("cut");
        let third = codec(true);
        assert_eq!(run(&third), plain, "{}: a cut file", entry.family);
        assert!(
            third.save_pack_cache().expect("saved") > 0,
            "{}: not replaced",
            entry.family
        );
        assert_eq!(std::fs::metadata(&g_a).expect("g_a's file").len(), len);
    }
}
