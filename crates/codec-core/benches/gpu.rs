//! GPU backend vs CPU backend, per kernel and end to end, as JSON (`just bench`).
//!
//! Both backends run in the same process on the same inputs, so the ratio is meaningful on the
//! machine at hand; absolute GPU times only mean something on a real GPU (the JSON names the
//! adapter). Per kernel: the wall time of `GpuNet::forward` (upload and readback included: what
//! the codec pays) and the device time of `GpuNet::device_time` (`--repeats` passes in one
//! submission, no transfers) with f16 and with f32 weight storage, the achieved GMAC/s and, given
//! `--peak-tflops` (the adapter's FP32 peak; one MAC is two FLOPs), the fraction of that peak.
//! The `elementwise pass` row bounds what fusing GDN into the convolution before it could save:
//! such a fusion still does the GDN's c*c MACs per pixel and only spares writing the convolution's
//! output and reading it back, one read and one write of the tensor, which this pass (an in-place
//! LeakyReLU after the GDN, timed as the difference) costs. Usage:
//! `cargo bench -p codec-core --bench gpu -- [--out FILE] [--adapter SUBSTRING] [--image PNG]
//!  [--models DIR] [--runs 3] [--warmup 1] [--repeats 10] [--peak-tflops F] [--only KERNEL]
//!  [--skip-e2e]`
//! (relative paths from the workspace root; the image defaults to
//! `../shared/data/kodak/kodim01.png`, else a synthetic 768x512 one).

use std::path::PathBuf;
use std::sync::Arc;

use codec_core::container::Packed;
use codec_core::cpu::{CpuNet, Math};
use codec_core::gpu::{GpuContext, GpuNet};
use codec_core::model::graph::{Layer, Net};
use codec_core::model::Registry;
use codec_core::tensor::Tensor;
use codec_core::{Backend, Codec, Limits, RgbImage};
use serde_json::{json, Value};

mod common;
use common::{conv, gdn, median, median_ms, values};

struct Args {
    out: Option<PathBuf>,
    adapter: Option<String>,
    image: Option<PathBuf>,
    models: PathBuf,
    runs: usize,
    warmup: usize,
    repeats: usize,
    peak_tflops: Option<f64>,
    /// Only the kernels whose name contains this.
    only: Option<String>,
    e2e: bool,
}

