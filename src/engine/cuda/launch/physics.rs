//! Launches of `kernels/physics.cu`: pass 1 (streak candidates and LF luma at full
//! resolution) and pass 2 (inversion, into a packed frame or into planes).

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, CudaView, LaunchConfig, PushKernelArg};

use super::{Kernels, checked, ensure_len, grid_2d, int, launch, layout};
use crate::engine::cuda::kernels::KernelId;
use crate::error::{Error, Result};
use crate::frame::PixelFormat;

/// Pixels per block of `physics_pass1_f32` (`PASS1_BX` in physics.cu).
const PASS1_BX: usize = 128;

/// The low-resolution side of the two physics passes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LowResGeometry {
    /// Low-res width and height.
    pub lw: usize,
    pub lh: usize,
    /// Upsampling factor.
    pub s: usize,
}

impl LowResGeometry {
    /// The low-res size must be the full size divided by the factor, rounded up.
    pub(super) fn check(&self, w: usize, h: usize) -> Result<()> {
        if self.s == 0 || self.lw != w.div_ceil(self.s) || self.lh != h.div_ceil(self.s) {
            return Err(Error::param(
                "cuda launch",
                format!(
                    "low-res {}x{} (factor {}) does not match {w}x{h}",
                    self.lw, self.lh, self.s
                ),
            ));
        }
        Ok(())
    }

    /// (lw, lh, s) as the kernels' `int` (bounded by the full size, checked before).
    pub(super) fn ints(&self) -> (i32, i32, i32) {
        (self.lw as i32, self.lh as i32, self.s as i32)
    }
}

/// `physics_pass1_f32`: streak candidates and LF luma at full resolution. `dcoef` holds the 6
/// decomposition coefficient planes of lw×lh; `k_width` is the opening half-width.
#[allow(clippy::too_many_arguments)]
pub(crate) fn physics_pass1(
    s: &Arc<CudaStream>,
    k: &Kernels,
    rgb: &CudaSlice<f32>,
    (w, h): (usize, usize),
    dcoef: &CudaView<'_, f32>,
    g: LowResGeometry,
    k_width: usize,
    achro: &mut CudaSlice<f32>,
    luma: &mut CudaSlice<f32>,
) -> Result<()> {
    let (wi, hi) = checked(
        w,
        h,
        &[
            ("rgb", rgb.len(), 3 * w * h),
            ("dcoef", dcoef.len(), 6 * g.lw * g.lh),
            ("achro", achro.len(), w * h),
            ("luma", luma.len(), w * h),
        ],
    )?;
    g.check(w, h)?;
    if k_width > 1024 {
        return Err(Error::param("streak width", format!("{k_width} > 1024")));
    }
    let (lwi, lhi, si) = g.ints();
    let ki = k_width as i32;
    let id = KernelId::PhysicsPass1;
    let mut b = k.args(s, id);
    b.arg(rgb)
        .arg(&wi)
        .arg(&hi)
        .arg(dcoef)
        .arg(&lwi)
        .arg(&lhi)
        .arg(&si)
        .arg(&ki)
        .arg(achro)
        .arg(luma);
    // SAFETY: arguments match `physics_pass1_f32` in kernels/physics.cu; sizes checked; the
    // dynamic shared memory is (PASS1_BX + 4k + PASS1_BX + 2k) floats as the kernel indexes.
    unsafe { launch(b, pass1_config(w, h, k_width), id) }
}

/// Geometry of `physics_pass1_f32`: one block of PASS1_BX threads per run of PASS1_BX pixels
/// of a row; dynamic shared memory for m over BX + 4k and its erosion over BX + 2k.
pub(crate) fn pass1_config(w: usize, h: usize, k_width: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (w.div_ceil(PASS1_BX) as u32, h as u32, 1),
        block_dim: (PASS1_BX as u32, 1, 1),
        shared_mem_bytes: ((2 * PASS1_BX + 6 * k_width) * 4) as u32,
    }
}

/// Everything pass 2 reads besides its outputs.
pub(crate) struct Pass2Inputs<'a> {
    pub rgb: &'a CudaSlice<f32>,
    pub achro: &'a CudaSlice<f32>,
    pub luma: &'a CudaSlice<f32>,
    pub w: usize,
    pub h: usize,
    /// The 2 transmission coefficient planes (lw×lh).
    pub tcoef: CudaView<'a, f32>,
    pub g: LowResGeometry,
    /// Half-length L of the orientation test.
    pub half_length: usize,
    pub gain: f32,
    pub t0: f32,
    pub atmosphere: [f32; 3],
}

