//! Single kernels and kernel chains on host planes: upload, run on the device, download. The
//! parity tests compare each with its CPU counterpart (`tests/cuda_parity.rs`); the benchmark
//! times the device part of the same chains ([`GuidedBuffers`]).

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, DeviceRepr, ValidAsZeroBits};

use super::launch::{self, Kernels, NC_MAX, NE_MAX, driver};
use super::nets::DeviceStreakNet;
use super::{CudaEngine, Inner};
use crate::error::{Error, Result};
use crate::frame::{FrameMut, FrameRef, PlanarRgb, Plane};
use crate::nets::StreakLayers;

/// Device operations on host data; see [`CudaEngine::ops`]. Every call is synchronous.
#[derive(Debug)]
pub struct DeviceOps<'a> {
    engine: &'a CudaEngine,
}

/// Device buffers of one guided filter run (statistics, coefficients, their column sums).
pub(crate) struct GuidedBuffers {
    pub stats: CudaSlice<f64>,
    pub coefs: CudaSlice<f32>,
    pub coef_cols: CudaSlice<f64>,
}

impl GuidedBuffers {
    pub(crate) fn new(s: &Arc<CudaStream>, n: usize, nc: usize, ne: usize) -> Result<Self> {
        Ok(Self {
            stats: zeros(s, (2 + 2 * nc) * n)?,
            coefs: zeros(s, 2 * nc * ne * n)?,
            coef_cols: zeros(s, 2 * nc * ne * n)?,
        })
    }
}

/// What [`guided_on_device`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GuidedOutput {
    /// q = mean(a)·I + mean(b), `nc·ne` planes ordered [e·nc + c].
    Filtered,
    /// mean(a), mean(b): `2·nc·ne` planes ordered [2·(e·nc + c)] (+1).
    MeanCoefficients,
}

/// The guided filter chain on device buffers: guide (w×h), `nc` input planes, every eps.
#[allow(clippy::too_many_arguments)]
pub(crate) fn guided_on_device(
    s: &Arc<CudaStream>,
    k: &Kernels,
    guide: &CudaSlice<f32>,
    inputs: &CudaSlice<f32>,
    nc: usize,
    eps: &[f32],
    whr: (usize, usize, usize),
    bufs: &mut GuidedBuffers,
    what: GuidedOutput,
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    let ne = eps.len();
    launch::guided_stats_cols(s, k, guide, inputs, nc, whr, &mut bufs.stats)?;
    launch::guided_coeffs(s, k, &bufs.stats, nc, eps, whr, &mut bufs.coefs)?;
    launch::box_sum_cols(s, k, &bufs.coefs, 2 * nc * ne, whr, &mut bufs.coef_cols)?;
    match what {
        GuidedOutput::Filtered => {
            launch::guided_apply(s, k, &bufs.coef_cols, guide, nc * ne, whr, out)
        }
        GuidedOutput::MeanCoefficients => {
            launch::box_rows_mean(s, k, &bufs.coef_cols, 2 * nc * ne, whr, out)
        }
    }
}

pub(crate) fn zeros<T: DeviceRepr + ValidAsZeroBits>(
    s: &Arc<CudaStream>,
    n: usize,
) -> Result<CudaSlice<T>> {
    s.alloc_zeros::<T>(n.max(1))
        .map_err(|e| driver("allocating device memory", e))
}

pub(crate) fn upload<T: DeviceRepr>(s: &Arc<CudaStream>, v: &[T]) -> Result<CudaSlice<T>> {
    s.clone_htod(v).map_err(|e| driver("uploading", e))
}

fn download(s: &Arc<CudaStream>, d: &CudaSlice<f32>, n: usize) -> Result<Vec<f32>> {
    let mut v = s.clone_dtoh(d).map_err(|e| driver("downloading", e))?;
    s.synchronize()
        .map_err(|e| driver("waiting for the device", e))?;
    v.truncate(n);
    Ok(v)
}

fn concat(planes: &[&Plane]) -> Vec<f32> {
    planes.iter().flat_map(|p| p.data.iter().copied()).collect()
}

