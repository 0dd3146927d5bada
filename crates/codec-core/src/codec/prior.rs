//! The entropy models of `y`: per-level factorized tables, or the mean-scale hyperprior with its
//! exact scale path, prepared from a model file.

use crate::cpu::CpuNet;
use crate::entropy::CdfTables;
use crate::error::{Error, Result};
use crate::model::graph::{Conv, Layer, Net};
use crate::model::CdfRows;
use crate::transform::Transform;

/// The hyperprior half of `mbt2018-mean`.
#[derive(Debug)]
pub(super) struct Hyper {
    pub h_a: Transform,
    /// `h_s` without its last conv (Exact).
    pub h_s_body: CpuNet,
    /// The scale rows `[0, M)` of `h_s`'s last conv (Exact).
    pub h_s_scales: CpuNet,
    /// The mean rows `[M, 2M)` of `h_s`'s last conv (Fast).
    pub h_s_means: Transform,
    pub z_tables: CdfTables,
    pub z_medians: Vec<f32>,
    pub y_tables: CdfTables,
    pub scale_table: Vec<f32>,
}

/// The entropy model of `y`.
#[derive(Debug)]
pub(super) enum Prior {
    /// Per-level EntropyBottleneck tables (rows `(level - 1) * M + c`) and their medians.
    Factorized {
        tables: CdfTables,
        medians: Vec<f32>,
    },
    /// Mean-scale hyperprior.
    Hyper(Box<Hyper>),
}

/// Builds the coder's tables from a model file's rows (validating every row).
pub(super) fn cdf_tables(t: &CdfRows) -> Result<CdfTables> {
    Ok(CdfTables::new(
        &t.cdf, t.rows, t.row_len, &t.cdf_len, &t.offset,
    )?)
}

/// Splits `h_s` into its body and the scale and mean halves of its last conv.
pub(super) fn split_h_s(h_s: &Net, m: usize) -> Result<(Net, Net, Net)> {
    let mut body = h_s.clone();
    let Some(Layer::Conv(Conv {
        cin,
        cout,
        k,
        stride,
        transposed: false,
        weight,
        bias,
    })) = body.layers.pop()
    else {
        return Err(Error::BadModel("h_s must end with a convolution".into()));
    };
    if cout != 2 * m {
        return Err(Error::BadModel(format!(
            "h_s outputs {cout} channels, expected {}",
            2 * m
        )));
    }
    let per_out = cin * k * k;
    let half = |lo: usize, name: &str| Net {
        name: format!("h_s.{name}"),
        layers: vec![Layer::Conv(Conv {
            cin,
            cout: m,
            k,
            stride,
            transposed: false,
            weight: weight.slice(lo * per_out..(lo + m) * per_out),
            bias: bias.as_ref().map(|b| b[lo..lo + m].to_vec()),
        })],
    };
    let scales = half(0, "scales");
    let means = half(m, "means");
    body.name = "h_s.body".into();
    Ok((body, scales, means))
}
