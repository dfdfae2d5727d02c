//! Address classification and IP-literal parsing: the pure logic behind the egress allowlist.
//!
//! Why this exists: an allowlist that compares host *strings* is bypassed by every spelling a
//! resolver accepts (`0x7f.1`, `2130706433`, `[::ffff:127.0.0.1]`, ...). The proxy therefore
//! decides on *addresses*: it parses literals the way `inet_aton(3)` and the WHATWG URL host
//! parser do, resolves names itself, and classifies every resulting address here. Anything that
//! is not plainly a public unicast address is [`AddrClass::NonPublic`], with a reason that names
//! the range so the refusal the user sees explains itself.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The class of an address, as far as egress from a sandbox is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrClass {
    /// A globally routable unicast address.
    Public,
    /// Anything else, with the reason.
    NonPublic(NonPublic),
}

impl AddrClass {
    /// True for [`AddrClass::Public`].
    pub fn is_public(&self) -> bool {
        matches!(self, AddrClass::Public)
    }

    /// True when the address is (or embeds) a cloud metadata endpoint, which is never reachable.
    pub fn is_cloud_metadata(&self) -> bool {
        match self {
            AddrClass::Public => false,
            AddrClass::NonPublic(reason) => reason.innermost() == &NonPublic::CloudMetadata,
        }
    }
}

impl fmt::Display for AddrClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddrClass::Public => f.write_str("public"),
            AddrClass::NonPublic(reason) => reason.fmt(f),
        }
    }
}

