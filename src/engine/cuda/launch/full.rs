//! Launches of `kernels/full.cu`: the full-resolution steps of `full` mode around the streak
//! network (padding, I − R, the inversion, the refinement's upsampling and the packing).

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, PushKernelArg};

use super::{Kernels, LowResGeometry, checked, ensure_len, grid_2d, int, launch, layout};
use crate::engine::cuda::kernels::KernelId;
use crate::error::{Error, Result};
use crate::frame::PixelFormat;

/// `pad_n_f32`: `planes` planes of w×h into pw×ph, the edge repeated.
pub(crate) fn pad_n(
    s: &Arc<CudaStream>,
    k: &Kernels,
    src: &CudaSlice<f32>,
    planes: usize,
    (w, h): (usize, usize),
    (pw, ph): (usize, usize),
    dst: &mut CudaSlice<f32>,
) -> Result<()> {
    if pw < w || ph < h {
        return Err(Error::param(
            "cuda launch",
            "padded size smaller than the planes",
        ));
    }
    let (wi, hi) = checked(w, h, &[("src", src.len(), planes * w * h)])?;
    let (pwi, phi) = checked(pw, ph, &[("dst", dst.len(), planes * pw * ph)])?;
    let np = int(planes, "planes")?;
    let id = KernelId::PadN;
    let mut b = k.args(s, id);
    b.arg(src)
        .arg(&np)
        .arg(&wi)
        .arg(&hi)
        .arg(&pwi)
        .arg(&phi)
        .arg(dst);
    // SAFETY: arguments match `pad_n_f32` in kernels/full.cu; sizes checked.
    unsafe { launch(b, grid_2d(pw, ph), id) }
}

/// `mirror_rows_f32`: `dst` = `src` with every row reversed, over `planes` planes of pw×ph
/// (the mirror ensemble's input).
pub(crate) fn mirror_rows(
    s: &Arc<CudaStream>,
    k: &Kernels,
    src: &CudaSlice<f32>,
    planes: usize,
    (pw, ph): (usize, usize),
    dst: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = planes * pw * ph;
    let (pwi, phi) = checked(pw, ph, &[("src", src.len(), n), ("dst", dst.len(), n)])?;
    let np = int(planes, "planes")?;
    let id = KernelId::MirrorRows;
    let mut b = k.args(s, id);
    b.arg(src).arg(&np).arg(&pwi).arg(&phi).arg(dst);
    // SAFETY: arguments match `mirror_rows_f32` in kernels/full.cu; sizes checked.
    unsafe { launch(b, grid_2d(pw, ph), id) }
}

/// `mean_mirrored_f32`: `r` = ½(`r` + `m` with every row reversed), over `planes` planes of
/// pw×ph (the mirrored frame's rain layer averaged in).
pub(crate) fn mean_mirrored(
    s: &Arc<CudaStream>,
    k: &Kernels,
    r: &mut CudaSlice<f32>,
    m: &CudaSlice<f32>,
    planes: usize,
    (pw, ph): (usize, usize),
) -> Result<()> {
    let n = planes * pw * ph;
    let (pwi, phi) = checked(pw, ph, &[("r", r.len(), n), ("m", m.len(), n)])?;
    let np = int(planes, "planes")?;
    let id = KernelId::MeanMirrored;
    let mut b = k.args(s, id);
    b.arg(r).arg(m).arg(&np).arg(&pwi).arg(&phi);
    // SAFETY: arguments match `mean_mirrored_f32` in kernels/full.cu; sizes checked.
    unsafe { launch(b, grid_2d(pw, ph), id) }
}

/// `rain_free_f32`: I_s (3 planes of w×h) = clamp(x − r, 0, 1) over the top-left w×h of the
/// pw×ph planes `x` and `r`.
pub(crate) fn rain_free(
    s: &Arc<CudaStream>,
    k: &Kernels,
    x: &CudaSlice<f32>,
    r: &CudaSlice<f32>,
    (pw, ph): (usize, usize),
    (w, h): (usize, usize),
    i_s: &mut CudaSlice<f32>,
) -> Result<()> {
    padded_geometry(w, h, pw, ph)?;
    let (pwi, phi) = checked(
        pw,
        ph,
        &[("x", x.len(), 3 * pw * ph), ("r", r.len(), 3 * pw * ph)],
    )?;
    let (wi, hi) = checked(w, h, &[("i_s", i_s.len(), 3 * w * h)])?;
    let id = KernelId::RainFree;
    let mut b = k.args(s, id);
    b.arg(x)
        .arg(r)
        .arg(&pwi)
        .arg(&phi)
        .arg(&wi)
        .arg(&hi)
        .arg(i_s);
    // SAFETY: arguments match `rain_free_f32` in kernels/full.cu; sizes checked.
    unsafe { launch(b, grid_2d(w, h), id) }
}

