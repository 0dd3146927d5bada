//! Prepared layers and the forward pass.
//!
//! A convolution (plain or transposed) is described once, at prepare time, as a list of
//! *phases*. A phase is a correlation over a grid of output positions `(gy, gx)` with a separable
//! set of taps: tap `(ty, tx)` reads the (zero-padded) input at
//! `(gy * step + ty.off, gx * step + tx.off)` and the phase's result lands at output
//! `(up * gy + ry, up * gx + rx)`.
//!
//! - `Conv2d(k, stride s, padding p = k/2)`: one phase, `step = s`, `up = 1`, the grid is the
//!   output (`ceil(in / s)`), taps `off = kk - p` for `kk in 0..k` in each dimension.
//! - `ConvTranspose2d(k, stride s, padding p = k/2, output_padding s-1)`: PyTorch's
//!   `out[o] += in[i] * w[kk]` with `o = s*i - p + kk`. Writing `o = s*m + r` gives
//!   `i = m + (r + p - kk) / s` whenever `kk ≡ r + p (mod s)`, so each of the `s²` output
//!   sub-pixel phases `(ry, rx)` is a stride-1 correlation over the input grid (`step = 1`,
//!   `up = s`) that only uses the kernel taps `kk ≡ r + p (mod s)` (no multiplications by
//!   inserted zeros), with `off = (r + p - kk) / s`.
//!
//! Taps of a phase are always listed by ascending kernel index `kk`, which fixes the summation
//! order of [`Math::Exact`] (see [`super::exact`]).

use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use super::band::{Head, HeadInput};
use super::exact::ExactConv;
use super::gdn;
use super::gemm::FastConv;
use super::pack_cache::{Key, Kind, NetFile};
use super::slab::Packed;
use super::Math;
use crate::image::RgbImage;
use crate::model::graph::{conv_out_hw, Layer, Net, Weights};
use crate::tensor::Tensor;
use crate::tiling::{BackendError, Geometry, PreparedNet, Tile};

/// One tap of a phase in one dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tap {
    /// Kernel index (`ky` or `kx` in the PyTorch weight).
    pub k: usize,
    /// Input offset relative to `g * step` (may be negative; padding supplies the zeros).
    pub off: isize,
}

/// One sub-pixel phase (a plain convolution has exactly one).
#[derive(Clone, Debug)]
pub(crate) struct Phase {
    pub ry: usize,
    pub rx: usize,
    /// Taps in y, ascending kernel index.
    pub ty: Vec<Tap>,
    /// Taps in x, ascending kernel index.
    pub tx: Vec<Tap>,
}

impl Phase {
    /// Number of 2-D taps of one input channel.
    pub fn taps(&self) -> usize {
        self.ty.len() * self.tx.len()
    }
}

/// Shape and phase decomposition of a convolution or transposed convolution.
#[derive(Clone, Debug)]
pub(crate) struct ConvGeom {
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub transposed: bool,
    pub phases: Vec<Phase>,
}

/// Zero padding around the input that makes every tap of every grid position readable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pad {
    pub top: usize,
    pub bottom: usize,
    pub left: usize,
    pub right: usize,
}

/// A CHW input copied into zero-padded planes.
#[derive(Debug)]
pub(crate) struct Padded {
    pub data: Vec<f32>,
    pub c: usize,
    /// Padded height.
    pub h: usize,
    /// Padded width.
    pub w: usize,
    pub top: usize,
    pub left: usize,
}

impl Padded {
    /// Copies `x` into zero-padded planes (parallel over channels).
    pub fn new(x: &Tensor, pad: Pad) -> Padded {
        use rayon::prelude::*;
        let h = x.h + pad.top + pad.bottom;
        let w = x.w + pad.left + pad.right;
        let mut data = vec![0.0f32; x.c * h * w];
        if h * w > 0 {
            data.par_chunks_mut(h * w)
                .enumerate()
                .for_each(|(ci, dst)| {
                    let src = x.channel(ci);
                    if x.w == 0 {
                        return;
                    }
                    for (y, row) in src.chunks_exact(x.w).enumerate() {
                        let o = (y + pad.top) * w + pad.left;
                        dst[o..o + x.w].copy_from_slice(row);
                    }
                });
        }
        Padded {
            data,
            c: x.c,
            h,
            w,
            top: pad.top,
            left: pad.left,
        }
    }

