//! `derain video` (to be written: GStreamer element issue).
use clap::Args;

/// Arguments of `derain video`.
#[derive(Debug, Args)]
pub struct VideoArgs {}

pub fn run(_a: VideoArgs) -> anyhow::Result<()> {
    anyhow::bail!("video: not built yet")
}
