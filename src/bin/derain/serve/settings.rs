//! What `derain serve` runs: the flags, a TOML file, or both (a flag given wins over the file).
//! docs/serve-example.toml shows and explains every key; a test parses it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use derain::pipeline::{Backend, Config, Mode, TemporalMode};

/// Arguments of `derain serve`.
#[derive(Debug, Args)]
#[command(
    after_help = "Cameras come from --camera flags, from the [[camera]] tables of \
    --config FILE, or both. SOURCE is an rtsp:// (or any GStreamer) URI, a video file (played \
    in a loop), a V4L2 device (/dev/video0) or `demo[:WxH[@FPS]]`, built-in synthetic heavy \
    rain. Each camera is served derained at rtsp://ADDRESS:PORT/NAME (H.264); a camera that \
    drops is reopened with backoff (after 1, 2, 4, 8 s, then every 10 s) while the others go on, and its stream \
    shows the last frame greyed out meanwhile. Stop with Ctrl-C or SIGTERM (exit code 0)."
)]
pub struct ServeArgs {
    /// A camera, NAME=SOURCE; repeat for more.
    #[arg(long = "camera", value_name = "NAME=SOURCE")]
    pub cameras: Vec<String>,
    /// A TOML file with settings and [[camera]] tables (docs/serve-example.toml explains each key).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address the RTSP server (and the stats endpoint) listen on [default: 0.0.0.0].
    #[arg(long)]
    pub address: Option<String>,
    /// RTSP port; 0 takes any free port [default: 8554].
    #[arg(long)]
    pub port: Option<u16>,
    /// Also serve all cameras tiled on one stream, at /mosaic.
    #[arg(long)]
    pub mosaic: bool,
    /// Size of the mosaic, WxH [default: 1280x720].
    #[arg(long, value_name = "WxH")]
    pub mosaic_size: Option<String>,
    /// Frame rate of the mosaic [default: 10].
    #[arg(long)]
    pub mosaic_fps: Option<f64>,
    /// H.264 bit rate of each stream in kbit/s [default: 2000].
    #[arg(long)]
    pub bitrate: Option<u32>,
    /// Serve the stats as JSON at http://ADDRESS:PORT/stats.
    #[arg(long, value_name = "PORT")]
    pub stats_port: Option<u16>,
    /// Write the stats as JSON to this file every second (replaced atomically).
    #[arg(long, value_name = "FILE")]
    pub stats_file: Option<PathBuf>,
    /// Seconds between the stats lines printed on stdout; 0 prints none [default: 10].
    #[arg(long)]
    pub stats_interval: Option<f64>,
    /// Method: `physics` or `full` [default: physics].
    #[arg(long)]
    pub mode: Option<Mode>,
    /// Engine: `auto`, `cpu` or `cuda` [default: auto].
    #[arg(long)]
    pub backend: Option<Backend>,
    /// Networks of `full` mode: `fast`, `quality` or a directory.
    #[arg(long, value_name = "fast|quality|DIR")]
    pub model: Option<derain::nets::ModelChoice>,
    /// Engines shared by all cameras: frames derained at once [default: 2, or one per
    /// device listed in --devices].
    #[arg(long)]
    pub engines: Option<usize>,
    /// GPUs the engines spread over, e.g. `0,1` [default: device 0].
    #[arg(long, value_delimiter = ',')]
    pub devices: Option<Vec<usize>>,
    /// Blend with the input in [0, 1], for every camera without its own [default: 1].
    #[arg(long, allow_negative_numbers = true, value_parser = super::super::common::unit_interval)]
    pub strength: Option<f32>,
    /// Temporal stage of every camera without its own: off, on, auto [default: off].
    #[arg(long)]
    pub temporal: Option<TemporalMode>,
    /// Serve every camera as it comes, without deraining (a test camera, a comparison).
    #[arg(long)]
    pub passthrough: bool,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// A camera that sends no frame for this many seconds has dropped [default: 5].
    #[arg(long)]
    pub stall_timeout: Option<f64>,
    /// Jitter buffer of rtsp:// cameras in ms [default: 200].
    #[arg(long)]
    pub rtsp_latency: Option<u32>,
}

