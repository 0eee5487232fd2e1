//! GStreamer plugin `derain`: real-time heavy-rain removal as a video filter.
//!
//! The element lives in `derain`; the work itself is done by the `derain` library crate
//! (imported here as `derain_lib` so it cannot collide with the element module).
#![allow(clippy::non_send_fields_in_send_ty, unused_doc_comments)]

use gst::glib;

mod derain;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    derain::register(plugin)
}

gst::plugin_define!(
    derain,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    // GStreamer's list of licenses has no "MIT OR Apache-2.0"; MIT/X11 is the closest entry.
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    // The project has no public origin URL yet; GStreamer's own wording for that (an empty
    // origin makes the registry refuse the plugin).
    "Unknown package origin",
    env!("BUILD_REL_DATE")
);
