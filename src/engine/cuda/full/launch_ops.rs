//! [`FullOps`] as launches on one stream: the kernels of `kernels/full.cu` and `convert.cu`,
//! the transfers through page-locked buffers kept between frames.

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaSlice};
use rayon::prelude::*;

use super::{Apool, Finish, FullOps, Invert};
use crate::engine::cuda::buffers::{Direction, Staged};
use crate::engine::cuda::launch::{self, driver};
use crate::engine::cuda::nets::LaunchOps;
use crate::engine::cuda::ops::{GuidedBuffers, GuidedOutput, guided_on_device, zeros};
use crate::error::{Error, Result};
use crate::frame::{FrameMut, FrameRef, PixelFormat};
use crate::nets::full::{BANK_EPS, BANK_RADII};

/// Input and output frames' bytes, kept between frames with their page-locked twins, and the
/// guided filter's scratch for the bank.
#[derive(Default)]
pub(super) struct FrameIo {
    /// The kept input frame: its bytes, size and format.
    input: Option<Staged<u8>>,
    like: Option<(usize, usize, PixelFormat)>,
    output: Option<Staged<u8>>,
    bank: Option<BankScratch>,
}

/// The bank's buffers for one working size: the guide, the three inputs, one radius's output
/// and the guided filter's intermediates.
struct BankScratch {
    n: usize,
    guide: CudaSlice<f32>,
    inputs: CudaSlice<f32>,
    out: CudaSlice<f32>,
    bufs: GuidedBuffers,
}

/// [`FullOps`] as launches on one stream.
pub(super) struct LaunchFull<'a> {
    pub(super) net: LaunchOps<'a>,
    pub(super) ctx: &'a Arc<CudaContext>,
    pub(super) io: &'a mut FrameIo,
}

impl LaunchFull<'_> {
    fn like(&self) -> Result<(usize, usize, PixelFormat)> {
        self.io
            .like
            .ok_or_else(|| Error::param("cuda full", "no input frame was kept"))
    }

    fn input(&self) -> Result<&CudaSlice<u8>> {
        self.io
            .input
            .as_ref()
            .map(|b| &b.dev)
            .ok_or_else(|| Error::param("cuda full", "no input frame was kept"))
    }
}

impl<'a> FullOps for LaunchFull<'a> {
    type Net = LaunchOps<'a>;

