// SPDX-License-Identifier: MIT OR Apache-2.0
//! `in-flight` > 1: the element keeps several frames in flight on replicated engines. Against
//! the same element with one frame at a time: the same bytes in the same order, the latency it
//! adds reported, and nothing lost at EOS, caps changes, passthrough switches or flushes.

use std::sync::Once;

use gst::prelude::*;
use gst_check::Harness;
use gst_video::VideoFormat;

const FRAME: gst::ClockTime = gst::ClockTime::from_mseconds(40);

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstderain::plugin_register_static().expect("registering the derain plugin");
    });
}

fn info(format: VideoFormat, w: u32, h: u32) -> gst_video::VideoInfo {
    gst_video::VideoInfo::builder(format, w, h)
        .fps(gst::Fraction::new(25, 1))
        .build()
        .unwrap()
}

/// A `derain` element (CPU, temporal on so the frame order matters) with `in_flight` frames.
fn element(in_flight: u32) -> gst::Element {
    init();
    gst::ElementFactory::make("derain")
        .property_from_str("backend", "cpu")
        .property_from_str("temporal", "on")
        .property("in-flight", in_flight)
        .build()
        .unwrap()
}

/// [`element`] in a harness, its input caps set.
fn harness(in_flight: u32, format: VideoFormat, w: u32, h: u32) -> Harness {
    let mut h_ = Harness::with_element(&element(in_flight), Some("sink"), Some("src"));
    h_.set_src_caps(info(format, w, h).to_caps().unwrap());
    h_
}

