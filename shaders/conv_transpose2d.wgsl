// ConvTranspose2d(k, stride s, padding p = k/2, output_padding s-1): out[o] += in[i] * w[kk]
// with o = s*i - p + kk, output size s * in.
//
// Gather form of the sub-pixel (phase) decomposition: output o only receives the taps
// kk = (o + p) mod s, (o + p) mod s + s, ... from input i = (o + p - kk) / s, so no invocation
// multiplies by the zeros a naive upsampling would insert. A workgroup owns an 8x8 output tile
// and 8 output channels; the input rows and columns that tile can reach and the chunk's weights
// are staged in workgroup memory, as in conv2d.wgsl.

// `Params` and the bindings p, x, wt, bias, y: conv_interface.wgsl, prepended by gpu/kernels.rs.

const T: u32 = 8u;
var<workgroup> sx: array<f32, 2040>;
var<workgroup> sw: array<vec4<f32>, 510>;

fn floor_div(a: i32, b: i32) -> i32 {
    let q = a / b;
    return select(q, q - 1, (a % b != 0) && (a < 0));
}

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
    let cpad4 = ((p.cout + 7u) / 8u) * 2u;
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
