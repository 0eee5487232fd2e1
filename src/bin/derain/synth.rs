//! `derain synth` (heavy-rain training pairs from a folder of clean images) and
//! `derain synth-video` (a synthetic rainy clip with ground truth from one clean image).
//! The rendering itself is `derain::synth`; this file reads, loops, writes and reports.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use derain::metrics::{psnr_y, temporal};
use derain::synth::{
    self, Blend, LayerMethod, RainParams, RainRange, Size, Style,
    camera::Camera,
    video::{RainVideo, VideoParams},
};
use derain::{Config, Pipeline, PlanarRgb, io};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde_json::{Value, json};

use super::eval::list_images;

/// Which family rain parameters are drawn from (docs/RAIN_STYLES.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StyleArg {
    /// (a) Exactly the reference generator's MATLAB code (use `--size 720x480`).
    Reference,
    /// (b) Dense, bright, multi-direction streaks, additive with clipping.
    Dense,
    /// (c) Photographic screen-blended rain of many magnitudes and orientations.
    Screen,
    /// (d) Depth-layered streaks: near wide and defocused, far thin and faint.
    #[value(alias = "extended")]
    Layered,
    /// (e) Light rain and clear frames.
    Light,
    /// (f) Short, soft, uneven drops: heavy rain as a compressed web photo shows it.
    Grainy,
    /// One of (a)–(e) per sample.
    Mixed,
}

impl From<StyleArg> for Style {
    fn from(s: StyleArg) -> Self {
        match s {
            StyleArg::Reference => Style::Reference,
            StyleArg::Dense => Style::Dense,
            StyleArg::Screen => Style::Screen,
            StyleArg::Layered => Style::Layered,
            StyleArg::Light => Style::Light,
            StyleArg::Grainy => Style::Grainy,
            StyleArg::Mixed => Style::Mixed,
        }
    }
}

/// Parses `LO..HI` (or a single value) within [0, 1].
fn parse_intensity(s: &str) -> Result<(f32, f32), String> {
    let parse = |v: &str| {
        v.trim()
            .parse::<f32>()
            .map_err(|e| format!("`{v}`: {e}"))
            .and_then(|x| {
                if (0.0..=1.0).contains(&x) {
                    Ok(x)
                } else {
                    Err(format!("{x} is outside [0, 1]"))
                }
            })
    };
    let (lo, hi) = match s.split_once("..") {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let v = parse(s)?;
            (v, v)
        }
    };
    if lo > hi {
        return Err(format!("{lo} > {hi}"));
    }
    Ok((lo, hi))
}

/// Parses `DX,DY`.
fn parse_pair(s: &str) -> Result<(f32, f32), String> {
    let (a, b) = s
        .split_once(',')
        .ok_or_else(|| format!("`{s}`: expected DX,DY"))?;
    let f = |v: &str| v.trim().parse::<f32>().map_err(|e| format!("`{v}`: {e}"));
    Ok((f(a)?, f(b)?))
}

/// Rain options shared by `synth` and `synth-video`.
#[derive(Debug, Clone, Args)]
pub struct RainArgs {
    /// Random seed: the same seed, inputs and options give bit-identical outputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Rain family.
    #[arg(long, value_enum, default_value = "layered")]
    pub style: StyleArg,
    /// Rain intensity range `LO..HI` within [0, 1] for the layered style (0 light rain with a
    /// thin veil, 1 the heaviest reference rain); the default renders heavy rain.
    #[arg(long, default_value = "0.45..1", value_parser = parse_intensity)]
    pub intensity: (f32, f32),
}

impl RainArgs {
    fn range(&self) -> RainRange {
        RainRange {
            style: self.style.into(),
            intensity: self.intensity,
        }
    }
}

/// Arguments of `derain synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Folder of clean images (PNG or JPEG).
    #[arg(long)]
    pub clean: PathBuf,
    /// Output root: in/, gt/, streak/, trans/, atm/, depth/ (one PNG per sample, named
    /// `<clean stem>_<k>.png` in every folder) and manifest.jsonl (parameters per sample).
    #[arg(long)]
    pub out: PathBuf,
    /// Rainy samples rendered from each clean image.
    #[arg(long, default_value_t = 15)]
    pub per_image: u32,
    /// Output size: `N` scales each image down so its longer side is at most N px (never up),
    /// `WxH` scales to cover W×H and centre-crops, `orig` keeps images as they are. The
    /// default 512 keeps streak lengths (21–60 px) in proportion to the scene and renders
    /// 2,700 pairs in minutes on 2 cores.
    #[arg(long, default_value = "512")]
    pub size: Size,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub jobs: usize,
    /// Use only the first N clean images in name order (0 = all).
    #[arg(long, default_value_t = 0)]
    pub limit: usize,
    /// Add random camera effects to every sample (rescale, gamma, sensor noise, JPEG;
    /// `derain::synth::camera`).
    #[arg(long)]
    pub camera: bool,
    /// Also write the rain layer R of every sample to rain/STEM.png (16-bit grey, R/scale, the
    /// scale in manifest.jsonl as `rain_scale`): what training/ composes with, and what its
    /// tests compare against.
    #[arg(long)]
    pub save_rain: bool,
    #[command(flatten)]
    pub rain: RainArgs,
}

