//! The veil network (`stage1.onnx`: TNet, ANet, APool, the TNet's global context) on the
//! device, written once over [`FullOps`] like the rest of the chain: the convolutions are
//! `kernels/nets.cu`'s, the pooling, the heads, the global context's bias and T are
//! `kernels/veil.cu`'s, with the CPU runtime's arithmetic (the ANet first, since the TNet's
//! coarsest level may depend on its pooled features). Its input is the 33-plane [I_s, bank] of
//! the working resolution padded to a multiple of 4 (one more plane holds T for the APool);
//! its outputs T (padded) and A stay on the device until the host's end of stage 1
//! (`cpu::full::stage1_tail`) reads them.

use super::{Apool, FullOps};
use crate::engine::cuda::nets::{LayerShape, NetOps, UNetMaps, check_unet, conv_is, unet_forward};
use crate::error::{Error, Result};
use crate::nets::{BANK_CHANNELS, ConvLayer, LinearLayer, VeilLayers};

/// Channels of the veil network's input: I_s and the bank.
pub(crate) const VEIL_IN: usize = 3 + BANK_CHANNELS;

/// Checks that `l` is the architecture [`veil_forward`] runs.
fn check_veil(l: &VeilLayers) -> Result<()> {
    let conv = |c: &ConvLayer, i: usize, o: usize, k: usize, stride: usize| {
        conv_is(c, i, o, k, stride) && c.dilation == 1
    };
    let lin = |x: &LinearLayer, i: usize, o: usize| {
        x.cin == i && x.cout == o && x.weights.len() == i * o && x.bias.len() == o
    };
    let [a0, a1, a2] = &l.a_body;
    let ca = a2.cout;
    let nh = l.a_hidden.cout;
    let mut ok = conv(a0, VEIL_IN, a0.cout, 3, 2)
        && conv(a1, a0.cout, a1.cout, 3, 2)
        && conv(a2, a1.cout, ca, 3, 2)
        && nh <= 64
        && lin(&l.a_hidden, 2 * ca, nh)
        && lin(&l.a_out, nh, 3)
        && lin(&l.a_gate, 2 * ca, 1);
    if let Some(g) = &l.t_global {
        ok &= lin(g, 2 * ca, l.t.d2.cout);
    }
    if let Some(p) = &l.pool {
        let [p0, p1, p2] = &p.body;
        ok &= conv(p0, VEIL_IN + 1, p0.cout, 3, 2)
            && conv(p1, p0.cout, p1.cout, 3, 2)
            && conv(p2, p1.cout, p2.cout, 3, 1)
            && conv(&p.head, p2.cout, 4, 1, 1)
            && lin(&p.keep, 2 * p2.cout, 1);
    }
    if !ok {
        return Err(Error::param(
            "veil network",
            "the layers are not the architecture of stage1.onnx the device runs",
        ));
    }
    check_unet(&l.t, VEIL_IN, 1)
}

/// The ANet head's linear layers packed as `anet_head_f32` reads them (W_h, b_h, W_o, b_o,
/// W_g, b_g), and the APool's keep layer (W, b).
fn packed_heads<C>(l: &VeilLayers<C>) -> (Vec<f32>, Option<Vec<f32>>) {
    let mut lin = Vec::new();
    for x in [&l.a_hidden, &l.a_out, &l.a_gate] {
        lin.extend_from_slice(&x.weights);
        lin.extend_from_slice(&x.bias);
    }
    let keep = l.pool.as_ref().map(|p| {
        let mut v = p.keep.weights.clone();
        v.extend_from_slice(&p.keep.bias);
        v
    });
    (lin, keep)
}

/// The TNet's global context packed as `tglobal_bias_f32` reads it (W, b, then d2's own bias),
/// in networks that have one.
fn packed_global(l: &VeilLayers) -> Option<Vec<f32>> {
    l.t_global.as_ref().map(|g| {
        let mut v = g.weights.clone();
        v.extend_from_slice(&g.bias);
        v.extend_from_slice(&l.t.d2.bias);
        v
    })
}

/// The veil network on a device: its layers and its packed heads.
pub(crate) struct VeilNet<C, B> {
    pub layers: VeilLayers<C>,
    pub lin: B,
    pub keep: Option<B>,
    /// [`packed_global`].
    pub global: Option<B>,
}

impl VeilNet<ConvLayer, Vec<f32>> {
    /// `l` checked for the architecture [`veil_forward`] runs, with its heads and global
    /// context packed, on the host (a device maps the layers and uploads the packs).
    pub(crate) fn packed(l: VeilLayers) -> Result<Self> {
        check_veil(&l)?;
        let (lin, keep) = packed_heads(&l);
        Ok(Self {
            global: packed_global(&l),
            layers: l,
            lin,
            keep,
        })
    }
}

/// The veil network on the buffers of `O`.
pub(crate) type VeilOf<O> =
    VeilNet<<<O as FullOps>::Net as NetOps>::Conv, <<O as FullOps>::Net as NetOps>::Buf>;

/// The veil network's buffers for one padded working size `w`×`h` (multiples of 4).
pub(crate) struct VeilMaps<B> {
    w: usize,
    h: usize,
    /// [I_s, bank] at lw×lh (33 planes), then padded with T as the 34th plane.
    pub lf: B,
    pub x: B,
    unet: UNetMaps<B>,
    tz: B,
    a: [B; 3],
    z: B,
    ag: B,
    /// d2's bias with the global context (the TNet's coarsest channels).
    t_bias: B,
    /// T (w×h).
    pub t: B,
    p: [B; 4],
    pz: B,
    t4: B,
    i4: B,
    /// The APool's A (3 values).
    a_pool: B,
}

