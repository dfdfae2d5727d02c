//! Concurrency end to end: the bounded queue, "busy" errors, 50 requests at once, cancellation.

use std::time::Duration;

use crate::mcp_support::*;
use serde_json::{json, Value};

async fn pool_stats(c: &Client) -> (u64, u64, u64) {
    let h = c.call("health", json!({})).await;
    let p = &sc(&h)["connectionPool"];
    (
        p["active"].as_u64().unwrap(),
        p["waiting"].as_u64().unwrap(),
        p["max"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_full_and_queue_timeout_give_busy_then_cancel_kills_the_sandbox() {
    let env = ServerEnv::new()
        .set("POOL_MAX_CONCURRENT", "1")
        .set("POOL_QUEUE_SIZE", "1")
        .set("POOL_QUEUE_TIMEOUT_MS", "1500");
    let c = std::sync::Arc::new(env.start().await);
    assert_eq!(pool_stats(&c).await, (0, 0, 1));

    // A holds the only slot until it is cancelled.
    let ca = c.clone();
    let a = tokio::spawn(async move {
        ca.call(
            "executePython",
            json!({"code": "import time\nprint('A', flush=True)\ntime.sleep(120)", "timeoutMs": 150000}),
        )
        .await
    });
    assert!(
        eventually(Duration::from_secs(60), || !c
            .launcher_children()
            .is_empty())
        .await,
        "run A never started a sandbox"
    );
    let launchers = c.launcher_children();
    assert_eq!(pool_stats(&c).await, (1, 0, 1));

    // B waits in the queue (the only queue place) ...
    let cb = c.clone();
    let b = tokio::spawn(async move {
        cb.call("executePython", json!({"code": "print('B')"}))
            .await
    });
    let mut waited = false;
    for _ in 0..200 {
        if pool_stats(&c).await.1 == 1 {
            waited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(waited, "B never showed up as waiting");
    // ... so C finds the queue full: busy at once.
    let r = c.call("executePython", json!({"code": "print('C')"})).await;
    assert_eq!(r.is_error, Some(true));
    assert!(
        error(&r).contains("server busy") && error(&r).contains("queue is full"),
        "{}",
        error(&r)
    );
    assert_eq!(sc(&r)["errorType"], "execution");
    // B gives up after the queue timeout with a busy error, not a hang.
    let r = b.await.unwrap();
    assert!(
        error(&r).contains("server busy") && error(&r).contains("POOL_QUEUE_TIMEOUT_MS=1500"),
        "{}",
        error(&r)
    );

    // Cancelling A (dropping the pending call sends notifications/cancelled) kills its sandbox.
    a.abort();
    let _ = a.await;
    assert!(
        eventually(Duration::from_secs(30), || launchers
            .iter()
            .all(|p| !alive(*p)))
        .await,
        "sandbox-run {launchers:?} still alive after cancellation"
    );
    assert!(eventually(Duration::from_secs(10), || c.launcher_children().is_empty()).await);
    // The slot is free again.
    let r = c
        .call("executePython", json!({"code": "print('after')"}))
        .await;
    assert_eq!(output(&r), "after\n", "{}", text(&r));
    assert_eq!(pool_stats(&c).await, (0, 0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_requests_at_once_all_answered() {
    let env = ServerEnv::new().set("POOL_MAX_CONCURRENT", "4");
    let c = std::sync::Arc::new(env.start().await);
    let mut handles = Vec::new();
    for i in 0..50 {
        let c = c.clone();
        handles.push(tokio::spawn(async move {
            let r = c
                .call("executePython", json!({"code": format!("print({i} * 2)")}))
                .await;
            (i, r)
        }));
    }
    for h in handles {
        let (i, r) = h.await.unwrap();
        assert_eq!(r.is_error, Some(false), "request {i}: {}", text(&r));
        assert_eq!(sc(&r)["output"], Value::from(format!("{}\n", i * 2)));
    }
    assert_eq!(pool_stats(&c).await, (0, 0, 4));
}