/// Why an address is not public. The `&'static str` payloads name the range (CIDR) matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NonPublic {
    /// A cloud provider's instance metadata service (credentials live there).
    CloudMetadata,
    /// `0.0.0.0` or `::`.
    Unspecified(&'static str),
    /// `0.0.0.0/8`: "this network"; Linux connects `0.x.y.z` to the local host.
    ThisNetwork,
    /// `127.0.0.0/8` or `::1`.
    Loopback(&'static str),
    /// RFC 1918 private ranges.
    Private(&'static str),
    /// `169.254.0.0/16` or `fe80::/10`.
    LinkLocal(&'static str),
    /// `100.64.0.0/10`, carrier-grade NAT (RFC 6598); often reaches provider infrastructure.
    SharedAddressSpace,
    /// `198.18.0.0/15` (RFC 2544).
    Benchmarking,
    /// `192.0.0.0/24` or `2001::/23` (IETF protocol assignments).
    ProtocolAssignments(&'static str),
    /// Documentation ranges (RFC 5737, RFC 3849, RFC 9637).
    Documentation(&'static str),
    /// `240.0.0.0/4`, `192.88.99.0/24`, or IPv6 outside global unicast `2000::/3`.
    Reserved(&'static str),
    /// `255.255.255.255`.
    Broadcast,
    /// `224.0.0.0/4` or `ff00::/8`.
    Multicast(&'static str),
    /// `fc00::/7`, unique local (the IPv6 analogue of RFC 1918).
    UniqueLocal,
    /// `fec0::/10`, deprecated site-local, still routed internally by some networks.
    SiteLocal,
    /// `100::/64`, discard-only (RFC 6666).
    Discard,
    /// `64:ff9b:1::/48`, local-use NAT64 (RFC 8215): translates into a private network.
    LocalNat64,
    /// `2001::/32` Teredo whose obfuscated client address is itself public. Refused anyway:
    /// Teredo relays tunnel to arbitrary hosts and a sandbox has no use for them.
    Teredo,
    /// An IPv6 address that embeds an IPv4 address which is not public.
    Embedded {
        /// How the IPv4 address is embedded.
        via: Embedding,
        /// The embedded IPv4 address.
        v4: Ipv4Addr,
        /// Why the embedded address is not public.
        inner: Box<NonPublic>,
    },
}

impl NonPublic {
    /// The reason after unwrapping every IPv4-in-IPv6 embedding.
    pub fn innermost(&self) -> &NonPublic {
        match self {
            NonPublic::Embedded { inner, .. } => inner.innermost(),
            other => other,
        }
    }
}

impl fmt::Display for NonPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NonPublic::CloudMetadata => f.write_str("cloud metadata"),
            NonPublic::Unspecified(r) => write!(f, "unspecified ({r})"),
            NonPublic::ThisNetwork => f.write_str("\"this network\" (0.0.0.0/8)"),
            NonPublic::Loopback(r) => write!(f, "loopback ({r})"),
            NonPublic::Private(r) => write!(f, "private ({r})"),
            NonPublic::LinkLocal(r) => write!(f, "link-local ({r})"),
            NonPublic::SharedAddressSpace => f.write_str("carrier-grade NAT (100.64.0.0/10)"),
            NonPublic::Benchmarking => f.write_str("benchmarking (198.18.0.0/15)"),
            NonPublic::ProtocolAssignments(r) => write!(f, "IETF protocol assignments ({r})"),
            NonPublic::Documentation(r) => write!(f, "documentation ({r})"),
            NonPublic::Reserved(r) => write!(f, "reserved ({r})"),
            NonPublic::Broadcast => f.write_str("broadcast (255.255.255.255)"),
            NonPublic::Multicast(r) => write!(f, "multicast ({r})"),
            NonPublic::UniqueLocal => f.write_str("unique local (fc00::/7)"),
            NonPublic::SiteLocal => f.write_str("site-local (fec0::/10)"),
            NonPublic::Discard => f.write_str("discard-only (100::/64)"),
            NonPublic::LocalNat64 => f.write_str("local-use NAT64 (64:ff9b:1::/48)"),
            NonPublic::Teredo => f.write_str("Teredo (2001::/32)"),
            NonPublic::Embedded { via, v4, inner } => {
                write!(f, "{via} embedding {v4}, which is {inner}")
            }
        }
    }
}

/// The ways IPv6 addresses carry an IPv4 address, each of which must be classified by the IPv4
/// address inside (otherwise `[::ffff:127.0.0.1]` walks straight past a v4-only check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Embedding {
    /// `::ffff:0:0/96`.
    Ipv4Mapped,
    /// `::/96` (deprecated IPv4-compatible).
    Ipv4Compatible,
    /// `64:ff9b::/96` well-known NAT64 prefix.
    Nat64,
    /// `64:ff9b:1::/48` local-use NAT64 (last 32 bits).
    LocalNat64,
    /// `2002::/16` 6to4 (bits 16..48).
    SixToFour,
    /// `2001::/32` Teredo (client address, bit-inverted, in the last 32 bits).
    Teredo,
}

impl fmt::Display for Embedding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Embedding::Ipv4Mapped => "IPv4-mapped (::ffff:0:0/96)",
            Embedding::Ipv4Compatible => "IPv4-compatible (::/96)",
            Embedding::Nat64 => "NAT64 (64:ff9b::/96)",
            Embedding::LocalNat64 => "local-use NAT64 (64:ff9b:1::/48)",
            Embedding::SixToFour => "6to4 (2002::/16)",
            Embedding::Teredo => "Teredo (2001::/32)",
        })
    }
}

/// Cloud metadata endpoints, refused even when an allowlist names them explicitly.
///
/// 169.254.169.254 (AWS, GCP, Azure, OpenStack, ...), 169.254.170.2 (AWS ECS task credentials),
/// 100.100.100.200 (Alibaba), 192.0.0.192 (Oracle), fd00:ec2::254 (AWS IPv6).
const CLOUD_METADATA_V4: [Ipv4Addr; 4] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(169, 254, 170, 2),
    Ipv4Addr::new(100, 100, 100, 200),
    Ipv4Addr::new(192, 0, 0, 192),
];
const CLOUD_METADATA_V6: [Ipv6Addr; 1] = [Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)];

/// Host names of cloud metadata services, refused whatever they resolve to (on a cloud host the
/// resolver maps them to the metadata address; elsewhere they might point anywhere).
const CLOUD_METADATA_NAMES: [&str; 5] = [
    "metadata.google.internal",
    "metadata",
    "metadata.goog",
    "instance-data",
    "instance-data.ec2.internal",
];

/// True when `host` names a cloud metadata service: case-insensitive, one trailing dot ignored.
pub fn is_cloud_metadata_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    CLOUD_METADATA_NAMES
        .iter()
        .any(|name| name.eq_ignore_ascii_case(host))
}