/// One camera.
#[derive(Debug, Clone, PartialEq)]
pub struct Camera {
    /// Mount name: rtsp://HOST:PORT/NAME.
    pub name: String,
    /// Where its frames come from.
    pub source: Source,
    /// The library configuration of this camera's stream.
    pub config: Config,
    /// Served as it comes, without deraining.
    pub passthrough: bool,
}

/// Where a camera's frames come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A URI or a file played by GStreamer (a file is played in a loop).
    Uri(String),
    /// Built-in synthetic heavy rain over the demo photo.
    Demo { width: u32, height: u32, fps: f64 },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Uri(u) => f.write_str(u),
            Source::Demo { width, height, fps } => write!(f, "demo:{width}x{height}@{fps}"),
        }
    }
}

/// Everything `derain serve` runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub address: String,
    pub port: u16,
    /// The configuration the shared engines are built from.
    pub engine: Config,
    pub engines: usize,
    pub cameras: Vec<Camera>,
    /// Size and rate of the mosaic, when one is served.
    pub mosaic: Option<((u32, u32), f64)>,
    pub bitrate_kbps: u32,
    pub stats_port: Option<u16>,
    pub stats_file: Option<PathBuf>,
    /// `None`: no printed stats lines.
    pub stats_interval: Option<Duration>,
    pub duration: Option<Duration>,
    pub stall: Duration,
    pub rtsp_latency_ms: u32,
}

/// The keys of each table, for the unknown-key error.
const TOP_KEYS: &[&str] = &[
    "address",
    "port",
    "mode",
    "backend",
    "model",
    "engines",
    "devices",
    "bitrate",
    "temporal",
    "strength",
    "passthrough",
    "stall_timeout",
    "rtsp_latency",
    "mosaic",
    "stats",
    "camera",
];
const MOSAIC_KEYS: &[&str] = &["size", "fps"];
const STATS_KEYS: &[&str] = &["port", "file", "interval"];
const CAMERA_KEYS: &[&str] = &["name", "source", "temporal", "strength", "passthrough"];

/// A TOML table read with the file name and table in every error.
struct Table<'a> {
    table: &'a toml::Table,
    at: String,
}

impl<'a> Table<'a> {
    fn new(table: &'a toml::Table, at: String, keys: &[&str]) -> Result<Self> {
        if let Some(k) = table.keys().find(|k| !keys.contains(&k.as_str())) {
            bail!("{at}: unknown key `{k}` (known: {})", keys.join(", "));
        }
        Ok(Self { table, at })
    }

    fn get<T>(
        &self,
        key: &str,
        what: &str,
        f: impl Fn(&toml::Value) -> Option<T>,
    ) -> Result<Option<T>> {
        match self.table.get(key) {
            None => Ok(None),
            Some(v) => f(v)
                .map(Some)
                .ok_or_else(|| anyhow!("{}: `{key}` must be {what}", self.at)),
        }
    }

    fn str(&self, key: &str) -> Result<Option<String>> {
        self.get(key, "a string", |v| v.as_str().map(str::to_string))
    }

    fn float(&self, key: &str) -> Result<Option<f64>> {
        self.get(key, "a number", |v| {
            v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
        })
    }

    fn uint<T: TryFrom<i64>>(&self, key: &str) -> Result<Option<T>> {
        self.get(key, "a whole number in range", |v| {
            v.as_integer().and_then(|i| T::try_from(i).ok())
        })
    }

    fn bool(&self, key: &str) -> Result<Option<bool>> {
        self.get(key, "true or false", toml::Value::as_bool)
    }

