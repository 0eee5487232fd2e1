//! `full` mode on CUDA with the frame resident on the device: every full-resolution step runs
//! in kernels (`kernels/full.cu`, the streak network of `kernels/nets.cu`, the conversions and
//! box downsampling of `kernels/convert.cu`), and so do the networks of the working resolution:
//! the guided-filter bank (`kernels/guided_filter.cu`), the veil network (TNet, ANet, APool:
//! `veil`, `kernels/veil.cu`) and the refinement network (the U-Net of `stage2.onnx`). The
//! host keeps what is order statistics and state: the physics veil gate (medians of the
//! downsampled input), the mean luma, the A tracker and the gating of T — the CPU engine's own
//! code (`engine/cpu/full.rs` `stage1_tail`).
//!
//! ```text
//!  host                              device (one stream)
//!  frame bytes → pinned ──H2D──────▶ I = packed8_to_planar(frame)          (w×h)
//!                                    x = pad(I) to a multiple of 16;  R = streak(x)
//!                                    I_s = clamp(x − R, 0, 1)
//!                                    down_f(I), down_f(I_s) with their residues
//!                                    bank of down_f(I_s); veil network → T_net, A_net
//!  ◀─────────────────────────D2H──── the working-resolution planes, T_net, A_net (the one wait)
//!  gate, tracker → A, k;  T_lo = max(1 − k·(1 − T_net), floor)
//!  ─────────────────────────H2D────▶ T_lo, the depth −ln max(T_lo, t0)
//!                                    J₁ = (I_s − (1 − up(T_lo))·A) / max(T, t0)
//!                                    ΔJ = refine([down_f(J₁), depth])  (U-Net)
//!                                    J = clamp(J₁ + up(ΔJ)), blend, pack
//!  out frame ◀── pinned ◀────D2H──── packed frame (or J, S, T planes)
//! ```
//! Per 1080p RGBA frame 8.3 MB go up and 8.3 MB come down, against 25 MB of f32 each way when
//! only the streak network ran on the device. A `stage1.onnx` or `stage2.onnx` the native
//! runtime does not run (not these architectures) runs on the host instead
//! (`working_stage1`, `working_stage2`). The chain (`run_full`) is written once over
//! `FullOps`: the device's launches (`launch_ops.rs`), the emulated kernels in the tests
//! (`emulated::full`), so the sequence the GPU runs is checked against the CPU engine in CI —
//! bit for bit with the veil network on the host, within 1e-6 with it on the device (the
//! bank's f64 sums differ from the CPU's by an ulp). What stays for later (issue 18): the
//! networks on the tensor cores, CUDA graphs, frames in flight within one engine.

mod launch_ops;
pub(crate) mod veil;

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaSlice, CudaStream};

use self::launch_ops::{FrameIo, LaunchFull};
use self::veil::{VEIL_IN, VeilMaps, VeilNet, VeilOf, veil_forward};
pub(crate) use super::launch::{
    ApoolInputs as Apool, FinishInputs as Finish, InvertInputs as Invert,
};
use super::launch::{Kernels, LowResGeometry, driver};
use super::nets::{
    DeviceConv, LaunchOps, Maps, NetOps, UNetMaps, check_unet, device_conv, forward, unet_forward,
    upload_layers,
};
use super::{DeviceInfo, open_device};
use crate::config::{Config, PhysicsParams};
use crate::engine::cpu::full::{
    Stage1, pack_padded, refine_depth, stage1_tail, working_stage1, working_stage2,
};
use crate::error::{Error, Result};
use crate::frame::{FrameMut, FrameRef, PlanarRgb, Plane};
use crate::nets::full::work_factor;
use crate::nets::{FullNets, PAD_MULTIPLE, STREAK_MULTIPLE, StreakLayers, UNetLayers};
use crate::physics::{AtmosphereStep, RunInfo, Sink, Source, StageTimings};

