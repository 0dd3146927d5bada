//! End-to-end timing of every family in a model folder on one image, as JSON, on the CPU backend
//! or (`--backend gpu`) on a wgpu adapter.
//!
//! Driven by `training/tfci_training/bench_peer.py` (`just bench-cpu`, and `just bench-cuda` on a
//! machine with an NVIDIA GPU), which exports random-init models at CompressAI's zoo widths, times
//! CompressAI/PyTorch on the same image in the same run and reports the ratio. Usage:
//! `cargo bench -p codec-core --bench codec -- --models DIR --image PNG [--runs 7] [--warmup 2]
//!  [--threads 2] [--backend cpu|gpu] [--adapter SUBSTRING]`

use std::path::PathBuf;

use codec_core::container::Packed;
use codec_core::model::Registry;
use codec_core::{Backend, BackendKind, BackendOptions, Codec, Limits, RgbImage};
use serde_json::{json, Value};

mod common;
use common::median_ms;

struct Args {
    models: PathBuf,
    image: PathBuf,
    runs: usize,
    warmup: usize,
    threads: usize,
    backend: BackendOptions,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        models: "models".into(),
        image: PathBuf::new(),
        runs: 7,
        warmup: 2,
        threads: 2,
        backend: BackendOptions {
            kind: BackendKind::Cpu,
            adapter: None,
        },
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{k} needs a value"));
        match k.as_str() {
            "--models" => a.models = val()?.into(),
            "--image" => a.image = val()?.into(),
            "--runs" => a.runs = val()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--warmup" => a.warmup = val()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--threads" => a.threads = val()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--backend" => {
                a.backend.kind = match val()?.as_str() {
                    "cpu" => BackendKind::Cpu,
                    "gpu" => BackendKind::Gpu,
                    other => return Err(format!("--backend: {other} (cpu or gpu)")),
                }
            }
            "--adapter" => a.backend.adapter = Some(val()?),
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.image.as_os_str().is_empty() {
        return Err("--image is required".into());
    }
    Ok(a)
}

fn main() -> Result<(), String> {
    let args = parse_args()?;
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global()
        .map_err(|e| e.to_string())?;
    let img = image::open(&args.image)
        .map_err(|e| format!("{}: {e}", args.image.display()))?
        .into_rgb8();
    let image = RgbImage {
        width: img.width() as usize,
        height: img.height() as usize,
        data: img.into_raw(),
    };
    let registry = Registry::open(&args.models).map_err(|e| e.to_string())?;
    let limits = Limits::default();
    let backend = Backend::select(&args.backend).map_err(|e| e.to_string())?;
    eprintln!("backend: {}", backend.describe());
    let mut rows = Vec::new();
    for entry in registry.families() {
        let family = registry.load(entry).map_err(|e| e.to_string())?;
        let codec = Codec::with_backend(family, &backend).map_err(|e| e.to_string())?;
        let level = codec.family().levels.div_ceil(2);
        let bytes = codec
            .compress(&image, level, &limits)
            .map_err(|e| e.to_string())?;
        let packed = Packed::from_bytes(&bytes).map_err(|e| e.to_string())?;
        let x = image.to_tensor().map_err(|e| e.to_string())?;
        let fam = codec.family();
        let (w, h) = (image.width, image.height);
        let g_a = codec_core::cpu::CpuNet::prepare(&fam.g_a, codec_core::cpu::Math::Fast);
        let g_a_ms = median_ms(args.warmup, args.runs, || g_a.forward(&x));
        let compress_ms = median_ms(args.warmup, args.runs, || {
            codec.compress(&image, level, &limits)
        });
        let decompress_ms = median_ms(args.warmup, args.runs, || {
            codec.decompress_packed(&packed, &limits)
        });
        if let Some(note) = codec.take_notes().first() {
            return Err(format!("{}: {note}", entry.family));
        }
        let macs = fam.g_a.macs((3, h, w)) + fam.g_s.macs(fam.g_a.output_shape((3, h, w)));
        rows.push(json!({
            "family": fam.name,
            "architecture": fam.architecture.as_str(),
            "N": fam.n,
            "M": fam.m,
            "level": level,
            "width": w,
            "height": h,
            "bytes": bytes.len(),
            // g_a alone on the CPU backend, whichever backend the codec runs on.
            "cpu_g_a_ms": g_a_ms,
            "compress_ms": compress_ms,
            "decompress_ms": decompress_ms,
            "transform_gmacs": macs as f64 / 1e9,
            "threads": args.threads,
            "backend": backend.describe(),
        }));
        eprintln!(
            "{}: compress {compress_ms:.1} ms, decompress {decompress_ms:.1} ms",
            fam.name
        );
    }
    println!("{:#}", Value::Array(rows));
    Ok(())
}
