//! `full` mode with the frame on the device (`engine/cuda/full.rs` [`run_full`], the very
//! chain the GPU runs) over the emulated kernels of `kernels/full.cu`, `convert.cu` and
//! `nets.cu`, against the CPU engine: bit for bit, for planar input into components (J, S, T,
//! A) and for packed frames of every layout into packed frames (blended, alpha kept), over
//! several frames (the tracker's state, the buffers kept between frames) and a size change.

use super::nets::EmuOps;
use super::*;
use crate::config::{Config, Mode, ModelChoice};
use crate::engine::cpu::CpuEngine;
use crate::engine::cuda::full::veil::{VEIL_IN, VeilMaps, VeilNet, veil_forward};
use crate::engine::cuda::full::{Apool, Finish, FullMaps, FullOps, Invert, run_full};
use crate::engine::cuda::launch::grid_n;
use crate::engine::cuda::nets::check_unet;
use crate::error::Result;
use crate::nets::full::{BANK_EPS as FULL_BANK_EPS, BANK_RADII as FULL_BANK_RADII};
use crate::nets::{FullNets, ModelSize};
use crate::physics::{AtmosphereTracker, Components};

/// [`FullOps`] on host buffers through the emulated kernels: what `LaunchFull` launches.
struct EmuFull<'a> {
    net: EmuOps<'a>,
    /// The kept input frame (tightly packed rows), its size and format.
    input: Vec<u8>,
    like: Option<(usize, usize, PixelFormat)>,
    output: Vec<u8>,
}

impl<'a> EmuFull<'a> {
    fn new(e: &'a Emu) -> Self {
        Self {
            net: EmuOps { e },
            input: Vec::new(),
            like: None,
            output: Vec::new(),
        }
    }

    fn layout(&self) -> (usize, usize, PixelFormat, i32, i32, i32) {
        let (w, h, f) = self.like.expect("an input frame was kept");
        let [r, _, b] = f.rgb_offsets();
        (w, h, f, f.bytes_per_pixel() as i32, r as i32, b as i32)
    }
}

impl<'a> FullOps for EmuFull<'a> {
    type Net = EmuOps<'a>;