fn split(v: &[f32], w: usize, h: usize, count: usize) -> Vec<Plane> {
    v.chunks_exact(w * h)
        .take(count)
        .map(|c| Plane {
            width: w,
            height: h,
            data: c.to_vec(),
        })
        .collect()
}

/// The CPU filter's checks (`guided_filter::check_inputs`) plus the device kernels' limits on
/// the number of inputs and eps values.
fn check_guided(guide: &Plane, inputs: &[&Plane], r: usize, eps: &[f32]) -> Result<()> {
    crate::physics::guided_filter::check_inputs(guide, inputs, r, eps)?;
    if inputs.len() > NC_MAX || eps.len() > NE_MAX {
        return Err(Error::param(
            "guided filter",
            format!("1..={NC_MAX} inputs and 1..={NE_MAX} eps on the device"),
        ));
    }
    Ok(())
}

impl<'a> DeviceOps<'a> {
    pub(crate) fn new(engine: &'a CudaEngine) -> Self {
        Self { engine }
    }

    /// Runs `f` with the context's stream of slot 0 and the kernels (nothing may be in flight).
    fn with<T>(&self, f: impl FnOnce(&Arc<CudaStream>, &Kernels) -> Result<T>) -> Result<T> {
        let g = self.engine.lock()?;
        let inner: &Inner = &g;
        if inner.slots.iter().any(|s| s.pending.is_some()) {
            return Err(Error::param(
                "cuda ops",
                "frames are in flight: finish them first",
            ));
        }
        let s = inner.slots[0].stream.clone();
        f(&s, &inner.k)
    }

    /// `packed8_to_planar_f32` (device) = `PlanarRgb::from_frame` (CPU).
    pub fn unpack(&self, frame: &FrameRef<'_>) -> Result<PlanarRgb> {
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let row = w * frame.format().bytes_per_pixel();
        let bytes: Vec<u8> = (0..h).flat_map(|y| frame.row(y).iter().copied()).collect();
        self.with(|s, k| {
            let d_in = upload(s, &bytes)?;
            let mut d = zeros::<f32>(s, 3 * w * h)?;
            launch::packed8_to_planar(s, k, &d_in, row, w, h, frame.format(), &mut d)?;
            let v = download(s, &d, 3 * w * h)?;
            let mut p = split(&v, w, h, 3).into_iter();
            PlanarRgb::from_planes(std::array::from_fn(|_| p.next().expect("3 planes")))
        })
    }

    /// `planar_f32_to_packed8` (device) = `PlanarRgb::write_frame` (CPU), alpha from
    /// `alpha_src` when the format has alpha.
    pub fn pack(
        &self,
        img: &PlanarRgb,
        alpha_src: &FrameRef<'_>,
        out: &mut FrameMut<'_>,
    ) -> Result<()> {
        let (w, h) = (img.width(), img.height());
        let format = out.format();
        if (out.width() as usize, out.height() as usize) != (w, h)
            || (alpha_src.width(), alpha_src.height(), alpha_src.format())
                != (out.width(), out.height(), format)
        {
            return Err(Error::param(
                "pack",
                "image, alpha source and output differ",
            ));
        }
        let row = w * format.bytes_per_pixel();
        let alpha: Vec<u8> = (0..h)
            .flat_map(|y| alpha_src.row(y).iter().copied())
            .collect();
        let planes = concat(&[&img.planes[0], &img.planes[1], &img.planes[2]]);
        let bytes = self.with(|s, k| {
            let d_src = upload(s, &planes)?;
            let d_alpha = upload(s, &alpha)?;
            let mut d_out = zeros::<u8>(s, row * h)?;
            let copy = format.alpha_offset().is_some();
            launch::planar_to_packed8(s, k, &d_src, &d_alpha, copy, &mut d_out, row, w, h, format)?;
            let v = s.clone_dtoh(&d_out).map_err(|e| driver("downloading", e))?;
            s.synchronize()
                .map_err(|e| driver("waiting for the device", e))?;
            Ok(v)
        })?;
        for (y, chunk) in bytes.chunks_exact(row).take(h).enumerate() {
            out.row_mut(y).copy_from_slice(chunk);
        }
        Ok(())
    }