/// What the inversion reads besides its outputs (buffers of `B`: device slices here, host
/// vectors in the emulation).
pub(crate) struct InvertInputs<'a, B = CudaSlice<f32>> {
    /// I_s, three planes of w×h.
    pub i_s: &'a B,
    pub w: usize,
    pub h: usize,
    /// T at the working resolution (lw×lh).
    pub t_lo: &'a B,
    pub g: LowResGeometry,
    pub t0: f32,
    /// The noise bound on 1/T (physics::noise); applies where > t0.
    pub t_inv: f32,
    pub atmosphere: [f32; 3],
    /// R, three planes of pw×ph (read only for S).
    pub rain: &'a B,
    pub pw: usize,
    pub ph: usize,
}

/// `full_invert_f32`: J₁ (3 planes of w×h) into `j1`; with `st`, S and T (2 planes) too.
pub(crate) fn full_invert(
    s: &Arc<CudaStream>,
    k: &Kernels,
    p: &InvertInputs<'_>,
    j1: &mut CudaSlice<f32>,
    st: Option<&mut CudaSlice<f32>>,
) -> Result<()> {
    let (w, h, n) = (p.w, p.h, p.w * p.h);
    padded_geometry(w, h, p.pw, p.ph)?;
    let (wi, hi) = checked(
        w,
        h,
        &[
            ("i_s", p.i_s.len(), 3 * n),
            ("t_lo", p.t_lo.len(), p.g.lw * p.g.lh),
            ("rain", p.rain.len(), 3 * p.pw * p.ph),
            ("j1", j1.len(), 3 * n),
        ],
    )?;
    p.g.check(w, h)?;
    let (lwi, lhi, si) = p.g.ints();
    let (pwi, phi) = (int(p.pw, "pw")?, int(p.ph, "ph")?);
    let [ar, ag, ab] = p.atmosphere;
    let want_st = st.is_some() as i32;
    let id = KernelId::FullInvert;
    let mut b = k.args(s, id);
    b.arg(p.i_s)
        .arg(&wi)
        .arg(&hi)
        .arg(p.t_lo)
        .arg(&lwi)
        .arg(&lhi)
        .arg(&si)
        .arg(&p.t0)
        .arg(&p.t_inv)
        .arg(&ar)
        .arg(&ag)
        .arg(&ab)
        .arg(p.rain)
        .arg(&pwi)
        .arg(&phi)
        .arg(&want_st)
        .arg(j1);
    match st {
        Some(st) => {
            ensure_len("st", st.len(), 2 * n)?;
            b.arg(st);
        }
        // Not written without want_st; any device pointer will do.
        None => {
            b.arg(p.rain);
        }
    }
    // SAFETY: arguments match `full_invert_f32` in kernels/full.cu; sizes checked; `st` is
    // written only with want_st, when it is the checked 2n buffer.
    unsafe { launch(b, grid_2d(w, h), id) }
}

/// The refinement's inputs: J₁ (3 planes of w×h) and ΔJ (3 planes at the working resolution).
pub(crate) struct FinishInputs<'a, B = CudaSlice<f32>> {
    pub j1: &'a B,
    pub dj: &'a B,
    pub g: LowResGeometry,
    pub w: usize,
    pub h: usize,
}