impl Pass2Inputs<'_> {
    /// The shared checks of both pass-2 kernels, `extra` the output buffers; returns w, h
    /// and the low-res geometry as `int`.
    fn check(&self, extra: &[(&'static str, usize, usize)]) -> Result<[i32; 5]> {
        let (w, h) = (self.w, self.h);
        let (wi, hi) = checked(
            w,
            h,
            &[
                ("rgb", self.rgb.len(), 3 * w * h),
                ("achro", self.achro.len(), w * h),
                ("luma", self.luma.len(), w * h),
                ("tcoef", self.tcoef.len(), 2 * self.g.lw * self.g.lh),
            ],
        )?;
        for &(what, len, need) in extra {
            ensure_len(what, len, need)?;
        }
        self.g.check(w, h)?;
        let (lwi, lhi, si) = self.g.ints();
        Ok([wi, hi, lwi, lhi, si])
    }
}

/// `physics_pass2_packed8`: J blended by `strength` and packed into `out_frame` (`stride`
/// bytes a row); alpha from `in_frame` when the format has it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn physics_pass2_packed8(
    s: &Arc<CudaStream>,
    k: &Kernels,
    p: &Pass2Inputs<'_>,
    strength: f32,
    in_frame: &CudaSlice<u8>,
    out_frame: &mut CudaSlice<u8>,
    stride: usize,
    format: PixelFormat,
) -> Result<()> {
    let frame_len = stride * p.h.saturating_sub(1) + p.w * format.bytes_per_pixel();
    let [wi, hi, lwi, lhi, si] = p.check(&[
        ("in_frame", in_frame.len(), frame_len),
        ("out_frame", out_frame.len(), frame_len),
    ])?;
    let copy_alpha = format.alpha_offset().is_some() as i32;
    let (bpp, ro, bo) = layout(format);
    let (li, stride_i) = (int(p.half_length, "L")?, int(stride, "stride")?);
    let [ar, ag, ab] = p.atmosphere;
    let id = KernelId::PhysicsPass2Packed8;
    let mut b = k.args(s, id);
    b.arg(p.rgb)
        .arg(p.achro)
        .arg(p.luma)
        .arg(&wi)
        .arg(&hi)
        .arg(&p.tcoef)
        .arg(&lwi)
        .arg(&lhi)
        .arg(&si)
        .arg(&li)
        .arg(&p.gain)
        .arg(&p.t0)
        .arg(&ar)
        .arg(&ag)
        .arg(&ab)
        .arg(&strength)
        .arg(in_frame)
        .arg(&copy_alpha)
        .arg(out_frame)
        .arg(&stride_i)
        .arg(&bpp)
        .arg(&ro)
        .arg(&bo);
    // SAFETY: arguments match `physics_pass2_packed8` in kernels/physics.cu in order and type;
    // sizes checked.
    unsafe { launch(b, grid_2d(p.w, p.h), id) }
}

/// `physics_pass2_planar_f32`: J (3 planes), T and S into `out` (5 planes of w×h).
pub(crate) fn physics_pass2_planar(
    s: &Arc<CudaStream>,
    k: &Kernels,
    p: &Pass2Inputs<'_>,
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = p.w * p.h;
    let [wi, hi, lwi, lhi, si] = p.check(&[("out", out.len(), 5 * n)])?;
    let li = int(p.half_length, "L")?;
    let [ar, ag, ab] = p.atmosphere;
    let (mut j, mut rest) = out.split_at_mut(3 * n);
    let (mut t, mut st) = rest.split_at_mut(n);
    let id = KernelId::PhysicsPass2Planar;
    let mut b = k.args(s, id);
    b.arg(p.rgb)
        .arg(p.achro)
        .arg(p.luma)
        .arg(&wi)
        .arg(&hi)
        .arg(&p.tcoef)
        .arg(&lwi)
        .arg(&lhi)
        .arg(&si)
        .arg(&li)
        .arg(&p.gain)
        .arg(&p.t0)
        .arg(&ar)
        .arg(&ag)
        .arg(&ab)
        .arg(&mut j)
        .arg(&mut t)
        .arg(&mut st);
    // SAFETY: arguments match `physics_pass2_planar_f32` in kernels/physics.cu; the three
    // output views are disjoint parts of `out` (3n, n and n elements, checked above).
    unsafe { launch(b, grid_2d(p.w, p.h), id) }
}
