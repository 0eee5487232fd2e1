// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the element takes and gives: packed RGB with alpha or padding (processed in place of
//! the mapped buffer) and 4:2:0 YUV from decoders (I420, NV12: converted to packed RGBx and
//! back with the stream's matrix and range, `derain_lib::frame::yuv`), so that
//! `decodebin ! derain ! x264enc` needs no `videoconvert`. The same format in and out.

use derain_lib::PixelFormat;
use derain_lib::frame::yuv::{self, YuvLayout, YuvMatrix, YuvPlanes, YuvSpec};
use gst_video::VideoFormat as F;
use gst_video::prelude::*;

/// The pads' caps: the formats above up to the library's size limit, so that negotiation
/// (not the first buffer) refuses a frame the library would.
pub(super) fn caps() -> gst::Caps {
    let max = derain_lib::frame::MAX_DIMENSION as i32;
    gst_video::VideoCapsBuilder::new()
        .format_list([F::Rgba, F::Bgra, F::Rgbx, F::Bgrx, F::I420, F::Nv12])
        .width_range(1..=max)
        .height_range(1..=max)
        .build()
}

/// Parses `device`: one GPU index or a comma-separated list ("0", "0,1"); empty = device 0.
pub(super) fn parse_devices(s: &str) -> Result<Vec<usize>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|d| {
            d.trim()
                .parse::<usize>()
                .map_err(|_| format!("`{}` is not a GPU index", d.trim()))
        })
        .collect()
}

/// The library's packed format for a GStreamer one (`None`: not packed RGB).
pub(super) fn pixel_format(format: F) -> Option<PixelFormat> {
    match format {
        F::Rgba => Some(PixelFormat::Rgba),
        F::Bgra => Some(PixelFormat::Bgra),
        F::Rgbx => Some(PixelFormat::Rgbx),
        F::Bgrx => Some(PixelFormat::Bgrx),
        _ => None,
    }
}

/// The YUV layout, matrix and range of a stream (`None`: not 4:2:0 YUV). An unknown matrix
/// is taken as BT.709 from 720 lines up and BT.601 below, as GStreamer does by default.
pub(super) fn yuv_spec(info: &gst_video::VideoInfo) -> Option<YuvSpec> {
    let layout = match info.format() {
        F::I420 => YuvLayout::I420,
        F::Nv12 => YuvLayout::Nv12,
        _ => return None,
    };
    let c = info.colorimetry();
    let matrix = match c.matrix() {
        gst_video::VideoColorMatrix::Bt601 => YuvMatrix::BT601,
        gst_video::VideoColorMatrix::Bt709 => YuvMatrix::BT709,
        _ if info.height() >= 720 => YuvMatrix::BT709,
        _ => YuvMatrix::BT601,
    };
    Some(YuvSpec {
        layout,
        matrix,
        full_range: c.range() == gst_video::VideoColorRange::Range0_255,
    })
}

/// Scratch RGBx frames of the YUV path, kept between frames.
#[derive(Default)]
pub(super) struct YuvScratch {
    rgb_in: Vec<u8>,
    rgb_out: Vec<u8>,
}

/// Derains one YUV frame: YUV → RGBx, `process`, RGBx → YUV.
pub(super) fn process_yuv(
    spec: &YuvSpec,
    scratch: &mut YuvScratch,
    inframe: &gst_video::VideoFrameRef<&gst::BufferRef>,
    outframe: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    process: impl FnOnce(&[u8], &mut [u8]) -> Result<(), String>,
) -> Result<(), String> {
    let (w, h) = (inframe.width() as usize, inframe.height() as usize);
    yuv_to_rgbx(spec, inframe, &mut scratch.rgb_in)?;
    scratch.rgb_out.resize(4 * w * h, 0);
    process(&scratch.rgb_in, &mut scratch.rgb_out)?;
    rgbx_to_yuv(spec, &scratch.rgb_out, outframe)
}

fn strides(s: &[i32]) -> Result<[usize; 3], String> {
    let get = |k: usize| s.get(k).map_or(Ok(0), |&v| usize::try_from(v));
    Ok([
        get(0).map_err(|e| e.to_string())?,
        get(1).map_err(|e| e.to_string())?,
        get(2).map_err(|e| e.to_string())?,
    ])
}

/// A YUV frame into tight RGBx rows (`rgb` resized to 4·w·h).
pub(super) fn yuv_to_rgbx(
    spec: &YuvSpec,
    inframe: &gst_video::VideoFrameRef<&gst::BufferRef>,
    rgb: &mut Vec<u8>,
) -> Result<(), String> {
    let (w, h) = (inframe.width() as usize, inframe.height() as usize);
    let plane = |k: u32| inframe.plane_data(k).unwrap_or(&[]);
    let src = YuvPlanes {
        data: [plane(0), plane(1), plane(2)],
        stride: strides(inframe.plane_stride())?,
    };
    rgb.resize(4 * w * h, 0);
    yuv::yuv420_to_rgbx(spec, w, h, &src, rgb, 4 * w).map_err(|e| e.to_string())
}

/// Tight RGBx rows into a YUV frame of the same size.
pub(super) fn rgbx_to_yuv(
    spec: &YuvSpec,
    rgb: &[u8],
    outframe: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
) -> Result<(), String> {
    let (w, h) = (outframe.width() as usize, outframe.height() as usize);
    let out_strides = strides(outframe.plane_stride())?;
    let [p0, p1, p2, _] = outframe.planes_data_mut();
    let mut dst = YuvPlanes {
        data: [p0, p1, p2],
        stride: out_strides,
    };
    yuv::rgbx_to_yuv420(spec, w, h, rgb, 4 * w, &mut dst).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::parse_devices;

    #[test]
    fn device_lists_parse() {
        assert_eq!(parse_devices(""), Ok(vec![]));
        assert_eq!(parse_devices("0"), Ok(vec![0]));
        assert_eq!(parse_devices(" 0, 1 "), Ok(vec![0, 1]));
        assert!(parse_devices("0,x").unwrap_err().contains("`x`"));
    }
}