impl FinishInputs<'_> {
    fn check(&self, extra: &[(&'static str, usize, usize)]) -> Result<[i32; 5]> {
        let (w, h) = (self.w, self.h);
        let (wi, hi) = checked(
            w,
            h,
            &[
                ("j1", self.j1.len(), 3 * w * h),
                ("dj", self.dj.len(), 3 * self.g.lw * self.g.lh),
            ],
        )?;
        for &(what, len, need) in extra {
            ensure_len(what, len, need)?;
        }
        self.g.check(w, h)?;
        let (lwi, lhi, si) = self.g.ints();
        Ok([lwi, lhi, si, wi, hi])
    }
}

/// `full_finish_packed8`: J blended with the input planes `rgb` by `strength` and packed into
/// `out_frame` (`stride` bytes a row); alpha from `in_frame` when the format has it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn full_finish_packed8(
    s: &Arc<CudaStream>,
    k: &Kernels,
    p: &FinishInputs<'_>,
    strength: f32,
    rgb: &CudaSlice<f32>,
    in_frame: &CudaSlice<u8>,
    out_frame: &mut CudaSlice<u8>,
    stride: usize,
    format: PixelFormat,
) -> Result<()> {
    let frame_len = stride * p.h.saturating_sub(1) + p.w * format.bytes_per_pixel();
    let [lwi, lhi, si, wi, hi] = p.check(&[
        ("rgb", rgb.len(), 3 * p.w * p.h),
        ("in_frame", in_frame.len(), frame_len),
        ("out_frame", out_frame.len(), frame_len),
    ])?;
    let copy_alpha = format.alpha_offset().is_some() as i32;
    let (bpp, ro, bo) = layout(format);
    let stride_i = int(stride, "stride")?;
    let id = KernelId::FullFinishPacked8;
    let mut b = k.args(s, id);
    b.arg(p.j1)
        .arg(p.dj)
        .arg(&lwi)
        .arg(&lhi)
        .arg(&si)
        .arg(&wi)
        .arg(&hi)
        .arg(&strength)
        .arg(rgb)
        .arg(in_frame)
        .arg(&copy_alpha)
        .arg(out_frame)
        .arg(&stride_i)
        .arg(&bpp)
        .arg(&ro)
        .arg(&bo);
    // SAFETY: arguments match `full_finish_packed8` in kernels/full.cu; sizes checked.
    unsafe { launch(b, grid_2d(p.w, p.h), id) }
}

/// `full_finish_planar_f32`: J (3 planes of w×h) into `out`.
pub(crate) fn full_finish_planar(
    s: &Arc<CudaStream>,
    k: &Kernels,
    p: &FinishInputs<'_>,
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    let [lwi, lhi, si, wi, hi] = p.check(&[("out", out.len(), 3 * p.w * p.h)])?;
    let id = KernelId::FullFinishPlanar;
    let mut b = k.args(s, id);
    b.arg(p.j1)
        .arg(p.dj)
        .arg(&lwi)
        .arg(&lhi)
        .arg(&si)
        .arg(&wi)
        .arg(&hi)
        .arg(out);
    // SAFETY: arguments match `full_finish_planar_f32` in kernels/full.cu; sizes checked.
    unsafe { launch(b, grid_2d(p.w, p.h), id) }
}

/// `crop_planes_f32`: the top-left `lw`×`lh` of `planes` planes of `pw`×`ph` into `dst`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn crop_planes(
    s: &Arc<CudaStream>,
    k: &Kernels,
    src: &CudaSlice<f32>,
    (pw, ph): (usize, usize),
    (lw, lh): (usize, usize),
    planes: usize,
    dst: &mut CudaSlice<f32>,
) -> Result<()> {
    padded_geometry(lw, lh, pw, ph)?;
    let (pwi, phi) = checked(pw, ph, &[("src", src.len(), planes * pw * ph)])?;
    let (lwi, lhi) = checked(lw, lh, &[("dst", dst.len(), planes * lw * lh)])?;
    let np = int(planes, "planes")?;
    let id = KernelId::CropPlanes;
    let mut b = k.args(s, id);
    b.arg(src)
        .arg(&pwi)
        .arg(&phi)
        .arg(&lwi)
        .arg(&lhi)
        .arg(&np)
        .arg(dst);
    // SAFETY: arguments match `crop_planes_f32` in kernels/full.cu; sizes checked.
    unsafe { launch(b, grid_2d(lw, lh), id) }
}

/// The padded size must hold the frame.
fn padded_geometry(w: usize, h: usize, pw: usize, ph: usize) -> Result<()> {
    if pw < w || ph < h {
        return Err(Error::param(
            "cuda launch",
            format!("padded {pw}x{ph} is smaller than the frame {w}x{h}"),
        ));
    }
    Ok(())
}