/// Arguments of `derain synth-bank`.
#[derive(Debug, Args)]
pub struct SynthBankArgs {
    /// Output folder: rain/NNNNN.png (16-bit grey rain layers R, scaled by `scale` in the
    /// manifest) and manifest.jsonl (family, blend and parameters per layer).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of rain layers.
    #[arg(long, default_value_t = 500)]
    pub count: usize,
    /// Layer size `WxH`.
    #[arg(long, default_value = "512x512")]
    pub size: Size,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub jobs: usize,
    #[command(flatten)]
    pub rain: RainArgs,
}

/// Arguments of `derain synth-video`.
#[derive(Debug, Args)]
pub struct SynthVideoArgs {
    /// The clean image the camera pans over.
    #[arg(long)]
    pub clean: PathBuf,
    /// Number of frames.
    #[arg(long, default_value_t = 30)]
    pub frames: usize,
    /// Output root: in/, gt/, streak/, trans/, atm/, depth/ with frames `00000.png`, … and
    /// params.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Frame size `WxH`.
    #[arg(long, default_value = "640x360")]
    pub size: Size,
    /// Camera pan over the whole clip, `DX,DY` in output pixels (0,0 = still camera).
    #[arg(long, default_value = "48,0", value_parser = parse_pair)]
    pub pan: (f32, f32),
    /// Zoom at the last frame relative to the first, in [0.5, 2] (1 = none).
    #[arg(long, default_value_t = 1.05)]
    pub zoom: f32,
    /// Open fraction of the frame interval, (0, 1]: drops fall length/exposure px per frame.
    #[arg(long, default_value_t = 0.8)]
    pub exposure: f32,
    /// Relative amplitude of the slow oscillation of the veil density β, [0, 0.5].
    #[arg(long, default_value_t = 0.1)]
    pub veil_variation: f32,
    /// Camera shake: a random offset of up to ± this many pixels per frame and axis, [0, 64].
    #[arg(long, default_value_t = 0.0)]
    pub shake: f32,
    /// Number of textured objects moving across the scene (at most 64).
    #[arg(long, default_value_t = 0)]
    pub objects: usize,
    /// Also derain the clip with the physics pipeline and print the flicker (Y levels, static
    /// ground-truth pixels) of the rainy input and of the derained output.
    #[arg(long)]
    pub score: bool,
    #[command(flatten)]
    pub rain: RainArgs,
}

fn blend_name(b: Blend) -> &'static str {
    match b {
        Blend::Achromatic => "achromatic",
        Blend::AddClip => "add_clip",
        Blend::Screen => "screen",
    }
}

fn params_json(p: &RainParams) -> Value {
    json!({
        "style": p.style.name(),
        "blend": blend_name(p.blend),
        "background_blur_px": p.background_blur_px,
        "intensity": p.intensity,
        "beta": p.beta,
        "atmosphere": p.atmosphere,
        "seed": p.seed,
        "depth": {
            "horizon": p.depth.horizon, "offset": p.depth.offset, "gamma": p.depth.gamma,
            "tilt": p.depth.tilt, "wobble": p.depth.wobble, "blur_px": p.depth_blur_px,
        },
        "layers": p.layers.iter().map(|l| json!({
            "density": l.density, "amplitude": l.amplitude, "scale": l.scale,
            "angle_deg": l.angle_deg, "length_px": l.length_px, "defocus_px": l.defocus_px,
            "weight": l.weight, "seed_max": if l.seed_max.is_finite() { json!(l.seed_max) } else { Value::Null },
            "seed_blur_px": l.seed_blur_px, "levels": l.levels.map(|(a, b)| [a, b]),
            "method": match l.method { LayerMethod::Fast => "fast", LayerMethod::Matlab => "matlab" },
        })).collect::<Vec<_>>(),
    })
}

