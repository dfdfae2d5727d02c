//! What the fuzz targets check, one function per target, each taking the raw fuzz input.
//!
//! This file is compiled twice: by the fuzz crate (`fuzz/src/lib.rs`) and, through `#[path]`,
//! by `tests/fuzz_regressions.rs` in the main crate, so a crash input replays in `cargo test`
//! exactly as the fuzzer ran it. It may therefore use only what the main crate's tests have:
//! `code_executor`, `code_executor_mcp`, `serde_json`, `libc` and std.
//!
//! A check fails by panicking: every `assert!` here is an invariant of the code under test,
//! and any panic inside that code is a bug too (errors must be `Err`).

use std::ffi::CString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Component, Path, PathBuf};

use code_executor::net::addr::{classify, is_cloud_metadata_name, parse_ip_literal};
use code_executor::net::pattern::{narrow, Host, HostPattern, NetPolicy};
use code_executor::policy::{Policy, Size};
use code_executor_mcp::config::Config;
use code_executor_mcp::params::{check_net, parse_execute, JsRuntime, COMMON_KEYS};
use code_executor_mcp::paths::resolve_all;
use code_executor_mcp::patterns::{scan, Language};
use code_executor_mcp::tool_names::AllowedToolPattern;
use serde_json::{json, Map, Value};

// ---------------------------------------------------------------------------------------------
// policy
// ---------------------------------------------------------------------------------------------

/// `Policy::parse` and `Size::parse` on arbitrary text (invalid UTF-8 is replaced).
///
/// Invariants: no panic; a policy that parses validates, and its `--explain` rendering
/// (`to_toml`) parses back to the same policy; a size that parses prints back to itself.
pub fn policy(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match Policy::parse(&text, "fuzz.toml") {
        Ok(p) => {
            assert!(p.validate().is_ok(), "parsed policy fails validate: {p:?}");
            let rendered = p.to_toml();
            let again = Policy::parse(&rendered, "fuzz.toml").unwrap_or_else(|e| {
                panic!("to_toml output does not parse back: {e}\n--- rendered ---\n{rendered}")
            });
            assert_eq!(
                again, p,
                "to_toml round trip changed the policy:\n{rendered}"
            );
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with("fuzz.toml"),
                "error does not name the file: {msg}"
            );
        }
    }
    size(&text);
    for line in text.lines().take(64) {
        size(line);
        if let Some((_, value)) = line.split_once('=') {
            size(value.trim().trim_matches('"'));
        }
    }
}

