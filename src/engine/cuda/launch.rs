//! One typed launch function per kernel: shape checks, launch geometry, argument order. This
//! file holds every `unsafe` kernel launch of the engine; the argument lists mirror the
//! signatures in `kernels/*.cu` one for one (same order, same types: `int` ↔ `i32`,
//! `float` ↔ `f32`, pointers ↔ device slices or views).

use std::sync::Arc;

use cudarc::driver::{
    CudaFunction, CudaModule, CudaSlice, CudaStream, CudaView, LaunchConfig, PushKernelArg,
};

use super::kernels::{self, KernelId};
use crate::error::{Error, Result};
use crate::frame::PixelFormat;

/// Block of the per-pixel kernels (`kernels/*.cu`: 32×8).
const BLOCK_2D: (u32, u32) = (32, 8);
/// Threads per block of the segment kernels (box/guided filter).
const BLOCK_1D: u32 = 128;
/// Rows per thread of the column-sum kernels (`SEG_Y` in box_filter.cu / guided_filter.cu).
const SEG_Y: usize = 64;
/// Columns per thread of the row-sum kernels (`SEG_X`).
const SEG_X: usize = 64;
/// Pixels per block of `physics_pass1_f32` (`PASS1_BX` in physics.cu).
const PASS1_BX: usize = 128;
/// Largest channel count of the guided-filter kernels (`NC_MAX`).
pub(crate) const NC_MAX: usize = 3;
/// Largest eps count of `guided_coeffs_f32`.
pub(crate) const NE_MAX: usize = 4;

/// The compiled kernels of one device.
#[derive(Debug)]
pub(crate) struct Kernels {
    funcs: Vec<CudaFunction>,
    _modules: Vec<Arc<CudaModule>>,
}

impl Kernels {
    /// Compiles every `kernels/*.cu` for the context's device (once, at engine start).
    pub(crate) fn compile(ctx: &Arc<cudarc::driver::CudaContext>) -> Result<Self> {
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| driver("reading the compute capability", e))?;
        let arch = format!("compute_{major}{minor}");
        let t = std::time::Instant::now();
        let ptx = compiled_ptx(&arch)?;
        let mut modules = Vec::new();
        let mut by_file = Vec::new();
        for (file, ptx) in ptx {
            let m = ctx.load_module(ptx).map_err(|e| {
                driver(
                    "loading a compiled kernel module (if the PTX is too new for the \
                         driver, point DERAIN_NVRTC_DIR at an NVRTC of the driver's CUDA \
                         version, e.g. the nvidia-cuda-nvrtc==13.0.88 wheel for driver 580)",
                    e,
                )
            })?;
            by_file.push((file, m.clone()));
            modules.push(m);
        }
        let funcs = KernelId::ALL
            .iter()
            .map(|id| {
                let (_, m) = by_file
                    .iter()
                    .find(|(f, _)| *f == id.file())
                    .expect("every kernel file is compiled");
                m.load_function(id.name())
                    .map_err(|e| driver("looking up a kernel entry point", e))
            })
            .collect::<Result<Vec<_>>>()?;
        log::info!(
            "CUDA kernels compiled for {arch} in {:.0} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
        Ok(Self {
            funcs,
            _modules: modules,
        })
    }

    fn get(&self, id: KernelId) -> &CudaFunction {
        let i = KernelId::ALL
            .iter()
            .position(|k| *k == id)
            .expect("listed in KernelId::ALL");
        &self.funcs[i]
    }
}

