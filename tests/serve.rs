//! `derain serve` end to end on 127.0.0.1: four RTSP cameras (two `derain serve --passthrough`
//! processes serving built-in synthetic rain, so one can be killed alone), one server
//! deraining all four with a mosaic, stats in a file and over HTTP. One camera is killed and
//! restarted; the others must never stop, it must come back, and recordings of the served
//! streams must play (gst-discoverer). Needs gst-launch-1.0 and gst-discoverer-1.0, which
//! scripts/setup.sh installs; without them the test says so and skips.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

/// A child process killed when dropped (a failing test leaves nothing running).
struct Proc {
    child: Child,
    /// Lines printed on stdout.
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn serve(args: &[&str]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_derain"))
            .arg("serve")
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines }
    }

    /// The URLs it prints (`serving SOURCE -> URL`), waiting for `n` of them.
    fn urls(&self, n: usize) -> Vec<String> {
        let mut urls = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while urls.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .expect("the server printed its URLs");
            if let Some((_, url)) = line.split_once(" -> ") {
                urls.push(url.trim().to_string());
            }
        }
        urls
    }

    /// The `stats at http://...` line.
    fn stats_url(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .expect("the stats URL is printed");
            if let Some(u) = line.strip_prefix("stats at ") {
                return u.trim().to_string();
            }
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    /// Waits for the exit at most `limit`.
    fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Records `secs` seconds of an RTSP stream into a Matroska file, ended with EOS (SIGINT).
fn record(url: &str, secs: u32, out: &Path) {
    let status = Command::new("timeout")
        .args(["-s", "INT", &secs.to_string(), "gst-launch-1.0", "-q", "-e"])
        .args(
            format!(
                "rtspsrc location={url} latency=100 ! rtph264depay ! h264parse ! matroskamux \
                 ! filesink location={}",
                out.display()
            )
            .split_whitespace(),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    // 124: the timeout's SIGINT ended it (what we want), 0: it ended by itself.
    assert!(
        matches!(status.code(), Some(0) | Some(124) | Some(130)),
        "recording {url}: {status}"
    );
}

/// Records `secs` seconds of `url` into `out` and returns the recording's duration in
/// seconds, width and height (gst-discoverer). A recording that caught no frame, or under a
/// quarter of its window (a loaded machine can spend most of the window on the RTSP set-up:
/// 0.1 s of 3 in one CI run), is made once more, twice as long, before the test judges it.
fn record_playable(url: &str, secs: u32, out: &Path) -> (f64, u32, u32) {
    record(url, secs, out);
    let caught = discover(out);
    if let Some(d) = caught
        && d.0 >= f64::from(secs) / 4.0
    {
        return d;
    }
    eprintln!(
        "{url}: {} in {secs} s, recording again for {} s",
        caught.map_or("no frame".to_string(), |d| format!("{:.1} s", d.0)),
        2 * secs
    );
    record(url, 2 * secs, out);
    discover(out).unwrap_or_else(|| panic!("{}: no H.264 video recorded", out.display()))
}

/// Duration in seconds, width and height of the video in `path` (gst-discoverer); `None`
/// when it holds no H.264 stream.
fn discover(path: &Path) -> Option<(f64, u32, u32)> {
    let o = Command::new("gst-discoverer-1.0")
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    if !(o.status.success() && text.contains("H.264")) {
        eprintln!("{}: {text}", path.display());
        return None;
    }
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    let d = field("Duration:");
    let parts: Vec<f64> = d.split(':').map(|p| p.parse().unwrap()).collect();
    let secs = parts[0] * 3600.0 + parts[1] * 60.0 + parts[2];
    Some((
        secs,
        field("Width:").parse().unwrap(),
        field("Height:").parse().unwrap(),
    ))
}

fn read_stats(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn stream<'a>(stats: &'a Value, name: &str) -> &'a Value {
    stats["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stream {name} in {stats}"))
}