    /// Index into a padded plane of the input position `(iy, ix)` (grid position times step)
    /// shifted by the offsets of tap `(ty, tx)`.
    #[inline]
    pub fn index(&self, iy: usize, ix: usize, ty: Tap, tx: Tap) -> usize {
        // Padding guarantees that these are non-negative (checked in debug builds).
        let y = iy as isize + ty.off + self.top as isize;
        let x = ix as isize + tx.off + self.left as isize;
        debug_assert!(y >= 0 && x >= 0 && (y as usize) < self.h && (x as usize) < self.w);
        y as usize * self.w + x as usize
    }
}

fn conv_taps(k: usize) -> Vec<Tap> {
    let p = (k / 2) as isize;
    (0..k)
        .map(|kk| Tap {
            k: kk,
            off: kk as isize - p,
        })
        .collect()
}

fn transposed_taps(k: usize, s: usize, r: usize) -> Vec<Tap> {
    let p = (k / 2) as isize;
    let s = s as isize;
    (0..k)
        .filter_map(|kk| {
            let num = r as isize + p - kk as isize;
            (num.rem_euclid(s) == 0).then(|| Tap {
                k: kk,
                off: num / s,
            })
        })
        .collect()
}

impl ConvGeom {
    pub fn new(cin: usize, cout: usize, k: usize, stride: usize, transposed: bool) -> ConvGeom {
        assert!(k % 2 == 1, "only odd kernel sizes are supported (got {k})");
        assert!(stride >= 1, "stride must be positive");
        let phases = if transposed {
            let mut v = Vec::with_capacity(stride * stride);
            for ry in 0..stride {
                for rx in 0..stride {
                    v.push(Phase {
                        ry,
                        rx,
                        ty: transposed_taps(k, stride, ry),
                        tx: transposed_taps(k, stride, rx),
                    });
                }
            }
            v
        } else {
            vec![Phase {
                ry: 0,
                rx: 0,
                ty: conv_taps(k),
                tx: conv_taps(k),
            }]
        };
        ConvGeom {
            cin,
            cout,
            k,
            stride,
            transposed,
            phases,
        }
    }

    /// Input step per grid step.
    pub fn step(&self) -> usize {
        if self.transposed {
            1
        } else {
            self.stride
        }
    }

    /// Output step per grid step.
    pub fn up(&self) -> usize {
        if self.transposed {
            self.stride
        } else {
            1
        }
    }

    /// Grid of every phase for an `h x w` input.
    pub fn grid(&self, h: usize, w: usize) -> (usize, usize) {
        if self.transposed {
            (h, w)
        } else {
            (h.div_ceil(self.stride), w.div_ceil(self.stride))
        }
    }

    /// The input rows (of `h`) that grid rows `rows` of a plain convolution read; the taps
    /// outside them read the zero padding.
    pub fn input_rows(&self, rows: Range<usize>, h: usize) -> Range<usize> {
        debug_assert!(!self.transposed, "a plain convolution");
        let offs = self.phases.iter().flat_map(|p| p.ty.iter().map(|t| t.off));
        let (lo, hi) = offs.fold((isize::MAX, isize::MIN), |(lo, hi), o| {
            (lo.min(o), hi.max(o))
        });
        if rows.is_empty() || lo > hi {
            return 0..0;
        }
        let step = self.step() as isize;
        let first = (rows.start as isize * step + lo).clamp(0, h as isize);
        let last = ((rows.end as isize - 1) * step + hi + 1).clamp(first, h as isize);
        first as usize..last as usize
    }

    /// Output size for an `h x w` input.
    pub fn out_hw(&self, h: usize, w: usize) -> (usize, usize) {
        conv_out_hw(self.stride, self.transposed, h, w)
    }