    fn net(&mut self) -> &mut EmuOps<'a> {
        &mut self.net
    }

    fn alloc(&mut self, n: usize) -> Result<Vec<f32>> {
        // NaN: a buffer read before it is written shows.
        Ok(vec![f32::NAN; n.max(1)])
    }

    fn put_frame(&mut self, frame: &FrameRef<'_>) -> Result<()> {
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        self.input.clear();
        for y in 0..h {
            self.input.extend_from_slice(frame.row(y));
        }
        self.like = Some((w, h, frame.format()));
        Ok(())
    }

    fn unpack(&mut self, rgb: &mut Vec<f32>) -> Result<()> {
        let (w, h, _, bpp, ro, bo) = self.layout();
        assert!(rgb.len() >= 3 * w * h);
        launch!(self.net.e, "packed8_to_planar_f32", grid_2d(w, h), false;
            self.input.as_ptr() => *const u8, w as i32 * bpp => i32, w as i32 => i32,
            h as i32 => i32, bpp => i32, ro => i32, bo => i32, rgb.as_mut_ptr() => *mut f32);
        Ok(())
    }

    fn put(&mut self, v: &[f32], dst: &mut Vec<f32>) -> Result<()> {
        dst[..v.len()].copy_from_slice(v);
        Ok(())
    }

    fn put_at(&mut self, v: &[f32], dst: &mut Vec<f32>, offset: usize) -> Result<()> {
        dst[offset..offset + v.len()].copy_from_slice(v);
        Ok(())
    }

    fn crop(
        &mut self,
        src: &Vec<f32>,
        (pw, ph): (usize, usize),
        (lw, lh): (usize, usize),
        planes: usize,
        dst: &mut Vec<f32>,
    ) -> Result<()> {
        assert!(src.len() >= planes * pw * ph && dst.len() >= planes * lw * lh);
        launch!(self.net.e, "crop_planes_f32", grid_2d(lw, lh), false;
            src.as_ptr() => *const f32, pw as i32 => i32, ph as i32 => i32, lw as i32 => i32,
            lh as i32 => i32, planes as i32 => i32, dst.as_mut_ptr() => *mut f32);
        Ok(())
    }

    fn bank(&mut self, lo: &Vec<f32>, (lw, lh): (usize, usize), lf: &mut Vec<f32>) -> Result<()> {
        let ln = lw * lh;
        assert!(lo.len() >= 4 * ln && lf.len() >= VEIL_IN * ln);
        lf[..3 * ln].copy_from_slice(&lo[..3 * ln]);
        let per = 3 * FULL_BANK_EPS.len();
        for (i, &r) in FULL_BANK_RADII.iter().enumerate() {
            let q = guided(
                self.net.e,
                &lo[3 * ln..4 * ln],
                &lo[..3 * ln],
                3,
                &FULL_BANK_EPS,
                (lw, lh, r),
                true,
            );
            lf[(3 + per * i) * ln..(3 + per * (i + 1)) * ln].copy_from_slice(&q);
        }
        Ok(())
    }

    fn pad_n(
        &mut self,
        src: &Vec<f32>,
        planes: usize,
        (w, h): (usize, usize),
        (pw, ph): (usize, usize),
        dst: &mut Vec<f32>,
    ) -> Result<()> {
        assert!(src.len() >= planes * w * h && dst.len() >= planes * pw * ph);
        launch!(self.net.e, "pad_n_f32", grid_2d(pw, ph), false;
            src.as_ptr() => *const f32, planes as i32 => i32, w as i32 => i32, h as i32 => i32,
            pw as i32 => i32, ph as i32 => i32, dst.as_mut_ptr() => *mut f32);
        Ok(())
    }

    fn pool(&mut self, y: &Vec<f32>, nc: usize, n: usize, z: &mut Vec<f32>) -> Result<()> {
        assert!(y.len() >= nc * n && z.len() >= 2 * nc);
        launch!(self.net.e, "pool_mean_max_f32", grid_n(nc), false;
            y.as_ptr() => *const f32, nc as i32 => i32, n as i32 => i32,
            z.as_mut_ptr() => *mut f32);
        Ok(())
    }

    fn anet_head(
        &mut self,
        z: &Vec<f32>,
        nz: usize,
        lin: &Vec<f32>,
        nh: usize,
        ag: &mut Vec<f32>,
    ) -> Result<()> {
        let need = nh * nz + 4 * nh + 4 + nz;
        assert!(z.len() >= nz && lin.len() >= need && ag.len() >= 4);
        launch!(self.net.e, "anet_head_f32", grid_n(1), false;
            z.as_ptr() => *const f32, nz as i32 => i32, lin.as_ptr() => *const f32,
            nh as i32 => i32, ag.as_mut_ptr() => *mut f32);
        Ok(())
    }

    fn tglobal_bias(
        &mut self,
        z: &Vec<f32>,
        nz: usize,
        glob: &Vec<f32>,
        nout: usize,
        bias: &mut Vec<f32>,
    ) -> Result<()> {
        assert!(z.len() >= nz && glob.len() >= nout * nz + 2 * nout && bias.len() >= nout);
        launch!(self.net.e, "tglobal_bias_f32", grid_n(nout), false;
            z.as_ptr() => *const f32, nz as i32 => i32, glob.as_ptr() => *const f32,
            nout as i32 => i32, bias.as_mut_ptr() => *mut f32);
        Ok(())
    }

    fn veil_t(
        &mut self,
        tz: &Vec<f32>,
        n: usize,
        ag: &Vec<f32>,
        t: &mut Vec<f32>,
        x: &mut Vec<f32>,
        plane: usize,
    ) -> Result<()> {
        assert!(tz.len() >= n && t.len() >= n && x.len() >= (plane + 1) * n);
        launch!(self.net.e, "veil_t_f32", grid_n(n), false;
            tz.as_ptr() => *const f32, n as i32 => i32, ag.as_ptr() => *const f32,
            t.as_mut_ptr() => *mut f32, x.as_mut_ptr() => *mut f32, plane as i32 => i32);
        Ok(())
    }

    fn block_means4(
        &mut self,
        src: &Vec<f32>,
        planes: usize,
        (w, h): (usize, usize),
        out: &mut Vec<f32>,
    ) -> Result<()> {
        assert!(src.len() >= planes * w * h && out.len() >= planes * (w / 4) * (h / 4));
        launch!(self.net.e, "block_means4_f32", grid_2d(w / 4, h / 4), false;
            src.as_ptr() => *const f32, planes as i32 => i32, w as i32 => i32, h as i32 => i32,
            out.as_mut_ptr() => *mut f32);
        Ok(())
    }

    fn apool_head(&mut self, p: &Apool<'_, Vec<f32>>, a: &mut Vec<f32>) -> Result<()> {
        assert!(p.y.len() >= 4 * p.n && p.i4.len() >= 3 * p.n && a.len() >= 3);
        launch!(self.net.e, "apool_head_f32", grid_n(1), false;
            p.z.as_ptr() => *const f32, p.nz as i32 => i32, p.keep.as_ptr() => *const f32,
            p.y.as_ptr() => *const f32, p.t4.as_ptr() => *const f32, p.i4.as_ptr() => *const f32,
            p.n as i32 => i32, p.ag.as_ptr() => *const f32, a.as_mut_ptr() => *mut f32);
        Ok(())
    }

    fn get(&mut self, src: &Vec<f32>, n: usize) -> Result<Vec<f32>> {
        Ok(src[..n].to_vec())
    }

    fn mirror_rows(
        &mut self,
        src: &Vec<f32>,
        planes: usize,
        (pw, ph): (usize, usize),
        dst: &mut Vec<f32>,
    ) -> Result<()> {
        assert!(src.len() >= planes * pw * ph && dst.len() >= planes * pw * ph);
        launch!(self.net.e, "mirror_rows_f32", grid_2d(pw, ph), false;
            src.as_ptr() => *const f32, planes as i32 => i32, pw as i32 => i32,
            ph as i32 => i32, dst.as_mut_ptr() => *mut f32);
        Ok(())
    }

    fn mean_mirrored(
        &mut self,
        r: &mut Vec<f32>,
        m: &Vec<f32>,
        planes: usize,
        (pw, ph): (usize, usize),
    ) -> Result<()> {
        assert!(r.len() >= planes * pw * ph && m.len() >= planes * pw * ph);
        launch!(self.net.e, "mean_mirrored_f32", grid_2d(pw, ph), false;
            r.as_mut_ptr() => *mut f32, m.as_ptr() => *const f32, planes as i32 => i32,
            pw as i32 => i32, ph as i32 => i32);
        Ok(())
    }

    fn rain_free(
        &mut self,
        x: &Vec<f32>,
        r: &Vec<f32>,
        (pw, ph): (usize, usize),
        (w, h): (usize, usize),
        i_s: &mut Vec<f32>,
    ) -> Result<()> {
        assert!(x.len() >= 3 * pw * ph && r.len() >= 3 * pw * ph && i_s.len() >= 3 * w * h);
        launch!(self.net.e, "rain_free_f32", grid_2d(w, h), false;
            x.as_ptr() => *const f32, r.as_ptr() => *const f32, pw as i32 => i32,
            ph as i32 => i32, w as i32 => i32, h as i32 => i32, i_s.as_mut_ptr() => *mut f32);
        Ok(())
    }

    fn downsample(
        &mut self,
        rgb: &Vec<f32>,
        (w, h): (usize, usize),
        s: usize,
        lo: &mut Vec<f32>,
    ) -> Result<()> {
        let d = downsample(self.net.e, &rgb[..3 * w * h], w, h, s);
        lo[..d.len()].copy_from_slice(&d);
        Ok(())
    }

    fn invert(
        &mut self,
        p: &Invert<'_, Vec<f32>>,
        j1: &mut Vec<f32>,
        st: Option<&mut Vec<f32>>,
    ) -> Result<()> {
        let n = p.w * p.h;
        assert!(p.i_s.len() >= 3 * n && p.t_lo.len() >= p.g.lw * p.g.lh && j1.len() >= 3 * n);
        assert!(p.rain.len() >= 3 * p.pw * p.ph);
        let want_st = st.is_some();
        let mut none = Vec::new();
        let st = match st {
            Some(v) => {
                assert!(v.len() >= 2 * n);
                v
            }
            None => &mut none,
        };
        let [ar, ag, ab] = p.atmosphere;
        launch!(self.net.e, "full_invert_f32", grid_2d(p.w, p.h), false;
            p.i_s.as_ptr() => *const f32, p.w as i32 => i32, p.h as i32 => i32,
            p.t_lo.as_ptr() => *const f32, p.g.lw as i32 => i32, p.g.lh as i32 => i32,
            p.g.s as i32 => i32, p.t0 => f32, p.t_inv => f32, ar => f32, ag => f32, ab => f32,
            p.rain.as_ptr() => *const f32, p.pw as i32 => i32, p.ph as i32 => i32,
            want_st as i32 => i32, j1.as_mut_ptr() => *mut f32, st.as_mut_ptr() => *mut f32);
        Ok(())
    }

    fn finish_frame(
        &mut self,
        p: &Finish<'_, Vec<f32>>,
        strength: f32,
        rgb: &Vec<f32>,
    ) -> Result<()> {
        let (w, h, format, bpp, ro, bo) = self.layout();
        assert_eq!((w, h), (p.w, p.h));
        assert!(rgb.len() >= 3 * w * h && p.j1.len() >= 3 * w * h);
        self.output = vec![0u8; self.input.len()];
        let copy_alpha = format.alpha_offset().is_some() as i32;
        launch!(self.net.e, "full_finish_packed8", grid_2d(w, h), false;
            p.j1.as_ptr() => *const f32, p.dj.as_ptr() => *const f32, p.g.lw as i32 => i32,
            p.g.lh as i32 => i32, p.g.s as i32 => i32, w as i32 => i32, h as i32 => i32,
            strength => f32, rgb.as_ptr() => *const f32, self.input.as_ptr() => *const u8,
            copy_alpha => i32, self.output.as_mut_ptr() => *mut u8, w as i32 * bpp => i32,
            bpp => i32, ro => i32, bo => i32);
        Ok(())
    }

    fn get_frame(&mut self, out: &mut FrameMut<'_>) -> Result<()> {
        let (w, _, _, bpp, ..) = self.layout();
        let row = w * bpp as usize;
        for (y, s) in self.output.chunks(row).enumerate() {
            out.row_mut(y)[..row].copy_from_slice(s);
        }
        Ok(())
    }

    fn finish_planes(&mut self, p: &Finish<'_, Vec<f32>>, out: &mut Vec<f32>) -> Result<()> {
        assert!(out.len() >= 3 * p.w * p.h && p.dj.len() >= 3 * p.g.lw * p.g.lh);
        launch!(self.net.e, "full_finish_planar_f32", grid_2d(p.w, p.h), false;
            p.j1.as_ptr() => *const f32, p.dj.as_ptr() => *const f32, p.g.lw as i32 => i32,
            p.g.lh as i32 => i32, p.g.s as i32 => i32, p.w as i32 => i32, p.h as i32 => i32,
            out.as_mut_ptr() => *mut f32);
        Ok(())
    }
}

