//! Motion compensation for `temporal=auto`: the history is read where the camera has moved
//! it, in place (no copies: each row is ranked piece by piece over shifted slices). Each frame's global translation ([`super::motion`]) adds to the camera's position;
//! a slot of the ring is read at p + round(position now − position when it was stored), so a
//! panning or shaking camera's history lines up with the current frame to half a pixel.
//! Where the shifted slot falls outside the frame the current frame stands in (a neutral
//! vote: the pixel has less history). The per-pixel event state moves with the picture too.

use super::steps::Layout;

/// The integer offset at which a slot stored at camera position `then` is read for the frame
/// at position `now`.
pub fn offset(now: (f64, f64), then: (f64, f64)) -> (isize, isize) {
    (
        (now.0 - then.0).round() as isize,
        (now.1 - then.1).round() as isize,
    )
}

/// Where row `y` of a slot read at offset (dx, dy) comes from: the slot's row and the byte
/// range [b0, b1) of the output row it covers; `None` when the row falls outside.
fn covered(y: usize, (dx, dy): (isize, isize), lay: &Layout) -> Option<(usize, usize, usize)> {
    let (w, h) = (lay.width as isize, lay.height as isize);
    let sy = y as isize + dy;
    let x0 = (-dx).clamp(0, w);
    let x1 = (w - dx).clamp(0, w);
    (sy >= 0 && sy < h && x1 > x0)
        .then(|| (sy as usize, x0 as usize * lay.bpp, x1 as usize * lay.bpp))
}

/// Row `y` of `slot` (a whole packed frame) read at x + dx, y + dy into `out`; pixels that
/// fall outside the frame come from `cur` (row `y` of the current frame). The reference
/// [`rank_row_shifted`] is tested against.
#[cfg(test)]
pub fn shifted_row(
    slot: &[u8],
    cur: &[u8],
    y: usize,
    lay: &Layout,
    (dx, dy): (isize, isize),
    out: &mut [u8],
) {
    let rb = lay.row_bytes();
    let Some((sy, b0, b1)) = covered(y, (dx, dy), lay) else {
        out.copy_from_slice(&cur[..rb]);
        return;
    };
    let src = &slot[sy * rb..(sy + 1) * rb];
    let bpp = lay.bpp;
    out[..b0].copy_from_slice(&cur[..b0]);
    out[b0..b1].copy_from_slice(&src[(b0 as isize + dx * bpp as isize) as usize..][..b1 - b0]);
    out[b1..rb].copy_from_slice(&cur[b1..rb]);
}

/// A slot's shifted row: the row, the output bytes [start, end) it covers, and the byte
/// shift from output to row.
type Span<'a> = (&'a [u8], usize, usize, isize);

