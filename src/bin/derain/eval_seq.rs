//! `derain eval --sequence`: a video as two folders of frames (rainy and clean, name order),
//! run through one pipeline in order so temporal state carries across frames. Scores per
//! frame and their mean, plus the flicker metric (`derain::metrics::temporal`) of the input
//! and of the output; `--json` prints it all as one object, `--csv` writes a line per frame.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, bail};
use derain::metrics::Scores;
use derain::metrics::temporal::flicker;
use derain::{Pipeline, PlanarRgb, io};
use serde_json::json;

use super::common::{Defaults, FILES};
use super::eval::{EvalArgs, load_pair};

/// Pixels whose clean Y changes by at most this many levels between frames count as static
/// for the flicker metric (as in `derain synth-video --score`).
const STATIC_Y: f64 = 2.0;

/// Running mean of per-step flicker values over consecutive frame pairs.
#[derive(Default)]
struct FlickerSum {
    total: f64,
    steps: usize,
}

impl FlickerSum {
    /// Adds the step between the two frames of `out` against `gt` (skipped when the
    /// metric has nothing to count, e.g. frames of different sizes).
    fn add(&mut self, out: &[PlanarRgb], gt: &[PlanarRgb]) {
        if let Ok(f) = flicker(out, gt, Some(STATIC_Y)) {
            self.total += f.mean;
            self.steps += 1;
        }
    }
    fn mean(&self) -> Option<f64> {
        (self.steps > 0).then(|| self.total / self.steps as f64)
    }
}

/// A sequence is scored as `video` runs it, but in the file commands' mode: `full`, without the
/// mirror ensemble (`--ensemble on` adds it), so the figures stay those of a live stream.
const SEQUENCE: Defaults = Defaults {
    mode: FILES.mode,
    ensemble: false,
};

/// Runs the sequence evaluation over `pairs` (rainy, clean) in name order.
pub fn run(a: &EvalArgs, pairs: &[(PathBuf, PathBuf)]) -> anyhow::Result<()> {
    if a.components.is_some() {
        bail!("--components scores single images; it does not combine with --sequence");
    }
    let mut config = a.engine.config(SEQUENCE);
    config.temporal = a.temporal;
    let mut pipeline = Pipeline::new(config)?;
    let mut rows = Vec::with_capacity(pairs.len());
    let (mut fl_in, mut fl_out) = (FlickerSum::default(), FlickerSum::default());
    // The last two rainy, derained and clean frames, for the flicker steps.
    let (mut ins, mut outs, mut gts) = (Vec::new(), Vec::new(), Vec::new());
    let mut share = 0.0;
    for (r, c) in pairs {
        let (rainy, clean) = load_pair(r, c)?;
        let mut out = pipeline
            .process_image(&rainy)
            .with_context(|| format!("derain {}", r.display()))?;
        share += pipeline.last_temporal().background_share as f64;
        out.quantize(); // score what a saved 8-bit output would score
        if let Some(dir) = &a.save {
            // (`save_image` creates the folder.)
            let name = r.file_name().unwrap_or_default();
            io::save_image(&dir.join(name).with_extension("png"), &out)?;
        }
        let base = Scores::compute(&rainy, &clean)?;
        let got = Scores::compute(&out, &clean)?;
        rows.push((r.clone(), got, base));
        for (last, frame) in [(&mut ins, rainy), (&mut outs, out), (&mut gts, clean)] {
            if last.len() == 2 {
                last.remove(0);
            }
            last.push(frame);
        }
        if gts.len() == 2 {
            fl_in.add(&ins, &gts);
            fl_out.add(&outs, &gts);
        }
    }
    let got: Vec<Scores> = rows.iter().map(|r| r.1).collect();
    let base: Vec<Scores> = rows.iter().map(|r| r.2).collect();
    let (m, mb) = (
        Scores::mean(&got).context("no frames")?,
        Scores::mean(&base).context("no frames")?,
    );
    let cfg = pipeline.config();
    let mode = format!("{:?}", cfg.mode).to_lowercase();
    let temporal = cfg.temporal.name();
    let share = share / rows.len() as f64;
    if let Some(path) = &a.csv {
        let mut text = String::from("frame,psnr_y_in,psnr_y_out,ssim_y_in,ssim_y_out\n");
        for (p, g, b) in &rows {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            writeln!(
                text,
                "{name},{:.4},{:.4},{:.5},{:.5}",
                b.psnr_y, g.psnr_y, b.ssim_y, g.ssim_y
            )?;
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if a.json {
        let frames: Vec<_> = rows
            .iter()
            .map(|(p, g, b)| {
                json!({"file": p.display().to_string(),
                "psnr_y": g.psnr_y, "ssim_y": g.ssim_y, "psnr_y_in": b.psnr_y, "ssim_y_in": b.ssim_y})
            })
            .collect();
        let obj = json!({
            "mode": mode, "backend": pipeline.backend_name(), "temporal": temporal,
            "ensemble": pipeline.config().ensemble,
            "version": env!("CARGO_PKG_VERSION"), "count": rows.len(),
            "mean": {"psnr_y": m.psnr_y, "ssim_y": m.ssim_y, "psnr_rgb": m.psnr_rgb},
            "baseline": {"psnr_y": mb.psnr_y, "ssim_y": mb.ssim_y, "psnr_rgb": mb.psnr_rgb},
            "flicker": {"static_threshold_y": STATIC_Y, "input": fl_in.mean(), "output": fl_out.mean()},
            "background_share": share,
            "frames": frames,
        });
        println!("{}", serde_json::to_string_pretty(&obj)?);
        return Ok(());
    }
    println!(
        "{:<32} {:>17} {:>17}",
        "frame", "Y-PSNR in→out", "Y-SSIM in→out"
    );
    for (p, g, b) in &rows {
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        println!(
            "{name:<32} {:>7.2} → {:>7.2} {:>7.4} → {:>7.4}",
            b.psnr_y, g.psnr_y, b.ssim_y, g.ssim_y
        );
    }
    let fmt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}"));
    println!(
        "{:<32} {:>7.2} → {:>7.2} {:>7.4} → {:>7.4}",
        format!(
            "mean of {} ({mode}, temporal {temporal}, {})",
            rows.len(),
            pipeline.backend_name()
        ),
        mb.psnr_y,
        m.psnr_y,
        mb.ssim_y,
        m.ssim_y
    );
    println!(
        "flicker (static clean pixels, |ΔY| ≤ {STATIC_Y}): input {}, output {} Y levels; \
         background share {:.1}%",
        fmt(fl_in.mean()),
        fmt(fl_out.mean()),
        100.0 * share
    );
    Ok(())
}
