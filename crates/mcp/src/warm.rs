//! Prewarmed sandboxes: the interpreter's start taken off the critical path.
//!
//! A warm entry is a `sandbox-run` launched ahead of time, its interpreter started and blocked
//! reading its code from stdin. A run whose launch would be identical (same runtime, no extra
//! permissions) takes one, sends its code, and the sandbox ends with that run: each entry is
//! used exactly once, so nothing passes from one run to the next. Anything else gets a fresh
//! launch, as before. The pool refills in the background, recycles entries that waited too long,
//! and is bounded: at most `per_runtime` entries for each runtime (0 turns it off).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::runtime::GuestRuntime;
use crate::sandbox::Launched;

/// How long a warm sandbox may wait before it is recycled (its launcher's own timeout is this
/// plus the longest run, so it never fires first).
pub const MAX_IDLE: Duration = Duration::from_secs(120);

/// One prewarmed sandbox and what belongs to it on the host.
pub struct Warm<B> {
    pub launched: Launched,
    /// The run's private host directory (report, bridge socket); removed by the taker.
    pub run_dir: PathBuf,
    /// Per-run state prepared with the sandbox (the tool bridge).
    pub extra: B,
}

/// Makes one warm entry for a runtime.
pub type WarmFactory<B> = Arc<dyn Fn(GuestRuntime) -> Result<Warm<B>, String> + Send + Sync>;

/// The pool.
pub struct WarmPool<B> {
    per_runtime: usize,
    runtimes: Vec<GuestRuntime>,
    entries: Mutex<HashMap<GuestRuntime, VecDeque<Warm<B>>>>,
    wake: Notify,
    /// Set by `drain`: no entry is added or taken after it.
    closed: std::sync::atomic::AtomicBool,
}

impl<B: Send + 'static> WarmPool<B> {
    pub fn new(per_runtime: usize, runtimes: Vec<GuestRuntime>) -> Arc<WarmPool<B>> {
        Arc::new(WarmPool {
            per_runtime,
            runtimes,
            entries: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub fn enabled(&self) -> bool {
        self.per_runtime > 0 && !self.runtimes.is_empty()
    }

    /// A live warm sandbox for `runtime`, if one is ready. Dead ones are dropped on the way.
    pub fn take(&self, runtime: GuestRuntime) -> Option<Warm<B>> {
        if self.is_closed() {
            return None;
        }
        let mut taken = None;
        if let Ok(mut map) = self.entries.lock() {
            if let Some(q) = map.get_mut(&runtime) {
                while let Some(mut w) = q.pop_front() {
                    if w.launched.is_alive() {
                        taken = Some(w);
                        break;
                    }
                    let _ = std::fs::remove_dir_all(&w.run_dir);
                }
            }
        }
        taken
    }

    /// Starts refilling. The taker calls it when its run has ended: a refill launches an
    /// interpreter, and doing that while the run executes would slow the run down.
    pub fn refill_soon(&self) {
        self.wake.notify_one();
    }

    /// Warm entries ready, per runtime name (for `health`).
    pub fn counts(&self) -> serde_json::Value {
        let map = self.entries.lock();
        let mut out = serde_json::Map::new();
        for r in &self.runtimes {
            let n = map
                .as_ref()
                .map(|m| m.get(r).map_or(0, VecDeque::len))
                .unwrap_or(0);
            out.insert(r.name().to_string(), serde_json::json!(n));
        }
        serde_json::json!({"perRuntime": self.per_runtime, "ready": out})
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Keeps the pool full until `shutdown` (the owner then calls [`WarmPool::drain`]).
    pub fn spawn_maintenance(
        self: &Arc<Self>,
        factory: WarmFactory<B>,
        shutdown: CancellationToken,
    ) {
        if !self.enabled() {
            return;
        }
        let pool = Arc::clone(self);
        tokio::spawn(async move {
            while !shutdown.is_cancelled() && !pool.is_closed() {
                pool.refill(&factory).await;
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = pool.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
        });
    }

    async fn refill(&self, factory: &WarmFactory<B>) {
        // Recycle entries that waited too long or died; then top up each runtime.
        let mut stale = Vec::new();
        if let Ok(mut map) = self.entries.lock() {
            for q in map.values_mut() {
                let (keep, old): (Vec<_>, Vec<_>) = q
                    .drain(..)
                    .partition(|w: &Warm<B>| w.launched.age() < MAX_IDLE);
                q.extend(keep);
                stale.extend(old);
            }
        }
        for w in stale {
            stop(w).await;
        }
        for &r in &self.runtimes {
            loop {
                let have = self
                    .entries
                    .lock()
                    .map(|m| m.get(&r).map_or(0, VecDeque::len))
                    .unwrap_or(usize::MAX);
                if have >= self.per_runtime {
                    break;
                }
                // Called on this runtime worker thread on purpose: sandbox-run is started with
                // --die-with-parent, whose signal fires when the spawning *thread* exits, and
                // worker threads live as long as the server (blocking-pool threads do not).
                match factory(r) {
                    Ok(w) if self.is_closed() => {
                        stop(w).await;
                        break;
                    }
                    Ok(w) => {
                        if let Ok(mut map) = self.entries.lock() {
                            map.entry(r).or_default().push_back(w);
                        }
                    }
                    Err(e) => {
                        tracing::warn!("prewarm {}: {e}", r.name());
                        break;
                    }
                }
            }
        }
    }

    /// Closes the pool and stops every warm sandbox, waiting for each launcher to clean up
    /// (at shutdown).
    pub async fn drain(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        let all: Vec<Warm<B>> = self
            .entries
            .lock()
            .map(|mut m| m.values_mut().flat_map(|q| q.drain(..)).collect())
            .unwrap_or_default();
        let stops: Vec<_> = all.into_iter().map(stop).collect();
        for s in stops {
            s.await;
        }
    }
}

/// Ends a warm sandbox that will not be used: sandbox-run kills it and cleans up on SIGTERM.
async fn stop<B>(w: Warm<B>) {
    w.launched.stop().await;
    let _ = std::fs::remove_dir_all(&w.run_dir);
}