fn camera_json(c: &Camera) -> Value {
    json!({
        "rescale": c.rescale, "gamma": c.gamma, "read_noise": c.read_noise,
        "shot_noise": c.shot_noise, "jpeg_quality": c.jpeg_quality,
    })
}

/// One rendered sample's record for manifest.jsonl and the summary.
struct Record {
    name: String,
    psnr_y: f64,
    line: String,
}

fn render_one_image(
    path: &Path,
    a: &SynthArgs,
    range: &RainRange,
    digits: usize,
) -> anyhow::Result<Vec<Record>> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .with_context(|| format!("{}: file name is not UTF-8", path.display()))?;
    let mut clean = synth::fit(&io::load_image(path)?, a.size)?;
    clean.quantize();
    let gt_png = synth::encode_png(&clean)?;
    let mut out = Vec::with_capacity(a.per_image as usize);
    for k in 0..a.per_image as u64 {
        let name = format!("{stem}_{k:0digits$}");
        let seed = synth::sample_seed(a.rain.seed, stem, k);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let params = RainParams::sample(&mut rng, range)?;
        let mut s = synth::render(&clean, &params)?;
        let rain_scale = if a.save_rain {
            let r = synth::rain_layer(clean.width(), clean.height(), &params)?;
            let dir = a.out.join("rain");
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            Some(save_rain16(&dir.join(format!("{name}.png")), &r)?)
        } else {
            None
        };
        let camera = a.camera.then(|| Camera::sample(&mut rng));
        if let Some(c) = &camera {
            s = c.apply(s)?;
        }
        s.quantize();
        if camera.is_some() {
            // The camera changes J too (rescale, tone curve).
            s.save(&a.out, &name)?;
        } else {
            s.save_without_background(&a.out, &name)?;
            let gt = a.out.join("gt").join(format!("{name}.png"));
            std::fs::write(&gt, &gt_png).with_context(|| format!("writing {}", gt.display()))?;
        }
        let psnr = psnr_y(&s.input, &s.background)?;
        let line = json!({
            "name": name, "source": path.file_name().and_then(|f| f.to_str()),
            "sample_seed": seed, "width": s.width(), "height": s.height(),
            "psnr_y_input": (psnr * 1000.0).round() / 1000.0, "params": params_json(&params),
            "camera": camera.as_ref().map(camera_json), "rain_scale": rain_scale,
        })
        .to_string();
        out.push(Record {
            name,
            psnr_y: psnr,
            line,
        });
    }
    Ok(out)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

/// Runs `derain synth`.
pub fn run_synth(a: SynthArgs) -> anyhow::Result<()> {
    if a.per_image == 0 {
        bail!("--per-image must be at least 1");
    }
    let mut images = list_images(&a.clean)?;
    if a.limit > 0 {
        images.truncate(a.limit);
    }
    if images.is_empty() {
        bail!("no PNG/JPEG images in {}", a.clean.display());
    }
    // Renders are named after the clean image's stem.
    super::common::unique_stems(images.iter().map(|p| p.as_path()), "renders")?;
    for d in synth::LAYER_DIRS {
        let dir = a.out.join(d);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let range = a.rain.range();
    let digits = (a.per_image - 1).max(1).to_string().len().max(2);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.jobs)
        .build()
        .context("starting the worker threads")?;
    let t0 = Instant::now();
    let done = AtomicUsize::new(0);
    let total = images.len();
    eprintln!(
        "rendering {} pairs from {total} images in {} ({} threads, size {}, {:?} style, \
         intensity {}..{}, seed {})",
        total * a.per_image as usize,
        a.clean.display(),
        pool.current_num_threads(),
        a.size,
        a.rain.style,
        range.intensity.0,
        range.intensity.1,
        a.rain.seed
    );
    let results: Vec<anyhow::Result<Vec<Record>>> = pool.install(|| {
        images
            .par_iter()
            .map(|p| {
                let r = render_one_image(p, &a, &range, digits);
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_multiple_of(10) || n == total {
                    eprintln!("  {n}/{total} images, {:.1} s", t0.elapsed().as_secs_f64());
                }
                r
            })
            .collect()
    });
    let elapsed = t0.elapsed().as_secs_f64();
    // An image that cannot be rendered (unreadable, too small) is named and skipped; the
    // manifest lists every pair that was made, and the command then fails.
    let mut records: Vec<Record> = Vec::new();
    let mut failed = 0usize;
    for (p, r) in images.iter().zip(results) {
        match r {
            Ok(v) => records.extend(v),
            Err(e) => {
                failed += 1;
                eprintln!("derain synth: skipped {}: {e:#}", p.display());
            }
        }
    }
    records.sort_by(|x, y| x.name.cmp(&y.name));
    let manifest = a.out.join("manifest.jsonl");
    let text: String = records.iter().map(|r| format!("{}\n", r.line)).collect();
    std::fs::write(&manifest, text).with_context(|| format!("writing {}", manifest.display()))?;
    if records.is_empty() {
        bail!(
            "none of the {total} images in {} was rendered (named above)",
            a.clean.display()
        );
    }
    let mut ps: Vec<f64> = records.iter().map(|r| r.psnr_y).collect();
    ps.sort_by(f64::total_cmp);
    let inside = ps.iter().filter(|&&p| (12.0..=19.0).contains(&p)).count();
    println!(
        "{} pairs in {elapsed:.1} s ({:.1} ms per pair) -> {}",
        records.len(),
        1e3 * elapsed / records.len() as f64,
        a.out.display()
    );
    println!(
        "input-vs-clean Y-PSNR (dB): min {:.2}  p10 {:.2}  median {:.2}  mean {:.2}  p90 {:.2}  \
         max {:.2}; {:.1}% in [12, 19]",
        ps[0],
        percentile(&ps, 0.1),
        percentile(&ps, 0.5),
        ps.iter().sum::<f64>() / ps.len() as f64,
        percentile(&ps, 0.9),
        ps[ps.len() - 1],
        100.0 * inside as f64 / ps.len() as f64
    );
    if failed > 0 {
        bail!(
            "{failed} of {total} images in {} were not rendered (named above); \
             manifest.jsonl lists the {} pairs that were",
            a.clean.display(),
            records.len()
        );
    }
    Ok(())
}

