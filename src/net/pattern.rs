//! Host patterns, the per-run allowlist ([`NetPolicy`]) and its narrowing by the server ceiling.
//!
//! The rules, in one place:
//! - A pattern is `HOST[:PORT]`. Without a port it matches every port.
//! - `HOST` is an exact name (`api.github.com`), a suffix wildcard `*.example.com` (which
//!   matches `a.example.com` and `a.b.example.com` but *not* the apex `example.com`: a wildcard
//!   says "the subdomains", and the apex is one more explicit line away), `*` (any host), or an
//!   IP literal (`10.0.0.5`, `[fd00::1]`).
//! - Cloud metadata (names and addresses, see [`crate::net::addr`]) is never reachable.
//! - A non-public address is reachable only through an *explicit* pattern: an IP literal, or an
//!   exact host name, each of which reaches the non-public addresses it names or resolves to.
//!   A wildcard (`*.corp.example`, `*`) only ever reaches public addresses, so "any public API"
//!   can never become "anything on the host's LAN" through DNS.
//! - Narrowing a run's request by the server's ceiling keeps that property: a requested exact
//!   pattern that only a ceiling *wildcard* covers stays public-only, so a run asking for
//!   `evil.example` under a `*` ceiling cannot reach `10.0.0.1` by pointing DNS there.

use std::fmt;
use std::net::IpAddr;

use super::addr::{classify, is_cloud_metadata_name, parse_ip_literal, AddrClass};

/// A malformed host pattern or request host. Every message names the input and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The pattern is empty.
    #[error(
        "host pattern is empty; write a host such as `api.github.com` or `api.github.com:443`"
    )]
    Empty,
    /// The input contained something that a bare `HOST[:PORT]` cannot contain.
    #[error("host pattern `{pattern}` is invalid: {reason}")]
    Invalid {
        /// The input as given.
        pattern: String,
        /// What is wrong with it and what to write instead.
        reason: String,
    },
}

fn invalid(pattern: &str, reason: impl Into<String>) -> PatternError {
    PatternError::Invalid {
        pattern: pattern.to_string(),
        reason: reason.into(),
    }
}

/// A request's target host, normalised: lower-case name without trailing dot, or an address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name.
    Name(String),
    /// An IP literal (any spelling a resolver accepts, see [`parse_ip_literal`]).
    Ip(IpAddr),
}

impl Host {
    /// Parses the host part of a CONNECT authority or URL (IPv6 in brackets).
    ///
    /// Why strict: anything unusual in a host (spaces, `@`, `%`) is either an attack on a
    /// resolver's parser (glibc's `inet_aton` accepts `127.0.0.1 junk`) or a mistake.
    pub fn parse(s: &str) -> Result<Host, PatternError> {
        if s.is_empty() {
            return Err(PatternError::Empty);
        }
        if let Some(ip) = parse_ip_literal(s) {
            // Unbracketed IPv6 is only unambiguous without a port; callers split ports first.
            return Ok(Host::Ip(ip.to_canonical()));
        }
        if s.starts_with('[') {
            return Err(invalid(s, "not a valid IPv6 address in brackets"));
        }
        validate_name(s, s).map(Host::Name)
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ip(IpAddr::V4(v4)) => write!(f, "{v4}"),
            Host::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]"),
        }
    }
}

