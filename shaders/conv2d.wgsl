// Conv2d(k, stride s, padding k/2), "same" alignment: output (oy, ox) reads input rows
// oy*s - k/2 .. oy*s + k/2 with zeros outside; output size ceil(in / s).
//
// Tiled direct convolution. A workgroup owns an 8x8 tile of output pixels and 8 output channels.
// Per chunk of `ck` input channels it stages the input patch the tile needs ((8-1)*s + k square)
// and the chunk's weights in workgroup memory, then every invocation accumulates its pixel's
// 8 channels in registers. The patch is read once from global memory instead of k*k times, and
// one staged input value feeds 8 output channels. Optional epilogue: bias, LeakyReLU.

// `Params`, the bindings p, x, wt, bias, y and the shared steps (stage_input, stage_weights,
// store, floor_div): conv_interface.wgsl, prepended by gpu/kernels.rs.

const T: u32 = 8u;
// 510 x 16 B + 2040 x 4 B = 16320 B, inside the 16352 B downlevel guarantee.
var<workgroup> sx: array<f32, 2040>;
var<workgroup> sw: array<vec4<f32>, 510>;

@compute @workgroup_size(8, 8, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let s = p.stride;
    let k = p.k;
    let kk = k * k;
    let pw = p.pw;
    let parea = pw * pw;
    let ox0 = wg.x * T;
    let oy0 = wg.y * T;
    let cg = wg.z;
    let iy0 = i32(oy0 * s) - i32(p.pad);
    let ix0 = i32(ox0 * s) - i32(p.pad);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    for (var c0 = 0u; c0 < p.cin; c0 += p.ck) {
        let cn = min(p.ck, p.cin - c0);
        workgroupBarrier();
        stage_input(c0, cn, iy0, ix0, lid);
        stage_weights(c0, cn, cg, li);
        workgroupBarrier();
        for (var cc = 0u; cc < cn; cc++) {
            for (var ky = 0u; ky < k; ky++) {
                let row = cc * parea + (lid.y * s + ky) * pw + lid.x * s;
                let wrow = (cc * kk + ky * k) * 2u;
                for (var kx = 0u; kx < k; kx++) {
                    let v = sx[row + kx];
                    acc0 += sw[wrow + kx * 2u] * v;
                    acc1 += sw[wrow + kx * 2u + 1u] * v;
                }
            }
        }
    }
    let ox = ox0 + lid.x;
    let oy = oy0 + lid.y;
    store(oy, ox, cg, acc0, acc1);
}
