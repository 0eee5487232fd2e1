use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::steps::effective_rank;
use super::*;
use crate::frame::{PixelFormat, Plane};

const W: usize = 96;
const H: usize = 64;

/// A textured static scene in [0.1, 0.7].
fn scene(seed: u64) -> PlanarRgb {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let f: [f32; 3] = [
        rng.random_range(0.05..0.3),
        rng.random_range(0.05..0.3),
        rng.random_range(0.05..0.3),
    ];
    PlanarRgb::from_planes([0, 1, 2].map(|c| {
        let data = (0..W * H)
            .map(|i| {
                let (x, y) = ((i % W) as f32, (i / W) as f32);
                0.4 + 0.3 * (f[c] * x + 0.7 * f[(c + 1) % 3] * y).sin()
            })
            .collect();
        Plane::from_vec(W, H, data).unwrap()
    }))
    .unwrap()
}

/// Vertical streaks 1–2 px wide, 10–30 px long, +0.2–0.5, covering about `cover` of the frame.
fn rain(img: &PlanarRgb, t: u64, cover: f32) -> PlanarRgb {
    let mut rng = ChaCha8Rng::seed_from_u64(1000 + t);
    let mut out = img.clone();
    let count = (cover * (W * H) as f32 / 30.0) as usize;
    for _ in 0..count {
        let (x0, y0) = (rng.random_range(0..W), rng.random_range(0..H));
        let (len, wid, a) = (
            rng.random_range(10..30),
            rng.random_range(1..3),
            rng.random_range(0.2..0.5f32),
        );
        for y in y0..(y0 + len).min(H) {
            for x in x0..(x0 + wid).min(W) {
                for p in &mut out.planes {
                    let v = &mut p.data[y * W + x];
                    *v = (*v + a).min(1.0);
                }
            }
        }
    }
    out
}

/// A 20×16 checkered square entering at frame 8 from the left edge, 3 px per frame
/// (its left edge at x = 3t − 24).
fn with_object(img: &PlanarRgb, t: usize) -> PlanarRgb {
    let mut out = img.clone();
    if t < 8 {
        return out;
    }
    let x0 = 3 * t - 24;
    for y in 24..40 {
        for x in x0..(x0 + 20).min(W) {
            let v = if ((x - x0) / 4 + (y - 24) / 4).is_multiple_of(2) {
                0.95
            } else {
                0.02
            };
            for p in &mut out.planes {
                p.data[y * W + x] = v;
            }
        }
    }
    out
}

fn mean_abs(a: &PlanarRgb, b: &PlanarRgb, rect: (usize, usize, usize, usize)) -> f64 {
    let (x0, y0, x1, y1) = rect;
    let mut s = 0.0;
    for p in 0..3 {
        for y in y0..y1 {
            for x in x0..x1 {
                s += (a.planes[p].at(x, y) - b.planes[p].at(x, y)).abs() as f64;
            }
        }
    }
    s / (3 * (x1 - x0) * (y1 - y0)) as f64
}

fn stage(mode: TemporalMode) -> Temporal {
    Temporal::new(mode, TemporalParams::default()).unwrap()
}

#[test]
fn a_static_scene_converges_to_its_background() {
    let clean = scene(1);
    let mut st = stage(TemporalMode::On);
    let all = (0, 0, W, H);
    let mut last = (0.0, 0.0);
    for t in 0..12 {
        let rainy = rain(&clean, t, 0.35);
        let mut out = rainy.clone();
        let info = st.apply_planar(None, &mut out).unwrap();
        assert_eq!(info.reset, t == 0, "frame {t}: {info:?}");
        last = (mean_abs(&rainy, &clean, all), mean_abs(&out, &clean, all));
    }
    let (rainy_err, out_err) = last;
    assert!(rainy_err > 0.05, "the test rain is too light: {rainy_err}");
    assert!(
        out_err < 0.1 * rainy_err && out_err < 0.006,
        "static scene not recovered: rainy {rainy_err:.4}, output {out_err:.4}"
    );
}

