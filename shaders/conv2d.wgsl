// Conv2d(k, stride s, padding k/2), "same" alignment: output (oy, ox) reads input rows
// oy*s - k/2 .. oy*s + k/2 with zeros outside; output size ceil(in / s).
//
// Tiled direct convolution. A workgroup owns an 8x8 tile of output pixels and 8 output channels.
// Per chunk of `ck` input channels it stages the input patch the tile needs ((8-1)*s + k square)
// and the chunk's weights in workgroup memory, then every invocation accumulates its pixel's
// 8 channels in registers. The patch is read once from global memory instead of k*k times, and
// one staged input value feeds 8 output channels. Optional epilogue: bias, LeakyReLU.

// `Params` and the bindings p, x, wt, bias, y: conv_interface.wgsl, prepended by gpu/kernels.rs.

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
    let cpad4 = ((p.cout + 7u) / 8u) * 2u;
    let iy0 = i32(oy0 * s) - i32(p.pad);
    let ix0 = i32(ox0 * s) - i32(p.pad);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    for (var c0 = 0u; c0 < p.cin; c0 += p.ck) {
        let cn = min(p.ck, p.cin - c0);
        workgroupBarrier();
        // Row by row with the 8x8 invocation grid: no integer division (slow where it is
        // emulated, as on CPU drivers).
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
        // sw[(cc * kk + tap) * 2 + half] = wt[((c0 + cc) * kk + tap) * cpad4 + cg * 2 + half].
        for (var t = li; t < cn * kk * 2u; t += 64u) {
            sw[t] = wt[(c0 * kk + t / 2u) * cpad4 + cg * 2u + t % 2u];
        }
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
    if (ox >= p.ow || oy >= p.oh) {
        return;
    }
    let plane = p.oh * p.ow;
    let base = oy * p.ow + ox;
    for (var j = 0u; j < 8u; j++) {
        let co = cg * 8u + j;
        if (co < p.cout) {
            var v = select(acc1[j - 4u], acc0[j], j < 4u) + bias[co];
            if (p.act == 1u && v <= 0.0) {
                v = v * p.slope;
            }
            y[co * plane + base] = v;
        }
    }
}
