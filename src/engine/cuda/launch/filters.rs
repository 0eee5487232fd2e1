//! Launches of `kernels/box_filter.cu` and `kernels/guided_filter.cu`: column sums in f64,
//! row sums to window means, and the guided filter's statistics, coefficients and output.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, PushKernelArg};

use super::{Kernels, NC_MAX, NE_MAX, checked, grid_cols, grid_rows, int, launch};
use crate::engine::cuda::kernels::KernelId;
use crate::error::{Error, Result};

/// `box_sum_cols_f64`: vertical window sums (radius r) of `nplanes` planes.
pub(crate) fn box_sum_cols(
    s: &Arc<CudaStream>,
    k: &Kernels,
    src: &CudaSlice<f32>,
    nplanes: usize,
    (w, h, r): (usize, usize, usize),
    colsum: &mut CudaSlice<f64>,
) -> Result<()> {
    let n = nplanes * w * h;
    let (wi, hi) = checked(w, h, &[("src", src.len(), n), ("colsum", colsum.len(), n)])?;
    let (np, ri) = (int(nplanes, "nplanes")?, int(r, "r")?);
    let id = KernelId::BoxSumCols;
    let mut b = k.args(s, id);
    b.arg(src).arg(&np).arg(&wi).arg(&hi).arg(&ri).arg(colsum);
    // SAFETY: arguments match `box_sum_cols_f64` in kernels/box_filter.cu; sizes checked.
    unsafe { launch(b, grid_cols(w, h, nplanes), id) }
}

/// `box_rows_mean_f32`: horizontal window sums of column sums → window means.
pub(crate) fn box_rows_mean(
    s: &Arc<CudaStream>,
    k: &Kernels,
    colsum: &CudaSlice<f64>,
    nplanes: usize,
    (w, h, r): (usize, usize, usize),
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = nplanes * w * h;
    let (wi, hi) = checked(w, h, &[("colsum", colsum.len(), n), ("out", out.len(), n)])?;
    let (np, ri) = (int(nplanes, "nplanes")?, int(r, "r")?);
    let id = KernelId::BoxRowsMean;
    let mut b = k.args(s, id);
    b.arg(colsum).arg(&np).arg(&wi).arg(&hi).arg(&ri).arg(out);
    // SAFETY: arguments match `box_rows_mean_f32` in kernels/box_filter.cu; sizes checked.
    unsafe { launch(b, grid_rows(w, h, nplanes), id) }
}

/// `guided_stats_cols_f64`: column sums of I, I², p_c, I·p_c (2 + 2·nc planes).
pub(crate) fn guided_stats_cols(
    s: &Arc<CudaStream>,
    k: &Kernels,
    guide: &CudaSlice<f32>,
    inputs: &CudaSlice<f32>,
    nc: usize,
    (w, h, r): (usize, usize, usize),
    colsum: &mut CudaSlice<f64>,
) -> Result<()> {
    if nc == 0 || nc > NC_MAX {
        return Err(Error::param(
            "guided filter",
            format!("{nc} channels (1..={NC_MAX})"),
        ));
    }
    let (wi, hi) = checked(
        w,
        h,
        &[
            ("guide", guide.len(), w * h),
            ("inputs", inputs.len(), nc * w * h),
            ("colsum", colsum.len(), (2 + 2 * nc) * w * h),
        ],
    )?;
    let (nci, ri) = (nc as i32, int(r, "r")?);
    let id = KernelId::GuidedStatsCols;
    let mut b = k.args(s, id);
    b.arg(guide)
        .arg(inputs)
        .arg(&nci)
        .arg(&wi)
        .arg(&hi)
        .arg(&ri)
        .arg(colsum);
    // SAFETY: arguments match `guided_stats_cols_f64` in kernels/guided_filter.cu; sizes
    // checked; grid z = 2 + 2·nc quantities.
    unsafe { launch(b, grid_cols(w, h, 2 + 2 * nc), id) }
}

/// `guided_coeffs_f32`: a, b for every channel and eps (2·nc·ne planes).
pub(crate) fn guided_coeffs(
    s: &Arc<CudaStream>,
    k: &Kernels,
    colsum: &CudaSlice<f64>,
    nc: usize,
    eps: &[f32],
    (w, h, r): (usize, usize, usize),
    coefs: &mut CudaSlice<f32>,
) -> Result<()> {
    if nc == 0 || nc > NC_MAX || eps.is_empty() || eps.len() > NE_MAX {
        return Err(Error::param(
            "guided filter",
            format!(
                "{nc} channels, {} eps (1..={NC_MAX}, 1..={NE_MAX})",
                eps.len()
            ),
        ));
    }
    let ne = eps.len();
    let (wi, hi) = checked(
        w,
        h,
        &[
            ("colsum", colsum.len(), (2 + 2 * nc) * w * h),
            ("coefs", coefs.len(), 2 * nc * ne * w * h),
        ],
    )?;
    let e: [f32; NE_MAX] = std::array::from_fn(|i| eps.get(i).copied().unwrap_or(1.0));
    let (nci, nei, ri) = (nc as i32, ne as i32, int(r, "r")?);
    let id = KernelId::GuidedCoeffs;
    let mut b = k.args(s, id);
    b.arg(colsum)
        .arg(&nci)
        .arg(&nei)
        .arg(&e[0])
        .arg(&e[1])
        .arg(&e[2])
        .arg(&e[3])
        .arg(&wi)
        .arg(&hi)
        .arg(&ri)
        .arg(coefs);
    // SAFETY: arguments match `guided_coeffs_f32` in kernels/guided_filter.cu; sizes checked.
    unsafe { launch(b, grid_rows(w, h, 1), id) }
}

/// `guided_apply_f32`: q_k = mean(a_k)·I + mean(b_k) for `nout` outputs from the column sums
/// of the 2·nout coefficient planes.
pub(crate) fn guided_apply(
    s: &Arc<CudaStream>,
    k: &Kernels,
    coef_colsum: &CudaSlice<f64>,
    guide: &CudaSlice<f32>,
    nout: usize,
    (w, h, r): (usize, usize, usize),
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    let (wi, hi) = checked(
        w,
        h,
        &[
            ("coef_colsum", coef_colsum.len(), 2 * nout * w * h),
            ("guide", guide.len(), w * h),
            ("out", out.len(), nout * w * h),
        ],
    )?;
    let (no, ri) = (int(nout, "nout")?, int(r, "r")?);
    let id = KernelId::GuidedApply;
    let mut b = k.args(s, id);
    b.arg(coef_colsum)
        .arg(guide)
        .arg(&no)
        .arg(&wi)
        .arg(&hi)
        .arg(&ri)
        .arg(out);
    // SAFETY: arguments match `guided_apply_f32` in kernels/guided_filter.cu; sizes checked;
    // grid z = nout.
    unsafe { launch(b, grid_rows(w, h, nout), id) }
}
