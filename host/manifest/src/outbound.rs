//! `allowed_outbound_hosts`: where a component may send requests, with
//! Spin's semantics. Each entry is `scheme://host[:port]`:
//!
//! - the scheme is a name (`https`) or `*` (any);
//! - the host is a name (`api.example.com`), `*` (any), `*.example.com` (any
//!   subdomain, not `example.com` itself), an IP address or a CIDR block
//!   (`10.0.0.0/8`), `self` or `self.alt` (the application itself, as
//!   Spin spells it), or `<component>.spin.internal` / `*.spin.internal`
//!   (another component of the application, in-process);
//! - the port is a number, a range `8000..8080` (end excluded, as Spin's), or
//!   `*`; when absent, the scheme's well-known port (80 for http, 443 for https).
//!
//! Entries may use application variables (`{{ host }}`); they are checked
//! when the values are known (see [`Template`](crate::variables::Template)).

use std::fmt;
use std::net::IpAddr;
use std::ops::Range;

/// The domain of requests to another component of the application
/// (Spin's service chaining): `http://<component>.spin.internal/...`.
pub const SERVICE_CHAINING_SUFFIX: &str = ".spin.internal";

/// One `allowed_outbound_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    original: String,
    scheme: Option<String>,
    host: HostRule,
    port: PortRule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostRule {
    Any,
    /// `*.example.com`, kept as `.example.com`.
    AnySubdomain(String),
    /// `self` / `self.alt`: the application's own routes.
    ToSelf,
    Name(String),
    Ip(IpAddr),
    Cidr {
        network: IpAddr,
        prefix: u8,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortRule {
    Any,
    Port(u16),
    Range(Range<u16>),
}

/// A well-known default port of a scheme.
pub fn well_known_port(scheme: &str) -> Option<u16> {
    Some(match scheme {
        "http" => 80,
        "https" => 443,
        "postgres" => 5432,
        "mysql" => 3306,
        "redis" => 6379,
        "mqtt" => 1883,
        _ => return None,
    })
}

impl AllowedHost {
    /// Parses one entry (after its variables are rendered).
    pub fn parse(entry: &str) -> Result<Self, String> {
        let trimmed = entry.trim();
        let Some((scheme, rest)) = trimmed.split_once("://") else {
            return Err(format!(
                "{entry:?} has no scheme: write scheme://host[:port] (e.g. \"https://api.example.com\"), \
                 with '*' for any part (\"*://*:*\" allows everything)"
            ));
        };
        let scheme = match scheme {
            "*" => None,
            s if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphabetic()) => {
                Some(s.to_ascii_lowercase())
            }
            s => {
                return Err(format!(
                    "{entry:?}: scheme {s:?} is not a scheme name or '*'"
                ));
            }
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') && !looks_like_cidr(rest) {
            return Err(format!("{entry:?}: an allowed host may not have a path"));
        }
        let (host, port) = split_host_port(rest);
        let port = match port {
            None => match scheme.as_deref().and_then(well_known_port) {
                Some(p) => PortRule::Port(p),
                None => {
                    return Err(format!(
                        "{entry:?}: give a port (the scheme has no well-known one), or ':*' for any"
                    ));
                }
            },
            Some("*") => PortRule::Any,
            Some(p) => match p.split_once("..") {
                Some((start, end)) => {
                    PortRule::Range(parse_port(entry, start)?..parse_port(entry, end)?)
                }
                None => PortRule::Port(parse_port(entry, p)?),
            },
        };
        let host = parse_host(entry, host)?;
        Ok(Self {
            original: entry.to_string(),
            scheme,
            host,
            port,
        })
    }

    /// Whether a request to `scheme://host:port` is allowed. `port` is the
    /// URL's, `None` when it has none (the scheme's well-known port applies).
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        self.allows_scheme(scheme) && self.allows_host(host) && self.allows_port(scheme, port)
    }

    /// Whether requests to the application itself (`self`, `self.alt`) are
    /// allowed over `scheme`.
    pub fn allows_self(&self, scheme: &str) -> bool {
        self.allows_scheme(scheme) && matches!(self.host, HostRule::ToSelf | HostRule::Any)
    }

    fn allows_scheme(&self, scheme: &str) -> bool {
        self.scheme
            .as_deref()
            .is_none_or(|s| s.eq_ignore_ascii_case(scheme))
    }

    fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ip = host.parse::<IpAddr>().ok();
        match (&self.host, ip) {
            (HostRule::Any, _) => true,
            (HostRule::ToSelf, _) => false,
            (HostRule::AnySubdomain(suffix), None) => host.to_ascii_lowercase().ends_with(suffix),
            (HostRule::Name(name), None) => host.eq_ignore_ascii_case(name),
            (HostRule::Ip(allowed), Some(ip)) => *allowed == ip,
            (HostRule::Cidr { network, prefix }, Some(ip)) => in_network(ip, *network, *prefix),
            _ => false,
        }
    }

    fn allows_port(&self, scheme: &str, port: Option<u16>) -> bool {
        let Some(port) = port.or_else(|| well_known_port(&scheme.to_ascii_lowercase())) else {
            return matches!(self.port, PortRule::Any);
        };
        match &self.port {
            PortRule::Any => true,
            PortRule::Port(p) => *p == port,
            PortRule::Range(range) => range.contains(&port),
        }
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

fn parse_port(entry: &str, port: &str) -> Result<u16, String> {
    port.parse()
        .map_err(|_| format!("{entry:?}: port {port:?} is not a number, a range (a..b) or '*'"))
}

/// `host:port`, `[v6]:port`, `host`, `[v6]`, `10.0.0.0/8:port`.
fn split_host_port(rest: &str) -> (&str, Option<&str>) {
    if let Some(after) = rest.strip_prefix('[')
        && let Some(end) = after.find(']')
    {
        let host = &rest[..end + 2];
        return (host, rest[end + 2..].strip_prefix(':'));
    }
    match rest.rsplit_once(':') {
        // A bare IPv6 address has colons of its own.
        Some((host, _)) if host.contains(':') => (rest, None),
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    }
}

fn looks_like_cidr(rest: &str) -> bool {
    let (host, _) = split_host_port(rest);
    host.split_once('/')
        .is_some_and(|(ip, len)| ip.parse::<IpAddr>().is_ok() && len.parse::<u8>().is_ok())
}

fn parse_host(entry: &str, host: &str) -> Result<HostRule, String> {
    let host = host.trim();
    if host == "*" {
        return Ok(HostRule::Any);
    }
    if host == "self" || host == "self.alt" {
        return Ok(HostRule::ToSelf);
    }
    if let Some((ip, prefix)) = host.split_once('/') {
        let network: IpAddr = ip
            .parse()
            .map_err(|_| format!("{entry:?}: {ip:?} is not an IP address"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("{entry:?}: /{prefix} is not a prefix length of {ip}"))?;
        return Ok(HostRule::Cidr { network, prefix });
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(HostRule::Ip(ip));
    }
    if let Some(domain) = host
        .strip_prefix("*.")
        .or(host.contains('*').then_some("*"))
    {
        if domain.contains('*') || domain.is_empty() {
            return Err(format!(
                "{entry:?}: a wildcard may only stand for whole leading labels, as in \"*.example.com\""
            ));
        }
        return Ok(HostRule::AnySubdomain(format!(
            ".{}",
            domain.to_ascii_lowercase()
        )));
    }
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    if !valid {
        return Err(format!(
            "{entry:?}: {host:?} is not a host name, an IP address, '*' or \"*.domain\""
        ));
    }
    Ok(HostRule::Name(host.to_ascii_lowercase()))
}

fn in_network(ip: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// A component's whole allow-list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    hosts: Vec<AllowedHost>,
}

impl OutboundPolicy {
    pub fn new(hosts: Vec<AllowedHost>) -> Self {
        Self { hosts }
    }

    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        self.hosts.iter().any(|h| h.allows(scheme, host, port))
    }

    pub fn allows_self(&self, scheme: &str) -> bool {
        self.hosts.iter().any(|h| h.allows_self(scheme))
    }
}

/// Converts the deprecated `allowed_http_hosts` (Spin 1) to
/// `allowed_outbound_hosts` entries, as Spin does: a bare host allows http
/// and https to it, `insecure:allow-all` allows every HTTP destination.
pub fn from_allowed_http_hosts(hosts: &[String]) -> Result<Vec<String>, String> {
    let mut converted = Vec::new();
    for host in hosts {
        let host = host.trim();
        match host {
            "insecure:allow-all" => {
                converted.push("http://*:*".to_string());
                converted.push("https://*:*".to_string());
            }
            "self" | "self.alt" => converted.push(format!("http://{host}")),
            _ if host.contains("://") => converted.push(host.to_string()),
            _ => {
                let bare = host.trim_end_matches('/');
                if bare.is_empty() || bare.contains('/') {
                    return Err(format!("{host:?} is not a host name"));
                }
                converted.push(format!("http://{bare}"));
                converted.push(format!("https://{bare}"));
            }
        }
    }
    Ok(converted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(entry: &str, scheme: &str, host: &str, port: Option<u16>) -> bool {
        AllowedHost::parse(entry)
            .unwrap()
            .allows(scheme, host, port)
    }

    #[test]
    fn scheme_host_and_default_port() {
        assert!(allows(
            "https://api.example.com",
            "https",
            "api.example.com",
            None
        ));
        assert!(allows(
            "https://api.example.com",
            "https",
            "API.example.com",
            Some(443)
        ));
        assert!(!allows(
            "https://api.example.com",
            "http",
            "api.example.com",
            None
        ));
        assert!(!allows(
            "https://api.example.com",
            "https",
            "api.example.com",
            Some(8443)
        ));
        assert!(!allows(
            "https://api.example.com",
            "https",
            "example.com",
            None
        ));
    }

    #[test]
    fn wildcards_and_ports() {
        assert!(allows("*://*:*", "http", "anything", Some(1)));
        assert!(allows(
            "http://*.example.com",
            "http",
            "a.b.example.com",
            None
        ));
        assert!(!allows("http://*.example.com", "http", "example.com", None));
        assert!(allows(
            "http://localhost:*",
            "http",
            "localhost",
            Some(31337)
        ));
        assert!(allows(
            "http://127.0.0.1:8000..8080",
            "http",
            "127.0.0.1",
            Some(8079)
        ));
        assert!(!allows(
            "http://127.0.0.1:8000..8080",
            "http",
            "127.0.0.1",
            Some(8080)
        ));
        assert!(allows("http://10.0.0.0/8:*", "http", "10.1.2.3", Some(80)));
        assert!(!allows("http://10.0.0.0/8:*", "http", "11.1.2.3", Some(80)));
        assert!(allows("http://[::1]:8080", "http", "[::1]", Some(8080)));
    }

    #[test]
    fn self_is_only_the_application() {
        let entry = AllowedHost::parse("http://self").unwrap();
        assert!(entry.allows_self("http"));
        assert!(!entry.allows_self("https"));
        assert!(!entry.allows("http", "self", None));
        assert!(
            AllowedHost::parse("http://self.alt")
                .unwrap()
                .allows_self("http")
        );
    }

    #[test]
    fn bad_entries_say_why() {
        for (entry, expected) in [
            ("example.com", "no scheme"),
            ("https://example.com/path", "path"),
            ("ftp://example.com", "give a port"),
            ("http://example.com:eighty", "not a number"),
            ("http://a.*.com", "wildcard"),
            ("http://exa mple.com", "not a host name"),
        ] {
            let error = AllowedHost::parse(entry).unwrap_err();
            assert!(error.contains(expected), "{entry}: {error}");
        }
    }

    #[test]
    fn allowed_http_hosts_convert_as_spin_does() {
        let converted = from_allowed_http_hosts(&[
            "example.com".into(),
            "insecure:allow-all".into(),
            "self".into(),
        ])
        .unwrap();
        assert_eq!(
            converted,
            [
                "http://example.com",
                "https://example.com",
                "http://*:*",
                "https://*:*",
                "http://self"
            ]
        );
    }
}
