//! The per-row steps of the temporal stage on packed 8-bit rows (3 or 4 bytes per pixel, R,
//! G and B at `off`, which are the first three bytes of a pixel in every format); the
//! history (ring and background) is kept 3 bytes per pixel ([`Layout::history`]).
//! `kernels/temporal.cu` does the same arithmetic per thread (its history keeps the frame's
//! layout; the outputs are the same byte for byte). The inner loops run over whole rows;
//! rows run in parallel.

use super::TemporalParams;
use super::motion::luma;

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

    /// The layout the history (ring and background) is kept in: the frame's R, G, B bytes
    /// in the frame's order, 3 per pixel. A 4-byte frame's alpha or padding byte is never
    /// written back, so it is not kept: a quarter less to read every frame.
    pub fn history(&self) -> Layout {
        Layout { bpp: 3, ..*self }
    }
}

/// The R, G, B bytes of one frame row (`lay`) as a history row ([`Layout::history`]).
pub fn store_row(cur: &[u8], lay: &Layout, out: &mut [u8]) {
    debug_assert!(lay.bpp == 3 || lay.bpp == 4);
    if lay.bpp == 3 {
        out.copy_from_slice(&cur[..out.len()]);
    } else {
        // R, G and B are the first three bytes of a 4-byte pixel in every format. Four
        // pixels (four little-endian words) become three words.
        let n = out.len() / 3;
        let full = n - n % 4;
        for (o, p) in out[..3 * full]
            .chunks_exact_mut(12)
            .zip(cur[..4 * full].chunks_exact(16))
        {
            let [a, b, c, d] = words::<4>(p);
            let rgb = [
                (a & 0xff_ffff) | (b << 24),
                ((b >> 8) & 0xffff) | (c << 16),
                ((c >> 16) & 0xff) | (d << 8),
            ];
            put_words(o, rgb);
        }
        for (o, p) in out[3 * full..]
            .chunks_exact_mut(3)
            .zip(cur[4 * full..].chunks_exact(4))
        {
            o.copy_from_slice(&p[..3]);
        }
    }
}

