//! Backward passes of the decoder-side ops, for an encoder that searches its latents.
//!
//! An encoder with effort optimises `y_hat` against the fixed decoder (`codec::effort`), so it needs
//! `dL/dx` of a whole net for a given `dL/dout`: vector-Jacobian products with respect to the
//! *input* only; the weights never change, so their gradients are never formed.
//!
//! - A convolution is linear in its input, so its adjoint is the opposite convolution with the very
//!   same weight bytes and no bias: `ConvTranspose2d(k, s)` with weight `[cin, cout, k, k]` has the
//!   adjoint `Conv2d(k, s)` from `cout` to `cin` channels whose PyTorch weight `[cout', cin', k, k]`
//!   is the same array (both are `sum_kk g[s*i - p + kk] * w[kk]`); `Conv2d`'s adjoint is the
//!   transposed convolution, cropped to the input's size. Both run on the [`Math::Fast`] kernels,
//!   so a backward pass costs about what the forward pass does.
//! - GDN `y_i = x_i / r_i` and IGDN `y_i = x_i * r_i` with `r_i = sqrt(beta_i + sum_j gamma_ij x_j²)`:
//!   `dx_k = g_k / r_k - x_k * sum_i gamma_ik * g_i x_i / r_i³` (GDN) and
//!   `dx_k = g_k * r_k + x_k * sum_i gamma_ik * g_i x_i / r_i` (IGDN): two `c x c` GEMMs per tile of
//!   pixels (`gamma · x²` again, then `gammaᵀ · t`).
//! - LeakyReLU passes `g` where `x > 0`, else `slope * g`.
//!
//! [`DiffNet::forward`] records on a [`Tape`] what the backward pass needs (the inputs of GDN and
//! LeakyReLU, the input sizes of convolutions).

use rayon::prelude::*;

use super::conv::SendPtr;
use super::conv::{CpuLayer, GdnLayer};
use super::gemm::{sgemm, tile_width, with_scratch};
use super::Math;
use crate::model::graph::{Conv, Layer, Net};
use crate::tensor::Tensor;

/// One layer with what its backward pass needs.
#[derive(Debug)]
enum DiffLayer {
    /// A convolution and its adjoint (the opposite convolution, same weights, no bias).
    Conv {
        fwd: Box<CpuLayer>,
        adj: Box<CpuLayer>,
    },
    /// GDN or IGDN; `gamma_t` is `gamma` transposed (row `k` holds `gamma[i, k]` over `i`).
    Gdn {
        fwd: GdnLayer,
        gamma_t: Vec<f32>,
    },
    LeakyRelu {
        slope: f32,
    },
}

/// What one layer's backward pass reads, recorded by [`DiffNet::forward`].
#[derive(Debug)]
enum Saved {
    /// The input's height and width (a transposed adjoint is cropped to it).
    Shape(usize, usize),
    /// The whole input (GDN, LeakyReLU).
    Input(Tensor),
}

/// The record of one forward pass, consumed by [`DiffNet::backward`].
#[derive(Debug)]
pub struct Tape {
    saved: Vec<Saved>,
}

/// A net prepared for forward and backward passes on the CPU ([`Math::Fast`]).
#[derive(Debug)]
pub struct DiffNet {
    layers: Vec<DiffLayer>,
}

impl DiffNet {
    /// Prepares `net`'s layers and their adjoints.
    ///
    /// # Panics
    /// If a layer is malformed (see [`CpuLayer::prepare`]).
    pub fn prepare(net: &Net) -> DiffNet {
        let layers = net
            .layers
            .iter()
            .map(|l| match l {
                Layer::Conv(c) => {
                    let adjoint = Layer::Conv(Conv {
                        cin: c.cout,
                        cout: c.cin,
                        k: c.k,
                        stride: c.stride,
                        transposed: !c.transposed,
                        weight: c.weight.clone(),
                        bias: None,
                    });
                    DiffLayer::Conv {
                        fwd: Box::new(CpuLayer::prepare(l, Math::Fast)),
                        adj: Box::new(CpuLayer::prepare(&adjoint, Math::Fast)),
                    }
                }
                Layer::Gdn {
                    c,
                    inverse,
                    beta,
                    gamma,
                } => {
                    let c = *c;
                    assert_eq!(gamma.len(), c * c, "GDN gamma length does not match c*c");
                    let mut gamma_t = vec![0.0; gamma.len()];
                    for i in 0..c {
                        for j in 0..c {
                            gamma_t[j * c + i] = gamma[i * c + j];
                        }
                    }
                    assert_eq!(beta.len(), c, "GDN beta length does not match c");
                    DiffLayer::Gdn {
                        fwd: GdnLayer::new(c, *inverse, beta.clone(), gamma.clone()),
                        gamma_t,
                    }
                }
                Layer::LeakyRelu { slope } => DiffLayer::LeakyRelu { slope: *slope },
            })
            .collect();
        DiffNet { layers }
    }