/// The device chain of `full` mode on the emulated kernels, with its own networks and state.
struct EmulatedFull<'a> {
    ops: EmuFull<'a>,
    layers: crate::nets::StreakLayers,
    /// The refinement network through the emulated kernels (else on the host).
    refine: Option<crate::nets::UNetLayers>,
    /// The veil network through the emulated kernels (else on the host).
    veil: Option<VeilNet<crate::nets::ConvLayer, Vec<f32>>>,
    nets: FullNets,
    maps: Option<FullMaps<Vec<f32>>>,
}

impl<'a> EmulatedFull<'a> {
    fn new(e: &'a Emu, size: ModelSize, refine_on_device: bool, veil_on_device: bool) -> Self {
        let nets = FullNets::embedded(size).unwrap();
        let layers = nets.streak.streak_layers().expect("native architecture");
        let refine = refine_on_device.then(|| {
            let l = nets.stage2.refine_layers().expect("native architecture");
            check_unet(&l, 4, 3).expect("the U-Net");
            l
        });
        let veil = veil_on_device.then(|| {
            let l = nets.stage1.veil_layers().expect("native architecture");
            VeilNet::packed(l).expect("the veil architecture")
        });
        Self {
            ops: EmuFull::new(e),
            layers,
            refine,
            veil,
            nets,
            maps: None,
        }
    }

