//! A net on the GPU: weights uploaded once, activations in two reused ping-pong buffers.

use std::sync::{mpsc, Arc, Mutex};

use wgpu::util::DeviceExt;

use super::context::GpuContext;
use super::layout::{
    pack_f16, repack_conv, repack_gamma, ConvShape, COUT_TILE, GDN_PIXELS, TILE, TILE_X4,
};
use super::GpuError;
use crate::model::graph::{Layer, Net};
use crate::tensor::Tensor;

mod prepared;
use crate::tiling::Geometry;

/// Default cap on one activation buffer, below the adapter's own limit: two of them are live.
const DEFAULT_BUDGET: u64 = 256 << 20;

#[derive(Debug)]
enum Op {
    Conv {
        conv: ConvShape,
        /// LeakyReLU fused into the epilogue.
        slope: Option<f32>,
        /// Runs on the 2x2-pixels-per-invocation kernel (see [`ConvShape::x4`]).
        x4: bool,
        /// `weight` holds f16 pairs (see [`pack_f16`]).
        f16: bool,
        weight: wgpu::Buffer,
        bias: wgpu::Buffer,
    },
    Gdn {
        c: usize,
        inverse: bool,
        beta: wgpu::Buffer,
        gamma: wgpu::Buffer,
    },
    Leaky {
        slope: f32,
    },
}

#[derive(Debug, Default)]
struct Scratch {
    act: Vec<wgpu::Buffer>,
    act_bytes: u64,
    staging: Option<wgpu::Buffer>,
    staging_bytes: u64,
}

/// A [`Net`] prepared for one device.
pub struct GpuNet {
    ctx: Arc<GpuContext>,
    name: String,
    ops: Vec<Op>,
    /// One uniform buffer per op, rewritten for each input size.
    params: Vec<wgpu::Buffer>,
    geometry: Geometry,
    cin: usize,
    /// Largest activation buffer a tile may use.
    /// Per-net override of the context's tile budget (tests).
    budget: Option<u64>,
    scratch: Mutex<Scratch>,
}

impl std::fmt::Debug for GpuNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuNet")
            .field("name", &self.name)
            .field("adapter", &self.ctx.info().name)
            .field("budget", &self.budget())
            .finish_non_exhaustive()
    }
}

fn storage<T: bytemuck::Pod>(ctx: &GpuContext, label: &str, data: &[T]) -> wgpu::Buffer {
    let bytes: &[u8] = bytemuck::cast_slice(data);
    ctx.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: if bytes.is_empty() { &[0; 4] } else { bytes },
            usage: wgpu::BufferUsages::STORAGE,
        })
}

fn u(v: usize) -> Result<u32, GpuError> {
    u32::try_from(v).map_err(|_| GpuError::Unsupported(format!("dimension {v} exceeds u32")))
}

impl GpuNet {
    /// Uploads the weights of `net` (once; they stay on the device).
    pub fn prepare(ctx: &Arc<GpuContext>, net: &Net) -> Result<GpuNet, GpuError> {
        Self::prepare_with(ctx, net, true)
    }

    /// [`GpuNet::prepare`] with every weight in the f32 layout, even where it is an f16 value
    /// (benchmarks and tests compare the two layouts).
    #[cfg(any(test, feature = "internals"))]
    pub fn prepare_f32(ctx: &Arc<GpuContext>, net: &Net) -> Result<GpuNet, GpuError> {
        Self::prepare_with(ctx, net, false)
    }

