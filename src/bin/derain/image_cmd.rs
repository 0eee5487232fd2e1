//! `derain image IN -o OUT [--save-components DIR]`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use derain::{Pipeline, io};

use super::common::EngineArgs;

/// Arguments of `derain image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// Rainy input image (PNG or JPEG).
    pub input: PathBuf,
    /// Where to write the derained image (PNG, or JPEG by extension).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Also write S, T, A and J as PNGs into this folder.
    #[arg(long)]
    pub save_components: Option<PathBuf>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Runs `derain image`.
pub fn run(a: ImageArgs) -> anyhow::Result<()> {
    let rainy = io::load_image(&a.input)?;
    let mut pipeline = Pipeline::new(a.engine.config())?;
    let t = std::time::Instant::now();
    let comps = pipeline.components(&rainy)?;
    let elapsed = t.elapsed();
    let mut out = comps.background.clone();
    derain::pipeline::blend_image(&mut out, &rainy, pipeline.config().strength);
    io::save_image(&a.output, &out)?;
    println!(
        "{} -> {} ({}x{}, backend {}, {:.1} ms, A = [{:.3}, {:.3}, {:.3}])",
        a.input.display(),
        a.output.display(),
        rainy.width(),
        rainy.height(),
        pipeline.backend_name(),
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
