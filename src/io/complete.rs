//! Is an image file whole? The `image` crate's JPEG decoder fills the rows a truncated file
//! lacks with grey and reports success, so a partial download or copy would pass unnoticed.
//! These checks walk the container structure (JPEG markers, PNG chunks) without decoding and
//! fail when the file ends before its end marker (JPEG EOI `FF D9`, PNG `IEND`).

/// Why a file is not whole, or `Ok` when it is (or is a format these checks do not know:
/// the decoder then has the last word).
///
/// - JPEG: segments are skipped by their length fields (so an EXIF thumbnail's own markers do
///   not count), entropy-coded data is scanned for the next marker (`FF` followed by anything
///   but `00` or a restart marker `D0`–`D7`); the file must reach EOI. Bytes after EOI are
///   allowed (some cameras append data there).
/// - PNG: the 8-byte signature, then chunks (length, type, data, CRC); the file must hold a
///   complete `IEND` chunk. CRCs are left to the decoder.
pub fn check_complete_bytes(bytes: &[u8]) -> Result<(), String> {
    if bytes.starts_with(&[0xFF, 0xD8]) {
        jpeg(bytes)
    } else if bytes.starts_with(PNG_SIGNATURE) {
        png(bytes)
    } else {
        Ok(())
    }
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

fn jpeg(b: &[u8]) -> Result<(), String> {
    let truncated = |at: usize, what: &str| {
        Err(format!(
            "truncated JPEG: the file ends at byte {} {what}, before the end-of-image marker \
             (FF D9)",
            b.len().min(at)
        ))
    };
    let mut i = 2; // after SOI
    loop {
        // Find the next marker; fill bytes (FF FF ...) may precede it.
        if i >= b.len() {
            return truncated(i, "between segments");
        }
        if b[i] != 0xFF {
            return Err(format!(
                "corrupt JPEG: expected a marker at byte {i}, found {:#04x}",
                b[i]
            ));
        }
        while i < b.len() && b[i] == 0xFF {
            i += 1;
        }
        let Some(&m) = b.get(i) else {
            return truncated(i, "inside a marker");
        };
        i += 1;
        match m {
            0xD9 => return Ok(()),
            // Markers without a length: TEM, RST0-7, a stray SOI.
            0x01 | 0xD0..=0xD8 => continue,
            _ => {}
        }
        let Some(len) = b
            .get(i..i + 2)
            .map(|l| u16::from_be_bytes([l[0], l[1]]) as usize)
        else {
            return truncated(i, "inside a segment header");
        };
        if len < 2 {
            return Err(format!(
                "corrupt JPEG: segment {m:#04x} at byte {i} has length {len}"
            ));
        }
        if i + len > b.len() {
            return truncated(i + len, &format!("inside segment {m:#04x}"));
        }
        i += len;
        if m == 0xDA {
            // Entropy-coded data runs to the next marker that is not a stuffed FF 00 or RSTn.
            loop {
                let Some(off) = b[i..].iter().position(|&v| v == 0xFF) else {
                    return truncated(b.len(), "inside the image data");
                };
                i += off;
                match b.get(i + 1) {
                    None => return truncated(b.len(), "inside the image data"),
                    Some(0x00 | 0xD0..=0xD7) => i += 2,
                    Some(0xFF) => i += 1,
                    Some(_) => break,
                }
            }
        }
    }
}

fn png(b: &[u8]) -> Result<(), String> {
    let mut i = PNG_SIGNATURE.len();
    loop {
        let Some(h) = b.get(i..i + 8) else {
            return Err(format!(
                "truncated PNG: the file ends at byte {} before the IEND chunk",
                b.len()
            ));
        };
        let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let kind = [h[4], h[5], h[6], h[7]];
        let end = i.saturating_add(12).saturating_add(len);
        if end > b.len() {
            return Err(format!(
                "truncated PNG: the file ends at byte {} inside chunk {} (needs {end} bytes)",
                b.len(),
                String::from_utf8_lossy(&kind)
            ));
        }
        if &kind == b"IEND" {
            return Ok(());
        }
        i = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_bytes(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    fn jpeg_bytes(w: u32, h: u32, exif: Option<Vec<u8>>) -> Vec<u8> {
        use image::ImageEncoder;
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 3) as u8, (y * 5) as u8, (x ^ y) as u8])
        });
        let mut out = Vec::new();
        let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
        if let Some(e) = exif {
            enc.set_exif_metadata(e).unwrap();
        }
        enc.write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
        out
    }

    #[test]
    fn whole_files_pass_every_proper_prefix_fails() {
        for bytes in [png_bytes(37, 21), jpeg_bytes(37, 21, None)] {
            assert_eq!(check_complete_bytes(&bytes), Ok(()));
            let mut tail = bytes.clone();
            tail.extend_from_slice(b"trailing data after the end marker");
            assert_eq!(check_complete_bytes(&tail), Ok(()));
            for n in PNG_SIGNATURE.len()..bytes.len() {
                let e = check_complete_bytes(&bytes[..n]);
                assert!(
                    e.as_ref().is_err_and(|m| m.contains("truncated")),
                    "prefix of {n}/{} bytes: {e:?}",
                    bytes.len()
                );
            }
        }
    }

    #[test]
    fn an_exif_thumbnail_end_marker_does_not_count() {
        // An APP1 segment whose payload holds FF D9 (as an embedded thumbnail does): the
        // segment is skipped by its length, so a file cut after it is still truncated.
        let mut exif = b"Exif\0\0".to_vec();
        exif.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xD9, 0xFF, 0xDA, 0x00, 0x02, 0xFF, 0xD9]);
        let bytes = jpeg_bytes(16, 16, Some(exif));
        let at = bytes.windows(2).position(|w| w == [0xFF, 0xD9]).unwrap() + 2;
        assert!(
            at < bytes.len() - 2,
            "the fake thumbnail precedes the real EOI"
        );
        assert!(check_complete_bytes(&bytes[..at]).is_err());
        assert_eq!(check_complete_bytes(&bytes), Ok(()));
    }

    #[test]
    fn other_formats_are_left_to_the_decoder() {
        assert_eq!(check_complete_bytes(b"GIF89a..."), Ok(()));
        assert_eq!(check_complete_bytes(b""), Ok(()));
    }

    #[test]
    fn garbage_after_soi_is_corrupt() {
        let e = check_complete_bytes(&[0xFF, 0xD8, 0x12, 0x34]).unwrap_err();
        assert!(e.contains("corrupt"), "{e}");
    }
}
