//! `derain synth` and `derain synth-video` (to be written: heavy-rain renderer issue).
use clap::Args;

/// Arguments of `derain synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {}
/// Arguments of `derain synth-video`.
#[derive(Debug, Args)]
pub struct SynthVideoArgs {}

pub fn run_synth(_a: SynthArgs) -> anyhow::Result<()> {
    anyhow::bail!("synth: not built yet")
}
pub fn run_synth_video(_a: SynthVideoArgs) -> anyhow::Result<()> {
    anyhow::bail!("synth-video: not built yet")
}
