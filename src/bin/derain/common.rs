//! Options shared by several subcommands.

use anyhow::Context;
use clap::Args;
use derain::pipeline::{Backend, Config, Mode};

/// What a command runs when `--mode` and `--ensemble` are not given.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    /// The method.
    pub mode: Mode,
    /// The mirror ensemble, where the method is `full`.
    pub ensemble: bool,
}

/// The file commands (`image`, `eval`): the networks, which beat `physics` on every test set,
/// with the mirror ensemble, which adds 0.0–0.4 dB on every test set for 1.4–1.8× the time
/// (models/README.md); time per file matters less than what is left of the rain.
pub const FILES: Defaults = Defaults {
    mode: Mode::Full,
    ensemble: true,
};
/// `video`: `physics`, which keeps real time on the CPU at 1080p (`full` does not yet:
/// BENCHMARKS.md, first table), and no ensemble.
pub const STREAMS: Defaults = Defaults {
    mode: Mode::Physics,
    ensemble: false,
};

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    /// On.
    On,
    /// Off.
    Off,
}

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
    /// `full` mode: also run the streak network on the mirrored frame and average the two
    /// rain layers (the mirror ensemble): 0.0–0.4 dB better on every test set for about
    /// twice the streak network's time. Default: `on` for `image` and `eval` in `full` mode,
    /// `off` for `video` and `eval --sequence`.
    #[arg(long, value_name = "on|off")]
    pub ensemble: Option<Switch>,
}

impl EngineArgs {
    /// The method: `--mode`, else the command's.
    pub fn mode_or(&self, default: Defaults) -> Mode {
        self.mode.unwrap_or(default.mode)
    }

    /// The library configuration these options describe, the command's `default` where
    /// `--mode` or `--ensemble` is not given (the ensemble by default only in `full` mode;
    /// `--ensemble on` with `physics` is the library's parameter error).
    pub fn config(&self, default: Defaults) -> Config {
        let mode = self.mode_or(default);
        Config {
            mode,
            backend: self.backend,
            strength: self.strength,
            model: self.model.clone(),
            ensemble: match self.ensemble {
                Some(s) => s == Switch::On,
                None => default.ensemble && mode == Mode::Full,
            },
            ..Config::default()
        }
    }
}

/// `", mirror ensemble"` when `config` runs the mirror ensemble, else `""`: what `image` and
/// the demo add to the method they print.
pub fn ensemble_note(config: &Config) -> &'static str {
    if config.ensemble {
        ", mirror ensemble"
    } else {
        ""
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