    fn parsed<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>>
    where
        T::Err: std::fmt::Display,
    {
        match self.str(key)? {
            None => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|e| anyhow!("{}: `{key}`: {e}", self.at)),
        }
    }

    fn sub(&self, key: &str, keys: &[&str]) -> Result<Option<Table<'a>>> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::Table(t)) => {
                Ok(Some(Table::new(t, format!("{} [{key}]", self.at), keys)?))
            }
            Some(_) => bail!("{}: `{key}` must be a table ([{key}])", self.at),
        }
    }
}

/// Parses `WxH` (each 16..=16384).
pub fn parse_size(s: &str) -> Result<(u32, u32)> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| anyhow!("`{s}` is not WxH"))?;
    let (w, h): (u32, u32) = (
        w.trim().parse().map_err(|_| anyhow!("`{s}` is not WxH"))?,
        h.trim().parse().map_err(|_| anyhow!("`{s}` is not WxH"))?,
    );
    if !(16..=16384).contains(&w) || !(16..=16384).contains(&h) {
        bail!("{s}: each side must be in 16..=16384");
    }
    Ok((w, h))
}

/// Parses a camera source: `demo[:WxH[@FPS]]`, a /dev/videoN device, a URI or a file.
pub fn parse_source(s: &str) -> Result<Source> {
    let s = s.trim();
    if s.is_empty() {
        bail!("empty source");
    }
    if s == "demo" || s.starts_with("demo:") {
        let spec = s
            .strip_prefix("demo")
            .unwrap_or_default()
            .trim_start_matches(':');
        let (size, fps) = match spec.split_once('@') {
            Some((size, fps)) => (size, Some(fps)),
            None => (spec, None),
        };
        let (width, height) = if size.is_empty() {
            (640, 360)
        } else {
            parse_size(size)?
        };
        let fps = match fps {
            None => 15.0,
            Some(f) => match f.parse::<f64>() {
                Ok(v) if (0.5..=120.0).contains(&v) => v,
                _ => bail!("{s}: the frame rate must be in [0.5, 120]"),
            },
        };
        return Ok(Source::Demo { width, height, fps });
    }
    if s.starts_with("/dev/video") {
        return Ok(Source::Uri(format!("v4l2://{s}")));
    }
    if !s.contains("://") && !Path::new(s).exists() {
        bail!("{s}: no such file, and not a URI (rtsp://...), /dev/videoN or demo");
    }
    Ok(Source::Uri(s.to_string()))
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        bail!("camera name `{name}`: use 1-64 letters, digits, `-` or `_`");
    }
    if name == "mosaic" {
        bail!("camera name `mosaic` is taken by the mosaic stream");
    }
    Ok(())
}

/// The smallest mosaic tile side, in pixels.
const MIN_TILE: u32 = 16;

fn seconds(what: &str, v: f64) -> Result<Duration> {
    if !(v > 0.0 && v < crate::common::MAX_SECONDS) {
        bail!("{what}: {v} is not a positive number of seconds");
    }
    Ok(Duration::from_secs_f64(v))
}

impl ServeArgs {
    /// The settings of the flags over those of `--config`.
    pub fn settings(&self) -> Result<Settings> {
        let text;
        let file: Option<toml::Table> = match &self.config {
            Some(path) => {
                text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                Some(
                    text.parse::<toml::Table>()
                        .with_context(|| format!("{}: not valid TOML", path.display()))?,
                )
            }
            None => None,
        };
        let empty = toml::Table::new();
        let at = self
            .config
            .as_deref()
            .map_or_else(String::new, |p| p.display().to_string());
        let top = Table::new(file.as_ref().unwrap_or(&empty), at.clone(), TOP_KEYS)?;

        let mut engine = Config {
            mode: self.mode.or(top.parsed("mode")?).unwrap_or_default(),
            backend: self.backend.or(top.parsed("backend")?).unwrap_or_default(),
            model: self.model.clone().or(top.parsed("model")?),
            ..Config::default()
        };
        let devices = match &self.devices {
            Some(d) => d.clone(),
            None => match top.table.get("devices") {
                None => Vec::new(),
                Some(toml::Value::Array(a)) => a
                    .iter()
                    .map(|v| v.as_integer().and_then(|i| usize::try_from(i).ok()))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| anyhow!("{at}: `devices` must be a list of GPU indices"))?,
                Some(_) => bail!("{at}: `devices` must be a list of GPU indices"),
            },
        };
        engine.devices = devices.clone();
        let engines = self
            .engines
            .or(top.uint("engines")?)
            .unwrap_or(if devices.is_empty() { 2 } else { devices.len() });
        if !(1..=64).contains(&engines) {
            bail!("--engines {engines}: must be in 1..=64");
        }
        let strength = match self.strength {
            Some(s) => s,
            None => top.float("strength")?.map_or(1.0, |v| v as f32),
        };
        let temporal = self
            .temporal
            .or(top.parsed("temporal")?)
            .unwrap_or_default();
        let passthrough = self.passthrough || top.bool("passthrough")?.unwrap_or(false);
        engine.strength = strength;
        engine.validate().map_err(|e| anyhow!("{e}"))?;