    fn run(
        &mut self,
        src: Source<'_>,
        config: &Config,
        tracker: &mut AtmosphereTracker,
        sink: Sink<'_, '_>,
    ) -> crate::physics::RunInfo {
        run_full(
            &mut self.ops,
            &self.layers,
            self.refine.as_ref(),
            self.veil.as_ref(),
            &mut self.nets,
            &mut self.maps,
            src,
            &config.physics,
            config.ensemble,
            Some(tracker),
            sink,
        )
        .expect("the device chain runs")
    }
}

fn full_config(size: ModelSize) -> Config {
    Config {
        mode: Mode::Full,
        model: Some(ModelChoice::Embedded(size)),
        ..Config::default()
    }
}

/// The CPU engine and the emulated device chain side by side on the same frames, each with
/// its own tracker.
struct SideBySide<'a> {
    config: Config,
    cpu: CpuEngine,
    dev: EmulatedFull<'a>,
    trackers: [AtmosphereTracker; 2],
}

impl<'a> SideBySide<'a> {
    fn new(e: &'a Emu, config: Config, refine_on_device: bool, veil_on_device: bool) -> Self {
        let size = match config.model {
            Some(ModelChoice::Embedded(size)) => size,
            _ => panic!("an embedded model"),
        };
        let tracker = || AtmosphereTracker::new(config.atmosphere_smoothing);
        Self {
            cpu: CpuEngine::new(&config).unwrap(),
            dev: EmulatedFull::new(e, size, refine_on_device, veil_on_device),
            trackers: [tracker(), tracker()],
            config,
        }
    }