    /// Runs the net on `x` ([`Math::Fast`]) and records what [`DiffNet::backward`] needs.
    pub fn forward(&self, x: &Tensor) -> (Tensor, Tape) {
        let mut saved = Vec::with_capacity(self.layers.len());
        let mut cur = x.clone();
        for layer in &self.layers {
            cur = match layer {
                DiffLayer::Conv { fwd, .. } => {
                    saved.push(Saved::Shape(cur.h, cur.w));
                    fwd.forward_owned(cur, Math::Fast)
                }
                DiffLayer::Gdn { fwd, .. } => {
                    let out = fwd.forward_fast_keeping(&cur);
                    saved.push(Saved::Input(cur));
                    out
                }
                DiffLayer::LeakyRelu { slope } => {
                    let mut out = cur.clone();
                    out.data
                        .iter_mut()
                        .for_each(|v| *v = if *v > 0.0 { *v } else { *v * slope });
                    saved.push(Saved::Input(cur));
                    out
                }
            };
        }
        (cur, Tape { saved })
    }

    /// `dL/dx` of the forward pass recorded on `tape`, given `dL/dout` (`grad`, the output's shape).
    ///
    /// # Panics
    /// If `tape` was not recorded by this net, or `grad` does not have the output's channels.
    pub fn backward(&self, tape: Tape, grad: Tensor) -> Tensor {
        assert_eq!(tape.saved.len(), self.layers.len(), "tape of another net");
        let mut g = grad;
        for (layer, saved) in self.layers.iter().zip(tape.saved).rev() {
            g = match (layer, saved) {
                (DiffLayer::Conv { adj, .. }, Saved::Shape(h, w)) => {
                    adj.forward_owned(g, Math::Fast).crop(h, w)
                }
                (DiffLayer::Gdn { fwd, gamma_t }, Saved::Input(x)) => {
                    gdn_backward(fwd.inverse, &fwd.beta, &fwd.gamma, gamma_t, &x, &g)
                }
                (DiffLayer::LeakyRelu { slope }, Saved::Input(x)) => {
                    let mut g = g;
                    g.data
                        .par_iter_mut()
                        .zip(x.data.par_iter())
                        .for_each(|(gv, &xv)| {
                            if xv <= 0.0 {
                                *gv *= slope;
                            }
                        });
                    g
                }
                _ => unreachable!("the tape records one entry of the right kind per layer"),
            };
        }
        g
    }
}

