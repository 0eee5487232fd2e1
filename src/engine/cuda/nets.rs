//! The full-resolution streak network on the device: the forward pass of
//! [`crate::nets::StreakLayers`] as a chain of `kernels/nets.cu` launches on one stream, with
//! the weights uploaded once and the feature maps sized once per frame size.
//!
//! The chain ([`forward`]: which map each layer reads and writes, the reuse of buffers) is
//! written once over [`NetOps`]: the device's launches here ([`LaunchOps`]), the emulated
//! kernels on host buffers in the tests (`emulated::nets`), so the very code that runs on the
//! GPU is checked in CI. The arithmetic is the CPU native runtime's (same taps, same order,
//! same fused multiply-adds), so R agrees with it bit for bit on the emulated kernels and
//! within the parity tolerance on a GPU (`tests/cuda_parity.rs`). This is the part of `full`
//! mode that runs at full resolution (≈ 95 % of its arithmetic).

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream};

use super::launch::{self, ConvShape, Kernels};
use super::ops::zeros;
use crate::error::{Error, Result};
use crate::nets::{ConvLayer, STREAK_MULTIPLE, StreakLayers, UNetLayers};

/// Checks the channel counts the forward pass chains: head 16 → c0, enc0 c0 → c0, down1 c0 →
/// c1 (stride 2), enc1, down2 c1 → c2 (stride 2), mid (at least one), lat1 c2 → c1, dec1 c1 →
/// c1, lat0 c1 → c0, dec0 c0 → c0, out c0 → 12.
pub(crate) fn check_layers(l: &StreakLayers) -> Result<()> {
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

/// A layer's shape: what the forward pass needs to know of it besides its weights.
pub(crate) trait LayerShape {
    /// Output channels.
    fn cout(&self) -> usize;
}

impl LayerShape for ConvLayer {
    fn cout(&self) -> usize {
        self.cout
    }
}

/// The operations the forward pass is made of, on buffers of type `Buf` holding planar maps
/// (the kernels of `kernels/nets.cu`, launched or emulated).
pub(crate) trait NetOps {
    /// A layer with its weights.
    type Conv: LayerShape;
    /// A buffer of f32.
    type Buf;
    /// A buffer of `n` floats.
    fn alloc(&mut self, n: usize) -> Result<Self::Buf>;
    /// `out` = act(conv(`x`)), `x` holding `cin` planes of `w`×`h`.
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        c: &Self::Conv,
        x: &Self::Buf,
        w: usize,
        h: usize,
        leaky: bool,
        out: &mut Self::Buf,
    ) -> Result<()>;
    /// [`NetOps::conv`] with the `cout` values of `bias` in place of the layer's own.
    #[allow(clippy::too_many_arguments)]
    fn conv_biased(
        &mut self,
        c: &Self::Conv,
        bias: &Self::Buf,
        x: &Self::Buf,
        w: usize,
        h: usize,
        leaky: bool,
        out: &mut Self::Buf,
    ) -> Result<()>;
    /// `u` = unshuffle₂([I, residue(I)]) of the three planes `rgb` (`w`×`h`, even).
    fn unshuffle(&mut self, rgb: &Self::Buf, w: usize, h: usize, u: &mut Self::Buf) -> Result<()>;
    /// `skip` (`c` planes of `w`×`h`) += nearest ×2 of `x`.
    fn up_add(
        &mut self,
        x: &Self::Buf,
        c: usize,
        skip: &mut Self::Buf,
        w: usize,
        h: usize,
    ) -> Result<()>;
    /// Three planes of `w`×`h` from the 12 planes `m` at half the size.
    fn shuffle(&mut self, m: &Self::Buf, w: usize, h: usize, out: &mut Self::Buf) -> Result<()>;
}

/// Feature maps for one frame size: per level a kept map (the skip), and two to alternate.
#[derive(Debug)]
pub(crate) struct Maps<B> {
    w: usize,
    h: usize,
    /// 1/2: the unshuffled input (16 ch), then the output convolution's 12 channels.
    u: B,
    half: [B; 3],
    quarter: [B; 3],
    eighth: [B; 2],
}