/// Step 1 for row `y` with a moved history, without copying: the row is cut where a slot's
/// shifted row starts or ends inside it, and each piece is ranked over the slices that cover
/// it (the slot's, or the current row's where the slot falls outside). Same result as
/// [`shifted_row`] for every slot followed by [`rank_row`](super::steps::rank_row).
#[allow(clippy::too_many_arguments)]
pub fn rank_row_shifted(
    ring: &[u8],
    slot: usize,
    filled: usize,
    offsets: &[(isize, isize)],
    y: usize,
    lay: &Layout,
    k: usize,
    bg: &mut [u8],
) {
    let (bpp, rb) = (lay.bpp as isize, lay.row_bytes());
    let bytes = lay.height * rb;
    let cur = &ring[slot * bytes + y * rb..slot * bytes + (y + 1) * rb];
    // Per slot: its row (None: outside, the current row stands in), and the byte range of
    // the output it covers.
    let spans: Vec<Option<Span>> = (0..filled)
        .map(|s| {
            let (sy, b0, b1) = covered(y, offsets[s], lay).filter(|_| s != slot)?;
            let row = &ring[s * bytes + sy * rb..s * bytes + (sy + 1) * rb];
            Some((row, b0, b1, offsets[s].0 * bpp))
        })
        .collect();
    let mut cuts: Vec<usize> = vec![0, rb];
    for (_, b0, b1, _) in spans.iter().flatten() {
        cuts.push(*b0);
        cuts.push(*b1);
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut hist: Vec<&[u8]> = Vec::with_capacity(filled);
    for seg in cuts.windows(2) {
        let (a, b) = (seg[0], seg[1]);
        hist.clear();
        for (s, span) in spans.iter().enumerate() {
            match span {
                Some((row, b0, b1, shift)) if a >= *b0 && b <= *b1 => {
                    let (ra, rbb) = ((a as isize + shift) as usize, (b as isize + shift) as usize);
                    hist.push(&row[ra..rbb]);
                }
                // The current frame's own slot, or a slot that does not cover the piece.
                _ => {
                    let _ = s;
                    hist.push(&cur[a..b])
                }
            }
        }
        super::steps::rank_row(&hist, k, &mut bg[a..b]);
    }
}

/// Moves a per-pixel plane with the picture: new[p] = old[p + d], 0 where p + d is outside.
pub fn shift_plane(
    plane: &mut [u8],
    w: usize,
    h: usize,
    (dx, dy): (isize, isize),
    scratch: &mut Vec<u8>,
) {
    if (dx, dy) == (0, 0) {
        return;
    }
    scratch.clear();
    scratch.extend_from_slice(plane);
    plane.fill(0);
    let (wi, hi) = (w as isize, h as isize);
    let x0 = (-dx).clamp(0, wi);
    let x1 = (wi - dx).clamp(0, wi);
    if x1 <= x0 {
        return;
    }
    for y in 0..hi {
        let sy = y + dy;
        if sy < 0 || sy >= hi {
            continue;
        }
        let (d, s) = ((y * wi) as usize, (sy * wi) as usize);
        plane[d + x0 as usize..d + x1 as usize].copy_from_slice(
            &scratch[(s as isize + x0 + dx) as usize..(s as isize + x1 + dx) as usize],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_planes_move_with_the_picture() {
        let lay = Layout {
            width: 4,
            height: 3,
            bpp: 1,
            off: [0, 0, 0],
        };
        let slot: Vec<u8> = (0..12).collect();
        let cur = [100u8, 101, 102, 103];
        let mut out = [0u8; 4];
        shifted_row(&slot, &cur, 1, &lay, (1, 1), &mut out);
        assert_eq!(
            out,
            [9, 10, 11, 103],
            "row 2 read one to the right; the last from cur"
        );
        shifted_row(&slot, &cur, 0, &lay, (-2, 0), &mut out);
        assert_eq!(out, [100, 101, 0, 1]);
        shifted_row(&slot, &cur, 2, &lay, (0, 1), &mut out);
        assert_eq!(out, cur, "below the frame: the current row");
        let mut plane: Vec<u8> = (1..=12).collect();
        shift_plane(&mut plane, 4, 3, (1, -1), &mut Vec::new());
        assert_eq!(plane, [0, 0, 0, 0, 2, 3, 4, 0, 6, 7, 8, 0]);
        assert_eq!(offset((3.6, -1.2), (1.0, 0.0)), (3, -1));
    }

    #[test]
    fn ranking_in_place_matches_ranking_shifted_copies() {
        let lay = Layout {
            width: 37,
            height: 9,
            bpp: 4,
            off: [0, 1, 2],
        };
        let (rb, bytes, filled) = (lay.row_bytes(), 9 * lay.row_bytes(), 6);
        let ring: Vec<u8> = (0..filled * bytes)
            .map(|i| ((i * 7919) % 251) as u8)
            .collect();
        let offsets = [(0, 0), (3, -1), (-5, 2), (0, 0), (40, 0), (-2, -9)];
        let slot = 3;
        for k in 1..=4 {
            for y in 0..9 {
                let cur = &ring[slot * bytes + y * rb..slot * bytes + (y + 1) * rb];
                let copies: Vec<Vec<u8>> = (0..filled)
                    .map(|s| {
                        let mut out = vec![0u8; rb];
                        if s == slot {
                            out.copy_from_slice(cur);
                        } else {
                            shifted_row(
                                &ring[s * bytes..(s + 1) * bytes],
                                cur,
                                y,
                                &lay,
                                offsets[s],
                                &mut out,
                            );
                        }
                        out
                    })
                    .collect();
                let hist: Vec<&[u8]> = copies.iter().map(Vec::as_slice).collect();
                let mut expect = vec![0u8; rb];
                crate::temporal::steps::rank_row(&hist, k, &mut expect);
                let mut got = vec![0u8; rb];
                rank_row_shifted(&ring, slot, filled, &offsets, y, &lay, k, &mut got);
                assert_eq!(got, expect, "k {k}, row {y}");
            }
        }
    }
}
