//! Our PSNR/SSIM against scikit-image on committed fixtures.
//! The fixtures and expected values were made by `scripts/make_metric_fixtures.py`
//! (scikit-image `peak_signal_noise_ratio` and `structural_similarity(gaussian_weights=True,
//! sigma=1.5, use_sample_covariance=False, data_range=255)` on BT.601 Y).

use std::path::Path;

use derain::{io, metrics};

#[test]
fn metrics_match_scikit_image_within_1e_3() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metrics");
    let text = std::fs::read_to_string(dir.join("expected.json")).expect("expected.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    let pairs = v["pairs"].as_array().expect("pairs");
    assert!(pairs.len() >= 3, "fixtures missing");
    for p in pairs {
        let a = io::load_image(&dir.join(p["a"].as_str().unwrap())).unwrap();
        let b = io::load_image(&dir.join(p["b"].as_str().unwrap())).unwrap();
        let name = p["name"].as_str().unwrap();
        let got = [
            ("psnr_y", metrics::psnr_y(&a, &b).unwrap()),
            ("ssim_y", metrics::ssim_y(&a, &b).unwrap()),
            ("psnr_rgb", metrics::psnr_rgb(&a, &b).unwrap()),
        ];
        for (key, value) in got {
            let want = p[key].as_f64().unwrap();
            assert!(
                (value - want).abs() <= 1e-3,
                "{name} {key}: ours {value} vs scikit-image {want}"
            );
        }
    }
}
