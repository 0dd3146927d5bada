// GDN / IGDN (Ballé 2016): y_i = x_i / sqrt(beta_i + sum_j gamma[i, j] * x_j^2); the inverse
// multiplies by the square root. Per pixel, across channels only.
//
// A workgroup owns 256 pixels (4 per invocation: li, li + 64, li + 128, li + 192) and 8 output
// channels i; per chunk of 8 input channels j it stages x_j^2 of its pixels and the matching
// gamma columns in workgroup memory, so every square is formed once per workgroup and one staged
// gamma pair feeds 4 pixels. Reads x, writes y (a separate buffer: every output needs every input
// channel).

struct Params {
    c: u32,
    plane: u32,
    inverse: u32,
    _p0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
// Repacked [c (j)][c_pad (i)] with c_pad a multiple of 8.
@group(0) @binding(3) var<storage, read> gamma: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

const JC: u32 = 8u;
const PX: u32 = 256u;
var<workgroup> sq: array<f32, 2048>;
var<workgroup> sg: array<vec4<f32>, 16>;

fn finish(pix: u32, ig: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (pix >= p.plane) {
        return;
    }
    for (var j = 0u; j < 8u; j++) {
        let i = ig * 8u + j;
        if (i < p.c) {
            let norm = beta[i] + select(hi[j - 4u], lo[j], j < 4u);
            let xi = x[i * p.plane + pix];
            if (p.inverse == 1u) {
                y[i * p.plane + pix] = xi * sqrt(norm);
            } else {
                y[i * p.plane + pix] = xi / sqrt(norm);
            }
        }
    }
}

@compute @workgroup_size(64, 1, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let p0 = wg.x * PX;
    let ig = wg.y;
    let cpad4 = ((p.c + 7u) / 8u) * 2u;
    var a0 = vec4<f32>(0.0);
    var b0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var b1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var b2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var b3 = vec4<f32>(0.0);
    for (var j0 = 0u; j0 < p.c; j0 += JC) {
        let jn = min(JC, p.c - j0);
        workgroupBarrier();
        for (var t = li; t < jn * PX; t += 64u) {
            let pix = p0 + t % PX;
            var v = 0.0;
            if (pix < p.plane) {
                v = x[(j0 + t / PX) * p.plane + pix];
            }
            sq[t] = v * v;
        }
        if (li < jn * 2u) {
            sg[li] = gamma[(j0 + li / 2u) * cpad4 + ig * 2u + li % 2u];
        }
        workgroupBarrier();
        for (var jj = 0u; jj < jn; jj++) {
            let g0 = sg[jj * 2u];
            let g1 = sg[jj * 2u + 1u];
            let r = jj * PX + li;
            let s0 = sq[r];
            let s1 = sq[r + 64u];
            let s2 = sq[r + 128u];
            let s3 = sq[r + 192u];
            a0 += g0 * s0;
            b0 += g1 * s0;
            a1 += g0 * s1;
            b1 += g1 * s1;
            a2 += g0 * s2;
            b2 += g1 * s2;
            a3 += g0 * s3;
            b3 += g1 * s3;
        }
    }
    finish(p0 + li, ig, a0, b0);
    finish(p0 + li + 64u, ig, a1, b1);
    finish(p0 + li + 128u, ig, a2, b2);
    finish(p0 + li + 192u, ig, a3, b3);
}