#[test]
fn a_moving_object_is_not_erased_and_leaves_no_trail() {
    // The stage must never do worse than the frame it was given on the object and on the
    // 12 px it left behind (where a ghost of its dark squares would show); replacing either
    // with a wrong background costs about 0.3 on average.
    let clean = scene(2);
    let mut st = stage(TemporalMode::On);
    for t in 0..36 {
        let gt = with_object(&clean, t);
        let rainy = rain(&gt, t as u64, 0.2);
        let mut out = rainy.clone();
        st.apply_planar(None, &mut out).unwrap();
        if t >= 12 {
            let x0 = 3 * t - 24;
            for (what, rect) in [
                ("object", (x0, 24, (x0 + 20).min(W), 40)),
                ("trail", (x0 - 12, 24, x0, 40)),
            ] {
                let (e_out, e_in) = (mean_abs(&out, &gt, rect), mean_abs(&rainy, &gt, rect));
                assert!(
                    e_out <= e_in + 0.02,
                    "frame {t}: {what} error {e_out:.3} vs {e_in:.3} in the frame given"
                );
            }
        }
    }
}

#[test]
fn a_scene_cut_restarts_the_history_and_passes_the_frame_through() {
    let mut st = stage(TemporalMode::On);
    for t in 0..10 {
        let mut f = rain(&scene(3), t, 0.2);
        st.apply_planar(None, &mut f).unwrap();
    }
    assert_eq!(st.history_len(), 8);
    // A different, darker scene (indoors to night).
    let mut other = scene(4);
    other
        .planes
        .iter_mut()
        .for_each(|p| p.data.iter_mut().for_each(|v| *v *= 0.5));
    let cut = rain(&other, 10, 0.2);
    let mut out = cut.clone();
    let info = st.apply_planar(None, &mut out).unwrap();
    assert!(info.reset && !info.applied, "{info:?}");
    assert_eq!(out, cut);
    assert_eq!(st.history_len(), 1);
    // The next frame of the new scene builds on it.
    let mut next = rain(&other, 11, 0.2);
    assert!(st.apply_planar(None, &mut next).unwrap().applied);
}

#[test]
fn off_is_the_identity_and_a_size_change_restarts() {
    let mut st = stage(TemporalMode::Off);
    let f = rain(&scene(5), 0, 0.3);
    let mut out = f.clone();
    st.apply_planar(None, &mut out).unwrap();
    assert_eq!(out, f);
    st.set_mode(TemporalMode::On);
    for t in 0..3 {
        let mut g = rain(&scene(5), t, 0.3);
        st.apply_planar(None, &mut g).unwrap();
    }
    assert_eq!(st.history_len(), 3);
    let mut small = PlanarRgb::zeros(10, 6);
    let info = st.apply_planar(None, &mut small).unwrap();
    assert!(info.reset);
    assert_eq!(st.history_len(), 1);
    assert!(st.apply_planar(None, &mut PlanarRgb::zeros(0, 0)).is_err());
}

#[test]
fn packed_and_planar_frames_give_the_same_result() {
    // After `physics` on rainy frames; after `full` on fringed frames with their input (the
    // fringe test reads it on both paths).
    for mode in [Mode::Physics, Mode::Full] {
        let clean = scene(6);
        let params = TemporalParams::for_mode(mode);
        let mut a = Temporal::new(TemporalMode::On, params.clone()).unwrap();
        let mut b = Temporal::new(TemporalMode::On, params).unwrap();
        let fmt = PixelFormat::Bgra;
        let pack = |img: &PlanarRgb| {
            let mut v = vec![7u8; W * H * 4];
            let mut fm = FrameMut::new(&mut v, W as u32, H as u32, W * 4, fmt).unwrap();
            img.write_frame(&mut fm, None).unwrap();
            v
        };
        for t in 0..8 {
            let mut input = rain(&clean, t, 0.3);
            input.quantize();
            let mut img = match mode {
                Mode::Physics => input.clone(),
                Mode::Full => fringed(&clean, &input),
            };
            img.quantize();
            let (bytes, input_bytes) = (pack(&img), pack(&input));
            let input_ref = FrameRef::new(&input_bytes, W as u32, H as u32, W * 4, fmt).unwrap();
            let mut packed = bytes.clone();
            let mut fm = FrameMut::new(&mut packed, W as u32, H as u32, W * 4, fmt).unwrap();
            let ia = a.apply_frame(Some(&input_ref), &mut fm).unwrap();
            let ib = b.apply_planar(Some(&input), &mut img).unwrap();
            assert_eq!(ia.event_fraction, ib.event_fraction, "{mode:?} frame {t}");
            let expect = pack(&img);
            // Alpha untouched; colours within one level (8-bit vs f32 blend rounding).
            for (i, (p, e)) in packed.iter().zip(&expect).enumerate() {
                if i % 4 == 3 {
                    assert_eq!(*p, bytes[i]);
                } else {
                    assert!(p.abs_diff(*e) <= 1, "{mode:?} byte {i}: {p} vs {e}");
                }
            }
        }
    }
}