/// Classifies an address as public or not, with the reason.
pub fn classify(ip: IpAddr) -> AddrClass {
    let reason = match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    };
    match reason {
        None => AddrClass::Public,
        Some(reason) => AddrClass::NonPublic(reason),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    u128::from(ip) & mask == u128::from(net) & mask
}

fn classify_v4(ip: Ipv4Addr) -> Option<NonPublic> {
    use NonPublic::*;
    if CLOUD_METADATA_V4.contains(&ip) {
        return Some(CloudMetadata);
    }
    // Order matters only where ranges nest: 0.0.0.0 inside 0/8, broadcast inside 240/4.
    let table: [([u8; 4], u32, NonPublic); 17] = [
        ([0, 0, 0, 0], 32, Unspecified("0.0.0.0")),
        ([0, 0, 0, 0], 8, ThisNetwork),
        ([127, 0, 0, 0], 8, Loopback("127.0.0.0/8")),
        ([10, 0, 0, 0], 8, Private("10.0.0.0/8")),
        ([172, 16, 0, 0], 12, Private("172.16.0.0/12")),
        ([192, 168, 0, 0], 16, Private("192.168.0.0/16")),
        ([169, 254, 0, 0], 16, LinkLocal("169.254.0.0/16")),
        ([100, 64, 0, 0], 10, SharedAddressSpace),
        ([198, 18, 0, 0], 15, Benchmarking),
        ([192, 0, 0, 0], 24, ProtocolAssignments("192.0.0.0/24")),
        ([192, 0, 2, 0], 24, Documentation("192.0.2.0/24")),
        ([198, 51, 100, 0], 24, Documentation("198.51.100.0/24")),
        ([203, 0, 113, 0], 24, Documentation("203.0.113.0/24")),
        (
            [192, 88, 99, 0],
            24,
            Reserved("192.88.99.0/24, 6to4 relay anycast"),
        ),
        ([255, 255, 255, 255], 32, Broadcast),
        ([240, 0, 0, 0], 4, Reserved("240.0.0.0/4")),
        ([224, 0, 0, 0], 4, Multicast("224.0.0.0/4")),
    ];
    table
        .into_iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, reason)| reason)
}

/// Classifies the IPv4 address embedded in an IPv6 one; `None` means the embedded address is
/// public.
fn embedded(via: Embedding, v4: Ipv4Addr) -> Option<NonPublic> {
    classify_v4(v4).map(|inner| NonPublic::Embedded {
        via,
        v4,
        inner: Box::new(inner),
    })
}

fn low32(ip: Ipv6Addr) -> Ipv4Addr {
    Ipv4Addr::from(u128::from(ip) as u32)
}