impl<B> Maps<B> {
    /// Maps for `w`×`h` (multiples of [`STREAK_MULTIPLE`]) of the network `l`.
    pub(crate) fn new<O: NetOps<Buf = B>>(
        ops: &mut O,
        l: &StreakLayers<O::Conv>,
        w: usize,
        h: usize,
    ) -> Result<Self> {
        let (c0, c1, c2) = (l.head.cout(), l.down1.cout(), l.down2.cout());
        let (n2, n4, n8) = (w * h / 4, w * h / 16, w * h / 64);
        // quarter also holds lat0's c0 channels; eighth lat1's c1.
        let (cq, ce) = (c1.max(c0), c2.max(c1));
        Ok(Self {
            w,
            h,
            u: ops.alloc(16 * n2)?,
            half: [
                ops.alloc(c0 * n2)?,
                ops.alloc(c0 * n2)?,
                ops.alloc(c0 * n2)?,
            ],
            quarter: [
                ops.alloc(cq * n4)?,
                ops.alloc(cq * n4)?,
                ops.alloc(cq * n4)?,
            ],
            eighth: [ops.alloc(ce * n8)?, ops.alloc(ce * n8)?],
        })
    }

    /// Whether these maps are for `w`×`h`.
    pub(crate) fn fit(&self, w: usize, h: usize) -> bool {
        self.w == w && self.h == h
    }
}

/// R (three planes of `m.w`×`m.h`) of the RGB image `rgb` through the layers `l`, with the
/// maps `m`: the forward pass of [`StreakLayers`].
pub(crate) fn forward<O: NetOps>(
    ops: &mut O,
    l: &StreakLayers<O::Conv>,
    rgb: &O::Buf,
    m: &mut Maps<O::Buf>,
    r: &mut O::Buf,
) -> Result<()> {
    let (w, h) = (m.w, m.h);
    if w == 0 || h == 0 || !w.is_multiple_of(STREAK_MULTIPLE) || !h.is_multiple_of(STREAK_MULTIPLE)
    {
        return Err(Error::param(
            "streak network",
            format!("{w}x{h} is not a non-zero multiple of {STREAK_MULTIPLE}"),
        ));
    }
    let (w2, h2, w4, h4, w8, h8) = (w / 2, h / 2, w / 4, h / 4, w / 8, h / 8);
    ops.unshuffle(rgb, w, h, &mut m.u)?;
    // 1/2: e0 = enc0(head(u)), kept in half[0].
    let [e0, ha, hb] = &mut m.half;
    ops.conv(&l.head, &m.u, w2, h2, true, e0)?;
    chain(ops, &l.enc0, e0, ha, w2, h2)?;
    // 1/4: e1 = enc1(down1(e0)), kept in quarter[0].
    let [e1, qa, qb] = &mut m.quarter;
    ops.conv(&l.down1, e0, w2, h2, true, e1)?;
    chain(ops, &l.enc1, e1, qa, w4, h4)?;
    // 1/8: m = mid(down2(e1)).
    let [ma, mb] = &mut m.eighth;
    ops.conv(&l.down2, e1, w4, h4, true, ma)?;
    chain(ops, &l.mid, ma, mb, w8, h8)?;
    // d1 = dec1(up(lat1(m)) + e1) at 1/4.
    ops.conv(&l.lat1, ma, w8, h8, false, mb)?;
    ops.up_add(mb, l.lat1.cout(), e1, w4, h4)?;
    ops.conv(&l.dec1, e1, w4, h4, true, qb)?;
    // d0 = dec0(up(lat0(d1)) + e0) at 1/2.
    ops.conv(&l.lat0, qb, w4, h4, false, qa)?;
    ops.up_add(qa, l.lat0.cout(), e0, w2, h2)?;
    ops.conv(&l.dec0, e0, w2, h2, true, hb)?;
    // R = shuffle(out(d0)).
    ops.conv(&l.out, hb, w2, h2, false, &mut m.u)?;
    ops.shuffle(&m.u, w, h, r)
}

/// Runs `convs` (each + LeakyReLU) on `x` in place, alternating with `tmp`: the result ends in
/// `x`.
fn chain<O: NetOps>(
    ops: &mut O,
    convs: &[O::Conv],
    x: &mut O::Buf,
    tmp: &mut O::Buf,
    w: usize,
    h: usize,
) -> Result<()> {
    for c in convs {
        ops.conv(c, x, w, h, true, tmp)?;
        std::mem::swap(x, tmp);
    }
    Ok(())
}

/// Checks that `l` chains as the U-Net the forward pass runs ([`UNetLayers`]): `cin` → c0 →
/// c1 (stride 2) → c2 (stride 2) and back to `cout`.
pub(crate) fn check_unet(l: &UNetLayers, cin: usize, cout: usize) -> Result<()> {
    let (c0, c1, c2) = (l.inp.cout, l.d1.cout, l.d2.cout);
    let ok = conv_is(&l.inp, cin, c0, 1, 1)
        && conv_is(&l.e0, c0, c0, 3, 1)
        && conv_is(&l.d1, c0, c1, 3, 2)
        && conv_is(&l.e1, c1, c1, 3, 1)
        && conv_is(&l.d2, c1, c2, 3, 2)
        && conv_is(&l.e2, c2, c2, 3, 1)
        && conv_is(&l.m1, c2, c1, 1, 1)
        && conv_is(&l.u1, c1, c1, 3, 1)
        && conv_is(&l.m0, c1, c0, 1, 1)
        && conv_is(&l.u0, c0, c0, 3, 1)
        && conv_is(&l.out, c0, cout, 1, 1);
    if ok {
        Ok(())
    } else {
        Err(Error::param(
            "refinement network",
            "the layers do not chain as the U-Net (stage2.onnx)",
        ))
    }
}

