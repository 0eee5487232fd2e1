//! `derain demo` (to be written: heavy-rain renderer issue).
use clap::Args;

/// Arguments of `derain demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {}

pub fn run(_a: DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("demo: not built yet")
}
