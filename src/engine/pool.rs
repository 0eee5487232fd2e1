//! Engines shared by many streams (`derain serve`: one engine set for every camera).
//!
//! An engine holds what is costly to have twice: the networks of `full` mode, a CUDA context
//! and its compiled kernels, the frame-sized buffers. What belongs to one stream (the smoothed
//! atmospheric light, the temporal history) stays in its [`Pipeline`](crate::Pipeline), which
//! borrows an engine from the pool for each frame ([`Pipeline::with_pool`](crate::Pipeline::with_pool)).
//! A pool of n engines runs up to n frames at once; on CUDA engine i opens device
//! `devices[i % devices.len()]`, so a pool spreads streams over the GPUs. A stream goes back to
//! the engine it used last when that one is free, so buffers sized for its frames are reused.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use super::Engine;
use crate::config::Config;
use crate::error::Result;

/// A fixed set of engines built from one configuration.
#[derive(Debug)]
pub struct EnginePool {
    /// `None` while an engine is lent out.
    slots: Mutex<Vec<Option<Engine>>>,
    returned: Condvar,
    config: Config,
    name: &'static str,
    count: usize,
}

/// An engine borrowed from a pool; it goes back when dropped.
#[derive(Debug)]
pub struct PooledEngine<'a> {
    pool: &'a EnginePool,
    index: usize,
    engine: Option<Engine>,
}

impl EnginePool {
    /// Builds `count` engines (≥ 1) for `config`. On CUDA, engine i opens device
    /// `config.devices[i % len]` (device 0 when the list is empty).
    pub fn new(config: &Config, count: usize) -> Result<Self> {
        let slots: Vec<Option<Engine>> = super::replicas(config, count)?
            .into_iter()
            .map(Some)
            .collect();
        let name = slots[0].as_ref().map_or("cpu", Engine::name);
        Ok(Self {
            slots: Mutex::new(slots),
            returned: Condvar::new(),
            config: config.clone(),
            name,
            count,
        })
    }

    /// Number of engines.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Never true: a pool has at least one engine.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// `"cpu"` or `"cuda"`.
    pub fn backend_name(&self) -> &'static str {
        self.name
    }

    /// The configuration the engines were built from (mode, networks, devices).
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Option<Engine>>> {
        // An engine is only taken out and put back under the lock, so a panic elsewhere
        // leaves the list whole.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Borrows an engine, waiting while all are busy: `prefer` when it is free, else the first
    /// free one.
    pub fn acquire(&self, prefer: usize) -> PooledEngine<'_> {
        let mut slots = self.lock();
        loop {
            let free = if slots.get(prefer).is_some_and(Option::is_some) {
                Some(prefer)
            } else {
                slots.iter().position(Option::is_some)
            };
            if let Some(index) = free {
                let engine = slots[index].take();
                return PooledEngine {
                    pool: self,
                    index,
                    engine,
                };
            }
            slots = self
                .returned
                .wait(slots)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl PooledEngine<'_> {
    /// Which engine of the pool this is.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The engine.
    pub fn engine(&mut self) -> &mut Engine {
        self.engine.as_mut().expect("held until drop")
    }
}

impl Drop for PooledEngine<'_> {
    fn drop(&mut self) {
        let mut slots = self.pool.lock();
        slots[self.index] = self.engine.take();
        drop(slots);
        self.pool.returned.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Backend;
    use std::sync::Arc;

    fn cpu() -> Config {
        Config {
            backend: Backend::Cpu,
            ..Config::default()
        }
    }

    #[test]
    fn lends_each_engine_once_and_prefers_the_last_one() {
        let pool = EnginePool::new(&cpu(), 2).unwrap();
        let a = pool.acquire(1);
        assert_eq!(a.index(), 1);
        let b = pool.acquire(1);
        assert_eq!(b.index(), 0, "engine 1 is lent out");
        drop(a);
        assert_eq!(pool.acquire(0).index(), 1, "engine 0 is still lent out");
    }

    #[test]
    fn waits_for_a_returned_engine() {
        let pool = Arc::new(EnginePool::new(&cpu(), 1).unwrap());
        let held = pool.acquire(0);
        let p = pool.clone();
        let waiter = std::thread::spawn(move || p.acquire(0).index());
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!waiter.is_finished(), "the only engine is lent out");
        drop(held);
        assert_eq!(waiter.join().unwrap(), 0);
    }

    #[test]
    fn refuses_an_empty_pool_and_a_bad_config() {
        assert!(EnginePool::new(&cpu(), 0).is_err());
        let bad = Config {
            strength: 2.0,
            ..cpu()
        };
        assert!(EnginePool::new(&bad, 1).is_err());
    }
}
