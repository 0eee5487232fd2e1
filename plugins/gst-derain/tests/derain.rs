// SPDX-License-Identifier: MIT OR Apache-2.0
//! Element-level tests of `derain` with `gst_check::Harness`, plus a few whole pipelines.
//! Everything runs with `backend=cpu` on small generated frames, so CI needs no GPU and no data.

use std::sync::Once;

// The workspace's skip reporter (counted by .ci/run as skipped, not passed).
#[cfg(feature = "cuda")]
#[path = "../../../tests/common/skip.rs"]
mod skip;

use gst::glib;
use gst::prelude::*;
use gst_check::Harness;
use gst_video::VideoFormat;

const FORMATS: [VideoFormat; 4] = [
    VideoFormat::Rgba,
    VideoFormat::Bgra,
    VideoFormat::Rgbx,
    VideoFormat::Bgrx,
];
const FRAME: gst::ClockTime = gst::ClockTime::from_mseconds(40);

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstderain::plugin_register_static().expect("registering the derain plugin");
    });
}

/// A `derain` element on the CPU engine, wrapped in a harness with caps for `w`×`h` `format`.
fn harness(format: VideoFormat, w: u32, h: u32) -> Harness {
    init();
    let element = gst::ElementFactory::make("derain")
        .property_from_str("backend", "cpu")
        .build()
        .unwrap();
    let mut h_ = Harness::with_element(&element, Some("sink"), Some("src"));
    h_.set_src_caps(info(format, w, h).to_caps().unwrap());
    h_
}

fn info(format: VideoFormat, w: u32, h: u32) -> gst_video::VideoInfo {
    gst_video::VideoInfo::builder(format, w, h)
        .fps(gst::Fraction::new(25, 1))
        .build()
        .unwrap()
}

/// The rain-free scene of [`frame`] at pixel (x, y) of a `w`×`h` frame (R, G, B).
fn scene(x: usize, y: usize, w: u32, h: u32) -> [u8; 3] {
    [
        (40 + x * 100 / w as usize) as u8,
        (60 + y * 80 / h as usize) as u8,
        (90 + (x + y) % 37) as u8,
    ]
}

/// A deterministic frame with bright slanted streaks over a smooth scene (rows `stride` apart,
/// as `VideoInfo` lays them out), with PTS `index`×40 ms.
fn frame(format: VideoFormat, w: u32, h: u32, index: u64) -> gst::Buffer {
    let info = info(format, w, h);
    let stride = info.stride()[0] as usize;
    let mut data = vec![0u8; info.size()];
    for y in 0..h as usize {
        for x in 0..w as usize {
            let p = &mut data[y * stride + x * 4..][..4];
            let streak = (x + y / 4 + index as usize * 3).is_multiple_of(11);
            let base = scene(x, y, w, h);
            for c in 0..3 {
                p[c] = if streak { 235 } else { base[c] };
            }
            p[3] = (x * 255 / w as usize) as u8; // alpha (or padding) varies, to check it is kept
        }
    }
    let mut buf = gst::Buffer::from_mut_slice(data);
    {
        let b = buf.get_mut().unwrap();
        b.set_pts(FRAME * index);
        b.set_duration(FRAME);
    }
    buf
}

fn bytes(buf: &gst::Buffer) -> Vec<u8> {
    buf.map_readable().unwrap().as_slice().to_vec()
}

fn element(h: &Harness) -> gst::Element {
    h.element().unwrap()
}