/// The full-resolution operations of `full` mode around the streak network ([`NetOps`]), on
/// buffers of f32 (`kernels/full.cu` and `convert.cu`, launched or emulated). The input and
/// output frames' bytes are kept by the implementation.
pub(crate) trait FullOps {
    /// The streak network's operations, on the same buffers.
    type Net: NetOps;
    /// The streak network's operations.
    fn net(&mut self) -> &mut Self::Net;
    /// A buffer of `n` floats.
    fn alloc(&mut self, n: usize) -> Result<<Self::Net as NetOps>::Buf>;
    /// Keeps the bytes of `frame` as the input frame (its pixels, its alpha).
    fn put_frame(&mut self, frame: &FrameRef<'_>) -> Result<()>;
    /// The kept input frame as three planes of its size (packed8_to_planar_f32).
    fn unpack(&mut self, rgb: &mut <Self::Net as NetOps>::Buf) -> Result<()>;
    /// Host values into the start of `dst`.
    fn put(&mut self, v: &[f32], dst: &mut <Self::Net as NetOps>::Buf) -> Result<()>;
    /// Host values into `dst` from element `offset` on.
    fn put_at(
        &mut self,
        v: &[f32],
        dst: &mut <Self::Net as NetOps>::Buf,
        offset: usize,
    ) -> Result<()>;
    /// The top-left `lw`×`lh` of `planes` planes of `pw`×`ph` into `dst`.
    fn crop(
        &mut self,
        src: &<Self::Net as NetOps>::Buf,
        pwh: (usize, usize),
        lwh: (usize, usize),
        planes: usize,
        dst: &mut <Self::Net as NetOps>::Buf,
    ) -> Result<()>;
    /// The veil network's input at the working resolution: the three image planes of `lo`
    /// (four planes of `lw`×`lh`: R, G, B, residue) and the guided-filter bank of them under
    /// the residue (`BANK_RADII` × `BANK_EPS`, 30 planes) into `lf` (33 planes).
    fn bank(
        &mut self,
        lo: &<Self::Net as NetOps>::Buf,
        lwh: (usize, usize),
        lf: &mut <Self::Net as NetOps>::Buf,
    ) -> Result<()>;
    /// `planes` planes of w×h padded into pw×ph by repeating the edge.
    fn pad_n(
        &mut self,
        src: &<Self::Net as NetOps>::Buf,
        planes: usize,
        wh: (usize, usize),
        pwh: (usize, usize),
        dst: &mut <Self::Net as NetOps>::Buf,
    ) -> Result<()>;
    /// Mean and max of each of `nc` planes of `n` values into `z` (2·nc).
    fn pool(
        &mut self,
        y: &<Self::Net as NetOps>::Buf,
        nc: usize,
        n: usize,
        z: &mut <Self::Net as NetOps>::Buf,
    ) -> Result<()>;
    /// The ANet's head: [A, g] from `z` (nz) and the packed linears `lin` (nh hidden).
    fn anet_head(
        &mut self,
        z: &<Self::Net as NetOps>::Buf,
        nz: usize,
        lin: &<Self::Net as NetOps>::Buf,
        nh: usize,
        ag: &mut <Self::Net as NetOps>::Buf,
    ) -> Result<()>;
    /// The TNet's d2 bias with the frame's global context (`nout` values) from `z` (nz) and
    /// the packed `glob` (W, b, d2's own bias).
    fn tglobal_bias(
        &mut self,
        z: &<Self::Net as NetOps>::Buf,
        nz: usize,
        glob: &<Self::Net as NetOps>::Buf,
        nout: usize,
        bias: &mut <Self::Net as NetOps>::Buf,
    ) -> Result<()>;
    /// T from the TNet's logits `tz` (n) and the gate in `ag`, into `t` and plane `plane` of `x`.
    #[allow(clippy::too_many_arguments)]
    fn veil_t(
        &mut self,
        tz: &<Self::Net as NetOps>::Buf,
        n: usize,
        ag: &<Self::Net as NetOps>::Buf,
        t: &mut <Self::Net as NetOps>::Buf,
        x: &mut <Self::Net as NetOps>::Buf,
        plane: usize,
    ) -> Result<()>;
    /// 4×4 block means of `planes` planes of w×h.
    fn block_means4(
        &mut self,
        src: &<Self::Net as NetOps>::Buf,
        planes: usize,
        wh: (usize, usize),
        out: &mut <Self::Net as NetOps>::Buf,
    ) -> Result<()>;
    /// The APool's A (3 values) into `a`.
    fn apool_head(
        &mut self,
        p: &Apool<'_, <Self::Net as NetOps>::Buf>,
        a: &mut <Self::Net as NetOps>::Buf,
    ) -> Result<()>;
    /// The first `n` values of `src` on the host, once the work before is done.
    fn get(&mut self, src: &<Self::Net as NetOps>::Buf, n: usize) -> Result<Vec<f32>>;
    /// `dst` = `src` with every row reversed, over `planes` planes of pw×ph.
    fn mirror_rows(
        &mut self,
        src: &<Self::Net as NetOps>::Buf,
        planes: usize,
        pwh: (usize, usize),
        dst: &mut <Self::Net as NetOps>::Buf,
    ) -> Result<()>;
    /// `r` = ½(`r` + `m` with every row reversed), over `planes` planes of pw×ph.
    fn mean_mirrored(
        &mut self,
        r: &mut <Self::Net as NetOps>::Buf,
        m: &<Self::Net as NetOps>::Buf,
        planes: usize,
        pwh: (usize, usize),
    ) -> Result<()>;
    /// I_s (w×h) = clamp(x − r, 0, 1) over the top-left w×h of the pw×ph planes.
    fn rain_free(
        &mut self,
        x: &<Self::Net as NetOps>::Buf,
        r: &<Self::Net as NetOps>::Buf,
        pwh: (usize, usize),
        wh: (usize, usize),
        i_s: &mut <Self::Net as NetOps>::Buf,
    ) -> Result<()>;
    /// Box means over `s`×`s` blocks of the three planes `rgb` and of their residue (4 planes).
    fn downsample(
        &mut self,
        rgb: &<Self::Net as NetOps>::Buf,
        wh: (usize, usize),
        s: usize,
        lo: &mut <Self::Net as NetOps>::Buf,
    ) -> Result<()>;
    /// The inversion: J₁ (3 planes) and, with `st`, S and T.
    fn invert(
        &mut self,
        p: &Invert<'_, <Self::Net as NetOps>::Buf>,
        j1: &mut <Self::Net as NetOps>::Buf,
        st: Option<&mut <Self::Net as NetOps>::Buf>,
    ) -> Result<()>;
    /// J = clamp(J₁ + up(ΔJ)) blended with `rgb` by `strength`, packed like the kept input
    /// frame into the kept output frame.
    fn finish_frame(
        &mut self,
        p: &Finish<'_, <Self::Net as NetOps>::Buf>,
        strength: f32,
        rgb: &<Self::Net as NetOps>::Buf,
    ) -> Result<()>;
    /// The kept output frame into `out` (same size and format as the kept input frame).
    fn get_frame(&mut self, out: &mut FrameMut<'_>) -> Result<()>;
    /// J = clamp(J₁ + up(ΔJ)) as three planes into `out`.
    fn finish_planes(
        &mut self,
        p: &Finish<'_, <Self::Net as NetOps>::Buf>,
        out: &mut <Self::Net as NetOps>::Buf,
    ) -> Result<()>;
}

/// The buffers of one frame size.
pub(crate) struct FullMaps<B> {
    w: usize,
    h: usize,
    /// I (3 planes of w×h).
    rgb: B,
    /// I padded to pw×ph (the streak network's input).
    x: B,
    /// R (3 planes of pw×ph).
    r: B,
    /// I_s (3 planes of w×h).
    i_s: B,
    /// Downsampled I and its residue, then I_s and its residue (4 planes each).
    lo_raw: B,
    lo_s: B,
    /// T at the working resolution.
    t_lo: B,
    /// J₁ (3 planes of w×h), then its downsampling (4 planes).
    j1: B,
    j1_lo: B,
    /// ΔJ (3 planes at the working resolution).
    dj: B,
    /// The refinement network on the device: its input [J₁, depth] and output padded to a
    /// multiple of 4, and its maps (made when it runs here).
    refine: Option<(B, B, UNetMaps<B>)>,
    /// The veil network's buffers (made when it runs on the device).
    veil: Option<VeilMaps<B>>,
    /// The mirror ensemble's frame and rain layer (3 planes of pw×ph each), made when asked.
    mirror: Option<(B, B)>,
    /// S and T (2 planes of w×h) and J (3 planes) for a components sink, made when asked.
    st: Option<B>,
    out: Option<B>,
    net: Maps<B>,
    /// The host networks' input tensors.
    x_lf: Vec<f32>,
    x2: Vec<f32>,
}

impl<B> FullMaps<B> {
    fn new<O: FullOps<Net = N>, N: NetOps<Buf = B>>(
        ops: &mut O,
        layers: &StreakLayers<N::Conv>,
        w: usize,
        h: usize,
    ) -> Result<Self> {
        let (pw, ph) = padded(w, h);
        let f = work_factor(w, h);
        let (n, pn, ln) = (w * h, pw * ph, w.div_ceil(f) * h.div_ceil(f));
        let net = Maps::new(ops.net(), layers, pw, ph)?;
        Ok(Self {
            w,
            h,
            rgb: ops.alloc(3 * n)?,
            x: ops.alloc(3 * pn)?,
            r: ops.alloc(3 * pn)?,
            i_s: ops.alloc(3 * n)?,
            lo_raw: ops.alloc(4 * ln)?,
            lo_s: ops.alloc(4 * ln)?,
            t_lo: ops.alloc(ln)?,
            j1: ops.alloc(3 * n)?,
            j1_lo: ops.alloc(4 * ln)?,
            dj: ops.alloc(3 * ln)?,
            refine: None,
            veil: None,
            mirror: None,
            st: None,
            out: None,
            net,
            x_lf: Vec::new(),
            x2: Vec::new(),
        })
    }
}

/// The frame size padded to the streak network's multiple.
fn padded(w: usize, h: usize) -> (usize, usize) {
    (
        w.next_multiple_of(STREAK_MULTIPLE),
        h.next_multiple_of(STREAK_MULTIPLE),
    )
}

/// Three (or four) planes of `lw`×`lh` from a flat host copy.
fn planes(v: &[f32], count: usize, lw: usize, lh: usize) -> Vec<Plane> {
    v.chunks_exact(lw * lh)
        .take(count)
        .map(|c| Plane {
            width: lw,
            height: lh,
            data: c.to_vec(),
        })
        .collect()
}

/// Runs `full` mode on one frame through `ops`, as the CPU engine's `derain_full_into` does:
/// the same stages in the same order; the refinement network through `ops` when `refine` is
/// given, else on the host like the other working-resolution stages (`nets`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_full<O: FullOps>(
    ops: &mut O,
    layers: &StreakLayers<<O::Net as NetOps>::Conv>,
    refine: Option<&UNetLayers<<O::Net as NetOps>::Conv>>,
    veil: Option<&VeilOf<O>>,
    nets: &mut FullNets,
    maps: &mut Option<FullMaps<<O::Net as NetOps>::Buf>>,
    src: Source<'_>,
    params: &PhysicsParams,
    ensemble: bool,
    tracker: Option<&mut dyn AtmosphereStep>,
    sink: Sink<'_, '_>,
) -> Result<RunInfo> {
    let (w, h) = (src.width(), src.height());
    if w == 0 || h == 0 {
        return Err(Error::param("input", "empty image"));
    }
    // The frame the output is packed like (alpha copied from it).
    let like = match (&src, &sink) {
        (Source::Packed(f), _) => Some(*f),
        (Source::Planar(_), Sink::Frame(fs)) => Some(fs.input),
        (Source::Planar(_), Sink::Components(_)) => None,
    };
    if let (Sink::Frame(fs), Some(l)) = (&sink, like) {
        let (o, i) = (
            (fs.frame.width(), fs.frame.height(), fs.frame.format()),
            (l.width(), l.height(), l.format()),
        );
        if o != i || (l.width() as usize, l.height() as usize) != (w, h) {
            return Err(Error::UnsupportedFrame {
                width: o.0,
                height: o.1,
                format: o.2,
                reason: format!("output differs from the input {}x{} {:?}", i.0, i.1, i.2),
            });
        }
    }
    let t0 = params.min_transmission;
    let t_inv = crate::physics::noise::min_transmission_for(&src, params);
    let (pw, ph) = padded(w, h);
    let f = work_factor(w, h);
    let g = LowResGeometry {
        lw: w.div_ceil(f),
        lh: h.div_ceil(f),
        s: f,
    };
    let (n, ln) = (w * h, g.lw * g.lh);
    let m = match maps.take() {
        Some(m) if (m.w, m.h) == (w, h) => m,
        old => {
            drop(old);
            FullMaps::new(ops, layers, w, h)?
        }
    };
    let m = maps.insert(m);
    let t_start = std::time::Instant::now();

    // I on the device.
    if let Some(l) = like {
        ops.put_frame(l)?;
    }
    match src {
        Source::Packed(_) => ops.unpack(&mut m.rgb)?,
        Source::Planar(img) => {
            let v: Vec<f32> = img
                .planes
                .iter()
                .flat_map(|p| p.data.iter().copied())
                .collect();
            ops.put(&v, &mut m.rgb)?;
        }
    }
    // R, I_s, and both downsampled (the physics gate reads I, the networks I_s).
    ops.pad_n(&m.rgb, 3, (w, h), (pw, ph), &mut m.x)?;
    forward(ops.net(), layers, &m.x, &mut m.net, &mut m.r)?;
    if ensemble {
        // R = ½(streak(x) + mirror(streak(mirror(x)))), as the CPU engine.
        let (xm, rm) = match m.mirror.take() {
            Some(b) => b,
            None => (ops.alloc(3 * pw * ph)?, ops.alloc(3 * pw * ph)?),
        };
        let (xm, rm) = m.mirror.insert((xm, rm));
        ops.mirror_rows(&m.x, 3, (pw, ph), xm)?;
        forward(ops.net(), layers, xm, &mut m.net, rm)?;
        ops.mean_mirrored(&mut m.r, rm, 3, (pw, ph))?;
    }
    ops.rain_free(&m.x, &m.r, (pw, ph), (w, h), &mut m.i_s)?;
    ops.downsample(&m.rgb, (w, h), f, &mut m.lo_raw)?;
    ops.downsample(&m.i_s, (w, h), f, &mut m.lo_s)?;
    // The veil network on the device, when it runs there: the bank, [I_s, bank] padded, T
    // and A (T cropped into t_lo until the host gates it). (rpw, rph): the working
    // resolution padded for the networks of stages 1 and 2.
    let (rpw, rph) = (
        g.lw.next_multiple_of(PAD_MULTIPLE),
        g.lh.next_multiple_of(PAD_MULTIPLE),
    );
    if let Some(v) = veil {
        let vm = match m.veil.take() {
            Some(vm) if vm.fit(rpw, rph) => vm,
            old => {
                drop(old);
                VeilMaps::new(ops, &v.layers, (g.lw, g.lh), (rpw, rph))?
            }
        };
        let vm = m.veil.insert(vm);
        ops.bank(&m.lo_s, (g.lw, g.lh), &mut vm.lf)?;
        ops.pad_n(&vm.lf, VEIL_IN, (g.lw, g.lh), (rpw, rph), &mut vm.x)?;
        veil_forward(ops, v, vm)?;
        ops.crop(&vm.t, (rpw, rph), (g.lw, g.lh), 1, &mut m.t_lo)?;
    }
    let mut raw = planes(&ops.get(&m.lo_raw, 4 * ln)?, 4, g.lw, g.lh);
    let mut lo = planes(&ops.get(&m.lo_s, 4 * ln)?, 4, g.lw, g.lh);
    let t_streak = std::time::Instant::now();

    // Stage 1's end (or all of it) on the host; T_lo back to the device.
    let res_lo = lo.pop().expect("four planes");
    let img_lo: [Plane; 3] = lo
        .try_into()
        .map_err(|_| Error::param("cuda full", "three downsampled planes"))?;
    let raw_res = raw.pop().expect("four planes");
    let raw_img: [Plane; 3] = raw
        .try_into()
        .map_err(|_| Error::param("cuda full", "three downsampled planes"))?;
    let st1 = match (veil, m.veil.as_ref()) {
        (Some(v), Some(vm)) => {
            let t_net = Plane {
                width: g.lw,
                height: g.lh,
                data: ops.get(&m.t_lo, ln)?,
            };
            let a = ops.get(vm.atmosphere(&v.layers), 3)?;
            let rgb_lo = PlanarRgb::from_planes(img_lo)?;
            stage1_tail(
                (&raw_img, &raw_res),
                &rgb_lo,
                t_net,
                [a[0], a[1], a[2]],
                (w, h),
                tracker,
            )?
        }
        _ => working_stage1(
            nets,
            (&raw_img, &raw_res),
            img_lo,
            &res_lo,
            (w, h),
            tracker,
            &mut m.x_lf,
        )?,
    };
    let Stage1 {
        t_lo,
        atmosphere,
        veil: veil_gate,
        mean_transmission,
        bank_ms,
    } = st1;
    ops.put(&t_lo.data, &mut m.t_lo)?;
    let t_stage1 = std::time::Instant::now();

    // The inversion at full resolution; J₁ downsampled for stage 2.
    let comps = matches!(sink, Sink::Components(_));
    if comps && m.st.is_none() {
        m.st = Some(ops.alloc(2 * n)?);
        m.out = Some(ops.alloc(3 * n)?);
    }
    let inv = Invert {
        i_s: &m.i_s,
        w,
        h,
        t_lo: &m.t_lo,
        g,
        t0,
        t_inv,
        atmosphere,
        rain: &m.r,
        pw,
        ph,
    };
    ops.invert(&inv, &mut m.j1, if comps { m.st.as_mut() } else { None })?;
    ops.downsample(&m.j1, (w, h), f, &mut m.j1_lo)?;
    let t_pass1 = std::time::Instant::now();

    // Stage 2: ΔJ from [down(J₁), depth], on the device or on the host.
    match refine {
        Some(rl) => {
            let (x2d, dj_pad, um) = match m.refine.take() {
                Some(r) if r.2.fit(rpw, rph) => r,
                old => {
                    drop(old);
                    (
                        ops.alloc(4 * rpw * rph)?,
                        ops.alloc(3 * rpw * rph)?,
                        UNetMaps::new(ops.net(), rl, rpw, rph)?,
                    )
                }
            };
            let (x2d, dj_pad, um) = m.refine.insert((x2d, dj_pad, um));
            ops.pad_n(&m.j1_lo, 3, (g.lw, g.lh), (rpw, rph), x2d)?;
            pack_padded([&refine_depth(&t_lo, t0)], rph, rpw, &mut m.x2);
            ops.put_at(&m.x2, x2d, 3 * rpw * rph)?;
            unet_forward(ops.net(), rl, x2d, um, None, dj_pad)?;
            ops.crop(dj_pad, (rpw, rph), (g.lw, g.lh), 3, &mut m.dj)?;
        }
        None => {
            let j1_lo = planes(&ops.get(&m.j1_lo, 3 * ln)?, 3, g.lw, g.lh);
            let dj = working_stage2(nets, &j1_lo, &t_lo, t0, &mut m.x2)?;
            let dj: Vec<f32> = dj.iter().flat_map(|p| p.data.iter().copied()).collect();
            ops.put(&dj, &mut m.dj)?;
        }
    }
    let t_stage2 = std::time::Instant::now();
    let fin = Finish {
        j1: &m.j1,
        dj: &m.dj,
        g,
        w,
        h,
    };
    match sink {
        Sink::Frame(fs) => {
            ops.finish_frame(&fin, fs.strength, &m.rgb)?;
            ops.get_frame(fs.frame)?;
        }
        Sink::Components(c) => {
            let (Some(st), Some(out)) = (m.st.as_ref(), m.out.as_mut()) else {
                return Err(Error::param("cuda full", "component buffers"));
            };
            ops.finish_planes(&fin, out)?;
            let j = planes(&ops.get(out, 3 * n)?, 3, w, h);
            let st = planes(&ops.get(st, 2 * n)?, 2, w, h);
            let [s, t]: [Plane; 2] = st
                .try_into()
                .map_err(|_| Error::param("cuda full", "S and T planes"))?;
            let [r, gr, b]: [Plane; 3] = j
                .try_into()
                .map_err(|_| Error::param("cuda full", "three planes of J"))?;
            c.background = PlanarRgb::from_planes([r, gr, b])?;
            c.streaks = s;
            c.transmission = t;
            c.atmosphere = atmosphere;
        }
    }
    let t_end = std::time::Instant::now();
    let ms = |a: std::time::Instant, b: std::time::Instant| (b - a).as_secs_f64() * 1e3;
    Ok(RunInfo {
        atmosphere,
        veil_gate: Some(veil_gate),
        mean_transmission,
        veil: veil_gate,
        timings: StageTimings {
            low_res_ms: bank_ms,
            decomposition_ms: 0.0,
            inversion_ms: ms(t_stage1, t_pass1) + ms(t_stage2, t_end),
            networks_ms: ms(t_streak, t_stage1) - bank_ms + ms(t_pass1, t_stage2),
            streak_ms: ms(t_start, t_streak),
        },
    })
}

/// `full` mode on one GPU (see the module doc).
pub struct CudaFullEngine {
    info: DeviceInfo,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    kernels: Kernels,
    layers: StreakLayers<DeviceConv>,
    /// The refinement network on the device, when the native runtime runs it.
    refine: Option<UNetLayers<DeviceConv>>,
    /// The veil network on the device, when the native runtime runs it.
    veil: Option<VeilNet<DeviceConv, CudaSlice<f32>>>,
    nets: FullNets,
    maps: Option<FullMaps<CudaSlice<f32>>>,
    io: FrameIo,
}

impl std::fmt::Debug for CudaFullEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaFullEngine")
            .field("device", &self.info)
            .finish_non_exhaustive()
    }
}