/// Whether `c` is a `k`×`k` convolution of stride `stride` from `cin` to `cout` channels, its
/// weights and bias as long as that needs.
pub(crate) fn conv_is(c: &ConvLayer, cin: usize, cout: usize, k: usize, stride: usize) -> bool {
    c.cin == cin
        && c.cout == cout
        && c.k == k
        && c.stride == stride
        && c.weights.len() == cout * cin * k * k
        && c.bias.len() == cout
}

/// Feature maps of the U-Net for one size: per level the kept map (the skip) and the ones
/// to alternate with.
#[derive(Debug)]
pub(crate) struct UNetMaps<B> {
    w: usize,
    h: usize,
    full: [B; 2],
    half: [B; 3],
    quarter: [B; 2],
}

impl<B> UNetMaps<B> {
    /// Maps for a `w`×`h` input (multiples of 4) of the network `l`.
    pub(crate) fn new<O: NetOps<Buf = B>>(
        ops: &mut O,
        l: &UNetLayers<O::Conv>,
        w: usize,
        h: usize,
    ) -> Result<Self> {
        let (c0, c1, c2) = (l.inp.cout(), l.d1.cout(), l.d2.cout());
        let (n, n2, n4) = (w * h, w * h / 4, w * h / 16);
        // half also holds m0's c0 channels; quarter m1's c1.
        let (ch, cq) = (c1.max(c0), c2.max(c1));
        Ok(Self {
            w,
            h,
            full: [ops.alloc(c0 * n)?, ops.alloc(c0 * n)?],
            half: [
                ops.alloc(ch * n2)?,
                ops.alloc(ch * n2)?,
                ops.alloc(ch * n2)?,
            ],
            quarter: [ops.alloc(cq * n4)?, ops.alloc(cq * n4)?],
        })
    }

    /// Whether these maps are for `w`×`h`.
    pub(crate) fn fit(&self, w: usize, h: usize) -> bool {
        self.w == w && self.h == h
    }
}

/// The U-Net `l` on `x` (its input planes of `m.w`×`m.h`, multiples of 4) into `out`: the
/// forward pass of [`UNetLayers`], with `d2_bias` in place of d2's own bias where given (the
/// veil network's global context, [`crate::nets::VeilLayers::t_global`]).
pub(crate) fn unet_forward<O: NetOps>(
    ops: &mut O,
    l: &UNetLayers<O::Conv>,
    x: &O::Buf,
    m: &mut UNetMaps<O::Buf>,
    d2_bias: Option<&O::Buf>,
    out: &mut O::Buf,
) -> Result<()> {
    let (w, h) = (m.w, m.h);
    if w == 0 || h == 0 || !w.is_multiple_of(4) || !h.is_multiple_of(4) {
        return Err(Error::param(
            "refinement network",
            format!("{w}x{h} is not a non-zero multiple of 4"),
        ));
    }
    let (w2, h2, w4, h4) = (w / 2, h / 2, w / 4, h / 4);
    let [x0, fa] = &mut m.full;
    let [x1, ha, hb] = &mut m.half;
    let [x2, qa] = &mut m.quarter;
    ops.conv(&l.inp, x, w, h, true, fa)?;
    ops.conv(&l.e0, fa, w, h, true, x0)?;
    ops.conv(&l.d1, x0, w, h, true, ha)?;
    ops.conv(&l.e1, ha, w2, h2, true, x1)?;
    match d2_bias {
        Some(b) => ops.conv_biased(&l.d2, b, x1, w2, h2, true, qa)?,
        None => ops.conv(&l.d2, x1, w2, h2, true, qa)?,
    }
    ops.conv(&l.e2, qa, w4, h4, true, x2)?;
    // y1 = u1(up(m1(x2)) + x1) at 1/2.
    ops.conv(&l.m1, x2, w4, h4, false, qa)?;
    ops.up_add(qa, l.m1.cout(), x1, w2, h2)?;
    ops.conv(&l.u1, x1, w2, h2, true, ha)?;
    // y0 = u0(up(m0(y1)) + x0) at full size; out(y0).
    ops.conv(&l.m0, ha, w2, h2, false, hb)?;
    ops.up_add(hb, l.m0.cout(), x0, w, h)?;
    ops.conv(&l.u0, x0, w, h, true, fa)?;
    ops.conv(&l.out, fa, w, h, false, out)
}

