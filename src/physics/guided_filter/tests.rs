use super::*;
use proptest::prelude::*;

/// Deterministic pseudo-random plane in [0, 1] with some structure (edges + noise).
pub(crate) fn test_plane(w: usize, h: usize, seed: u64) -> Plane {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let data = (0..w * h)
        .map(|k| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = (s >> 40) as f32 / (1u64 << 24) as f32;
            let (x, y) = (k % w, k / w);
            let edge = if (x * 7 + y * 3) % 23 < 11 { 0.7 } else { 0.2 };
            (0.6 * edge + 0.4 * noise).clamp(0.0, 1.0)
        })
        .collect();
    Plane {
        width: w,
        height: h,
        data,
    }
}

fn max_abs_diff(a: &[f32], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn box_mean_matches_naive_sum() {
    for &(w, h) in &[(1, 1), (2, 3), (5, 4), (17, 9), (64, 33)] {
        for r in 1..=16 {
            let p = test_plane(w, h, (w * 100 + r) as u64);
            let got = box_mean(&p, r).unwrap();
            let src: Vec<f64> = p.data.iter().map(|&v| v as f64).collect();
            let want = reference::box_mean(&src, w, h, r);
            let d = max_abs_diff(&got.data, &want);
            assert!(d <= 1e-6, "{w}x{h} r={r}: max |Δ| = {d}");
        }
    }
}

#[test]
fn guided_matches_reference_all_small_radii() {
    // 1×1, 2×3, widths below 2r+1 and odd widths, every radius 1..=16, both bank eps.
    let sizes = [(1, 1), (2, 3), (3, 2), (7, 5), (13, 11), (31, 17), (45, 40)];
    for &(w, h) in &sizes {
        for r in 1..=16 {
            for &eps in &BANK_EPS {
                let g = test_plane(w, h, (w * 31 + h + r) as u64);
                let p = test_plane(w, h, (w * 17 + h * 5 + r) as u64 + 99);
                let got = guided_filter(&g, &p, r, eps).unwrap();
                let want = reference::guided(&g, &p, r, eps as f64);
                let d = max_abs_diff(&got.data, &want);
                assert!(d <= 1e-4, "{w}x{h} r={r} eps={eps}: max |Δ| = {d}");
            }
        }
    }
}

#[test]
fn guided_matches_reference_large_radius_and_strips() {
    // Tall enough to be split into strips; r=32 as in the bank.
    let (w, h) = (97, 301);
    for &r in &[8, 32] {
        let g = test_plane(w, h, 5);
        let p = test_plane(w, h, 6);
        let got = guided_filter(&g, &p, r, 1e-4).unwrap();
        let want = reference::guided(&g, &p, r, 1e-4);
        let d = max_abs_diff(&got.data, &want);
        assert!(d <= 1e-4, "r={r}: max |Δ| = {d}");
    }
}

#[test]
fn bank_equals_individual_filters() {
    let (w, h) = (40, 70);
    let g = test_plane(w, h, 1);
    let img = PlanarRgb::from_planes([
        test_plane(w, h, 2),
        test_plane(w, h, 3),
        test_plane(w, h, 4),
    ])
    .unwrap();
    let radii = [2, 4, 8];
    let bank = guided_bank(&g, &img, &radii, &BANK_EPS).unwrap();
    assert_eq!(bank.len(), radii.len() * BANK_EPS.len() * 3);
    for (ri, &r) in radii.iter().enumerate() {
        for (ei, &eps) in BANK_EPS.iter().enumerate() {
            for c in 0..3 {
                let single = guided_filter(&g, &img.planes[c], r, eps).unwrap();
                let k = (ri * BANK_EPS.len() + ei) * 3 + c;
                assert_eq!(bank[k].data, single.data, "r={r} eps={eps} c={c}");
            }
        }
    }
}

/// `test_plane` rounded to 8-bit samples, stored as an 8-bit frame's conversion stores them.
fn test_plane8(w: usize, h: usize, seed: u64) -> Plane {
    let mut p = test_plane(w, h, seed);
    for v in &mut p.data {
        *v = (*v * 255.0).round() as u8 as f32 * (1.0 / 255.0);
    }
    p
}

/// Whether the exact integer path takes every job of this filter (AVX2 builds).
fn takes_integer_path(g: &Plane, inputs: &[&Plane], r: usize, eps: &[f32]) -> bool {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    {
        let mut outs = zeroed_like(g, inputs.len() * eps.len());
        let jobs = vec![Job {
            r,
            eps,
            outs: outs.iter_mut().collect(),
        }];
        integer8(g, inputs, &jobs).is_some_and(|i| i.scales.iter().all(Option::is_some))
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
    {
        let _ = (g, inputs, r, eps);
        false
    }
}

#[test]
fn eight_bit_data_matches_reference_all_small_radii() {
    // The exact integer path: 1×1, 2×3, widths below 2r+1, odd widths and widths that are
    // not a multiple of 8, every radius 1..=16, one and three inputs, both bank eps.
    let sizes = [(1, 1), (2, 3), (3, 2), (7, 5), (13, 11), (31, 17), (45, 40)];
    for &(w, h) in &sizes {
        for r in 1..=16 {
            let g = test_plane8(w, h, (w * 31 + h + r) as u64);
            let ps: Vec<Plane> = (0..3)
                .map(|c| test_plane8(w, h, (w * 17 + r + c) as u64))
                .collect();
            let refs: Vec<&Plane> = ps.iter().collect();
            let one = guided_filter_multi(&g, &refs[..1], r, &BANK_EPS[..1]).unwrap();
            let three = guided_filter_multi(&g, &refs, r, &BANK_EPS).unwrap();
            if cfg!(all(target_arch = "x86_64", target_feature = "avx2")) {
                assert!(takes_integer_path(&g, &refs, r, &BANK_EPS), "{w}x{h} r={r}");
            }
            let want = reference::guided(&g, &ps[0], r, BANK_EPS[0] as f64);
            let d = max_abs_diff(&one[0].data, &want);
            assert!(d <= 1e-4, "{w}x{h} r={r} one input: max |Δ| = {d}");
            for (e, &eps) in BANK_EPS.iter().enumerate() {
                for (c, p) in ps.iter().enumerate() {
                    let want = reference::guided(&g, p, r, eps as f64);
                    let d = max_abs_diff(&three[e * 3 + c].data, &want);
                    assert!(d <= 1e-4, "{w}x{h} r={r} eps={eps} c={c}: max |Δ| = {d}");
                }
            }
        }
    }
}

#[test]
fn eight_bit_data_large_radius_strips_and_steep_coefficients() {
    // r = 32 on a plane split into strips; then the worst case for the fixed-point
    // coefficients: a guide whose variance is about eps, with an input that follows it
    // from 0 to 1, so |a| is near its bound 1/(4√eps) = 25.
    let (w, h) = (97, 301);
    let g = test_plane8(w, h, 5);
    let p = test_plane8(w, h, 6);
    assert!(takes_integer_path(&g, &[&p], 32, &[1e-4]) || !FUSED);
    let got = guided_filter(&g, &p, 32, 1e-4).unwrap();
    let d = max_abs_diff(&got.data, &reference::guided(&g, &p, 32, 1e-4));
    assert!(d <= 1e-4, "r=32: max |Δ| = {d}");

    let (w, h) = (70, 90);
    let mut g = Plane::zeros(w, h);
    let mut p = Plane::zeros(w, h);
    for y in 0..h {
        for x in 0..w {
            let hi = (x / 3 + y / 5) % 2 == 1;
            g.data[y * w + x] = (120 + 3 * hi as u8) as f32 * (1.0 / 255.0);
            p.data[y * w + x] = hi as u8 as f32;
        }
    }
    for &r in &[2, 8, 32] {
        assert!(takes_integer_path(&g, &[&p], r, &[1e-4]) || !FUSED);
        let got = guided_filter(&g, &p, r, 1e-4).unwrap();
        let want = reference::guided(&g, &p, r, 1e-4);
        let d = max_abs_diff(&got.data, &want);
        assert!(d <= 1e-4, "steep r={r}: max |Δ| = {d}");
    }
}

#[test]
fn integer_and_float_paths_agree_on_the_bank() {
    let (w, h) = (203, 150);
    let img = PlanarRgb::from_planes([
        test_plane8(w, h, 2),
        test_plane8(w, h, 3),
        test_plane8(w, h, 4),
    ])
    .unwrap();
    // The residue of 8-bit samples: differences of f32 multiples of 1/255.
    let g = crate::physics::residue::residue(&img);
    let [r, gr, b] = &img.planes;
    let inputs = [r, gr, b];
    assert!(takes_integer_path(&g, &inputs, 32, &BANK_EPS) || !FUSED);
    let mut int = zeroed_like(&g, 30);
    let mut float = zeroed_like(&g, 30);
    guided_bank_into(&g, &img, &BANK_RADII, &BANK_EPS, &mut int).unwrap();
    let f64_path = Arithmetic::F64;
    guided_bank_into_with(&g, &img, &BANK_RADII, &BANK_EPS, &mut float, f64_path).unwrap();
    for (k, (a, b)) in int.iter().zip(&float).enumerate() {
        let d = a
            .data
            .iter()
            .zip(&b.data)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(d <= 1e-4, "plane {k}: max |Δ| = {d}");
    }
}

#[test]
fn only_eight_bit_samples_take_the_integer_path() {
    let g = test_plane8(20, 10, 1);
    let p = test_plane8(20, 10, 2);
    assert!(takes_integer_path(&g, &[&p], 4, &[1e-3]) || !FUSED);
    // Off the 1/255 grid by half a step, or outside [0,1]: the float path.
    let mut off = p.clone();
    off.data[7] += 0.5 / 255.0;
    assert!(!takes_integer_path(&g, &[&off], 4, &[1e-3]));
    let mut big = p.clone();
    big.data[3] = 2.0;
    assert!(!takes_integer_path(&g, &[&big], 4, &[1e-3]));
    // Radii and eps whose fixed-point error bound is too large: the float path.
    assert!(!takes_integer_path(&g, &[&p], 200, &[1e-3]));
    assert!(!takes_integer_path(&g, &[&p], 4, &[1e-9]));
}

#[test]
fn many_inputs_and_eps_take_the_general_path_and_match_the_reference() {
    // Four inputs and three eps: outside the fused kernels' instantiations.
    let (w, h) = (83, 61);
    let g = test_plane(w, h, 11);
    let ps: Vec<Plane> = (0..4).map(|k| test_plane(w, h, 20 + k)).collect();
    let refs: Vec<&Plane> = ps.iter().collect();
    let eps = [1e-2, 1e-3, 1e-4];
    let out = guided_filter_multi(&g, &refs, 6, &eps).unwrap();
    for (e, &ev) in eps.iter().enumerate() {
        for (c, p) in ps.iter().enumerate() {
            let want = reference::guided(&g, p, 6, ev as f64);
            let d = max_abs_diff(&out[e * ps.len() + c].data, &want);
            assert!(d <= 1e-4, "eps={ev} c={c}: max |Δ| = {d}");
        }
    }
}

#[test]
fn into_variants_check_their_outputs() {
    let g = test_plane(16, 12, 1);
    let img = PlanarRgb::from_planes([g.clone(), g.clone(), g.clone()]).unwrap();
    let mut few = vec![Plane::zeros(16, 12); 5];
    assert!(guided_bank_into(&g, &img, &[2, 4], &BANK_EPS, &mut few).is_err());
    let mut wrong = vec![Plane::zeros(15, 12); 12];
    assert!(guided_bank_into(&g, &img, &[2, 4], &BANK_EPS, &mut wrong).is_err());
    let mut ok = vec![Plane::zeros(16, 12); 12];
    guided_bank_into(&g, &img, &[2, 4], &BANK_EPS, &mut ok).unwrap();
    let alloc = guided_bank(&g, &img, &[2, 4], &BANK_EPS).unwrap();
    assert!(ok.iter().zip(&alloc).all(|(a, b)| a.data == b.data));
    let mut one = vec![Plane::zeros(16, 12); 2];
    assert!(guided_filter_multi_into(&g, &[&g], 3, &[1e-3], &mut one).is_err());
}

#[test]
fn partition_covers_every_row_once_in_balanced_groups() {
    for &(jobs, h, groups, min_piece) in &[
        (5, 1080, 4, 128),
        (1, 1080, 4, 32),
        (5, 7, 4, 128),
        (3, 100, 1, 32),
        (2, 33, 8, 32),
    ] {
        let parts = partition(jobs, h, groups, min_piece);
        assert_eq!(parts.len(), jobs);
        let mut load = vec![0usize; groups];
        for st in &parts {
            // Consecutive strips covering [0, h).
            assert_eq!(st.first().unwrap().0, 0);
            assert_eq!(st.last().unwrap().1, h);
            for win in st.windows(2) {
                assert_eq!(win[0].1, win[1].0);
            }
            for &(a, b, g) in st {
                assert!(a < b && g < groups);
                assert!(
                    b - a >= min_piece.min(h),
                    "{a}..{b} shorter than {min_piece}"
                );
                load[g] += b - a;
            }
        }
        let ideal = (jobs * h).div_ceil(groups);
        assert!(
            load.iter().all(|&l| l <= ideal + min_piece),
            "{load:?} vs {ideal}"
        );
    }
}

#[test]
fn constant_input_is_preserved_and_flat_guide_gives_double_box_mean() {
    let g = Plane::filled(23, 9, 0.3);
    let p = Plane::filled(23, 9, 0.8);
    let q = guided_filter(&g, &p, 4, 1e-3).unwrap();
    assert!(q.data.iter().all(|&v| (v - 0.8).abs() < 1e-6));
    let p = test_plane(23, 9, 3);
    let q = guided_filter(&g, &p, 3, 1e-3).unwrap();
    // var(I) = 0 ⇒ a = 0, b = mean(p) ⇒ q = mean(mean(p)).
    let m = box_mean(&box_mean(&p, 3).unwrap(), 3).unwrap();
    let d = q
        .data
        .iter()
        .zip(&m.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(d < 1e-5, "flat guide: {d}");
}

#[test]
fn rejects_bad_parameters() {
    let g = Plane::filled(4, 4, 0.5);
    assert!(guided_filter(&g, &g, 0, 1e-3).is_err());
    assert!(guided_filter(&g, &g, 2, 0.0).is_err());
    assert!(guided_filter(&g, &g, 2, f32::NAN).is_err());
    assert!(guided_filter(&g, &Plane::filled(5, 4, 0.5), 2, 1e-3).is_err());
    assert!(guided_filter(&Plane::zeros(0, 0), &Plane::zeros(0, 0), 2, 1e-3).is_err());
}

#[test]
fn fast_variant_is_close_on_smooth_content() {
    let (w, h) = (128, 96);
    let g = Plane {
        width: w,
        height: h,
        data: (0..w * h)
            .map(|k| (k % w) as f32 / w as f32 * 0.8 + 0.1)
            .collect(),
    };
    let p = test_plane(w, h, 9);
    let exact = guided_filter(&g, &p, 16, 1e-3).unwrap();
    let fast = fast_guided_filter_multi(&g, &[&p], 16, &[1e-3], 4)
        .unwrap()
        .remove(0);
    let mad: f32 = exact
        .data
        .iter()
        .zip(&fast.data)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / (w * h) as f32;
    assert!(mad < 0.02, "mean |Δ| {mad}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn guided_property_matches_reference(
        w in 1usize..40, h in 1usize..40, r in 1usize..12, seed in 0u64..1000,
        eps_i in 0usize..2,
    ) {
        let g = test_plane(w, h, seed);
        let p = test_plane(w, h, seed + 7);
        let eps = BANK_EPS[eps_i];
        let got = guided_filter(&g, &p, r, eps).unwrap();
        let want = reference::guided(&g, &p, r, eps as f64);
        let d = max_abs_diff(&got.data, &want);
        prop_assert!(d <= 1e-4, "{}x{} r={} eps={} seed={}: {}", w, h, r, eps, seed, d);
    }
}