#[test]
fn caps_size_pts_and_duration_are_preserved_for_every_format() {
    for format in FORMATS {
        let mut h = harness(format, 64, 48);
        for i in 0..3 {
            let input = frame(format, 64, 48, i);
            let want = bytes(&input);
            let out = h.push_and_pull(input).unwrap();
            assert_eq!(out.pts(), Some(FRAME * i), "{format:?}");
            assert_eq!(out.duration(), Some(FRAME), "{format:?}");
            let got = bytes(&out);
            assert_eq!(got.len(), want.len(), "{format:?}");
            assert_ne!(got, want, "{format:?}: the frame was not processed");
            if format == VideoFormat::Rgba || format == VideoFormat::Bgra {
                let alpha_kept = got
                    .iter()
                    .zip(&want)
                    .skip(3)
                    .step_by(4)
                    .all(|(a, b)| a == b);
                assert!(alpha_kept, "{format:?}: alpha changed");
            }
        }
        let caps = h.sinkpad().unwrap().current_caps().unwrap();
        let out_info = gst_video::VideoInfo::from_caps(&caps).unwrap();
        assert_eq!(
            (out_info.format(), out_info.width(), out_info.height()),
            (format, 64, 48)
        );
        assert_eq!(element(&h).property::<u64>("frames-processed"), 3);
    }
}

#[test]
fn properties_round_trip_and_statistics_update() {
    let mut h = harness(VideoFormat::Rgbx, 64, 48);
    let e = element(&h);
    assert_eq!(e.property::<String>("backend-in-use"), "cpu");
    assert_eq!(e.property::<u64>("frames-processed"), 0);
    assert!(e.property::<bool>("qos"), "qos is on by default");

    e.set_property("strength", 0.5f32);
    e.set_property("atmosphere-smoothing", 0.25f32);
    e.set_property("passthrough", true);
    e.set_property("passthrough", false);
    assert_eq!(e.property::<f32>("strength"), 0.5);
    assert_eq!(e.property::<f32>("atmosphere-smoothing"), 0.25);
    assert!(!e.property::<bool>("passthrough"));

    // READY-time properties round-trip too (they apply at the next start).
    let e2 = gst::ElementFactory::make("derain").build().unwrap();
    e2.set_property_from_str("mode", "full");
    e2.set_property_from_str("backend", "cuda");
    e2.set_property("device", "0,1");
    e2.set_property("model", "/tmp/derain-model.onnx");
    e2.set_property("qos", false);
    let nick = |name: &str| glib_enum_nick(&e2.property_value(name));
    assert_eq!(nick("mode"), "full");
    assert_eq!(nick("backend"), "cuda");
    assert_eq!(e2.property::<String>("device"), "0,1");
    assert_eq!(
        e2.property::<Option<String>>("model").as_deref(),
        Some("/tmp/derain-model.onnx")
    );
    assert!(!e2.property::<bool>("qos"));
    assert_eq!(e2.property::<String>("backend-in-use"), "");

    for i in 0..4 {
        h.push_and_pull(frame(VideoFormat::Rgbx, 64, 48, i))
            .unwrap();
    }
    assert_eq!(e.property::<u64>("frames-processed"), 4);
    assert!(e.property::<f64>("last-ms-per-frame") > 0.0);
    assert!(e.property::<f64>("mean-ms-per-frame") > 0.0);
}

fn glib_enum_nick(v: &glib::Value) -> String {
    glib::EnumValue::from_value(v).unwrap().1.nick().to_string()
}

#[test]
fn passthrough_is_bit_exact_and_switchable_while_playing() {
    let mut h = harness(VideoFormat::Rgba, 64, 48);
    let e = element(&h);
    e.set_property("passthrough", true);
    let input = frame(VideoFormat::Rgba, 64, 48, 0);
    let want = bytes(&input);
    assert_eq!(bytes(&h.push_and_pull(input).unwrap()), want);
    assert_eq!(e.property::<u64>("frames-processed"), 0);

    e.set_property("passthrough", false);
    let input = frame(VideoFormat::Rgba, 64, 48, 1);
    let want = bytes(&input);
    assert_ne!(bytes(&h.push_and_pull(input).unwrap()), want);
    assert_eq!(e.property::<u64>("frames-processed"), 1);

    e.set_property("passthrough", true);
    let input = frame(VideoFormat::Rgba, 64, 48, 2);
    let want = bytes(&input);
    assert_eq!(bytes(&h.push_and_pull(input).unwrap()), want);
}