#[test]
fn ranks_and_parameters() {
    assert_eq!(effective_rank(3, 8, 1), 1);
    assert_eq!(effective_rank(3, 8, 2), 1);
    assert_eq!(effective_rank(3, 8, 4), 2);
    assert_eq!(effective_rank(3, 8, 8), 3);
    assert_eq!(effective_rank(1, 8, 8), 1);
    let bad = [
        TemporalParams {
            window: 1,
            ..Default::default()
        },
        TemporalParams {
            rank: 9,
            ..Default::default()
        },
        TemporalParams {
            gain: f32::NAN,
            ..Default::default()
        },
        TemporalParams {
            threshold: 0,
            ..Default::default()
        },
    ];
    for p in bad {
        assert!(Temporal::new(TemporalMode::On, p).is_err());
    }
    assert_eq!("auto".parse::<TemporalMode>().unwrap(), TemporalMode::Auto);
    assert!("sometimes".parse::<TemporalMode>().is_err());
}

/// After `physics` the background is the 3rd smallest of 8 values (its residue is positive);
/// after `full` the 4th (its errors have both signs, and a lower rank darkens the output).
#[test]
fn the_rank_follows_the_single_frame_mode() {
    // A flat frame whose level wanders by at most 6 of 255 (no events): 94 … 106.
    let levels = [94u8, 106, 97, 103, 95, 105, 99, 101];
    for (mode, want) in [(Mode::Physics, 97u8), (Mode::Full, 99)] {
        let mut st = Temporal::new(TemporalMode::On, TemporalParams::for_mode(mode)).unwrap();
        let mut last = Vec::new();
        for &v in &levels {
            let mut px = vec![v; 16 * 12 * 4];
            let mut f = FrameMut::new(&mut px, 16, 12, 16 * 4, PixelFormat::Rgba).unwrap();
            let info = st.apply_frame(None, &mut f).unwrap();
            assert_eq!(info.event_fraction, 0.0, "{mode:?}");
            last = px;
        }
        assert!(
            last.chunks_exact(4).all(|p| p[..3] == [want; 3]),
            "{mode:?}: {:?}, want {want}",
            &last[..4]
        );
    }
}

/// A window of a larger textured scene at (x0, 0), `w`×`h`.
fn panned(x0: usize, w: usize, h: usize) -> PlanarRgb {
    PlanarRgb::from_planes([0.11f32, 0.07, 0.05].map(|f| {
        let data = (0..w * h)
            .map(|i| {
                let (x, y) = (((i % w) + x0) as f32, (i / w) as f32);
                0.4 + 0.25 * (f * x + 0.09 * y).sin() + 0.1 * (0.31 * x).cos() * (0.17 * y).sin()
            })
            .collect();
        Plane::from_vec(w, h, data).unwrap()
    }))
    .unwrap()
}

#[test]
fn auto_follows_a_panning_camera_and_removes_the_rain_there_too() {
    let (w, h) = (128, 96);
    let mut auto = stage(TemporalMode::Auto);
    let (mut err_in, mut err_out, mut shifts) = (0.0, 0.0, Vec::new());
    for t in 0..16 {
        // The camera pans 2 px per frame to the right.
        let clean = panned(2 * t, w, h);
        let mut rng = ChaCha8Rng::seed_from_u64(t as u64);
        let mut img = clean.clone();
        for _ in 0..120 {
            let (x0, y0, len) = (
                rng.random_range(0..w),
                rng.random_range(0..h),
                rng.random_range(8..20),
            );
            for y in y0..(y0 + len).min(h) {
                for p in &mut img.planes {
                    p.data[y * w + x0] = (p.data[y * w + x0] + 0.4).min(1.0);
                }
            }
        }
        img.quantize();
        let rainy = img.clone();
        let info = auto.apply_planar(None, &mut img).unwrap();
        shifts.push(info.camera_shift);
        if t >= 8 {
            // Inside the frame, away from the edge the pan brings in.
            let rect = (4, 4, w - 24, h - 4);
            err_in += mean_abs(&rainy, &clean, rect);
            err_out += mean_abs(&img, &clean, rect);
            assert!(info.applied, "frame {t}: {info:?}");
        }
    }
    for s in &shifts[1..] {
        assert!((s.0 - 2.0).abs() < 0.6 && s.1.abs() < 0.6, "{shifts:?}");
    }
    assert!(
        err_out < 0.4 * err_in,
        "rain left: {err_out:.4} against {err_in:.4} in the input"
    );
}

