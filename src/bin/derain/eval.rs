//! `derain eval --rainy DIR --clean DIR [--json]`: PSNR/SSIM on Y and RGB PSNR, with the
//! identity baseline (input vs clean) beside the derained scores.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use derain::metrics::Scores;
use derain::metrics::psnr_plane;
use derain::pipeline::blend_image;
use derain::{Pipeline, PlanarRgb, io};
use serde_json::json;

use super::common::{EngineArgs, FILES};
use super::eval_report::{Row, metric_stats};

/// Arguments of `derain eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Folder of rainy images.
    #[arg(long)]
    pub rainy: PathBuf,
    /// Folder of clean images, paired by file name or by the number in the name.
    #[arg(long)]
    pub clean: PathBuf,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write the derained images into this folder.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// A `derain synth` output root: also score the estimated components against its
    /// streak/, trans/ and atm/ layers (S and T PSNR, mean |ΔA|), as the paper's ablation.
    #[arg(long)]
    pub components: Option<PathBuf>,
    /// Both folders hold one video, frames in name order: run them through one pipeline in
    /// order, with temporal state carried across frames, and add the flicker metric.
    #[arg(long)]
    pub sequence: bool,
    /// With `--sequence`: the temporal stage, `off`, `on` or `auto`.
    #[arg(long, default_value = "off", requires = "sequence")]
    pub temporal: derain::pipeline::TemporalMode,
    /// Also write one CSV line per image (per frame with `--sequence`) here.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write a report into this folder: comparison grids (rainy | derained | clean) of the 3
    /// worst and 3 best images by Y-PSNR gain, a PNG plot of Y-PSNR per image, report.md.
    #[arg(long, conflicts_with = "sequence")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// What `io` reads (the `image` crate is built with PNG and JPEG only, as `derain image`).
const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Image files of a folder, sorted by name.
pub fn list_images(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let rd =
        std::fs::read_dir(dir).with_context(|| format!("cannot read folder {}", dir.display()))?;
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    v.sort();
    Ok(v)
}

/// The last run of digits in a file stem, as a number (`rain-012.png` → 12).
fn index_of(p: &Path) -> Option<u64> {
    let stem = p.file_stem()?.to_str()?;
    let digits: String = stem
        .chars()
        .rev()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.chars().rev().collect::<String>().parse().ok()
}

/// Pairs rainy and clean files: by identical file name when every rainy file has one, else by
/// the number in the name. A rainy file without a partner is an error naming it.
pub fn pair_files(rainy: &[PathBuf], clean: &[PathBuf]) -> anyhow::Result<Vec<(PathBuf, PathBuf)>> {
    if rainy.is_empty() {
        bail!("no images in the rainy folder");
    }
    let by_name: BTreeMap<_, _> = clean
        .iter()
        .map(|p| (p.file_name().map(|n| n.to_owned()), p))
        .collect();
    if rainy
        .iter()
        .all(|r| by_name.contains_key(&r.file_name().map(|n| n.to_owned())))
    {
        return Ok(rainy
            .iter()
            .map(|r| {
                (
                    r.clone(),
                    by_name[&r.file_name().map(|n| n.to_owned())].clone(),
                )
            })
            .collect());
    }
    let mut by_index = BTreeMap::new();
    for c in clean {
        if let Some(i) = index_of(c)
            && let Some(prev) = by_index.insert(i, c)
        {
            bail!(
                "clean files {} and {} have the same number {i}",
                prev.display(),
                c.display()
            );
        }
    }
    rainy
        .iter()
        .map(|r| {
            let partner = index_of(r).and_then(|i| by_index.get(&i));
            match partner {
                Some(c) => Ok((r.clone(), (*c).clone())),
                None => bail!(
                    "no clean partner for {} (by name or by number)",
                    r.display()
                ),
            }
        })
        .collect()
}

/// Component errors of one image against rendered ground truth.
#[derive(Debug, Clone, Copy)]
struct ComponentScores {
    psnr_s: f64,
    psnr_t: f64,
    a_abs_err: f64,
}

