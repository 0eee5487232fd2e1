//! Per-stream figures of `derain serve`: kept by the camera threads, turned into rates once a
//! second, printed, written to a JSON file and served over HTTP (`GET /stats`,
//! `GET /stats/NAME`).
//!
//! Each stream in the JSON: `name`, `source`, `url`, `state` (`connecting`, `live`,
//! `reconnecting`, `stopped`), `width`, `height`, `input_fps` (frames the camera delivered per
//! second), `output_fps` (frames derained and served per second), `frames_in`, `frames_out`,
//! `frames_dropped` (delivered while derain was busy: only the newest frame is kept),
//! `errors` (frames sent as they came because deraining failed), `drops` (times the camera
//! was lost after it had sent frames), `reconnect_attempts` (openings that failed or gave no
//! frame), `reconnects` (times it came back), `last_error`, `seconds_since_frame`, `latency_ms` (decoded frame to
//! served frame), `derain_ms`, `rain_level` (0 clear to 1 heavy: the veil score),
//! `mean_transmission`, `atmosphere` (A, RGB) and `clients` (RTSP clients playing it).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Value, json};

/// Where a camera is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum State {
    #[default]
    Connecting,
    Live,
    Reconnecting,
    Stopped,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Connecting => "connecting",
            State::Live => "live",
            State::Reconnecting => "reconnecting",
            State::Stopped => "stopped",
        }
    }
}

/// The figures of one stream.
#[derive(Debug, Default)]
pub struct Counters {
    pub state: State,
    pub width: u32,
    pub height: u32,
    /// Frames the camera delivered (dropped ones included).
    pub frames_in: u64,
    /// Frames derained and served.
    pub frames_out: u64,
    pub errors: u64,
    pub drops: u64,
    pub reconnect_attempts: u64,
    pub reconnects: u64,
    pub last_error: Option<String>,
    pub last_frame: Option<Instant>,
    /// Moving averages (about the last 10 frames).
    pub latency_ms: f64,
    pub derain_ms: f64,
    pub rain_level: f32,
    pub mean_transmission: f32,
    pub atmosphere: [f32; 3],
    pub clients: u32,
    /// Rates over the last second, set by [`StreamStats::tick`].
    input_fps: f64,
    output_fps: f64,
    before: Option<(Instant, u64, u64)>,
}

impl Counters {
    /// Adds one served frame's timings to the moving averages.
    pub fn timed(&mut self, latency: Duration, derain: Duration) {
        let mix = |avg: &mut f64, v: Duration, first: bool| {
            let v = v.as_secs_f64() * 1e3;
            *avg = if first { v } else { 0.9 * *avg + 0.1 * v };
        };
        let first = self.frames_out == 0;
        mix(&mut self.latency_ms, latency, first);
        mix(&mut self.derain_ms, derain, first);
    }
}

/// One stream's figures, shared between its camera thread and the readers.
#[derive(Debug)]
pub struct StreamStats {
    pub name: String,
    pub source: String,
    url: OnceLock<String>,
    counters: Mutex<Counters>,
}

fn round(v: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (v * p).round() / p
}

impl StreamStats {
    pub fn new(name: &str, source: &str) -> Self {
        Self {
            name: name.into(),
            source: source.into(),
            url: OnceLock::new(),
            counters: Mutex::new(Counters::default()),
        }
    }

    /// Where the stream is served (known once the server listens).
    pub fn set_url(&self, url: String) {
        let _ = self.url.set(url);
    }