/// Polls the stats file until `pred` holds (returns the stats) or `limit` passes (panics),
/// checking `always` on every reading.
fn wait_stats(
    path: &Path,
    limit: Duration,
    what: &str,
    pred: impl Fn(&Value) -> bool,
    always: impl Fn(&Value),
) -> Value {
    let start = Instant::now();
    loop {
        if let Some(s) = read_stats(path) {
            always(&s);
            if pred(&s) {
                return s;
            }
        }
        assert!(
            start.elapsed() < limit,
            "{what}: not within {limit:?}: {:?}",
            read_stats(path)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn http_get(url: &str) -> (String, Value) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut conn = std::net::TcpStream::connect(host).unwrap();
    write!(conn, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (
        head.lines().next().unwrap().to_string(),
        serde_json::from_str(body).unwrap(),
    )
}

fn port_of(url: &str) -> String {
    url.rsplit_once(':')
        .unwrap()
        .1
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn four_cameras_one_drops_and_comes_back_while_the_others_keep_serving() {
    if !have("gst-launch-1.0") || !have("gst-discoverer-1.0") {
        common::report_skip(
            "serve",
            "gst-launch-1.0 / gst-discoverer-1.0 missing (scripts/setup.sh installs them)",
        );
        return;
    }
    let dir = common::temp_dir("serve");
    let stats_file = dir.join("stats.json");
    let cam = "demo:192x144@10";

    // Cameras: three in one process, the fourth alone so that it can be killed.
    let steady = Proc::serve(&[
        "--passthrough",
        "--port",
        "0",
        "--stats-interval",
        "0",
        "--camera",
        &format!("a={cam}"),
        "--camera",
        &format!("b={cam}"),
        "--camera",
        &format!("c={cam}"),
    ]);
    let steady_urls = steady.urls(3);
    let flaky_args = |port: &str| {
        vec![
            "--passthrough".to_string(),
            "--port".into(),
            port.to_string(),
            "--stats-interval".into(),
            "0".into(),
            "--camera".into(),
            format!("d={cam}"),
        ]
    };
    let flaky = Proc::serve(
        &flaky_args("0")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let flaky_url = flaky.urls(1).remove(0);
    let flaky_port = port_of(&flaky_url);

    let mut server_args: Vec<String> = [
        "--backend",
        "cpu",
        "--engines",
        "2",
        "--port",
        "0",
        "--stats-port",
        "0",
        "--stats-interval",
        "0",
        "--stall-timeout",
        "3",
        "--mosaic",
        "--mosaic-size",
        "320x240",
        "--mosaic-fps",
        "5",
        "--duration",
        "120",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    server_args.extend(["--stats-file".into(), stats_file.display().to_string()]);
    for (i, url) in steady_urls.iter().chain([&flaky_url]).enumerate() {
        server_args.extend(["--camera".into(), format!("cam{i}={url}")]);
    }
    let mut server = Proc::serve(&server_args.iter().map(String::as_str).collect::<Vec<_>>());
    let served = server.urls(5);
    let stats_url = server.stats_url();
    assert!(served[4].ends_with("/mosaic"), "{served:?}");

    let names = ["cam0", "cam1", "cam2", "cam3"];
    let all_live = |s: &Value| names.iter().all(|n| stream(s, n)["state"] == "live");
    let live_stats = wait_stats(
        &stats_file,
        Duration::from_secs(30),
        "four live cameras",
        all_live,
        |_| {},
    );
    for n in names {
        let s = stream(&live_stats, n);
        assert_eq!(
            (s["width"].as_u64(), s["height"].as_u64()),
            (Some(192), Some(144)),
            "{s}"
        );
        assert!(
            s["rain_level"].as_f64().unwrap() > 0.3,
            "heavy rain is measured: {s}"
        );
    }

    // A served stream plays.
    let rec = dir.join("cam0.mkv");
    let (secs, w, h) = record_playable(&served[0], 4, &rec);
    assert!(
        secs >= 1.0 && (w, h) == (192, 144),
        "cam0.mkv: {secs} s {w}x{h}"
    );

    // The fourth camera drops: the other three must stay live all along.
    let others_live = |s: &Value| {
        for n in &names[..3] {
            assert_eq!(
                stream(s, n)["state"],
                "live",
                "{n} stopped while cam3 was away: {s}"
            );
        }
    };
    let before = read_stats(&stats_file).unwrap();
    drop(flaky);
    let away = wait_stats(
        &stats_file,
        Duration::from_secs(15),
        "cam3 seen as dropped",
        |s| stream(s, "cam3")["state"] == "reconnecting",
        others_live,
    );
    assert!(stream(&away, "cam3")["last_error"].is_string(), "{away}");
    // While it is away its stream still plays (its last frame, greyed out).
    let rec_away = dir.join("cam3-away.mkv");
    let (secs, ..) = record_playable(&served[3], 3, &rec_away);
    assert!(secs >= 0.5, "cam3 while away: {secs} s");

    let flaky = Proc::serve(
        &flaky_args(&flaky_port)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let _ = flaky.urls(1);
    let out3 = stream(&away, "cam3")["frames_out"].as_u64().unwrap();
    let back = wait_stats(
        &stats_file,
        Duration::from_secs(40),
        "cam3 back",
        |s| {
            let c = stream(s, "cam3");
            c["state"] == "live" && c["frames_out"].as_u64().unwrap() > out3 + 10
        },
        others_live,
    );
    let c3 = stream(&back, "cam3");
    assert!(
        c3["drops"].as_u64().unwrap() >= 1 && c3["reconnects"].as_u64().unwrap() >= 1,
        "{c3}"
    );
    for n in &names[..3] {
        let (a, b) = (
            stream(&before, n)["frames_out"].as_u64().unwrap(),
            stream(&back, n)["frames_out"].as_u64().unwrap(),
        );
        assert!(b > a + 20, "{n} kept serving: {a} -> {b} frames");
        assert_eq!(stream(&back, n)["drops"], 0, "{n}");
    }
    let rec_back = dir.join("cam3-back.mkv");
    let (secs, w, h) = record_playable(&served[3], 3, &rec_back);
    assert!(
        secs >= 1.0 && (w, h) == (192, 144),
        "cam3 back: {secs} s {w}x{h}"
    );

    let rec_mosaic = dir.join("mosaic.mkv");
    let (secs, w, h) = record_playable(&served[4], 3, &rec_mosaic);
    assert!(
        secs >= 1.0 && (w, h) == (320, 240),
        "mosaic: {secs} s {w}x{h}"
    );

    // The HTTP endpoint.
    let (status, one) = http_get(&format!("{stats_url}/cam1"));
    assert!(status.contains("200"), "{status}");
    assert_eq!(one["name"], "cam1");
    assert_eq!(one["state"], "live");
    let (status, all) = http_get(&stats_url);
    assert!(status.contains("200"));
    assert_eq!(all["streams"].as_array().unwrap().len(), 5);
    assert_eq!(all["backend"], "cpu");
    let (status, _) = http_get(&format!("{stats_url}/nope"));
    assert!(status.contains("404"), "{status}");

    // SIGTERM stops it cleanly, and the last stats say so.
    server.signal("-TERM");
    let status = server
        .wait(Duration::from_secs(15))
        .expect("serve stops within 15 s of SIGTERM");
    assert!(status.success(), "serve exit status {status}");
    let last = read_stats(&stats_file).unwrap();
    for n in names {
        assert_eq!(stream(&last, n)["state"], "stopped");
    }
    drop(steady);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_settings_are_clear_errors() {
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_derain"))
            .arg("serve")
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = run(&[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no camera"), "{err}");
    let (code, err) = run(&["--camera", "a=/nope.mp4"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no such file"), "{err}");
    // A port in use is named.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, err) = run(&[
        "--camera",
        "a=demo:64x48",
        "--address",
        "127.0.0.1",
        "--port",
        &port,
        "--passthrough",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("cannot listen"), "{err}");
}

#[test]
fn a_camera_that_never_sent_a_frame_does_not_hold_up_the_other_streams() {
    if !have("gst-launch-1.0") || !have("gst-discoverer-1.0") {
        common::report_skip(
            "serve",
            "gst-launch-1.0 / gst-discoverer-1.0 missing (scripts/setup.sh installs them)",
        );
        return;
    }
    // A "camera" that takes the connection and never answers.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hole_port = hole.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in hole.incoming().map_while(Result::ok) {
            held.push(c);
        }
    });
    let dir = common::temp_dir("serve-hole");
    let _server = Proc::serve(&[
        "--passthrough",
        "--port",
        "0",
        "--stats-interval",
        "0",
        "--duration",
        "90",
        "--camera",
        &format!("hole=rtsp://127.0.0.1:{hole_port}/x"),
        "--camera",
        "live=demo:96x64@10",
    ]);
    let urls = _server.urls(2);
    // The client of the silent camera is told to come back (503) at once; it used to wait
    // for ever in DESCRIBE, and every other client with it.
    let start = Instant::now();
    let o = Command::new("timeout")
        .args(["20", "gst-launch-1.0", "-q", "rtspsrc"])
        .arg(format!("location={}", urls[0]))
        .args(["!", "fakesink"])
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(124), "the client of `hole` hung");
    assert!(!o.status.success());
    assert!(start.elapsed() < Duration::from_secs(15));
    // Meanwhile a client of the live camera gets its frames.
    let slow = Command::new("gst-launch-1.0")
        .args(["-q", "rtspsrc"])
        .arg(format!("location={}", urls[0]))
        .args(["!", "fakesink"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (secs, w, h) = record_playable(&urls[1], 4, &dir.join("live.mkv"));
    assert!(secs > 0.5 && (w, h) == (96, 64), "{secs} s {w}x{h}");
    let mut slow = slow;
    let _ = slow.kill();
    let _ = slow.wait();
}

#[test]
fn a_file_camera_plays_at_its_own_frame_rate() {
    if !have("gst-launch-1.0") {
        common::report_skip(
            "serve",
            "gst-launch-1.0 missing (scripts/setup.sh installs it)",
        );
        return;
    }
    // 100 frames at 10 fps: 10 s of video. It was read as fast as it decoded (200+ fps).
    let dir = common::temp_dir("serve-paced");
    let clip = dir.join("clip.mkv");
    let ok = Command::new("gst-launch-1.0")
        .args(["-q", "videotestsrc", "num-buffers=100", "!"])
        .arg("video/x-raw,width=64,height=48,framerate=10/1")
        .args([
            "!",
            "x264enc",
            "!",
            "h264parse",
            "!",
            "matroskamux",
            "!",
            "filesink",
        ])
        .arg(format!("location={}", clip.display()))
        .status()
        .unwrap()
        .success();
    assert!(ok, "making the clip");
    let stats = dir.join("stats.json");
    let mut server = Proc::serve(&[
        "--passthrough",
        "--port",
        "0",
        "--stats-interval",
        "1",
        "--stats-file",
        stats.to_str().unwrap(),
        "--duration",
        "3",
        "--camera",
        &format!("f={}", clip.display()),
    ]);
    assert!(
        server.wait(Duration::from_secs(30)).is_some(),
        "serve did not stop"
    );
    let s = read_stats(&stats).expect("stats written");
    let n = stream(&s, "f")["frames_in"].as_u64().unwrap();
    // ≈ 30 in 3 s (the opening takes some of it); unpaced, all 100.
    assert!((5..=45).contains(&n), "{n} frames in 3 s of a 10 fps file");
}