    fn prepare_with(ctx: &Arc<GpuContext>, net: &Net, allow_f16: bool) -> Result<GpuNet, GpuError> {
        let cin = match net.layers.first() {
            Some(Layer::Conv(c)) => c.cin,
            Some(Layer::Gdn { c, .. }) => *c,
            _ => {
                return Err(GpuError::Unsupported(format!(
                    "{}: a net must start with a convolution or GDN",
                    net.name
                )))
            }
        };
        let ops = ctx.scoped(|| {
            let mut ops = Vec::new();
            let mut layers = net.layers.iter().peekable();
            while let Some(layer) = layers.next() {
                ops.push(match layer {
                    Layer::Conv(c) => {
                        let shape = ConvShape {
                            cin: c.cin,
                            cout: c.cout,
                            k: c.k,
                            stride: c.stride,
                            transposed: c.transposed,
                        };
                        if c.k % 2 == 0 || c.stride == 0 || shape.chunk_for(false) == 0 {
                            return Err(GpuError::Unsupported(format!(
                                "{}: conv k={} stride={}",
                                net.name, c.k, c.stride
                            )));
                        }
                        let slope = match layers.peek() {
                            Some(Layer::LeakyRelu { slope }) => {
                                layers.next();
                                Some(*slope)
                            }
                            _ => None,
                        };
                        let bias = c.bias.clone().unwrap_or_else(|| vec![0.0; c.cout]);
                        let repacked = repack_conv(c);
                        let (f16, weight) = match pack_f16(&repacked).filter(|_| allow_f16) {
                            Some(h) => (true, storage(ctx, "weight f16", &h)),
                            None => (false, storage(ctx, "weight", &repacked)),
                        };
                        Op::Conv {
                            conv: shape,
                            slope,
                            x4: shape.x4(),
                            f16,
                            weight,
                            bias: storage(ctx, "bias", &bias),
                        }
                    }
                    Layer::Gdn {
                        c,
                        inverse,
                        beta,
                        gamma,
                    } => Op::Gdn {
                        c: *c,
                        inverse: *inverse,
                        beta: storage(ctx, "beta", beta),
                        gamma: storage(ctx, "gamma", &repack_gamma(*c, gamma)),
                    },
                    Layer::LeakyRelu { slope } => Op::Leaky { slope: *slope },
                });
            }
            Ok(ops)
        })?;
        let params = (0..ops.len())
            .map(|_| {
                ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("params"),
                    size: 64,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .collect();
        Ok(GpuNet {
            ctx: Arc::clone(ctx),
            name: net.name.clone(),
            ops,
            params,
            geometry: Geometry::of(net),
            cin,
            budget: None,
            scratch: Mutex::new(Scratch::default()),
        })
    }

    /// Runs every convolution on the one-pixel-per-invocation kernels (the fallback the 2x2
    /// kernels normally hide), so the tests cover both.
    #[cfg(test)]
    pub(crate) fn single_pixel_kernels(&mut self) {
        for op in &mut self.ops {
            if let Op::Conv { x4, .. } = op {
                *x4 = false;
            }
        }
    }

    /// Whether every convolution stages f16 weights (true for the shipped models).
    #[cfg(any(test, feature = "internals"))]
    pub fn f16_weights(&self) -> bool {
        self.ops.iter().all(|op| match op {
            Op::Conv { f16, .. } => *f16,
            _ => true,
        })
    }

    /// The device this net runs on.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// Caps one activation buffer at `bytes` (never above the adapter's binding limit), which
    /// decides the tile size; tests use it to force many tiles on small images.
    #[cfg(any(test, feature = "internals"))]
    pub fn set_tile_budget(&mut self, bytes: u64) {
        self.budget = Some(bytes);
    }

    /// The largest activation buffer one tile may use.
    pub(crate) fn budget(&self) -> u64 {
        self.budget
            .or(self.ctx.tile_budget())
            .unwrap_or(DEFAULT_BUDGET)
            .min(self.ctx.max_binding())
    }

    /// Shapes of the input and of every op's output for an `h x w` input.
    fn shapes(&self, h: usize, w: usize) -> Vec<(usize, usize, usize)> {
        let mut s = vec![(self.cin, h, w)];
        let mut cur = (self.cin, h, w);
        for op in &self.ops {
            if let Op::Conv { conv, .. } = op {
                let (oh, ow) = conv.out(cur.1, cur.2);
                cur = (conv.cout, oh, ow);
            }
            s.push(cur);
        }
        s
    }

    /// Whether an `h x w` input runs in one piece: buffers under the budget, dispatches under
    /// the per-dimension workgroup limit.
    pub(crate) fn fits_device(&self, h: usize, w: usize) -> bool {
        let max_groups = self.ctx.limits.max_compute_workgroups_per_dimension as usize;
        let shapes = self.shapes(h, w);
        let budget = self.budget();
        let bytes_ok = shapes
            .iter()
            .all(|&(c, h, w)| ((c * h * w * 4) as u64) <= budget);
        let groups_ok = shapes.iter().all(|&(c, h, w)| {
            w.div_ceil(TILE) <= max_groups
                && h.div_ceil(TILE) <= max_groups
                && c.div_ceil(COUT_TILE) * 16 <= max_groups
                && (h * w).div_ceil(GDN_PIXELS) <= max_groups
        });
        bytes_ok && groups_ok
    }

    /// Runs the net on `x` in one piece.
    fn run_piece(&self, x: &Tensor) -> Result<Tensor, GpuError> {
        let ctx = &self.ctx;
        ctx.check()?;
        let shapes = self.shapes(x.h, x.w);
        let max_bytes = shapes
            .iter()
            .map(|&(c, h, w)| (c * h * w * 4) as u64)
            .max()
            .unwrap_or(4)
            .max(4);
        let &(oc, oh, ow) = shapes.last().unwrap_or(&(0, 0, 0));
        let out_bytes = ((oc * oh * ow * 4) as u64).max(4);
        let mut scratch = self
            .scratch
            .lock()
            .map_err(|_| GpuError::Readback("scratch lock poisoned".into()))?;
        let data = ctx.scoped(|| {
            if scratch.act_bytes < max_bytes {
                scratch.act = (0..2)
                    .map(|_| {
                        ctx.device.create_buffer(&wgpu::BufferDescriptor {
                            label: Some("activation"),
                            size: max_bytes,
                            usage: wgpu::BufferUsages::STORAGE
                                | wgpu::BufferUsages::COPY_DST
                                | wgpu::BufferUsages::COPY_SRC,
                            mapped_at_creation: false,
                        })
                    })
                    .collect();
                scratch.act_bytes = max_bytes;
            }
            if scratch.staging_bytes < out_bytes {
                scratch.staging = Some(ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("readback"),
                    size: out_bytes,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }));
                scratch.staging_bytes = out_bytes;
            }
            let (Some(a), Some(b), Some(staging)) = (
                scratch.act.first(),
                scratch.act.get(1),
                scratch.staging.as_ref(),
            ) else {
                return Err(GpuError::Readback("no scratch buffers".into()));
            };
            if !x.data.is_empty() {
                ctx.queue.write_buffer(a, 0, bytemuck::cast_slice(&x.data));
            }
            let mut enc = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some(&self.name),
                });
            let src = self.encode_pass(&mut enc, &shapes, a, b)?;
            enc.copy_buffer_to_buffer(src, 0, staging, 0, out_bytes);
            let index = ctx.queue.submit([enc.finish()]);
            self.read(staging, index, out_bytes)
        })?;
        let n = oc * oh * ow;
        let mut data = data;
        data.truncate(n);
        Ok(Tensor::from_vec(oc, oh, ow, data))
    }

    /// Records every op, input in `a`; returns the buffer that holds the output.
    fn encode_pass<'b>(
        &self,
        enc: &mut wgpu::CommandEncoder,
        shapes: &[(usize, usize, usize)],
        a: &'b wgpu::Buffer,
        b: &'b wgpu::Buffer,
    ) -> Result<&'b wgpu::Buffer, GpuError> {
        let (mut src, mut dst) = (a, b);
        for (i, op) in self.ops.iter().enumerate() {
            if !self.encode(enc, op, &self.params[i], shapes[i], src, dst)? {
                std::mem::swap(&mut src, &mut dst);
            }
        }
        Ok(src)
    }

    /// Records one op; returns true when it ran in place (the result is still in `src`).
    fn encode(
        &self,
        enc: &mut wgpu::CommandEncoder,
        op: &Op,
        params: &wgpu::Buffer,
        (c, h, w): (usize, usize, usize),
        src: &wgpu::Buffer,
        dst: &wgpu::Buffer,
    ) -> Result<bool, GpuError> {
        let ctx = &self.ctx;
        let k = &ctx.kernels;
        let (pipeline, bufs, groups, in_place): (_, Vec<&wgpu::Buffer>, [usize; 3], bool) = match op
        {
            Op::Conv {
                conv,
                slope,
                x4,
                f16,
                weight,
                bias,
            } => {
                let (oh, ow) = conv.out(h, w);
                let p: [u32; 16] = [
                    u(conv.cin)?,
                    u(conv.cout)?,
                    u(h)?,
                    u(w)?,
                    u(oh)?,
                    u(ow)?,
                    u(conv.k)?,
                    u(conv.stride)?,
                    u(conv.k / 2)?,
                    u(conv.chunk_for(*x4))?,
                    u(conv.patch_for(*x4))?,
                    u32::from(slope.is_some()),
                    slope.unwrap_or(0.0).to_bits(),
                    u32::from(*f16),
                    0,
                    0,
                ];
                ctx.queue.write_buffer(params, 0, bytemuck::cast_slice(&p));
                let groups = conv.cout.div_ceil(COUT_TILE);
                let (pipe, grid) = match (conv.transposed, *x4) {
                    (false, false) => (&k.conv, [ow.div_ceil(TILE), oh.div_ceil(TILE), groups]),
                    (true, false) => (&k.deconv, [ow.div_ceil(TILE), oh.div_ceil(TILE), groups]),
                    (false, true) => (
                        &k.conv_x4,
                        [ow.div_ceil(TILE_X4), oh.div_ceil(TILE_X4), groups],
                    ),
                    // One workgroup per phase and 16x16 block of the input grid.
                    (true, true) => (
                        if conv.cout <= 4 {
                            &k.deconv_x4_narrow
                        } else {
                            &k.deconv_x4
                        },
                        [
                            w.div_ceil(TILE_X4),
                            h.div_ceil(TILE_X4),
                            groups * conv.stride * conv.stride,
                        ],
                    ),
                };
                (pipe, vec![src, weight, bias, dst], grid, false)
            }
            Op::Gdn {
                c: gc,
                inverse,
                beta,
                gamma,
            } => {
                let p: [u32; 4] = [u(*gc)?, u(h * w)?, u32::from(*inverse), 0];
                ctx.queue.write_buffer(params, 0, bytemuck::cast_slice(&p));
                (
                    &k.gdn,
                    vec![src, beta, gamma, dst],
                    [(h * w).div_ceil(GDN_PIXELS * 4), gc.div_ceil(COUT_TILE), 1],
                    false,
                )
            }
            Op::Leaky { slope } => {
                let n = c * h * w;
                let groups = n.div_ceil(64);
                let max = ctx.limits.max_compute_workgroups_per_dimension as usize;
                let gx = groups.clamp(1, max);
                let gy = groups.div_ceil(gx);
                let p: [u32; 4] = [u(n)?, slope.to_bits(), u(gx * 64)?, 0];
                ctx.queue.write_buffer(params, 0, bytemuck::cast_slice(&p));
                (&k.leaky, vec![src], [gx, gy, 1], true)
            }
        };
        let layout = pipeline.get_bind_group_layout(0);
        let bind = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &layout,
            entries: &std::iter::once(params)
                .chain(bufs.iter().copied())
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource: b.as_entire_binding(),
                })
                .collect::<Vec<_>>(),
        });
        if groups.contains(&0) {
            return Ok(in_place);
        }
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(u(groups[0])?, u(groups[1])?, u(groups[2])?);
        Ok(in_place)
    }

    /// Waits for submission `index` (bounded by the context's timeout) and reads `bytes` back.
    fn read(
        &self,
        staging: &wgpu::Buffer,
        index: wgpu::SubmissionIndex,
        bytes: u64,
    ) -> Result<Vec<f32>, GpuError> {
        let ctx = &self.ctx;
        let slice = staging.slice(..bytes);
        let (tx, rx) = mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            // The receiver outlives the poll below; a send error only means we gave up already.
            let _ = tx.send(r);
        });
        self.wait(index)?;
        match rx.recv_timeout(ctx.timeout) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(GpuError::Readback(e.to_string())),
            Err(_) => return Err(GpuError::Timeout(ctx.timeout.as_secs())),
        }
        let data = {
            let view = slice
                .get_mapped_range()
                .map_err(|e| GpuError::Readback(e.to_string()))?;
            view.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        };
        staging.unmap();
        Ok(data)
    }

    /// Waits for submission `index`, bounded by the context's timeout.
    fn wait(&self, index: wgpu::SubmissionIndex) -> Result<(), GpuError> {
        let ctx = &self.ctx;
        ctx.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: Some(ctx.timeout),
            })
            .map_err(|e| match (ctx.check(), e) {
                // Prefer the device-lost callback's reason to the poll's symptom.
                (Err(lost), _) => lost,
                (Ok(()), wgpu::PollError::Timeout) => GpuError::Timeout(ctx.timeout.as_secs()),
                (Ok(()), other) => GpuError::DeviceLost(other.to_string()),
            })?;
        Ok(())
    }
}
