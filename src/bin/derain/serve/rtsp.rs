//! The RTSP side of `derain serve`: one gst-rtsp-server mount per stream, each a shared media
//! `appsrc ! videoconvert ! videoscale ! I420 ! x264enc ! rtph264pay`, fed by an [`Output`].
//!
//! A stream's media is built when its first client connects and shared by all its clients, so
//! each stream is encoded once however many watch it, and not at all while nobody does. An
//! [`Output`] keeps the newest frame; while its camera is away it repeats that frame greyed
//! out twice a second, so that clients stay connected and a wall shows the feed is stale.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use gst::prelude::*;
use gst_rtsp_server::prelude::*;

use super::stats::StreamStats;

/// A camera that sent nothing for this long is shown stale.
const STALE_AFTER: Duration = Duration::from_secs(1);
/// How often a stale frame is sent again.
const STALE_EVERY: Duration = Duration::from_millis(500);
/// A stale frame keeps this fraction of its brightness.
const STALE_DIM: u16 = 102; // of 256: 40 %

/// The newest frame of a stream.
#[derive(Clone, Debug)]
pub struct Latest {
    /// Packed RGBx, stride 4·width, no timestamps (the appsrc stamps it).
    pub buffer: gst::Buffer,
    pub width: u32,
    pub height: u32,
    /// The camera's frame rate (0/1 when it does not say).
    pub fps: gst::Fraction,
    pub at: Instant,
    /// The camera is away: this is its last frame, greyed out.
    pub stale: bool,
}

#[derive(Debug, Default)]
struct Inner {
    /// The appsrc of each prepared media (one while any client plays).
    sinks: Vec<gst_app::AppSrc>,
    latest: Option<Latest>,
    last_push: Option<Instant>,
}

/// Where one stream's frames go out.
#[derive(Debug)]
pub struct Output {
    pub mount: String,
    pub stats: Arc<StreamStats>,
    /// Frames are made only while the stream is watched (the mosaic): a client is never
    /// told to wait for a first frame.
    on_demand: bool,
    inner: Mutex<Inner>,
}

fn rgbx_caps(width: u32, height: u32, fps: gst::Fraction) -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format(gst_video::VideoFormat::Rgbx)
        .width(width as i32)
        .height(height as i32)
        .framerate(fps)
        .build()
}

/// A greyed-out copy of an RGBx frame.
fn dimmed(buffer: &gst::Buffer) -> Option<gst::Buffer> {
    let map = buffer.map_readable().ok()?;
    let data: Vec<u8> = map
        .iter()
        .map(|&v| ((v as u16 * STALE_DIM) >> 8) as u8)
        .collect();
    Some(gst::Buffer::from_mut_slice(data))
}

impl Output {
    /// The stream of a camera: frames come whether it is watched or not.
    pub fn new(name: &str, stats: Arc<StreamStats>) -> Arc<Self> {
        Self::with(name, stats, false)
    }

    /// A stream whose frames are made only while it is watched (the mosaic).
    pub fn on_demand(name: &str, stats: Arc<StreamStats>) -> Arc<Self> {
        Self::with(name, stats, true)
    }

