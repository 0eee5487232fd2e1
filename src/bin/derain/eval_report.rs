//! What `derain eval` writes besides its table: per-image CSV, summary statistics (mean,
//! median, standard deviation) and the `--report DIR` folder: comparison grids (rainy |
//! derained | clean) of the worst and best images, a PNG plot of Y-PSNR per image and a
//! report.md that ties them together.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use derain::metrics::Scores;
use derain::{Pipeline, PlanarRgb, Plane, io};

/// One scored image.
pub struct Row {
    pub rainy: PathBuf,
    pub clean: PathBuf,
    /// Derained against clean.
    pub got: Scores,
    /// Rainy against clean (the identity baseline).
    pub base: Scores,
}

/// Mean, median and (population) standard deviation.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub mean: f64,
    pub median: f64,
    pub std: f64,
}

pub fn stats(values: &[f64]) -> Stats {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let mut s = values.to_vec();
    s.sort_by(f64::total_cmp);
    let median = match s.len() {
        0 => f64::NAN,
        k if k % 2 == 1 => s[k / 2],
        k => 0.5 * (s[k / 2 - 1] + s[k / 2]),
    };
    // With infinite scores (an output equal to its clean image) the deviation is 0 when
    // every value is the same and infinite otherwise, not the NaN of inf − inf.
    let std = if s.first() == s.last() {
        0.0
    } else if mean.is_finite() {
        var.sqrt()
    } else {
        f64::INFINITY
    };
    Stats { mean, median, std }
}

/// Stats of each metric over `rows`, derained (`got`) or baseline.
pub fn metric_stats(rows: &[Row], got: bool) -> [(&'static str, Stats); 3] {
    let pick = |f: fn(&Scores) -> f64| -> Vec<f64> {
        rows.iter()
            .map(|r| f(if got { &r.got } else { &r.base }))
            .collect()
    };
    [
        ("psnr_y", stats(&pick(|s| s.psnr_y))),
        ("ssim_y", stats(&pick(|s| s.ssim_y))),
        ("psnr_rgb", stats(&pick(|s| s.psnr_rgb))),
    ]
}

/// One line per image: file, then baseline and derained Y-PSNR, Y-SSIM, RGB-PSNR.
pub fn write_csv(path: &Path, rows: &[Row]) -> anyhow::Result<()> {
    let mut s =
        String::from("file,psnr_y_in,psnr_y_out,ssim_y_in,ssim_y_out,psnr_rgb_in,psnr_rgb_out\n");
    for r in rows {
        let name = r.rainy.display().to_string().replace(',', "_");
        let _ = writeln!(
            s,
            "{name},{:.4},{:.4},{:.5},{:.5},{:.4},{:.4}",
            r.base.psnr_y,
            r.got.psnr_y,
            r.base.ssim_y,
            r.got.ssim_y,
            r.base.psnr_rgb,
            r.got.psnr_rgb
        );
    }
    std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))
}

/// Indices of the `k` images derain helped least and most (by the Y-PSNR gain), least first.
fn worst_and_best(rows: &[Row], k: usize) -> (Vec<usize>, Vec<usize>) {
    let mut idx: Vec<usize> = (0..rows.len()).collect();
    idx.sort_by(|&a, &b| {
        let g = |i: usize| rows[i].got.psnr_y - rows[i].base.psnr_y;
        g(a).total_cmp(&g(b))
    });
    let k = k.min(idx.len().div_ceil(2));
    let worst = idx[..k].to_vec();
    let best = idx[idx.len() - k..].iter().rev().copied().collect();
    (worst, best)
}

