//! The per-row steps of the temporal stage on packed 8-bit rows (3 or 4 bytes per pixel, R,
//! G and B at `off`); `kernels/temporal.cu` is to do the same arithmetic per thread. Every
//! inner loop runs over whole rows of bytes, so it vectorises; rows run in parallel.

use super::TemporalParams;

/// Geometry of the packed frames the stage works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Pixels per row and rows.
    pub width: usize,
    pub height: usize,
    /// Bytes per pixel (3 or 4) and the byte offsets of R, G, B.
    pub bpp: usize,
    pub off: [usize; 3],
}

impl Layout {
    /// Bytes of one packed row.
    pub fn row_bytes(&self) -> usize {
        self.width * self.bpp
    }
}

/// The rank used with `filled` frames of history: `rank`·filled/window, rounded, at least 1.
pub fn effective_rank(rank: usize, window: usize, filled: usize) -> usize {
    ((rank * filled + window / 2) / window).clamp(1, rank.min(filled))
}

/// Bytes per block of [`rank_row`]: the k sorted lists of one block stay in registers.
const LANES: usize = 64;

/// Step 1 for one row: `bg` = the `k`-th smallest byte (1 ≤ k ≤ 8) over the `slots` rows
/// (every byte of the row, padding and alpha included: they are never written back).
pub fn rank_row(slots: &[&[u8]], k: usize, bg: &mut [u8]) {
    let len = bg.len();
    let full = len - len % LANES;
    let mut start = 0;
    while start < full {
        let mut m = [[255u8; LANES]; 8];
        for src in slots {
            let s: &[u8; LANES] = src[start..start + LANES]
                .try_into()
                .unwrap_or_else(|_| unreachable!());
            insert(&mut m[..k], s);
        }
        let out: &mut [u8; LANES] = (&mut bg[start..start + LANES])
            .try_into()
            .unwrap_or_else(|_| unreachable!());
        for (o, &v) in out.iter_mut().zip(m[k - 1].iter()) {
            *o = v;
        }
        start += LANES;
    }
    if start < len {
        // The row's tail, padded with 255 (never among the k smallest of real bytes).
        let n = len - start;
        let mut m = [[255u8; LANES]; 8];
        for src in slots {
            let mut s = [255u8; LANES];
            s[..n].copy_from_slice(&src[start..len]);
            insert(&mut m[..k], &s);
        }
        bg[start..].copy_from_slice(&m[k - 1][..n]);
    }
}

/// Inserts the bytes of `s` into the sorted lists `m[0] ≤ m[1] ≤ …` of the smallest values
/// seen, lane by lane, carrying the larger value on (branch-free, vectorised).
#[inline(always)]
fn insert(m: &mut [[u8; LANES]], s: &[u8; LANES]) {
    let mut c = *s;
    for mj in m.iter_mut() {
        for i in 0..LANES {
            let lo = mj[i].min(c[i]);
            c[i] = mj[i].max(c[i]);
            mj[i] = lo;
        }
    }
}

/// Step 2 for one row: updates the brighter-run lengths and event memories of the row's
/// pixels. A pixel darker than B (in luma, or by twice the threshold in one channel: rain
/// raises all three, so a change of colour at equal brightness counts) put a value below
/// the background into the ring, which can hold B down as long as it stays there, so it is
/// remembered for `window` frames; a persistent brightening for `hold`. Returns (pixels with
/// an event, pixels darker than B).
pub fn events_row(
    cur: &[u8],
    bg: &[u8],
    lay: &Layout,
    p: &TemporalParams,
    run: &mut [u8],
    mem: &mut [u8],
) -> (usize, usize) {
    match (lay.bpp, lay.off) {
        (4, [0, 1, 2]) => events_px::<4, 0, 2>(cur, bg, p, run, mem),
        (4, _) => events_px::<4, 2, 0>(cur, bg, p, run, mem),
        (_, [0, 1, 2]) => events_px::<3, 0, 2>(cur, bg, p, run, mem),
        _ => events_px::<3, 2, 0>(cur, bg, p, run, mem),
    }
}

