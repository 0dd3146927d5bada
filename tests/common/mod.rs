//! Helpers shared by the integration tests: the fixture folders and their golden tensors.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::PathBuf;

use codec_core::model::Registry;
use codec_core::{Codec, RgbImage};
use safetensors::{Dtype, SafeTensors};

/// The architectures that have a fixture folder.
pub const ARCHITECTURES: [&str; 3] = ["bmshj2018-factorized", "b2018-gdn", "mbt2018-mean"];

/// `tests/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// One architecture's fixture: its tiny model, input image and the PyTorch reference tensors.
#[derive(Debug)]
pub struct Fixture {
    pub registry: Registry,
    pub codec: Codec,
    pub image: RgbImage,
    pub level: u32,
    golden: HashMap<String, (Dtype, Vec<usize>, Vec<u8>)>,
}

impl Fixture {
    pub fn load(arch: &str) -> Fixture {
        let dir = fixtures_dir().join(arch);
        let registry = Registry::open(&dir).unwrap();
        let entry = registry.families()[0].clone();
        let codec = Codec::new(registry.load(&entry).unwrap()).unwrap();
        let image = tfci_cli::read_image(&dir.join("input.png")).unwrap();
        let bytes = std::fs::read(dir.join("golden.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let golden: HashMap<_, _> = st
            .tensors()
            .into_iter()
            .map(|(name, v)| (name, (v.dtype(), v.shape().to_vec(), v.data().to_vec())))
            .collect();
        let mut f = Fixture {
            registry,
            codec,
            image,
            level: 0,
            golden,
        };
        f.level = f.i32s("level")[0] as u32;
        f
    }

    /// The model name of the fixture's level.
    pub fn model_name(&self) -> String {
        self.codec.model_name(self.level)
    }

    pub fn has(&self, name: &str) -> bool {
        self.golden.contains_key(name)
    }

    pub fn shape(&self, name: &str) -> &[usize] {
        &self.golden[name].1
    }

    pub fn f32s(&self, name: &str) -> Vec<f32> {
        let (dt, _, data) = &self.golden[name];
        assert_eq!(*dt, Dtype::F32, "{name}");
        data.chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    pub fn i32s(&self, name: &str) -> Vec<i32> {
        let (dt, _, data) = &self.golden[name];
        assert_eq!(*dt, Dtype::I32, "{name}");
        data.chunks_exact(4)
            .map(|b| i32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    pub fn u8s(&self, name: &str) -> Vec<u8> {
        self.golden[name].2.clone()
    }
}

/// Largest absolute difference, and where it is.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> (f32, usize) {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .enumerate()
        .fold((0.0f32, 0), |(m, at), (i, (x, y))| {
            let d = (x - y).abs();
            if d > m || d.is_nan() {
                (d, i)
            } else {
                (m, at)
            }
        })
}

/// Index and values of the first difference of two integer sequences.
pub fn first_mismatch<T: PartialEq + Copy>(a: &[T], b: &[T]) -> Option<(usize, T, T)> {
    a.iter()
        .zip(b)
        .enumerate()
        .find(|(_, (x, y))| x != y)
        .map(|(i, (x, y))| (i, *x, *y))
}
