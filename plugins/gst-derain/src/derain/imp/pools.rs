// SPDX-License-Identifier: MIT OR Apache-2.0
//! Buffer pools with frames in flight: up to `in-flight` output buffers (and, for packed RGB,
//! as many input buffers) are held by the element besides what its neighbours keep, so the
//! allocation queries ask for room for them. A bounded pool without that room would block
//! the stream for good.

use gst::subclass::prelude::*;

use super::{CAT, Derain};

impl Derain {
    /// Buffers held in flight besides the one a stream always has out (0 for one frame at
    /// a time): `in-flight` + 1 while several are in flight.
    pub(super) fn held_in_flight(&self) -> u32 {
        match self.state.lock().unwrap().as_ref() {
            Some(s) if s.in_flight > 1 => s.in_flight + 1,
            _ => 0,
        }
    }

    /// The allocation query answered by downstream, before the base class configures its
    /// pool: room for the output buffers held here, or a pool of our own where downstream's
    /// is bounded below that.
    pub(super) fn fit_downstream_pools(&self, query: &mut gst::query::Allocation) {
        let held = self.held_in_flight();
        if held == 0 {
            return;
        }
        let pools: Vec<_> = query.allocation_pools().collect();
        for (i, (pool, size, min, max)) in pools.into_iter().enumerate() {
            let need = min.saturating_add(held);
            if max != 0 && max < need {
                gst::info!(
                    CAT,
                    imp = self,
                    "downstream pool holds at most {max} buffers, {need} needed with \
                     frames in flight: using a pool of our own"
                );
                query.set_nth_allocation_pool(i as u32, None::<&gst::BufferPool>, size, need, 0);
            } else {
                query.set_nth_allocation_pool(i as u32, pool.as_ref(), size, need, max);
            }
        }
    }

    /// Our answer to upstream's allocation query (after the base class's): packed RGB input
    /// buffers stay mapped while their frame is in flight, so upstream's pool needs that many
    /// besides its own.
    pub(super) fn ask_upstream_for_held(&self, query: &mut gst::query::Allocation) {
        let held = self.held_in_flight();
        if held == 0 {
            return;
        }
        let pools: Vec<_> = query.allocation_pools().collect();
        if pools.is_empty() {
            let size = query
                .get()
                .0
                .and_then(|caps| gst_video::VideoInfo::from_caps(caps).ok())
                .map_or(0, |info| info.size() as u32);
            query.add_allocation_pool(None::<&gst::BufferPool>, size, held, 0);
        }
        for (i, (pool, size, min, max)) in pools.into_iter().enumerate() {
            let need = min.max(held);
            let max = if max == 0 { 0 } else { max.max(need) };
            query.set_nth_allocation_pool(i as u32, pool.as_ref(), size, need, max);
        }
    }
}
