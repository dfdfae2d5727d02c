//! The client pool on its own, against the real test upstream: tool-list refresh on
//! `notifications/tools/list_changed`, the in-flight bound, and an HTTP upstream.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::bridge_support::*;
use crate::mcp_support::eventually;
use code_executor_mcp::bridge::upstream::Upstreams;
use code_executor_mcp::config::{Transport, UpstreamSettings, UpstreamSpec};
use serde_json::Map;

fn pool(settings: UpstreamSettings) -> Arc<Upstreams> {
    let spec = UpstreamSpec {
        name: "t".into(),
        transport: Transport::Stdio {
            command: test_upstream().display().to_string(),
            args: vec![],
            env: Default::default(),
        },
        origin: PathBuf::from("test"),
    };
    Arc::new(Upstreams::new(vec![spec], vec![], settings))
}

fn args(v: serde_json::Value) -> Map<String, serde_json::Value> {
    v.as_object().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_list_is_refreshed_on_list_changed() {
    let p = pool(UpstreamSettings::default());
    p.connect_all().await;
    let t = p.get("t").unwrap();
    assert!(!t.tools().iter().any(|x| x.name == "fresh"));
    let r = t
        .call("register", args(serde_json::json!({"name": "fresh"})))
        .await
        .expect("register");
    assert_eq!(r.content[0].as_text().unwrap().text, "registered");
    assert!(
        eventually(Duration::from_secs(30), || t
            .tools()
            .iter()
            .any(|x| x.name == "fresh"))
        .await,
        "the cache was not refreshed"
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_are_bounded_per_upstream() {
    let p = pool(UpstreamSettings {
        max_in_flight: 2,
        ..UpstreamSettings::default()
    });
    p.connect_all().await;
    let t = p.get("t").unwrap().clone();
    // Three hung calls: two hold the slots, the third waits for one.
    let hung: Vec<_> = (0..3)
        .map(|_| {
            let t = t.clone();
            tokio::spawn(async move {
                t.call_within("hang", Map::new(), Duration::from_secs(600))
                    .await
            })
        })
        .collect();
    assert!(eventually(Duration::from_secs(30), || t.calls_in_flight() == 2).await);
    // A call that cannot get a slot within its limit says so.
    let e = t
        .call_within(
            "echo",
            args(serde_json::json!({"text": "x"})),
            Duration::from_millis(300),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("waiting for a free call slot (2 calls in flight)"),
        "{e}"
    );
    assert_eq!(t.calls_in_flight(), 2);
    // Abandoned calls free their slots (and rmcp cancels them upstream).
    for h in hung {
        h.abort();
    }
    assert!(eventually(Duration::from_secs(30), || t.calls_in_flight() == 0).await);
    let r = t
        .call("echo", args(serde_json::json!({"text": "again"})))
        .await
        .unwrap();
    assert_eq!(r.content[0].as_text().unwrap().text, "again");
    p.shutdown().await;
}