#[test]
fn strength_zero_returns_the_input_while_playing() {
    let mut h = harness(VideoFormat::Bgrx, 64, 48);
    element(&h).set_property("strength", 0.0f32);
    let input = frame(VideoFormat::Bgrx, 64, 48, 0);
    let want = bytes(&input);
    let got = bytes(&h.push_and_pull(input).unwrap());
    let max_diff = got
        .iter()
        .zip(&want)
        .enumerate()
        .filter(|(i, _)| i % 4 != 3)
        .map(|(_, (a, b))| a.abs_diff(*b))
        .max()
        .unwrap();
    assert!(max_diff <= 1, "strength 0 changed a pixel by {max_diff}");
}

#[test]
fn resolution_change_mid_stream_renegotiates() {
    let mut h = harness(VideoFormat::Rgba, 64, 48);
    let out = h
        .push_and_pull(frame(VideoFormat::Rgba, 64, 48, 0))
        .unwrap();
    assert_eq!(out.size(), 64 * 48 * 4);

    h.set_src_caps(info(VideoFormat::Rgba, 80, 60).to_caps().unwrap());
    let out = h
        .push_and_pull(frame(VideoFormat::Rgba, 80, 60, 1))
        .unwrap();
    assert_eq!(out.size(), 80 * 60 * 4);
    assert_eq!(out.pts(), Some(FRAME));
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    let out_info = gst_video::VideoInfo::from_caps(&caps).unwrap();
    assert_eq!((out_info.width(), out_info.height()), (80, 60));

    // And a format change as well.
    h.set_src_caps(info(VideoFormat::Bgrx, 32, 24).to_caps().unwrap());
    let out = h
        .push_and_pull(frame(VideoFormat::Bgrx, 32, 24, 2))
        .unwrap();
    assert_eq!(out.size(), 32 * 24 * 4);
}

#[test]
fn eos_drains_every_frame_before_eos() {
    let mut h = harness(VideoFormat::Rgbx, 64, 48);
    for i in 0..5 {
        h.push(frame(VideoFormat::Rgbx, 64, 48, i)).unwrap();
    }
    assert!(h.push_event(gst::event::Eos::new()));
    let mut pts = Vec::new();
    while let Some(buf) = h.try_pull() {
        pts.push(buf.pts().unwrap());
    }
    assert_eq!(pts, (0..5).map(|i| FRAME * i).collect::<Vec<_>>());
    let mut saw_eos = false;
    while let Some(ev) = h.try_pull_event() {
        saw_eos |= ev.type_() == gst::EventType::Eos;
    }
    assert!(saw_eos, "EOS was not forwarded");
}

#[test]
fn flush_resets_and_streaming_continues() {
    let mut h = harness(VideoFormat::Rgbx, 64, 48);
    h.push_and_pull(frame(VideoFormat::Rgbx, 64, 48, 0))
        .unwrap();
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    let segment = gst::FormattedSegment::<gst::ClockTime>::new();
    assert!(h.push_event(gst::event::Segment::new(&segment)));
    let out = h
        .push_and_pull(frame(VideoFormat::Rgbx, 64, 48, 1))
        .unwrap();
    assert_eq!(out.pts(), Some(FRAME));
    assert_eq!(element(&h).property::<u64>("frames-processed"), 2);
}

#[test]
fn latency_query_reports_upstream_plus_what_derain_adds() {
    let mut h = harness(VideoFormat::Rgba, 64, 48);
    h.push_and_pull(frame(VideoFormat::Rgba, 64, 48, 0))
        .unwrap();
    let upstream = gst::ClockTime::from_mseconds(10);
    h.set_upstream_latency(upstream);
    // The CPU pipeline returns every frame from its own process() call: it adds nothing.
    assert_eq!(h.query_latency(), Some(upstream));
}

