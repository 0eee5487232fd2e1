//! `derain` command-line interface: thin argument parsing over the library. Each subcommand's
//! module parses its own arguments (clap `Args`) and has a `run` function; this file only
//! dispatches.

mod bench;
mod common;
mod demo;
mod eval;
mod eval_seq;
mod image_cmd;
mod synth;
#[cfg(feature = "video")]
mod video;

use clap::{Parser, Subcommand};

/// Real-time removal of heavy rain (streaks and veil) from images and video.
#[derive(Debug, Parser)]
#[command(name = "derain", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Derain one image file.
    Image(image_cmd::ImageArgs),
    /// PSNR/SSIM of derained images against clean ones, with the identity baseline.
    Eval(eval::EvalArgs),
    /// Throughput of each stage and end to end at 720p and 1080p on generated frames.
    Bench(bench::BenchArgs),
    /// Render heavy-rain training pairs from clean images.
    Synth(synth::SynthArgs),
    /// Render a synthetic rainy video (frames + ground truth) from one clean image.
    SynthVideo(synth::SynthVideoArgs),
    /// Render rain layers of one family for training-time composition (training/).
    SynthBank(synth::SynthBankArgs),
    /// The built-in demo: bundled photo → heavy rain → derained, side by side, with scores.
    Demo(demo::DemoArgs),
    /// Derain a video file, a folder of frames or an RTSP stream into H.264 MP4/MKV.
    #[cfg(feature = "video")]
    Video(video::VideoArgs),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Image(a) => image_cmd::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Synth(a) => synth::run_synth(a),
        Command::SynthVideo(a) => synth::run_synth_video(a),
        Command::SynthBank(a) => synth::run_synth_bank(a),
        Command::Demo(a) => demo::run(a),
        #[cfg(feature = "video")]
        Command::Video(a) => video::run(a),
    }
}

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .format_timestamp(None)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
