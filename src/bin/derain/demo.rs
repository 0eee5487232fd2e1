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

pub(crate) fn decode_photo() -> anyhow::Result<PlanarRgb> {
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
        style: Style::Layered,
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
    io::save_image(&dir.join("streaks.png"), &sample.streaks)?;
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
    // The learned mode on the same still, for comparison, as `derain image` runs it.
    let mut full = Pipeline::new(Config {
        mode: Mode::Full,
        backend: derain::Backend::Cpu,
        ensemble: super::common::FILES.ensemble,
        ..Config::default()
    })?;
    let t = Instant::now();
    let derained_full = full.process_image(rainy)?;
    let ms_full = t.elapsed().as_secs_f64() * 1e3;
    io::save_image(&dir.join("derained_full.png"), &derained_full)?;
    let after_full = Scores::compute(&derained_full, &clean)?;
    println!(
        "full mode  vs clean {:6.2}     {:.3}   (networks{}, {ms_full:.0} ms)",
        after_full.psnr_y,
        after_full.ssim_y,
        super::common::ensemble_note(full.config())
    );
    println!(
        "wrote {}/{{side_by_side,rainy,derained,derained_full,clean,streaks,transmission}}.png \
         (side by side: rainy | derained | clean)",
        dir.display()
    );
    #[cfg(feature = "video")]
    demo_video(&clean, &params, dir)?;
    Ok(())
}

/// Frames of the demo clip.
#[cfg(feature = "video")]
const DEMO_FRAMES: usize = 48;

/// A short clip of the same rain falling over a slowly panning view of the photo, derained
/// frame by frame (A smoothed over time), encoded as rainy | derained | clean side by side.
#[cfg(feature = "video")]
fn demo_video(clean: &PlanarRgb, rain: &RainParams, dir: &std::path::Path) -> anyhow::Result<()> {
    use derain::synth::video::{RainVideo, VideoParams};
    let (w, h) = ((clean.width() * 3 / 4) & !1, (clean.height() * 3 / 4) & !1);
    let video = RainVideo::new(
        clean,
        VideoParams {
            frames: DEMO_FRAMES,
            width: w,
            height: h,
            rain: rain.clone(),
            pan_px: (clean.width() as f32 / 5.0, 0.0),
            zoom: 1.05,
            exposure: 0.8,
            veil_variation: 0.1,
            veil_period_frames: 2.0 * DEMO_FRAMES as f32,
            shake_px: 0.0,
            objects: 0,
        },
    )?;
    let mut pipeline = Pipeline::new(Config {
        mode: Mode::Physics,
        ..Config::default()
    })?;
    let mut frames = Vec::with_capacity(DEMO_FRAMES);
    let (mut psnr_in, mut psnr_out) = (0.0, 0.0);
    for t in 0..DEMO_FRAMES {
        let s = video.frame(t)?;
        let out = pipeline.process_image(&s.input)?;
        psnr_in += derain::metrics::psnr_y(&s.input, &s.background)? / DEMO_FRAMES as f64;
        psnr_out += derain::metrics::psnr_y(&out, &s.background)? / DEMO_FRAMES as f64;
        frames.push(io::side_by_side(&[&s.input, &out, &s.background])?);
    }
    let path = dir.join("side_by_side.mp4");
    super::video::encode_frames(&path, &frames, 24)?;
    println!(
        "wrote {} ({DEMO_FRAMES} frames, rainy | derained | clean; mean Y-PSNR {psnr_in:.2} → {psnr_out:.2} dB)",
        path.display()
    );
    Ok(())
}