/// Checks a DNS name and returns it lower-cased without its trailing dot.
fn validate_name(name: &str, pattern: &str) -> Result<String, PatternError> {
    let lower = name.to_ascii_lowercase();
    let trimmed = lower.strip_suffix('.').unwrap_or(&lower);
    if trimmed.is_empty() {
        return Err(invalid(pattern, "the host name is empty"));
    }
    if trimmed.len() > 253 {
        return Err(invalid(
            pattern,
            format!(
                "the host name is {} characters long; DNS allows 253",
                trimmed.len()
            ),
        ));
    }
    for label in trimmed.split('.') {
        if label.is_empty() {
            return Err(invalid(pattern, "the host name has an empty label (`..`)"));
        }
        if label.len() > 63 {
            return Err(invalid(
                pattern,
                format!(
                    "label `{label}` is {} characters long; DNS allows 63",
                    label.len()
                ),
            ));
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(invalid(
                pattern,
                format!(
                    "character {bad:?} is not allowed in a host name \
                     (letters, digits, `-` and `_` only; use punycode for IDNs)"
                ),
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(invalid(
                pattern,
                format!("label `{label}` starts or ends with `-`"),
            ));
        }
    }
    // The WHATWG URL parser treats a name whose last label is numeric as an IPv4 address; if it
    // did not parse as one above, it is an invalid address, not a name.
    let last = trimmed.rsplit('.').next().unwrap_or(trimmed);
    let numeric = last.chars().all(|c| c.is_ascii_digit())
        || last
            .strip_prefix("0x")
            .is_some_and(|h| h.chars().all(|c| c.is_ascii_hexdigit()));
    if numeric {
        return Err(invalid(
            pattern,
            "it looks like an IPv4 address but is not a valid one",
        ));
    }
    Ok(trimmed.to_string())
}

/// What a pattern's host part matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum HostMatch {
    /// `*`: any host (public addresses only).
    Any,
    /// `*.example.com`, stored as `.example.com`: strict subdomains.
    Suffix(String),
    /// `api.github.com`.
    Name(String),
    /// `10.0.0.5`, `[::1]`.
    Ip(IpAddr),
}

/// One allowlist entry: `HOST[:PORT]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPattern {
    host: HostMatch,
    port: Option<u16>,
}

impl HostPattern {
    /// Parses `HOST[:PORT]`; see the module documentation for the forms accepted.
    pub fn parse(s: &str) -> Result<HostPattern, PatternError> {
        if s.is_empty() {
            return Err(PatternError::Empty);
        }
        if s.contains("://") {
            return Err(invalid(
                s,
                "this is a URL; write only the host and optional port, e.g. `api.github.com:443`",
            ));
        }
        if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                s,
                format!("it contains whitespace or a control character ({c:?})"),
            ));
        }
        for (c, what) in [
            ('/', "a path"),
            ('?', "a query"),
            ('#', "a fragment"),
            ('@', "user info"),
        ] {
            if s.contains(c) {
                return Err(invalid(
                    s,
                    format!("it contains {what} (`{c}`); a pattern is only `HOST[:PORT]`"),
                ));
            }
        }
        let (host, port) = split_host_port(s)?;
        let port = port.map(|p| parse_port(p, s)).transpose()?;
        let host = if host == "*" {
            HostMatch::Any
        } else if let Some(rest) = host.strip_prefix("*.") {
            if rest.contains('*') {
                return Err(invalid(
                    s,
                    "only one wildcard, as the whole leftmost label, is allowed",
                ));
            }
            if parse_ip_literal(rest).is_some() {
                return Err(invalid(s, "a wildcard cannot precede an IP address"));
            }
            HostMatch::Suffix(format!(".{}", validate_name(rest, s)?))
        } else if host.contains('*') {
            return Err(invalid(
                s,
                "a wildcard must be the whole leftmost label (`*.example.com`) or the whole host (`*`)",
            ));
        } else if let Some(inner) = host.strip_prefix('[') {
            let ip = inner
                .strip_suffix(']')
                .and_then(|_| parse_ip_literal(host))
                .ok_or_else(|| invalid(s, "not a valid IPv6 address in brackets"))?;
            HostMatch::Ip(ip.to_canonical())
        } else if let Some(ip) = parse_ip_literal(host) {
            HostMatch::Ip(ip.to_canonical())
        } else {
            HostMatch::Name(validate_name(host, s)?)
        };
        let pattern = HostPattern { host, port };
        if pattern.is_cloud_metadata() {
            return Err(invalid(
                s,
                "it names a cloud metadata endpoint, which is never reachable from a sandbox",
            ));
        }
        Ok(pattern)
    }

    /// The port this pattern is limited to, if any.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// True for an IP literal or exact host name: the patterns that may reach non-public
    /// addresses (see the module documentation).
    pub fn is_explicit(&self) -> bool {
        matches!(self.host, HostMatch::Name(_) | HostMatch::Ip(_))
    }

    fn is_cloud_metadata(&self) -> bool {
        match &self.host {
            HostMatch::Name(name) => is_cloud_metadata_name(name),
            HostMatch::Ip(ip) => classify(*ip).is_cloud_metadata(),
            HostMatch::Any | HostMatch::Suffix(_) => false,
        }
    }

    /// True when a request for `host:port` matches this pattern (before resolution).
    pub fn matches(&self, host: &Host, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match (&self.host, host) {
            (HostMatch::Any, _) => true,
            (HostMatch::Suffix(suffix), Host::Name(name)) => name.ends_with(suffix.as_str()),
            (HostMatch::Name(want), Host::Name(name)) => want == name,
            (HostMatch::Ip(want), Host::Ip(ip)) => *want == ip.to_canonical(),
            _ => false,
        }
    }

    /// True when every request this `requested` pattern matches is also matched by `self`.
    pub fn covers(&self, requested: &HostPattern) -> bool {
        let ports = match (self.port, requested.port) {
            (None, _) => true,
            (Some(mine), Some(theirs)) => mine == theirs,
            (Some(_), None) => false,
        };
        ports
            && match (&self.host, &requested.host) {
                (HostMatch::Any, _) => true,
                (HostMatch::Suffix(mine), HostMatch::Suffix(theirs)) => {
                    theirs.ends_with(mine.as_str())
                }
                (HostMatch::Suffix(mine), HostMatch::Name(name)) => name.ends_with(mine.as_str()),
                (HostMatch::Name(mine), HostMatch::Name(theirs)) => mine == theirs,
                (HostMatch::Ip(mine), HostMatch::Ip(theirs)) => mine == theirs,
                _ => false,
            }
    }
}