/// PTX of every kernel file for `arch`, compiled by NVRTC once per process and architecture
/// (engines made later, e.g. one per element instance, reuse it).
fn compiled_ptx(arch: &str) -> Result<Vec<(&'static str, cudarc::nvrtc::Ptx)>> {
    type Cache = std::collections::HashMap<String, Vec<(&'static str, cudarc::nvrtc::Ptx)>>;
    static CACHE: std::sync::Mutex<Option<Cache>> = std::sync::Mutex::new(None);
    let mut g = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    let cache = g.get_or_insert_with(Default::default);
    if let Some(p) = cache.get(arch) {
        return Ok(p.clone());
    }
    let ptx = kernels::FILES
        .iter()
        .map(|&(file, src)| Ok((file, kernels::compile_file(file, src, arch)?)))
        .collect::<Result<Vec<_>>>()?;
    cache.insert(arch.to_string(), ptx.clone());
    Ok(ptx)
}

/// A driver error with what the engine was doing.
pub(crate) fn driver(context: &'static str, e: cudarc::driver::DriverError) -> Error {
    Error::CudaDriver {
        context,
        message: e.to_string(),
    }
}

fn int(v: usize, what: &'static str) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::param("cuda launch", format!("{what} = {v} > i32::MAX")))
}

fn ensure_len(what: &'static str, len: usize, need: usize) -> Result<()> {
    if len < need {
        return Err(Error::param(
            "cuda launch",
            format!("buffer `{what}` holds {len} elements, the kernel needs {need}"),
        ));
    }
    Ok(())
}

pub(crate) fn grid_2d(w: usize, h: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (
            (w as u32).div_ceil(BLOCK_2D.0),
            (h as u32).div_ceil(BLOCK_2D.1),
            1,
        ),
        block_dim: (BLOCK_2D.0, BLOCK_2D.1, 1),
        shared_mem_bytes: 0,
    }
}

pub(crate) fn grid_cols(w: usize, h: usize, z: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (
            (w as u32).div_ceil(BLOCK_1D),
            h.div_ceil(SEG_Y) as u32,
            z as u32,
        ),
        block_dim: (BLOCK_1D, 1, 1),
        shared_mem_bytes: 0,
    }
}

