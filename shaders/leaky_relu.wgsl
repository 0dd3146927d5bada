// LeakyReLU(slope) in place: x if x > 0, else slope * x. The nets fuse it into the preceding
// convolution's epilogue; this kernel serves a LeakyReLU that follows anything else.

struct Params {
    n: u32,
    slope: f32,
    // Invocations per row of the dispatch grid (a large tensor needs a 2-D grid).
    row: u32,
    _p0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row + gid.x;
    if (i < p.n) {
        let v = x[i];
        x[i] = select(v * p.slope, v, v > 0.0);
    }
}
