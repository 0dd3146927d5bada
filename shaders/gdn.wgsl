// GDN / IGDN (Ballé 2016): y_i = x_i / sqrt(beta_i + sum_j gamma[i, j] * x_j^2); the inverse
// multiplies by the square root. Per pixel, across channels only.
//
// A workgroup owns 64 pixels and 8 output channels i; per chunk of 16 input channels j it stages
// x_j^2 of its pixels and the matching gamma columns in workgroup memory, so every square is
// formed once per workgroup and every gamma value is shared by 64 pixels.
// Reads x, writes y (a separate buffer: every output needs every input channel).

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

const JC: u32 = 16u;
var<workgroup> sq: array<f32, 1024>;
var<workgroup> sg: array<vec4<f32>, 32>;

@compute @workgroup_size(64, 1, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let pix = wg.x * 64u + li;
    let ig = wg.y;
    let cpad4 = ((p.c + 7u) / 8u) * 2u;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    for (var j0 = 0u; j0 < p.c; j0 += JC) {
        let jn = min(JC, p.c - j0);
        workgroupBarrier();
        for (var jj = 0u; jj < jn; jj++) {
            var v = 0.0;
            if (pix < p.plane) {
                v = x[(j0 + jj) * p.plane + pix];
            }
            sq[jj * 64u + li] = v * v;
        }
        if (li < jn * 2u) {
            sg[li] = gamma[(j0 + li / 2u) * cpad4 + ig * 2u + li % 2u];
        }
        workgroupBarrier();
        for (var jj = 0u; jj < jn; jj++) {
            let s = sq[jj * 64u + li];
            acc0 += sg[jj * 2u] * s;
            acc1 += sg[jj * 2u + 1u] * s;
        }
    }
    if (pix >= p.plane) {
        return;
    }
    for (var j = 0u; j < 8u; j++) {
        let i = ig * 8u + j;
        if (i < p.c) {
            let norm = beta[i] + select(acc1[j - 4u], acc0[j], j < 4u);
            let xi = x[i * p.plane + pix];
            if (p.inverse == 1u) {
                y[i * p.plane + pix] = xi * sqrt(norm);
            } else {
                y[i * p.plane + pix] = xi / sqrt(norm);
            }
        }
    }
}