/// Frame `index`: streaks that move from frame to frame over a smooth scene, a veil that
/// thickens (A moves), PTS `index`×40 ms. Packed 4-byte formats, or I420 converted from it.
fn frame(format: VideoFormat, w: u32, h: u32, index: u64) -> gst::Buffer {
    init();
    let vi = info(format, w, h);
    let mut data = vec![0u8; vi.size()];
    let veil = 0.1 + 0.02 * index as f32;
    let px = |x: usize, y: usize| -> [u8; 3] {
        let streak = (x + y / 4 + index as usize * 5).is_multiple_of(9);
        let base = [
            40 + x * 120 / w as usize,
            60 + y * 90 / h as usize,
            90 + (x + y) % 37,
        ];
        std::array::from_fn(|c| {
            let v = base[c] as f32 * (1.0 - veil) + 200.0 * veil;
            if streak { 240 } else { v as u8 }
        })
    };
    if format == VideoFormat::I420 {
        // Luma only varies; chroma stays neutral (enough to exercise the YUV path).
        let stride = vi.stride()[0] as usize;
        for y in 0..h as usize {
            for x in 0..w as usize {
                let [r, g, b] = px(x, y);
                data[y * stride + x] =
                    ((77 * r as u32 + 150 * g as u32 + 29 * b as u32) >> 8) as u8;
            }
        }
        for k in [1, 2] {
            let (off, st) = (vi.offset()[k], vi.stride()[k] as usize);
            for y in 0..h.div_ceil(2) as usize {
                data[off + y * st..off + y * st + w.div_ceil(2) as usize].fill(128);
            }
        }
    } else {
        let stride = vi.stride()[0] as usize;
        for y in 0..h as usize {
            for x in 0..w as usize {
                let p = &mut data[y * stride + x * 4..][..4];
                p[..3].copy_from_slice(&px(x, y));
                p[3] = (x * 255 / w as usize) as u8;
            }
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

/// Pushes the frames, then EOS; returns (outputs available after each push, every output).
fn run(h: &mut Harness, frames: &[gst::Buffer]) -> (Vec<usize>, Vec<gst::Buffer>) {
    let mut counts = Vec::new();
    let mut out = Vec::new();
    for f in frames {
        h.push(f.clone()).unwrap();
        while let Some(b) = h.try_pull() {
            out.push(b);
        }
        counts.push(out.len());
    }
    assert!(h.push_event(gst::event::Eos::new()));
    while let Some(b) = h.try_pull() {
        out.push(b);
    }
    (counts, out)
}

#[test]
fn frames_in_flight_match_one_at_a_time_in_order_and_eos_drains_them() {
    for format in [VideoFormat::Rgba, VideoFormat::Bgrx, VideoFormat::I420] {
        let (w, h) = (64, 48);
        let frames: Vec<gst::Buffer> = (0..9).map(|i| frame(format, w, h, i)).collect();
        let (_, serial) = run(&mut harness(1, format, w, h), &frames);
        let mut hf = harness(3, format, w, h);
        let (counts, flight) = run(&mut hf, &frames);
        // The first frame leaves when the third comes in, then one per frame; EOS pushes
        // the last two out before EOS itself.
        assert_eq!(counts, vec![0, 0, 1, 2, 3, 4, 5, 6, 7], "{format:?}");
        assert_eq!(flight.len(), frames.len(), "{format:?}: frames lost");
        for (i, (a, b)) in serial.iter().zip(&flight).enumerate() {
            assert_eq!(b.pts(), Some(FRAME * i as u64), "{format:?}: order");
            assert_eq!(b.duration(), Some(FRAME));
            assert!(
                bytes(a) == bytes(b),
                "{format:?}: frame {i} differs from in-flight=1"
            );
        }
        let mut saw_eos = false;
        while let Some(ev) = hf.try_pull_event() {
            saw_eos |= ev.type_() == gst::EventType::Eos;
        }
        assert!(saw_eos, "EOS was not forwarded");
        let el = hf.element().unwrap();
        assert_eq!(el.property::<u64>("frames-processed"), 9);
        assert_eq!(el.property::<u32>("in-flight"), 3);
    }
}

#[test]
fn latency_query_adds_the_frames_held_in_flight() {
    let mut h = harness(4, VideoFormat::Rgba, 64, 48);
    h.push(frame(VideoFormat::Rgba, 64, 48, 0)).unwrap();
    let upstream = gst::ClockTime::from_mseconds(10);
    h.set_upstream_latency(upstream);
    // Three frames of 40 ms are held back.
    assert_eq!(h.query_latency(), Some(upstream + FRAME * 3));
}

#[test]
fn caps_change_passthrough_and_flush_lose_nothing_they_should_keep() {
    let (w, h) = (64, 48);
    let mut hf = harness(3, VideoFormat::Rgbx, w, h);
    for i in 0..2 {
        hf.push(frame(VideoFormat::Rgbx, w, h, i)).unwrap();
    }
    assert!(hf.try_pull().is_none(), "two frames are still in flight");
    // New caps: the two frames in flight come out first, at their own size.
    hf.set_src_caps(info(VideoFormat::Rgbx, 80, 60).to_caps().unwrap());
    let a = hf
        .try_pull()
        .expect("frame 0 pushed out before the new caps");
    let b = hf
        .try_pull()
        .expect("frame 1 pushed out before the new caps");
    assert_eq!(
        (a.pts(), b.pts()),
        (Some(gst::ClockTime::ZERO), Some(FRAME))
    );
    assert_eq!(a.size(), (w * h * 4) as usize);
    hf.push(frame(VideoFormat::Rgbx, 80, 60, 2)).unwrap();
    hf.push(frame(VideoFormat::Rgbx, 80, 60, 3)).unwrap();
    // Passthrough while frames are in flight: they come out first, then the input as is.
    let el = hf.element().unwrap();
    el.set_property("passthrough", true);
    let raw = frame(VideoFormat::Rgbx, 80, 60, 4);
    hf.push(raw.clone()).unwrap();
    let pts: Vec<_> = std::iter::from_fn(|| hf.try_pull()).collect();
    assert_eq!(
        pts.iter().map(|b| b.pts().unwrap()).collect::<Vec<_>>(),
        vec![FRAME * 2, FRAME * 3, FRAME * 4]
    );
    assert!(bytes(&pts[2]) == bytes(&raw), "passthrough is bit exact");
    assert_eq!(pts[0].size(), 80 * 60 * 4);
    el.set_property("passthrough", false);
    // A flush drops what is in flight; streaming goes on afterwards.
    hf.push(frame(VideoFormat::Rgbx, 80, 60, 5)).unwrap();
    assert!(hf.push_event(gst::event::FlushStart::new()));
    assert!(hf.push_event(gst::event::FlushStop::new(true)));
    let segment = gst::FormattedSegment::<gst::ClockTime>::new();
    assert!(hf.push_event(gst::event::Segment::new(&segment)));
    let mut after = Vec::new();
    for i in 6..9 {
        hf.push(frame(VideoFormat::Rgbx, 80, 60, i)).unwrap();
        after.extend(std::iter::from_fn(|| hf.try_pull()));
    }
    assert_eq!(
        after.len(),
        1,
        "frames 6, 7 and 8 pushed, two still in flight"
    );
    assert_eq!(
        after[0].pts(),
        Some(FRAME * 6),
        "the flushed frame 5 is gone"
    );
}

#[test]
fn late_frames_are_dropped_under_qos_in_flight_too() {
    let mut h = harness(3, VideoFormat::Rgba, 64, 48);
    let el = h.element().unwrap();
    // Downstream says: anything with a running time ending before 1 s is too late.
    let qos = gst::event::Qos::new(gst::QOSType::Underflow, 1.0, 0, gst::ClockTime::SECOND);
    assert!(h.push_upstream_event(qos));
    for i in [0, 1, 50, 51, 52] {
        h.push(frame(VideoFormat::Rgba, 64, 48, i)).unwrap();
    }
    assert!(h.push_event(gst::event::Eos::new()));
    let pts: Vec<_> = std::iter::from_fn(|| h.try_pull())
        .map(|b| b.pts().unwrap())
        .collect();
    assert_eq!(
        pts,
        vec![FRAME * 50, FRAME * 51, FRAME * 52],
        "frames 0 and 1 were late"
    );
    assert_eq!(el.property::<u64>("frames-processed"), 3);
    // qos=false keeps every frame.
    let mut h2 = harness(3, VideoFormat::Rgba, 64, 48);
    h2.element().unwrap().set_property("qos", false);
    let qos = gst::event::Qos::new(gst::QOSType::Underflow, 1.0, 0, gst::ClockTime::SECOND);
    assert!(h2.push_upstream_event(qos));
    h2.push(frame(VideoFormat::Rgba, 64, 48, 0)).unwrap();
    assert!(h2.push_event(gst::event::Eos::new()));
    assert_eq!(
        h2.try_pull().map(|b| b.pts()),
        Some(Some(gst::ClockTime::ZERO))
    );
}

/// Kills the test binary if the test has not finished after `secs` (a blocked stream would
/// otherwise hang the run instead of failing it).
fn watchdog(secs: u64, what: &'static str) -> std::sync::mpsc::Sender<()> {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if wait
            .recv_timeout(std::time::Duration::from_secs(secs))
            .is_err_and(|e| e == std::sync::mpsc::RecvTimeoutError::Timeout)
        {
            eprintln!("{what}: still blocked after {secs} s");
            std::process::abort();
        }
    });
    done
}

#[test]
fn events_in_the_data_flow_wait_for_the_frames_before_them() {
    // A gap and a new segment used to overtake the frames still in flight, so those were
    // timed under the new segment.
    let mut h = harness(4, VideoFormat::Rgba, 64, 48);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    h.sinkpad().unwrap().add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            let item = match &info.data {
                Some(gst::PadProbeData::Buffer(b)) => format!("buffer {}", b.pts().unwrap()),
                Some(gst::PadProbeData::Event(e)) => e.type_().name().to_string(),
                _ => return gst::PadProbeReturn::Ok,
            };
            log.lock().unwrap().push(item);
            gst::PadProbeReturn::Ok
        },
    );
    for i in 0..3 {
        h.push(frame(VideoFormat::Rgba, 64, 48, i)).unwrap();
    }
    assert!(h.push_event(gst::event::Gap::builder(FRAME * 3).duration(FRAME).build()));
    let mut seg = gst::FormattedSegment::<gst::ClockTime>::new();
    seg.set_base(gst::ClockTime::from_seconds(10));
    assert!(h.push_event(gst::event::Segment::new(&seg)));
    h.push(frame(VideoFormat::Rgba, 64, 48, 4)).unwrap();
    assert!(h.push_event(gst::event::Eos::new()));
    let seen = seen.lock().unwrap().clone();
    let order: Vec<&str> = seen
        .iter()
        .map(String::as_str)
        .filter(|s| s.starts_with("buffer") || *s == "gap" || *s == "segment")
        .collect();
    let f = |i: u64| format!("buffer {}", FRAME * i);
    let want = [f(0), f(1), f(2), "gap".into(), "segment".into(), f(4)];
    // (The harness's own segment comes first.)
    assert_eq!(&order[order.len() - 6..], want.as_slice(), "{seen:?}");
}