fn component_scores(
    root: &Path,
    rainy: &Path,
    c: &derain::physics::Components,
) -> anyhow::Result<ComponentScores> {
    let stem = rainy.file_stem().unwrap_or_default().to_string_lossy();
    let layer = |d: &str| root.join(d).join(format!("{stem}.png"));
    let s = io::load_plane(&layer("streak"))?;
    let t = io::load_plane(&layer("trans"))?;
    let a = io::load_image(&layer("atm"))?;
    let a_gt = [0, 1, 2].map(|k| a.planes[k].data[0]);
    Ok(ComponentScores {
        psnr_s: psnr_plane(&c.streaks, &s)?,
        psnr_t: psnr_plane(&c.transmission, &t)?,
        a_abs_err: (0..3)
            .map(|k| (c.atmosphere[k] - a_gt[k]).abs() as f64)
            .sum::<f64>()
            / 3.0,
    })
}

fn scores_json(s: &Scores) -> serde_json::Value {
    json!({"psnr_y": s.psnr_y, "ssim_y": s.ssim_y, "psnr_rgb": s.psnr_rgb})
}

/// A rainy image and its clean pair, which must be the same size.
pub fn load_pair(r: &Path, c: &Path) -> anyhow::Result<(PlanarRgb, PlanarRgb)> {
    let rainy = io::load_image(r)?;
    let clean = io::load_image(c)?;
    if (rainy.width(), rainy.height()) != (clean.width(), clean.height()) {
        bail!(
            "size mismatch: {} is {}x{}, {} is {}x{}",
            r.display(),
            rainy.width(),
            rainy.height(),
            c.display(),
            clean.width(),
            clean.height()
        );
    }
    Ok((rainy, clean))
}