/// Runs `derain synth-video`.
pub fn run_synth_video(a: SynthVideoArgs) -> anyhow::Result<()> {
    let Size::Exact(width, height) = a.size else {
        bail!("--size must be WxH for synth-video");
    };
    if a.score && a.frames < 2 {
        bail!("--score needs at least two frames");
    }
    // Frames are rendered a few at a time (one per worker thread) and only kept for --score.
    // --score holds the rainy, clean and derained frames (three f32 RGB frames, 36 B/px).
    let pixels = width as u64 * height as u64;
    let in_flight = rayon::current_num_threads() as u64;
    let held = if a.score { 40 * a.frames as u64 } else { 0 };
    let need = pixels.saturating_mul((FRAME_BYTES_PER_PIXEL * in_flight).saturating_add(held));
    if let Some(have) = io::available_memory()
        && need > have
    {
        bail!(
            "--size {width}x{height}{}: about {} MiB of memory needed, {} MiB available",
            if a.score { " with --score" } else { "" },
            need >> 20,
            have >> 20
        );
    }
    let source = io::load_image(&a.clean)?;
    let mut rng = ChaCha8Rng::seed_from_u64(synth::sample_seed(a.rain.seed, "video", 0));
    let rain = RainParams::sample(&mut rng, &a.rain.range())?;
    let params = VideoParams {
        frames: a.frames,
        width,
        height,
        rain: rain.clone(),
        pan_px: a.pan,
        zoom: a.zoom,
        exposure: a.exposure,
        veil_variation: a.veil_variation,
        veil_period_frames: (2 * a.frames).max(2) as f32,
        shake_px: a.shake,
        objects: a.objects,
    };
    let video = RainVideo::new(&source, params)?;
    for d in synth::LAYER_DIRS {
        std::fs::create_dir_all(a.out.join(d))
            .with_context(|| format!("creating {}", a.out.join(d).display()))?;
    }
    let t0 = Instant::now();
    // (input-vs-clean Y-PSNR, the rainy and clean frames when --score needs them)
    type Rendered = (f64, Option<(PlanarRgb, PlanarRgb)>);
    let rendered: Vec<Rendered> = (0..a.frames)
        .into_par_iter()
        .map(|t| -> anyhow::Result<Rendered> {
            let mut s = video.frame(t)?;
            s.quantize();
            s.save(&a.out, &format!("{t:05}"))?;
            let p = psnr_y(&s.input, &s.background)?;
            Ok((p, a.score.then_some((s.input, s.background))))
        })
        .collect::<anyhow::Result<_>>()?;
    let elapsed = t0.elapsed().as_secs_f64();
    let meta = json!({
        "source": a.clean.display().to_string(), "frames": a.frames, "width": width,
        "height": height, "pan_px": [a.pan.0, a.pan.1], "zoom": a.zoom,
        "exposure": a.exposure, "veil_variation": a.veil_variation,
        "shake_px": a.shake, "objects": a.objects,
        "veil_period_frames": video.params().veil_period_frames,
        "betas": (0..a.frames).map(|t| video.beta(t)).collect::<Vec<_>>(),
        "rain": params_json(&rain),
    });
    std::fs::write(
        a.out.join("params.json"),
        serde_json::to_string_pretty(&meta)?,
    )?;
    let mean_psnr = rendered.iter().map(|r| r.0).sum::<f64>() / rendered.len() as f64;
    println!(
        "{} frames {width}x{height} in {elapsed:.1} s -> {} (mean input-vs-clean Y-PSNR {mean_psnr:.2} dB)",
        a.frames,
        a.out.display()
    );
    if a.score {
        let (rainy, gt): (Vec<_>, Vec<_>) = rendered.into_iter().filter_map(|r| r.1).unzip();
        let mut pipeline = Pipeline::new(Config::default())?;
        let derained = rainy
            .iter()
            .map(|f| pipeline.process_image(f))
            .collect::<derain::Result<Vec<_>>>()?;
        const STATIC_Y: f64 = 2.0;
        let fi = temporal::flicker(&rainy, &gt, Some(STATIC_Y))?;
        let fo = temporal::flicker(&derained, &gt, Some(STATIC_Y))?;
        println!(
            "flicker on static ground truth (|ΔY_gt| ≤ {STATIC_Y}, {:.0}% of pixels): \
             rainy {:.2}, derained (physics) {:.2} Y levels",
            100.0 * fi.counted_fraction,
            fi.mean,
            fo.mean
        );
    }
    Ok(())
}

