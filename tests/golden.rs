//! Golden-image tests, as image-rs does them: small committed rainy inputs
//! (tests/golden/input_*.png, rendered by `derain::synth` over the procedural scene of
//! tests/common) and the expected output of each mode and shipped model size
//! (tests/golden/MODE_*.png). An output must match its golden image to within
//! [`MIN_PSNR_DB`]: the arithmetic is deterministic, so this allows only for another
//! instruction set (a build without AVX2). On a mismatch the actual output is written to
//! target/test-output/ and its path printed.
//!
//! When a change is meant to change the output (new networks, a new estimation), bless the new
//! outputs and commit them: `DERAIN_BLESS=1 cargo test --release --test golden`.

mod common;

use std::path::{Path, PathBuf};

use derain::nets::{ModelChoice, ModelSize};
use derain::synth::{RainParams, RainRange, Style};
use derain::{Backend, Config, Mode, Pipeline, PlanarRgb, io};
use rand::SeedableRng;

/// Smallest Y-PSNR of an output against its golden image.
const MIN_PSNR_DB: f64 = 50.0;

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn bless() -> bool {
    std::env::var_os("DERAIN_BLESS").is_some_and(|v| v == "1")
}

/// The rainy inputs: two families over the test scene. Rendered and compared with the
/// committed file, which is what the goldens were made from.
fn inputs() -> Vec<(&'static str, PlanarRgb)> {
    [
        ("reference", Style::Reference, 3u64),
        ("layered", Style::Layered, 5),
    ]
    .into_iter()
    .map(|(name, style, seed)| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let range = RainRange {
            style,
            intensity: (0.8, 0.8),
        };
        let p = RainParams::sample(&mut rng, &range).unwrap();
        let mut s = derain::synth::render(&common::scene(128, 96), &p).unwrap();
        s.quantize();
        let path = golden(&format!("input_{name}.png"));
        if bless() {
            io::save_image(&path, &s.input).unwrap();
        }
        let committed = io::load_image(&path).unwrap_or_else(|e| {
            panic!("{e} (run with DERAIN_BLESS=1 to create the golden images)")
        });
        assert_eq!(
            committed, s.input,
            "{name}: the renderer no longer makes the committed input (bless on purpose)"
        );
        (name, committed)
    })
    .collect()
}

fn check(config: Config, label: &str) {
    let mut p = Pipeline::new(config).unwrap();
    for (name, img) in inputs() {
        let mut out = p.process_image(&img).unwrap();
        out.quantize();
        // The mode must change the image for the comparison to mean anything.
        let moved = derain::metrics::psnr_y(&out, &img).unwrap();
        assert!(
            moved < 30.0,
            "{label} on {name}: output within {moved:.1} dB of the input"
        );
        let path = golden(&format!("{label}_{name}.png"));
        if bless() {
            io::save_image(&path, &out).unwrap();
            continue;
        }
        let want = io::load_image(&path).unwrap_or_else(|e| {
            panic!("{e} (run with DERAIN_BLESS=1 to create the golden images)")
        });
        let psnr = derain::metrics::psnr_y(&out, &want).unwrap();
        if psnr < MIN_PSNR_DB {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-output");
            std::fs::create_dir_all(&dir).unwrap();
            let actual = dir.join(format!("{label}_{name}.png"));
            io::save_image(&actual, &out).unwrap();
            panic!(
                "{label} on {name}: {psnr:.2} dB against {} (< {MIN_PSNR_DB}); actual output: {}",
                path.display(),
                actual.display()
            );
        }
    }
}

#[test]
fn physics_mode_matches_its_golden_images() {
    check(
        Config {
            mode: Mode::Physics,
            backend: Backend::Cpu,
            ..Config::default()
        },
        "physics",
    );
}

#[test]
fn full_mode_matches_its_golden_images_for_both_sizes() {
    for size in [ModelSize::Fast, ModelSize::Quality] {
        check(
            Config {
                mode: Mode::Full,
                backend: Backend::Cpu,
                model: Some(ModelChoice::Embedded(size)),
                ..Config::default()
            },
            &format!("full_{}", size.name()),
        );
    }
}
