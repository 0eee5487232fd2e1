//! Recycled feature-map storage, at most [`MAX_BUFFERS`] buffers and
//! [`MAX_BYTES`] in all (the least recently given back go first), none idle for more
//! than twice [`STALE_TAKES`] requests.
//!
//! A network asks for the same shapes in the same order on every frame. So a buffer
//! remembers the shape it last held, whose padding is still zero in it, and a request for
//! that shape takes it back as it is: no zeroing, no fresh pages. A request for a shape the
//! pool does not hold takes a buffer that has lain idle for [`STALE_TAKES`] requests
//! (the frame size changed: best fit by capacity, padding zeroed again) or a new one, never
//! one that the next frame's layers will ask for by its shape. Taking those (best fit among
//! all, as before 2026-12-06) cost the zeroing on every frame: `full` at 720p on 2 cores is
//! 12–15 % faster this way, for one buffer per shape (+70 MB resident for `fast` at 720p,
//! +125 MB for `quality` at 1080p; BENCHMARKS.md §7).

use std::sync::Mutex;

pub(super) const MAX_BUFFERS: usize = 128;
pub(super) const MAX_BYTES: usize = 768 << 20;
/// Requests after which an idle buffer may hold another shape: more than a frame of the
/// shipped networks (70–75 requests per frame, 85–94 with the mirror ensemble).
pub(super) const STALE_TAKES: u64 = 128;

/// What a buffer was last used for: its padding (border, slack) is zero for that shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Shape {
    /// A [`super::conv::Map`] of (c, h, w).
    Map(usize, usize, usize),
    /// The deinterleaved input of a stride-2 convolution on a map of (c, h, w).
    Strided(usize, usize, usize),
}

struct Free {
    v: Vec<f32>,
    shape: Shape,
    /// The request count when it was given back.
    since: u64,
}

struct Pool {
    free: Vec<Free>,
    /// Requests so far.
    takes: u64,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    free: Vec::new(),
    takes: 0,
});

/// A buffer of exactly `n` floats for `shape`, and whether its padding for `shape` is
/// already zero (its interior is unspecified either way).
pub(super) fn take(n: usize, shape: Shape) -> (Vec<f32>, bool) {
    let found = {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        pool.takes += 1;
        let now = pool.takes;
        let same = pool
            .free
            .iter()
            .position(|f| f.shape == shape && f.v.len() == n);
        let idle = || {
            pool.free
                .iter()
                .enumerate()
                .filter(|(_, f)| now - f.since > STALE_TAKES && f.v.capacity() >= n)
                .min_by_key(|(_, f)| f.v.capacity())
                .map(|(i, _)| i)
        };
        same.map(|i| (i, true))
            .or_else(|| idle().map(|i| (i, false)))
            .map(|(i, clean)| (pool.free.swap_remove(i).v, clean))
    };
    match found {
        Some((mut v, clean)) => {
            // Within capacity: no allocation; floats added by the resize are zero.
            v.resize(n, 0.0);
            (v, clean)
        }
        None => (vec![0.0; n], true),
    }
}

/// Gives `v` back; `shape`: what it held, with its padding zero.
pub(super) fn give(v: Vec<f32>, shape: Shape) {
    if v.capacity() == 0 {
        return;
    }
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let since = pool.takes;
    // Idle for twice the stale age: its shape has not come back and nothing took it.
    pool.free.retain(|f| since - f.since <= 2 * STALE_TAKES);
    pool.free.push(Free { v, shape, since });
    let bytes = |f: &[Free]| f.iter().map(|f| f.v.capacity() * 4).sum::<usize>();
    while pool.free.len() > MAX_BUFFERS || bytes(&pool.free) > MAX_BYTES {
        let oldest = (0..pool.free.len())
            .min_by_key(|&i| pool.free[i].since)
            .unwrap_or(0);
        pool.free.swap_remove(oldest);
    }
}
