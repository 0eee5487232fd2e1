//! Launches of `kernels/nets.cu`: the convolution, the streak network's pixel (un)shuffle and
//! the nearest ×2 upsampling into a skip map.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig, PushKernelArg};

use super::{Kernels, checked, grid_2d, int, launch};
use crate::engine::cuda::kernels::KernelId;
use crate::error::{Error, Result};

/// Output channels per thread of `conv2d_f32` (`CONV_OCB`).
pub(crate) const CONV_OCB: usize = 8;
/// Consecutive output columns per thread of `conv2d_f32` (`CONV_PX`).
pub(crate) const CONV_PX: usize = 4;
/// Block side of `conv2d_f32`.
const CONV_BLOCK: u32 = 16;

/// The shape of one convolution: channels, kernel, stride, dilation, input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvShape {
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub dilation: usize,
    pub h: usize,
    pub w: usize,
}

impl ConvShape {
    /// The output size (h, w): ⌈h/stride⌉ × ⌈w/stride⌉.
    pub(crate) fn out_size(&self) -> (usize, usize) {
        (self.h.div_ceil(self.stride), self.w.div_ceil(self.stride))
    }

    fn check(&self) -> Result<()> {
        let ok = matches!(self.k, 1 | 3)
            && matches!(self.stride, 1 | 2)
            && self.dilation >= 1
            && (self.dilation == 1 || (self.k == 3 && self.stride == 1))
            && self.cin > 0
            && self.cout > 0;
        if ok {
            Ok(())
        } else {
            Err(Error::param(
                "cuda launch",
                format!("unsupported convolution {self:?}"),
            ))
        }
    }
}

/// The launch geometry of `conv2d_f32` for an output of `wo`×`ho`×`cout`.
pub(crate) fn conv_config(wo: usize, ho: usize, cout: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (
            (wo.div_ceil(CONV_PX) as u32).div_ceil(CONV_BLOCK),
            (ho as u32).div_ceil(CONV_BLOCK),
            cout.div_ceil(CONV_OCB) as u32,
        ),
        block_dim: (CONV_BLOCK, CONV_BLOCK, 1),
        shared_mem_bytes: 0,
    }
}

/// The launch geometry of `up_add_f32` for a skip map of `w`×`h`×`c`.
pub(crate) fn up_add_config(w: usize, h: usize, c: usize) -> LaunchConfig {
    let mut cfg = grid_2d(w, h);
    cfg.grid_dim.2 = c as u32;
    cfg
}

/// `conv2d_f32`: `out` = act(conv(`x`)) for a [`ConvShape`]; `wts` `[cout][cin·k²]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d(
    s: &Arc<CudaStream>,
    k: &Kernels,
    x: &CudaSlice<f32>,
    wts: &CudaSlice<f32>,
    bias: &CudaSlice<f32>,
    shape: ConvShape,
    leaky: bool,
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    shape.check()?;
    let (ho, wo) = shape.out_size();
    let taps = shape.cin * shape.k * shape.k;
    let (wi, hi) = checked(
        shape.w,
        shape.h,
        &[
            ("x", x.len(), shape.cin * shape.h * shape.w),
            ("wts", wts.len(), shape.cout * taps),
            ("bias", bias.len(), shape.cout),
            ("out", out.len(), shape.cout * ho * wo),
        ],
    )?;
    let ints = [
        int(shape.cin, "cin")?,
        int(shape.cout, "cout")?,
        hi,
        wi,
        int(ho, "ho")?,
        int(wo, "wo")?,
        int(shape.k, "k")?,
        int(shape.stride, "stride")?,
        int(shape.dilation, "dilation")?,
        leaky as i32,
    ];
    let id = KernelId::Conv2d;
    let mut b = k.args(s, id);
    b.arg(x).arg(wts).arg(bias);
    for v in &ints {
        b.arg(v);
    }
    b.arg(out);
    // SAFETY: arguments match `conv2d_f32` in kernels/nets.cu in order and type (x, wts,
    // bias, then cin, cout, h, w, ho, wo, k, stride, dil, leaky, out); every buffer is as long
    // as the kernel indexes (checked above); the launch is ordered on `s`.
    unsafe { launch(b, conv_config(wo, ho, shape.cout), id) }
}

/// `unshuffle_residue_f32`: three planes of `w`×`h` (both even) → 16 planes of w/2 × h/2.
pub(crate) fn unshuffle_residue(
    s: &Arc<CudaStream>,
    k: &Kernels,
    rgb: &CudaSlice<f32>,
    w: usize,
    h: usize,
    u: &mut CudaSlice<f32>,
) -> Result<()> {
    even(w, h)?;
    let (wi, hi) = checked(
        w,
        h,
        &[("rgb", rgb.len(), 3 * w * h), ("u", u.len(), 4 * w * h)],
    )?;
    let id = KernelId::UnshuffleResidue;
    let mut b = k.args(s, id);
    b.arg(rgb).arg(&hi).arg(&wi).arg(u);
    // SAFETY: arguments match `unshuffle_residue_f32` (rgb, h, w, u); sizes checked above.
    unsafe { launch(b, grid_2d(w / 2, h / 2), id) }
}

/// `shuffle_f32`: 12 planes of w/2 × h/2 → three planes of `w`×`h` (both even).
pub(crate) fn shuffle(
    s: &Arc<CudaStream>,
    k: &Kernels,
    m: &CudaSlice<f32>,
    w: usize,
    h: usize,
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    even(w, h)?;
    let (wi, hi) = checked(
        w,
        h,
        &[("m", m.len(), 3 * w * h), ("out", out.len(), 3 * w * h)],
    )?;
    let id = KernelId::Shuffle;
    let mut b = k.args(s, id);
    b.arg(m).arg(&hi).arg(&wi).arg(out);
    // SAFETY: arguments match `shuffle_f32` (m, h, w, out); sizes checked above.
    unsafe { launch(b, grid_2d(w, h), id) }
}

/// `up_add_f32`: `skip` (`c` planes of `w`×`h`) += nearest ×2 of `x` (`c` planes of ⌈w/2⌉ ×
/// ⌈h/2⌉).
pub(crate) fn up_add(
    s: &Arc<CudaStream>,
    k: &Kernels,
    x: &CudaSlice<f32>,
    c: usize,
    skip: &mut CudaSlice<f32>,
    w: usize,
    h: usize,
) -> Result<()> {
    let (wx, hx) = (w.div_ceil(2), h.div_ceil(2));
    let (wi, hi) = checked(
        w,
        h,
        &[("x", x.len(), c * wx * hx), ("skip", skip.len(), c * w * h)],
    )?;
    let (wxi, hxi) = (int(wx, "wx")?, int(hx, "hx")?);
    let id = KernelId::UpAdd;
    let mut b = k.args(s, id);
    b.arg(x).arg(&hxi).arg(&wxi).arg(skip).arg(&hi).arg(&wi);
    // SAFETY: arguments match `up_add_f32` (x, hx, wx, skip, h, w); sizes checked above;
    // grid z = c planes, each within `skip` and `x`.
    unsafe { launch(b, up_add_config(w, h, c), id) }
}

fn even(w: usize, h: usize) -> Result<()> {
    if !w.is_multiple_of(2) || !h.is_multiple_of(2) {
        return Err(Error::param(
            "cuda launch",
            format!("{w}x{h}: the pixel (un)shuffle needs even sizes"),
        ));
    }
    Ok(())
}