    /// Padding that keeps every tap of every grid position inside the padded input.
    pub fn pad(&self, h: usize, w: usize) -> Pad {
        let (gh, gw) = self.grid(h, w);
        let step = self.step() as isize;
        let span = |taps: &dyn Fn(&Phase) -> &Vec<Tap>, g: usize, n: usize| -> (usize, usize) {
            let mut lo = 0isize;
            let mut hi = 0isize;
            for ph in &self.phases {
                for t in taps(ph) {
                    lo = lo.max(-t.off);
                    hi = hi.max((g as isize - 1) * step + t.off - (n as isize - 1));
                }
            }
            (lo.max(0) as usize, hi.max(0) as usize)
        };
        let (top, bottom) = span(&|ph| &ph.ty, gh, h);
        let (left, right) = span(&|ph| &ph.tx, gw, w);
        Pad {
            top,
            bottom,
            left,
            right,
        }
    }
}

/// A `Conv2d` or `ConvTranspose2d` with its weights repacked for the CPU kernels.
///
/// The packing for each [`Math`] is built on first use (eagerly for the `math` given to
/// [`CpuLayer::prepare`]; a [`CpuNet`]'s layers pack at their first run), so a layer can run
/// either arithmetic.
#[derive(Debug)]
pub struct ConvLayer {
    pub(crate) geom: ConvGeom,
    /// PyTorch layout (`[cout, cin, k, k]`, or `[cin, cout, k, k]` when transposed), shared with
    /// the model's [`Net`] (kept for the arithmetic that is packed on demand).
    weight: Weights,
    bias: Option<Vec<f32>>,
    fast: OnceLock<FastConv>,
    exact: OnceLock<ExactConv>,
    /// Where its packed weights are kept between processes, and its index in its net.
    cache: OnceLock<(Arc<NetFile>, u32)>,
}

impl ConvLayer {
    fn new(
        geom: ConvGeom,
        weight: &Weights,
        bias: Option<&Vec<f32>>,
        math: Option<Math>,
    ) -> ConvLayer {
        let ConvGeom { cin, cout, k, .. } = geom;
        assert_eq!(
            weight.len(),
            cin * cout * k * k,
            "conv weight length does not match its shape"
        );
        if let Some(b) = bias {
            assert_eq!(b.len(), cout, "conv bias length does not match cout");
        }
        let layer = ConvLayer {
            geom,
            weight: weight.clone(),
            bias: bias.cloned(),
            fast: OnceLock::new(),
            exact: OnceLock::new(),
            cache: OnceLock::new(),
        };
        if let Some(math) = math {
            layer.ensure(math);
        }
        layer
    }

    fn ensure(&self, math: Math) {
        match math {
            Math::Fast => {
                self.fast();
            }
            Math::Exact => {
                self.exact();
            }
        }
    }

    /// The weights in PyTorch's layout from value `start` on, into `dst`: the packers read them
    /// a block at a time (whole output channels of a `Conv2d`, whole input channels of a
    /// `ConvTranspose2d`: contiguous runs), converted from the file's halves as they go.
    pub(crate) fn read_weights(&self, start: usize, dst: &mut [f32]) {
        self.weight.read_into(start, dst);
    }

