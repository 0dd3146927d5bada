//! The shader table and the pipelines.

use super::GpuError;

/// A convolution kernel's source: the shared interface (`Params`, bindings), then the kernel.
macro_rules! conv_kernel {
    ($file:literal) => {
        concat!(
            include_str!("../../../../shaders/conv_interface.wgsl"),
            include_str!(concat!("../../../../shaders/", $file))
        )
    };
}

/// A pipeline: name, WGSL source (embedded from `shaders/`, one kernel per file) and the values
/// of its `override` constants.
type Shader = (&'static str, &'static str, &'static [(&'static str, f64)]);

/// Every pipeline, in the order of [`Kernels`]' fields.
pub(crate) const SHADERS: &[Shader] = &[
    ("conv2d", conv_kernel!("conv2d.wgsl"), &[]),
    (
        "conv_transpose2d",
        conv_kernel!("conv_transpose2d.wgsl"),
        &[],
    ),
    ("conv2d_x4", conv_kernel!("conv2d_x4.wgsl"), &[]),
    (
        "conv_transpose2d_x4",
        conv_kernel!("conv_transpose2d_x4.wgsl"),
        &[],
    ),
    (
        "conv_transpose2d_x4 narrow",
        conv_kernel!("conv_transpose2d_x4.wgsl"),
        &[("WIDE", 0.0)],
    ),
    ("gdn", include_str!("../../../../shaders/gdn.wgsl"), &[]),
    (
        "leaky_relu",
        include_str!("../../../../shaders/leaky_relu.wgsl"),
        &[],
    ),
];

/// The compute pipelines, built once per device and shared by every net on it.
pub(crate) struct Kernels {
    pub conv: wgpu::ComputePipeline,
    pub deconv: wgpu::ComputePipeline,
    /// 2x2 output pixels per invocation.
    pub conv_x4: wgpu::ComputePipeline,
    pub deconv_x4: wgpu::ComputePipeline,
    /// `deconv_x4` for at most 4 output channels (`WIDE = false`).
    pub deconv_x4_narrow: wgpu::ComputePipeline,
    pub gdn: wgpu::ComputePipeline,
    pub leaky: wgpu::ComputePipeline,
}

impl Kernels {
    pub fn new(device: &wgpu::Device) -> Result<Self, GpuError> {
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut pipes = SHADERS.iter().map(|(name, src, constants)| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl((*src).into()),
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    ..Default::default()
                },
                cache: None,
            })
        });
        let mut next = || {
            pipes
                .next()
                .ok_or_else(|| GpuError::Unsupported("shader table".into()))
        };
        let kernels = Kernels {
            conv: next()?,
            deconv: next()?,
            conv_x4: next()?,
            deconv_x4: next()?,
            deconv_x4_narrow: next()?,
            gdn: next()?,
            leaky: next()?,
        };
        if let Some(e) = pollster::block_on(val.pop()) {
            return Err(GpuError::Validation(e.to_string()));
        }
        if let Some(e) = pollster::block_on(oom.pop()) {
            return Err(GpuError::OutOfMemory(e.to_string()));
        }
        Ok(kernels)
    }
}