/// [`events_row`] for one pixel layout (BPP bytes, R at byte R, G at 1, B at byte B).
fn events_px<const BPP: usize, const R: usize, const B: usize>(
    cur: &[u8],
    bg: &[u8],
    p: &TemporalParams,
    run: &mut [u8],
    mem: &mut [u8],
) -> (usize, usize) {
    let th = p.threshold as i32;
    let long = p.window.max(p.hold as usize) as u8;
    let (persist, hold) = (p.persist, p.hold);
    let (mut count, mut darker) = (0u32, 0u32);
    for (((o, q), run), mem) in cur
        .chunks_exact(BPP)
        .zip(bg.chunks_exact(BPP))
        .zip(run.iter_mut())
        .zip(mem.iter_mut())
    {
        let (or, og, ob) = (o[R] as i32, o[1] as i32, o[B] as i32);
        let (qr, qg, qb) = (q[R] as i32, q[1] as i32, q[B] as i32);
        let e = ((77 * or + 150 * og + 29 * ob + 128) >> 8)
            - ((77 * qr + 150 * qg + 29 * qb + 128) >> 8);
        let up_now = e > th;
        let r1 = if up_now { run.saturating_add(1) } else { 0 };
        *run = r1;
        let drop = (or - qr).min(og - qg).min(ob - qb);
        let dark = (e < -th) | (drop < -2 * th);
        let up = r1 >= persist;
        let m = mem.saturating_sub(1);
        let m_up = if up { m.max(hold) } else { m };
        *mem = if dark { long } else { m_up };
        count += (dark | up) as u32;
        darker += dark as u32;
    }
    (count as usize, darker as usize)
}

/// Step 3a for one row: the number of remembering pixels in the horizontal window
/// [x − r, x + r] (clipped at the borders).
pub fn box_row(mem: &[u8], r: usize, out: &mut [u16]) {
    let w = mem.len();
    let mut s: u32 = mem[..r.min(w - 1) + 1]
        .iter()
        .map(|&v| (v > 0) as u32)
        .sum();
    for x in 0..w {
        out[x] = s as u16;
        if x + r + 1 < w {
            s += (mem[x + r + 1] > 0) as u32;
        }
        if x >= r {
            s -= (mem[x - r] > 0) as u32;
        }
    }
}

/// Step 3b for the rows `y0..y0 + out.len()/width`: w = clamp((f − fraction)·gain, 0, 1)
/// with f the fraction of remembering pixels in the (2r+1)² box clipped at the borders,
/// from the horizontal counts of every row; the vertical sum slides down the band. `acc` is
/// scratch of `width` u32, `inv_cols` holds 1 / (box width at x). Returns Σ (1 − w) over the
/// band (how much of it comes from the background).
pub fn weight_band(
    counts: &[u16],
    y0: usize,
    lay: &Layout,
    p: &TemporalParams,
    inv_cols: &[f32],
    acc: &mut [u32],
    out: &mut [f32],
) -> f64 {
    let (w, h, r) = (lay.width, lay.height, p.radius);
    let mut share = 0.0;
    let add = |acc: &mut [u32], yy: usize| {
        for (a, &c) in acc.iter_mut().zip(&counts[yy * w..(yy + 1) * w]) {
            *a += c as u32;
        }
    };
    acc.fill(0);
    for yy in y0.saturating_sub(r)..=(y0 + r).min(h - 1) {
        add(acc, yy);
    }
    for (i, out) in out.chunks_exact_mut(w).enumerate() {
        let y = y0 + i;
        if i > 0 {
            if y + r < h {
                add(acc, y + r);
            }
            if y > r {
                let yy = y - r - 1;
                for (a, &c) in acc.iter_mut().zip(&counts[yy * w..(yy + 1) * w]) {
                    *a -= c as u32;
                }
            }
        }
        let rows = ((y + r).min(h - 1) + 1 - y.saturating_sub(r)) as f32;
        let (scale, bias) = (p.gain / rows, -p.fraction * p.gain);
        for ((o, &a), &ic) in out.iter_mut().zip(acc.iter()).zip(inv_cols) {
            *o = (a as f32 * ic * scale + bias).clamp(0.0, 1.0);
        }
        share += out.iter().map(|&v| 1.0 - v as f64).sum::<f64>();
    }
    share
}

/// Step 4 on 8 bits: o + (b − o)·(1 − w), rounded.
#[inline]
pub fn blend_u8(o: u8, b: u8, w: f32) -> u8 {
    let v = o as f32 + (b as f32 - o as f32) * (1.0 - w);
    (v + 0.5) as u8
}

/// Step 4 for one packed row: the R, G, B bytes of `row` become the blend of themselves
/// and `bg` by the row's weights (alpha and padding untouched). Weight 1 keeps the pixel,
/// weight 0 takes the background exactly.
pub fn blend_row(row: &mut [u8], bg: &[u8], weight: &[f32], lay: &Layout) {
    for ((px, q), &wt) in row
        .chunks_exact_mut(lay.bpp)
        .zip(bg.chunks_exact(lay.bpp))
        .zip(weight)
    {
        if wt >= 1.0 {
            continue;
        }
        for &c in &lay.off {
            px[c] = if wt <= 0.0 {
                q[c]
            } else {
                blend_u8(px[c], q[c], wt)
            };
        }
    }
}