    /// The whole weight tensor in f32, for packers whose reads stride across it (converted for
    /// the call where the weights are still the file's halves).
    pub(crate) fn weights_f32(&self) -> std::borrow::Cow<'_, [f32]> {
        self.weight.to_f32()
    }

    /// Output channel `co`'s weights: from `all` (the whole tensor, [`ConvLayer::weights_f32`])
    /// where given, else read into `block` (`cin * k * k` values), which only a `Conv2d` allows
    /// (its output channel is one contiguous run).
    pub(crate) fn out_channel<'a>(
        &self,
        co: usize,
        block: &'a mut [f32],
        all: Option<&'a [f32]>,
    ) -> OutChannel<'a> {
        let ConvGeom {
            cin,
            cout,
            k,
            transposed,
            ..
        } = self.geom;
        let kk = k * k;
        match all {
            Some(data) if transposed => OutChannel {
                data,
                off: co * kk,
                ci_stride: cout * kk,
                k,
            },
            Some(data) => OutChannel {
                data,
                off: co * cin * kk,
                ci_stride: kk,
                k,
            },
            None => {
                assert!(
                    !transposed,
                    "a transposed layer's channels need the whole tensor"
                );
                self.read_weights(co * cin * kk, block);
                OutChannel {
                    data: block,
                    off: 0,
                    ci_stride: kk,
                    k,
                }
            }
        }
    }

    /// Calls `f(co, w)` for every output channel in order: a `Conv2d`'s channels read a block at
    /// a time, a `ConvTranspose2d`'s from one conversion of the whole tensor.
    pub(crate) fn for_each_out_channel(&self, mut f: impl FnMut(usize, &OutChannel<'_>)) {
        let all = self.geom.transposed.then(|| self.weights_f32());
        let mut block = vec![0.0f32; self.geom.cin * self.geom.k * self.geom.k];
        for co in 0..self.geom.cout {
            f(co, &self.out_channel(co, &mut block, all.as_deref()));
        }
    }

    /// Whether [`Math::Fast`] runs this layer by Winograd's F(4x4, 3x3).
    #[cfg(test)]
    pub(crate) fn is_winograd(&self) -> bool {
        self.fast().is_winograd()
    }

    /// Buffers of `lens` floats packed by `kind`: the net's packed-weights file's where it holds
    /// them all, else zeroed ones that `fill` packs.
    pub(crate) fn packed_parts(
        &self,
        kind: Kind,
        lens: &[usize],
        fill: impl FnOnce(&mut [Packed]),
    ) -> Vec<Packed> {
        if let Some((file, layer)) = self.cache.get() {
            let key = |part: usize| Key {
                layer: *layer,
                kind,
                part: part as u32,
            };
            let found: Option<Vec<Packed>> = lens
                .iter()
                .enumerate()
                .map(|(part, &len)| file.get(key(part), len))
                .collect();
            if let Some(found) = found {
                return found;
            }
        }
        let mut parts: Vec<Packed> = lens.iter().map(|&len| Packed::zeroed(len)).collect();
        fill(&mut parts);
        parts
    }

    /// The packed buffers made so far, keyed for the net's packed-weights file.
    fn packed_so_far(&self) -> Vec<(Key, &Packed)> {
        let Some((_, layer)) = self.cache.get() else {
            return Vec::new();
        };
        let key = |kind, part: usize| Key {
            layer: *layer,
            kind,
            part: part as u32,
        };
        let wino = self.fast.get().and_then(FastConv::winograd);
        let wino = wino.map(|w| (key(Kind::Winograd, 0), w.packed()));
        let exact = self.exact.get().into_iter().flat_map(|e| {
            e.packed()
                .enumerate()
                .map(move |(p, w)| (key(Kind::Exact, p), w))
        });
        wino.into_iter().chain(exact).collect()
    }

    pub(crate) fn fast(&self) -> &FastConv {
        self.fast.get_or_init(|| FastConv::prepare(self))
    }

    fn exact(&self) -> &ExactConv {
        self.exact.get_or_init(|| ExactConv::prepare(self))
    }

    pub(crate) fn bias(&self) -> Option<&[f32]> {
        self.bias.as_deref()
    }

    /// Runs the layer.
    pub fn forward(&self, x: &Tensor, math: Math) -> Tensor {
        self.forward_into(x, math, Vec::new())
    }

    /// Runs the layer, writing the output into `buf`'s allocation when it is large enough.
    pub(crate) fn forward_into(&self, x: &Tensor, math: Math, buf: Vec<f32>) -> Tensor {
        assert_eq!(
            x.c, self.geom.cin,
            "conv input has {} channels, layer expects {}",
            x.c, self.geom.cin
        );
        match math {
            Math::Fast => self.fast().run(&self.geom, self.bias(), x, buf),
            Math::Exact => self.exact().run(&self.geom, self.bias(), x, buf),
        }
    }
}