/// A bar chart of Y-PSNR per image: for each image a grey bar (rainy input) and a blue one
/// (derained), on a scale from the lowest to the highest score, with a faint line every 5 dB.
fn plot(rows: &[Row]) -> anyhow::Result<(PlanarRgb, f64, f64)> {
    let vals = rows.iter().flat_map(|r| [r.base.psnr_y, r.got.psnr_y]);
    let (lo, hi) = vals.fold((f64::MAX, f64::MIN), |(l, h), v| {
        if v.is_finite() {
            (l.min(v), h.max(v))
        } else {
            (l, h)
        }
    });
    // Every score infinite (outputs equal to the clean images): any finite scale will do, the
    // bars go to its top.
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (30.0, 60.0) };
    let lo = (lo / 5.0).floor() * 5.0;
    let hi = ((hi / 5.0).ceil() * 5.0).max(lo + 5.0);
    let (bar, gap) = (6usize, 4usize);
    let (w, h, margin) = (
        (rows.len() * (2 * bar + gap) + 2 * gap).max(200),
        320usize,
        10usize,
    );
    let mut planes = [0; 3].map(|_| vec![1.0f32; w * h]);
    let y_of = |v: f64| {
        let t = ((v.min(hi) - lo) / (hi - lo)).clamp(0.0, 1.0);
        h - margin - (t * (h - 2 * margin) as f64) as usize
    };
    let mut fill = |x0: usize, x1: usize, y0: usize, y1: usize, c: [f32; 3]| {
        for y in y0.min(h)..y1.min(h) {
            for x in x0.min(w)..x1.min(w) {
                for k in 0..3 {
                    planes[k][y * w + x] = c[k];
                }
            }
        }
    };
    let mut level = lo;
    while level <= hi + 1e-9 {
        let y = y_of(level);
        fill(0, w, y, y + 1, [0.85; 3]);
        level += 5.0;
    }
    for (i, r) in rows.iter().enumerate() {
        let x = gap + i * (2 * bar + gap);
        let bottom = h - margin;
        fill(x, x + bar, y_of(r.base.psnr_y), bottom, [0.6, 0.6, 0.6]);
        fill(
            x + bar,
            x + 2 * bar,
            y_of(r.got.psnr_y),
            bottom,
            [0.15, 0.35, 0.8],
        );
    }
    let [r, g, b] = planes;
    let img = PlanarRgb::from_planes([
        Plane::from_vec(w, h, r)?,
        Plane::from_vec(w, h, g)?,
        Plane::from_vec(w, h, b)?,
    ])?;
    Ok((img, lo, hi))
}

/// Writes `dir`: report.md, psnr.png, and grids worst_K.png / best_K.png (rainy | derained |
/// clean), derained again with `pipeline`.
pub fn write_report(
    dir: &Path,
    rows: &[Row],
    pipeline: &mut Pipeline,
    settings: &str,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (img, lo, hi) = plot(rows)?;
    io::save_image(&dir.join("psnr.png"), &img)?;
    let (worst, best) = worst_and_best(rows, 3);
    let mut md = format!(
        "# derain eval report\n\n{settings}\n\n{} images.\n\n",
        rows.len()
    );
    let _ = writeln!(
        md,
        "| metric | rainy mean / median / std | derained mean / median / std |"
    );
    let _ = writeln!(md, "|---|---|---|");
    for ((name, b), (_, g)) in metric_stats(rows, false)
        .iter()
        .zip(metric_stats(rows, true))
    {
        let _ = writeln!(
            md,
            "| {name} | {:.3} / {:.3} / {:.3} | {:.3} / {:.3} / {:.3} |",
            b.mean, b.median, b.std, g.mean, g.median, g.std
        );
    }
    let _ = writeln!(
        md,
        "\n![Y-PSNR per image](psnr.png)\n\nY-PSNR per image, in file order: grey = rainy input, \
         blue = derained; scale {lo:.0}–{hi:.0} dB, a line every 5 dB.\n"
    );
    for (label, list) in [("worst", &worst), ("best", &best)] {
        let _ = writeln!(md, "## The {} by Y-PSNR gain\n", label);
        for (k, &i) in list.iter().enumerate() {
            let r = &rows[i];
            let (rainy, clean) = super::eval::load_pair(&r.rainy, &r.clean)?;
            pipeline.reset();
            let mut out = pipeline.process_image(&rainy)?;
            out.quantize();
            let grid = io::side_by_side(&[&rainy, &out, &clean])?;
            let name = format!("{label}_{}.png", k + 1);
            io::save_image(&dir.join(&name), &grid)?;
            let _ = writeln!(
                md,
                "{}: Y-PSNR {:.2} → {:.2} dB, Y-SSIM {:.4} → {:.4} (rainy | derained | clean)\n\n![{name}]({name})\n",
                r.rainy.display(),
                r.base.psnr_y,
                r.got.psnr_y,
                r.base.ssim_y,
                r.got.ssim_y
            );
        }
    }
    let path = dir.join("report.md");
    std::fs::write(&path, md).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_a_small_list() {
        let s = stats(&[1.0, 2.0, 3.0, 10.0]);
        assert_eq!(s.mean, 4.0);
        assert_eq!(s.median, 2.5);
        assert!((s.std - (12.5f64).sqrt()).abs() < 1e-12);
        assert_eq!(stats(&[5.0, 1.0, 3.0]).median, 3.0);
    }
}