#[test]
fn a_small_downstream_pool_does_not_block_frames_in_flight() {
    // Downstream offers a pool of at most 2 buffers; 3 frames in flight need more: the element
    // takes a pool of its own instead of waiting forever for a third buffer.
    let element = element(3);
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = asked.clone();
    element.static_pad("src").unwrap().add_probe(
        gst::PadProbeType::QUERY_DOWNSTREAM,
        move |_, info| {
            let Some(q) = info.query_mut() else {
                return gst::PadProbeReturn::Ok;
            };
            if let gst::QueryViewMut::Allocation(q) = q.view_mut() {
                let pool = gst::BufferPool::new();
                let size = q
                    .get()
                    .0
                    .and_then(|c| gst_video::VideoInfo::from_caps(c).ok())
                    .map_or(0, |i| i.size() as u32);
                q.add_allocation_pool(Some(&pool), size, 2, 2);
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                return gst::PadProbeReturn::Handled;
            }
            gst::PadProbeReturn::Ok
        },
    );
    let mut h = Harness::with_element(&element, Some("sink"), Some("src"));
    h.set_src_caps(info(VideoFormat::Rgba, 64, 48).to_caps().unwrap());
    let done = watchdog(60, "a small downstream pool");
    let frames: Vec<gst::Buffer> = (0..8)
        .map(|i| frame(VideoFormat::Rgba, 64, 48, i))
        .collect();
    let (_, out) = run(&mut h, &frames);
    let _ = done.send(());
    assert!(
        asked.load(std::sync::atomic::Ordering::SeqCst),
        "no allocation query"
    );
    assert_eq!(out.len(), 8);
    // Upstream is told how many of its buffers are held: in-flight + 1.
    let caps = info(VideoFormat::Rgba, 64, 48).to_caps().unwrap();
    let mut q = gst::query::Allocation::new(Some(&caps), true);
    assert!(h.srcpad().unwrap().peer_query(&mut q));
    let mins: Vec<u32> = q.allocation_pools().map(|p| p.2).collect();
    assert!(!mins.is_empty() && mins.iter().all(|&m| m >= 4), "{mins:?}");
}

