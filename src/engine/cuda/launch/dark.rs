//! Launches of `kernels/dark.cu`: the dark channel (min over channels of I/A, separable min
//! filter) and the raw transmission.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig, PushKernelArg};

use super::{Kernels, checked, ensure_len, grid_2d, int, launch};
use crate::engine::cuda::kernels::KernelId;
use crate::error::{Error, Result};

/// `min_channel_normalised_f32`: min over channels of I/A.
pub(crate) fn min_channel_normalised(
    s: &Arc<CudaStream>,
    k: &Kernels,
    rgb: &CudaSlice<f32>,
    (w, h): (usize, usize),
    atmosphere: [f32; 3],
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    let (wi, hi) = checked(
        w,
        h,
        &[("rgb", rgb.len(), 3 * w * h), ("out", out.len(), w * h)],
    )?;
    // Exactly physics/dark.rs: 1 / max(A, 1e-3) in f32 on the host.
    let inv = atmosphere.map(|a| 1.0 / a.max(1e-3));
    let id = KernelId::MinChannelNormalised;
    let mut b = k.args(s, id);
    b.arg(rgb)
        .arg(&wi)
        .arg(&hi)
        .arg(&inv[0])
        .arg(&inv[1])
        .arg(&inv[2])
        .arg(out);
    // SAFETY: arguments match `min_channel_normalised_f32` in kernels/dark.cu; sizes checked.
    unsafe { launch(b, grid_2d(w, h), id) }
}

/// `min_filter_rows_f32` (`vertical` false) or `min_filter_cols_f32` (true), radius r.
pub(crate) fn min_filter_pass(
    s: &Arc<CudaStream>,
    k: &Kernels,
    src: &CudaSlice<f32>,
    (w, h, r): (usize, usize, usize),
    vertical: bool,
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    let (wi, hi) = checked(
        w,
        h,
        &[("src", src.len(), w * h), ("out", out.len(), w * h)],
    )?;
    let ri = int(r, "r")?;
    let id = if vertical {
        KernelId::MinFilterCols
    } else {
        KernelId::MinFilterRows
    };
    let mut b = k.args(s, id);
    b.arg(src).arg(&wi).arg(&hi).arg(&ri).arg(out);
    // SAFETY: arguments match `min_filter_rows_f32` / `min_filter_cols_f32` in
    // kernels/dark.cu (same signature); sizes checked.
    unsafe { launch(b, grid_2d(w, h), id) }
}

/// `transmission_raw_f32`: t = 1 − ω·min(dark, 1) over `n` samples.
pub(crate) fn transmission_raw(
    s: &Arc<CudaStream>,
    k: &Kernels,
    dark: &CudaSlice<f32>,
    n: usize,
    omega: f32,
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    if n == 0 {
        return Err(Error::param("transmission", "empty plane"));
    }
    ensure_len("dark", dark.len(), n)?;
    ensure_len("out", out.len(), n)?;
    let ni = int(n, "n")?;
    let id = KernelId::TransmissionRaw;
    let mut b = k.args(s, id);
    b.arg(dark).arg(&ni).arg(&omega).arg(out);
    // SAFETY: arguments match `transmission_raw_f32` in kernels/dark.cu; sizes checked.
    unsafe { launch(b, grid_1d(n), id) }
}

/// Geometry of the 1-D per-sample kernels (`transmission_raw_f32`).
pub(crate) fn grid_1d(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((n as u32).div_ceil(256), 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}