fn size(s: &str) {
    if let Ok(sz) = Size::parse(s) {
        let shown = sz.to_string();
        assert_eq!(
            Size::parse(&shown),
            Ok(sz),
            "Size {s:?} prints as {shown:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// host
// ---------------------------------------------------------------------------------------------

/// The egress allowlist's parsers and decisions.
///
/// Input: addresses built from the first 16 raw bytes; then the text (lossy UTF-8) as lines:
/// line 0 is `HOST[ PORT]`, the lines up to a `--` line are allowlist patterns, the lines after
/// it are resolved addresses. Every line also goes through each parser on its own.
pub fn host(data: &[u8]) {
    let mut raw = [0u8; 16];
    let n = data.len().min(16);
    raw[..n].copy_from_slice(&data[..n]);
    let v4 = Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]);
    let v6 = Ipv6Addr::from(raw);
    address(IpAddr::V4(v4));
    address(IpAddr::V6(v6));

    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text.split('\n').take(64).collect();
    for line in &lines {
        host_string(line);
    }

    let (first, rest) = match lines.split_first() {
        Some(x) => x,
        None => return,
    };
    let (host_part, port) = match first.rsplit_once(' ') {
        Some((h, p)) => (h, p.parse::<u16>().unwrap_or(443)),
        None => (*first, 443),
    };
    let Ok(target) = Host::parse(host_part) else {
        return;
    };
    let sep = rest.iter().position(|l| *l == "--").unwrap_or(rest.len());
    let pattern_lines = &rest[..sep];
    let mut addrs: Vec<IpAddr> = rest
        .get(sep + 1..)
        .unwrap_or(&[])
        .iter()
        .filter_map(|l| parse_ip_literal(l))
        .collect();
    if let Host::Ip(ip) = &target {
        addrs.push(*ip);
    }
    let patterns: Vec<HostPattern> = pattern_lines
        .iter()
        .filter_map(|l| HostPattern::parse(l).ok())
        .collect();

    // The operator's policy, exactly as written (errors are fine, panics are not).
    let _ = NetPolicy::parse(pattern_lines.iter());
    let operator = NetPolicy::from_patterns(patterns.clone());
    decision(&operator, &target, port, &addrs);

    // A wildcard-only policy never reaches a non-public address, whatever the host says.
    let any = NetPolicy::parse(["*"]).expect("`*` is a valid pattern");
    if any.decide(&target, port, &addrs).is_ok() {
        for a in &addrs {
            assert!(
                classify(*a).is_public(),
                "`*` admitted {target}:{port} resolving to non-public {a}"
            );
        }
    }

    // A run's request narrowed by a `*` ceiling stays public-only too (the DNS-to-LAN rule).
    if let Ok(narrowed) = narrow(&patterns, &any) {
        if narrowed.decide(&target, port, &addrs).is_ok() {
            for a in &addrs {
                assert!(
                    classify(*a).is_public(),
                    "request narrowed by `*` admitted {target}:{port} -> non-public {a}"
                );
            }
        }
    }

    // Narrowing by the operator's policy never admits more than that policy does.
    let (requested, ceiling) = patterns.split_at(patterns.len() / 2);
    let ceiling = NetPolicy::from_patterns(ceiling.to_vec());
    if let Ok(narrowed) = narrow(requested, &ceiling) {
        if narrowed.admit(&target, port).is_ok() {
            assert!(
                ceiling.admit(&target, port).is_ok(),
                "narrowed policy admits {target}:{port}, its ceiling does not"
            );
        }
        if narrowed.decide(&target, port, &addrs).is_ok() {
            assert!(
                ceiling.decide(&target, port, &addrs).is_ok(),
                "narrowed policy admits {target}:{port} -> {addrs:?}, its ceiling does not"
            );
        }
    }
}

/// Invariants of one `decide` (and `admit`) on an operator policy.
fn decision(policy: &NetPolicy, target: &Host, port: u16, addrs: &[IpAddr]) {
    let admitted = policy.admit(target, port);
    let decided = policy.decide(target, port, addrs);
    if let Err(e) = &decided {
        let _ = e.to_string();
    }
    let Ok(adm) = decided else {
        return;
    };
    assert!(admitted.is_ok(), "decide admitted what admit refused");
    assert!(!addrs.is_empty(), "decide admitted with no address");
    assert!(
        policy.patterns().any(|p| p.matches(target, port)),
        "{target}:{port} admitted though no pattern matches"
    );
    if let Host::Name(name) = target {
        assert!(
            !is_cloud_metadata_name(name),
            "metadata name {name} admitted"
        );
    }
    let chosen = HostPattern::parse(adm.pattern())
        .unwrap_or_else(|e| panic!("admission pattern {:?} does not parse: {e}", adm.pattern()));
    for a in addrs {
        let class = classify(*a);
        assert!(!class.is_cloud_metadata(), "metadata address {a} admitted");
        if !class.is_public() {
            assert!(
                chosen.is_explicit(),
                "non-public {a} admitted through wildcard pattern {chosen}"
            );
        }
    }
}

/// One string through every host parser.
fn host_string(s: &str) {
    let literal = parse_ip_literal(s);
    if let Some(ip) = literal {
        address(ip);
        if let IpAddr::V4(v4) = ip {
            if v4.octets()[0] == 127 {
                assert!(!classify(ip).is_public(), "{s:?} = {v4} classified public");
            }
        }
    }
    // Whatever std parses as an address, we parse as the same address.
    if let Ok(std_ip) = s.parse::<IpAddr>() {
        assert_eq!(literal, Some(std_ip), "std parses {s:?} as {std_ip}");
    }

    let host = Host::parse(s);
    if let Ok(h) = &host {
        let shown = h.to_string();
        assert_eq!(
            Host::parse(&shown).as_ref(),
            Ok(h),
            "Host {s:?} shows as {shown:?}"
        );
        if let Host::Ip(ip) = h {
            assert_eq!(*ip, ip.to_canonical(), "Host {s:?} is not canonical");
        }
    }
    let pattern = HostPattern::parse(s);
    match &pattern {
        Ok(p) => {
            let shown = p.to_string();
            assert_eq!(
                HostPattern::parse(&shown).as_ref(),
                Ok(p),
                "pattern {s:?} shows as {shown:?}"
            );
            assert!(p.covers(p), "pattern {p} does not cover itself");
            if let Some(ip) = literal {
                assert!(
                    !classify(ip).is_cloud_metadata(),
                    "pattern {s:?} names metadata address {ip}"
                );
            }
            // The same string as a request host is matched by it (one normalisation for both).
            if let (Ok(h), None) = (&host, p.port()) {
                assert!(
                    p.matches(h, 80),
                    "pattern {p} does not match host {h} (from {s:?})"
                );
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }

    // The resolver (getaddrinfo) must never see an address we took for a name: it would be
    // matched as a name but connect to the address. And where both read an address, it is the
    // same one.
    if let Some(sys) = system_numeric_host(s) {
        if let Ok(Host::Name(name)) = &host {
            panic!("{s:?} is a Host::Name({name:?}) but getaddrinfo reads the address {sys}");
        }
        if let Ok(Host::Ip(ip)) = &host {
            assert_eq!(*ip, sys.to_canonical(), "{s:?}: Host::parse vs getaddrinfo");
        }
        if let Some(ip) = literal {
            assert_eq!(ip, sys, "{s:?}: parse_ip_literal vs getaddrinfo");
        }
    }
}

/// What glibc's resolver reads as a numeric host (`AI_NUMERICHOST`: never a DNS query).
///
/// The one FFI call of the checks: the point is to compare against the C library itself,
/// which no safe wrapper in our dependencies exposes with `AI_NUMERICHOST`.
#[allow(unsafe_code)]
fn system_numeric_host(s: &str) -> Option<IpAddr> {
    let c = CString::new(s).ok()?;
    // SAFETY: a zeroed addrinfo is a valid "no hints" value; the fields set are plain ints.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = libc::AF_UNSPEC;
    hints.ai_flags = libc::AI_NUMERICHOST;
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: valid C string, valid hints, out pointer freed below with freeaddrinfo.
    let rc = unsafe { libc::getaddrinfo(c.as_ptr(), std::ptr::null(), &hints, &mut res) };
    if rc != 0 || res.is_null() {
        return None;
    }
    // SAFETY: on success `res` points at a list whose ai_addr matches ai_family.
    let ip = unsafe {
        let ai = &*res;
        match ai.ai_family {
            libc::AF_INET => {
                let sin = &*(ai.ai_addr as *const libc::sockaddr_in);
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))))
            }
            libc::AF_INET6 => {
                let sin6 = &*(ai.ai_addr as *const libc::sockaddr_in6);
                Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
            }
            _ => None,
        }
    };
    // SAFETY: `res` came from a successful getaddrinfo and is freed once.
    unsafe { libc::freeaddrinfo(res) };
    ip
}

