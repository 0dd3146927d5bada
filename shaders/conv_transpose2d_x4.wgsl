// ConvTranspose2d(k, stride s, padding k/2, output_padding s-1) as conv_transpose2d.wgsl, one
// sub-pixel phase per workgroup, 2x2 output pixels per invocation.
//
// Output o = s*m + r (phase r) receives exactly the taps kk = (r + p) mod s, + s, ... from input
// i = m + (r + p - kk) / s: for a fixed phase this is a small stride-1 correlation on the input
// grid. A workgroup owns one phase (ry, rx), a 16x16 block of grid positions m and 8 output
// channels, so every invocation runs the same taps (no divergence, uniform weight reads), and
// invocation (tx, ty) computes grid positions (ty + 8*jy, tx + 8*jx), jy, jx in {0, 1}: one staged
// weight pair feeds 4 pixels.

// `Params`, the bindings p, x, wt, bias, y and the shared steps (stage_input, stage_weights,
// store, floor_div): conv_interface.wgsl, prepended by gpu/kernels.rs.

const T: u32 = 16u;
// false: the layer has at most 4 output channels (g_s's last, 3), so the upper four accumulator
// lanes (b**) would only ever hold zeros; gpu/kernels.rs builds a second pipeline without them.
override WIDE: bool = true;
var<workgroup> sx: array<f32, 3060>;
var<workgroup> sw: array<vec4<f32>, 255>;

@compute @workgroup_size(8, 8, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let su = p.stride;
    let s = i32(su);
    let k = p.k;
    let kk = k * k;
    let pad = i32(p.pad);
    let pw = p.pw;
    let parea = pw * pw;
    let phases = su * su;
    let cg = wg.z / phases;
    let ry = (wg.z % phases) / su;
    let rx = wg.z % su;
    let my0 = wg.y * T;
    let mx0 = wg.x * T;
    // Lowest input row / column any tap of this phase reads (a bound shared by all phases).
    let iy0 = i32(my0) + floor_div(pad - i32(k) + 1, s);
    let ix0 = i32(mx0) + floor_div(pad - i32(k) + 1, s);
    let ky0 = (ry + p.pad) % su;
    let kx0 = (rx + p.pad) % su;
    // Taps of this phase per axis.
    let nty = (k - ky0 + su - 1u) / su;
    let ntx = (k - kx0 + su - 1u) / su;
    let nt = nty * ntx;
    let my = my0 + lid.y;
    let mx = mx0 + lid.x;
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
        // Only this phase's taps: sw[((cc * nty + ty) * ntx + tx) * 2 + half] holds kernel tap
        // (ky0 + ty * s, kx0 + tx * s), so a chunk holds several times more channels.
        for (var t = li; t < cn * nt * 2u; t += 64u) {
            let r = t / 2u;
            let q = r % nt;
            let tap = (ky0 + (q / ntx) * su) * k + kx0 + (q % ntx) * su;
            if (WIDE || t % 2u == 0u) {
                sw[t] = weight((c0 + r / nt) * kk + tap, cg, t % 2u);
            }
        }
        workgroupBarrier();
        for (var cc = 0u; cc < cn; cc++) {
            for (var ty = 0u; ty < nty; ty++) {
                let ky = ky0 + ty * su;
                let iy = i32(my) + (i32(ry) + pad - i32(ky)) / s;
                let r0 = cc * parea + u32(iy - iy0) * pw;
                let wrow = (cc * nt + ty * ntx) * 2u;
                for (var tx = 0u; tx < ntx; tx++) {
                    let kx = kx0 + tx * su;
                    let ix = i32(mx) + (i32(rx) + pad - i32(kx)) / s;
                    let c = r0 + u32(ix - ix0);
                    let w0 = sw[wrow + tx * 2u];
                    let v00 = sx[c];
                    let v01 = sx[c + 8u];
                    let v10 = sx[c + 8u * pw];
                    let v11 = sx[c + 8u * pw + 8u];
                    a00 += w0 * v00;
                    a01 += w0 * v01;
                    a10 += w0 * v10;
                    a11 += w0 * v11;
                    if (WIDE) {
                        let w1 = sw[wrow + tx * 2u + 1u];
                        b00 += w1 * v00;
                        b01 += w1 * v01;
                        b10 += w1 * v10;
                        b11 += w1 * v11;
                    }
                }
            }
        }
    }
    let oy = su * my + ry;
    let ox = su * mx + rx;
    let d = 8u * su;
    store(oy, ox, cg, a00, b00);
    store(oy, ox + d, cg, a01, b01);
    store(oy + d, ox, cg, a10, b10);
    store(oy + d, ox + d, cg, a11, b11);
}