/// `dL/dx` of GDN (or IGDN) at input `x` for `dL/dy = g` (module docs), in tiles of pixels.
fn gdn_backward(
    inverse: bool,
    beta: &[f32],
    gamma: &[f32],
    gamma_t: &[f32],
    x: &Tensor,
    g: &Tensor,
) -> Tensor {
    let c = beta.len();
    assert!(x.c == c && g.c == c && x.plane() == g.plane(), "GDN shapes");
    let plane = x.plane();
    let mut dx = Tensor::zeros(c, x.h, x.w);
    if plane == 0 || c == 0 {
        return dx;
    }
    let pt = tile_width(c, plane);
    let out = SendPtr(dx.data.as_mut_ptr());
    (0..plane.div_ceil(pt)).into_par_iter().for_each(|t| {
        let p0 = t * pt;
        let n = pt.min(plane - p0);
        with_scratch(4 * c * n, |buf| {
            let (sq, rest) = buf.split_at_mut(c * n);
            let (norm, rest) = rest.split_at_mut(c * n);
            let (tv, s) = rest.split_at_mut(c * n);
            for j in 0..c {
                let xj = &x.channel(j)[p0..p0 + n];
                for (q, &v) in sq[j * n..(j + 1) * n].iter_mut().zip(xj) {
                    *q = v * v;
                }
            }
            // SAFETY: `norm` is `c x n`, `gamma` `c x c`, `sq` `c x n`, all row-major.
            unsafe {
                sgemm(
                    false,
                    c,
                    n,
                    c,
                    norm.as_mut_ptr(),
                    n,
                    gamma.as_ptr(),
                    c,
                    sq.as_ptr(),
                    n,
                )
            };
            // norm becomes r = sqrt(beta + gamma x²); t_i = g_i x_i / r_i (IGDN) or / r_i³ (GDN).
            for i in 0..c {
                let xi = &x.channel(i)[p0..p0 + n];
                let gi = &g.channel(i)[p0..p0 + n];
                let r = &mut norm[i * n..(i + 1) * n];
                let ti = &mut tv[i * n..(i + 1) * n];
                for q in 0..n {
                    let rq = (beta[i] + r[q]).sqrt();
                    r[q] = rq;
                    ti[q] = if inverse {
                        gi[q] * xi[q] / rq
                    } else {
                        gi[q] * xi[q] / (rq * rq * rq)
                    };
                }
            }
            // SAFETY: `s` is `c x n`, `gamma_t` `c x c`, `tv` `c x n`, all row-major.
            unsafe {
                sgemm(
                    false,
                    c,
                    n,
                    c,
                    s.as_mut_ptr(),
                    n,
                    gamma_t.as_ptr(),
                    c,
                    tv.as_ptr(),
                    n,
                )
            };
            for k in 0..c {
                let xk = &x.channel(k)[p0..p0 + n];
                let gk = &g.channel(k)[p0..p0 + n];
                let r = &norm[k * n..(k + 1) * n];
                let sk = &s[k * n..(k + 1) * n];
                // SAFETY: pixels `[p0, p0 + n)` of every channel belong to this task alone, and
                // `dx` outlives the parallel loop.
                let d = unsafe { std::slice::from_raw_parts_mut(out.get().add(k * plane + p0), n) };
                for q in 0..n {
                    d[q] = if inverse {
                        gk[q] * r[q] + xk[q] * sk[q]
                    } else {
                        gk[q] / r[q] - xk[q] * sk[q]
                    };
                }
            }
        });
    });
    dx
}

#[cfg(test)]
mod tests {
    //! Finite-difference checks: for a random `w` and direction `v`, the central difference
    //! `(L(x + eps v) - L(x - eps v)) / 2 eps` of `L(x) = <w, net(x)>` (summed in f64) must match
    //! `<dL/dx, v>`. Convolutions are linear, so there the difference is exact up to f32 rounding
    //! of the outputs (~1e-7 relative per value, divided by `2 eps`); GDN's curvature adds
    //! `O(eps²)`; a LeakyReLU's kink inside the step would bend it, so nets with one use `1e-3`.
    //! With `eps = 1e-2` on inputs of size ~1 both stay well below the 2e-3 relative
    //! tolerance, while a wrong term (a missing factor 2, a transposed gamma) is off by O(1).
    use super::*;
    use crate::test_rng::Rng;

    fn net(layers: Vec<Layer>) -> Net {
        Net {
            name: "test".into(),
            layers,
        }
    }

    fn conv(rng: &mut Rng, cin: usize, cout: usize, k: usize, s: usize, t: bool) -> Layer {
        Layer::Conv(Conv {
            cin,
            cout,
            k,
            stride: s,
            transposed: t,
            weight: rng.vec(cin * cout * k * k, 0.3).into(),
            bias: Some(rng.vec(cout, 0.3)),
        })
    }