/// One output channel's weights, `w(ci, ky, kx)` (see [`ConvLayer::out_channel`]).
pub(crate) struct OutChannel<'a> {
    data: &'a [f32],
    off: usize,
    ci_stride: usize,
    k: usize,
}

impl OutChannel<'_> {
    #[inline]
    pub(crate) fn w(&self, ci: usize, ky: usize, kx: usize) -> f32 {
        self.data[self.off + ci * self.ci_stride + ky * self.k + kx]
    }
}

/// A GDN or IGDN layer. `gamma` is already the row-major `[c, c]` matrix (row = output channel)
/// that [`Math::Fast`] multiplies `x²` tiles by.
#[derive(Debug)]
pub struct GdnLayer {
    pub(crate) c: usize,
    pub(crate) inverse: bool,
    pub(crate) beta: Vec<f32>,
    pub(crate) gamma: Vec<f32>,
    /// `gamma` packed for the SIMD kernels' row blocks (AVX-512's, AVX2's), made at first use.
    #[cfg(target_arch = "x86_64")]
    packed: [OnceLock<Vec<f32>>; 2],
}

impl GdnLayer {
    pub(crate) fn new(c: usize, inverse: bool, beta: Vec<f32>, gamma: Vec<f32>) -> GdnLayer {
        GdnLayer {
            c,
            inverse,
            beta,
            gamma,
            #[cfg(target_arch = "x86_64")]
            packed: Default::default(),
        }
    }

    /// `gamma` packed for row blocks of `rows` (the AVX-512 or the AVX2 kernel's).
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn gamma_rows(&self, rows: usize) -> &[f32] {
        let cell = &self.packed[usize::from(rows != super::gdn_simd::ROWS_AVX512)];
        cell.get_or_init(|| super::gdn_simd::pack_gamma(&self.gamma, self.c, rows))
    }

    /// Runs the layer.
    pub fn forward(&self, mut x: Tensor, math: Math) -> Tensor {
        assert_eq!(
            x.c, self.c,
            "GDN input has {} channels, layer expects {}",
            x.c, self.c
        );
        match math {
            Math::Fast => gdn::gdn_fast_in_place(self, &mut x),
            Math::Exact => gdn::gdn_exact_in_place(self, &mut x),
        }
        x
    }

    /// [`Math::Fast`] into a new tensor, keeping `x` (the same values as [`GdnLayer::forward`]).
    pub fn forward_fast_keeping(&self, x: &Tensor) -> Tensor {
        gdn::gdn_fast_into(self, x)
    }
}

/// A layer with its weights repacked for the CPU kernels (done once per model load).
#[derive(Debug)]
pub enum CpuLayer {
    /// `Conv2d` or `ConvTranspose2d`.
    Conv(ConvLayer),
    /// GDN or IGDN.
    Gdn(GdnLayer),
    /// `LeakyReLU(slope)`: `x` if `x > 0`, else `slope * x`.
    LeakyRelu { slope: f32 },
}

impl CpuLayer {
    /// Repacks one layer for `math` (the other arithmetic is packed lazily if ever used).
    ///
    /// # Panics
    /// If the layer is malformed: weight/bias/beta/gamma lengths that do not match the shape, an
    /// even kernel size or a zero stride.
    pub fn prepare(layer: &Layer, math: Math) -> CpuLayer {
        CpuLayer::packed(layer, Some(math))
    }