impl CudaFullEngine {
    /// Opens device `config.devices[0]` (0 if empty), compiles the kernels and uploads the
    /// streak network of `config.model_for("cuda")` (`quality` unless a model is named).
    /// Errors as [`super::CudaEngine::new`], and a model whose streak network is not the
    /// architecture the device runs.
    pub fn new(config: &Config) -> Result<Self> {
        let ordinal = config.devices.first().copied().unwrap_or(0);
        let (ctx, info) = open_device(ordinal)?;
        let kernels = Kernels::compile(&ctx)?;
        let stream = ctx
            .new_stream()
            .map_err(|e| driver("creating a stream", e))?;
        let nets = FullNets::load(&config.model_for("cuda"))?;
        let host_layers = nets.streak.streak_layers().ok_or_else(|| {
            Error::Unavailable(
                "this streak.onnx is not an architecture the CUDA engine runs (only the \
                 native runtime's streak network); use backend=cpu"
                    .into(),
            )
        })?;
        let layers = upload_layers(&stream, &host_layers)?;
        let refine = match nets.stage2.refine_layers() {
            Some(l) => {
                check_unet(&l, 4, 3)?;
                Some(l.try_map(|c| device_conv(&stream, c))?)
            }
            None => None,
        };
        let veil = match nets.stage1.veil_layers() {
            Some(l) => {
                let v = VeilNet::packed(l)?;
                let up = |v: &[f32]| {
                    stream
                        .clone_htod(v)
                        .map_err(|e| driver("uploading network weights", e))
                };
                Some(VeilNet {
                    layers: v.layers.try_map(|c| device_conv(&stream, c))?,
                    lin: up(&v.lin)?,
                    keep: v.keep.as_deref().map(up).transpose()?,
                    global: v.global.as_deref().map(up).transpose()?,
                })
            }
            None => None,
        };
        let place = |on: bool| if on { "GPU" } else { "host" };
        log::info!(
            "CUDA full mode on device {ordinal}: {} (full-resolution steps on the GPU; bank and \
             veil network on the {}, refinement network on the {}; gate and tracker on the host)",
            info.name,
            place(veil.is_some()),
            place(refine.is_some())
        );
        Ok(Self {
            info,
            ctx,
            stream,
            kernels,
            layers,
            refine,
            veil,
            nets,
            maps: None,
            io: FrameIo::default(),
        })
    }

    /// The device in use.
    pub fn device(&self) -> &DeviceInfo {
        &self.info
    }

    /// Runs `full` mode on one frame.
    pub fn derain_into(
        &mut self,
        input: Source<'_>,
        config: &Config,
        tracker: &mut dyn AtmosphereStep,
        out: Sink<'_, '_>,
    ) -> Result<RunInfo> {
        let mut ops = LaunchFull {
            net: LaunchOps {
                s: &self.stream,
                k: &self.kernels,
            },
            ctx: &self.ctx,
            io: &mut self.io,
        };
        run_full(
            &mut ops,
            &self.layers,
            self.refine.as_ref(),
            self.veil.as_ref(),
            &mut self.nets,
            &mut self.maps,
            input,
            &config.physics,
            config.ensemble,
            Some(tracker),
            out,
        )
    }
}