pub(crate) fn grid_rows(w: usize, h: usize, z: usize) -> LaunchConfig {
    let threads = h * w.div_ceil(SEG_X);
    LaunchConfig {
        grid_dim: ((threads as u32).div_ceil(BLOCK_1D), 1, z as u32),
        block_dim: (BLOCK_1D, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn check_dims(w: usize, h: usize) -> Result<()> {
    if w == 0 || h == 0 {
        return Err(Error::param("cuda launch", "empty image"));
    }
    // Grid y of the per-pixel kernels is ⌈h/8⌉ (≤ 65535) and pass 1 uses one block row per
    // image row: h ≤ 65535.
    if w > 1 << 20 || h > 65_535 {
        return Err(Error::param("cuda launch", format!("{w}x{h} is too large")));
    }
    Ok(())
}

/// Frame layout arguments: (bpp, r_off, b_off).
fn layout(format: PixelFormat) -> (i32, i32, i32) {
    let [r, _, b] = format.rgb_offsets();
    (format.bytes_per_pixel() as i32, r as i32, b as i32)
}

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
    check_dims(w, h)?;
    ensure_len(
        "src",
        src.len(),
        stride * (h - 1) + w * format.bytes_per_pixel(),
    )?;
    ensure_len("dst", dst.len(), 3 * w * h)?;
    let (stride_i, wi, hi) = (int(stride, "stride")?, int(w, "w")?, int(h, "h")?);
    let (bpp, ro, bo) = layout(format);
    let mut b = s.launch_builder(k.get(KernelId::Packed8ToPlanar));
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
    unsafe { b.launch(grid_2d(w, h)) }.map_err(|e| driver("packed8_to_planar_f32", e))?;
    Ok(())
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
    check_dims(w, h)?;
    let frame_len = stride * (h - 1) + w * format.bytes_per_pixel();
    ensure_len("src", src.len(), 3 * w * h)?;
    ensure_len("dst", dst.len(), frame_len)?;
    if copy_alpha {
        ensure_len("alpha_src", alpha_src.len(), frame_len)?;
    }
    let copy = copy_alpha as i32;
    let (stride_i, wi, hi) = (int(stride, "stride")?, int(w, "w")?, int(h, "h")?);
    let (bpp, ro, bo) = layout(format);
    let mut b = s.launch_builder(k.get(KernelId::PlanarToPacked8));
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
    unsafe { b.launch(grid_2d(w, h)) }.map_err(|e| driver("planar_f32_to_packed8", e))?;
    Ok(())
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
    check_dims(w, h)?;
    ensure_len("rgb", rgb.len(), 3 * w * h)?;
    ensure_len("out", out.len(), w * h)?;
    let (wi, hi) = (int(w, "w")?, int(h, "h")?);
    let mut b = s.launch_builder(k.get(KernelId::Residue));
    b.arg(rgb).arg(&wi).arg(&hi).arg(out);
    // SAFETY: arguments match `residue_f32` in kernels/convert.cu; sizes checked.
    unsafe { b.launch(grid_2d(w, h)) }.map_err(|e| driver("residue_f32", e))?;
    Ok(())
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
    check_dims(w, h)?;
    if sub == 0 {
        return Err(Error::param("downsample", "factor 0"));
    }
    let (lw, lh) = (w.div_ceil(sub), h.div_ceil(sub));
    ensure_len("rgb", rgb.len(), 3 * w * h)?;
    ensure_len("lo", lo.len(), 4 * lw * lh)?;
    let (wi, hi, si) = (int(w, "w")?, int(h, "h")?, int(sub, "s")?);
    let (lwi, lhi) = (lw as i32, lh as i32);
    let mut b = s.launch_builder(k.get(KernelId::DownsampleResidue));
    b.arg(rgb)
        .arg(&wi)
        .arg(&hi)
        .arg(&si)
        .arg(&lwi)
        .arg(&lhi)
        .arg(lo);
    // SAFETY: arguments match `downsample_residue_f32` in kernels/convert.cu; sizes checked.
    unsafe { b.launch(grid_2d(lw, lh)) }.map_err(|e| driver("downsample_residue_f32", e))?;
    Ok((lw, lh))
}

/// `box_sum_cols_f64`: vertical window sums (radius r) of `nplanes` planes.
pub(crate) fn box_sum_cols(
    s: &Arc<CudaStream>,
    k: &Kernels,
    src: &CudaSlice<f32>,
    nplanes: usize,
    (w, h, r): (usize, usize, usize),
    colsum: &mut CudaSlice<f64>,
) -> Result<()> {
    check_dims(w, h)?;
    ensure_len("src", src.len(), nplanes * w * h)?;
    ensure_len("colsum", colsum.len(), nplanes * w * h)?;
    let (np, wi, hi, ri) = (
        int(nplanes, "nplanes")?,
        int(w, "w")?,
        int(h, "h")?,
        int(r, "r")?,
    );
    let mut b = s.launch_builder(k.get(KernelId::BoxSumCols));
    b.arg(src).arg(&np).arg(&wi).arg(&hi).arg(&ri).arg(colsum);
    // SAFETY: arguments match `box_sum_cols_f64` in kernels/box_filter.cu; sizes checked.
    unsafe { b.launch(grid_cols(w, h, nplanes)) }.map_err(|e| driver("box_sum_cols_f64", e))?;
    Ok(())
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
    check_dims(w, h)?;
    ensure_len("colsum", colsum.len(), nplanes * w * h)?;
    ensure_len("out", out.len(), nplanes * w * h)?;
    let (np, wi, hi, ri) = (
        int(nplanes, "nplanes")?,
        int(w, "w")?,
        int(h, "h")?,
        int(r, "r")?,
    );
    let mut b = s.launch_builder(k.get(KernelId::BoxRowsMean));
    b.arg(colsum).arg(&np).arg(&wi).arg(&hi).arg(&ri).arg(out);
    // SAFETY: arguments match `box_rows_mean_f32` in kernels/box_filter.cu; sizes checked.
    unsafe { b.launch(grid_rows(w, h, nplanes)) }.map_err(|e| driver("box_rows_mean_f32", e))?;
    Ok(())
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
    check_dims(w, h)?;
    if nc == 0 || nc > NC_MAX {
        return Err(Error::param(
            "guided filter",
            format!("{nc} channels (1..={NC_MAX})"),
        ));
    }
    ensure_len("guide", guide.len(), w * h)?;
    ensure_len("inputs", inputs.len(), nc * w * h)?;
    ensure_len("colsum", colsum.len(), (2 + 2 * nc) * w * h)?;
    let (nci, wi, hi, ri) = (nc as i32, int(w, "w")?, int(h, "h")?, int(r, "r")?);
    let mut b = s.launch_builder(k.get(KernelId::GuidedStatsCols));
    b.arg(guide)
        .arg(inputs)
        .arg(&nci)
        .arg(&wi)
        .arg(&hi)
        .arg(&ri)
        .arg(colsum);
    // SAFETY: arguments match `guided_stats_cols_f64` in kernels/guided_filter.cu; sizes
    // checked; grid z = 2 + 2·nc quantities.
    unsafe { b.launch(grid_cols(w, h, 2 + 2 * nc)) }
        .map_err(|e| driver("guided_stats_cols_f64", e))?;
    Ok(())
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
    check_dims(w, h)?;
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
    ensure_len("colsum", colsum.len(), (2 + 2 * nc) * w * h)?;
    ensure_len("coefs", coefs.len(), 2 * nc * ne * w * h)?;
    let e: [f32; NE_MAX] = std::array::from_fn(|i| eps.get(i).copied().unwrap_or(1.0));
    let (nci, nei, wi, hi, ri) = (
        nc as i32,
        ne as i32,
        int(w, "w")?,
        int(h, "h")?,
        int(r, "r")?,
    );
    let mut b = s.launch_builder(k.get(KernelId::GuidedCoeffs));
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
    unsafe { b.launch(grid_rows(w, h, 1)) }.map_err(|e| driver("guided_coeffs_f32", e))?;
    Ok(())
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
    check_dims(w, h)?;
    ensure_len("coef_colsum", coef_colsum.len(), 2 * nout * w * h)?;
    ensure_len("guide", guide.len(), w * h)?;
    ensure_len("out", out.len(), nout * w * h)?;
    let (no, wi, hi, ri) = (int(nout, "nout")?, int(w, "w")?, int(h, "h")?, int(r, "r")?);
    let mut b = s.launch_builder(k.get(KernelId::GuidedApply));
    b.arg(coef_colsum)
        .arg(guide)
        .arg(&no)
        .arg(&wi)
        .arg(&hi)
        .arg(&ri)
        .arg(out);
    // SAFETY: arguments match `guided_apply_f32` in kernels/guided_filter.cu; sizes checked;
    // grid z = nout.
    unsafe { b.launch(grid_rows(w, h, nout)) }.map_err(|e| driver("guided_apply_f32", e))?;
    Ok(())
}

/// `min_channel_normalised_f32`: min over channels of I/A.
pub(crate) fn min_channel_normalised(
    s: &Arc<CudaStream>,
    k: &Kernels,
    rgb: &CudaSlice<f32>,
    (w, h): (usize, usize),
    atmosphere: [f32; 3],
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    check_dims(w, h)?;
    ensure_len("rgb", rgb.len(), 3 * w * h)?;
    ensure_len("out", out.len(), w * h)?;
    // Exactly physics/dark.rs: 1 / max(A, 1e-3) in f32 on the host.
    let inv = atmosphere.map(|a| 1.0 / a.max(1e-3));
    let (wi, hi) = (int(w, "w")?, int(h, "h")?);
    let mut b = s.launch_builder(k.get(KernelId::MinChannelNormalised));
    b.arg(rgb)
        .arg(&wi)
        .arg(&hi)
        .arg(&inv[0])
        .arg(&inv[1])
        .arg(&inv[2])
        .arg(out);
    // SAFETY: arguments match `min_channel_normalised_f32` in kernels/dark.cu; sizes checked.
    unsafe { b.launch(grid_2d(w, h)) }.map_err(|e| driver("min_channel_normalised_f32", e))?;
    Ok(())
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
    check_dims(w, h)?;
    ensure_len("src", src.len(), w * h)?;
    ensure_len("out", out.len(), w * h)?;
    let (wi, hi, ri) = (int(w, "w")?, int(h, "h")?, int(r, "r")?);
    let id = if vertical {
        KernelId::MinFilterCols
    } else {
        KernelId::MinFilterRows
    };
    let mut b = s.launch_builder(k.get(id));
    b.arg(src).arg(&wi).arg(&hi).arg(&ri).arg(out);
    // SAFETY: arguments match `min_filter_rows_f32` / `min_filter_cols_f32` in
    // kernels/dark.cu (same signature); sizes checked.
    unsafe { b.launch(grid_2d(w, h)) }.map_err(|e| driver(id.name(), e))?;
    Ok(())
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
    let cfg = grid_1d(n);
    let mut b = s.launch_builder(k.get(KernelId::TransmissionRaw));
    b.arg(dark).arg(&ni).arg(&omega).arg(out);
    // SAFETY: arguments match `transmission_raw_f32` in kernels/dark.cu; sizes checked.
    unsafe { b.launch(cfg) }.map_err(|e| driver("transmission_raw_f32", e))?;
    Ok(())
}

/// The low-resolution side of the two physics passes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LowResGeometry {
    /// Low-res width and height.
    pub lw: usize,
    pub lh: usize,
    /// Upsampling factor.
    pub s: usize,
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
    check_dims(w, h)?;
    check_low_res(w, h, g)?;
    ensure_len("rgb", rgb.len(), 3 * w * h)?;
    ensure_len("dcoef", dcoef.len(), 6 * g.lw * g.lh)?;
    ensure_len("achro", achro.len(), w * h)?;
    ensure_len("luma", luma.len(), w * h)?;
    if k_width > 1024 {
        return Err(Error::param("streak width", format!("{k_width} > 1024")));
    }
    let cfg = pass1_config(w, h, k_width);
    let (wi, hi, lwi, lhi, si, ki) = (
        int(w, "w")?,
        int(h, "h")?,
        g.lw as i32,
        g.lh as i32,
        g.s as i32,
        k_width as i32,
    );
    let mut b = s.launch_builder(k.get(KernelId::PhysicsPass1));
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
    unsafe { b.launch(cfg) }.map_err(|e| driver("physics_pass1_f32", e))?;
    Ok(())
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

/// Geometry of the 1-D per-sample kernels (`transmission_raw_f32`).
pub(crate) fn grid_1d(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((n as u32).div_ceil(256), 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn check_low_res(w: usize, h: usize, g: LowResGeometry) -> Result<()> {
    if g.s == 0 || g.lw != w.div_ceil(g.s) || g.lh != h.div_ceil(g.s) {
        return Err(Error::param(
            "cuda launch",
            format!(
                "low-res {}x{} (factor {}) does not match {w}x{h}",
                g.lw, g.lh, g.s
            ),
        ));
    }
    Ok(())
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
    fn check(&self) -> Result<()> {
        let (w, h) = (self.w, self.h);
        check_dims(w, h)?;
        check_low_res(w, h, self.g)?;
        ensure_len("rgb", self.rgb.len(), 3 * w * h)?;
        ensure_len("achro", self.achro.len(), w * h)?;
        ensure_len("luma", self.luma.len(), w * h)?;
        ensure_len("tcoef", self.tcoef.len(), 2 * self.g.lw * self.g.lh)?;
        Ok(())
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
    p.check()?;
    let frame_len = stride * (p.h - 1) + p.w * format.bytes_per_pixel();
    ensure_len("in_frame", in_frame.len(), frame_len)?;
    ensure_len("out_frame", out_frame.len(), frame_len)?;
    let copy_alpha = format.alpha_offset().is_some() as i32;
    let (bpp, ro, bo) = layout(format);
    let (wi, hi, lwi, lhi, si, li, stride_i) = (
        p.w as i32,
        p.h as i32,
        p.g.lw as i32,
        p.g.lh as i32,
        p.g.s as i32,
        int(p.half_length, "L")?,
        int(stride, "stride")?,
    );
    let [ar, ag, ab] = p.atmosphere;
    let mut b = s.launch_builder(k.get(KernelId::PhysicsPass2Packed8));
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
    unsafe { b.launch(grid_2d(p.w, p.h)) }.map_err(|e| driver("physics_pass2_packed8", e))?;
    Ok(())
}

/// `physics_pass2_planar_f32`: J (3 planes), T and S into `out` (5 planes of w×h).
pub(crate) fn physics_pass2_planar(
    s: &Arc<CudaStream>,
    k: &Kernels,
    p: &Pass2Inputs<'_>,
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    p.check()?;
    let n = p.w * p.h;
    ensure_len("out", out.len(), 5 * n)?;
    let (wi, hi, lwi, lhi, si, li) = (
        p.w as i32,
        p.h as i32,
        p.g.lw as i32,
        p.g.lh as i32,
        p.g.s as i32,
        int(p.half_length, "L")?,
    );
    let [ar, ag, ab] = p.atmosphere;
    let (mut j, mut rest) = out.split_at_mut(3 * n);
    let (mut t, mut st) = rest.split_at_mut(n);
    let mut b = s.launch_builder(k.get(KernelId::PhysicsPass2Planar));
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
    unsafe { b.launch(grid_2d(p.w, p.h)) }.map_err(|e| driver("physics_pass2_planar_f32", e))?;
    Ok(())
}
