//! The sandbox pool: at most `max_concurrent` runs at once, a bounded queue with a timeout.
//!
//! A caller past the queue bound, or one that waited past the queue timeout, gets a "busy"
//! error at once: the server never hangs a request indefinitely.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::PoolConfig;

/// Why a run could not get a slot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("server busy: {active} runs active and the queue is full ({waiting} waiting, POOL_QUEUE_SIZE={queue}); retry later")]
    QueueFull {
        active: usize,
        waiting: usize,
        queue: usize,
    },
    #[error("server busy: no sandbox slot became free within {timeout_ms} ms (POOL_MAX_CONCURRENT={max}, POOL_QUEUE_TIMEOUT_MS={timeout_ms}); retry later")]
    QueueTimeout { timeout_ms: u64, max: usize },
}

/// Snapshot of the pool for `health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub active: usize,
    pub waiting: usize,
    pub max: usize,
}

/// Counting limiter shared by all requests.
pub struct Pool {
    cfg: PoolConfig,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    active: Arc<AtomicUsize>,
}

/// Held for the duration of one run; frees the slot when dropped.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    active: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Decrements the waiting count however the wait ends (slot, timeout, or cancellation).
struct Waiting<'a>(&'a AtomicUsize);
impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Pool {
    pub fn new(cfg: PoolConfig) -> Self {
        Pool {
            slots: Arc::new(Semaphore::new(cfg.max_concurrent)),
            cfg,
            waiting: AtomicUsize::new(0),
            active: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats {
            active: self.active.load(Ordering::SeqCst),
            waiting: self.waiting.load(Ordering::SeqCst),
            max: self.cfg.max_concurrent,
        }
    }

    /// Get a slot now, or queue for one if the queue has room, up to the queue timeout.
    pub async fn acquire(&self) -> Result<Slot, PoolError> {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let before = self.waiting.fetch_add(1, Ordering::SeqCst);
                let _w = Waiting(&self.waiting);
                if before >= self.cfg.queue_size {
                    return Err(PoolError::QueueFull {
                        active: self.active.load(Ordering::SeqCst),
                        waiting: before,
                        queue: self.cfg.queue_size,
                    });
                }
                let wait = Duration::from_millis(self.cfg.queue_timeout_ms);
                match tokio::time::timeout(wait, self.slots.clone().acquire_owned()).await {
                    Ok(Ok(p)) => p,
                    _ => {
                        return Err(PoolError::QueueTimeout {
                            timeout_ms: self.cfg.queue_timeout_ms,
                            max: self.cfg.max_concurrent,
                        })
                    }
                }
            }
        };
        self.active.fetch_add(1, Ordering::SeqCst);
        Ok(Slot {
            _permit: permit,
            active: self.active.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queue_bound_and_timeout() {
        let pool = Arc::new(Pool::new(PoolConfig {
            max_concurrent: 1,
            queue_size: 1,
            queue_timeout_ms: 200,
            prewarm: 0,
        }));
        let first = pool.acquire().await.unwrap();
        assert_eq!(pool.stats().active, 1);
        let p2 = pool.clone();
        let queued = tokio::spawn(async move { p2.acquire().await.map(|_| ()) });
        while pool.stats().waiting == 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            pool.acquire().await,
            Err(PoolError::QueueFull { .. })
        ));
        assert!(matches!(
            queued.await.unwrap(),
            Err(PoolError::QueueTimeout { .. })
        ));
        assert_eq!(pool.stats().waiting, 0);
        drop(first);
        assert_eq!(pool.stats().active, 0);
        let _again = pool.acquire().await.unwrap();
    }
}