#[test]
fn late_frames_are_dropped_under_qos_unless_disabled() {
    let mut h = harness(VideoFormat::Rgba, 64, 48);
    let bus = gst::Bus::new();
    element(&h).set_bus(Some(&bus));
    element(&h).set_property("stats-interval", 1u32);
    // Downstream says: anything with a running time before 1 s is too late.
    let qos = gst::event::Qos::new(gst::QOSType::Underflow, 1.0, 0, gst::ClockTime::SECOND);
    assert!(h.push_upstream_event(qos));
    h.push(frame(VideoFormat::Rgba, 64, 48, 0)).unwrap(); // PTS 0: late
    assert_eq!(h.buffers_in_queue(), 0, "a late frame was processed");
    let late_free = frame(VideoFormat::Rgba, 64, 48, 50); // PTS 2 s: in time
    h.push(late_free).unwrap();
    assert_eq!(h.pull().unwrap().pts(), Some(FRAME * 50));
    assert_eq!(element(&h).property::<u64>("frames-processed"), 1);
    // The stats message counts the dropped frame.
    std::thread::sleep(std::time::Duration::from_millis(3));
    h.push(frame(VideoFormat::Rgba, 64, 48, 52)).unwrap();
    h.pull().unwrap();
    let last = std::iter::from_fn(|| bus.pop())
        .filter_map(|m| match m.view() {
            gst::MessageView::Element(e) => e.structure().map(|s| s.to_owned()),
            _ => None,
        })
        .last()
        .expect("a derain-stats message");
    assert_eq!(last.get::<u64>("dropped").unwrap(), 1, "{last}");
    assert_eq!(last.get::<u64>("processed").unwrap(), 2, "{last}");

    element(&h).set_property("qos", false);
    let qos = gst::event::Qos::new(gst::QOSType::Underflow, 1.0, 0, gst::ClockTime::SECOND * 5);
    assert!(h.push_upstream_event(qos));
    h.push(frame(VideoFormat::Rgba, 64, 48, 53)).unwrap();
    assert_eq!(
        h.pull().unwrap().pts(),
        Some(FRAME * 53),
        "qos=false dropped"
    );
}

/// Sets `pipeline` to PLAYING and returns the text of the error message (not its debug part),
/// if the state change failed.
fn start_error(pipeline: &gst::Pipeline) -> Option<String> {
    let res = pipeline.set_state(gst::State::Playing);
    let bus = pipeline.bus().unwrap();
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(10),
        &[gst::MessageType::Error, gst::MessageType::AsyncDone],
    );
    pipeline.set_state(gst::State::Null).unwrap();
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Error(err)) => {
            assert!(
                res.is_err(),
                "an error was posted but the state change succeeded"
            );
            Some(err.error().to_string())
        }
        _ => {
            assert!(res.is_ok());
            None
        }
    }
}

