//! A convolution's weights as the model file stores them, f16, converted to f32 where they are read.
//!
//! The CPU kernels never read PyTorch's layout while they run: each layer repacks its weights at
//! its first run (Winograd's transform, GEMM panels, the exact kernel's rows). Those packers read the
//! halves a block at a time ([`Weights::read_into`]), so a process converts only the nets it runs
//! and makes no f32 copy of a whole tensor: a one-shot compress never touches `g_s`, and converting
//! every net at load (2.9-6.9 MB of fresh f32 pages for the shipped families, counted from their
//! files' headers) was most of the model's parse. Whatever wants the whole f32 tensor (the GPU
//! upload, the tests) derefs it, converted once.

use std::borrow::Cow;
use std::fmt;
use std::ops::{Deref, Range};
use std::sync::{Arc, OnceLock};

use half::slice::HalfFloatSliceExt;

/// Shared, cheap to clone; equal when the values are.
#[derive(Clone)]
pub struct Weights(Arc<Inner>);

struct Inner {
    len: usize,
    /// Where the halves live, when the values were not given as f32.
    halves: Option<Halves>,
    values: OnceLock<Box<[f32]>>,
}

/// `len` little-endian f16 values at byte `start` of a shared buffer (the model file's).
struct Halves {
    bytes: Arc<dyn AsRef<[u8]> + Send + Sync>,
    start: usize,
}

impl Halves {
    fn data(&self, range: Range<usize>) -> &[u8] {
        &(*self.bytes).as_ref()[self.start + 2 * range.start..self.start + 2 * range.end]
    }
}

impl Weights {
    /// `len` halves at byte `start` of `bytes`, checked to be there and finite: a non-finite
    /// half (exponent all ones) converts to a non-finite f32, which no layer may hold.
    pub(crate) fn from_halves(
        bytes: Arc<dyn AsRef<[u8]> + Send + Sync>,
        start: usize,
        len: usize,
    ) -> Result<Weights, BadHalves> {
        let data = (*bytes)
            .as_ref()
            .get(start..start.saturating_add(len.saturating_mul(2)))
            .ok_or(BadHalves("its bytes end past the file's"))?;
        // Exponent bits all ones: an infinity or a NaN. A fold without an early exit, a block
        // at a time, over the halves in place where they are aligned: it vectorizes.
        let finite_bits = |h: u16| h & 0x7c00 != 0x7c00;
        let finite = match bytemuck::try_cast_slice::<u8, u16>(data) {
            Ok(halves) if cfg!(target_endian = "little") => halves
                .chunks(1024)
                .all(|b| b.iter().fold(true, |ok, &h| ok & finite_bits(h))),
            _ => data.chunks(1024).all(|b| {
                b.chunks_exact(2).fold(true, |ok, b| {
                    ok & finite_bits(u16::from_le_bytes([b[0], b[1]]))
                })
            }),
        };
        if !finite {
            return Err(BadHalves("holds a non-finite value"));
        }
        Ok(Weights(Arc::new(Inner {
            len,
            halves: Some(Halves { bytes, start }),
            values: OnceLock::new(),
        })))
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.0.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// Values `start..start + dst.len()` into `dst`, from the f32 values where they were made,
    /// else converted from the halves (F16C's 8-wide instruction where the CPU has it).
    ///
    /// # Panics
    /// If the range is not inside the tensor.
    pub(crate) fn read_into(&self, start: usize, dst: &mut [f32]) {
        let range = start..start + dst.len();
        assert!(range.end <= self.0.len, "weights read out of range");
        match (self.0.values.get(), &self.0.halves) {
            (Some(v), _) => dst.copy_from_slice(&v[range]),
            (None, Some(h)) => convert(h.data(range), dst),
            (None, None) => unreachable!("weights without halves hold their values"),
        }
    }

    /// The whole tensor in f32: the values where they were made, else a fresh conversion (on all
    /// threads) that is not kept, for a packer whose reads stride across the tensor.
    pub(crate) fn to_f32(&self) -> Cow<'_, [f32]> {
        use rayon::prelude::*;
        match (self.0.values.get(), &self.0.halves) {
            (None, Some(_)) => {
                const CHUNK: usize = 1 << 16;
                let mut v = vec![0.0f32; self.0.len];
                v.par_chunks_mut(CHUNK)
                    .enumerate()
                    .for_each(|(i, d)| self.read_into(i * CHUNK, d));
                Cow::Owned(v)
            }
            _ => Cow::Borrowed(self),
        }
    }