fn classify_v6(ip: Ipv6Addr) -> Option<NonPublic> {
    use NonPublic::*;
    let v6 = |s: [u16; 8]| Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]);
    if CLOUD_METADATA_V6.contains(&ip) {
        return Some(CloudMetadata);
    }
    if ip == Ipv6Addr::UNSPECIFIED {
        return Some(Unspecified("::"));
    }
    if ip == Ipv6Addr::LOCALHOST {
        return Some(Loopback("::1/128"));
    }
    if in_v6(ip, v6([0, 0, 0, 0, 0, 0xffff, 0, 0]), 96) {
        return embedded(Embedding::Ipv4Mapped, low32(ip));
    }
    if in_v6(ip, Ipv6Addr::UNSPECIFIED, 96) {
        return embedded(Embedding::Ipv4Compatible, low32(ip));
    }
    if in_v6(ip, v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0]), 96) {
        return embedded(Embedding::Nat64, low32(ip));
    }
    if in_v6(ip, v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0]), 48) {
        // The prefix length inside /48 is a local choice, so a public-looking last 32 bits
        // proves nothing: refuse either way, but name a private embedded address if there is one.
        return Some(embedded(Embedding::LocalNat64, low32(ip)).unwrap_or(LocalNat64));
    }
    if in_v6(ip, v6([0x100, 0, 0, 0, 0, 0, 0, 0]), 64) {
        return Some(Discard);
    }
    if in_v6(ip, v6([0x2001, 0, 0, 0, 0, 0, 0, 0]), 32) {
        let client = Ipv4Addr::from(!(u128::from(ip) as u32));
        return Some(embedded(Embedding::Teredo, client).unwrap_or(Teredo));
    }
    if in_v6(ip, v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0]), 32) {
        return Some(Documentation("2001:db8::/32"));
    }
    if in_v6(ip, v6([0x3fff, 0, 0, 0, 0, 0, 0, 0]), 20) {
        return Some(Documentation("3fff::/20"));
    }
    if in_v6(ip, v6([0x2001, 0, 0, 0, 0, 0, 0, 0]), 23) {
        return Some(ProtocolAssignments("2001::/23"));
    }
    if in_v6(ip, v6([0x2002, 0, 0, 0, 0, 0, 0, 0]), 16) {
        let v4 = Ipv4Addr::from((u128::from(ip) >> 80) as u32);
        return embedded(Embedding::SixToFour, v4);
    }
    if in_v6(ip, v6([0xfc00, 0, 0, 0, 0, 0, 0, 0]), 7) {
        return Some(UniqueLocal);
    }
    if in_v6(ip, v6([0xfe80, 0, 0, 0, 0, 0, 0, 0]), 10) {
        return Some(LinkLocal("fe80::/10"));
    }
    if in_v6(ip, v6([0xfec0, 0, 0, 0, 0, 0, 0, 0]), 10) {
        return Some(SiteLocal);
    }
    if in_v6(ip, v6([0xff00, 0, 0, 0, 0, 0, 0, 0]), 8) {
        return Some(Multicast("ff00::/8"));
    }
    if !in_v6(ip, v6([0x2000, 0, 0, 0, 0, 0, 0, 0]), 3) {
        return Some(Reserved("outside global unicast 2000::/3"));
    }
    None
}

/// Parses an IP literal in every spelling a resolver accepts, or returns `None` for anything
/// that is not one (a host name, or garbage).
///
/// IPv4 follows `inet_aton(3)` / the WHATWG URL host parser: one to four dot-separated parts,
/// each decimal, octal (leading `0`) or hex (`0x`, any case); the last part fills the remaining
/// bytes (`127.1`, `10.1.1`, `2130706433`); one trailing dot is allowed. IPv6 may be bracketed,
/// may carry a zone id (`%eth0`, or `%25eth0` as in URLs) which is dropped, and may end in a
/// dotted IPv4 (`::ffff:127.0.0.1`). Why so permissive: whatever we fail to recognise as an
/// address would be handed to the resolver, which *would* recognise it.
pub fn parse_ip_literal(host: &str) -> Option<IpAddr> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']')?;
        return parse_v6(inner).map(IpAddr::V6);
    }
    if host.contains(':') {
        return parse_v6(host).map(IpAddr::V6);
    }
    parse_v4(host).map(IpAddr::V4)
}

fn parse_v6(s: &str) -> Option<Ipv6Addr> {
    let addr = match s.find('%') {
        Some(i) => {
            let zone = &s[i + 1..];
            if zone.is_empty() {
                return None;
            }
            &s[..i]
        }
        None => s,
    };
    addr.parse().ok()
}

/// Parses one inet_aton number: decimal, `0`-prefixed octal or `0x`-prefixed hex.
fn parse_v4_part(part: &str) -> Option<u64> {
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() {
        // "0x" alone is zero for the URL parser; an empty decimal part is not a number.
        return (radix == 16).then_some(0);
    }
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    // Leading zeros cannot overflow the value, only the parser: strip them first.
    let significant = digits.trim_start_matches('0');
    if significant.len() > 12 {
        return None;
    }
    if significant.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(significant, radix).ok()
}