    fn with(name: &str, stats: Arc<StreamStats>, on_demand: bool) -> Arc<Self> {
        Arc::new(Self {
            mount: format!("/{name}"),
            stats,
            on_demand,
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// True while a client plays this stream (its media is prepared).
    pub fn watched(&self) -> bool {
        !self.lock().sinks.is_empty()
    }

    /// The newest frame.
    pub fn latest(&self) -> Option<Latest> {
        self.lock().latest.clone()
    }

    /// Sends a new frame (packed RGBx, `width`·`height`·4 bytes) to every client.
    pub fn publish(&self, buffer: gst::Buffer, (width, height): (u32, u32), fps: gst::Fraction) {
        let now = Instant::now();
        let mut inner = self.lock();
        let latest = Latest {
            buffer,
            width,
            height,
            fps,
            at: now,
            stale: false,
        };
        inner.last_push = Some(now);
        push(&inner.sinks, &latest);
        inner.latest = Some(latest);
    }

    /// While the camera is away: sends its last frame greyed out, every [`STALE_EVERY`].
    pub fn keep_alive(&self, now: Instant) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(latest) = inner.latest.as_mut() else {
            return;
        };
        if now.duration_since(latest.at) < STALE_AFTER
            || inner
                .last_push
                .is_some_and(|t| now.duration_since(t) < STALE_EVERY)
        {
            return;
        }
        if !latest.stale {
            let Some(grey) = dimmed(&latest.buffer) else {
                return;
            };
            latest.buffer = grey;
            latest.stale = true;
        }
        inner.last_push = Some(now);
        push(&inner.sinks, latest);
    }

    /// Ends every client's stream (the server stops).
    pub fn finish(&self) {
        for s in self.lock().sinks.drain(..) {
            let _ = s.end_of_stream();
        }
    }

    /// Asks the stream's encoder for a key frame now: a client that joins a stream others
    /// already watch can start at once instead of waiting for the next one.
    pub fn key_frame(&self) {
        for s in &self.lock().sinks {
            let enc = s
                .parent()
                .and_then(|p| p.downcast::<gst::Bin>().ok())
                .and_then(|b| b.by_name("enc"));
            if let Some(pad) = enc.and_then(|e| e.static_pad("src")) {
                let event = gst_video::UpstreamForceKeyUnitEvent::builder()
                    .all_headers(true)
                    .build();
                pad.send_event(event);
            }
        }
    }

    fn attach(&self, appsrc: gst_app::AppSrc) {
        let mut inner = self.lock();
        if let Some(l) = &inner.latest {
            appsrc.set_caps(Some(&rgbx_caps(l.width, l.height, l.fps)));
        }
        inner.sinks.push(appsrc);
    }

    fn detach(&self, appsrc: &gst_app::AppSrc) {
        self.lock().sinks.retain(|s| s != appsrc);
    }
}

/// Pushes one frame to each appsrc, telling it the new size or rate first when it changed.
fn push(sinks: &[gst_app::AppSrc], frame: &Latest) {
    if sinks.is_empty() {
        return;
    }
    let caps = rgbx_caps(frame.width, frame.height, frame.fps);
    for s in sinks {
        if s.caps().as_ref() != Some(&caps) {
            s.set_caps(Some(&caps));
        }
        // Flushing while the media is being prepared or torn down: the next frame goes.
        let _ = s.push_buffer(frame.buffer.clone());
    }
}

/// The media of one stream: RGBx in, H.264 over RTP out.
fn factory(output: &Arc<Output>, bitrate_kbps: u32) -> gst_rtsp_server::RTSPMediaFactory {
    let factory = gst_rtsp_server::RTSPMediaFactory::new();
    factory.set_launch(&format!(
        "( appsrc name=src is-live=true format=time do-timestamp=true max-buffers=2 \
         leaky-type=downstream ! videoconvert ! videoscale ! capsfilter name=size \
         ! x264enc name=enc tune=zerolatency speed-preset=ultrafast bitrate={bitrate_kbps} \
         key-int-max=30 ! video/x-h264,profile=constrained-baseline \
         ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    ));
    factory.set_shared(true);
    let out = Arc::downgrade(output);
    factory.connect_media_configure(move |_, media| {
        let Some(out) = out.upgrade() else {
            return;
        };
        let Ok(bin) = media.element().downcast::<gst::Bin>() else {
            return;
        };
        let Some(appsrc) = bin
            .by_name("src")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        else {
            log::error!("{}: the media has no appsrc", out.mount);
            return;
        };
        // The served size is the camera's (even, for 4:2:0); a camera that comes back at
        // another size is scaled to it.
        if let (Some(l), Some(filter)) = (out.latest(), bin.by_name("size")) {
            let caps = gst_video::VideoCapsBuilder::new()
                .format(gst_video::VideoFormat::I420)
                .width((l.width & !1).max(2) as i32)
                .height((l.height & !1).max(2) as i32)
                .build();
            filter.set_property("caps", caps);
        }
        log::debug!("{}: media prepared", out.mount);
        out.attach(appsrc.clone());
        let weak = Arc::downgrade(&out);
        media.connect_unprepared(move |_| {
            if let Some(out) = weak.upgrade() {
                log::debug!("{}: media released", out.mount);
                out.detach(&appsrc);
            }
        });
    });
    factory
}

/// The stream a request URI names (its mount, or a track under it).
fn output_for<'a>(streams: &'a [Arc<Output>], uri: &str) -> Option<&'a Arc<Output>> {
    let path = uri_path(uri).trim_end_matches('/');
    streams.iter().find(|o| {
        path == o.mount
            || path
                .strip_prefix(o.mount.as_str())
                .is_some_and(|r| r.starts_with('/'))
    })
}

/// The path of an RTSP request URI (`rtsp://host:port/a/b` → `/a/b`).
fn uri_path(uri: &str) -> &str {
    let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
    rest.find('/').map_or("/", |i| &rest[i..])
}

/// The running RTSP server.
pub struct Server {
    server: gst_rtsp_server::RTSPServer,
    source: Option<gst::glib::SourceId>,
    main_loop: gst::glib::MainLoop,
    thread: Option<std::thread::JoinHandle<()>>,
    outputs: Vec<Arc<Output>>,
    pub port: u16,
}

impl Server {
    /// Listens on `address:port` (0: any free port) and mounts each output.
    pub fn start(
        address: &str,
        port: u16,
        outputs: &[Arc<Output>],
        bitrate_kbps: u32,
    ) -> Result<Self> {
        for element in [
            "appsrc",
            "x264enc",
            "rtph264pay",
            "videoconvert",
            "videoscale",
        ] {
            gst::ElementFactory::find(element).ok_or_else(|| {
                anyhow!(
                    "GStreamer element `{element}` is missing (scripts/setup.sh installs the \
                     plugins)"
                )
            })?;
        }
        let server = gst_rtsp_server::RTSPServer::new();
        server.set_address(address);
        server.set_service(&port.to_string());
        let mounts = server
            .mount_points()
            .context("the RTSP server has no mount points")?;
        for out in outputs {
            mounts.add_factory(&out.mount, factory(out, bitrate_kbps));
        }
        // A client waits for its stream's media to be prepared; with the default single
        // thread for every client, one stream that never prepares (a camera that has not
        // sent a frame) froze every other client. One thread per stream and a spare.
        if let Some(pool) = server.thread_pool() {
            pool.set_max_threads(i32::try_from(outputs.len() + 2).unwrap_or(i32::MAX));
        }
        let streams: Arc<Vec<Arc<Output>>> = Arc::new(outputs.to_vec());
        server.connect_client_connected(move |_, client| {
            let played: Arc<Mutex<Vec<Arc<Output>>>> = Arc::default();
            let described = streams.clone();
            // A stream with no frame yet has no size to describe: 503, try again later,
            // instead of a DESCRIBE that hangs until the camera comes up.
            client.connect_pre_describe_request(move |_, ctx| {
                match ctx
                    .uri()
                    .and_then(|u| output_for(&described, &u.request_uri()))
                {
                    Some(out) if !out.on_demand && out.latest().is_none() => {
                        log::info!(
                            "{}: no frame from the camera yet: 503 to a client",
                            out.mount
                        );
                        gst_rtsp_server::gst_rtsp::RTSPStatusCode::ServiceUnavailable
                    }
                    _ => gst_rtsp_server::gst_rtsp::RTSPStatusCode::Ok,
                }
            });
            let streams = streams.clone();
            let p = played.clone();
            client.connect_play_request(move |_, ctx| {
                let Some(uri) = ctx.uri() else { return };
                let Some(out) = output_for(&streams, &uri.request_uri()) else {
                    return;
                };
                out.key_frame();
                let mut played = p.lock().unwrap_or_else(PoisonError::into_inner);
                if !played.iter().any(|o| Arc::ptr_eq(o, out)) {
                    out.stats.update(|c| c.clients += 1);
                    played.push(out.clone());
                }
            });
            client.connect_closed(move |_| {
                for out in played
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .drain(..)
                {
                    out.stats
                        .update(|c| c.clients = c.clients.saturating_sub(1));
                }
            });
        });
        let source = server.attach(None).map_err(|_| {
            anyhow!("the RTSP server cannot listen on {address}:{port} (in use, or not an address of this machine?)")
        })?;
        let bound = u16::try_from(server.bound_port()).context("the RTSP server's port")?;
        let main_loop = gst::glib::MainLoop::new(None, false);
        let ml = main_loop.clone();
        let thread = std::thread::Builder::new()
            .name("rtsp-server".into())
            .spawn(move || ml.run())
            .context("starting the RTSP server thread")?;
        Ok(Self {
            server,
            source: Some(source),
            main_loop,
            thread: Some(thread),
            outputs: outputs.to_vec(),
            port: bound,
        })
    }

    /// Ends every stream, closes the clients and stops listening.
    pub fn stop(mut self) {
        for out in &self.outputs {
            out.finish();
        }
        // The clients get the end of their streams before the connections close.
        std::thread::sleep(Duration::from_millis(200));
        self.server
            .client_filter(Some(&mut |_, _| gst_rtsp_server::RTSPFilterResult::Remove));
        if let Some(s) = self.source.take() {
            s.remove();
        }
        self.main_loop.quit();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_paths() {
        assert_eq!(uri_path("rtsp://127.0.0.1:8554/gate"), "/gate");
        assert_eq!(uri_path("rtsp://h/gate/stream=0"), "/gate/stream=0");
        assert_eq!(uri_path("rtsp://h"), "/");
    }

    #[test]
    fn a_stale_frame_is_greyed_out() {
        gst::init().unwrap();
        let b = gst::Buffer::from_mut_slice(vec![250u8, 100, 0, 255]);
        let d = dimmed(&b).unwrap();
        assert_eq!(&*d.map_readable().unwrap(), &[99, 39, 0, 101]);
    }
}
