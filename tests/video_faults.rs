//! `derain video` when things go wrong: a failing encoder or disk, a source that fails or ends
//! early, a signal. Each test asserts the exit code, the message and what is left on disk.
//! Inputs are made here (PNG frames, or short clips from `gst-launch-1.0`, which CI installs).

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_derain"));
    c.env("RUST_LOG", "warn");
    c
}

/// `derain video ARGS` (CPU backend), killed after 60 s.
fn video(args: &[&str]) -> Output {
    let child = bin()
        .arg("video")
        .args(args)
        .args(["--backend", "cpu"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_bounded(child, Duration::from_secs(60), "derain video")
}

/// `derain video ARGS` under a `sh` prelude (resource limits for the child only).
fn video_limited(prelude: &str, args: &[&str]) -> Output {
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("{prelude}; exec \"$0\" video \"$@\" --backend cpu"))
        .arg(env!("CARGO_BIN_EXE_derain"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_bounded(child, Duration::from_secs(60), "derain video (limited)")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

fn write_frames(dir: &Path, n: usize, w: u32, h: u32) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            let v = (x * 7 + y * 3 + i as u32 * 11) as u8;
            image::Rgb([v, v.wrapping_mul(3), 255 - v])
        });
        img.save(dir.join(format!("{i:04}.png"))).unwrap();
    }
}

/// Noise frames: incompressible, so the encoded file grows fast.
fn write_noise_frames(dir: &Path, n: usize, w: u32, h: u32) {
    std::fs::create_dir_all(dir).unwrap();
    let mut s = 0x9e37_79b9_u32;
    for i in 0..n {
        let img = image::RgbImage::from_fn(w, h, |_, _| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let [a, b, c, _] = s.to_le_bytes();
            image::Rgb([a, b, c])
        });
        img.save(dir.join(format!("{i:04}.png"))).unwrap();
    }
}