fn launch(desc: &str) -> gst::Pipeline {
    init();
    gst::parse::launch(desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap()
}

#[test]
fn bad_model_file_fails_the_state_change_with_a_message_naming_it() {
    let missing = "/nonexistent/derain-weights.onnx";
    let p = launch(&format!(
        "videotestsrc num-buffers=2 ! video/x-raw,width=64,height=48 ! videoconvert ! \
         derain backend=cpu model={missing} ! fakesink"
    ));
    let err = start_error(&p).expect("start should fail");
    assert!(err.contains(missing), "error does not name the file: {err}");

    // A file that exists but is not a network is refused as well.
    let bogus = std::env::temp_dir().join(format!("derain-bogus-{}.onnx", std::process::id()));
    std::fs::write(&bogus, b"this is not an ONNX model").unwrap();
    let p = launch(
        "videotestsrc num-buffers=2 ! video/x-raw,width=64,height=48 ! videoconvert ! \
         derain name=d backend=cpu ! fakesink",
    );
    p.by_name("d")
        .unwrap()
        .set_property("model", bogus.to_str().unwrap());
    let err = start_error(&p).expect("start should fail");
    std::fs::remove_file(&bogus).ok();
    assert!(
        err.contains(bogus.to_str().unwrap()),
        "error does not name the file: {err}"
    );
}

#[test]
fn invalid_device_list_fails_the_state_change() {
    let p = launch(
        "videotestsrc num-buffers=2 ! video/x-raw,width=64,height=48 ! videoconvert ! \
         derain backend=cpu device=zero ! fakesink",
    );
    let err = start_error(&p).expect("start should fail");
    assert!(err.contains("zero"), "{err}");
}

/// Plays `p` to EOS (or fails on an error message).
fn run_to_eos(p: &gst::Pipeline) {
    p.set_state(gst::State::Playing).unwrap();
    let bus = p.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("no EOS within 60 s");
    if let gst::MessageView::Error(err) = msg.view() {
        panic!("pipeline error: {} ({:?})", err.error(), err.debug());
    }
}

#[test]
fn gst_launch_pipeline_runs_to_eos_and_survives_repeated_null_playing() {
    let p = launch(
        "videotestsrc num-buffers=5 ! video/x-raw,width=96,height=64,format=I420 ! videoconvert ! \
         derain name=d backend=cpu ! videoconvert ! fakesink",
    );
    let d = p.by_name("d").unwrap();
    for round in 0..3 {
        run_to_eos(&p);
        assert_eq!(d.property::<u64>("frames-processed"), 5, "round {round}");
        assert_eq!(d.property::<String>("backend-in-use"), "cpu");
        p.set_state(gst::State::Null).unwrap();
    }
}

/// Minimum latency of a live pipeline with `filter` in the middle, after running it to EOS.
fn live_min_latency(filter: &str) -> gst::ClockTime {
    let p = launch(&format!(
        "videotestsrc is-live=true num-buffers=5 ! video/x-raw,width=64,height=48,framerate=25/1 \
         ! videoconvert ! {filter} ! fakesink sync=true"
    ));
    run_to_eos(&p);
    let mut q = gst::query::Latency::new();
    assert!(p.query(&mut q));
    p.set_state(gst::State::Null).unwrap();
    let (live, min, _max) = q.result();
    assert!(live);
    min
}

#[test]
fn live_pipeline_runs_and_derain_adds_no_latency_it_does_not_hold() {
    // The CPU pipeline holds no frame back (latency_frames() == 0): same answer as identity.
    assert_eq!(
        live_min_latency("derain backend=cpu"),
        live_min_latency("identity")
    );
}

#[test]
fn full_mode_runs_the_bundled_networks_and_changes_the_frame() {
    init();
    let element = gst::ElementFactory::make("derain")
        .property_from_str("backend", "cpu")
        .property_from_str("mode", "full")
        .build()
        .unwrap();
    let mut h = Harness::with_element(&element, Some("sink"), Some("src"));
    h.set_src_caps(info(VideoFormat::Rgba, 96, 64).to_caps().unwrap());
    for i in 0..3 {
        let input = frame(VideoFormat::Rgba, 96, 64, i);
        let before = bytes(&input);
        let out = h.push_and_pull(input).unwrap();
        assert_eq!(out.pts(), Some(FRAME * i));
        let after = bytes(&out);
        assert_eq!(after.len(), before.len());
        assert_ne!(after, before, "full mode left frame {i} unchanged");
        // Alpha is carried over untouched.
        assert!(
            before
                .iter()
                .zip(&after)
                .skip(3)
                .step_by(4)
                .all(|(a, b)| a == b)
        );
    }
}

#[cfg(feature = "cuda")]
#[test]
fn backend_cuda_without_a_driver_fails_the_state_change_with_a_clear_message() {
    if derain_lib::engine::cuda::driver_present() {
        skip::report_skip(
            "backend_cuda_without_a_driver_fails_the_state_change",
            "libcuda is present",
        );
        return;
    }
    let p = launch(
        "videotestsrc num-buffers=2 ! video/x-raw,width=64,height=48 ! videoconvert ! \
         derain backend=cuda ! fakesink",
    );
    let err = start_error(&p).expect("start should fail");
    assert!(err.contains("no CUDA driver"), "{err}");
}

/// Mean |output − rain-free scene| over the R, G, B bytes of a 4-byte frame of `frame`'s scene.
fn error_to_scene(out: &[u8], w: u32, h: u32) -> f64 {
    let stride = info(VideoFormat::Rgba, w, h).stride()[0] as usize;
    let mut sum = 0u64;
    for y in 0..h as usize {
        for x in 0..w as usize {
            let base = scene(x, y, w, h);
            for c in 0..3 {
                sum += out[y * stride + x * 4 + c].abs_diff(base[c]) as u64;
            }
        }
    }
    sum as f64 / (3 * w * h) as f64
}

#[test]
fn temporal_on_uses_the_frames_before_and_keeps_alpha() {
    // The scene of `frame` is static and its streaks move 3 px a frame: with the history, the
    // later frames come out much closer to the rain-free scene than frame by frame.
    let (w, h_) = (64, 48);
    let mut on = harness(VideoFormat::Rgba, w, h_);
    let mut off = harness(VideoFormat::Rgba, w, h_);
    element(&on).set_property_from_str("temporal", "on");
    assert_eq!(
        glib_enum_nick(&element(&on).property_value("temporal")),
        "on"
    );
    assert_eq!(
        glib_enum_nick(&element(&off).property_value("temporal")),
        "off"
    );
    let (mut e_on, mut e_off) = (0.0, 0.0);
    for i in 0..14 {
        let input = frame(VideoFormat::Rgba, w, h_, i);
        let alpha: Vec<u8> = bytes(&input).iter().skip(3).step_by(4).copied().collect();
        let a = bytes(&on.push_and_pull(input.clone()).unwrap());
        let b = bytes(&off.push_and_pull(input).unwrap());
        let got_alpha: Vec<u8> = a.iter().skip(3).step_by(4).copied().collect();
        assert_eq!(got_alpha, alpha, "frame {i}: alpha changed");
        if i >= 10 {
            e_on += error_to_scene(&a, w, h_);
            e_off += error_to_scene(&b, w, h_);
        }
    }
    assert!(
        e_on < 0.5 * e_off,
        "temporal on: error {e_on:.2} vs off {e_off:.2} (sum of the last 4 frames)"
    );
}

#[test]
fn caps_say_the_real_size_limits() {
    init();
    let factory = gst::ElementFactory::find("derain").unwrap();
    let max = derain_lib::frame::MAX_DIMENSION as i32;
    for template in factory.static_pad_templates() {
        let caps = template.caps();
        let too_wide = gst_video::VideoCapsBuilder::new()
            .format(VideoFormat::Rgba)
            .width(max + 1)
            .height(16)
            .build();
        let fits = gst_video::VideoCapsBuilder::new()
            .format(VideoFormat::Rgba)
            .width(max)
            .height(max)
            .build();
        assert!(!caps.can_intersect(&too_wide), "{caps}");
        assert!(caps.can_intersect(&fits), "{caps}");
    }
    // A pipeline asking for a wider frame cannot even be linked: no buffer is ever made.
    init();
    let err = gst::parse::launch(&format!(
        "videotestsrc num-buffers=1 ! video/x-raw,format=RGBA,width={},height=8 ! derain ! fakesink",
        max + 1
    ))
    .expect_err("the link is refused");
    assert!(err.to_string().contains("can't handle caps"), "{err}");
}

#[test]
fn stats_messages_on_the_bus_count_processed_and_dropped_frames() {
    let mut h = harness(VideoFormat::Rgba, 64, 48);
    let el = element(&h);
    let bus = gst::Bus::new();
    el.set_bus(Some(&bus));
    el.set_property("stats-interval", 1u32);
    assert_eq!(el.property::<u32>("stats-interval"), 1);
    for i in 0..6 {
        h.push_and_pull(frame(VideoFormat::Rgba, 64, 48, i))
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(3));
    }
    let stats: Vec<gst::Structure> = std::iter::from_fn(|| bus.pop())
        .filter_map(|m| match m.view() {
            gst::MessageView::Element(e) => e
                .structure()
                .filter(|s| s.name() == "derain-stats")
                .map(|s| s.to_owned()),
            _ => None,
        })
        .collect();
    assert!(stats.len() >= 3, "{} messages", stats.len());
    let last = stats.last().unwrap();
    assert_eq!(last.get::<u64>("processed").unwrap(), 6);
    assert_eq!(last.get::<u64>("dropped").unwrap(), 0);
    assert!(last.get::<f64>("fps").unwrap() > 0.0);
    let t = last.get::<f64>("mean-transmission").unwrap();
    assert!((0.0..=1.0).contains(&t), "{t}");
    let a = last.get::<f64>("atmosphere-r").unwrap();
    assert!(a > 0.0 && a <= 1.0, "{a}");
    assert_eq!(last.get::<&str>("mode").unwrap(), "physics");
    assert_eq!(last.get::<&str>("backend").unwrap(), "cpu");
    // Off: no more messages.
    el.set_property("stats-interval", 0u32);
    for i in 6..9 {
        h.push_and_pull(frame(VideoFormat::Rgba, 64, 48, i))
            .unwrap();
    }
    let more = std::iter::from_fn(|| bus.pop())
        .filter(|m| matches!(m.view(), gst::MessageView::Element(_)))
        .count();
    assert_eq!(more, 0);
}

