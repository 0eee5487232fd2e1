//! `derain image IN -o OUT [--save-components DIR]`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use derain::{Mode, Pipeline, io};

use super::common::{EngineArgs, FILE_MODE, init_threads};

/// Arguments of `derain image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// Rainy input image (PNG or JPEG; the EXIF orientation is applied).
    pub input: PathBuf,
    /// Where to write the derained image: `.png` (keeps the input's alpha channel and 16-bit
    /// samples) or `.jpg`/`.jpeg` (8-bit RGB).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Also write S, T, A and J as PNGs into this folder.
    #[arg(long)]
    pub save_components: Option<PathBuf>,
    /// Worker threads (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Runs `derain image`.
pub fn run(a: ImageArgs) -> anyhow::Result<()> {
    // Refuse an output the writer cannot produce before any work.
    let format = io::FileFormat::from_path(&a.output)?;
    let threads = init_threads(a.threads.map(usize::from))?;
    let io::Picture {
        rgb: rainy,
        alpha,
        bit_depth,
    } = io::read_picture(&a.input, a.engine.mode_or(FILE_MODE))?;
    let kept = io::Picture {
        rgb: derain::PlanarRgb::zeros(0, 0),
        alpha,
        bit_depth,
    };
    for loss in kept.losses(format) {
        log::warn!("{}: {loss}", a.output.display());
    }
    let mut pipeline = Pipeline::new(a.engine.config(FILE_MODE))?;
    let t = std::time::Instant::now();
    let mut comps = pipeline.components(&rainy)?;
    let elapsed = t.elapsed();
    // Without --save-components J is not needed again: blend into it instead of a copy.
    let mut out = if a.save_components.is_some() {
        comps.background.clone()
    } else {
        std::mem::replace(&mut comps.background, derain::PlanarRgb::zeros(0, 0))
    };
    derain::pipeline::blend_image(&mut out, &rainy, pipeline.config().strength);
    let (width, height) = (rainy.width(), rainy.height());
    drop(rainy);
    io::save_picture(&a.output, &io::Picture { rgb: out, ..kept })?;
    let cfg = pipeline.config();
    let method = match cfg.mode {
        Mode::Physics => "physics".to_string(),
        Mode::Full => format!("full ({})", cfg.model_for(pipeline.backend_name())),
    };
    println!(
        "{} -> {} ({}x{}, mode {method}, backend {}, {} thread{}, {:.1} ms, A = [{:.3}, {:.3}, {:.3}])",
        a.input.display(),
        a.output.display(),
        width,
        height,
        pipeline.backend_name(),
        threads,
        if threads == 1 { "" } else { "s" },
        elapsed.as_secs_f64() * 1e3,
        comps.atmosphere[0],
        comps.atmosphere[1],
        comps.atmosphere[2]
    );
    if let Some(dir) = a.save_components {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        io::save_image(&dir.join("background_J.png"), &comps.background)?;
        io::save_plane(
            &dir.join("transmission_T.png"),
            &comps.transmission,
            0.0,
            1.0,
        )?;
        io::save_plane(&dir.join("streaks_S.png"), &comps.streaks, 0.0, 0.5)?;
        let a_img = derain::PlanarRgb::from_planes(
            comps.atmosphere.map(|v| derain::Plane::filled(64, 64, v)),
        )?;
        io::save_image(&dir.join("atmosphere_A.png"), &a_img)?;
        println!("components written to {} (S is shown ×2)", dir.display());
    }
    Ok(())
}
