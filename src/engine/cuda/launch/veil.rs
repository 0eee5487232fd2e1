//! Launches of `kernels/veil.cu`: the veil network's padding, pooling, heads and T.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig, PushKernelArg};

use super::{Kernels, checked, ensure_len, grid_2d, int, launch};
use crate::engine::cuda::kernels::KernelId;
use crate::error::{Error, Result};

/// One thread (the sequential heads).
fn one() -> LaunchConfig {
    LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (1, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Threads over `n` items in blocks of 128.
pub(crate) fn grid_n(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((n as u32).div_ceil(128).max(1), 1, 1),
        block_dim: (128, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// `pool_mean_max_f32`: mean and max of each of `nc` planes of `n` into `z` (2·nc).
pub(crate) fn pool_mean_max(
    s: &Arc<CudaStream>,
    k: &Kernels,
    y: &CudaSlice<f32>,
    nc: usize,
    n: usize,
    z: &mut CudaSlice<f32>,
) -> Result<()> {
    if n == 0 {
        return Err(Error::param("cuda launch", "pooling over no pixels"));
    }
    ensure_len("y", y.len(), nc * n)?;
    ensure_len("z", z.len(), 2 * nc)?;
    let (nci, ni) = (int(nc, "channels")?, int(n, "n")?);
    let id = KernelId::PoolMeanMax;
    let mut b = k.args(s, id);
    b.arg(y).arg(&nci).arg(&ni).arg(z);
    // SAFETY: arguments match `pool_mean_max_f32` in kernels/veil.cu; sizes checked.
    unsafe { launch(b, grid_n(nc), id) }
}

/// `anet_head_f32`: [A, g] (4 values) from the pooled features `z` (nz) and the packed
/// linear layers `lin` (hidden nh ≤ 64).
pub(crate) fn anet_head(
    s: &Arc<CudaStream>,
    k: &Kernels,
    z: &CudaSlice<f32>,
    nz: usize,
    lin: &CudaSlice<f32>,
    nh: usize,
    ag: &mut CudaSlice<f32>,
) -> Result<()> {
    if nh > 64 {
        return Err(Error::param(
            "cuda launch",
            format!("{nh} hidden units > 64"),
        ));
    }
    ensure_len("z", z.len(), nz)?;
    ensure_len("lin", lin.len(), nh * nz + nh + 3 * nh + 3 + nz + 1)?;
    ensure_len("ag", ag.len(), 4)?;
    let (nzi, nhi) = (int(nz, "nz")?, int(nh, "nh")?);
    let id = KernelId::AnetHead;
    let mut b = k.args(s, id);
    b.arg(z).arg(&nzi).arg(lin).arg(&nhi).arg(ag);
    // SAFETY: arguments match `anet_head_f32` in kernels/veil.cu; sizes checked.
    unsafe { launch(b, one(), id) }
}

/// `tglobal_bias_f32`: the TNet's d2 bias (nout values) with the frame's global context from
/// the pooled features `z` (nz) and `glob` (W nout × nz, b nout, d2's own bias nout).
pub(crate) fn tglobal_bias(
    s: &Arc<CudaStream>,
    k: &Kernels,
    z: &CudaSlice<f32>,
    nz: usize,
    glob: &CudaSlice<f32>,
    nout: usize,
    bias: &mut CudaSlice<f32>,
) -> Result<()> {
    ensure_len("z", z.len(), nz)?;
    ensure_len("glob", glob.len(), nout * nz + 2 * nout)?;
    ensure_len("bias", bias.len(), nout)?;
    let (nzi, nouti) = (int(nz, "nz")?, int(nout, "nout")?);
    let id = KernelId::TglobalBias;
    let mut b = k.args(s, id);
    b.arg(z).arg(&nzi).arg(glob).arg(&nouti).arg(bias);
    // SAFETY: arguments match `tglobal_bias_f32` in kernels/veil.cu; sizes checked.
    unsafe { launch(b, grid_n(nout), id) }
}

/// `veil_t_f32`: T (n values) into `t` and into plane `x_plane` of `x`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn veil_t(
    s: &Arc<CudaStream>,
    k: &Kernels,
    tz: &CudaSlice<f32>,
    n: usize,
    ag: &CudaSlice<f32>,
    t: &mut CudaSlice<f32>,
    x: &mut CudaSlice<f32>,
    x_plane: usize,
) -> Result<()> {
    ensure_len("tz", tz.len(), n)?;
    ensure_len("ag", ag.len(), 4)?;
    ensure_len("t", t.len(), n)?;
    ensure_len("x", x.len(), (x_plane + 1) * n)?;
    let (ni, pi) = (int(n, "n")?, int(x_plane, "plane")?);
    let id = KernelId::VeilT;
    let mut b = k.args(s, id);
    b.arg(tz).arg(&ni).arg(ag).arg(t).arg(x).arg(&pi);
    // SAFETY: arguments match `veil_t_f32` in kernels/veil.cu; sizes checked.
    unsafe { launch(b, grid_n(n), id) }
}

/// `block_means4_f32`: the 4×4 block means of `planes` planes of w×h (multiples of 4).
pub(crate) fn block_means4(
    s: &Arc<CudaStream>,
    k: &Kernels,
    src: &CudaSlice<f32>,
    planes: usize,
    (w, h): (usize, usize),
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    if !w.is_multiple_of(4) || !h.is_multiple_of(4) {
        return Err(Error::param(
            "cuda launch",
            "block means need multiples of 4",
        ));
    }
    let (wi, hi) = checked(w, h, &[("src", src.len(), planes * w * h)])?;
    ensure_len("out", out.len(), planes * (w / 4) * (h / 4))?;
    let np = int(planes, "planes")?;
    let id = KernelId::BlockMeans4;
    let mut b = k.args(s, id);
    b.arg(src).arg(&np).arg(&wi).arg(&hi).arg(out);
    // SAFETY: arguments match `block_means4_f32` in kernels/veil.cu; sizes checked.
    unsafe { launch(b, grid_2d(w / 4, h / 4), id) }
}

/// What the APool's head reads (buffers of `B`, as [`super::InvertInputs`]).
pub(crate) struct ApoolInputs<'a, B = CudaSlice<f32>> {
    /// Pooled body features (nz) and the keep layer (nz weights, 1 bias).
    pub z: &'a B,
    pub nz: usize,
    pub keep: &'a B,
    /// The head's 4 planes, the block means of T and of the image's 3 planes, `n` blocks each.
    pub y: &'a B,
    pub t4: &'a B,
    pub i4: &'a B,
    pub n: usize,
    /// [A_anet, g].
    pub ag: &'a B,
}

/// `apool_head_f32`: A (3 values) into `a`.
pub(crate) fn apool_head(
    s: &Arc<CudaStream>,
    k: &Kernels,
    p: &ApoolInputs<'_>,
    a: &mut CudaSlice<f32>,
) -> Result<()> {
    if p.n == 0 {
        return Err(Error::param("cuda launch", "pooling over no blocks"));
    }
    ensure_len("z", p.z.len(), p.nz)?;
    ensure_len("keep", p.keep.len(), p.nz + 1)?;
    ensure_len("y", p.y.len(), 4 * p.n)?;
    ensure_len("t4", p.t4.len(), p.n)?;
    ensure_len("i4", p.i4.len(), 3 * p.n)?;
    ensure_len("ag", p.ag.len(), 3)?;
    ensure_len("a", a.len(), 3)?;
    let (nzi, ni) = (int(p.nz, "nz")?, int(p.n, "n")?);
    let id = KernelId::ApoolHead;
    let mut b = k.args(s, id);
    b.arg(p.z)
        .arg(&nzi)
        .arg(p.keep)
        .arg(p.y)
        .arg(p.t4)
        .arg(p.i4)
        .arg(&ni)
        .arg(p.ag)
        .arg(a);
    // SAFETY: arguments match `apool_head_f32` in kernels/veil.cu; sizes checked.
    unsafe { launch(b, one(), id) }
}