fn split_host_port(s: &str) -> Result<(&str, Option<&str>), PatternError> {
    if s.starts_with('[') {
        let end = s
            .find(']')
            .ok_or_else(|| invalid(s, "`[` without a closing `]`"))?;
        let (host, rest) = s.split_at(end + 1);
        return match rest {
            "" => Ok((host, None)),
            _ => match rest.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(invalid(s, "expected `:PORT` after `]`")),
            },
        };
    }
    match s.matches(':').count() {
        0 => Ok((s, None)),
        1 => {
            let (host, port) = s.split_once(':').unwrap_or((s, ""));
            Ok((host, Some(port)))
        }
        _ => Err(invalid(
            s,
            "an IPv6 address must be written in brackets, e.g. `[2001:db8::1]:443`",
        )),
    }
}

fn parse_port(port: &str, pattern: &str) -> Result<u16, PatternError> {
    if port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid(
            pattern,
            format!("port `{port}` is not a number from 1 to 65535"),
        ));
    }
    match port.parse::<u32>() {
        Ok(p @ 1..=65535) => Ok(p as u16),
        _ => Err(invalid(
            pattern,
            format!("port `{port}` is out of range; ports are 1 to 65535"),
        )),
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            HostMatch::Any => f.write_str("*")?,
            HostMatch::Suffix(suffix) => write!(f, "*{suffix}")?,
            HostMatch::Name(name) => f.write_str(name)?,
            HostMatch::Ip(IpAddr::V4(v4)) => write!(f, "{v4}")?,
            HostMatch::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]")?,
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// One entry of a [`NetPolicy`]: a pattern and whether it may reach non-public addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    pattern: HostPattern,
    reach_private: bool,
}

/// Why a connection was refused. The `Display` is the short reason sent to the client (403 body)
/// and written to the audit log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The host is a cloud metadata name.
    #[error("`{host}` is a cloud metadata endpoint; it is never reachable from a sandbox")]
    MetadataName {
        /// The requested host.
        host: String,
    },
    /// No pattern matches the host and port.
    #[error(
        "`{host}:{port}` is not in this run's network allowlist; \
         add it to permissions.net (within the server's security.allowNetwork)"
    )]
    NotAllowed {
        /// The requested host.
        host: String,
        /// The requested port.
        port: u16,
    },
    /// The host resolved to a cloud metadata address.
    #[error("`{host}` resolves to {addr}, a cloud metadata endpoint; it is never reachable")]
    MetadataAddress {
        /// The requested host.
        host: String,
        /// The address it resolved to.
        addr: IpAddr,
    },
    /// The host resolved to a non-public address and no explicit pattern names it.
    #[error(
        "`{host}` resolves to {addr}, which is {class}; only an exact host name or IP pattern \
         in the allowlist may reach a non-public address (wildcards reach public ones only)"
    )]
    NonPublic {
        /// The requested host.
        host: String,
        /// The address it resolved to.
        addr: IpAddr,
        /// Why the address is not public.
        class: AddrClass,
    },
    /// The host resolved to no address at all.
    #[error("`{host}` resolved to no address")]
    NoAddress {
        /// The requested host.
        host: String,
    },
}

