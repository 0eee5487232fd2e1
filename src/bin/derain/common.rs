//! Options shared by several subcommands.

use anyhow::Context;
use clap::Args;
use derain::pipeline::{Backend, Config, Mode};

/// The method of the file commands (`image`, `eval`) when `--mode` is not given: the
/// networks, which beat `physics` on every test set (models/README.md); time per file matters
/// less than what is left of the rain.
pub const FILE_MODE: Mode = Mode::Full;
/// The method of `video` when `--mode` is not given: `physics`, which keeps real time on the
/// CPU at 1080p (`full` does not yet: BENCHMARKS.md, first table).
pub const STREAM_MODE: Mode = Mode::Physics;

/// Method and engine options.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// Method: `physics` (training-free) or `full` (networks). Default: `full` for `image`
    /// and `eval` (files), `physics` for `video` (live streams must keep real time).
    #[arg(long)]
    pub mode: Option<Mode>,
    /// Engine: `auto` (CUDA if present, else CPU), `cpu` or `cuda`.
    #[arg(long, default_value = "auto")]
    pub backend: Backend,
    /// Blend with the input in [0, 1] (1 = fully derained).
    #[arg(long, default_value_t = derain::pipeline::config::DEFAULT_STRENGTH,
          allow_negative_numbers = true, value_parser = unit_interval)]
    pub strength: f32,
    /// Networks for `full` mode: `fast` (real time on the CPU), `quality` (real time on a
    /// GPU), or a directory holding streak.onnx, stage1.onnx and stage2.onnx. Default:
    /// `quality` on CUDA, `fast` on the CPU.
    #[arg(long, value_name = "fast|quality|DIR")]
    pub model: Option<derain::nets::ModelChoice>,
}

impl EngineArgs {
    /// The method: `--mode`, else the command's `default`.
    pub fn mode_or(&self, default: Mode) -> Mode {
        self.mode.unwrap_or(default)
    }

    /// The library configuration these options describe, `default_mode` where `--mode` is
    /// not given.
    pub fn config(&self, default_mode: Mode) -> Config {
        Config {
            mode: self.mode_or(default_mode),
            backend: self.backend,
            strength: self.strength,
            model: self.model.clone(),
            ..Config::default()
        }
    }
}

/// A number in [0, 1] (clap value parser): a negative or too large value gets a range error
/// rather than clap's "unexpected argument" (with `allow_negative_numbers` on the argument).
pub fn unit_interval(s: &str) -> Result<f32, String> {
    let v: f32 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{s} is outside the range [0, 1]"))
    }
}

/// Sizes rayon's global pool (`None`: one thread per core) and returns the thread count in
/// force. Call it once, before any parallel work.
pub fn init_threads(threads: Option<usize>) -> anyhow::Result<usize> {
    if let Some(n) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("starting the worker threads")?;
    }
    Ok(rayon::current_num_threads())
}

/// The longest time a flag takes, in seconds (10⁷: 115 days; what a clock or a `Duration`
/// holds with room to spare): `video --duration/--stall-timeout`, `serve`'s timeouts.
pub const MAX_SECONDS: f64 = 1e7;

/// Whether two paths name the same existing file or folder (after links and `..`).
pub fn same_path(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Refuses, before any work, inputs whose outputs would be written under one name: files
/// that differ only in their extension (`a.png` and `a.jpg`) where `what` names outputs
/// after the stem.
pub fn unique_stems<'a>(
    files: impl IntoIterator<Item = &'a std::path::Path>,
    what: &str,
) -> anyhow::Result<()> {
    let mut seen = std::collections::HashMap::new();
    for f in files {
        let stem = f.file_stem().unwrap_or_default().to_os_string();
        if let Some(first) = seen.insert(stem.clone(), f) {
            anyhow::bail!(
                "{} and {} would both be written as {what} `{}`: rename one of them",
                first.display(),
                f.display(),
                stem.to_string_lossy()
            );
        }
    }
    Ok(())
}

/// Refuses, before any work, a folder of outputs that is one of the input folders: the
/// outputs would replace the inputs.
pub fn save_folder_apart(
    save: &std::path::Path,
    inputs: &[&std::path::Path],
) -> anyhow::Result<()> {
    if let Some(dir) = inputs.iter().find(|d| same_path(save, d)) {
        anyhow::bail!(
            "the output folder {} is the input folder {}: the outputs would replace the inputs",
            save.display(),
            dir.display()
        );
    }
    Ok(())
}
