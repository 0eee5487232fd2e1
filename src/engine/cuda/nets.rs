//! The full-resolution streak network on the device: the forward pass of
//! [`crate::nets::StreakLayers`] as a chain of `kernels/nets.cu` launches on one stream, with
//! the weights uploaded once and the feature maps sized once per frame size.
//!
//! The arithmetic is the CPU native runtime's (same taps, same order, same fused
//! multiply-adds), so R agrees with it bit for bit on the emulated kernels
//! (`emulated::nets`) and within the parity tolerance on a GPU (`tests/cuda_parity.rs`).
//! This is the part of `full` mode that runs at full resolution (≈ 95 % of its arithmetic);
//! the working-resolution stages are next (issue 18).

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream};

use super::launch::{self, ConvShape, Kernels};
use super::ops::zeros;
use crate::error::{Error, Result};
use crate::nets::{ConvLayer, STREAK_MULTIPLE, StreakLayers};

/// One convolution's weights on the device.
#[derive(Debug)]
struct DeviceConv {
    layer: ConvLayerShape,
    w: CudaSlice<f32>,
    b: CudaSlice<f32>,
}

/// A [`ConvLayer`] without its weights.
#[derive(Debug, Clone, Copy)]
struct ConvLayerShape {
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    dilation: usize,
}

impl DeviceConv {
    fn upload(s: &Arc<CudaStream>, l: &ConvLayer) -> Result<Self> {
        let copy = |v: &[f32]| {
            s.clone_htod(v)
                .map_err(|e| launch::driver("uploading network weights", e))
        };
        Ok(Self {
            layer: ConvLayerShape {
                cin: l.cin,
                cout: l.cout,
                k: l.k,
                stride: l.stride,
                dilation: l.dilation,
            },
            w: copy(&l.weights)?,
            b: copy(&l.bias)?,
        })
    }

    /// `out` = act(conv(`x`)), `x` being `cin` planes of `w`×`h`.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        s: &Arc<CudaStream>,
        k: &Kernels,
        x: &CudaSlice<f32>,
        w: usize,
        h: usize,
        leaky: bool,
        out: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let l = self.layer;
        let shape = ConvShape {
            cin: l.cin,
            cout: l.cout,
            k: l.k,
            stride: l.stride,
            dilation: l.dilation,
            h,
            w,
        };
        launch::conv2d(s, k, x, &self.w, &self.b, shape, leaky, out)
    }
}

/// Feature maps for one frame size: per level a kept map (the skip), and two to alternate.
#[derive(Debug)]
struct Maps {
    w: usize,
    h: usize,
    /// 1/2: the unshuffled input (16 ch), then the output convolution's 12 channels.
    u: CudaSlice<f32>,
    half: [CudaSlice<f32>; 3],
    quarter: [CudaSlice<f32>; 3],
    eighth: [CudaSlice<f32>; 2],
}

/// The streak network on one device.
#[derive(Debug)]
pub(crate) struct DeviceStreakNet {
    head: DeviceConv,
    enc0: Vec<DeviceConv>,
    down1: DeviceConv,
    enc1: Vec<DeviceConv>,
    down2: DeviceConv,
    mid: Vec<DeviceConv>,
    lat1: DeviceConv,
    dec1: DeviceConv,
    lat0: DeviceConv,
    dec0: DeviceConv,
    out: DeviceConv,
    maps: Option<Maps>,
}

impl DeviceStreakNet {
    /// Uploads the weights of `l` (checked for the shapes the forward pass chains).
    pub(crate) fn upload(s: &Arc<CudaStream>, l: &StreakLayers) -> Result<Self> {
        check_layers(l)?;
        let one = |c: &ConvLayer| DeviceConv::upload(s, c);
        let many = |v: &[ConvLayer]| v.iter().map(one).collect::<Result<Vec<_>>>();
        Ok(Self {
            head: one(&l.head)?,
            enc0: many(&l.enc0)?,
            down1: one(&l.down1)?,
            enc1: many(&l.enc1)?,
            down2: one(&l.down2)?,
            mid: many(&l.mid)?,
            lat1: one(&l.lat1)?,
            dec1: one(&l.dec1)?,
            lat0: one(&l.lat0)?,
            dec0: one(&l.dec0)?,
            out: one(&l.out)?,
            maps: None,
        })
    }

    fn alloc_maps(&self, s: &Arc<CudaStream>, w: usize, h: usize) -> Result<Maps> {
        let (c0, c1, c2) = (
            self.head.layer.cout,
            self.down1.layer.cout,
            self.down2.layer.cout,
        );
        let (n2, n4, n8) = (w * h / 4, w * h / 16, w * h / 64);
        let alloc = |n: usize| zeros::<f32>(s, n);
        // quarter also holds lat0's c0 channels; eighth lat1's c1.
        let (cq, ce) = (c1.max(c0), c2.max(c1));
        Ok(Maps {
            w,
            h,
            u: alloc(16 * n2)?,
            half: [alloc(c0 * n2)?, alloc(c0 * n2)?, alloc(c0 * n2)?],
            quarter: [alloc(cq * n4)?, alloc(cq * n4)?, alloc(cq * n4)?],
            eighth: [alloc(ce * n8)?, alloc(ce * n8)?],
        })
    }