    fn net(&mut self) -> &mut LaunchOps<'a> {
        &mut self.net
    }

    fn alloc(&mut self, n: usize) -> Result<CudaSlice<f32>> {
        zeros::<f32>(self.net.s, n)
    }

    fn put_frame(&mut self, frame: &FrameRef<'_>) -> Result<()> {
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let row = w * frame.format().bytes_per_pixel();
        let s = self.net.s;
        let b = Staged::fit(&mut self.io.input, s, self.ctx, row * h, Direction::Upload)?;
        b.host
            .as_mut_slice()
            .map_err(|e| driver("pinned host memory", e))?
            .par_chunks_mut(row)
            .enumerate()
            .with_min_len(32)
            .for_each(|(y, d)| d.copy_from_slice(frame.row(y)));
        s.memcpy_htod(&b.host, &mut b.dev)
            .map_err(|e| driver("uploading the frame", e))?;
        self.io.like = Some((w, h, frame.format()));
        Ok(())
    }

    fn unpack(&mut self, rgb: &mut CudaSlice<f32>) -> Result<()> {
        let (w, h, format) = self.like()?;
        let row = w * format.bytes_per_pixel();
        let (s, k) = (self.net.s, self.net.k);
        launch::packed8_to_planar(s, k, self.input()?, row, w, h, format, rgb)
    }

    fn put(&mut self, v: &[f32], dst: &mut CudaSlice<f32>) -> Result<()> {
        if dst.len() < v.len() {
            return Err(Error::param(
                "cuda full",
                "a buffer too small for its upload",
            ));
        }
        self.net
            .s
            .memcpy_htod(v, dst)
            .map_err(|e| driver("uploading working-resolution planes", e))
    }

    fn put_at(&mut self, v: &[f32], dst: &mut CudaSlice<f32>, offset: usize) -> Result<()> {
        if dst.len() < offset + v.len() {
            return Err(Error::param(
                "cuda full",
                "a buffer too small for its upload",
            ));
        }
        self.net
            .s
            .memcpy_htod(v, &mut dst.slice_mut(offset..offset + v.len()))
            .map_err(|e| driver("uploading working-resolution planes", e))
    }

    fn crop(
        &mut self,
        src: &CudaSlice<f32>,
        pwh: (usize, usize),
        lwh: (usize, usize),
        planes: usize,
        dst: &mut CudaSlice<f32>,
    ) -> Result<()> {
        launch::crop_planes(self.net.s, self.net.k, src, pwh, lwh, planes, dst)
    }

    fn bank(
        &mut self,
        lo: &CudaSlice<f32>,
        (lw, lh): (usize, usize),
        lf: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let (s, k) = (self.net.s, self.net.k);
        let ln = lw * lh;
        let ne = BANK_EPS.len();
        let per = 3 * ne;
        if lo.len() < 4 * ln || lf.len() < (3 + per * BANK_RADII.len()) * ln {
            return Err(Error::param("cuda full", "bank buffers too small"));
        }
        let b = match self.io.bank.take() {
            Some(b) if b.n == ln => b,
            old => {
                drop(old);
                BankScratch {
                    n: ln,
                    guide: zeros(s, ln)?,
                    inputs: zeros(s, 3 * ln)?,
                    out: zeros(s, per * ln)?,
                    bufs: GuidedBuffers::new(s, ln, 3, ne)?,
                }
            }
        };
        let b = self.io.bank.insert(b);
        let copy = |e| driver("copying on the device", e);
        s.memcpy_dtod(&lo.slice(3 * ln..4 * ln), &mut b.guide)
            .map_err(copy)?;
        s.memcpy_dtod(&lo.slice(..3 * ln), &mut b.inputs)
            .map_err(copy)?;
        s.memcpy_dtod(&lo.slice(..3 * ln), &mut lf.slice_mut(..3 * ln))
            .map_err(copy)?;
        for (i, &r) in BANK_RADII.iter().enumerate() {
            guided_on_device(
                s,
                k,
                &b.guide,
                &b.inputs,
                3,
                &BANK_EPS,
                (lw, lh, r),
                &mut b.bufs,
                GuidedOutput::Filtered,
                &mut b.out,
            )?;
            let at = (3 + per * i) * ln;
            s.memcpy_dtod(&b.out, &mut lf.slice_mut(at..at + per * ln))
                .map_err(copy)?;
        }
        Ok(())
    }

    fn pad_n(
        &mut self,
        src: &CudaSlice<f32>,
        planes: usize,
        wh: (usize, usize),
        pwh: (usize, usize),
        dst: &mut CudaSlice<f32>,
    ) -> Result<()> {
        launch::pad_n(self.net.s, self.net.k, src, planes, wh, pwh, dst)
    }

    fn pool(
        &mut self,
        y: &CudaSlice<f32>,
        nc: usize,
        n: usize,
        z: &mut CudaSlice<f32>,
    ) -> Result<()> {
        launch::pool_mean_max(self.net.s, self.net.k, y, nc, n, z)
    }

    fn anet_head(
        &mut self,
        z: &CudaSlice<f32>,
        nz: usize,
        lin: &CudaSlice<f32>,
        nh: usize,
        ag: &mut CudaSlice<f32>,
    ) -> Result<()> {
        launch::anet_head(self.net.s, self.net.k, z, nz, lin, nh, ag)
    }

    fn tglobal_bias(
        &mut self,
        z: &CudaSlice<f32>,
        nz: usize,
        glob: &CudaSlice<f32>,
        nout: usize,
        bias: &mut CudaSlice<f32>,
    ) -> Result<()> {
        launch::tglobal_bias(self.net.s, self.net.k, z, nz, glob, nout, bias)
    }

    fn veil_t(
        &mut self,
        tz: &CudaSlice<f32>,
        n: usize,
        ag: &CudaSlice<f32>,
        t: &mut CudaSlice<f32>,
        x: &mut CudaSlice<f32>,
        plane: usize,
    ) -> Result<()> {
        launch::veil_t(self.net.s, self.net.k, tz, n, ag, t, x, plane)
    }

    fn block_means4(
        &mut self,
        src: &CudaSlice<f32>,
        planes: usize,
        wh: (usize, usize),
        out: &mut CudaSlice<f32>,
    ) -> Result<()> {
        launch::block_means4(self.net.s, self.net.k, src, planes, wh, out)
    }

    fn apool_head(&mut self, p: &Apool<'_, CudaSlice<f32>>, a: &mut CudaSlice<f32>) -> Result<()> {
        launch::apool_head(self.net.s, self.net.k, p, a)
    }

    fn get(&mut self, src: &CudaSlice<f32>, n: usize) -> Result<Vec<f32>> {
        let s = self.net.s;
        let v = s
            .clone_dtoh(&src.slice(0..n.min(src.len())))
            .map_err(|e| driver("downloading working-resolution planes", e))?;
        s.synchronize()
            .map_err(|e| driver("waiting for the download", e))?;
        Ok(v)
    }

    fn mirror_rows(
        &mut self,
        src: &CudaSlice<f32>,
        planes: usize,
        pwh: (usize, usize),
        dst: &mut CudaSlice<f32>,
    ) -> Result<()> {
        launch::mirror_rows(self.net.s, self.net.k, src, planes, pwh, dst)
    }

    fn mean_mirrored(
        &mut self,
        r: &mut CudaSlice<f32>,
        m: &CudaSlice<f32>,
        planes: usize,
        pwh: (usize, usize),
    ) -> Result<()> {
        launch::mean_mirrored(self.net.s, self.net.k, r, m, planes, pwh)
    }

    fn rain_free(
        &mut self,
        x: &CudaSlice<f32>,
        r: &CudaSlice<f32>,
        pwh: (usize, usize),
        wh: (usize, usize),
        i_s: &mut CudaSlice<f32>,
    ) -> Result<()> {
        launch::rain_free(self.net.s, self.net.k, x, r, pwh, wh, i_s)
    }

    fn downsample(
        &mut self,
        rgb: &CudaSlice<f32>,
        (w, h): (usize, usize),
        s: usize,
        lo: &mut CudaSlice<f32>,
    ) -> Result<()> {
        launch::downsample_residue(self.net.s, self.net.k, rgb, w, h, s, lo)?;
        Ok(())
    }

    fn invert(
        &mut self,
        p: &Invert<'_, CudaSlice<f32>>,
        j1: &mut CudaSlice<f32>,
        st: Option<&mut CudaSlice<f32>>,
    ) -> Result<()> {
        launch::full_invert(self.net.s, self.net.k, p, j1, st)
    }

    fn finish_frame(
        &mut self,
        p: &Finish<'_, CudaSlice<f32>>,
        strength: f32,
        rgb: &CudaSlice<f32>,
    ) -> Result<()> {
        let (w, h, format) = self.like()?;
        let row = w * format.bytes_per_pixel();
        let (s, ctx) = (self.net.s, self.ctx);
        Staged::fit(&mut self.io.output, s, ctx, row * h, Direction::Download)?;
        let (Some(input), Some(out)) = (self.io.input.as_ref(), self.io.output.as_mut()) else {
            return Err(Error::param("cuda full", "no input frame was kept"));
        };
        launch::full_finish_packed8(
            s,
            self.net.k,
            p,
            strength,
            rgb,
            &input.dev,
            &mut out.dev,
            row,
            format,
        )
    }

    fn get_frame(&mut self, out: &mut FrameMut<'_>) -> Result<()> {
        let (w, _, format) = self.like()?;
        let row = w * format.bytes_per_pixel();
        let s = self.net.s;
        let o = self
            .io
            .output
            .as_mut()
            .ok_or_else(|| Error::param("cuda full", "no output frame was made"))?;
        s.memcpy_dtoh(&o.dev, &mut o.host)
            .map_err(|e| driver("downloading the frame", e))?;
        // as_slice waits for the copy.
        let src = o
            .host
            .as_slice()
            .map_err(|e| driver("reading the downloaded frame", e))?;
        out.par_rows_mut()
            .zip(src.par_chunks(row))
            .with_min_len(32)
            .for_each(|(d, s)| d.copy_from_slice(s));
        Ok(())
    }

    fn finish_planes(
        &mut self,
        p: &Finish<'_, CudaSlice<f32>>,
        out: &mut CudaSlice<f32>,
    ) -> Result<()> {
        launch::full_finish_planar(self.net.s, self.net.k, p, out)
    }
}