fn parse_v4(host: &str) -> Option<Ipv4Addr> {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    let parts: Vec<&str> = host.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    let numbers = parts
        .iter()
        .map(|p| parse_v4_part(p))
        .collect::<Option<Vec<u64>>>()?;
    let (last, leading) = numbers.split_last()?;
    if leading.iter().any(|&n| n > 255) {
        return None;
    }
    let last_bits = 8 * (4 - leading.len() as u32);
    if *last >= 1u64 << last_bits {
        return None;
    }
    let mut value: u64 = 0;
    for (i, n) in leading.iter().enumerate() {
        value |= n << (24 - 8 * i as u32);
    }
    value |= last;
    Some(Ipv4Addr::from(value as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse()
            .unwrap_or_else(|e| panic!("test address {s}: {e}"))
    }

    #[test]
    fn parses_every_literal_spelling() {
        let cases: &[(&str, Option<&str>)] = &[
            ("127.0.0.1", Some("127.0.0.1")),
            ("2130706433", Some("127.0.0.1")),
            ("0177.0.0.1", Some("127.0.0.1")),
            ("0x7f.0.0.1", Some("127.0.0.1")),
            ("0x7f000001", Some("127.0.0.1")),
            ("0X7F000001", Some("127.0.0.1")),
            ("0X7F.1", Some("127.0.0.1")),
            ("127.1", Some("127.0.0.1")),
            ("127.0.1", Some("127.0.0.1")),
            ("10.1.1", Some("10.1.0.1")),
            ("10.1.257", Some("10.1.1.1")),
            ("0x7f.0.0.0x1", Some("127.0.0.1")),
            ("0177.0x0.1", Some("127.0.0.1")),
            ("017700000001", Some("127.0.0.1")),
            ("127.0.0.1.", Some("127.0.0.1")),
            ("0x7f.1.", Some("127.0.0.1")),
            ("0xa9fea9fe", Some("169.254.169.254")),
            ("0251.0376.0251.0376", Some("169.254.169.254")),
            ("2852039166", Some("169.254.169.254")),
            ("0", Some("0.0.0.0")),
            ("0x", Some("0.0.0.0")),
            ("00000000000000000000127.1", Some("87.0.0.1")),
            ("0000000000000000000000177.1", Some("127.0.0.1")),
            ("[::1]", Some("::1")),
            ("::1", Some("::1")),
            ("[0:0:0:0:0:0:0:1]", Some("::1")),
            ("fe80::1%eth0", Some("fe80::1")),
            ("[fe80::1%25eth0]", Some("fe80::1")),
            ("FE80::1", Some("fe80::1")),
            ("::ffff:127.0.0.1", Some("::ffff:127.0.0.1")),
            ("::ffff:7f00:1", Some("::ffff:127.0.0.1")),
            ("[::FFFF:7F00:1]", Some("::ffff:127.0.0.1")),
            ("8.8.8.8", Some("8.8.8.8")),
            // Not literals.
            ("", None),
            (".", None),
            ("256.0.0.1", None),
            ("1.2.3.4.5", None),
            ("127.0.0.1..", None),
            ("1..1", None),
            ("4294967296", None),
            ("127.16777216", None),
            ("08.0.0.1", None),
            ("0x7g.1", None),
            ("example.com", None),
            ("localhost", None),
            ("[::1", None),
            ("fe80::1%", None),
            ("127.0.0.1 ", None),
            ("99999999999999999999", None),
        ];
        for (input, want) in cases {
            let got = parse_ip_literal(input);
            let want = want.map(ip);
            assert_eq!(got, want, "parse_ip_literal({input:?})");
        }
    }

    /// Literal → expected class: `None` for public, `Some(substring of the reason)`.
    const CLASSES: &[(&str, Option<&str>)] = &[
        // Public.
        ("8.8.8.8", None),
        ("1.1.1.1", None),
        ("140.82.112.3", None),
        ("172.15.255.255", None),
        ("172.32.0.0", None),
        ("100.63.255.255", None),
        ("100.128.0.0", None),
        ("198.17.255.255", None),
        ("198.20.0.0", None),
        ("169.253.255.255", None),
        ("223.255.255.255", None),
        ("2606:4700:4700::1111", None),
        ("2001:4860:4860::8888", None),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::808:808", None),
        ("2002:808:808::1", None),
        // IPv4 ranges.
        ("127.0.0.1", Some("loopback (127.0.0.0/8)")),
        ("127.255.255.254", Some("loopback (127.0.0.0/8)")),
        ("127.0.1.3", Some("loopback")),
        ("0.0.0.0", Some("unspecified")),
        ("0.1.2.3", Some("0.0.0.0/8")),
        ("10.0.0.1", Some("private (10.0.0.0/8)")),
        ("10.255.255.255", Some("private (10.0.0.0/8)")),
        ("172.16.0.1", Some("private (172.16.0.0/12)")),
        ("172.31.255.255", Some("private (172.16.0.0/12)")),
        ("192.168.0.1", Some("private (192.168.0.0/16)")),
        ("192.168.255.255", Some("private (192.168.0.0/16)")),
        ("169.254.0.1", Some("link-local (169.254.0.0/16)")),
        ("169.254.169.253", Some("link-local")),
        ("100.64.0.1", Some("100.64.0.0/10")),
        ("100.127.255.255", Some("100.64.0.0/10")),
        ("198.18.0.1", Some("198.18.0.0/15")),
        ("198.19.255.255", Some("198.18.0.0/15")),
        ("192.0.0.8", Some("192.0.0.0/24")),
        ("192.0.2.1", Some("documentation (192.0.2.0/24)")),
        ("198.51.100.7", Some("documentation (198.51.100.0/24)")),
        ("203.0.113.9", Some("documentation (203.0.113.0/24)")),
        ("240.0.0.1", Some("reserved (240.0.0.0/4)")),
        ("255.255.255.254", Some("reserved (240.0.0.0/4)")),
        ("255.255.255.255", Some("broadcast")),
        ("224.0.0.1", Some("multicast (224.0.0.0/4)")),
        ("239.255.255.250", Some("multicast")),
        ("192.88.99.1", Some("6to4 relay")),
        // Cloud metadata.
        ("169.254.169.254", Some("cloud metadata")),
        ("169.254.170.2", Some("cloud metadata")),
        ("100.100.100.200", Some("cloud metadata")),
        ("192.0.0.192", Some("cloud metadata")),
        ("fd00:ec2::254", Some("cloud metadata")),
        ("::ffff:169.254.169.254", Some("cloud metadata")),
        ("64:ff9b::a9fe:a9fe", Some("cloud metadata")),
        // IPv6 ranges.
        ("::1", Some("loopback (::1/128)")),
        ("::", Some("unspecified (::)")),
        ("fc00::1", Some("unique local (fc00::/7)")),
        ("fd12:3456::1", Some("unique local")),
        ("fe80::1", Some("link-local (fe80::/10)")),
        ("febf::1", Some("link-local")),
        ("fec0::1", Some("site-local (fec0::/10)")),
        ("ff02::1", Some("multicast (ff00::/8)")),
        ("ff0e::1", Some("multicast")),
        ("2001:db8::1", Some("documentation (2001:db8::/32)")),
        ("3fff::1", Some("documentation (3fff::/20)")),
        ("100::1", Some("discard-only (100::/64)")),
        ("2001:10::1", Some("2001::/23")),
        ("4000::1", Some("reserved")),
        ("::ffff:0:7f00:1", Some("reserved")),
        // IPv4 embedded in IPv6: every form of a private v4.
        (
            "::ffff:127.0.0.1",
            Some("IPv4-mapped (::ffff:0:0/96) embedding 127.0.0.1, which is loopback"),
        ),
        ("::ffff:7f00:1", Some("loopback (127.0.0.0/8)")),
        ("::ffff:10.0.0.1", Some("private (10.0.0.0/8)")),
        ("::ffff:192.168.1.1", Some("private (192.168.0.0/16)")),
        ("::ffff:0.0.0.0", Some("unspecified")),
        (
            "::127.0.0.1",
            Some("IPv4-compatible (::/96) embedding 127.0.0.1"),
        ),
        ("::10.0.0.1", Some("private")),
        ("::172.16.0.1", Some("private (172.16.0.0/12)")),
        (
            "64:ff9b::127.0.0.1",
            Some("NAT64 (64:ff9b::/96) embedding 127.0.0.1, which is loopback"),
        ),
        ("64:ff9b::7f00:1", Some("loopback")),
        ("64:ff9b::a00:1", Some("private (10.0.0.0/8)")),
        ("64:ff9b::c0a8:101", Some("private (192.168.0.0/16)")),
        (
            "64:ff9b:1::a00:1",
            Some("local-use NAT64 (64:ff9b:1::/48) embedding 10.0.0.1"),
        ),
        (
            "64:ff9b:1::808:808",
            Some("local-use NAT64 (64:ff9b:1::/48)"),
        ),
        (
            "2002:7f00:1::",
            Some("6to4 (2002::/16) embedding 127.0.0.1, which is loopback"),
        ),
        ("2002:a00:1::1", Some("private (10.0.0.0/8)")),
        ("2002:c0a8:101::1", Some("private (192.168.0.0/16)")),
        ("2002:a9fe:a9fe::1", Some("cloud metadata")),
        // Teredo: client 127.0.0.1 is stored inverted: 80ff:fffe.
        (
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            Some("Teredo (2001::/32) embedding 127.0.0.1"),
        ),
        (
            "2001:0:4136:e378:8000:63bf:f5ff:fffe",
            Some("embedding 10.0.0.1, which is private"),
        ),
        (
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
            Some("Teredo (2001::/32)"),
        ),
    ];

    #[test]
    fn classifies_every_range() {
        for (input, want) in CLASSES {
            let class = classify(ip(input));
            match want {
                None => assert_eq!(class, AddrClass::Public, "classify({input})"),
                Some(reason) => {
                    let shown = class.to_string();
                    assert!(!class.is_public(), "classify({input}) = public");
                    assert!(
                        shown.contains(reason),
                        "classify({input}) = {shown:?}, want it to mention {reason:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn teredo_with_public_client_is_still_refused() {
        // Client 8.8.8.8, stored bit-inverted.
        let class = classify(ip("2001:0:4136:e378:8000:63bf:f7f7:f7f7"));
        assert_eq!(class, AddrClass::NonPublic(NonPublic::Teredo));
    }

    #[test]
    fn encoded_forms_classify_like_the_canonical_address() {
        let cases = [
            ("2130706433", "loopback"),
            ("0177.0.0.1", "loopback"),
            ("0x7f.0.0.1", "loopback"),
            ("0X7F.1", "loopback"),
            ("127.1", "loopback"),
            ("0x7f000001", "loopback"),
            ("127.0.0.1.", "loopback"),
            ("012.1", "private (10.0.0.0/8)"),
            ("10.1.1", "private (10.0.0.0/8)"),
            ("0xc0.0xa8.1", "private (192.168.0.0/16)"),
            ("3232235777", "private (192.168.0.0/16)"),
            ("0xa9fea9fe", "cloud metadata"),
            ("0251.0376.0251.0376", "cloud metadata"),
            ("[::ffff:a9fe:a9fe]", "cloud metadata"),
            ("[::ffff:7f00:1]", "loopback"),
            ("fe80::1%eth0", "link-local"),
            ("0", "unspecified"),
        ];
        for (input, reason) in cases {
            let addr = parse_ip_literal(input).unwrap_or_else(|| panic!("{input} parses"));
            let shown = classify(addr).to_string();
            assert!(shown.contains(reason), "{input} → {addr} → {shown:?}");
        }
    }

    #[test]
    fn cloud_metadata_is_flagged_through_embeddings() {
        for input in [
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "2002:a9fe:a9fe::",
            "fd00:ec2::254",
        ] {
            assert!(classify(ip(input)).is_cloud_metadata(), "{input}");
        }
        for input in ["169.254.169.253", "8.8.8.8", "fd00:ec2::253"] {
            assert!(!classify(ip(input)).is_cloud_metadata(), "{input}");
        }
    }

    #[test]
    fn recognises_metadata_names() {
        for name in [
            "metadata.google.internal",
            "METADATA.GOOGLE.INTERNAL",
            "metadata.google.internal.",
            "metadata",
            "Metadata.",
            "metadata.goog",
            "instance-data",
            "instance-data.ec2.internal",
            "INSTANCE-DATA.EC2.INTERNAL.",
        ] {
            assert!(is_cloud_metadata_name(name), "{name}");
        }
        for name in [
            "metadata.example.com",
            "google.internal",
            "instance",
            "api.github.com",
            "metadata..",
        ] {
            assert!(!is_cloud_metadata_name(name), "{name}");
        }
    }
}