/// The result of the pre-resolution check: which patterns admitted the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    host: String,
    reach_private: bool,
    pattern: String,
}

impl Admission {
    /// The pattern that admitted the host (the most permissive of those that match).
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Checks one resolved (or literal) address; the proxy calls this for *every* address.
    pub fn check_addr(&self, addr: IpAddr) -> Result<(), Refusal> {
        let class = classify(addr);
        if class.is_cloud_metadata() {
            return Err(Refusal::MetadataAddress {
                host: self.host.clone(),
                addr,
            });
        }
        if !class.is_public() && !self.reach_private {
            return Err(Refusal::NonPublic {
                host: self.host.clone(),
                addr,
                class,
            });
        }
        Ok(())
    }
}

/// A run's network allowlist. The default (empty) policy refuses everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetPolicy {
    rules: Vec<Rule>,
}

impl NetPolicy {
    /// A policy that refuses every connection.
    pub fn deny_all() -> NetPolicy {
        NetPolicy::default()
    }

    /// A policy written by the operator (the server's ceiling, or a CLI flag): explicit patterns
    /// reach the non-public addresses they name. Never build a run's policy this way from what
    /// a client *requested*; that is [`narrow`]'s job, which keeps the operator in charge of
    /// which private addresses are reachable.
    pub fn from_patterns(patterns: impl IntoIterator<Item = HostPattern>) -> NetPolicy {
        NetPolicy {
            rules: patterns
                .into_iter()
                .map(|pattern| Rule {
                    reach_private: pattern.is_explicit(),
                    pattern,
                })
                .collect(),
        }
    }

    /// Parses a list of patterns as written by the operator; see [`NetPolicy::from_patterns`].
    pub fn parse<S: AsRef<str>>(
        patterns: impl IntoIterator<Item = S>,
    ) -> Result<NetPolicy, PatternError> {
        let patterns = patterns
            .into_iter()
            .map(|p| HostPattern::parse(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NetPolicy::from_patterns(patterns))
    }

    /// True when the policy refuses everything (the run needs no proxy at all).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The patterns, for the run report.
    pub fn patterns(&self) -> impl Iterator<Item = &HostPattern> {
        self.rules.iter().map(|r| &r.pattern)
    }

    /// First step of a decision, before resolution: is `host:port` admitted at all?
    pub fn admit(&self, host: &Host, port: u16) -> Result<Admission, Refusal> {
        let shown = host.to_string();
        if let Host::Name(name) = host {
            if is_cloud_metadata_name(name) {
                return Err(Refusal::MetadataName { host: shown });
            }
        }
        let matching: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| r.pattern.matches(host, port))
            .collect();
        let best = matching
            .iter()
            .find(|r| r.reach_private)
            .or_else(|| matching.first())
            .ok_or(Refusal::NotAllowed {
                host: shown.clone(),
                port,
            })?;
        Ok(Admission {
            host: shown,
            reach_private: best.reach_private,
            pattern: best.pattern.to_string(),
        })
    }

    /// The whole decision for `host:port` resolving to `addrs`: every address must pass.
    pub fn decide(&self, host: &Host, port: u16, addrs: &[IpAddr]) -> Result<Admission, Refusal> {
        let admission = self.admit(host, port)?;
        if addrs.is_empty() {
            return Err(Refusal::NoAddress {
                host: host.to_string(),
            });
        }
        for addr in addrs {
            admission.check_addr(*addr)?;
        }
        Ok(admission)
    }
}

/// A requested pattern the server's ceiling does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NarrowError {
    /// No ceiling pattern covers the requested one.
    #[error(
        "permissions.net asks for `{requested}`, which the server's security.allowNetwork \
         ({ceiling}) does not allow; ask for a host within it or have the operator widen it"
    )]
    NotCovered {
        /// The requested pattern.
        requested: String,
        /// The ceiling, for the message.
        ceiling: String,
    },
    /// The requested IP is non-public and only a ceiling wildcard covers it, so it could never
    /// be reached; refusing now tells the user instead of failing every connection later.
    #[error(
        "permissions.net asks for `{requested}`, which is {class}; the server's \
         security.allowNetwork covers it only with a wildcard, and wildcards reach public \
         addresses only; the operator must list it explicitly"
    )]
    NonPublicViaWildcard {
        /// The requested pattern.
        requested: String,
        /// Why the address is not public.
        class: AddrClass,
    },
}