/// The first N little-endian 32-bit words of `b`.
#[inline(always)]
fn words<const N: usize>(b: &[u8]) -> [u32; N] {
    let mut w = [0u32; N];
    for (o, c) in w.iter_mut().zip(b.chunks_exact(4)) {
        *o = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    w
}

/// Writes N little-endian 32-bit words at the start of `b`.
#[inline(always)]
fn put_words<const N: usize>(b: &mut [u8], w: [u32; N]) {
    for (o, v) in b.chunks_exact_mut(4).zip(w) {
        o.copy_from_slice(&v.to_le_bytes());
    }
}

/// The background's R, G, B bytes into a block of `BPP`-byte pixels (alpha and padding
/// untouched); R, G, B are the first three bytes of every pixel in both layouts.
fn copy_rgb<const BPP: usize>(px: &mut [u8], q: &[u8]) {
    if BPP == 3 {
        px.copy_from_slice(&q[..px.len()]);
        return;
    }
    debug_assert_eq!(BPP, 4, "a 3- or 4-byte pixel");
    let n = px.len() / BPP;
    let full = n - n % 4;
    for (p, q) in px[..BPP * full]
        .chunks_exact_mut(4 * BPP)
        .zip(q[..3 * full].chunks_exact(12))
    {
        // Three words of the background are four pixels' R, G, B; each pixel keeps its
        // fourth byte.
        let [a, b, c] = words::<3>(q);
        let rgb = [
            a & 0xff_ffff,
            (a >> 24) | ((b & 0xffff) << 8),
            (b >> 16) | ((c & 0xff) << 16),
            c >> 8,
        ];
        let [o0, o1, o2, o3] = words::<4>(p);
        let keep = 0xff00_0000;
        put_words(
            p,
            [
                (o0 & keep) | rgb[0],
                (o1 & keep) | rgb[1],
                (o2 & keep) | rgb[2],
                (o3 & keep) | rgb[3],
            ],
        );
    }
    for (p, q) in px[BPP * full..]
        .chunks_exact_mut(BPP)
        .zip(q[3 * full..].chunks_exact(3))
    {
        p[..3].copy_from_slice(q);
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
/// remembered for `window` frames; a persistent brightening for `hold`. Where `fringe` (one
/// byte a pixel, [`fringe_row`]) is non-zero, the channel test does not count: the drop is
/// the colour fringe of a removed streak. `cur` is laid out as `lay`, `bg` as its history
/// ([`Layout::history`]). Returns (pixels with an event, pixels darker than B).
pub fn events_row(
    cur: &[u8],
    bg: &[u8],
    lay: &Layout,
    p: &TemporalParams,
    fringe: Option<&[u8]>,
    run: &mut [u8],
    mem: &mut [u8],
) -> (usize, usize) {
    match (lay.bpp, lay.off, fringe) {
        (4, [0, 1, 2], None) => events_px::<4, 0, 2, false>(cur, bg, p, &[], run, mem),
        (4, _, None) => events_px::<4, 2, 0, false>(cur, bg, p, &[], run, mem),
        (_, [0, 1, 2], None) => events_px::<3, 0, 2, false>(cur, bg, p, &[], run, mem),
        (_, _, None) => events_px::<3, 2, 0, false>(cur, bg, p, &[], run, mem),
        (4, [0, 1, 2], Some(f)) => events_px::<4, 0, 2, true>(cur, bg, p, f, run, mem),
        (4, _, Some(f)) => events_px::<4, 2, 0, true>(cur, bg, p, f, run, mem),
        (_, [0, 1, 2], Some(f)) => events_px::<3, 0, 2, true>(cur, bg, p, f, run, mem),
        (_, _, Some(f)) => events_px::<3, 2, 0, true>(cur, bg, p, f, run, mem),
    }
}

/// [`events_row`] for one pixel layout (BPP bytes, R at byte R, G at 1, B at byte B; the
/// background 3 bytes per pixel in the same order).
fn events_px<const BPP: usize, const R: usize, const B: usize, const FRINGE: bool>(
    cur: &[u8],
    bg: &[u8],
    p: &TemporalParams,
    fringe: &[u8],
    run: &mut [u8],
    mem: &mut [u8],
) -> (usize, usize) {
    let th = p.threshold as i32;
    let long = p.window.max(p.hold as usize) as u8;
    let (persist, hold) = (p.persist, p.hold);
    let (mut count, mut darker) = (0u32, 0u32);
    // One pixel: its run and memory updated, the event and darker counts added; `fringe`
    // says the channel test does not count there.
    let mut px = |o: &[u8], q: &[u8], run: &mut u8, mem: &mut u8, fringe: bool| {
        let (or, og, ob) = (o[R] as i32, o[1] as i32, o[B] as i32);
        let (qr, qg, qb) = (q[R] as i32, q[1] as i32, q[B] as i32);
        let e = ((77 * or + 150 * og + 29 * ob + 128) >> 8)
            - ((77 * qr + 150 * qg + 29 * qb + 128) >> 8);
        let up_now = e > th;
        let r1 = if up_now { run.saturating_add(1) } else { 0 };
        *run = r1;
        let drop = (or - qr).min(og - qg).min(ob - qb);
        let dark = (e < -th) | ((drop < -2 * th) & !fringe);
        let up = r1 >= persist;
        let m = mem.saturating_sub(1);
        let m_up = if up { m.max(hold) } else { m };
        *mem = if dark { long } else { m_up };
        count += (dark | up) as u32;
        darker += dark as u32;
    };
    let pixels = cur
        .chunks_exact(BPP)
        .zip(bg.chunks_exact(3))
        .zip(run.iter_mut())
        .zip(mem.iter_mut());
    if FRINGE {
        for ((((o, q), run), mem), &f) in pixels.zip(fringe) {
            px(o, q, run, mem, f != 0);
        }
    } else {
        for (((o, q), run), mem) in pixels {
            px(o, q, run, mem, false);
        }
    }
    (count as usize, darker as usize)
}

/// How far along the row [`fringe_row`] looks for the level of the removed veil, px.
pub const FRINGE_REACH: usize = 3;

/// Step 2a for one row, where `fringe` > 0: marks the pixels where the single-frame method
/// removed a thin streak. d = Y(input) − Y(output) is how much light it took away; a pixel
/// is marked when d exceeds the smallest d within ±[`FRINGE_REACH`] px on its row (the veil
/// it lifted, which is smooth) by at least `fringe` levels. A channel that drops there is
/// the colour fringe the method leaves along a removed streak (too much of one channel taken
/// where the streak clipped), gone the next frame, not a change of the scene.
/// `input` and `cur` are rows of one layout `lay` (width ≥ 1); `scratch` holds at least
/// 2·(width + 2·[`FRINGE_REACH`]) values. The window minimum is three passes of pairwise minima (over 2, 4, then 7 values),
/// each a plain loop over the row that vectorises.
pub fn fringe_row(
    input: &[u8],
    cur: &[u8],
    lay: &Layout,
    fringe: u8,
    scratch: &mut [i16],
    out: &mut [u8],
) {
    const R: usize = FRINGE_REACH;
    let w = lay.width;
    // d with R copies of its end values on either side (the window clipped to the row has
    // the same minimum), then the pairwise minima in the second half of the scratch.
    let (d, m) = scratch.split_at_mut(w + 2 * R);
    let m = &mut m[..w + 2 * R];
    for ((d, i), o) in d[R..R + w]
        .iter_mut()
        .zip(input.chunks_exact(lay.bpp))
        .zip(cur.chunks_exact(lay.bpp))
    {
        *d = luma(i, 0, lay.off) as i16 - luma(o, 0, lay.off) as i16;
    }
    let (first, last) = (d[R], d[R + w - 1]);
    d[..R].fill(first);
    d[R + w..].fill(last);
    let n = w + 2 * R;
    // m[j] = min d[j..j+2], then min d[j..j+4], then min d[j..j+7].
    for (m, p) in m[..n - 1].iter_mut().zip(d.windows(2)) {
        *m = p[0].min(p[1]);
    }
    for j in 0..n - 3 {
        m[j] = m[j].min(m[j + 2]);
    }
    for j in 0..n - 6 {
        m[j] = m[j].min(m[j + 3]);
    }
    let level = fringe as i16;
    for ((o, &v), &lo) in out[..w].iter_mut().zip(&d[R..R + w]).zip(&m[..w]) {
        *o = u8::from(v - lo >= level);
    }
}

/// Step 3a for one row: the number of remembering pixels in the horizontal window
/// [x − r, x + r] (clipped at the borders). A running count in three stretches (the window
/// still growing, sliding, shrinking), so the middle, most of a row, has no branches.
pub fn box_row(mem: &[u8], r: usize, out: &mut [u16]) {
    let w = mem.len();
    let on = |v: u8| (v > 0) as u32;
    let mut s: u32 = mem[..r.min(w - 1) + 1].iter().map(|&v| on(v)).sum();
    // out[x] = s, then s gains pixel x + r + 1 (while x + r + 1 < w, i.e. x < b) and loses
    // pixel x − r (once x ≥ a = r).
    let (a, b) = (r.min(w), w.saturating_sub(r + 1));
    let (lo, hi) = (a.min(b), a.max(b));
    for x in 0..lo {
        out[x] = s as u16;
        s += on(mem[x + r + 1]);
    }
    if a <= b {
        let (gain, lose) = (&mem[lo + r + 1..hi + r + 1], &mem[lo - r..hi - r]);
        for ((o, &g), &l) in out[lo..hi].iter_mut().zip(gain).zip(lose) {
            *o = s as u16;
            s = s + on(g) - on(l);
        }
    } else {
        // A row shorter than the window: every window reaches past both ends.
        out[lo..hi].fill(s as u16);
    }
    for x in hi..w {
        out[x] = s as u16;
        s -= on(mem[x - r]);
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
        share += background_sum(out);
    }
    share
}

/// Σ (1 − w) over one row of weights, in f64 with eight independent partial sums (one
/// running sum waits on every add: most of the weight pass, measured).
fn background_sum(weights: &[f32]) -> f64 {
    let mut part = [0f64; 8];
    let blocks = weights.chunks_exact(8);
    let rest: f64 = blocks.remainder().iter().map(|&v| 1.0 - v as f64).sum();
    for b in blocks {
        for (p, &v) in part.iter_mut().zip(b) {
            *p += 1.0 - v as f64;
        }
    }
    part.iter().sum::<f64>() + rest
}

/// Step 4 on 8 bits: o + (b − o)·(1 − w), rounded.
#[inline]
pub fn blend_u8(o: u8, b: u8, w: f32) -> u8 {
    let v = o as f32 + (b as f32 - o as f32) * (1.0 - w);
    (v + 0.5) as u8
}

/// Step 4 for one packed row: the R, G, B bytes of `row` (laid out as `lay`) become the blend
/// of themselves and `bg` (its history layout) by the row's weights (alpha and padding
/// untouched). Weight 1 keeps the pixel, weight 0 takes the background exactly.
pub fn blend_row(row: &mut [u8], bg: &[u8], weight: &[f32], lay: &Layout) {
    match (lay.bpp, lay.off) {
        (4, [0, 1, 2]) => blend_px::<4, 0, 2>(row, bg, weight),
        (4, _) => blend_px::<4, 2, 0>(row, bg, weight),
        (_, [0, 1, 2]) => blend_px::<3, 0, 2>(row, bg, weight),
        _ => blend_px::<3, 2, 0>(row, bg, weight),
    }
}

/// Pixels per block of [`blend_px`]: a block whose weights are all 0 (the static
/// background, most of a fixed camera's frame) or all 1 is copied or left without the
/// per-pixel arithmetic, which gives the same bytes.
const BLEND_BLOCK: usize = 16;

/// [`blend_row`] for one pixel layout (BPP bytes, R at byte R, G at 1, B at byte B; the
/// background 3 bytes per pixel in the same order).
fn blend_px<const BPP: usize, const R: usize, const B: usize>(
    row: &mut [u8],
    bg: &[u8],
    weight: &[f32],
) {
    let n = weight.len();
    let (row, bg) = (&mut row[..n * BPP], &bg[..n * 3]);
    for ((px, q), wt) in row
        .chunks_mut(BLEND_BLOCK * BPP)
        .zip(bg.chunks(BLEND_BLOCK * 3))
        .zip(weight.chunks(BLEND_BLOCK))
    {
        // The block's least and largest weight, compared as integers (the bits of floats in
        // [0, 1] are in the same order, and an integer reduction vectorises).
        let (lo, hi) = wt.iter().fold((u32::MAX, 0u32), |(a, b), &v| {
            let u = v.to_bits() & 0x7fff_ffff;
            (a.min(u), b.max(u))
        });
        if lo >= 1f32.to_bits() {
            continue;
        }
        if hi == 0 {
            copy_rgb::<BPP>(px, q);
            continue;
        }
        for ((p, q), &v) in px.chunks_exact_mut(BPP).zip(q.chunks_exact(3)).zip(wt) {
            if v <= 0.0 {
                p[R] = q[R];
                p[1] = q[1];
                p[B] = q[B];
            } else if v < 1.0 {
                p[R] = blend_u8(p[R], q[R], v);
                p[1] = blend_u8(p[1], q[1], v);
                p[B] = blend_u8(p[B], q[B], v);
            }
        }
    }
}
