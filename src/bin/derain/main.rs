//! `derain` command-line interface: thin argument parsing over the library. Each subcommand's
//! module parses its own arguments (clap `Args`) and has a `run` function; this file only
//! dispatches.

mod bench;
mod common;
mod demo;
mod eval;
mod eval_report;
mod eval_seq;
mod image_cmd;
#[cfg(feature = "serve")]
mod serve;
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
    /// Serve many cameras derained over RTSP (H.264), with a mosaic and JSON stats.
    #[cfg(feature = "serve")]
    Serve(serve::ServeArgs),
}

/// An error with its own exit code (`derain video`: the input failed mid-stream, a signal
/// stopped it, ...); other errors exit with 1.
#[derive(Debug)]
pub struct Exit {
    code: u8,
    error: anyhow::Error,
}

impl Exit {
    /// `error` ending the process with `code`.
    pub fn with_code(code: u8, error: anyhow::Error) -> anyhow::Error {
        anyhow::Error::new(Exit { code, error })
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for Exit {}

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
        #[cfg(feature = "serve")]
        Command::Serve(a) => serve::run(a),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // A server's log lines carry the time; a command's do not need it.
    #[cfg(feature = "serve")]
    let stamped = matches!(cli.command, Command::Serve(_));
    #[cfg(not(feature = "serve"))]
    let stamped = false;
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .format_timestamp(stamped.then_some(env_logger::TimestampPrecision::Seconds))
        .init();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<Exit>() {
            // A signal's stop is not an error: its message says what was kept.
            Some(exit) if exit.code >= 128 => {
                eprintln!("{e:#}");
                std::process::ExitCode::from(exit.code)
            }
            Some(exit) => {
                eprintln!("error: {e:#}");
                std::process::ExitCode::from(exit.code)
            }
            None => {
                eprintln!("error: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}