#[test]
fn a_buffer_shorter_than_its_caps_is_dropped_and_the_stream_goes_on() {
    // It used to give a generic warning and push an output buffer nobody had written.
    for in_flight in [1, 3] {
        let mut h = harness(in_flight, VideoFormat::Rgba, 64, 48);
        let mut short = gst::Buffer::with_size(100).unwrap();
        short.get_mut().unwrap().set_pts(gst::ClockTime::ZERO);
        assert_eq!(h.push(short), Ok(gst::FlowSuccess::Ok));
        let frames: Vec<gst::Buffer> = (1..4)
            .map(|i| frame(VideoFormat::Rgba, 64, 48, i))
            .collect();
        let (_, out) = run(&mut h, &frames);
        assert_eq!(
            out.iter().map(|b| b.pts().unwrap()).collect::<Vec<_>>(),
            vec![FRAME, FRAME * 2, FRAME * 3],
            "in-flight {in_flight}"
        );
        assert!(out.iter().all(|b| b.size() == 64 * 48 * 4));
    }
}

#[test]
fn with_no_frame_rate_in_the_caps_the_latency_comes_from_the_buffers() {
    // Caps at 0/1 (a variable rate, as many cameras send): the frames held back were not
    // counted in the latency at all, so a synchronised sink got every frame late.
    let mut h = Harness::with_element(&element(4), Some("sink"), Some("src"));
    let caps = gst_video::VideoInfo::builder(VideoFormat::Rgba, 64, 48)
        .fps(gst::Fraction::new(0, 1))
        .build()
        .unwrap()
        .to_caps()
        .unwrap();
    h.set_src_caps(caps);
    let upstream = gst::ClockTime::from_mseconds(10);
    h.set_upstream_latency(upstream);
    h.push(frame(VideoFormat::Rgba, 64, 48, 0)).unwrap();
    h.push(frame(VideoFormat::Rgba, 64, 48, 1)).unwrap();
    assert_eq!(h.query_latency(), Some(upstream + FRAME * 3));
}

#[test]
fn tags_do_not_empty_the_frames_in_flight() {
    // A parser or decoder sends tags every few frames (bitrate); draining on each emptied the
    // pipeline of frames in flight about every ten frames of a live H.264 source.
    let mut h = harness(4, VideoFormat::Rgba, 64, 48);
    for i in 0..3 {
        h.push(frame(VideoFormat::Rgba, 64, 48, i)).unwrap();
    }
    let mut tags = gst::TagList::new();
    tags.get_mut()
        .unwrap()
        .add::<gst::tags::Bitrate>(&1_000_000, gst::TagMergeMode::Replace);
    assert!(h.push_event(gst::event::Tag::new(tags)));
    assert!(
        h.try_pull().is_none(),
        "a tag pushed the frames in flight out"
    );
    h.push(frame(VideoFormat::Rgba, 64, 48, 3)).unwrap();
    assert_eq!(
        h.try_pull().map(|b| b.pts()),
        Some(Some(gst::ClockTime::ZERO))
    );
}