    fn gdn(rng: &mut Rng, c: usize, inverse: bool) -> Layer {
        // Positive beta and gamma, as the reparametrization guarantees.
        let beta = (0..c).map(|_| 0.5 + rng.f(0.4)).collect();
        let gamma = (0..c * c).map(|_| 0.1 + rng.f(0.1)).collect();
        Layer::Gdn {
            c,
            inverse,
            beta,
            gamma,
        }
    }

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(&a, &b)| a as f64 * b as f64).sum()
    }

    fn check(n: &Net, c: usize, h: usize, w: usize, seed: u64) {
        check_eps(n, c, h, w, seed, 1e-2);
    }

    fn check_eps(n: &Net, c: usize, h: usize, w: usize, seed: u64, eps: f32) {
        let mut rng = Rng(seed);
        let d = DiffNet::prepare(n);
        let x = Tensor::from_vec(c, h, w, rng.vec(c * h * w, 1.0));
        let v = rng.vec(x.data.len(), 1.0);
        let (y, tape) = d.forward(&x);
        let wt = rng.vec(y.data.len(), 1.0);
        let grad = d.backward(tape, Tensor::from_vec(y.c, y.h, y.w, wt.clone()));
        assert_eq!((grad.c, grad.h, grad.w), (c, h, w));
        let at = |s: f32| {
            let xs: Vec<f32> = x.data.iter().zip(&v).map(|(&a, &b)| a + s * b).collect();
            let (y, _) = d.forward(&Tensor::from_vec(c, h, w, xs));
            dot(&y.data, &wt)
        };
        let fd = (at(eps) - at(-eps)) / (2.0 * eps as f64);
        let an = dot(&grad.data, &v);
        let scale = an.abs().max(fd.abs()).max(1e-3);
        assert!(
            (fd - an).abs() <= 2e-3 * scale,
            "seed {seed}: finite difference {fd}, backward {an}"
        );
    }

    #[test]
    fn conv_matches_finite_differences() {
        let mut rng = Rng(1);
        for (k, s, h, w) in [(3, 1, 7, 6), (5, 2, 8, 10), (5, 2, 9, 7), (9, 4, 16, 12)] {
            check(
                &net(vec![conv(&mut rng, 3, 4, k, s, false)]),
                3,
                h,
                w,
                10 + k as u64,
            );
        }
    }

    #[test]
    fn transposed_conv_matches_finite_differences() {
        let mut rng = Rng(2);
        for (k, s, h, w) in [(5, 2, 4, 5), (9, 4, 3, 4), (3, 1, 5, 5)] {
            check(
                &net(vec![conv(&mut rng, 4, 3, k, s, true)]),
                4,
                h,
                w,
                20 + k as u64,
            );
        }
    }

    #[test]
    fn gdn_and_igdn_match_finite_differences() {
        let mut rng = Rng(3);
        for inverse in [false, true] {
            // 40 pixels x 20 channels: more than one GEMM tile row, odd remainders.
            check(&net(vec![gdn(&mut rng, 20, inverse)]), 20, 5, 8, 30);
        }
    }

    #[test]
    fn leaky_relu_matches_finite_differences() {
        // Inputs that are not within eps of the kink: |x| >= 0.1.
        let n = net(vec![Layer::LeakyRelu { slope: 0.01 }]);
        let d = DiffNet::prepare(&n);
        let x = Tensor::from_vec(1, 1, 4, vec![-1.0, -0.1, 0.1, 2.0]);
        let (y, tape) = d.forward(&x);
        assert_eq!(y.data, vec![-0.01, -0.001, 0.1, 2.0]);
        let g = d.backward(tape, Tensor::from_vec(1, 1, 4, vec![1.0, 2.0, 3.0, 4.0]));
        assert_eq!(g.data, vec![0.01, 0.02, 3.0, 4.0]);
        check_eps(&n, 2, 3, 3, 40, 1e-3);
    }

    /// A g_s-like stack (transposed convs and IGDN) and an h_s-like one (LeakyReLU, a plain conv).
    #[test]
    fn stacks_match_finite_differences() {
        let mut rng = Rng(4);
        let g_s = net(vec![
            conv(&mut rng, 6, 5, 5, 2, true),
            gdn(&mut rng, 5, true),
            conv(&mut rng, 5, 4, 5, 2, true),
            gdn(&mut rng, 4, true),
            conv(&mut rng, 4, 3, 9, 4, true),
        ]);
        check(&g_s, 6, 3, 4, 50);
        let h_s = net(vec![
            conv(&mut rng, 3, 4, 5, 2, true),
            Layer::LeakyRelu { slope: 0.01 },
            conv(&mut rng, 4, 5, 3, 1, false),
            gdn(&mut rng, 5, false),
        ]);
        // A LeakyReLU input within eps of 0 would bend the difference: a smaller step.
        check_eps(&h_s, 3, 3, 3, 51, 1e-3);
    }
}