    /// Components of `img`: (CPU engine, device chain).
    fn components(&mut self, img: &PlanarRgb) -> (Components, Components) {
        let (mut want, mut got) = (Components::empty(), Components::empty());
        let [t_cpu, t_dev] = &mut self.trackers;
        self.cpu
            .derain_into(
                Source::Planar(img),
                &self.config,
                t_cpu,
                Sink::Components(&mut want),
            )
            .unwrap();
        self.dev.run(
            Source::Planar(img),
            &self.config,
            t_dev,
            Sink::Components(&mut got),
        );
        (want, got)
    }

    /// The packed output of `frame`: (CPU engine, device chain).
    fn frame(&mut self, frame: &FrameRef<'_>) -> (Vec<u8>, Vec<u8>) {
        let (w, h, format) = (frame.width(), frame.height(), frame.format());
        let row = w as usize * format.bytes_per_pixel();
        let (mut want, mut got) = (vec![0u8; row * h as usize], vec![7u8; row * h as usize]);
        let strength = self.config.strength;
        let [t_cpu, t_dev] = &mut self.trackers;
        {
            let mut fm = FrameMut::new(&mut want, w, h, row, format).unwrap();
            let sink = Sink::Frame(FrameSink {
                frame: &mut fm,
                input: frame,
                strength,
            });
            self.cpu
                .derain_into(Source::Packed(frame), &self.config, t_cpu, sink)
                .unwrap();
        }
        {
            let mut fm = FrameMut::new(&mut got, w, h, row, format).unwrap();
            let sink = Sink::Frame(FrameSink {
                frame: &mut fm,
                input: frame,
                strength,
            });
            self.dev
                .run(Source::Packed(frame), &self.config, t_dev, sink);
        }
        (want, got)
    }
}