    /// `residue_f32` = `physics::residue::residue`.
    pub fn residue(&self, img: &PlanarRgb) -> Result<Plane> {
        let (w, h) = (img.width(), img.height());
        let planes = concat(&[&img.planes[0], &img.planes[1], &img.planes[2]]);
        self.with(|s, k| {
            let d = upload(s, &planes)?;
            let mut o = zeros::<f32>(s, w * h)?;
            launch::residue(s, k, &d, w, h, &mut o)?;
            Ok(split(&download(s, &o, w * h)?, w, h, 1).remove(0))
        })
    }

    /// The streak network's R (three planes) of `img` (sides multiples of 16) on the device:
    /// the CPU native runtime's R (`Net::run` on `streak.onnx`) up to the device's arithmetic
    /// (the same fused multiply-adds in the same order).
    pub fn streak_rain(&self, layers: &StreakLayers, img: &PlanarRgb) -> Result<[Plane; 3]> {
        let (w, h) = (img.width(), img.height());
        let planes = concat(&[&img.planes[0], &img.planes[1], &img.planes[2]]);
        self.with(|s, k| {
            let mut net = DeviceStreakNet::upload(s, layers)?;
            let d = upload(s, &planes)?;
            let mut r = zeros::<f32>(s, 3 * w * h)?;
            net.forward(s, k, &d, w, h, &mut r)?;
            let mut p = split(&download(s, &r, 3 * w * h)?, w, h, 3).into_iter();
            Ok(std::array::from_fn(|_| p.next().expect("three planes")))
        })
    }

    /// `downsample_residue_f32` = `Source::downsample_with_residue` (bit-identical).
    pub fn downsample_with_residue(
        &self,
        img: &PlanarRgb,
        factor: usize,
    ) -> Result<([Plane; 3], Plane)> {
        let (w, h) = (img.width(), img.height());
        let planes = concat(&[&img.planes[0], &img.planes[1], &img.planes[2]]);
        self.with(|s, k| {
            let d = upload(s, &planes)?;
            let (lw, lh) = (w.div_ceil(factor.max(1)), h.div_ceil(factor.max(1)));
            let mut o = zeros::<f32>(s, 4 * lw * lh)?;
            launch::downsample_residue(s, k, &d, w, h, factor, &mut o)?;
            let mut p = split(&download(s, &o, 4 * lw * lh)?, lw, lh, 4).into_iter();
            let rgb = std::array::from_fn(|_| p.next().expect("4 planes"));
            Ok((rgb, p.next().expect("4 planes")))
        })
    }

    /// `box_sum_cols_f64` + `box_rows_mean_f32` = `guided_filter::box_mean`.
    pub fn box_mean(&self, src: &Plane, radius_px: usize) -> Result<Plane> {
        let (w, h) = (src.width, src.height);
        if w == 0 || h == 0 {
            return Err(Error::param("box filter", "empty plane"));
        }
        self.with(|s, k| {
            let d = upload(s, &src.data)?;
            let mut cols = zeros::<f64>(s, w * h)?;
            let mut o = zeros::<f32>(s, w * h)?;
            launch::box_sum_cols(s, k, &d, 1, (w, h, radius_px), &mut cols)?;
            launch::box_rows_mean(s, k, &cols, 1, (w, h, radius_px), &mut o)?;
            Ok(split(&download(s, &o, w * h)?, w, h, 1).remove(0))
        })
    }

    /// The guided filter chain = `guided_filter::guided_filter_multi`: planes ordered
    /// `[e·inputs.len() + c]`. Up to 3 inputs and 4 eps.
    pub fn guided_filter_multi(
        &self,
        guide: &Plane,
        inputs: &[&Plane],
        radius_px: usize,
        eps: &[f32],
    ) -> Result<Vec<Plane>> {
        self.guided(guide, inputs, radius_px, eps, GuidedOutput::Filtered)
    }

    /// Window means of the coefficients = `guided_filter::guided_coefficients`.
    pub fn guided_coefficients(
        &self,
        guide: &Plane,
        inputs: &[&Plane],
        radius_px: usize,
        eps: &[f32],
    ) -> Result<Vec<Plane>> {
        self.guided(
            guide,
            inputs,
            radius_px,
            eps,
            GuidedOutput::MeanCoefficients,
        )
    }

