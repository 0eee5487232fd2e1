//! `derain serve`: many cameras in, each derained and served back out over RTSP as H.264, with
//! an optional mosaic of all of them and per-stream stats as JSON.
//!
//! ```text
//!  camera 1 ─ decode ─┐                       ┌─ Output ─ rtsp://HOST:PORT/cam1
//!  camera 2 ─ decode ─┼─ engine pool (shared) ┼─ Output ─ rtsp://HOST:PORT/cam2
//!  camera N ─ decode ─┘   n engines, per-     └─ Output ─ ...        └─ mosaic ─ /mosaic
//!                         stream state
//! ```
//!
//! - Each camera has a thread ([`camera`]) that decodes, derains on an engine borrowed from the
//!   shared [`EnginePool`] (its own A and temporal history stay with it) and publishes to its
//!   [`rtsp::Output`]. A camera that drops is reopened with backoff while the others go on.
//! - The RTSP server ([`rtsp`]) encodes a stream only while someone watches it, once for all
//!   its clients.
//! - The main thread keeps stale streams alive, turns counts into rates each second, writes
//!   the stats file, prints a line per stream every `--stats-interval` and waits for Ctrl-C,
//!   SIGTERM or `--duration`.

mod camera;
mod mosaic;
mod rtsp;
mod settings;
mod stats;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use derain::engine::EnginePool;

use crate::video::source::DecodeOptions;
use crate::video::stop::Stop;
pub use settings::ServeArgs;
use stats::{ServerStats, StreamStats};

/// Runs `derain serve`.
pub fn run(a: ServeArgs) -> Result<()> {
    let s = a.settings()?;
    gst::init().context("initialising GStreamer")?;
    let stop = Stop::install()?;
    let pool = if s.cameras.iter().all(|c| c.passthrough) {
        None
    } else {
        Some(Arc::new(
            EnginePool::new(&s.engine, s.engines).context("starting the derain engines")?,
        ))
    };

    let mut outputs = Vec::new();
    for cam in &s.cameras {
        let stats = Arc::new(StreamStats::new(&cam.name, &cam.source.to_string()));
        outputs.push(rtsp::Output::new(&cam.name, stats));
    }
    let mosaic = s.mosaic.map(|(size, fps)| {
        let stats = StreamStats::new("mosaic", &format!("{} cameras", s.cameras.len()));
        (
            rtsp::Output::on_demand("mosaic", Arc::new(stats)),
            size,
            fps,
        )
    });
    let all: Vec<_> = outputs
        .iter()
        .chain(mosaic.as_ref().map(|m| &m.0))
        .cloned()
        .collect();
    let server = rtsp::Server::start(&s.address, s.port, &all, s.bitrate_kbps)?;
    // The address to print: a server listening everywhere is reachable on the loopback.
    let host = match s.address.as_str() {
        "0.0.0.0" | "::" => "127.0.0.1",
        a => a,
    };
    for out in &all {
        let url = format!("rtsp://{host}:{}{}", server.port, out.mount);
        println!("serving {} -> {url}", out.stats.source);
        out.stats.set_url(url);
    }
    let server_stats = Arc::new(ServerStats {
        started: Instant::now(),
        backend: pool.as_ref().map_or("none", |p| p.backend_name()),
        mode: if pool.is_some() {
            format!("{:?}", s.engine.mode).to_lowercase()
        } else {
            "passthrough".into()
        },
        engines: pool.as_ref().map_or(0, |p| p.len()),
        streams: all.iter().map(|o| o.stats.clone()).collect(),
    });
    if let Some(port) = s.stats_port {
        let listener = std::net::TcpListener::bind((s.address.as_str(), port))
            .with_context(|| format!("the stats endpoint cannot listen on {}:{port}", s.address))?;
        let bound = listener.local_addr()?.port();
        println!("stats at http://{host}:{bound}/stats");
        server_stats.clone().serve_http(listener);
    }
    log::info!(
        "{} cameras on {} engine(s) ({}, {}); Ctrl-C stops",
        s.cameras.len(),
        server_stats.engines,
        server_stats.backend,
        server_stats.mode
    );

    let decode = DecodeOptions {
        stall: s.stall,
        queue: 1,
        rtsp_latency_ms: Some(s.rtsp_latency_ms),
        // A file camera plays in real time (it ran at 200+ fps, unwatchable and a CPU hog).
        paced: true,
    };
    let mut threads = Vec::new();
    for (i, (cam, output)) in s.cameras.iter().zip(&outputs).enumerate() {
        let ctx = camera::CameraContext {
            pool: pool.clone(),
            output: output.clone(),
            stop: stop.clone(),
            decode,
            seed: 2 + i as u64,
        };
        let cam = cam.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("camera-{}", cam.name))
                .spawn(move || camera::run(cam, ctx))
                .context("starting a camera thread")?,
        );
    }
    if let Some((out, size, fps)) = &mosaic {
        let (out, cams, size, fps, stop) =
            (out.clone(), outputs.clone(), *size, *fps, stop.clone());
        threads.push(
            std::thread::Builder::new()
                .name("mosaic".into())
                .spawn(move || mosaic::run(out, cams, size, fps, stop))
                .context("starting the mosaic thread")?,
        );
    }

    let started = Instant::now();
    let mut next_tick = started + Duration::from_secs(1);
    let mut next_print = s.stats_interval.map(|i| started + i);
    while stop.requested().is_none() {
        std::thread::sleep(Duration::from_millis(100));
        let now = Instant::now();
        if s.duration.is_some_and(|d| now.duration_since(started) >= d) {
            stop.request();
        }
        for out in &outputs {
            out.keep_alive(now);
        }
        if now >= next_tick {
            next_tick = now + Duration::from_secs(1);
            server_stats.tick();
            if let Some(f) = &s.stats_file
                && let Err(e) = server_stats.write_file(f)
            {
                log::warn!("{e:#}");
            }
        }
        if let (Some(at), Some(every)) = (next_print, s.stats_interval)
            && now >= at
        {
            next_print = Some(now + every);
            server_stats.print();
        }
    }
    let why = stop.requested().map_or("a stop", |s| s.name());
    log::info!("stopping ({why})");
    for t in threads {
        let _ = t.join();
    }
    server.stop();
    server_stats.tick();
    if let Some(f) = &s.stats_file {
        server_stats.write_file(f)?;
    }
    server_stats.print();
    println!(
        "stopped by {why} after {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