/// One convolution's weights on the device.
#[derive(Debug)]
pub(crate) struct DeviceConv {
    shape: ConvLayer,
    w: CudaSlice<f32>,
    b: CudaSlice<f32>,
}

impl LayerShape for DeviceConv {
    fn cout(&self) -> usize {
        self.shape.cout
    }
}

/// [`NetOps`] as launches of `kernels/nets.cu` on one stream.
pub(crate) struct LaunchOps<'a> {
    pub s: &'a Arc<CudaStream>,
    pub k: &'a Kernels,
}

impl NetOps for LaunchOps<'_> {
    type Conv = DeviceConv;
    type Buf = CudaSlice<f32>;

    fn alloc(&mut self, n: usize) -> Result<CudaSlice<f32>> {
        zeros::<f32>(self.s, n)
    }

    fn conv(
        &mut self,
        c: &DeviceConv,
        x: &CudaSlice<f32>,
        w: usize,
        h: usize,
        leaky: bool,
        out: &mut CudaSlice<f32>,
    ) -> Result<()> {
        self.conv_biased(c, &c.b, x, w, h, leaky, out)
    }

    fn conv_biased(
        &mut self,
        c: &DeviceConv,
        bias: &CudaSlice<f32>,
        x: &CudaSlice<f32>,
        w: usize,
        h: usize,
        leaky: bool,
        out: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let l = &c.shape;
        let shape = ConvShape {
            cin: l.cin,
            cout: l.cout,
            k: l.k,
            stride: l.stride,
            dilation: l.dilation,
            h,
            w,
        };
        launch::conv2d(self.s, self.k, x, &c.w, bias, shape, leaky, out)
    }

    fn unshuffle(
        &mut self,
        rgb: &CudaSlice<f32>,
        w: usize,
        h: usize,
        u: &mut CudaSlice<f32>,
    ) -> Result<()> {
        launch::unshuffle_residue(self.s, self.k, rgb, w, h, u)
    }

    fn up_add(
        &mut self,
        x: &CudaSlice<f32>,
        c: usize,
        skip: &mut CudaSlice<f32>,
        w: usize,
        h: usize,
    ) -> Result<()> {
        launch::up_add(self.s, self.k, x, c, skip, w, h)
    }

    fn shuffle(
        &mut self,
        m: &CudaSlice<f32>,
        w: usize,
        h: usize,
        out: &mut CudaSlice<f32>,
    ) -> Result<()> {
        launch::shuffle(self.s, self.k, m, w, h, out)
    }
}

/// The weights of `l` on the device, checked for the shapes the forward pass chains.
pub(crate) fn upload_layers(
    s: &Arc<CudaStream>,
    l: &StreakLayers,
) -> Result<StreakLayers<DeviceConv>> {
    check_layers(l)?;
    l.try_map(|c| device_conv(s, c))
}

/// One layer's weights on the device.
pub(crate) fn device_conv(s: &Arc<CudaStream>, c: &ConvLayer) -> Result<DeviceConv> {
    let copy = |v: &[f32]| {
        s.clone_htod(v)
            .map_err(|e| launch::driver("uploading network weights", e))
    };
    Ok(DeviceConv {
        shape: ConvLayer {
            cin: c.cin,
            cout: c.cout,
            k: c.k,
            stride: c.stride,
            dilation: c.dilation,
            weights: Vec::new(),
            bias: Vec::new(),
        },
        w: copy(&c.weights)?,
        b: copy(&c.bias)?,
    })
}

/// The streak network on one device: its weights, and its maps for the last frame size.
#[derive(Debug)]
pub(crate) struct DeviceStreakNet {
    layers: StreakLayers<DeviceConv>,
    maps: Option<Maps<CudaSlice<f32>>>,
}

impl DeviceStreakNet {
    /// Uploads the weights of `l` (checked for the shapes the forward pass chains).
    pub(crate) fn upload(s: &Arc<CudaStream>, l: &StreakLayers) -> Result<Self> {
        Ok(Self {
            layers: upload_layers(s, l)?,
            maps: None,
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
        let mut ops = LaunchOps { s, k };
        let mut m = match self.maps.take() {
            Some(m) if m.fit(w, h) => m,
            _ => Maps::new(&mut ops, &self.layers, w, h)?,
        };
        let res = forward(&mut ops, &self.layers, rgb, &mut m, r);
        self.maps = Some(m);
        res
    }
}