    /// Changes the figures under the lock.
    pub fn update<T>(&self, f: impl FnOnce(&mut Counters) -> T) -> T {
        f(&mut self.counters.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Turns the counts into rates over the time since the last tick.
    pub fn tick(&self, now: Instant) {
        self.update(|c| {
            if let Some((t, fin, fout)) = c.before {
                let dt = now.duration_since(t).as_secs_f64();
                if dt > 0.0 {
                    c.input_fps = (c.frames_in - fin) as f64 / dt;
                    c.output_fps = (c.frames_out - fout) as f64 / dt;
                }
            }
            c.before = Some((now, c.frames_in, c.frames_out));
        });
    }

    pub fn json(&self, now: Instant) -> Value {
        self.update(|c| {
            json!({
                "name": self.name,
                "source": self.source,
                "url": self.url.get(),
                "state": c.state.name(),
                "width": c.width,
                "height": c.height,
                "input_fps": round(c.input_fps, 2),
                "output_fps": round(c.output_fps, 2),
                "frames_in": c.frames_in,
                "frames_out": c.frames_out,
                "frames_dropped": c.frames_in.saturating_sub(c.frames_out),
                "errors": c.errors,
                "drops": c.drops,
                "reconnect_attempts": c.reconnect_attempts,
                "reconnects": c.reconnects,
                "last_error": c.last_error,
                "seconds_since_frame": c.last_frame.map(|t| round(now.duration_since(t).as_secs_f64(), 2)),
                "latency_ms": round(c.latency_ms, 1),
                "derain_ms": round(c.derain_ms, 1),
                "rain_level": round(c.rain_level as f64, 3),
                "mean_transmission": round(c.mean_transmission as f64, 3),
                "atmosphere": c.atmosphere.map(|a| round(a as f64, 3)),
                "clients": c.clients,
            })
        })
    }

    /// One printed line.
    pub fn line(&self) -> String {
        self.update(|c| {
            format!(
                "{:<12} {:<12} {:>4}x{:<4} in {:5.1} fps  out {:5.1} fps  dropped {:>5}  latency {:5.1} ms  derain {:5.1} ms  rain {:.2}  clients {}  drops {}",
                self.name,
                c.state.name(),
                c.width,
                c.height,
                c.input_fps,
                c.output_fps,
                c.frames_in.saturating_sub(c.frames_out),
                c.latency_ms,
                c.derain_ms,
                c.rain_level,
                c.clients,
                c.drops
            )
        })
    }
}

/// The figures of the whole server.
#[derive(Debug)]
pub struct ServerStats {
    pub started: Instant,
    pub backend: &'static str,
    pub mode: String,
    pub engines: usize,
    pub streams: Vec<Arc<StreamStats>>,
}

impl ServerStats {
    pub fn json(&self) -> Value {
        let now = Instant::now();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": round(now.duration_since(self.started).as_secs_f64(), 1),
            "backend": self.backend,
            "mode": self.mode,
            "engines": self.engines,
            "streams": self.streams.iter().map(|s| s.json(now)).collect::<Vec<_>>(),
        })
    }

    pub fn tick(&self) {
        let now = Instant::now();
        for s in &self.streams {
            s.tick(now);
        }
    }

    pub fn print(&self) {
        println!("-- {:.0} s", self.started.elapsed().as_secs_f64());
        for s in &self.streams {
            println!("{}", s.line());
        }
    }

    /// Replaces `path` with the current JSON (written beside it, then renamed).
    pub fn write_file(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&self.json())?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
    }

    /// Answers one HTTP request: `/` or `/stats` (everything) and `/stats/NAME` (one stream).
    fn answer(&self, mut conn: TcpStream) -> std::io::Result<()> {
        conn.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
            let n = conn.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let request = String::from_utf8_lossy(&buf);
        let mut words = request.split_whitespace();
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let path = path.split('?').next().unwrap_or("").trim_end_matches('/');
        let (status, body) = if method != "GET" {
            ("405 Method Not Allowed", json!({"error": "only GET"}))
        } else if path.is_empty() || path == "/stats" {
            ("200 OK", self.json())
        } else if let Some(name) = path.strip_prefix("/stats/") {
            match self.streams.iter().find(|s| s.name == name) {
                Some(s) => ("200 OK", s.json(Instant::now())),
                None => (
                    "404 Not Found",
                    json!({"error": format!("no stream `{name}`")}),
                ),
            }
        } else {
            (
                "404 Not Found",
                json!({"error": "try /stats or /stats/NAME"}),
            )
        };
        let body = serde_json::to_vec_pretty(&body).unwrap_or_default();
        write!(
            conn,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        conn.write_all(&body)
    }

    /// Serves the stats over HTTP on `listener`, one short-lived thread per request.
    pub fn serve_http(self: Arc<Self>, listener: TcpListener) {
        std::thread::Builder::new()
            .name("stats-http".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    match conn {
                        Ok(conn) => {
                            let me = self.clone();
                            let _ = std::thread::Builder::new()
                                .name("stats-request".into())
                                .spawn(move || {
                                    if let Err(e) = me.answer(conn) {
                                        log::debug!("stats request: {e}");
                                    }
                                });
                        }
                        Err(e) => log::debug!("stats connection: {e}"),
                    }
                }
            })
            .expect("starting the stats thread");
    }
}
