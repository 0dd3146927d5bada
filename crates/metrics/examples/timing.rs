//! Times PSNR, SSIM and MS-SSIM on one image pair (release build):
//!
//! ```text
//! cargo run --release -p metrics --example timing [REFERENCE.png DISTORTED.png]
//! ```
//!
//! Without arguments it uses a synthetic 768x512 pair (a smooth pattern and a noisy copy).

use std::time::Instant;

use metrics::{ms_ssim, psnr_image, ssim, Image};

fn synthetic(w: usize, h: usize) -> (Vec<u8>, Vec<u8>) {
    let mut a = Vec::with_capacity(w * h * 3);
    let mut b = Vec::with_capacity(w * h * 3);
    let mut s = 0x9e37_79b9u32;
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let v = ((x * (c + 1) + y * 2) % 256) as f64 * 0.5
                    + 60.0 * ((x + y * c) as f64 * 0.05).sin()
                    + 64.0;
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                let n = f64::from(s >> 27) - 16.0;
                a.push(v.clamp(0.0, 255.0) as u8);
                b.push((v + n).clamp(0.0, 255.0) as u8);
            }
        }
    }
    (a, b)
}

fn load(path: &str) -> (Vec<u8>, usize, usize) {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    (img.into_raw(), w, h)
}

fn best_ms<T>(reps: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut out = f();
    for _ in 0..reps {
        let t = Instant::now();
        out = f();
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    (best, out)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (a, b, w, h) = if let [pa, pb] = args.as_slice() {
        let (a, w, h) = load(pa);
        let (b, wb, hb) = load(pb);
        assert_eq!((w, h), (wb, hb), "sizes differ");
        (a, b, w, h)
    } else {
        let (a, b) = synthetic(768, 512);
        (a, b, 768, 512)
    };
    let ia = Image::new(&a, w, h).expect("a");
    let ib = Image::new(&b, w, h).expect("b");
    let reps = 10;
    let (tp, p) = best_ms(reps, || psnr_image(ia, ib).expect("psnr"));
    let (ts, s) = best_ms(reps, || ssim(ia, ib).expect("ssim"));
    let (tm, m) = best_ms(reps, || ms_ssim(ia, ib).expect("ms-ssim"));
    println!(
        "{w}x{h}, {} rayon threads, best of {reps}:",
        rayon::current_num_threads()
    );
    println!("  PSNR    {p:.4} dB  {tp:.2} ms");
    println!("  SSIM    {s:.6}    {ts:.2} ms");
    println!("  MS-SSIM {m:.6}    {tm:.2} ms");
    println!("  SSIM + MS-SSIM     {:.2} ms", ts + tm);
}
