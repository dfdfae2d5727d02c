//! Replays the fuzz targets' inputs in a plain `cargo test`.
//!
//! The checks are the fuzz targets' own (`fuzz/src/checks.rs`, included below), so every seed
//! under `fuzz/seeds/<target>/` and every crash input pasted into a `#[test]` here goes through
//! exactly the invariants the fuzzer asserts. To turn a crash into a regression test: minimize
//! it (`scripts/fuzz.sh` prints how), then add a test calling `checks::<target>(b"...")` with
//! the minimized bytes.

#![deny(unsafe_code)]

use std::path::PathBuf;

#[path = "../../../fuzz/src/checks.rs"]
mod checks;

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .join("fuzz/seeds")
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed dir {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("dir entry").path();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, bytes)
        })
        .collect();
    out.sort();
    assert!(out.len() >= 5, "too few seeds in {}", dir.display());
    out
}

fn replay(target: &str, check: fn(&[u8])) {
    for (path, bytes) in seeds(target) {
        eprintln!("{target}: {}", path.display());
        check(&bytes);
    }
}

#[test]
fn policy_seeds() {
    replay("policy", checks::policy);
    // The seeds reach the round-trip invariant, not only the error path.
    for (path, bytes) in seeds("policy") {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let parsed = code_executor::Policy::parse(&String::from_utf8_lossy(&bytes), "fuzz.toml");
        assert_eq!(
            parsed.is_ok(),
            !name.starts_with("bad-"),
            "{name}: {parsed:?}"
        );
    }
}

#[test]
fn host_seeds() {
    replay("host", checks::host);
}

#[test]
fn mcp_args_seeds() {
    replay("mcp_args", checks::mcp_args);
}

/// Inputs that exercise each invariant directly, so a weakened check or parser shows here.
#[test]
fn host_invariants_on_known_spellings() {
    // Loopback, private and metadata addresses in the spellings a resolver accepts.
    for input in [
        "127.0.0.1 80\n*\n--\n127.0.0.1\n",
        "0x7f.1 80\n*\n--\n",
        "2130706433 80\n*\n--\n",
        "[::ffff:127.0.0.1] 80\n*\n--\n",
        "x.example.com 443\n*.example.com\n--\n10.0.0.1\n",
        "169.254.169.254 80\n169.254.169.254\n*\n--\n",
        "[::ffff:a9fe:a9fe] 80\n[::ffff:a9fe:a9fe]\n--\n",
        "0 80\n0.0.0.0\n--\n",
        "1.1 443\n1.0.0.1\n--\n",
    ] {
        checks::host(input.as_bytes());
    }
    // Raw address bytes: 127.x, ::ffff:127.x, 169.254.169.254, fe80::.
    for raw in [
        &[127u8, 0, 0, 1][..],
        &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1][..],
        &[169, 254, 169, 254][..],
        &[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1][..],
        &[][..],
    ] {
        checks::host(raw);
    }
}

#[test]
fn mcp_args_invariants_on_known_arguments() {
    for input in [
        r#"{"code": "x", "timeoutMs": 1000}"#,
        r#"{"code": "x", "timeoutMs": 18446744073709551615}"#,
        r#"{"code": "x", "timeoutMs": -1.0}"#,
        r#"{"code": "x", "runtime": "deno"}"#,
        r#"{"code": "x", "permissions": {"net": ["*"]}}"#,
        r#"{"code": "x", "permissions": {"net": ["10.0.0.5:22"]}}"#,
        r#"{"code": "x", "permissions": {"read": ["/usr/bin/../../etc"]}}"#,
        r#"{"code": "x", "allowedTools": ["mcp__srv__get_x*"]}"#,
        "mcp__a__b",
        "",
        "\u{0}",
    ] {
        checks::mcp_args(input.as_bytes());
    }
}

#[test]
fn policy_invariants_on_known_texts() {
    for input in [
        "",
        "extends = \"default\"",
        "extends = \"default\"\n[limits]\nmemory = \"16M\"\n",
        "extends = \"default\"\n[env]\n\"A B\" = \"\\u0000\"\n",
        "extends = \"default\"\n[filesystem]\nread_only = [\"/a\\\"b\"]\n",
        "[limits]\nmemory = \"1k\"\n",
        "x = 18446744073709551615k",
        "1ib\n0G\n 7 M \n17179869184G\n",
    ] {
        checks::policy(input.as_bytes());
    }
}
