//! `derain demo [--out DIR]`: the bundled photo (assets/demo/rocket.jpg, public domain, see
//! assets/demo/SOURCE.md) under heavy rain with a fixed seed, derained with the best mode
//! available, written side by side (rainy | derained | clean) with PSNR/SSIM printed.
//! The photo is embedded in the binary, so the demo needs no files and no network.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use derain::metrics::Scores;
use derain::synth::{self, RainParams, RainRange, Style};
use derain::{Config, Mode, Pipeline, PlanarRgb, io};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The bundled clean outdoor photo (640×427 JPEG).
const PHOTO: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/demo/rocket.jpg"
));

/// Seed of the demo's rain.
const DEMO_SEED: u64 = 2;
/// Rain intensity of the demo (heavy).
const DEMO_INTENSITY: f32 = 0.85;

/// Arguments of `derain demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder the images are written to.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    /// Seed of the rain (the default is the documented demo).
    #[arg(long, default_value_t = DEMO_SEED)]
    pub seed: u64,
}

fn decode_photo() -> anyhow::Result<PlanarRgb> {
    let img = image::load_from_memory(PHOTO)
        .context("decoding the bundled demo photo")?
        .to_rgb8();
    let (w, h) = img.dimensions();
    Ok(PlanarRgb::from_rgb8(w as usize, h as usize, img.as_raw())?)
}

/// Runs `derain demo`.
pub fn run(a: DemoArgs) -> anyhow::Result<()> {
    let clean = decode_photo()?;
    let mut rng = ChaCha8Rng::seed_from_u64(a.seed);
    let range = RainRange {
        style: Style::Extended,
        intensity: (DEMO_INTENSITY, DEMO_INTENSITY),
    };
    let params = RainParams::sample(&mut rng, &range)?;
    let mut sample = synth::render(&clean, &params)?;
    sample.quantize();
    let rainy = &sample.input;

    let config = Config {
        mode: Mode::Physics,
        ..Config::default()
    };
    let mut pipeline = Pipeline::new(config)?;
    let t = Instant::now();
    let derained = pipeline.process_image(rainy)?;
    let ms = t.elapsed().as_secs_f64() * 1e3;

    let dir = &a.out;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    io::save_image(&dir.join("rainy.png"), rainy)?;
    io::save_image(&dir.join("derained.png"), &derained)?;
    io::save_image(&dir.join("clean.png"), &clean)?;
    io::save_image(
        &dir.join("side_by_side.png"),
        &io::side_by_side(&[rainy, &derained, &clean])?,
    )?;
    io::save_plane(&dir.join("streaks.png"), &sample.streaks, 0.0, 1.0)?;
    io::save_plane(
        &dir.join("transmission.png"),
        &sample.transmission,
        0.0,
        1.0,
    )?;

    let before = Scores::compute(rainy, &clean)?;
    let after = Scores::compute(&derained, &clean)?;
    println!(
        "derain demo: bundled photo {}x{}, heavy rain (seed {}, intensity \
         {DEMO_INTENSITY}, β {:.2}, A [{:.2}, {:.2}, {:.2}], {} streak layers)",
        clean.width(),
        clean.height(),
        a.seed,
        params.beta,
        params.atmosphere[0],
        params.atmosphere[1],
        params.atmosphere[2],
        params.layers.len()
    );
    println!(
        "derained with mode physics on {} in {ms:.0} ms",
        pipeline.backend_name()
    );
    println!("                 PSNR-Y (dB)  SSIM-Y");
    println!(
        "rainy    vs clean   {:6.2}     {:.3}",
        before.psnr_y, before.ssim_y
    );
    println!(
        "derained vs clean   {:6.2}     {:.3}",
        after.psnr_y, after.ssim_y
    );
    println!(
        "wrote {}/{{side_by_side,rainy,derained,clean,streaks,transmission}}.png \
         (side by side: rainy | derained | clean)",
        dir.display()
    );
    Ok(())
}