        let mut cameras = Vec::new();
        let stream = |strength: f32, temporal: TemporalMode| -> Result<Config> {
            let c = Config {
                strength,
                temporal,
                ..engine.clone()
            };
            c.validate().map_err(|e| anyhow!("{e}"))?;
            Ok(c)
        };
        match top.table.get("camera") {
            None => {}
            Some(toml::Value::Array(list)) => {
                for (i, v) in list.iter().enumerate() {
                    let toml::Value::Table(t) = v else {
                        bail!("{at}: each [[camera]] must be a table");
                    };
                    let cam = Table::new(t, format!("{at} [[camera]] {}", i + 1), CAMERA_KEYS)?;
                    let name = cam
                        .str("name")?
                        .ok_or_else(|| anyhow!("{}: `name` is missing", cam.at))?;
                    let source = cam
                        .str("source")?
                        .ok_or_else(|| anyhow!("{}: `source` is missing", cam.at))?;
                    let strength = cam.float("strength")?.map_or(strength, |v| v as f32);
                    let temporal = cam.parsed("temporal")?.unwrap_or(temporal);
                    cameras.push(Camera {
                        source: parse_source(&source)
                            .with_context(|| format!("{}: camera {name}", cam.at))?,
                        name,
                        config: stream(strength, temporal)?,
                        passthrough: passthrough || cam.bool("passthrough")?.unwrap_or(false),
                    });
                }
            }
            Some(_) => bail!("{at}: cameras are [[camera]] tables"),
        }
        for c in &self.cameras {
            let (name, source) = c
                .split_once('=')
                .ok_or_else(|| anyhow!("--camera {c}: expected NAME=SOURCE"))?;
            cameras.push(Camera {
                name: name.trim().to_string(),
                source: parse_source(source).with_context(|| format!("--camera {c}"))?,
                config: stream(strength, temporal)?,
                passthrough,
            });
        }
        if cameras.is_empty() {
            bail!("no camera: give --camera NAME=SOURCE or [[camera]] tables in --config");
        }
        for (i, c) in cameras.iter().enumerate() {
            check_name(&c.name)?;
            if cameras[..i].iter().any(|o| o.name == c.name) {
                bail!("two cameras are named `{}`", c.name);
            }
        }