#[test]
fn emulated_full_mode_on_the_device_is_the_cpu_engine_for_components() {
    let Some(e) = emu("emulated_full_mode_on_the_device_is_the_cpu_engine_for_components") else {
        return;
    };
    let config = full_config(ModelSize::Fast);
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    // The refinement network through the kernels and, once, on the host.
    for refine_on_device in [true, false] {
        let mut pair = SideBySide::new(e, config.clone(), refine_on_device, false);
        // Sides that are not multiples of 16, two frames of a size (kept buffers, the tracker's
        // state), then a new size; the last one is downsampled by 2 (≥ 300 lines: work_factor).
        let sizes: &[(usize, usize)] = if refine_on_device {
            &[(50, 37), (50, 37), (37, 23), (83, 301)]
        } else {
            &[(50, 37), (37, 23)]
        };
        for (k, &(w, h)) in sizes.iter().enumerate() {
            let (want, got) = pair.components(&image(w, h, &mut rng));
            let what = format!("frame {k}, {w}x{h}, refinement on the device: {refine_on_device}");
            assert_eq!(want.atmosphere, got.atmosphere, "A, {what}");
            for c in 0..3 {
                let (n, d) = (
                    want.background.planes[c]
                        .data
                        .iter()
                        .zip(&got.background.planes[c].data)
                        .filter(|(a, b)| a != b)
                        .count(),
                    max_diff(
                        &want.background.planes[c].data,
                        &got.background.planes[c].data,
                    ),
                );
                assert_eq!(n, 0, "J[{c}], {what}: {n} values differ, max |Δ| {d:e}");
            }
            assert_eq!(want.streaks, got.streaks, "S, {what}");
            assert_eq!(want.transmission, got.transmission, "T, {what}");
            assert!(
                want.streaks.data.iter().any(|&s| s > 1e-3),
                "a non-trivial S, {what}"
            );
        }
    }
}

#[test]
fn emulated_full_mode_on_the_device_is_the_cpu_engine_for_packed_frames() {
    let Some(e) = emu("emulated_full_mode_on_the_device_is_the_cpu_engine_for_packed_frames")
    else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(29);
    for (size, format, strength, (w, h)) in [
        (ModelSize::Fast, PixelFormat::Bgra, 0.6f32, (53, 31)),
        (ModelSize::Fast, PixelFormat::Rgb, 1.0, (40, 21)),
        (ModelSize::Quality, PixelFormat::Rgbx, 1.0, (35, 18)),
    ] {
        let config = Config {
            strength,
            ..full_config(size)
        };
        let mut pair = SideBySide::new(e, config, true, false);
        let bpp = format.bytes_per_pixel();
        for k in 0..2 {
            // A smooth picture with bright vertical streaks, and random alpha.
            let img = image(w, h, &mut rng);
            let mut bytes = vec![0u8; w * h * bpp];
            let [ro, go, bo] = format.rgb_offsets();
            for y in 0..h {
                for x in 0..w {
                    let i = y * w + x;
                    let streak = if x % 7 == 3 { 0.35 } else { 0.0 };
                    let px = &mut bytes[i * bpp..(i + 1) * bpp];
                    for (c, o) in [ro, go, bo].into_iter().enumerate() {
                        px[o] = ((img.planes[c].data[i] * 0.6 + streak) * 255.0).min(255.0) as u8;
                    }
                    if bpp == 4 {
                        px[3] = rng.random();
                    }
                }
            }
            let frame = FrameRef::new(&bytes, w as u32, h as u32, w * bpp, format).unwrap();
            let (want, got) = pair.frame(&frame);
            let off = want.iter().zip(&got).filter(|(a, b)| a != b).count();
            assert_eq!(
                off, 0,
                "{size:?} {format:?} {w}x{h} frame {k}: {off} bytes differ"
            );
            assert_ne!(want, bytes, "the frame changed");
        }
    }
}