/// Invariants of one address: its spellings parse back, and its class agrees with std's.
fn address(ip: IpAddr) {
    let class = classify(ip);
    let _ = class.to_string();
    match ip {
        IpAddr::V4(v4) => {
            assert_eq!(
                parse_ip_literal(&v4.to_string()),
                Some(ip),
                "{v4} does not round-trip"
            );
            if v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || v4.octets()[0] == 0
            {
                assert!(!class.is_public(), "{v4} classified public");
            }
            // The same address embedded in IPv6 is classified alike (no bypass by mapping).
            let mapped = v4.to_ipv6_mapped();
            assert_eq!(
                classify(IpAddr::V6(mapped)).is_public(),
                class.is_public(),
                "{v4} and {mapped} classified differently"
            );
            assert_eq!(
                Host::parse(&format!("[{mapped}]")),
                Ok(Host::Ip(ip)),
                "[{mapped}] is not the host {v4}"
            );
        }
        IpAddr::V6(v6) => {
            assert_eq!(
                parse_ip_literal(&v6.to_string()),
                Some(ip),
                "{v6} does not round-trip"
            );
            assert_eq!(
                parse_ip_literal(&format!("[{v6}]")),
                Some(ip),
                "[{v6}] does not round-trip"
            );
            if v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
            {
                assert!(!class.is_public(), "{v6} classified public");
            }
            if let Some(v4) = v6.to_ipv4_mapped() {
                assert_eq!(
                    class.is_public(),
                    classify(IpAddr::V4(v4)).is_public(),
                    "{v6} and {v4} classified differently"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// mcp_args
// ---------------------------------------------------------------------------------------------

/// The server ceiling the MCP checks run under: some tools, some hosts, one root.
fn mcp_config() -> Config {
    let allow_network = vec![
        "*.example.com".to_string(),
        "api.github.com:443".to_string(),
        "10.0.0.5".to_string(),
    ];
    Config {
        allowed_tools: Some(
            ["mcp__fs__*", "mcp__git__log", "mcp__srv__get_*"]
                .iter()
                .map(|s| AllowedToolPattern::parse(s).expect("valid ceiling pattern"))
                .collect(),
        ),
        net_ceiling: NetPolicy::parse(&allow_network).expect("valid ceiling"),
        allow_network,
        max_code_size: 4096,
        ..Config::default()
    }
}

/// The `arguments` of executeTypescript/executePython, and what the server does with them
/// before a run: tool names, `permissions.net` narrowing, path checks, the pattern scan.
///
/// The input is read as JSON when it is JSON: an object is the whole `arguments`, and any value
/// is also tried under each known key next to a valid `code`. Otherwise (and also) the text is
/// put into every string slot of an otherwise valid request.
pub fn mcp_args(data: &[u8]) {
    let cfg = mcp_config();
    let _ = parse_execute(None, &cfg, true);
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        if let Value::Object(m) = &v {
            arguments(m, &cfg);
        }
        for key in COMMON_KEYS.iter().chain(&["runtime"]) {
            let mut m = Map::new();
            m.insert("code".into(), json!("print(1)"));
            m.insert((*key).into(), v.clone());
            arguments(&m, &cfg);
        }
        let mut strings = Vec::new();
        collect_strings(&v, &mut strings);
        for s in strings.iter().take(64) {
            string_slots(s, &cfg);
        }
    }
    let text = String::from_utf8_lossy(data);
    string_slots(&text, &cfg);
}

/// `s` in every string position of a request, and through the parsers on its own.
fn string_slots(s: &str, cfg: &Config) {
    tool_name(s);
    let m = json!({
        "code": s,
        "allowedTools": [s],
        "timeoutMs": s,
        "runtime": s,
        "permissions": {"read": [s], "write": [s], "net": [s]},
    });
    arguments(m.as_object().expect("object"), cfg);
    for (key, value) in [
        ("allowedTools", json!([s])),
        ("runtime", json!(s)),
        ("permissions", json!({"read": [s]})),
        ("permissions", json!({"write": [s]})),
        ("permissions", json!({"net": [s]})),
        ("permissions", json!({ s: [] })),
        (s, json!(true)),
    ] {
        let mut m = Map::new();
        m.insert("code".into(), json!(s));
        m.insert(key.into(), value);
        arguments(&m, cfg);
    }
}

fn collect_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| collect_strings(i, out)),
        Value::Object(m) => m.iter().for_each(|(k, i)| {
            out.push(k.clone());
            collect_strings(i, out)
        }),
        _ => {}
    }
}

/// One `arguments` object through `parse_execute` (both tools) and the checks after it.
fn arguments(m: &Map<String, Value>, cfg: &Config) {
    for typescript in [true, false] {
        let p = match parse_execute(Some(m), cfg, typescript) {
            Ok(p) => p,
            Err(e) => {
                assert!(!e.0.is_empty(), "empty error message for {m:?}");
                continue;
            }
        };
        assert!(!p.code.trim().is_empty(), "empty code accepted");
        assert!(p.code.len() <= cfg.max_code_size, "oversized code accepted");
        assert!(
            (1000..=cfg.max_timeout_ms).contains(&p.timeout_ms),
            "timeout {} accepted",
            p.timeout_ms
        );
        if !typescript {
            assert_eq!(p.js_runtime, None, "runtime accepted by executePython");
        }
        if let Some(rt) = p.js_runtime {
            assert!(matches!(rt, JsRuntime::Deno | JsRuntime::Node));
        }
        for t in &p.allowed_tools {
            assert!(
                cfg.allowed_tools.iter().flatten().any(|c| t.within(c)),
                "tool {t} accepted outside the ceiling"
            );
        }
        for list in [
            &p.permissions.read,
            &p.permissions.write,
            &p.permissions.net,
        ] {
            assert!(list.iter().all(|s| !s.is_empty()), "empty permission entry");
        }
        net_request(&p.permissions.net, &cfg.net_ceiling);
        for kind in ["read", "write"] {
            let requested = if kind == "read" {
                &p.permissions.read
            } else {
                &p.permissions.write
            };
            paths(kind, requested);
        }
        let lang = if typescript {
            Language::JavaScript
        } else {
            Language::Python
        };
        let _ = scan(&p.code, lang);
    }
}

/// The server's own `check_net` on `permissions.net`; when it accepts, everything the request
/// narrows to is covered by the ceiling.
fn net_request(requested: &[String], ceiling: &NetPolicy) {
    match check_net(requested, ceiling) {
        Ok(()) => {
            let patterns: Vec<HostPattern> = requested
                .iter()
                .filter(|r| !r.is_empty())
                .map(|r| HostPattern::parse(r).expect("check_net accepted it"))
                .collect();
            let narrowed = narrow(&patterns, ceiling).expect("check_net accepted it");
            for p in narrowed.patterns() {
                assert!(
                    ceiling.patterns().any(|c| c.covers(p)),
                    "narrowed pattern {p} not covered by the ceiling"
                );
            }
        }
        Err(e) => assert!(!e.is_empty(), "empty error for {requested:?}"),
    }
}

/// `permissions.read/write` resolution. No root: always refused. Root `/usr`: what is granted
/// is absolute, free of `..` and under `/usr`.
fn paths(kind: &'static str, requested: &[String]) {
    let requested: Vec<String> = requested.iter().take(4).cloned().collect();
    if requested.is_empty() {
        return;
    }
    let refused = resolve_all(kind, &requested, &[]);
    assert!(refused.is_err(), "{requested:?} granted with no root");
    if let Err(e) = refused {
        let _ = e.to_string();
    }
    for r in &requested {
        if !Path::new(r).is_absolute() {
            let e = resolve_all(kind, std::slice::from_ref(r), &[]).expect_err("relative");
            assert!(e.to_string().contains("not an absolute path"), "{r:?}: {e}");
        }
    }
    let root = PathBuf::from("/usr");
    if let Ok(granted) = resolve_all(kind, &requested, std::slice::from_ref(&root)) {
        for g in granted {
            assert!(
                g.is_absolute() && g.starts_with(&root),
                "{requested:?} granted {g:?}"
            );
            assert!(
                !g.components().any(|c| c == Component::ParentDir),
                "{requested:?} granted {g:?}"
            );
        }
    }
}

/// `mcp__<server>__<tool>` patterns: what parses prints back to itself, and narrows itself.
fn tool_name(s: &str) {
    match AllowedToolPattern::parse(s) {
        Ok(p) => {
            assert_eq!(p.to_string(), s, "tool pattern {s:?} prints differently");
            assert!(p.within(&p), "{s:?} not within itself");
            assert!(
                !p.server.is_empty() && !p.server.contains("__"),
                "{s:?}: {p:?}"
            );
            if !p.wildcard {
                assert!(p.matches(&p.server, &p.tool), "{s:?} does not match itself");
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}