#[test]
fn box_counts_match_the_window_definition_on_every_row_length() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for w in [1usize, 2, 5, 24, 25, 26, 27, 100] {
        for r in [0usize, 1, 3, 12, 30] {
            let mem: Vec<u8> = (0..w)
                .map(|_| if rng.random_bool(0.4) { 3 } else { 0 })
                .collect();
            let mut got = vec![0u16; w];
            steps::box_row(&mem, r, &mut got);
            for x in 0..w {
                let want = mem[x.saturating_sub(r)..=(x + r).min(w - 1)]
                    .iter()
                    .filter(|&&v| v > 0)
                    .count() as u16;
                assert_eq!(got[x], want, "w {w} r {r} x {x}");
            }
        }
    }
}

#[test]
fn blend_matches_the_per_pixel_formula_in_every_layout() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    // Blocks of 16 pixels: all 0, all 1, two mixed, and a short last one all 0.
    let n = 75;
    let weight: Vec<f32> = (0..n)
        .map(|i| match i / 16 {
            0 | 4 => 0.0,
            1 => 1.0,
            _ => [0.0, 1.0, 0.25, 0.5, 0.999][rng.random_range(0..5)],
        })
        .collect();
    for fmt in [PixelFormat::Rgba, PixelFormat::Bgrx, PixelFormat::Rgb] {
        let (bpp, off) = (fmt.bytes_per_pixel(), fmt.rgb_offsets());
        let lay = steps::Layout {
            width: n,
            height: 1,
            bpp,
            off,
        };
        let row: Vec<u8> = (0..n * bpp).map(|_| rng.random()).collect();
        // The background is kept 3 bytes per pixel, R, G, B in the frame's order.
        let bg: Vec<u8> = (0..n * 3).map(|_| rng.random()).collect();
        let mut got = row.clone();
        steps::blend_row(&mut got, &bg, &weight, &lay);
        for (i, &wt) in weight.iter().enumerate() {
            for b in 0..bpp {
                let k = i * bpp + b;
                let want = if !off.contains(&b) {
                    row[k] // alpha and padding untouched
                } else {
                    let q = bg[i * 3 + b];
                    let v = row[k] as f32 + (q as f32 - row[k] as f32) * (1.0 - wt);
                    (v + 0.5) as u8
                };
                assert_eq!(got[k], want, "{fmt:?} pixel {i} byte {b} weight {wt}");
            }
        }
    }
}

#[test]
fn history_rows_keep_each_pixel_s_rgb_bytes_in_order() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for (bpp, w) in [(4usize, 1usize), (4, 7), (4, 16), (4, 67), (3, 13)] {
        let lay = steps::Layout {
            width: w,
            height: 1,
            bpp,
            off: [2, 1, 0],
        };
        let cur: Vec<u8> = (0..w * bpp).map(|_| rng.random()).collect();
        let mut out = vec![0u8; lay.history().row_bytes()];
        steps::store_row(&cur, &lay, &mut out);
        let want: Vec<u8> = cur
            .chunks_exact(bpp)
            .flat_map(|p| p[..3].to_vec())
            .collect();
        assert_eq!(out, want, "bpp {bpp} width {w}");
    }
}

/// What `full` can leave of `rainy` (= `rain(clean, ..)`): the rain taken out, but red taken
/// 0.3 too far where a streak was — a colour fringe (76 levels in one channel, 23 in luma).
fn fringed(clean: &PlanarRgb, rainy: &PlanarRgb) -> PlanarRgb {
    let mut out = clean.clone();
    for i in 0..W * H {
        if rainy.planes[1].data[i] > clean.planes[1].data[i] + 0.1 {
            out.planes[0].data[i] = (out.planes[0].data[i] - 0.3).max(0.0);
        }
    }
    out
}