#[test]
fn emulated_full_mode_with_the_veil_network_on_the_device_matches_the_cpu_engine() {
    let Some(e) =
        emu("emulated_full_mode_with_the_veil_network_on_the_device_matches_the_cpu_engine")
    else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    for size in [ModelSize::Fast, ModelSize::Quality] {
        let mut pair = SideBySide::new(e, full_config(size), true, true);
        for (k, &(w, h)) in [(50, 37), (50, 37), (83, 301)].iter().enumerate() {
            let (want, got) = pair.components(&image(w, h, &mut rng));
            let what = format!("{size:?} frame {k}, {w}x{h}");
            let da = (0..3)
                .map(|c| (want.atmosphere[c] - got.atmosphere[c]).abs())
                .fold(0f32, f32::max);
            let dj = (0..3)
                .map(|c| {
                    max_diff(
                        &want.background.planes[c].data,
                        &got.background.planes[c].data,
                    )
                })
                .fold(0f32, f32::max);
            let dt = max_diff(&want.transmission.data, &got.transmission.data);
            let ds = max_diff(&want.streaks.data, &got.streaks.data);
            eprintln!("{what}: |ΔA| {da:e}, |ΔJ| {dj:e}, |ΔT| {dt:e}, |ΔS| {ds:e}");
            // Only the bank's f64 sums differ from the CPU's (≈ 1 ulp here).
            assert!(
                da <= 1e-6 && dt <= 1e-6 && dj <= 1e-5 && ds <= 1e-5,
                "{what}"
            );
        }
    }
}

#[test]
fn emulated_full_mode_with_the_mirror_ensemble_is_the_cpu_engine() {
    let Some(e) = emu("emulated_full_mode_with_the_mirror_ensemble_is_the_cpu_engine") else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(37);
    for (size, (w, h)) in [(ModelSize::Fast, (50, 37)), (ModelSize::Quality, (37, 23))] {
        let config = Config {
            ensemble: true,
            ..full_config(size)
        };
        let mut pair = SideBySide::new(e, config, true, false);
        let mut plain = SideBySide::new(e, full_config(size), true, false);
        // Two frames of a size: the mirror buffers are kept from one to the next.
        for k in 0..2 {
            let img = image(w, h, &mut rng);
            let (want, got) = pair.components(&img);
            let what = format!("{size:?} frame {k}, {w}x{h}");
            assert_eq!(want.atmosphere, got.atmosphere, "A, {what}");
            assert_eq!(want.background, got.background, "J, {what}");
            assert_eq!(want.streaks, got.streaks, "S, {what}");
            assert_eq!(want.transmission, got.transmission, "T, {what}");
            let (without, _) = plain.components(&img);
            assert_ne!(
                without.streaks, want.streaks,
                "the ensemble changes S, {what}"
            );
        }
    }
}

#[test]
fn emulated_veil_network_with_the_global_context_is_the_native_runtime() {
    // The veil of tests/fixtures/nets/tglobal (an APool and the TNet's global context:
    // `tglobal_bias_f32` and d2 with that bias) through `veil_forward` over the emulated
    // kernels, against the CPU's native runtime on the same input.
    let Some(e) = emu("emulated_veil_network_with_the_global_context_is_the_native_runtime") else {
        return;
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("derain-emu-tglobal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        root.join("tests/fixtures/nets/tglobal/stage1.onnx"),
        dir.join("stage1.onnx"),
    )
    .unwrap();
    for n in ["streak.onnx", "stage2.onnx"] {
        std::fs::copy(root.join("models/fast").join(n), dir.join(n)).unwrap();
    }
    let mut nets = FullNets::from_dir(&dir).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let l = nets.stage1.veil_layers().expect("native architecture");
    assert!(l.t_global.is_some(), "the fixture has a global context");
    let v = VeilNet::packed(l).unwrap();
    let mut ops = EmuFull::new(e);
    let mut rng = ChaCha8Rng::seed_from_u64(47);
    for (w, h) in [(20, 12), (52, 44)] {
        let x: Vec<f32> = (0..VEIL_IN * w * h).map(|_| rng.random::<f32>()).collect();
        let want = nets.stage1.run(h, w, &[&x]).unwrap();
        let mut m = VeilMaps::new(&mut ops, &v.layers, (w, h), (w, h)).unwrap();
        m.x[..x.len()].copy_from_slice(&x);
        veil_forward(&mut ops, &v, &mut m).unwrap();
        let dt = max_diff(&m.t[..w * h], &want[0]);
        let da = max_diff(&m.atmosphere(&v.layers)[..3], &want[1]);
        eprintln!("{w}x{h}: |ΔT| {dt:e}, |ΔA| {da:e}");
        assert!(dt <= 1e-6 && da <= 1e-6, "{w}x{h}");
    }
}