    /// The layer, its convolution weights packed now for `math`, or at its first run (`None`).
    fn packed(layer: &Layer, math: Option<Math>) -> CpuLayer {
        match layer {
            Layer::Conv(c) => CpuLayer::Conv(ConvLayer::new(
                ConvGeom::new(c.cin, c.cout, c.k, c.stride, c.transposed),
                &c.weight,
                c.bias.as_ref(),
                math,
            )),
            Layer::Gdn {
                c,
                inverse,
                beta,
                gamma,
            } => {
                assert_eq!(beta.len(), *c, "GDN beta length does not match c");
                assert_eq!(gamma.len(), c * c, "GDN gamma length does not match c*c");
                CpuLayer::Gdn(GdnLayer::new(*c, *inverse, beta.clone(), gamma.clone()))
            }
            Layer::LeakyRelu { slope } => CpuLayer::LeakyRelu { slope: *slope },
        }
    }

    /// Runs the layer on `x`.
    #[cfg(any(test, feature = "internals"))]
    pub fn forward(&self, x: &Tensor, math: Math) -> Tensor {
        match self {
            CpuLayer::Conv(c) => c.forward(x, math),
            _ => self.forward_owned(x.clone(), math),
        }
    }

    /// Runs the layer, reusing `x`'s storage for the element-wise layers.
    pub fn forward_owned(&self, x: Tensor, math: Math) -> Tensor {
        match self {
            CpuLayer::Conv(c) => c.forward(&x, math),
            CpuLayer::Gdn(g) => g.forward(x, math),
            CpuLayer::LeakyRelu { slope } => {
                let mut x = x;
                gdn::leaky_relu_in_place(&mut x.data, *slope);
                x
            }
        }
    }
}

/// A [`Net`] prepared for the CPU.
#[derive(Debug)]
pub struct CpuNet {
    pub layers: Vec<CpuLayer>,
    /// The arithmetic [`CpuNet::forward`] uses (packing for another value is built on first use).
    pub math: Math,
    /// The net's shapes, for the tiler.
    plan: Net,
    geometry: Geometry,
    /// The three largest buffers of the last forward pass, for the next one (the output leaves
    /// with the caller in one of them; with two kept and a snug buffer for the output,
    /// `mbt2018-mean`'s nets at the zoo's q5 widths faulted in 2,300 fresh pages a compress and
    /// decompress in a warm process, with three kept 210-370, docs/benchmarks.md). glibc maps a
    /// block over 32 MiB on its own and unmaps it when freed (the first activation of a 768x512
    /// image at N = 128 is 48 MiB), so without this every call faults such a buffer in again,
    /// zeroed by the kernel, page by page (about 2 us a page on the development VM: tens of
    /// milliseconds per image). Held between calls; no larger than the activations the memory
    /// budget allows.
    spares: Mutex<Spares>,
}

/// Buffers a forward pass recycles: each activation is written into the smallest one that holds
/// it (so the large ones stay for the large activations).
#[derive(Debug, Default)]
pub(crate) struct Spares(Vec<Vec<f32>>);

impl Spares {
    /// Buffers kept between calls.
    const KEPT: usize = 3;

    /// The smallest buffer that holds `len` values, else the largest (grown by its user).
    pub fn take(&mut self, len: usize) -> Vec<f32> {
        let fits = (0..self.0.len())
            .filter(|&i| self.0[i].capacity() >= len)
            .min_by_key(|&i| self.0[i].capacity());
        let pick = fits.or_else(|| (0..self.0.len()).max_by_key(|&i| self.0[i].capacity()));
        pick.map(|i| self.0.swap_remove(i)).unwrap_or_default()
    }

    pub fn give(&mut self, buf: Vec<f32>) {
        if buf.capacity() > 0 {
            self.0.push(buf);
        }
    }

    /// Drops all but the [`Spares::KEPT`] largest.
    fn trim(&mut self) {
        self.0.sort_by_key(|b| std::cmp::Reverse(b.capacity()));
        self.0.truncate(Self::KEPT);
    }
}

impl CpuNet {
    /// `net` for the CPU kernels. Each convolution packs its weights at its first run, so a
    /// process pays only for the nets it runs (a one-shot compress never packs `g_s`, whose
    /// Winograd transform alone takes milliseconds).
    ///
    /// # Panics
    /// If a layer is malformed (see [`CpuLayer::prepare`]).
    pub fn prepare(net: &Net, math: Math) -> CpuNet {
        CpuNet {
            layers: net
                .layers
                .iter()
                .map(|l| CpuLayer::packed(l, None))
                .collect(),
            math,
            plan: net.plan(),
            geometry: Geometry::of(net),
            spares: Mutex::default(),
        }
    }

