//! The CPU backend: the reference implementation of every op and the test oracle for the GPU.
//!
//! Two kinds of arithmetic:
//! - [`Math::Fast`]: im2col tiles + a cache-blocked, multithreaded GEMM (the `gemm` crate, FMA where
//!   the CPU has it). Used for `g_a`, `g_s`, `h_a` and the means of `h_s`, where float drift only
//!   moves pixels.
//! - [`Math::Exact`]: a fixed-order, FMA-free f32 kernel whose every output is
//!   `((b + w0*x0) + w1*x1) + ...` in one documented order, independent of thread count, SIMD width
//!   and machine. Used for everything that decides a probability table (the scales of `h_s`).
//!
//! Never imports wgpu.

mod conv;
mod exact;
mod gdn;
mod gemm;

pub use conv::{CpuLayer, CpuNet};

/// Which arithmetic a net runs with (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Math {
    Fast,
    Exact,
}
