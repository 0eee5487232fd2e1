//! Launches of `kernels/convert.cu`: packed frames ↔ planes, the residue channel and its
//! downsampling.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, PushKernelArg};

use super::{Kernels, checked, grid_2d, int, launch, layout};
use crate::engine::cuda::kernels::KernelId;
use crate::error::{Error, Result};
use crate::frame::PixelFormat;

/// `packed8_to_planar_f32`: packed frame (`stride` bytes a row) → 3 planes of w×h.
#[allow(clippy::too_many_arguments)]
pub(crate) fn packed8_to_planar(
    s: &Arc<CudaStream>,
    k: &Kernels,
    src: &CudaSlice<u8>,
    stride: usize,
    w: usize,
    h: usize,
    format: PixelFormat,
    dst: &mut CudaSlice<f32>,
) -> Result<()> {
    let frame_len = stride * h.saturating_sub(1) + w * format.bytes_per_pixel();
    let (wi, hi) = checked(
        w,
        h,
        &[("src", src.len(), frame_len), ("dst", dst.len(), 3 * w * h)],
    )?;
    let stride_i = int(stride, "stride")?;
    let (bpp, ro, bo) = layout(format);
    let id = KernelId::Packed8ToPlanar;
    let mut b = k.args(s, id);
    b.arg(src)
        .arg(&stride_i)
        .arg(&wi)
        .arg(&hi)
        .arg(&bpp)
        .arg(&ro)
        .arg(&bo)
        .arg(dst);
    // SAFETY: arguments match `packed8_to_planar_f32` in kernels/convert.cu in order and type;
    // both buffers are large enough (checked above); the launch is ordered on `s`.
    unsafe { launch(b, grid_2d(w, h), id) }
}

/// `planar_f32_to_packed8`: 3 planes → packed frame; alpha copied from `alpha_src` (same
/// layout as `dst`) when `copy_alpha`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn planar_to_packed8(
    s: &Arc<CudaStream>,
    k: &Kernels,
    src: &CudaSlice<f32>,
    alpha_src: &CudaSlice<u8>,
    copy_alpha: bool,
    dst: &mut CudaSlice<u8>,
    stride: usize,
    w: usize,
    h: usize,
    format: PixelFormat,
) -> Result<()> {
    let frame_len = stride * h.saturating_sub(1) + w * format.bytes_per_pixel();
    let alpha_need = if copy_alpha { frame_len } else { 0 };
    let (wi, hi) = checked(
        w,
        h,
        &[
            ("src", src.len(), 3 * w * h),
            ("dst", dst.len(), frame_len),
            ("alpha_src", alpha_src.len(), alpha_need),
        ],
    )?;
    let copy = copy_alpha as i32;
    let stride_i = int(stride, "stride")?;
    let (bpp, ro, bo) = layout(format);
    let id = KernelId::PlanarToPacked8;
    let mut b = k.args(s, id);
    b.arg(src)
        .arg(alpha_src)
        .arg(&copy)
        .arg(dst)
        .arg(&stride_i)
        .arg(&wi)
        .arg(&hi)
        .arg(&bpp)
        .arg(&ro)
        .arg(&bo);
    // SAFETY: arguments match `planar_f32_to_packed8` in kernels/convert.cu; sizes checked;
    // alpha_src is only read when copy_alpha (then checked).
    unsafe { launch(b, grid_2d(w, h), id) }
}

/// `residue_f32`: max − min of 3 planes.
pub(crate) fn residue(
    s: &Arc<CudaStream>,
    k: &Kernels,
    rgb: &CudaSlice<f32>,
    w: usize,
    h: usize,
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    let (wi, hi) = checked(
        w,
        h,
        &[("rgb", rgb.len(), 3 * w * h), ("out", out.len(), w * h)],
    )?;
    let id = KernelId::Residue;
    let mut b = k.args(s, id);
    b.arg(rgb).arg(&wi).arg(&hi).arg(out);
    // SAFETY: arguments match `residue_f32` in kernels/convert.cu; sizes checked.
    unsafe { launch(b, grid_2d(w, h), id) }
}

/// `downsample_residue_f32`: R, G, B and residue box-downsampled by `sub` into 4 planes of
/// ⌈w/sub⌉×⌈h/sub⌉. Returns that size.
pub(crate) fn downsample_residue(
    s: &Arc<CudaStream>,
    k: &Kernels,
    rgb: &CudaSlice<f32>,
    w: usize,
    h: usize,
    sub: usize,
    lo: &mut CudaSlice<f32>,
) -> Result<(usize, usize)> {
    if sub == 0 {
        return Err(Error::param("downsample", "factor 0"));
    }
    let (lw, lh) = (w.div_ceil(sub), h.div_ceil(sub));
    let (wi, hi) = checked(
        w,
        h,
        &[("rgb", rgb.len(), 3 * w * h), ("lo", lo.len(), 4 * lw * lh)],
    )?;
    let si = int(sub, "s")?;
    let (lwi, lhi) = (lw as i32, lh as i32);
    let id = KernelId::DownsampleResidue;
    let mut b = k.args(s, id);
    b.arg(rgb)
        .arg(&wi)
        .arg(&hi)
        .arg(&si)
        .arg(&lwi)
        .arg(&lhi)
        .arg(lo);
    // SAFETY: arguments match `downsample_residue_f32` in kernels/convert.cu; sizes checked.
    unsafe { launch(b, grid_2d(lw, lh), id) }?;
    Ok((lw, lh))
}
