//! Golden parity with the PyTorch reference (`training/tfci_training/fixtures.py`): symbols and scale
//! indexes exactly, floats within tolerance, for one small image and a tiny random model per family.

use codec_core::{Limits, RgbImage};
use tfci_tests::{first_mismatch, max_abs_diff, Fixture, ARCHITECTURES};

/// Transforms run different float kernels than PyTorch; 1e-4 on the [0, 1] scale is the contract.
const X_HAT_TOL: f32 = 1e-4;

fn check(arch: &str) {
    let f = Fixture::load(arch);
    assert_eq!(
        f.u8s("x"),
        f.image.data,
        "{arch}: input.png and golden x differ"
    );
    let lat = f
        .codec
        .analyze(&f.image, f.level, &Limits::default())
        .expect("analyze");

    let (d, at) = max_abs_diff(&lat.y.data, &f.f32s("y"));
    assert!(d < 1e-3, "{arch}: y differs by {d} at {at}");
    assert_eq!(
        f.shape("y_symbols"),
        [lat.y.c, lat.y.h, lat.y.w],
        "{arch}: y shape"
    );
    let expect = f.i32s("y_symbols");
    assert_eq!(
        first_mismatch(&lat.y_symbols, &expect),
        None,
        "{arch}: y symbols (index, rust, torch)"
    );
    assert_eq!(lat.y_symbols.len(), expect.len());

    if f.has("z_symbols") {
        let z = lat.z.as_ref().expect("z");
        let (d, at) = max_abs_diff(&z.data, &f.f32s("z"));
        assert!(d < 1e-3, "{arch}: z differs by {d} at {at}");
        let expect = f.i32s("z_symbols");
        let got = lat.z_symbols.as_ref().expect("z symbols");
        assert_eq!(got.len(), expect.len(), "{arch}: z symbol count");
        assert_eq!(
            first_mismatch(got, &expect),
            None,
            "{arch}: z symbols (index, rust, torch)"
        );
        let expect: Vec<u32> = f.i32s("scale_indexes").iter().map(|&i| i as u32).collect();
        let got = lat.scale_indexes.as_ref().expect("indexes");
        assert_eq!(got.len(), expect.len(), "{arch}: index count");
        assert_eq!(
            first_mismatch(got, &expect),
            None,
            "{arch}: scale indexes (index, rust, torch)"
        );
        let (d, at) = max_abs_diff(&lat.means.as_ref().expect("means").data, &f.f32s("means"));
        assert!(d < 1e-4, "{arch}: means differ by {d} at {at}");
    }

    // The decoder's reconstruction from the actual bytes.
    let bytes = f.codec.encode(&lat).expect("encode");
    let packed = codec_core::container::Packed::from_bytes(&bytes).expect("parse");
    let dec = f
        .codec
        .decode_latents(&packed, &Limits::default())
        .expect("decode");
    let (y_hat, x_shape) = (dec.y_hat, dec.x_shape);
    let (d, at) = max_abs_diff(&y_hat.data, &f.f32s("y_hat"));
    assert!(d < 1e-4, "{arch}: y_hat differs by {d} at {at}");
    let x_hat = f.codec.synthesize(&y_hat, x_shape).expect("synthesis");
    assert_eq!(f.shape("x_hat"), [3, f.image.height, f.image.width]);
    let (d, at) = max_abs_diff(&x_hat.data, &f.f32s("x_hat"));
    println!(
        "{arch}: {} y symbols, max |x_hat - torch| = {d:e}",
        lat.y_symbols.len()
    );
    assert!(d <= X_HAT_TOL, "{arch}: x_hat differs by {d} at {at}");
    let img = RgbImage::from_tensor(&x_hat).expect("an RGB tensor");
    assert_eq!((img.width, img.height), (f.image.width, f.image.height));
}

#[test]
fn bmshj2018_factorized() {
    check(ARCHITECTURES[0]);
}

#[test]
fn b2018_gdn() {
    check(ARCHITECTURES[1]);
}

#[test]
fn mbt2018_mean() {
    check(ARCHITECTURES[2]);
}