        let mosaic_table = top.sub("mosaic", MOSAIC_KEYS)?;
        let mosaic = if self.mosaic || mosaic_table.is_some() {
            let size = match (&self.mosaic_size, mosaic_table.as_ref()) {
                (Some(s), _) => parse_size(s)?,
                (None, Some(t)) => t
                    .str("size")?
                    .as_deref()
                    .map(parse_size)
                    .transpose()?
                    .unwrap_or((1280, 720)),
                (None, None) => (1280, 720),
            };
            let fps = match (self.mosaic_fps, mosaic_table.as_ref()) {
                (Some(f), _) => f,
                (None, Some(t)) => t.float("fps")?.unwrap_or(10.0),
                (None, None) => 10.0,
            };
            if !(0.5..=60.0).contains(&fps) {
                bail!("mosaic frame rate {fps}: must be in [0.5, 60]");
            }
            let (cols, rows) = super::mosaic::grid(cameras.len());
            if size.0 / cols < MIN_TILE || size.1 / rows < MIN_TILE {
                bail!(
                    "a {}x{} mosaic of {} cameras ({cols}x{rows} tiles) leaves tiles under \
                     {MIN_TILE} px: make it larger",
                    size.0,
                    size.1,
                    cameras.len()
                );
            }
            Some((size, fps))
        } else {
            None
        };
        let stats = top.sub("stats", STATS_KEYS)?;
        let stats_port = match self.stats_port {
            Some(p) => Some(p),
            None => stats
                .as_ref()
                .map(|t| t.uint("port"))
                .transpose()?
                .flatten(),
        };
        let stats_file = match &self.stats_file {
            Some(f) => Some(f.clone()),
            None => stats
                .as_ref()
                .map(|t| t.str("file"))
                .transpose()?
                .flatten()
                .map(PathBuf::from),
        };
        let interval = match self.stats_interval {
            Some(v) => v,
            None => stats
                .as_ref()
                .map(|t| t.float("interval"))
                .transpose()?
                .flatten()
                .unwrap_or(10.0),
        };
        let stats_interval = if interval == 0.0 {
            None
        } else {
            Some(seconds("stats interval", interval)?)
        };
        let bitrate_kbps = self.bitrate.or(top.uint("bitrate")?).unwrap_or(2000);
        if !(16..=100_000).contains(&bitrate_kbps) {
            bail!("bit rate {bitrate_kbps} kbit/s: must be in 16..=100000");
        }
        let stall = seconds(
            "stall timeout",
            self.stall_timeout
                .or(top.float("stall_timeout")?)
                .unwrap_or(5.0),
        )?;
        let duration = self
            .duration
            .map(|d| seconds("--duration", d))
            .transpose()?;
        let rtsp_latency_ms = self
            .rtsp_latency
            .or(top.uint("rtsp_latency")?)
            .unwrap_or(200);
        Ok(Settings {
            address: self
                .address
                .clone()
                .or(top.str("address")?)
                .unwrap_or_else(|| "0.0.0.0".into()),
            port: self.port.or(top.uint("port")?).unwrap_or(8554),
            engine,
            engines,
            cameras,
            mosaic,
            bitrate_kbps,
            stats_port,
            stats_file,
            stats_interval,
            duration,
            stall,
            rtsp_latency_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn settings(args: &[&str]) -> Result<Settings> {
        let cli = Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))?;
        cli.serve.settings()
    }

    fn with_file(toml: &str, args: &[&str]) -> Result<Settings> {
        // One file per call (tests run in parallel), removed once read.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("derain-serve-{}-{n}.toml", std::process::id()));
        std::fs::write(&path, toml)?;
        let mut all = vec!["--config", path.to_str().unwrap()];
        all.extend_from_slice(args);
        let parsed = settings(&all);
        let _ = std::fs::remove_file(&path);
        parsed
    }

    #[test]
    fn flags_make_cameras_and_defaults() {
        let s = settings(&[
            "--camera",
            "a=demo",
            "--camera",
            "b=demo:320x240@10",
            "--port",
            "0",
        ])
        .unwrap();
        assert_eq!(s.port, 0);
        assert_eq!(s.cameras.len(), 2);
        assert_eq!(
            s.cameras[0].source,
            Source::Demo {
                width: 640,
                height: 360,
                fps: 15.0
            }
        );
        assert_eq!(
            s.cameras[1].source,
            Source::Demo {
                width: 320,
                height: 240,
                fps: 10.0
            }
        );
        assert_eq!(s.engines, 2);
        assert!(s.mosaic.is_none());
        assert_eq!(s.stats_interval, Some(Duration::from_secs(10)));
        assert_eq!(
            parse_source("/dev/video2").unwrap(),
            Source::Uri("v4l2:///dev/video2".into())
        );
    }

