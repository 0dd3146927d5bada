//! Layer graphs of the three families as plain data: what to compute, never how.
//!
//! Weights keep PyTorch's layouts (`Conv2d` `[cout, cin, k, k]`, `ConvTranspose2d` `[cin, cout, k, k]`,
//! GDN `gamma[i, j]` with row `i` the output channel) so the exporter writes them untouched and a
//! backend repacks them once when it prepares a model.

pub use super::lazy_weights::Weights;

/// `Conv2d(cin, cout, k, stride, padding=k/2)` (output `ceil(in / stride)`), or with `transposed`
/// `ConvTranspose2d(cin, cout, k, stride, padding=k/2, output_padding=stride-1)` (output `stride * in`).
#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub transposed: bool,
    /// `[cout, cin, k, k]`, or `[cin, cout, k, k]` when transposed (PyTorch's layouts); shared
    /// with the CPU backend's prepared layers rather than copied, and kept as the file's halves
    /// until a layer packs them (see [`Weights`]).
    pub weight: Weights,
    /// `[cout]`
    pub bias: Option<Vec<f32>>,
}

/// One layer of a transform. Padding is always `k / 2` ("same" alignment as TFC's `same_zeros`).
#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    /// A convolution or transposed convolution.
    Conv(Conv),
    /// Standard GDN (Ballé 2016): `y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)`; the inverse multiplies.
    /// Holds the *effective* (already reparametrized) `beta` and `gamma`.
    Gdn {
        c: usize,
        inverse: bool,
        /// `[c]`
        beta: Vec<f32>,
        /// `[c, c]`, row `i` = output channel `i`
        gamma: Vec<f32>,
    },
    /// `LeakyReLU(slope)`; PyTorch's default slope 0.01.
    LeakyRelu { slope: f32 },
}

/// The output size of a convolution of `stride` on an `h x w` input: `ceil(in / stride)`, or
/// `stride * in` when transposed. The one statement of that rule; both backends call it.
pub fn conv_out_hw(stride: usize, transposed: bool, h: usize, w: usize) -> (usize, usize) {
    if transposed {
        // Saturating: a size estimate for an absurd input must not wrap to a small one.
        (h.saturating_mul(stride), w.saturating_mul(stride))
    } else {
        (h.div_ceil(stride), w.div_ceil(stride))
    }
}

/// The values of a `(c, h, w)` tensor, saturating (sizes estimated for refusals must not wrap).
pub(crate) fn volume((c, h, w): (usize, usize, usize)) -> u64 {
    product(&[c, h, w])
}

/// A saturating product as u64.
fn product(factors: &[usize]) -> u64 {
    factors
        .iter()
        .fold(1u64, |acc, &f| acc.saturating_mul(f as u64))
}

impl Layer {
    /// Output shape `(c, h, w)` for an input of shape `(c, h, w)`.
    pub fn output_shape(&self, (c, h, w): (usize, usize, usize)) -> (usize, usize, usize) {
        match self {
            Layer::Conv(conv) => {
                let (oh, ow) = conv_out_hw(conv.stride, conv.transposed, h, w);
                (conv.cout, oh, ow)
            }
            Layer::Gdn { .. } | Layer::LeakyRelu { .. } => (c, h, w),
        }
    }

    /// Multiply-accumulates for an input of shape `(c, h, w)` (the peer's counting: conv taps, GDN's 1x1 mix).
    pub fn macs(&self, (c, h, w): (usize, usize, usize)) -> u64 {
        let (_, oh, ow) = self.output_shape((c, h, w));
        match self {
            // A transposed conv applies every tap once per *input* pixel.
            Layer::Conv(c) if c.transposed => product(&[c.k, c.k, c.cin, c.cout, h, w]),
            Layer::Conv(c) => product(&[c.k, c.k, c.cin, c.cout, oh, ow]),
            Layer::Gdn { c, .. } => product(&[*c, *c, h, w]),
            Layer::LeakyRelu { .. } => 0,
        }
    }
}

/// A sequential transform (`g_a`, `g_s`, `h_a`, `h_s`).
#[derive(Clone, Debug, PartialEq)]
pub struct Net {
    pub name: String,
    pub layers: Vec<Layer>,
}

impl Net {
    /// The net without its weights: what the shape rules ([`Net::output_shape`],
    /// [`Net::peak_values`], the tiler's geometry) read, kept by a backend that repacked the weights.
    pub fn plan(&self) -> Net {
        let layers = self
            .layers
            .iter()
            .map(|l| match l {
                Layer::Conv(c) => Layer::Conv(Conv {
                    weight: Weights::from(Vec::new()),
                    bias: None,
                    ..*c
                }),
                Layer::Gdn { c, inverse, .. } => Layer::Gdn {
                    c: *c,
                    inverse: *inverse,
                    beta: Vec::new(),
                    gamma: Vec::new(),
                },
                Layer::LeakyRelu { slope } => Layer::LeakyRelu { slope: *slope },
            })
            .collect();
        Net {
            name: self.name.clone(),
            layers,
        }
    }

    /// The number of input channels, if the net starts with a layer that has one.
    pub fn input_channels(&self) -> Option<usize> {
        match self.layers.first()? {
            Layer::Conv(c) => Some(c.cin),
            Layer::Gdn { c, .. } => Some(*c),
            Layer::LeakyRelu { .. } => None,
        }
    }

    /// Output shape of the whole net for an input shape.
    pub fn output_shape(&self, shape: (usize, usize, usize)) -> (usize, usize, usize) {
        self.layers.iter().fold(shape, |s, l| l.output_shape(s))
    }

    /// The most values one layer holds at once for an input shape, in elements: a convolution's
    /// input and output; GDN and LeakyReLU work in place. What a backend that keeps whole
    /// activations (the CPU's) needs.
    pub fn peak_values(&self, mut shape: (usize, usize, usize)) -> u64 {
        let mut peak = 0;
        for l in &self.layers {
            let out = l.output_shape(shape);
            let held = match l {
                Layer::Conv(_) => volume(shape).saturating_add(volume(out)),
                Layer::Gdn { .. } | Layer::LeakyRelu { .. } => volume(shape),
            };
            peak = peak.max(held);
            shape = out;
        }
        peak
    }

    /// Total multiply-accumulates for an input shape.
    pub fn macs(&self, mut shape: (usize, usize, usize)) -> u64 {
        let mut total = 0u64;
        for l in &self.layers {
            total = total.saturating_add(l.macs(shape));
            shape = l.output_shape(shape);
        }
        total
    }
}
