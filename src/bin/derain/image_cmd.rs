//! `derain image IN -o OUT [--save-components DIR]`; IN and OUT may be folders.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use derain::{Mode, Pipeline, io};

use super::common::{EngineArgs, FILES, init_threads};

/// Arguments of `derain image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// Rainy input image (PNG or JPEG; the EXIF orientation is applied), or a folder: every
    /// .png, .jpg and .jpeg in it (not its subfolders), in name order.
    pub input: PathBuf,
    /// Where to write the derained image: `.png` (keeps the input's alpha channel and 16-bit
    /// samples) or `.jpg`/`.jpeg` (8-bit RGB). For an input folder, a folder (created if
    /// missing) that gets each image under its own name; a file that fails is named and
    /// skipped, and the command fails after doing the others.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Also write S, T, A and J as PNGs into this folder (for an input folder: one subfolder
    /// per image, named after it).
    #[arg(long)]
    pub save_components: Option<PathBuf>,
    /// Worker threads (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Runs `derain image`: one file, or every PNG and JPEG in a folder.
pub fn run(a: ImageArgs) -> anyhow::Result<()> {
    if a.input.is_dir() {
        return run_folder(&a);
    }
    // Refuse an output the writer cannot produce before any work.
    let format = io::FileFormat::from_path(&a.output)?;
    if super::common::same_path(&a.input, &a.output) {
        anyhow::bail!(
            "the output {} is the input: the derained image would replace the rainy one",
            a.output.display()
        );
    }
    let threads = init_threads(a.threads.map(usize::from))?;
    let rainy = io::read_picture(&a.input, a.engine.mode_or(FILES))?;
    let mut pipeline = Pipeline::new(a.engine.config(FILES))?;
    derain_picture(
        &mut pipeline,
        rainy,
        (&a.input, &a.output, format),
        a.save_components.as_deref(),
        threads,
    )
}

/// `derain image IN_DIR -o OUT_DIR`: every `.png`, `.jpg` and `.jpeg` in IN_DIR (not its
/// subfolders), in name order, through one pipeline, each to OUT_DIR under its own name
/// (components into COMPONENTS/<stem>/). A file that cannot be read or written is reported
/// and skipped; the others are done, and the command then fails naming how many were not.
fn run_folder(a: &ImageArgs) -> anyhow::Result<()> {
    let (input, output) = (&a.input, &a.output);
    if output.is_file() {
        anyhow::bail!(
            "{} is a folder, so the output must be one too; {} is a file",
            input.display(),
            output.display()
        );
    }
    if super::common::same_path(input, output) {
        anyhow::bail!(
            "the output folder {} is the input folder: the derained images would replace \
             the rainy ones",
            output.display()
        );
    }
    // Each picture with the format its name gives the output.
    let mut files: Vec<(PathBuf, io::FileFormat)> = std::fs::read_dir(input)
        .with_context(|| format!("reading the folder {}", input.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter_map(|p| io::FileFormat::from_path(&p).ok().map(|f| (p, f)))
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    if files.is_empty() {
        anyhow::bail!("{} holds no .png, .jpg or .jpeg file", input.display());
    }
    if let Some(comps) = &a.save_components {
        // One subfolder per image, named after its stem.
        super::common::save_folder_apart(comps, &[input])?;
        super::common::unique_stems(files.iter().map(|(f, _)| f.as_path()), "components in")?;
    }
    std::fs::create_dir_all(output).with_context(|| format!("creating {}", output.display()))?;
    let threads = init_threads(a.threads.map(usize::from))?;
    let mut pipeline = Pipeline::new(a.engine.config(FILES))?;
    let mut failed = 0usize;
    for (file, format) in &files {
        let name = file.file_name().unwrap_or_default();
        let out = output.join(name);
        let comps = a
            .save_components
            .as_ref()
            .map(|d| d.join(file.file_stem().unwrap_or_default()));
        // Every file is a new picture: no temporal state, no smoothing of A across files.
        pipeline.reset();
        let done = io::read_picture(file, a.engine.mode_or(FILES))
            .map_err(anyhow::Error::from)
            .and_then(|rainy| {
                derain_picture(
                    &mut pipeline,
                    rainy,
                    (file, &out, *format),
                    comps.as_deref(),
                    threads,
                )
            });
        if let Err(e) = done {
            failed += 1;
            eprintln!("derain image: skipped {}: {e:#}", file.display());
        }
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} images in {} were not derained (named above)",
            files.len(),
            input.display()
        );
    }
    Ok(())
}

/// Derains one decoded picture read from `input` into `output`, written as `format` (and
/// its components into `components`), printing one line.
fn derain_picture(
    pipeline: &mut Pipeline,
    picture: io::Picture,
    (input, output, format): (&Path, &Path, io::FileFormat),
    components: Option<&Path>,
    threads: usize,
) -> anyhow::Result<()> {
    let io::Picture {
        rgb: rainy,
        alpha,
        bit_depth,
    } = picture;
    let kept = io::Picture {
        rgb: derain::PlanarRgb::zeros(0, 0),
        alpha,
        bit_depth,
    };
    for loss in kept.losses(format) {
        log::warn!("{}: {loss}", output.display());
    }
    let t = std::time::Instant::now();
    let mut comps = pipeline.components(&rainy)?;
    let elapsed = t.elapsed();
    // Without components to save, J is not needed again: blend into it instead of a copy.
    let mut out = if components.is_some() {
        comps.background.clone()
    } else {
        std::mem::replace(&mut comps.background, derain::PlanarRgb::zeros(0, 0))
    };
    derain::pipeline::blend_image(&mut out, &rainy, pipeline.config().strength);
    let (width, height) = (rainy.width(), rainy.height());
    drop(rainy);
    io::save_picture(output, &io::Picture { rgb: out, ..kept })?;
    let cfg = pipeline.config();
    let method = match cfg.mode {
        Mode::Physics => "physics".to_string(),
        Mode::Full => format!(
            "full ({}{})",
            cfg.model_for(pipeline.backend_name()),
            super::common::ensemble_note(cfg)
        ),
    };
    println!(
        "{} -> {} ({}x{}, mode {method}, backend {}, {} thread{}, {:.1} ms, A = [{:.3}, {:.3}, {:.3}])",
        input.display(),
        output.display(),
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
    if let Some(dir) = components {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
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