    /// R, the visible rain layer (three planes of `w`×`h`), of the RGB image `rgb` (three
    /// planes of `w`×`h`, multiples of [`STREAK_MULTIPLE`]), into `r`. Ordered on `s`; the
    /// feature maps are kept for the next frame of the same size.
    pub(crate) fn forward(
        &mut self,
        s: &Arc<CudaStream>,
        k: &Kernels,
        rgb: &CudaSlice<f32>,
        w: usize,
        h: usize,
        r: &mut CudaSlice<f32>,
    ) -> Result<()> {
        if w == 0
            || h == 0
            || !w.is_multiple_of(STREAK_MULTIPLE)
            || !h.is_multiple_of(STREAK_MULTIPLE)
        {
            return Err(Error::param(
                "streak network",
                format!("{w}x{h} is not a non-zero multiple of {STREAK_MULTIPLE}"),
            ));
        }
        let mut m = match self.maps.take() {
            Some(m) if m.w == w && m.h == h => m,
            _ => self.alloc_maps(s, w, h)?,
        };
        let res = self.run_levels(s, k, rgb, &mut m, r);
        self.maps = Some(m);
        res
    }

    fn run_levels(
        &self,
        s: &Arc<CudaStream>,
        k: &Kernels,
        rgb: &CudaSlice<f32>,
        m: &mut Maps,
        r: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let (w, h) = (m.w, m.h);
        let (w2, h2, w4, h4, w8, h8) = (w / 2, h / 2, w / 4, h / 4, w / 8, h / 8);
        launch::unshuffle_residue(s, k, rgb, w, h, &mut m.u)?;
        // 1/2: e0 = enc0(head(u)), kept in half[0].
        let [e0, ha, hb] = &mut m.half;
        self.head.run(s, k, &m.u, w2, h2, true, e0)?;
        chain(s, k, &self.enc0, e0, ha, w2, h2)?;
        // 1/4: e1 = enc1(down1(e0)), kept in quarter[0].
        let [e1, qa, qb] = &mut m.quarter;
        self.down1.run(s, k, e0, w2, h2, true, e1)?;
        chain(s, k, &self.enc1, e1, qa, w4, h4)?;
        // 1/8: m = mid(down2(e1)).
        let [ma, mb] = &mut m.eighth;
        self.down2.run(s, k, e1, w4, h4, true, ma)?;
        chain(s, k, &self.mid, ma, mb, w8, h8)?;
        // d1 = dec1(up(lat1(m)) + e1) at 1/4.
        self.lat1.run(s, k, ma, w8, h8, false, mb)?;
        launch::up_add(s, k, mb, self.lat1.layer.cout, e1, w4, h4)?;
        self.dec1.run(s, k, e1, w4, h4, true, qb)?;
        // d0 = dec0(up(lat0(d1)) + e0) at 1/2.
        self.lat0.run(s, k, qb, w4, h4, false, qa)?;
        launch::up_add(s, k, qa, self.lat0.layer.cout, e0, w2, h2)?;
        self.dec0.run(s, k, e0, w2, h2, true, hb)?;
        // R = shuffle(out(d0)).
        self.out.run(s, k, hb, w2, h2, false, &mut m.u)?;
        launch::shuffle(s, k, &m.u, w, h, r)
    }
}

/// Runs `convs` (each + LeakyReLU) on `x` in place, alternating with `tmp`: the result ends in
/// `x`.
fn chain(
    s: &Arc<CudaStream>,
    k: &Kernels,
    convs: &[DeviceConv],
    x: &mut CudaSlice<f32>,
    tmp: &mut CudaSlice<f32>,
    w: usize,
    h: usize,
) -> Result<()> {
    for c in convs {
        c.run(s, k, x, w, h, true, tmp)?;
        std::mem::swap(x, tmp);
    }
    Ok(())
}

/// The channel counts the forward pass chains: head 16 → c0, enc0 c0 → c0, down1 c0 → c1
/// (stride 2), enc1, down2 c1 → c2 (stride 2), mid, lat1 c2 → c1, dec1 c1 → c1, lat0 c1 →
/// c0, dec0 c0 → c0, out c0 → 12.
fn check_layers(l: &StreakLayers) -> Result<()> {
    let (c0, c1, c2) = (l.head.cout, l.down1.cout, l.down2.cout);
    let want = |c: &ConvLayer, cin: usize, cout: usize, stride: usize| {
        c.cin == cin
            && c.cout == cout
            && c.stride == stride
            && c.weights.len() == cout * cin * c.k * c.k
            && c.bias.len() == cout
    };
    let ok = want(&l.head, 16, c0, 1)
        && l.enc0.iter().all(|c| want(c, c0, c0, 1))
        && want(&l.down1, c0, c1, 2)
        && l.enc1.iter().all(|c| want(c, c1, c1, 1))
        && want(&l.down2, c1, c2, 2)
        && !l.mid.is_empty()
        && l.mid.iter().all(|c| want(c, c2, c2, 1))
        && want(&l.lat1, c2, c1, 1)
        && want(&l.dec1, c1, c1, 1)
        && want(&l.lat0, c1, c0, 1)
        && want(&l.dec0, c0, c0, 1)
        && want(&l.out, c0, 12, 1);
    if ok {
        Ok(())
    } else {
        Err(Error::param(
            "streak network",
            "the layers do not chain as the streak architecture (streak.onnx)",
        ))
    }
}
