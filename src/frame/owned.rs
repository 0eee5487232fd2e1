//! [`FrameBuf`]: a packed frame that owns its storage, for frames that outlive the call that
//! made them (frames in flight in the pipeline's scheduler). The storage is a `Vec<u8>` by
//! default, or anything that derefs to bytes (a mapped GStreamer buffer: no copy).

use super::{FrameMut, FrameRef, PixelFormat, check_layout};
use crate::error::Result;

/// A packed 8-bit frame owning its storage `D` (rows `stride` bytes apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameBuf<D = Vec<u8>> {
    data: D,
    width: u32,
    height: u32,
    stride: usize,
    format: PixelFormat,
}

impl<D: AsRef<[u8]>> FrameBuf<D> {
    /// Takes `data` as a frame; checks the layout as [`FrameRef::new`] does.
    pub fn new(
        data: D,
        width: u32,
        height: u32,
        stride: usize,
        format: PixelFormat,
    ) -> Result<Self> {
        check_layout(data.as_ref().len(), width, height, stride, format)?;
        Ok(Self {
            data,
            width,
            height,
            stride,
            format,
        })
    }

    /// A read-only view.
    pub fn as_ref(&self) -> FrameRef<'_> {
        FrameRef {
            data: self.data.as_ref(),
            width: self.width,
            height: self.height,
            stride: self.stride,
            format: self.format,
        }
    }

    /// Width and height in pixels (stride and format: [`as_ref`](Self::as_ref)).
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }
    /// The bytes, padding included.
    pub fn data(&self) -> &[u8] {
        self.data.as_ref()
    }
    /// The storage, to reuse it (a `Vec`'s allocation, a GStreamer buffer to push).
    pub fn into_data(self) -> D {
        self.data
    }
}

impl<D: AsRef<[u8]> + AsMut<[u8]>> FrameBuf<D> {
    /// A writable view.
    pub fn as_mut(&mut self) -> FrameMut<'_> {
        FrameMut {
            data: self.data.as_mut(),
            width: self.width,
            height: self.height,
            stride: self.stride,
            format: self.format,
        }
    }
}

impl FrameBuf {
    /// A zeroed frame of this size and format with tight rows (stride = width × bytes per
    /// pixel); errors on an empty or oversized frame, as [`FrameBuf::new`] does.
    pub fn zeroed(width: u32, height: u32, format: PixelFormat) -> Result<Self> {
        let stride = width as usize * format.bytes_per_pixel();
        // The size checks first (any length passes the buffer check), then the allocation.
        check_layout(usize::MAX, width, height, stride, format)?;
        Self::new(
            vec![0; stride * height as usize],
            width,
            height,
            stride,
            format,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_the_layout_and_takes_rows_tight() {
        assert!(FrameBuf::new(vec![0; 11], 2, 2, 6, PixelFormat::Rgb).is_err());
        let padded: Vec<u8> = (0..2 * 8).map(|i| i as u8).collect();
        let view = FrameRef::new(&padded, 2, 2, 8, PixelFormat::Rgb).unwrap();
        let mut copy = FrameBuf::zeroed(2, 2, PixelFormat::Rgb).unwrap();
        assert!(FrameBuf::zeroed(0, 8, PixelFormat::Rgba).is_err());
        assert!(FrameBuf::zeroed(u32::MAX, u32::MAX, PixelFormat::Rgba).is_err());
        assert_eq!(copy.data(), &[0; 12]);
        copy.as_mut().copy_from(&view).unwrap();
        assert_eq!(copy.as_ref().stride(), 6);
        assert_eq!(copy.data(), &[0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13]);
    }
}
