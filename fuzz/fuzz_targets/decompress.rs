//! Any bytes through the whole decoder of each fixture family: an image or an error, never a panic.
//! Seed corpus: files made by `tfci-enc` with the fixture models (see fuzz/README.md).
#![no_main]

use std::sync::OnceLock;

use codec_core::model::Registry;
use codec_core::Limits;

fn registries() -> &'static [Registry] {
    static R: OnceLock<Vec<Registry>> = OnceLock::new();
    R.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        ["bmshj2018-factorized", "b2018-gdn", "mbt2018-mean"]
            .iter()
            .filter_map(|a| Registry::open(root.join(a)).ok())
            .collect()
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Small limits keep each run fast; the limit checks themselves are part of what is fuzzed.
    let limits = Limits { max_width: 512, max_height: 512, max_pixels: 1 << 16, max_memory: 64 << 20 };
    for r in registries() {
        let _ = codec_core::codec::decompress(r, data, &limits);
    }
});
