// The interface every convolution kernel shares (conv2d, conv2d_x4, conv_transpose2d,
// conv_transpose2d_x4): gpu/kernels.rs prepends this file to each, and gpu/net.rs fills `Params`
// and binds the buffers in this order.

struct Params {
    cin: u32,
    cout: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    k: u32,
    stride: u32,
    pad: u32,
    ck: u32,
    // Patch width (and height) in input pixels.
    pw: u32,
    // 1: LeakyReLU after the bias.
    act: u32,
    slope: f32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
// Repacked [cin][k*k][cout_pad] with cout_pad a multiple of 8 (zeros in the padding); the
// transposed kernels use the same layout over their flipped taps.
@group(0) @binding(2) var<storage, read> wt: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