/// Narrows a run's requested `permissions.net` by the server's ceiling (`security.allowNetwork`).
///
/// Every requested pattern must be covered by some ceiling pattern, else the whole request is an
/// error naming it (silently dropping it would make the run fail later with a less useful
/// message). A requested pattern may reach non-public addresses only when it is explicit *and*
/// an explicit ceiling pattern that may do so covers it; a ceiling wildcard never lends that.
pub fn narrow(requested: &[HostPattern], ceiling: &NetPolicy) -> Result<NetPolicy, NarrowError> {
    let ceiling_shown = || {
        if ceiling.rules.is_empty() {
            "empty: no network".to_string()
        } else {
            ceiling
                .rules
                .iter()
                .map(|r| format!("`{}`", r.pattern))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let mut rules = Vec::with_capacity(requested.len());
    for pattern in requested {
        let covering: Vec<&Rule> = ceiling
            .rules
            .iter()
            .filter(|c| c.pattern.covers(pattern))
            .collect();
        if covering.is_empty() {
            return Err(NarrowError::NotCovered {
                requested: pattern.to_string(),
                ceiling: ceiling_shown(),
            });
        }
        let reach_private = pattern.is_explicit()
            && covering
                .iter()
                .any(|c| c.reach_private && c.pattern.is_explicit());
        if let HostMatch::Ip(ip) = pattern.host {
            let class = classify(ip);
            if !class.is_public() && !reach_private {
                return Err(NarrowError::NonPublicViaWildcard {
                    requested: pattern.to_string(),
                    class,
                });
            }
        }
        rules.push(Rule {
            pattern: pattern.clone(),
            reach_private,
        });
    }
    Ok(NetPolicy { rules })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(s: &str) -> HostPattern {
        HostPattern::parse(s).unwrap_or_else(|e| panic!("pattern {s}: {e}"))
    }

    fn policy(patterns: &[&str]) -> NetPolicy {
        NetPolicy::parse(patterns).unwrap_or_else(|e| panic!("policy {patterns:?}: {e}"))
    }

    fn host(s: &str) -> Host {
        Host::parse(s).unwrap_or_else(|e| panic!("host {s}: {e}"))
    }

    fn addr(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("address {s}: {e}"))
    }

    #[test]
    fn parses_valid_patterns() {
        let cases = [
            ("api.github.com", "api.github.com"),
            ("API.GitHub.com", "api.github.com"),
            ("api.github.com.", "api.github.com"),
            ("api.github.com:443", "api.github.com:443"),
            ("*.example.com", "*.example.com"),
            ("*.example.com:8443", "*.example.com:8443"),
            ("*", "*"),
            ("*:443", "*:443"),
            ("10.0.0.5", "10.0.0.5"),
            ("127.0.0.1:8080", "127.0.0.1:8080"),
            ("0x7f.1:80", "127.0.0.1:80"),
            ("[::1]", "[::1]"),
            ("[::1]:443", "[::1]:443"),
            ("[::ffff:127.0.0.1]:80", "127.0.0.1:80"),
            ("localhost", "localhost"),
            ("my_host.internal", "my_host.internal"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("a:65535", "a:65535"),
            ("a:1", "a:1"),
        ];
        for (input, shown) in cases {
            assert_eq!(pat(input).to_string(), shown, "parse({input:?})");
        }
    }

    #[test]
    fn rejects_malformed_patterns_naming_them() {
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = format!("{}com", "abcdefghi.".repeat(26));
        let cases: Vec<(&str, &str)> = vec![
            ("", "empty"),
            (" ", "whitespace"),
            ("api.github.com ", "whitespace"),
            ("api .github.com", "whitespace"),
            ("*foo.com", "wildcard"),
            ("a.*.com", "wildcard"),
            ("*.*.com", "wildcard"),
            ("foo.*", "wildcard"),
            ("**", "wildcard"),
            ("http://x", "URL"),
            ("https://api.github.com/", "URL"),
            ("api.github.com/repos", "path"),
            ("api.github.com?x", "query"),
            ("user@api.github.com", "user info"),
            ("x:0", "out of range"),
            ("x:65536", "out of range"),
            ("x:99999999999", "out of range"),
            ("x:", "not a number"),
            ("x:http", "not a number"),
            ("x:-1", "not a number"),
            ("x:+80", "not a number"),
            (&long_label, "63"),
            (&long_name, "253"),
            ("a..b", "empty label"),
            (".", "empty"),
            ("-a.com", "`-`"),
            ("a-.com", "`-`"),
            ("ex!ample.com", "not allowed"),
            ("::1", "brackets"),
            ("[::1", "closing"),
            ("[::1]x", "`:PORT`"),
            ("[example.com]", "IPv6"),
            ("[::1]:0", "out of range"),
            ("256.1.1.1", "not a valid one"),
            ("1.2.3.4.5", "not a valid one"),
            ("foo.123", "not a valid one"),
            ("*.10.0.0.1", "IP address"),
            ("169.254.169.254", "cloud metadata"),
            ("0xa9fea9fe:80", "cloud metadata"),
            ("[::ffff:169.254.169.254]", "cloud metadata"),
            ("metadata.google.internal", "cloud metadata"),
            ("METADATA.google.internal.", "cloud metadata"),
            ("metadata:80", "cloud metadata"),
            ("instance-data", "cloud metadata"),
        ];
        for (input, reason) in cases {
            match HostPattern::parse(input) {
                Ok(p) => panic!("parse({input:?}) accepted as {p}"),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains(reason),
                        "parse({input:?}): {msg:?} lacks {reason:?}"
                    );
                    if !input.is_empty() {
                        assert!(
                            msg.contains(input),
                            "parse({input:?}): {msg:?} does not name it"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn wildcard_matches_subdomains_not_apex() {
        let p = pat("*.example.com");
        assert!(p.matches(&host("a.example.com"), 443));
        assert!(p.matches(&host("a.b.example.com"), 80));
        assert!(!p.matches(&host("example.com"), 443));
        assert!(!p.matches(&host("badexample.com"), 443));
        assert!(!p.matches(&host("example.com.evil.net"), 443));
    }

    #[test]
    fn ports_restrict_matches() {
        let p = pat("api.github.com:443");
        assert!(p.matches(&host("api.github.com"), 443));
        assert!(!p.matches(&host("api.github.com"), 80));
        let any_port = pat("api.github.com");
        assert!(any_port.matches(&host("api.github.com"), 22));
    }

    /// The reference project's SSRF cases plus the encodings: (allowlist, host, port, resolved
    /// addresses, allowed?). Resolution is given, so each row tests the policy alone.
    #[test]
    fn ssrf_decisions() {
        type Row = (
            &'static [&'static str],
            &'static str,
            u16,
            &'static [&'static str],
            bool,
        );
        let any: &[&str] = &["*"];
        let rows: &[Row] = &[
            // Public APIs allowed.
            (any, "api.github.com", 443, &["140.82.112.5"], true),
            (
                any,
                "api.openai.com",
                443,
                &["104.18.6.192", "2606:4700::6812:6c0"],
                true,
            ),
            (
                &["api.github.com"],
                "api.github.com",
                443,
                &["140.82.112.5"],
                true,
            ),
            (
                &["api.github.com:443"],
                "api.github.com",
                443,
                &["140.82.112.5"],
                true,
            ),
            (
                &["*.github.com"],
                "api.github.com",
                443,
                &["140.82.112.5"],
                true,
            ),
            (&["8.8.8.8"], "8.8.8.8", 53, &["8.8.8.8"], true),
            // Not in the list, or wrong port, or apex under a wildcard.
            (
                &["api.github.com"],
                "evil.com",
                443,
                &["93.184.216.34"],
                false,
            ),
            (
                &["api.github.com:443"],
                "api.github.com",
                80,
                &["140.82.112.5"],
                false,
            ),
            (
                &["*.github.com"],
                "github.com",
                443,
                &["140.82.112.3"],
                false,
            ),
            (&[], "api.github.com", 443, &["140.82.112.5"], false),
            // Localhost variations (127.0.0.0/8) through `*`.
            (any, "localhost", 80, &["127.0.0.1", "::1"], false),
            (any, "127.0.0.1", 80, &["127.0.0.1"], false),
            (any, "127.0.0.2", 80, &["127.0.0.2"], false),
            (any, "127.255.255.255", 80, &["127.255.255.255"], false),
            (any, "2130706433", 80, &["127.0.0.1"], false),
            (any, "0177.0.0.1", 80, &["127.0.0.1"], false),
            (any, "0x7f.0.0.1", 80, &["127.0.0.1"], false),
            (any, "0x7f000001", 80, &["127.0.0.1"], false),
            (any, "127.1", 80, &["127.0.0.1"], false),
            (any, "0X7F.1", 80, &["127.0.0.1"], false),
            (any, "127.0.0.1.", 80, &["127.0.0.1"], false),
            (any, "0.0.0.0", 80, &["0.0.0.0"], false),
            (any, "0", 80, &["0.0.0.0"], false),
            // Private networks.
            (any, "10.0.0.1", 80, &["10.0.0.1"], false),
            (any, "10.255.255.255", 80, &["10.255.255.255"], false),
            (any, "172.16.0.1", 80, &["172.16.0.1"], false),
            (any, "172.31.255.255", 80, &["172.31.255.255"], false),
            (any, "192.168.0.1", 80, &["192.168.0.1"], false),
            (any, "192.168.1.254", 80, &["192.168.1.254"], false),
            (any, "10.1.1", 80, &["10.1.0.1"], false),
            (any, "100.64.0.1", 80, &["100.64.0.1"], false),
            // Link-local and cloud metadata.
            (any, "169.254.1.1", 80, &["169.254.1.1"], false),
            (any, "169.254.169.254", 80, &["169.254.169.254"], false),
            (any, "0xa9fea9fe", 80, &["169.254.169.254"], false),
            (
                any,
                "metadata.google.internal",
                80,
                &["169.254.169.254"],
                false,
            ),
            (any, "metadata", 80, &["8.8.8.8"], false),
            (any, "instance-data.ec2.internal", 80, &["8.8.8.8"], false),
            (any, "fd00:ec2::254", 80, &["fd00:ec2::254"], false),
            (any, "100.100.100.200", 80, &["100.100.100.200"], false),
            // IPv6.
            (any, "[::1]", 80, &["::1"], false),
            (any, "[fe80::1]", 80, &["fe80::1"], false),
            (any, "fe80::1%eth0", 80, &["fe80::1"], false),
            (any, "[fc00::1]", 80, &["fc00::1"], false),
            (any, "[fd12::1]", 80, &["fd12::1"], false),
            (any, "[::ffff:127.0.0.1]", 80, &["::ffff:127.0.0.1"], false),
            (any, "[::ffff:7f00:1]", 80, &["::ffff:127.0.0.1"], false),
            (any, "[64:ff9b::7f00:1]", 80, &["64:ff9b::7f00:1"], false),
            (any, "[2002:7f00:1::]", 80, &["2002:7f00:1::"], false),
            // DNS pointing a public-looking name at private space (rebinding, split horizon).
            (any, "rebind.attacker.example", 80, &["127.0.0.1"], false),
            (
                any,
                "mixed.attacker.example",
                80,
                &["8.8.8.8", "10.0.0.1"],
                false,
            ),
            (
                any,
                "v6.attacker.example",
                80,
                &["8.8.8.8", "::ffff:10.0.0.1"],
                false,
            ),
            (
                &["*.attacker.example"],
                "a.attacker.example",
                80,
                &["192.168.0.1"],
                false,
            ),
            (any, "empty.example", 80, &[], false),
            // Explicit patterns reach the non-public addresses they name.
            (&["127.0.0.1:8080"], "127.0.0.1", 8080, &["127.0.0.1"], true),
            (&["127.0.0.1:8080"], "127.1", 8080, &["127.0.0.1"], true),
            (
                &["127.0.0.1:8080"],
                "127.0.0.1",
                8081,
                &["127.0.0.1"],
                false,
            ),
            (
                &["127.0.0.1:8080"],
                "localhost",
                8080,
                &["127.0.0.1"],
                false,
            ),
            (
                &["localhost:8080"],
                "localhost",
                8080,
                &["127.0.0.1", "::1"],
                true,
            ),
            (
                &["localhost:8080", "*"],
                "localhost",
                8080,
                &["127.0.0.1"],
                true,
            ),
            (&["db.internal"], "db.internal", 5432, &["10.0.0.7"], true),
            (&["[::1]"], "[::1]", 80, &["::1"], true),
            (&["10.0.0.5"], "10.0.0.5", 80, &["10.0.0.5"], true),
            (&["10.0.0.5"], "10.0.0.6", 80, &["10.0.0.6"], false),
            // ...but never cloud metadata.
            (
                &["evil.example"],
                "evil.example",
                80,
                &["169.254.169.254"],
                false,
            ),
            (
                &["evil.example"],
                "evil.example",
                80,
                &["::ffff:169.254.169.254"],
                false,
            ),
            (
                &["10.0.0.5"],
                "10.0.0.5",
                80,
                &["10.0.0.5", "169.254.169.254"],
                false,
            ),
        ];
        for (allow, h, port, addrs, want) in rows {
            let policy = policy(allow);
            let addrs: Vec<IpAddr> = addrs.iter().map(|a| addr(a)).collect();
            let got = policy.decide(&host(h), *port, &addrs);
            assert_eq!(
                got.is_ok(),
                *want,
                "allow {allow:?}, {h}:{port} → {addrs:?}: {got:?}"
            );
        }
    }

    #[test]
    fn refusal_reasons_name_the_range() {
        let p = policy(&["*"]);
        let err = p
            .decide(&host("evil.example"), 80, &[addr("10.1.2.3")])
            .expect_err("private refused");
        assert!(err.to_string().contains("private (10.0.0.0/8)"), "{err}");
        let err = p
            .decide(&host("0xa9fea9fe"), 80, &[addr("169.254.169.254")])
            .expect_err("metadata refused");
        assert!(err.to_string().contains("cloud metadata"), "{err}");
    }

    #[test]
    fn request_hosts_are_validated() {
        for bad in [
            "",
            "a b",
            "127.0.0.1 junk",
            "a/b",
            "ex@mple",
            "[::1",
            "foo.123",
            "a..b",
        ] {
            assert!(Host::parse(bad).is_err(), "Host::parse({bad:?}) accepted");
        }
        assert_eq!(host("0x7F.1"), Host::Ip(addr("127.0.0.1")));
        assert_eq!(host("[::ffff:7f00:1]"), Host::Ip(addr("127.0.0.1")));
        assert_eq!(
            host("API.Example.COM."),
            Host::Name("api.example.com".into())
        );
    }

    #[test]
    fn narrowing_requires_coverage() {
        let ceiling = policy(&[
            "*.github.com",
            "api.openai.com:443",
            "10.0.0.5",
            "localhost",
        ]);
        let ok = [
            "api.github.com",
            "api.github.com:443",
            "*.github.com",
            "*.api.github.com:443",
            "api.openai.com:443",
            "10.0.0.5:80",
            "localhost:8080",
        ];
        for r in ok {
            assert!(narrow(&[pat(r)], &ceiling).is_ok(), "{r} should be covered");
        }
        let refused = [
            "github.com",
            "*",
            "api.openai.com",
            "api.openai.com:80",
            "*.openai.com",
            "10.0.0.6",
            "evil.com",
        ];
        for r in refused {
            let err = narrow(&[pat("api.github.com"), pat(r)], &ceiling).expect_err("not covered");
            assert!(err.to_string().contains(&format!("`{r}`")), "{err}");
        }
        assert!(narrow(&[pat("api.github.com")], &NetPolicy::deny_all()).is_err());
        assert!(narrow(&[], &NetPolicy::deny_all()).is_ok_and(|p| p.is_empty()));
    }

    #[test]
    fn narrowing_under_a_wildcard_never_grants_private_reach() {
        let ceiling = policy(&["*"]);
        let narrowed = narrow(&[pat("evil.example")], &ceiling).expect("covered by *");
        assert!(narrowed
            .decide(&host("evil.example"), 80, &[addr("8.8.8.8")])
            .is_ok());
        assert!(narrowed
            .decide(&host("evil.example"), 80, &[addr("10.0.0.1")])
            .is_err());
        let err = narrow(&[pat("127.0.0.1:80")], &ceiling).expect_err("private IP via *");
        assert!(err.to_string().contains("loopback"), "{err}");
        // An explicit ceiling entry does lend private reach to the same explicit request.
        let ceiling = policy(&["localhost", "127.0.0.1"]);
        let narrowed =
            narrow(&[pat("localhost:8080"), pat("127.0.0.1:9")], &ceiling).expect("covered");
        assert!(narrowed
            .decide(&host("localhost"), 8080, &[addr("127.0.0.1"), addr("::1")])
            .is_ok());
        assert!(narrowed
            .decide(&host("127.0.0.1"), 9, &[addr("127.0.0.1")])
            .is_ok());
        assert!(narrowed
            .decide(&host("127.0.0.1"), 10, &[addr("127.0.0.1")])
            .is_err());
    }
}