fn full_stage() -> Temporal {
    Temporal::new(TemporalMode::On, TemporalParams::for_mode(Mode::Full)).unwrap()
}

#[test]
fn colour_fringes_of_removed_streaks_do_not_count_as_scene_changes() {
    // Fringes at new places every frame are no change of the scene: with the input at hand
    // the stage takes the background (the 4th of 8 values: the clean scene); without it
    // each fringe is an event, remembered for 8 frames, and the pooled weight hands much
    // of the frame back to the fringed single-frame output.
    let clean = scene(8);
    let (mut seeing, mut blind) = (full_stage(), full_stage());
    let all = (0, 0, W, H);
    let mut last = [(0.0, 0.0); 2];
    for t in 0..16 {
        let rainy = rain(&clean, t, 0.2);
        let single = fringed(&clean, &rainy);
        for (k, (st, input)) in [(&mut seeing, Some(&rainy)), (&mut blind, None)]
            .into_iter()
            .enumerate()
        {
            let mut out = single.clone();
            let info = st.apply_planar(input, &mut out).unwrap();
            last[k] = (mean_abs(&out, &clean, all), info.background_share as f64);
        }
    }
    let single_err = mean_abs(&fringed(&clean, &rain(&clean, 15, 0.2)), &clean, all);
    let [(err, share), (blind_err, blind_share)] = last;
    assert!(
        single_err > 0.01,
        "the test fringes are too few: {single_err:.4}"
    );
    assert!(
        err < 0.5 * blind_err && share > 0.9 && blind_share < 0.5,
        "fringed {single_err:.4}: output {err:.4} (background {share:.2}) with the input, \
         {blind_err:.4} ({blind_share:.2}) without"
    );
}

#[test]
fn with_the_fringe_test_a_colour_change_at_equal_brightness_still_counts() {
    // A square of another colour but the same luma (G down 64 levels, R up) crosses a grey
    // scene under rain; the single-frame output is the truth. Its colour change is no
    // removed streak (the input is not brighter there), so it is an event and the square
    // is kept, not painted over with the grey background.
    let grey =
        PlanarRgb::from_planes([0, 1, 2].map(|_| Plane::from_vec(W, H, vec![0.5; W * H]).unwrap()))
            .unwrap();
    let mut st = full_stage();
    for t in 0..30usize {
        let mut gt = grey.clone();
        let x0 = (3 * t).saturating_sub(24);
        if t >= 8 {
            for y in 24..40 {
                for x in x0..(x0 + 20).min(W) {
                    let i = y * W + x;
                    gt.planes[0].data[i] = 0.95;
                    gt.planes[1].data[i] = 0.25;
                    gt.planes[2].data[i] = 0.53;
                }
            }
        }
        let rainy = rain(&gt, t as u64, 0.2);
        let mut out = gt.clone();
        st.apply_planar(Some(&rainy), &mut out).unwrap();
        if t >= 12 && x0 + 20 <= W {
            let e = mean_abs(&out, &gt, (x0, 24, x0 + 20, 40));
            assert!(e < 0.02, "frame {t}: the square's error {e:.3}");
        }
    }
}

#[test]
fn fringe_row_marks_thin_removed_streaks_and_not_a_lifted_veil() {
    use super::steps::{Layout, fringe_row};
    let lay = Layout {
        width: 16,
        height: 1,
        bpp: 3,
        off: [0, 1, 2],
    };
    let out = vec![100u8; 48];
    // The method lifted a veil of 30 levels everywhere and took a 2-px streak at x = 5, 6
    // and one at the right border.
    let mut input = vec![130u8; 48];
    input[15..21].fill(200);
    input[45..].fill(210);
    let (mut d, mut marks) = (vec![0i16; 2 * (16 + 6)], vec![9u8; 16]);
    fringe_row(&input, &out, &lay, 20, &mut d, &mut marks);
    let marked: Vec<usize> = (0..16).filter(|&x| marks[x] != 0).collect();
    assert_eq!(marked, [5, 6, 15]);
    assert!(marks.iter().all(|&m| m <= 1));
}