    #[test]
    fn a_file_and_flags_combine_and_flags_win() {
        let toml = r#"
            port = 9000
            bitrate = 800
            temporal = "auto"
            [mosaic]
            size = "640x360"
            [stats]
            interval = 0
            [[camera]]
            name = "gate"
            source = "demo:320x240"
            strength = 0.5
            [[camera]]
            name = "yard"
            source = "rtsp://10.0.0.9/s"
            passthrough = true
        "#;
        let s = with_file(toml, &["--port", "9100", "--camera", "c=demo"]).unwrap();
        assert_eq!(s.port, 9100);
        assert_eq!(s.bitrate_kbps, 800);
        assert_eq!(s.mosaic, Some(((640, 360), 10.0)));
        assert_eq!(s.stats_interval, None);
        let names: Vec<_> = s.cameras.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["gate", "yard", "c"]);
        assert_eq!(s.cameras[0].config.strength, 0.5);
        assert_eq!(s.cameras[0].config.temporal, TemporalMode::Auto);
        assert!(s.cameras[1].passthrough && !s.cameras[0].passthrough);
        assert_eq!(s.cameras[2].config.strength, 1.0);
    }

    #[test]
    fn the_documented_example_parses() {
        let text = include_str!("../../../../docs/serve-example.toml");
        let s = with_file(text, &[]).unwrap();
        assert_eq!(s.cameras.len(), 4);
        assert_eq!(s.mosaic, Some(((1920, 1080), 10.0)));
        assert_eq!(s.stats_port, Some(8080));
        assert_eq!(s.cameras[1].config.temporal, TemporalMode::Off);
        assert_eq!(s.cameras[0].config.temporal, TemporalMode::Auto);
        assert_eq!(
            s.cameras[2].source,
            Source::Uri("v4l2:///dev/video0".into())
        );
        assert!(s.cameras[3].passthrough);
    }

    #[test]
    fn mistakes_are_named() {
        let err = |r: Result<Settings>| format!("{:#}", r.unwrap_err());
        assert!(err(settings(&[])).contains("no camera"));
        assert!(err(settings(&["--camera", "nocolon"])).contains("NAME=SOURCE"));
        assert!(
            err(settings(&["--camera", "a=demo", "--camera", "a=demo"])).contains("two cameras")
        );
        assert!(err(settings(&["--camera", "a b=demo"])).contains("camera name"));
        assert!(err(settings(&["--camera", "mosaic=demo"])).contains("mosaic"));
        assert!(err(settings(&["--camera", "a=/no/such.mp4"])).contains("no such file"));
        assert!(err(settings(&["--camera", "a=demo:10x10"])).contains("16..=16384"));
        assert!(err(settings(&["--camera", "a=demo", "--engines", "0"])).contains("1..=64"));
        assert!(
            err(with_file(
                "prot = 1\n[[camera]]\nname='a'\nsource='demo'",
                &[]
            ))
            .contains("unknown key `prot`")
        );
        assert!(
            err(with_file(
                "port = 'x'\n[[camera]]\nname='a'\nsource='demo'",
                &[]
            ))
            .contains("`port` must be")
        );
        assert!(err(with_file("[[camera]]\nsource='demo'", &[])).contains("`name` is missing"));
        assert!(err(with_file("port = = 1", &[])).contains("not valid TOML"));
        // 300 cameras in a 160x120 mosaic: tiles of 8x7 px (a zero-width tile used to
        // underflow while drawing).
        let many: Vec<String> = (0..300).map(|i| format!("c{i}=demo")).collect();
        let mut args: Vec<&str> = vec!["--mosaic", "--mosaic-size", "160x120"];
        for c in &many {
            args.extend(["--camera", c]);
        }
        assert!(err(settings(&args)).contains("tiles under 16 px"));
    }
}