    fn guided(
        &self,
        guide: &Plane,
        inputs: &[&Plane],
        r: usize,
        eps: &[f32],
        what: GuidedOutput,
    ) -> Result<Vec<Plane>> {
        check_guided(guide, inputs, r, eps)?;
        let (w, h) = (guide.width, guide.height);
        let (nc, ne) = (inputs.len(), eps.len());
        let nout = match what {
            GuidedOutput::Filtered => nc * ne,
            GuidedOutput::MeanCoefficients => 2 * nc * ne,
        };
        let inp = concat(inputs);
        self.with(|s, k| {
            let dg = upload(s, &guide.data)?;
            let di = upload(s, &inp)?;
            let mut bufs = GuidedBuffers::new(s, w * h, nc, ne)?;
            let mut o = zeros::<f32>(s, nout * w * h)?;
            guided_on_device(s, k, &dg, &di, nc, eps, (w, h, r), &mut bufs, what, &mut o)?;
            Ok(split(&download(s, &o, nout * w * h)?, w, h, nout))
        })
    }

    /// The decomposition bank = `guided_filter::guided_bank`: `radii.len()·eps.len()·3`
    /// planes ordered `[radius][eps][channel]`; per radius the guide statistics are shared by
    /// the 3 channels and every eps.
    pub fn guided_bank(
        &self,
        guide: &Plane,
        img: &PlanarRgb,
        radii: &[usize],
        eps: &[f32],
    ) -> Result<Vec<Plane>> {
        let [r0, g0, b0] = &img.planes;
        for &r in radii {
            check_guided(guide, &[r0, g0, b0], r, eps)?;
        }
        let (w, h) = (guide.width, guide.height);
        let ne = eps.len();
        let inp = concat(&[r0, g0, b0]);
        self.with(|s, k| {
            let dg = upload(s, &guide.data)?;
            let di = upload(s, &inp)?;
            let mut bufs = GuidedBuffers::new(s, w * h, 3, ne)?;
            let mut o = zeros::<f32>(s, 3 * ne * w * h)?;
            let mut all = Vec::new();
            for &r in radii {
                let what = GuidedOutput::Filtered;
                guided_on_device(s, k, &dg, &di, 3, eps, (w, h, r), &mut bufs, what, &mut o)?;
                all.extend(split(&download(s, &o, 3 * ne * w * h)?, w, h, 3 * ne));
            }
            Ok(all)
        })
    }

    /// `min_channel_normalised_f32` + `min_filter_rows_f32` + `min_filter_cols_f32` =
    /// `physics::dark::dark_channel` (bit-identical: min is exact).
    pub fn dark_channel(
        &self,
        img: &PlanarRgb,
        atmosphere: [f32; 3],
        radius_px: usize,
    ) -> Result<Plane> {
        let (w, h) = (img.width(), img.height());
        let planes = concat(&[&img.planes[0], &img.planes[1], &img.planes[2]]);
        self.with(|s, k| {
            let d = upload(s, &planes)?;
            let mut m = zeros::<f32>(s, w * h)?;
            let mut t = zeros::<f32>(s, w * h)?;
            launch::min_channel_normalised(s, k, &d, (w, h), atmosphere, &mut m)?;
            if radius_px > 0 {
                launch::min_filter_pass(s, k, &m, (w, h, radius_px), false, &mut t)?;
                launch::min_filter_pass(s, k, &t, (w, h, radius_px), true, &mut m)?;
            }
            Ok(split(&download(s, &m, w * h)?, w, h, 1).remove(0))
        })
    }

    /// `transmission_raw_f32`: 1 − ω·min(dark, 1), the prior before refinement.
    pub fn transmission_raw(&self, dark: &Plane, omega: f32) -> Result<Plane> {
        let n = dark.data.len();
        self.with(|s, k| {
            let d = upload(s, &dark.data)?;
            let mut o = zeros::<f32>(s, n)?;
            launch::transmission_raw(s, k, &d, n, omega, &mut o)?;
            Ok(split(&download(s, &o, n)?, dark.width, dark.height, 1).remove(0))
        })
    }
}