    /// Packs every convolution's weights for [`CpuNet::math`] now, on all threads (else each
    /// layer packs its own at its first run).
    pub fn pack(&self) {
        use rayon::prelude::*;
        self.layers.par_iter().for_each(|l| {
            if let CpuLayer::Conv(c) = l {
                c.ensure(self.math);
            }
        });
    }

    /// Keeps this net's packed weights in the file at `path` (`pack_cache.rs`) for the model file
    /// `model` names: layers that pack after this read theirs from it where it holds them. Set
    /// once; later calls change nothing.
    pub(crate) fn use_pack_file(&self, path: std::path::PathBuf, model: &str) {
        let tag = format!("{model} {} {}", self.name(), super::pack_cache::build_tag());
        let file = Arc::new(NetFile::new(path, tag));
        for (i, l) in self.layers.iter().enumerate() {
            if let CpuLayer::Conv(c) = l {
                let _ = c.cache.set((file.clone(), i as u32));
            }
        }
    }

    /// Writes this net's packed weights to its file where any were packed here rather than read
    /// from it; the bytes written (0: nothing new, or no file).
    pub(crate) fn save_pack_file(&self) -> std::io::Result<u64> {
        let mut file = None;
        let mut packed = Vec::new();
        for l in &self.layers {
            if let CpuLayer::Conv(c) = l {
                if let Some((f, _)) = c.cache.get() {
                    file = Some(f);
                }
                packed.extend(c.packed_so_far());
            }
        }
        match file {
            Some(f) if !packed.is_empty() => f.save(&packed),
            _ => Ok(0),
        }
    }

    /// The net's name.
    pub fn name(&self) -> &str {
        &self.plan.name
    }

    /// Output shape for an input shape.
    pub fn output_shape(&self, shape: (usize, usize, usize)) -> (usize, usize, usize) {
        self.plan.output_shape(shape)
    }

    /// Runs the net on `x`.
    ///
    /// # Panics
    /// If `x` (or an intermediate activation) does not have the channel count a layer expects.
    ///
    /// Intermediate activations are recycled: a convolution writes into the smallest buffer of
    /// an earlier activation that holds its output (the buffers the last call left first),
    /// which saves the page faults of fresh allocations; element-wise layers run in place. The
    /// head of an analysis transform runs in bands of rows (see `band.rs`).
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.with_spares(|spares| match self.head() {
            Some(head) => {
                let y = head.run(HeadInput::Tensor(x), spares);
                self.run_layers(x, Some(y), &self.layers[3..], spares)
            }
            None => self.run_layers(x, None, &self.layers, spares),
        })
    }

    /// [`CpuNet::forward`] of the input window `t` of `image`, converting to f32 only the rows
    /// each band of its analysis head reads (see `planes.rs`): the same bits as `forward` of the
    /// whole window in f32. `None` when the net does not start with a head (the caller converts
    /// the window; b2018-gdn-128's first layer, a Winograd one, ran 2.6 ms slower in bands of
    /// pixel rows: docs/benchmarks.md, sixteenth session).
    ///
    /// # Panics
    /// If the window is not inside the image.
    pub(crate) fn forward_rgb(&self, image: &RgbImage, t: &Tile) -> Option<Tensor> {
        let head = self.head()?;
        assert!(
            t.y0 <= t.y1 && t.y1 <= image.height && t.x0 <= t.x1 && t.x1 <= image.width,
            "window outside the image"
        );
        Some(self.with_spares(|spares| {
            let y = head.run(HeadInput::Pixels(image, *t), spares);
            let empty = Tensor::from_vec(0, 0, 0, Vec::new());
            self.run_layers(&empty, Some(y), &self.layers[3..], spares)
        }))
    }

    /// The analysis head the Fast net starts with, if any (see `band.rs`).
    fn head(&self) -> Option<Head<'_>> {
        match self.math {
            Math::Fast => Head::of(&self.layers),
            Math::Exact => None,
        }
    }

    /// Runs `f` with the buffers the last call left, and keeps the larger set for the next.
    fn with_spares(&self, f: impl FnOnce(&mut Spares) -> Tensor) -> Tensor {
        // A concurrent call on the same net finds the buffers taken and allocates its own.
        let mut spares = self
            .spares
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        let y = f(&mut spares);
        spares.trim();
        if let Ok(mut kept) = self.spares.lock() {
            if spares.0.iter().map(Vec::capacity).sum::<usize>()
                > kept.0.iter().map(Vec::capacity).sum::<usize>()
            {
                *kept = spares;
            }
        }
        y
    }

    /// Runs `layers` on `cur`, or on `x` while `cur` is `None` (`x` is then never consumed).
    fn run_layers(
        &self,
        x: &Tensor,
        mut cur: Option<Tensor>,
        layers: &[CpuLayer],
        spares: &mut Spares,
    ) -> Tensor {
        for layer in layers {
            cur = Some(match (layer, cur.take()) {
                (CpuLayer::Conv(c), t) => {
                    let input = t.as_ref().unwrap_or(x);
                    let (oh, ow) = c.geom.out_hw(input.h, input.w);
                    let buf = spares.take(c.geom.cout * oh * ow);
                    let y = c.forward_into(input, self.math, buf);
                    if let Some(t) = t {
                        spares.give(t.data);
                    }
                    y
                }
                (l, Some(t)) => l.forward_owned(t, self.math),
                (l, None) => l.forward_owned(x.clone(), self.math),
            });
        }
        cur.unwrap_or_else(|| x.clone())
    }
}

