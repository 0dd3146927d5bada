// ConvTranspose2d(k, stride s, padding p = k/2, output_padding s-1): out[o] += in[i] * w[kk]
// with o = s*i - p + kk, output size s * in.
//
// Gather form of the sub-pixel (phase) decomposition: output o only receives the taps
// kk = (o + p) mod s, (o + p) mod s + s, ... from input i = (o + p - kk) / s, so no invocation
// multiplies by the zeros a naive upsampling would insert. A workgroup owns an 8x8 output tile
// and 8 output channels; the input rows and columns that tile can reach and the chunk's weights
// are staged in workgroup memory, as in conv2d.wgsl.

// `Params`, the bindings p, x, wt, bias, y and the shared steps (stage_input, stage_weights,
// store, floor_div): conv_interface.wgsl, prepended by gpu/kernels.rs.

const T: u32 = 8u;
var<workgroup> sx: array<f32, 2040>;
var<workgroup> sw: array<vec4<f32>, 510>;

@compute @workgroup_size(8, 8, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let s = i32(p.stride);
    let k = p.k;
    let kk = k * k;
    let pad = i32(p.pad);
    let pw = p.pw;
    let parea = pw * pw;
    let ox0 = wg.x * T;
    let oy0 = wg.y * T;
    let cg = wg.z;
    // Lowest input row / column the tile reads.
    let iy0 = floor_div(i32(oy0) + pad - i32(k) + 1, s);
    let ix0 = floor_div(i32(ox0) + pad - i32(k) + 1, s);
    let oy = oy0 + lid.y;
    let ox = ox0 + lid.x;
    let ry = (oy + p.pad) % p.stride;
    let rx = (ox + p.pad) % p.stride;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    for (var c0 = 0u; c0 < p.cin; c0 += p.ck) {
        let cn = min(p.ck, p.cin - c0);
        workgroupBarrier();
        stage_input(c0, cn, iy0, ix0, lid);
        stage_weights(c0, cn, cg, li);
        workgroupBarrier();
        for (var cc = 0u; cc < cn; cc++) {
            for (var ky = ry; ky < k; ky += p.stride) {
                let iy = (i32(oy) + pad - i32(ky)) / s;
                let row = cc * parea + u32(iy - iy0) * pw;
                let wrow = (cc * kk + ky * k) * 2u;
                for (var kx = rx; kx < k; kx += p.stride) {
                    let ix = (i32(ox) + pad - i32(kx)) / s;
                    let v = sx[row + u32(ix - ix0)];
                    acc0 += sw[wrow + kx * 2u] * v;
                    acc1 += sw[wrow + kx * 2u + 1u] * v;
                }
            }
        }
    }
    store(oy, ox, cg, acc0, acc1);
}