/// (w, h) after a 3×3 stride-2 convolution.
fn half(w: usize, h: usize) -> (usize, usize) {
    (w.div_ceil(2), h.div_ceil(2))
}

impl<B> VeilMaps<B> {
    /// Buffers for a `w`×`h` padded input (multiples of 4) from `lw`×`lh` planes.
    pub(crate) fn new<O: FullOps<Net = N>, N: NetOps<Buf = B>>(
        ops: &mut O,
        l: &VeilLayers<N::Conv>,
        (lw, lh): (usize, usize),
        (w, h): (usize, usize),
    ) -> Result<Self> {
        let n = w * h;
        let [a0, a1, a2] = &l.a_body;
        let (w2, h2) = half(w, h);
        let (w4, h4) = half(w2, h2);
        let (w8, h8) = half(w4, h4);
        let unet = UNetMaps::new(ops.net(), &l.t, w, h)?;
        let pc = match &l.pool {
            Some(p) => [p.body[0].cout(), p.body[1].cout(), p.body[2].cout(), 4],
            None => [1, 1, 1, 1],
        };
        Ok(Self {
            w,
            h,
            lf: ops.alloc(VEIL_IN * lw * lh)?,
            x: ops.alloc((VEIL_IN + 1) * n)?,
            unet,
            tz: ops.alloc(n)?,
            a: [
                ops.alloc(a0.cout() * w2 * h2)?,
                ops.alloc(a1.cout() * w4 * h4)?,
                ops.alloc(a2.cout() * w8 * h8)?,
            ],
            z: ops.alloc(2 * a2.cout())?,
            ag: ops.alloc(4)?,
            t_bias: ops.alloc(l.t.d2.cout())?,
            t: ops.alloc(n)?,
            p: [
                ops.alloc(pc[0] * w2 * h2)?,
                ops.alloc(pc[1] * w4 * h4)?,
                ops.alloc(pc[2] * w4 * h4)?,
                ops.alloc(pc[3] * w4 * h4)?,
            ],
            pz: ops.alloc(2 * pc[2])?,
            t4: ops.alloc(w4 * h4)?,
            i4: ops.alloc(3 * w4 * h4)?,
            a_pool: ops.alloc(3)?,
        })
    }

    /// Whether these buffers are for a `w`×`h` padded input.
    pub(crate) fn fit(&self, w: usize, h: usize) -> bool {
        (self.w, self.h) == (w, h)
    }

    /// Where A ends: the APool's output when the network has one, else the ANet's.
    pub(crate) fn atmosphere<C>(&self, l: &VeilLayers<C>) -> &B {
        if l.pool.is_some() {
            &self.a_pool
        } else {
            &self.ag
        }
    }
}

/// The veil network on `m.x` (its first 33 planes written, `m.w`×`m.h`): T into `m.t` (and the
/// 34th plane of `m.x`), A into [`VeilMaps::atmosphere`].
pub(crate) fn veil_forward<O: FullOps>(
    ops: &mut O,
    v: &VeilOf<O>,
    m: &mut VeilMaps<<O::Net as NetOps>::Buf>,
) -> Result<()> {
    let (w, h) = (m.w, m.h);
    let l = &v.layers;
    // The ANet: three stride-2 convolutions, pooled, its head → [A, g].
    let [a0, a1, a2] = &l.a_body;
    let [y0, y1, y2] = &mut m.a;
    let (w2, h2) = half(w, h);
    let (w4, h4) = half(w2, h2);
    let (w8, h8) = half(w4, h4);
    ops.net().conv(a0, &m.x, w, h, true, y0)?;
    ops.net().conv(a1, y0, w2, h2, true, y1)?;
    ops.net().conv(a2, y1, w4, h4, true, y2)?;
    ops.pool(y2, a2.cout(), w8 * h8, &mut m.z)?;
    ops.anet_head(&m.z, 2 * a2.cout(), &v.lin, l.a_hidden.cout, &mut m.ag)?;
    // T's logits: the U-Net on the first 33 planes, its d2 biased by the pooled features
    // where the network has a global context.
    let d2_bias = match &v.global {
        Some(g) => {
            ops.tglobal_bias(&m.z, 2 * a2.cout(), g, l.t.d2.cout(), &mut m.t_bias)?;
            Some(&m.t_bias)
        }
        None => None,
    };
    unet_forward(ops.net(), &l.t, &m.x, &mut m.unet, d2_bias, &mut m.tz)?;
    ops.veil_t(&m.tz, w * h, &m.ag, &mut m.t, &mut m.x, VEIL_IN)?;
    // The APool on [x, T]: its body, pooled features, head, block means, softmax pooling.
    if let (Some(p), Some(keep)) = (&l.pool, &v.keep) {
        let [b0, b1, b2] = &p.body;
        let [f0, f1, f2, y] = &mut m.p;
        ops.net().conv(b0, &m.x, w, h, true, f0)?;
        ops.net().conv(b1, f0, w2, h2, true, f1)?;
        ops.net().conv(b2, f1, w4, h4, true, f2)?;
        ops.net().conv(&p.head, f2, w4, h4, false, y)?;
        let n4 = (w / 4) * (h / 4);
        ops.pool(f2, b2.cout(), n4, &mut m.pz)?;
        ops.block_means4(&m.t, 1, (w, h), &mut m.t4)?;
        ops.block_means4(&m.x, 3, (w, h), &mut m.i4)?;
        let args = Apool {
            z: &m.pz,
            nz: 2 * b2.cout(),
            keep,
            y,
            t4: &m.t4,
            i4: &m.i4,
            n: n4,
            ag: &m.ag,
        };
        ops.apool_head(&args, &mut m.a_pool)?;
    }
    Ok(())
}
