//! One typed launch function per kernel: shape checks, launch geometry, argument order. This
//! folder holds every `unsafe` kernel launch of the engine, one file per kernel family
//! (`kernels/convert.cu` → [`convert`], `box_filter.cu` and `guided_filter.cu` → [`filters`],
//! `dark.cu` → [`dark`], `physics.cu` → [`physics`], `nets.cu` → [`nets`], `full.cu` → [`full`], `veil.cu` → [`veil`]); the argument lists mirror the
//! signatures in `kernels/*.cu` one for one (same order, same types: `int` ↔ `i32`,
//! `float` ↔ `f32`, pointers ↔ device slices or views).
//!
//! Every launch goes the same way: [`checked`] (a launchable frame, every buffer as long as the
//! kernel indexes), the arguments pushed on [`Kernels::args`], then [`launch`], whose driver
//! error names the kernel.

use std::sync::Arc;

use cudarc::driver::{CudaFunction, CudaModule, CudaStream, LaunchArgs, LaunchConfig};

mod convert;
mod dark;
mod filters;
mod full;
mod nets;
mod physics;
mod veil;

pub(crate) use convert::{downsample_residue, packed8_to_planar, planar_to_packed8, residue};
#[cfg(test)]
pub(crate) use dark::grid_1d;
pub(crate) use dark::{min_channel_normalised, min_filter_pass, transmission_raw};
pub(crate) use filters::{
    box_rows_mean, box_sum_cols, guided_apply, guided_coeffs, guided_stats_cols,
};
pub(crate) use full::{
    FinishInputs, InvertInputs, crop_planes, full_finish_packed8, full_finish_planar, full_invert,
    mean_mirrored, mirror_rows, pad_n, rain_free,
};
pub(crate) use nets::{ConvShape, conv2d, shuffle, unshuffle_residue, up_add};
#[cfg(test)]
pub(crate) use nets::{conv_config, up_add_config};
#[cfg(test)]
pub(crate) use physics::pass1_config;
pub(crate) use physics::{
    LowResGeometry, Pass2Inputs, physics_pass1, physics_pass2_packed8, physics_pass2_planar,
};
#[cfg(test)]
pub(crate) use veil::grid_n;
pub(crate) use veil::{
    ApoolInputs, anet_head, apool_head, block_means4, pool_mean_max, tglobal_bias, veil_t,
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

    /// An argument list for kernel `id` on stream `s`.
    fn args<'a>(&'a self, s: &'a Arc<CudaStream>, id: KernelId) -> LaunchArgs<'a> {
        s.launch_builder(self.get(id))
    }
}

/// The checks every launch starts with: a frame of `w`×`h` the kernels can index (see
/// [`check_dims`]) and every buffer `(name, len, needed)` at least as long as the kernel reads
/// or writes. Returns `w` and `h` as the kernels' `int`.
fn checked(w: usize, h: usize, buffers: &[(&'static str, usize, usize)]) -> Result<(i32, i32)> {
    check_dims(w, h)?;
    for &(what, len, need) in buffers {
        ensure_len(what, len, need)?;
    }
    Ok((int(w, "w")?, int(h, "h")?))
}

/// Launches the argument list `b` of kernel `id` on `cfg`; a driver error names the kernel.
///
/// # Safety
/// The arguments pushed on `b` match the kernel's signature in `kernels/*.cu` in order and
/// type, and every buffer is as long as the kernel indexes under `cfg` ([`checked`]).
unsafe fn launch(mut b: LaunchArgs<'_>, cfg: LaunchConfig, id: KernelId) -> Result<()> {
    // SAFETY: the caller's contract above.
    unsafe { b.launch(cfg) }.map_err(|e| driver(id.name(), e))?;
    Ok(())
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