/// The CPU tiles when whole activations would exceed the memory budget; a run never fails.
impl PreparedNet for CpuNet {
    type Error = OverBudget;

    fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Whole activations (a convolution's input and output) within `budget` bytes.
    fn fits(&self, h: usize, w: usize, budget: u64) -> bool {
        self.bytes(h, w) <= budget
    }

    fn run(&self, x: &Tensor) -> Result<Tensor, OverBudget> {
        Ok(self.forward(x))
    }

    fn run_rgb(&self, image: &RgbImage, t: &Tile) -> Option<Result<Tensor, OverBudget>> {
        self.forward_rgb(image, t).map(Ok)
    }

    fn too_large(&self, h: usize, w: usize, budget: u64) -> OverBudget {
        let side = self.geometry.smallest_side();
        OverBudget {
            net: self.plan.name.clone(),
            needed: self.bytes(side.min(h), side.min(w)),
            budget,
        }
    }
}

impl CpuNet {
    /// Bytes of whole activations for an `h x w` input.
    fn bytes(&self, h: usize, w: usize) -> u64 {
        let c = self.plan.input_channels().unwrap_or(1);
        4 * self.plan.peak_values((c, h, w))
    }
}

/// Even the smallest tile of an input needs more memory than the budget allows.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{net}: even the smallest tile needs {needed} bytes, more than the memory budget of {budget} bytes")]
pub struct OverBudget {
    pub net: String,
    pub needed: u64,
    pub budget: u64,
}

impl BackendError for OverBudget {
    /// The input is the problem, not the CPU.
    fn is_fatal(&self) -> bool {
        false
    }
}

/// A raw pointer that may be shared by the tasks of one parallel loop, each of which writes a
/// disjoint set of elements.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SendPtr(pub *mut f32);

impl SendPtr {
    /// The pointer (a method, so closures capture the whole `Send` wrapper, not the field).
    #[inline(always)]
    pub fn get(self) -> *mut f32 {
        self.0
    }
}
// SAFETY: only used to hand disjoint output regions to rayon tasks that all finish before the
// buffer is read again or dropped.
unsafe impl Send for SendPtr {}
// SAFETY: see above.
unsafe impl Sync for SendPtr {}