    /// Values `range` as their own weights, sharing the halves where there are any.
    ///
    /// # Panics
    /// If the range is not inside the tensor.
    pub fn slice(&self, range: Range<usize>) -> Weights {
        assert!(
            range.start <= range.end && range.end <= self.0.len,
            "weights slice out of range"
        );
        match (self.0.values.get(), &self.0.halves) {
            (None, Some(h)) => Weights(Arc::new(Inner {
                len: range.len(),
                halves: Some(Halves {
                    bytes: Arc::clone(&h.bytes),
                    start: h.start + 2 * range.start,
                }),
                values: OnceLock::new(),
            })),
            _ => Weights::from(&self[range]),
        }
    }
}

/// Why halves were refused.
#[derive(Debug)]
pub(crate) struct BadHalves(pub &'static str);

/// Little-endian halves to f32, exactly; in place where the bytes are aligned.
fn convert(data: &[u8], dst: &mut [f32]) {
    match bytemuck::try_cast_slice::<u8, half::f16>(data) {
        Ok(halves) if cfg!(target_endian = "little") => halves.convert_to_f32_slice(dst),
        _ => {
            for (d, b) in dst.iter_mut().zip(data.chunks_exact(2)) {
                *d = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
    }
}

impl Deref for Weights {
    type Target = [f32];

    /// The whole tensor in f32, converted at the first call.
    fn deref(&self) -> &[f32] {
        self.0.values.get_or_init(|| {
            let mut v = vec![0.0f32; self.0.len];
            if let Some(h) = &self.0.halves {
                convert(h.data(0..self.0.len), &mut v);
            }
            v.into_boxed_slice()
        })
    }
}

impl From<Vec<f32>> for Weights {
    fn from(v: Vec<f32>) -> Weights {
        Weights(Arc::new(Inner {
            len: v.len(),
            halves: None,
            values: OnceLock::from(v.into_boxed_slice()),
        }))
    }
}

impl From<&[f32]> for Weights {
    fn from(v: &[f32]) -> Weights {
        Weights::from(v.to_vec())
    }
}

impl FromIterator<f32> for Weights {
    fn from_iter<I: IntoIterator<Item = f32>>(iter: I) -> Weights {
        Weights::from(iter.into_iter().collect::<Vec<f32>>())
    }
}

impl PartialEq for Weights {
    fn eq(&self, other: &Weights) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Weights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let form = match (self.0.values.get(), &self.0.halves) {
            (Some(_), _) => "f32",
            (None, _) => "f16, not converted",
        };
        write!(f, "Weights({} values, {form})", self.0.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn halves_of(values: &[f32], pad: usize) -> (Arc<dyn AsRef<[u8]> + Send + Sync>, usize) {
        let mut bytes = vec![0u8; pad];
        for v in values {
            bytes.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes());
        }
        (Arc::new(bytes), pad)
    }

    /// Blocks, slices and the whole tensor give the same exact values, aligned or not.
    #[test]
    fn blocks_slices_and_whole_agree() {
        let values: Vec<f32> = (0..100).map(|i| (i as f32 - 50.0) * 0.125).collect();
        for pad in [0, 1, 2] {
            let (bytes, start) = halves_of(&values, pad);
            let w = Weights::from_halves(bytes, start, values.len()).expect("finite");
            let mut block = [0.0f32; 13];
            w.read_into(40, &mut block);
            assert_eq!(block, values[40..53]);
            let s = w.slice(10..60);
            assert_eq!(&*s, &values[10..60]);
            assert_eq!(&*w, values.as_slice());
            // Converted now: reads come from the f32 values, slices too.
            w.read_into(87, &mut block);
            assert_eq!(block, values[87..100]);
            assert_eq!(w.slice(0..5), Weights::from(&values[0..5]));
        }
    }

    /// A NaN or an infinity among the halves is refused; so are bytes past the buffer's end.
    #[test]
    fn refuses_non_finite_and_short() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let (bytes, start) = halves_of(&[1.0, bad, 2.0], 0);
            assert!(Weights::from_halves(bytes, start, 3).is_err());
        }
        let (bytes, start) = halves_of(&[1.0, 2.0], 0);
        assert!(Weights::from_halves(bytes, start, 3).is_err());
    }
}