/// `gst-launch-1.0 -q ARGS`; `None` (with a printed reason) when the tool is missing.
fn gst_launch(pipeline: &str) -> Option<()> {
    let Ok(o) = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(pipeline.split_whitespace())
        .output()
    else {
        eprintln!("gst-launch-1.0 not installed (scripts/setup.sh installs it)");
        return None;
    };
    assert!(
        o.status.success(),
        "gst-launch-1.0 {pipeline}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Some(())
}

/// Duration and whether the discoverer finds a video stream; `None` without the tool.
fn discover(path: &Path) -> Option<(bool, String)> {
    let o = Command::new("gst-discoverer-1.0").arg(path).output().ok()?;
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    Some((o.status.success() && text.contains("video"), text))
}

fn assert_playable(path: &Path) {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    assert!(size > 500, "{}: {size} bytes", path.display());
    match discover(path) {
        Some((ok, text)) => assert!(ok, "{} is not playable: {text}", path.display()),
        None => eprintln!("gst-discoverer-1.0 not installed: size checked, not playback"),
    }
}

fn tmp(name: &str) -> common::TempDir {
    common::temp_dir(&format!("video-{name}"))
}

#[test]
fn frame_folder_with_a_truncated_frame_keeps_what_was_written() {
    // Four good frames, then one cut in half: exit 3, the bad file named, and a finished file
    // holding the first four (it used to leave 0 bytes, or accept the frame as grey).
    let dir = tmp("truncated-frame");
    let frames = dir.join("frames");
    write_frames(&frames, 5, 64, 48);
    let last = frames.join("0004.png");
    let bytes = std::fs::read(&last).unwrap();
    std::fs::write(&last, &bytes[..bytes.len() / 2]).unwrap();
    let out = dir.join("out.mkv");
    let o = video(&[frames.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let e = stderr(&o);
    assert_eq!(code(&o), Some(3), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    assert!(
        e.contains("0004.png") && e.contains("truncated") && e.contains("after 4 frames"),
        "{e}"
    );
    assert_playable(&out);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn frames_too_small_for_the_encoder_are_refused_before_anything_is_written() {
    // 3×5 px frames: x264 takes nothing under 16×16. This used to block forever in a full
    // appsrc that nobody drained, then failed with exit 4 and a 0-byte file in its place.
    let dir = tmp("tiny");
    let frames = dir.join("frames");
    write_frames(&frames, 6, 3, 5);
    for ext in ["mp4", "mkv"] {
        let out = dir.join(format!("out.{ext}"));
        let start = Instant::now();
        let o = video(&[frames.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        let e = stderr(&o);
        assert!(!e.contains("panicked"), "{e}");
        assert_eq!(code(&o), Some(1), "{e}");
        assert!(e.contains("3x5") && e.contains("16x16"), "{e}");
        assert!(!out.exists(), "{ext}: a file was left");
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{ext}: {:?}",
            start.elapsed()
        );
    }
}

#[test]
fn a_full_disk_is_an_error_within_seconds() {
    // Files may grow to 64 blocks (32-64 KiB); 40 noise frames of 160×120 encode to far
    // more. SIGXFSZ is ignored, so the write fails with EFBIG instead of killing the process.
    let dir = tmp("fsize");
    let frames = dir.join("frames");
    write_noise_frames(&frames, 40, 160, 120);
    let out = dir.join("out.mkv");
    let o = video_limited(
        "trap '' XFSZ; ulimit -f 64",
        &[
            frames.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--quantizer",
            "0",
        ],
    );
    let e = stderr(&o);
    assert_eq!(code(&o), Some(4), "{e}");
    assert!(e.contains("out.mkv") && e.contains("after "), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigint_finishes_a_playable_mp4() {
    // A long clip; SIGINT once the output exists: exit 130, "stopped by SIGINT", and an MP4
    // that plays (an unfinished MP4 has no index and does not).
    let dir = tmp("sigint");
    let clip = dir.join("long.mkv");
    let Some(()) = gst_launch(&format!(
        "videotestsrc num-buffers=3000 pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 \
         ! x264enc speed-preset=ultrafast ! matroskamux ! filesink location={}",
        clip.display()
    )) else {
        return;
    };
    let out = dir.join("out.mp4");
    let child = bin()
        .args(["video", clip.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .args(["--backend", "cpu"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0) == 0 {
        assert!(start.elapsed() < Duration::from_secs(30), "no output yet");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(700));
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let o = common::wait_bounded(child, Duration::from_secs(30), "derain video after SIGINT");
    let e = stderr(&o);
    assert_eq!(code(&o), Some(130), "{e}");
    assert!(
        e.contains("stopped by SIGINT") && e.contains("finished"),
        "{e}"
    );
    assert!(!e.contains("panicked"), "{e}");
    assert_playable(&out);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn duration_stops_at_stream_time() {
    let dir = tmp("duration");
    let frames = dir.join("frames");
    write_frames(&frames, 40, 32, 24);
    let out = dir.join("out.mkv");
    let o = video(&[
        frames.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--fps",
        "20",
        "--duration",
        "1.5",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains(": 30 frames"), "{stdout}");
    assert_playable(&out);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn truncated_mp4_input_is_reported() {
    // An MP4 with its index first (faststart), cut at 40 %: the demuxer ends early without an
    // error. `derain video` writes what there is, and warns, naming the file.
    let dir = tmp("truncated-mp4");
    let clip = dir.join("clip.mp4");
    let Some(()) = gst_launch(&format!(
        "videotestsrc num-buffers=100 ! video/x-raw,width=160,height=120,framerate=25/1 \
         ! x264enc ! mp4mux faststart=true ! filesink location={}",
        clip.display()
    )) else {
        return;
    };
    let bytes = std::fs::read(&clip).unwrap();
    let cut = dir.join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 5]).unwrap();
    let out = dir.join("out.mkv");
    let o = video(&[cut.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(
        e.contains("cut.mp4") && e.contains("looks truncated"),
        "{e}"
    );
    assert_playable(&out);
    // The whole file: no warning.
    let o = video(&[clip.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("truncated"), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_audio_track_is_reported_as_not_copied() {
    let dir = tmp("audio");
    let clip = dir.join("av.mkv");
    let Some(()) = gst_launch(&format!(
        "videotestsrc num-buffers=25 ! video/x-raw,width=64,height=48,framerate=25/1 ! x264enc \
         ! matroskamux name=m ! filesink location={} audiotestsrc num-buffers=40 \
         ! audioconvert ! audio/x-raw,format=S16LE ! m.",
        clip.display()
    )) else {
        return;
    };
    let out = dir.join("out.mkv");
    let o = video(&[clip.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(e.contains("audio track is not copied"), "{e}");
    assert_playable(&out);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_limits_and_reconnect_on_a_file_are_argument_errors() {
    let dir = tmp("args");
    let frames = dir.join("frames");
    write_frames(&frames, 2, 16, 16);
    let out = dir.join("o.mkv");
    let o = video(&[
        frames.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--max-frames",
        "0",
    ]);
    assert_eq!(code(&o), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--max-frames"), "{}", stderr(&o));
    let o = video(&[
        frames.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--duration",
        "-1",
    ]);
    assert_eq!(code(&o), Some(2), "{}", stderr(&o));
    let o = video(&[
        frames.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--reconnect",
    ]);
    assert_eq!(code(&o), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--reconnect is for streams"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A camera stand-in: live H.264 in MPEG-TS over UDP to 127.0.0.1:`port`, for `secs` seconds.
fn udp_camera(port: u16, secs: u32) -> Option<Child> {
    let pipeline = format!(
        "videotestsrc is-live=true pattern=ball num-buffers={} \
         ! video/x-raw,width=160,height=120,framerate=20/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 \
         ! mpegtsmux ! udpsink host=127.0.0.1 port={port} sync=true",
        secs * 20
    );
    match Command::new("gst-launch-1.0")
        .arg("-q")
        .args(pipeline.split_whitespace())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => Some(c),
        Err(_) => {
            eprintln!("gst-launch-1.0 not installed (scripts/setup.sh installs it)");
            None
        }
    }
}

#[test]
fn a_camera_that_drops_ends_with_a_finished_file_and_exit_3() {
    let dir = tmp("camera-drop");
    let out = dir.join("out.mp4");
    let port = 5600 + (std::process::id() % 300) as u16;
    let Some(mut camera) = udp_camera(port, 4) else {
        return;
    };
    let o = video(&[
        &format!("udp://127.0.0.1:{port}"),
        "-o",
        out.to_str().unwrap(),
        "--stall-timeout",
        "2",
    ]);
    let _ = camera.kill();
    let _ = camera.wait();
    let e = stderr(&o);
    assert_eq!(code(&o), Some(3), "{e}");
    assert!(
        e.contains("stalled") && e.contains("finished, playable"),
        "{e}"
    );
    assert_playable(&out);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reconnect_follows_a_camera_that_comes_back() {
    let dir = tmp("camera-back");
    let out = dir.join("out.mkv");
    let port = 5900 + (std::process::id() % 300) as u16;
    let Some(mut first) = udp_camera(port, 3) else {
        return;
    };
    let child = bin()
        .args([
            "video",
            &format!("udp://127.0.0.1:{port}"),
            "-o",
            out.to_str().unwrap(),
        ])
        .args(["--backend", "cpu", "--reconnect", "--stall-timeout", "1.5"])
        .args(["--duration", "4"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The camera sends 3 s, is gone for about 3 s, then comes back for 6 s.
    let _ = first.wait();
    std::thread::sleep(Duration::from_secs(3));
    let mut second = udp_camera(port, 6).unwrap();
    let o = common::wait_bounded(child, Duration::from_secs(40), "derain video --reconnect");
    let _ = second.kill();
    let _ = second.wait();
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(
        e.contains("reconnecting") && e.contains("reconnected"),
        "{e}"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    // 4 s of video at 20 fps, from both connections (the gap is left out).
    let frames: u64 = stdout
        .split(": ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!((70..=81).contains(&frames), "{frames} frames: {stdout}");
    assert_playable(&out);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--in-flight 3` writes the very video `--in-flight 1` writes (frames in order, temporal
/// state in order, side by side), the frames still in flight at the end included.
#[test]
fn frames_in_flight_write_the_same_video() {
    let d = tmp("in-flight");
    write_noise_frames(&d.join("in"), 9, 96, 64);
    let input = d.join("in");
    let mut decoded = Vec::new();
    for k in ["1", "3"] {
        let out = d.join(format!("k{k}.mkv"));
        let o = video(&[
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--temporal",
            "on",
            "--side-by-side",
            "--in-flight",
            k,
        ]);
        assert_eq!(code(&o), Some(0), "in-flight {k}: {}", stderr(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("9 frames"),
            "in-flight {k}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        let raw = d.join(format!("k{k}.rgba"));
        let pipeline = format!(
            "filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=RGBA ! filesink location={}",
            out.display(),
            raw.display()
        );
        if gst_launch(&pipeline).is_none() {
            return;
        }
        decoded.push(std::fs::read(raw).unwrap());
    }
    assert_eq!(decoded[0].len(), 9 * 192 * 64 * 4);
    assert!(decoded[0] == decoded[1], "in-flight 3 wrote other frames");
    let bad = video(&[input.to_str().unwrap(), "-o", "x.mkv", "--in-flight", "0"]);
    assert_eq!(code(&bad), Some(2), "{}", stderr(&bad));
}

#[test]
fn the_input_is_never_the_output_and_limits_too_large_are_refused() {
    let dir = tmp("same");
    let frames = dir.join("frames");
    write_frames(&frames, 4, 32, 24);
    let clip = dir.join("clip.mkv");
    let o = video(&[frames.to_str().unwrap(), "-o", clip.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let before = std::fs::read(&clip).unwrap();
    // Written over while it was read: the source was replaced by a shorter file, exit 0.
    let o = video(&[clip.to_str().unwrap(), "-o", clip.to_str().unwrap()]);
    let e = stderr(&o);
    assert_eq!(code(&o), Some(1), "{e}");
    assert!(e.contains("is the input"), "{e}");
    assert_eq!(std::fs::read(&clip).unwrap(), before, "the input changed");
    // Seconds beyond what a clock holds were a panic (exit 101); a frame rate that rounds to
    // 0/1 divided by zero.
    let out = dir.join("out.mkv");
    for (flag, v) in [
        ("--duration", "1e12"),
        ("--stall-timeout", "1e20"),
        ("--fps", "1e-300"),
    ] {
        let o = video(&[
            frames.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            flag,
            v,
        ]);
        let e = stderr(&o);
        assert!(!e.contains("panicked"), "{flag} {v}: {e}");
        assert!(matches!(code(&o), Some(1 | 2)), "{flag} {v}: {e}");
        assert!(e.contains(v) || e.contains(flag), "{flag} {v}: {e}");
    }
}