/// Runs `derain eval`.
pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    let pairs = pair_files(&list_images(&a.rainy)?, &list_images(&a.clean)?)?;
    if let Some(dir) = &a.save {
        // Saved as NAME.png: neither over an input nor two under one name.
        super::common::save_folder_apart(dir, &[&a.rainy, &a.clean])?;
        super::common::unique_stems(pairs.iter().map(|(r, _)| r.as_path()), "a PNG in --save")?;
    }
    if let Some(dir) = &a.report {
        super::common::save_folder_apart(dir, &[&a.rainy, &a.clean])?;
    }
    if a.sequence {
        return super::eval_seq::run(&a, &pairs);
    }
    let mut pipeline = Pipeline::new(a.engine.config(FILES))?;
    let mut rows = Vec::new();
    let mut comp_rows = Vec::new();
    for (r, c) in &pairs {
        let (rainy, clean) = load_pair(r, c)?;
        pipeline.reset(); // independent images: no temporal smoothing across them
        let comps = pipeline.components(&rainy)?;
        let comp = match &a.components {
            Some(root) => Some(component_scores(root, r, &comps)?),
            None => None,
        };
        let mut out = comps.background;
        blend_image(&mut out, &rainy, pipeline.config().strength);
        out.quantize(); // score what a saved 8-bit output would score
        if let Some(dir) = &a.save {
            io::save_image(
                &dir.join(r.file_name().unwrap_or_default())
                    .with_extension("png"),
                &out,
            )?;
        }
        let base =
            Scores::compute(&rainy, &clean).with_context(|| format!("scoring {}", r.display()))?;
        let got =
            Scores::compute(&out, &clean).with_context(|| format!("scoring {}", r.display()))?;
        rows.push(Row {
            rainy: r.clone(),
            clean: c.clone(),
            got,
            base,
        });
        comp_rows.extend(comp);
    }
    let comp_mean = (!comp_rows.is_empty()).then(|| {
        let n = comp_rows.len() as f64;
        ComponentScores {
            psnr_s: comp_rows.iter().map(|c| c.psnr_s).sum::<f64>() / n,
            psnr_t: comp_rows.iter().map(|c| c.psnr_t).sum::<f64>() / n,
            a_abs_err: comp_rows.iter().map(|c| c.a_abs_err).sum::<f64>() / n,
        }
    });
    let got: Vec<Scores> = rows.iter().map(|r| r.got).collect();
    let base: Vec<Scores> = rows.iter().map(|r| r.base).collect();
    let (m, mb) = (
        Scores::mean(&got).expect("non-empty"),
        Scores::mean(&base).expect("non-empty"),
    );
    let mode = format!("{:?}", pipeline.config().mode).to_lowercase();
    let cfg = pipeline.config();
    let settings = json!({
        "mode": mode,
        "backend": pipeline.backend_name(),
        // The networks that ran (null in `physics` mode).
        "model": (cfg.mode == derain::Mode::Full)
            .then(|| cfg.model_for(pipeline.backend_name()).to_string()),
        "ensemble": cfg.ensemble,
        "strength": cfg.strength,
        "physics": {
            "min_transmission": cfg.physics.min_transmission,
            "max_output_noise": cfg.physics.max_output_noise,
            "veil_removal": cfg.physics.veil_removal,
            "streak_gain": cfg.physics.streak_gain,
        },
        "rainy": a.rainy.display().to_string(),
        "clean": a.clean.display().to_string(),
    });
    let version = env!("CARGO_PKG_VERSION");
    if let Some(path) = &a.csv {
        super::eval_report::write_csv(path, &rows)?;
    }
    if let Some(dir) = &a.report {
        let text = format!("derain {version}, settings: `{settings}`");
        super::eval_report::write_report(dir, &rows, &mut pipeline, &text)?;
    }
    let summary = |got: bool| {
        let mut o = serde_json::Map::new();
        for (name, st) in metric_stats(&rows, got) {
            o.insert(
                name.into(),
                json!({"mean": st.mean, "median": st.median, "std": st.std}),
            );
        }
        serde_json::Value::Object(o)
    };
    if a.json {
        let images: Vec<_> = rows
            .iter()
            .map(|r| json!({"file": r.rainy.display().to_string(), "derained": scores_json(&r.got), "baseline": scores_json(&r.base)}))
            .collect();
        let mut obj = json!({"mode": mode, "backend": pipeline.backend_name(), "count": rows.len(),
                         "version": version, "settings": settings,
                         "mean": scores_json(&m), "baseline": scores_json(&mb),
                         "stats": {"derained": summary(true), "baseline": summary(false)},
                         "images": images});
        if let Some(c) = comp_mean {
            obj["components"] =
                json!({"psnr_s": c.psnr_s, "psnr_t": c.psnr_t, "a_abs_err": c.a_abs_err});
        }
        println!("{}", serde_json::to_string_pretty(&obj)?);
    } else {
        println!(
            "{:<40} {:>17} {:>17} {:>17}",
            "image", "Y-PSNR in→out", "Y-SSIM in→out", "RGB-PSNR in→out"
        );
        for Row {
            rainy: p,
            got: g,
            base: b,
            ..
        } in &rows
        {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            println!(
                "{:<40} {:>7.2} → {:>7.2} {:>7.4} → {:>7.4} {:>7.2} → {:>7.2}",
                name, b.psnr_y, g.psnr_y, b.ssim_y, g.ssim_y, b.psnr_rgb, g.psnr_rgb
            );
        }
        println!(
            "{:<40} {:>7.2} → {:>7.2} {:>7.4} → {:>7.4} {:>7.2} → {:>7.2}",
            format!(
                "mean of {} ({mode}, {})",
                rows.len(),
                pipeline.backend_name()
            ),
            mb.psnr_y,
            m.psnr_y,
            mb.ssim_y,
            m.ssim_y,
            mb.psnr_rgb,
            m.psnr_rgb
        );
        let (sg, sb) = (metric_stats(&rows, true), metric_stats(&rows, false));
        for (label, f) in [
            (
                "median",
                (|s: &super::eval_report::Stats| s.median) as fn(&_) -> f64,
            ),
            ("std", |s: &super::eval_report::Stats| s.std),
        ] {
            println!(
                "{:<40} {:>7.2} → {:>7.2} {:>7.4} → {:>7.4} {:>7.2} → {:>7.2}",
                label,
                f(&sb[0].1),
                f(&sg[0].1),
                f(&sb[1].1),
                f(&sg[1].1),
                f(&sb[2].1),
                f(&sg[2].1)
            );
        }
        if let Some(c) = comp_mean {
            println!(
                "components vs rendered truth: S PSNR {:.2} dB, T PSNR {:.2} dB, mean |A − A_gt| {:.4}",
                c.psnr_s, c.psnr_t, c.a_abs_err
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_by_number_when_names_differ() {
        let r = vec![
            PathBuf::from("r/rain-001.png"),
            PathBuf::from("r/rain-012.png"),
        ];
        let c = vec![
            PathBuf::from("c/norain-012.png"),
            PathBuf::from("c/norain-001.png"),
        ];
        let p = pair_files(&r, &c).unwrap();
        assert_eq!(p[1].1, PathBuf::from("c/norain-012.png"));
        let missing = pair_files(&[PathBuf::from("r/rain-7.png")], &c).unwrap_err();
        assert!(missing.to_string().contains("rain-7.png"), "{missing}");
    }
}
