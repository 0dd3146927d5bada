// Conv2d(k, stride s, padding k/2) as conv2d.wgsl, with 2x2 output pixels per invocation.
//
// A workgroup owns a 16x16 output tile and 8 output channels; invocation (tx, ty) computes
// pixels (ty + 8*jy, tx + 8*jx) for jy, jx in {0, 1}. Each staged weight pair then feeds 4
// pixels: 4 staged inputs + 2 staged weight vectors per 32 multiply-adds, against 1 + 2 per 8 in
// conv2d.wgsl, which serves the layers whose 16x16 patch does not fit (9x9 stride 4).

// `Params`, the bindings p, x, wt, bias, y and the shared steps (stage_input, stage_weights,
// store, floor_div): conv_interface.wgsl, prepended by gpu/kernels.rs.

const T: u32 = 16u;
// 3060 x 4 B + 255 x 16 B = 16320 B, inside the 16352 B downlevel guarantee.
var<workgroup> sx: array<f32, 3060>;
var<workgroup> sw: array<vec4<f32>, 255>;

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
    // Offset of the second pixel row / column inside the patch.
    let dy = 8u * s * pw;
    let dx = 8u * s;
    var a00 = vec4<f32>(0.0);
    var b00 = vec4<f32>(0.0);
    var a01 = vec4<f32>(0.0);
    var b01 = vec4<f32>(0.0);
    var a10 = vec4<f32>(0.0);
    var b10 = vec4<f32>(0.0);
    var a11 = vec4<f32>(0.0);
    var b11 = vec4<f32>(0.0);
    for (var c0 = 0u; c0 < p.cin; c0 += p.ck) {
        let cn = min(p.ck, p.cin - c0);
        workgroupBarrier();
        stage_input(c0, cn, iy0, ix0, lid);
        stage_weights(c0, cn, cg, li);
        workgroupBarrier();
        for (var cc = 0u; cc < cn; cc++) {
            for (var ky = 0u; ky < k; ky++) {
                let r0 = cc * parea + (lid.y * s + ky) * pw + lid.x * s;
                let wrow = (cc * kk + ky * k) * 2u;
                for (var kx = 0u; kx < k; kx++) {
                    let w0 = sw[wrow + kx * 2u];
                    let w1 = sw[wrow + kx * 2u + 1u];
                    let v00 = sx[r0 + kx];
                    let v01 = sx[r0 + dx + kx];
                    let v10 = sx[r0 + dy + kx];
                    let v11 = sx[r0 + dy + dx + kx];
                    a00 += w0 * v00;
                    b00 += w1 * v00;
                    a01 += w0 * v01;
                    b01 += w1 * v01;
                    a10 += w0 * v10;
                    b10 += w1 * v10;
                    a11 += w0 * v11;
                    b11 += w1 * v11;
                }
            }
        }
    }
    let oy = oy0 + lid.y;
    let ox = ox0 + lid.x;
    store(oy, ox, cg, a00, b00);
    store(oy, ox + 8u, cg, a01, b01);
    store(oy + 8u, ox, cg, a10, b10);
    store(oy + 8u, ox + 8u, cg, a11, b11);
}