/// Memory per pixel of one `synth-video` frame while it is rendered and saved (the source
/// resampled, rain, veil and object layers, the f32 frames and their PNGs), about a quarter
/// over the measured peak: 4 frames of 3000×2000 on 2 threads peak at 853 MB, ≈ 70 B/px per
/// frame in flight.
const FRAME_BYTES_PER_PIXEL: u64 = 90;

/// Writes one rain layer as a 16-bit grey PNG of R/scale (scale = max R, at least 1e-6).
fn save_rain16(path: &Path, r: &derain::Plane) -> anyhow::Result<f32> {
    let scale = r.data.iter().fold(0f32, |m, &v| m.max(v)).max(1e-6);
    let px: Vec<u16> = r
        .data
        .iter()
        .map(|&v| ((v / scale).clamp(0.0, 1.0) * 65535.0).round() as u16)
        .collect();
    let img =
        image::ImageBuffer::<image::Luma<u16>, _>::from_raw(r.width as u32, r.height as u32, px)
            .context("rain layer buffer")?;
    img.save(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(scale)
}

/// Runs `derain synth-bank`: rain layers R of one family for training-time composition
/// (`training/derain_train/rain.py` blends them over clean crops with its own veil, A and
/// camera effects, with the same formulas as `derain::synth::compose`).
pub fn run_synth_bank(a: SynthBankArgs) -> anyhow::Result<()> {
    let Size::Exact(w, h) = a.size else {
        bail!("--size must be WxH for synth-bank");
    };
    if a.count == 0 {
        bail!("--count must be at least 1");
    }
    let dir = a.out.join("rain");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let range = a.rain.range();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.jobs)
        .build()
        .context("starting the worker threads")?;
    let t0 = Instant::now();
    let lines: Vec<String> = pool.install(|| {
        (0..a.count)
            .into_par_iter()
            .map(|i| -> anyhow::Result<String> {
                let seed = synth::sample_seed(a.rain.seed, "bank", i as u64);
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let params = RainParams::sample(&mut rng, &range)?;
                let r = synth::rain_layer(w, h, &params)?;
                let name = format!("{i:05}");
                let scale = save_rain16(&dir.join(format!("{name}.png")), &r)?;
                Ok(json!({
                    "name": name, "sample_seed": seed, "width": w, "height": h,
                    "scale": scale, "params": params_json(&params),
                })
                .to_string())
            })
            .collect::<anyhow::Result<_>>()
    })?;
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let manifest = a.out.join("manifest.jsonl");
    std::fs::write(&manifest, text).with_context(|| format!("writing {}", manifest.display()))?;
    println!(
        "{} rain layers {w}x{h} ({:?}) in {:.1} s -> {}",
        a.count,
        a.rain.style,
        t0.elapsed().as_secs_f64(),
        a.out.display()
    );
    Ok(())
}
