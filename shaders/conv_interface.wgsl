// The interface every convolution kernel shares (conv2d, conv2d_x4, conv_transpose2d,
// conv_transpose2d_x4): gpu/kernels.rs prepends this file to each, and gpu/net.rs fills `Params`
// and binds the buffers in this order. The helpers below are the kernels' common steps; they use
// the workgroup arrays `sx` (input patch) and `sw` (weights) that each kernel declares with its own
// size (WGSL resolves module-scope names in any order).

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
    // 1: `wt` holds f16 pairs (see `weight`), 0: f32.
    wf16: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
// Repacked [cin][k*k][cout_pad] with cout_pad a multiple of 8 (zeros in the padding); the
// transposed kernels use the same layout over their flipped taps. Either f32 (one vec4 per 4
// channels, bit-cast) or, when every weight is an f16 value, f16 pairs (one vec4<u32> per 8
// channels): half the bytes to stage, the same f32 values after unpacking, so results are
// bit-identical (gpu/net.rs chooses). unpack2x16float is core WGSL: no SHADER_F16 needed.
@group(0) @binding(2) var<storage, read> wt: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

fn floor_div(a: i32, b: i32) -> i32 {
    let q = a / b;
    return select(q, q - 1, (a % b != 0) && (a < 0));
}

// Stages input channels c0 .. c0 + cn of the pw x pw patch whose top-left input pixel is
// (iy0, ix0) into sx[cc][py][px], zeros outside the image. Row by row with the 8x8 invocation grid:
// no integer division (slow where it is emulated, as on CPU drivers).
fn stage_input(c0: u32, cn: u32, iy0: i32, ix0: i32, lid: vec3<u32>) {
    let pw = p.pw;
    let parea = pw * pw;
    for (var cc = 0u; cc < cn; cc++) {
        for (var py = lid.y; py < pw; py += 8u) {
            let iy = iy0 + i32(py);
            let row_ok = iy >= 0 && u32(iy) < p.h;
            let src = ((c0 + cc) * p.h + u32(max(iy, 0))) * p.w;
            for (var px = lid.x; px < pw; px += 8u) {
                let ix = ix0 + i32(px);
                var v = 0.0;
                if (row_ok && ix >= 0 && u32(ix) < p.w) {
                    v = x[src + u32(ix)];
                }
                sx[cc * parea + py * pw + px] = v;
            }
        }
    }
}

// Channels cg * 8 + 4 * hf .. + 3 of weight row `row` (= input channel * k * k + tap).
fn weight(row: u32, cg: u32, hf: u32) -> vec4<f32> {
    let groups = (p.cout + 7u) / 8u;
    if (p.wf16 == 1u) {
        let q = wt[row * groups + cg];
        let h = select(q.zw, q.xy, hf == 0u);
        return vec4<f32>(unpack2x16float(h.x), unpack2x16float(h.y));
    }
    return bitcast<vec4<f32>>(wt[(row * groups + cg) * 2u + hf]);
}

// Stages every tap of input channels c0 .. c0 + cn for output channel group cg:
// sw[(cc * kk + tap) * 2 + half] = channels of half `half` of row (c0 + cc) * kk + tap.
fn stage_weights(c0: u32, cn: u32, cg: u32, li: u32) {
    let kk = p.k * p.k;
    for (var t = li; t < cn * kk * 2u; t += 64u) {
        sw[t] = weight(c0 * kk + t / 2u, cg, t % 2u);
    }
}

// The epilogue: bias, optional LeakyReLU, 8 channels (lo, hi) of output pixel (oy, ox).
fn store(oy: u32, ox: u32, cg: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (ox >= p.ow || oy >= p.oh) {
        return;
    }
    let plane = p.oh * p.ow;
    let base = oy * p.ow + ox;
    for (var j = 0u; j < 8u; j++) {
        let co = cg * 8u + j;
        if (co < p.cout) {
            var v = select(hi[j - 4u], lo[j], j < 4u) + bias[co];
            if (p.act == 1u && v <= 0.0) {
                v = v * p.slope;
            }
            y[co * plane + base] = v;
        }
    }
}