fn parse_args() -> Result<Args, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let kodim = root.join("../shared/data/kodak/kodim01.png");
    let mut a = Args {
        out: None,
        adapter: None,
        image: kodim.exists().then_some(kodim),
        models: root.join("models"),
        runs: 3,
        warmup: 1,
        repeats: 10,
        peak_tflops: None,
        only: None,
        e2e: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{k} needs a value"));
        match k.as_str() {
            // Relative to the workspace root: cargo runs benches in the crate's folder.
            "--out" => a.out = Some(root.join(val()?)),
            "--adapter" => a.adapter = Some(val()?).filter(|s| !s.is_empty()),
            "--image" => a.image = Some(root.join(val()?)),
            "--models" => a.models = root.join(val()?),
            "--runs" => a.runs = val()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--warmup" => a.warmup = val()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--repeats" => a.repeats = val()?.parse().map_err(|e| format!("--repeats: {e}"))?,
            "--peak-tflops" => {
                a.peak_tflops = Some(val()?.parse().map_err(|e| format!("--peak-tflops: {e}"))?)
            }
            "--only" => a.only = Some(val()?),
            "--skip-e2e" => a.e2e = false,
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// A benchmarked kernel: name, layers, input shape `(c, h, w)`.
type Case = (&'static str, Vec<Layer>, (usize, usize, usize));

/// The models' layers at the shapes a 768x512 image gives them.
fn kernels() -> Vec<Case> {
    vec![
        (
            "conv 3->128 k5 s2 (g_a first, bmshj/mbt)",
            vec![conv(3, 128, 5, 2, false)],
            (3, 512, 768),
        ),
        (
            "conv 3->128 k9 s4 (g_a first, b2018)",
            vec![conv(3, 128, 9, 4, false)],
            (3, 512, 768),
        ),
        (
            "conv 128->128 k5 s2",
            vec![conv(128, 128, 5, 2, false)],
            (128, 256, 384),
        ),
        (
            "conv 128->192 k5 s2 (g_a last)",
            vec![conv(128, 192, 5, 2, false)],
            (128, 64, 96),
        ),
        (GDN_ROW, vec![gdn(128, false)], (128, 256, 384)),
        (
            PASS_ROW,
            vec![gdn(128, false), Layer::LeakyRelu { slope: 1.0 }],
            (128, 256, 384),
        ),
        ("igdn 128", vec![gdn(128, true)], (128, 256, 384)),
        (
            "deconv 192->128 k5 s2 (g_s first)",
            vec![conv(192, 128, 5, 2, true)],
            (192, 32, 48),
        ),
        (
            "deconv 128->128 k5 s2",
            vec![conv(128, 128, 5, 2, true)],
            (128, 128, 192),
        ),
        (
            "deconv 128->3 k5 s2 (g_s last, bmshj/mbt)",
            vec![conv(128, 3, 5, 2, true)],
            (128, 256, 384),
        ),
        (
            "deconv 128->3 k9 s4 (g_s last, b2018)",
            vec![conv(128, 3, 9, 4, true)],
            (128, 128, 192),
        ),
        (
            "conv 192->128 k3 s1 + leaky relu (h_a first)",
            vec![
                conv(192, 128, 3, 1, false),
                Layer::LeakyRelu { slope: 0.01 },
            ],
            (192, 32, 48),
        ),
    ]
}

/// The two rows whose difference is the `elementwise pass`.
const GDN_ROW: &str = "gdn 128";
const PASS_ROW: &str = "gdn 128 + elementwise pass";

/// Values of the tensor the `elementwise pass` row reads and writes.
const PASS_VALUES: usize = 128 * 256 * 384;

/// Values of every tensor a GDN of `net` normalizes, for an input of `shape`.
fn gdn_values(net: &Net, mut shape: (usize, usize, usize)) -> usize {
    let mut n = 0;
    for layer in &net.layers {
        if matches!(layer, Layer::Gdn { .. }) {
            n += shape.0 * shape.1 * shape.2;
        }
        shape = layer.output_shape(shape);
    }
    n
}

fn load_image(a: &Args) -> Result<RgbImage, String> {
    match &a.image {
        Some(p) => {
            let img = image::open(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .into_rgb8();
            Ok(RgbImage {
                width: img.width() as usize,
                height: img.height() as usize,
                data: img.into_raw(),
            })
        }
        None => {
            let (w, h) = (768, 512);
            let data = (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect();
            Ok(RgbImage {
                width: w,
                height: h,
                data,
            })
        }
    }
}

fn main() -> Result<(), String> {
    let args = parse_args()?;
    let ctx = match GpuContext::open(args.adapter.as_deref(), true) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            let v = json!({ "skipped": format!("no wgpu adapter: {e}") });
            println!("{v:#}");
            return Ok(());
        }
    };
    let info = ctx.info().clone();
    eprintln!("adapter: {}", info.describe());
    let mut kernel_rows = Vec::new();
    let wanted = |name: &str| args.only.as_deref().is_none_or(|o| name.contains(o));
    for (name, layers, (c, h, w)) in kernels().into_iter().filter(|k| wanted(k.0)) {
        let net = Net {
            name: name.into(),
            layers,
        };
        let x = Tensor::new(c, h, w, values(c * h * w, 4, 1.0)).expect("shape");
        let cpu = CpuNet::prepare(&net, Math::Fast);
        let gpu = GpuNet::prepare(&ctx, &net).map_err(|e| e.to_string())?;
        let gpu_f32 = GpuNet::prepare_f32(&ctx, &net).map_err(|e| e.to_string())?;
        let cpu_ms = median_ms(args.warmup, args.runs, || cpu.forward(&x));
        let gpu_ms = median_ms(args.warmup, args.runs, || gpu.forward(&x));
        let device_ms = |g: &GpuNet| -> Result<f64, String> {
            let t = (0..args.runs.max(1))
                .map(|_| {
                    g.device_time(&x, args.repeats)
                        .map(|d| d.as_secs_f64() * 1e3)
                })
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            Ok(median(t))
        };
        let dev_ms = device_ms(&gpu)?;
        let gmacs = net.macs((c, h, w)) as f64 / 1e9;
        let mut row = json!({
            "kernel": name,
            "input": [c, h, w],
            "gmacs": gmacs,
            "cpu_ms": cpu_ms,
            "cpu_gmac_per_s": gmacs / cpu_ms * 1e3,
            "gpu_ms": gpu_ms,
            "gpu_over_cpu": gpu_ms / cpu_ms,
            "gpu_device_ms": dev_ms,
            "gpu_device_gmac_per_s": gmacs / dev_ms * 1e3,
        });
        if gpu.f16_weights() != gpu_f32.f16_weights() {
            row["gpu_device_ms_f32_weights"] = json!(device_ms(&gpu_f32)?);
        }
        if let Some(peak) = args.peak_tflops {
            row["gpu_fraction_of_fp32_peak"] = json!(2.0 * gmacs / dev_ms * 1e3 / (peak * 1e3));
        }
        eprintln!("{name}: cpu {cpu_ms:.1} ms, gpu {gpu_ms:.1} ms wall, {dev_ms:.2} ms on device");
        kernel_rows.push(row);
    }
    // What one read and one write of GDN's tensor costs: the difference of the two GDN rows.
    let dev = |name: &str| {
        kernel_rows
            .iter()
            .find(|r| r["kernel"] == name)
            .and_then(|r| r["gpu_device_ms"].as_f64())
    };
    let pass_ms = dev(PASS_ROW).zip(dev(GDN_ROW)).map(|(a, b)| a - b);
    let mut e2e_rows = Vec::new();
    if args.e2e {
        let image = load_image(&args)?;
        let registry = Registry::open(&args.models).map_err(|e| e.to_string())?;
        let limits = Limits::default();
        let backend = Backend::from_context(Arc::clone(&ctx));
        for entry in registry.families() {
            let family = registry.load(entry).map_err(|e| e.to_string())?;
            let level = entry.levels.div_ceil(2);
            let f16 = GpuNet::prepare(&ctx, &family.g_a)
                .map_err(|e| e.to_string())?
                .f16_weights();
            let x_shape = (3, image.height, image.width);
            let gdn_values = gdn_values(&family.g_a, x_shape)
                + gdn_values(&family.g_s, family.g_a.output_shape(x_shape));
            let mut row = json!({
                "family": entry.family,
                "level": level,
                "width": image.width,
                "height": image.height,
                "f16_weights": f16,
                // Upper bound on what fusing every GDN into its convolution saves per image.
                "gdn_fusion_bound_ms": pass_ms.map(|p| p * gdn_values as f64 / PASS_VALUES as f64),
            });
            for (label, codec) in [
                ("cpu", Codec::new(family.clone())),
                ("gpu", Codec::with_backend(family.clone(), &backend)),
            ] {
                let codec = codec.map_err(|e| e.to_string())?;
                let bytes = codec
                    .compress(&image, level, &limits)
                    .map_err(|e| e.to_string())?;
                let packed = Packed::from_bytes(&bytes).map_err(|e| e.to_string())?;
                let c_ms = median_ms(args.warmup, args.runs, || {
                    codec.compress(&image, level, &limits)
                });
                let d_ms = median_ms(args.warmup, args.runs, || {
                    codec.decompress_packed(&packed, &limits)
                });
                if !codec.take_notes().is_empty() {
                    return Err(format!("{}: the GPU fell back to the CPU", entry.family));
                }
                eprintln!(
                    "{} {label}: compress {c_ms:.1} ms, decompress {d_ms:.1} ms",
                    entry.family
                );
                row[format!("{label}_compress_ms")] = json!(c_ms);
                row[format!("{label}_decompress_ms")] = json!(d_ms);
            }
            e2e_rows.push(row);
        }
    }
    let report: Value = json!({
        "adapter": {
            "name": info.name,
            "backend": info.backend,
            "device_type": info.device_type,
            "driver": format!("{} {}", info.driver, info.driver_info),
            "software": info.software,
        },
        "cpu_threads": rayon::current_num_threads(),
        "runs": args.runs,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "peak_tflops": args.peak_tflops,
        "note": "gpu_ms and the end-to-end times are wall times (upload and readback included); gpu_device_ms excludes transfers",
        "kernels": kernel_rows,
        "elementwise_pass_ms": pass_ms,
        "end_to_end": e2e_rows,
    });
    let text = format!("{report:#}");
    println!("{text}");
    if let Some(out) = &args.out {
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        std::fs::write(out, text + "\n").map_err(|e| format!("{}: {e}", out.display()))?;
    }
    Ok(())
}
