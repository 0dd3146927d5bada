//! Random layers, the naive f64 reference of every op, and the comparisons the backends' tests
//! share (`conformance` for every backend, `cpu::tests` and `gpu::tests` for what is theirs).

use crate::model::graph::{Conv, Layer};
use crate::tensor::Tensor;
use crate::test_rng::Rng;

pub(crate) fn tensor(rng: &mut Rng, c: usize, h: usize, w: usize) -> Tensor {
    Tensor::from_vec(c, h, w, rng.vec(c * h * w, 1.0))
}

pub(crate) fn conv_layer(
    rng: &mut Rng,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    transposed: bool,
    bias: bool,
) -> Layer {
    let weight = rng.vec(cin * cout * k * k, 1.0);
    let bias = bias.then(|| rng.vec(cout, 1.0));
    Layer::Conv(Conv {
        cin,
        cout,
        k,
        stride,
        transposed,
        weight: weight.into(),
        bias,
    })
}

pub(crate) fn gdn_layer(rng: &mut Rng, c: usize, inverse: bool) -> Layer {
    let beta = (0..c).map(|_| 0.5 + rng.f(1.0).abs()).collect();
    let mut gamma: Vec<f32> = (0..c * c).map(|_| 0.05 * rng.f(1.0).abs()).collect();
    for i in 0..c {
        gamma[i * c + i] += 0.1;
    }
    Layer::Gdn {
        c,
        inverse,
        beta,
        gamma,
    }
}

/// Naive f64 reference of one layer; also returns, per element, the sum of the absolute values of
/// its terms (the scale against which rounding error is judged).
pub(crate) fn reference(layer: &Layer, x: &Tensor) -> (Tensor, Vec<f64>) {
    let (oc, oh, ow) = layer.output_shape((x.c, x.h, x.w));
    let mut out = vec![0.0f64; oc * oh * ow];
    let mut mag = vec![0.0f64; oc * oh * ow];
    let xv = |c: usize, y: usize, xx: usize| x.data[(c * x.h + y) * x.w + xx] as f64;
    match layer {
        Layer::Conv(Conv {
            cin,
            cout,
            k,
            stride,
            weight,
            bias,
            transposed: false,
        }) => {
            let p = (k / 2) as isize;
            for co in 0..*cout {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let b = bias.as_ref().map_or(0.0, |b| b[co] as f64);
                        let (mut acc, mut m) = (b, b.abs());
                        for ci in 0..*cin {
                            for ky in 0..*k {
                                for kx in 0..*k {
                                    let iy = (stride * oy + ky) as isize - p;
                                    let ix = (stride * ox + kx) as isize - p;
                                    if iy < 0 || ix < 0 || iy >= x.h as isize || ix >= x.w as isize
                                    {
                                        continue;
                                    }
                                    let t = weight[((co * cin + ci) * k + ky) * k + kx] as f64
                                        * xv(ci, iy as usize, ix as usize);
                                    acc += t;
                                    m += t.abs();
                                }
                            }
                        }
                        out[(co * oh + oy) * ow + ox] = acc;
                        mag[(co * oh + oy) * ow + ox] = m;
                    }
                }
            }
        }
        Layer::Conv(Conv {
            cin,
            cout,
            k,
            stride,
            weight,
            bias,
            transposed: true,
        }) => {
            // PyTorch semantics: out[o] += in[i] * w[kk] with o = s*i - p + kk.
            let p = (k / 2) as isize;
            for co in 0..*cout {
                let b = bias.as_ref().map_or(0.0, |b| b[co] as f64);
                for v in &mut out[co * oh * ow..(co + 1) * oh * ow] {
                    *v = b;
                }
                for v in &mut mag[co * oh * ow..(co + 1) * oh * ow] {
                    *v = b.abs();
                }
                for ci in 0..*cin {
                    for iy in 0..x.h {
                        for ix in 0..x.w {
                            for ky in 0..*k {
                                for kx in 0..*k {
                                    let oy = (stride * iy + ky) as isize - p;
                                    let ox = (stride * ix + kx) as isize - p;
                                    if oy < 0 || ox < 0 || oy >= oh as isize || ox >= ow as isize {
                                        continue;
                                    }
                                    let t = weight[((ci * cout + co) * k + ky) * k + kx] as f64
                                        * xv(ci, iy, ix);
                                    let o = (co * oh + oy as usize) * ow + ox as usize;
                                    out[o] += t;
                                    mag[o] += t.abs();
                                }
                            }
                        }
                    }
                }
            }
        }
        Layer::Gdn {
            c,
            inverse,
            beta,
            gamma,
        } => {
            for i in 0..*c {
                for y in 0..x.h {
                    for xx in 0..x.w {
                        let mut acc = beta[i] as f64;
                        for j in 0..*c {
                            acc += gamma[i * c + j] as f64 * xv(j, y, xx) * xv(j, y, xx);
                        }
                        let v = xv(i, y, xx);
                        let r = if *inverse {
                            v * acc.sqrt()
                        } else {
                            v / acc.sqrt()
                        };
                        out[(i * oh + y) * ow + xx] = r;
                        mag[(i * oh + y) * ow + xx] = r.abs();
                    }
                }
            }
        }
        Layer::LeakyRelu { slope } => {
            for (o, &v) in out.iter_mut().zip(&x.data) {
                *o = if v > 0.0 {
                    v as f64
                } else {
                    v as f64 * *slope as f64
                };
            }
            for (m, o) in mag.iter_mut().zip(&out) {
                *m = o.abs();
            }
        }
    }
    (
        Tensor::from_vec(oc, oh, ow, out.iter().map(|&v| v as f32).collect()),
        mag,
    )
}

/// Asserts `got` is within `tol` of the f64 reference, relative to each element's term magnitude;
/// returns the largest such relative error.
pub(crate) fn assert_close(got: &Tensor, layer: &Layer, x: &Tensor, tol: f64, what: &str) -> f64 {
    let (want, mag) = reference(layer, x);
    assert_eq!(
        (got.c, got.h, got.w),
        (want.c, want.h, want.w),
        "{what}: shape"
    );
    let mut worst = 0.0f64;
    for (i, ((&g, &r), &m)) in got.data.iter().zip(&want.data).zip(&mag).enumerate() {
        let err = (g as f64 - r as f64).abs();
        assert!(
            err <= tol * m.max(1e-6),
            "{what}: element {i}: got {g}, want {r} (scale {m}, err {err})"
        );
        worst = worst.max(err / m.max(1e-6));
    }
    worst
}

pub(crate) fn assert_bits_eq(a: &Tensor, b: &Tensor, what: &str) {
    assert_eq!((a.c, a.h, a.w), (b.c, b.h, b.w), "{what}: shape");
    for (i, (x, y)) in a.data.iter().zip(&b.data).enumerate() {
        assert_eq!(x.to_bits(), y.to_bits(), "{what}: element {i}: {x} vs {y}");
    }
}

/// `max |got - want| / max |want|`: the error relative to the tensor's scale (NaN is infinite).
pub(crate) fn rel_err(got: &Tensor, want: &Tensor) -> f32 {
    assert_eq!(
        (got.c, got.h, got.w),
        (want.c, want.h, want.w),
        "shapes differ"
    );
    let scale = want
        .data
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(1e-6);
    let diff = got.data.iter().zip(&want.data).fold(0.0f32, |m, (a, b)| {
        if (a - b).is_nan() {
            f32::INFINITY
        } else {
            m.max((a - b).abs())
        }
    });
    diff / scale
}