/// Raw RGBA bytes of every frame a pipeline description (ending in RGBA caps) produces.
fn raw_rgba(desc: &str, name: &str) -> Vec<u8> {
    let path = std::env::temp_dir().join(format!("derain-yuv-{}-{name}.rgba", std::process::id()));
    let p = launch(&format!("{desc} ! filesink location={}", path.display()));
    run_to_eos(&p);
    p.set_state(gst::State::Null).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    bytes
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse = a
        .iter()
        .zip(b)
        .enumerate()
        .filter(|(i, _)| i % 4 != 3)
        .map(|(_, (&x, &y))| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / (a.len() as f64 * 0.75);
    10.0 * (255.0f64.powi(2) / mse.max(1e-12)).log10()
}

#[test]
fn i420_and_nv12_in_and_out_match_the_rgb_path() {
    init();
    // A scene with fine detail and colour (the zone plate and the SMPTE bars), odd sizes too.
    for (format, pattern, w, h) in [
        ("I420", "smpte", 320, 240),
        ("NV12", "zone-plate", 160, 120),
        ("I420", "ball", 161, 121),
    ] {
        let src = format!(
            "videotestsrc num-buffers=3 pattern={pattern} ! video/x-raw,format={format},width={w},height={h},framerate=25/1"
        );
        let rgba = "videoconvert ! video/x-raw,format=RGBA";
        // YUV straight into derain and out as YUV, converted only for the comparison...
        let yuv_path = raw_rgba(&format!("{src} ! derain backend=cpu ! {rgba}"), "yuv");
        // ...against the frames converted to RGBA first (the path videoconvert used to force).
        let rgb_path = raw_rgba(&format!("{src} ! {rgba} ! derain backend=cpu"), "rgb");
        let input = raw_rgba(&format!("{src} ! {rgba}"), "in");
        assert_eq!(yuv_path.len(), (w * h * 4 * 3) as usize);
        let agree = psnr(&yuv_path, &rgb_path);
        eprintln!("{format} {pattern} {w}x{h}: YUV path vs RGB path {agree:.1} dB");
        assert!(
            agree > 38.0,
            "{format} {pattern}: YUV and RGB paths differ ({agree:.1} dB)"
        );
        // And derain did work on the YUV path (not a pass-through) where it changes the frame
        // at all (it leaves the zone plate and the ball as they are).
        if pattern == "smpte" {
            let changed = psnr(&yuv_path, &input);
            assert!(
                changed < agree,
                "{format} {pattern}: {changed:.1} dB from the input"
            );
        }
    }
}
