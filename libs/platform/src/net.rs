//! Sets of IP addresses written as settings: `10.0.0.0/8, 192.0.2.7, ::1` (trusted proxies,
//! addresses exempt from a limit). The user and admission services still carry copies of their
//! own; new code uses this one.
//!
//! ```
//! use platform::net::IpBlocks;
//! let blocks: IpBlocks = "10.0.0.0/8, ::1".parse().unwrap();
//! assert!(blocks.contains("10.1.2.3".parse().unwrap()));
//! assert!(blocks.contains("::ffff:10.9.9.9".parse().unwrap()));
//! assert!(!blocks.contains("192.0.2.1".parse().unwrap()));
//! ```

use std::net::IpAddr;

use serde::{Deserialize, Deserializer};

/// IP addresses and CIDR blocks; empty contains nothing. Deserializes from a list of entries or
/// one comma-separated string (what an environment variable holds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpBlocks(Vec<(IpAddr, u8)>);

impl IpBlocks {
    /// The loopback addresses: `127.0.0.0/8` and `::1`.
    pub fn loopback() -> Self {
        Self(vec![
            (IpAddr::from([127, 0, 0, 0]), 8),
            (IpAddr::from(std::net::Ipv6Addr::LOCALHOST), 128),
        ])
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is in one of the blocks (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|&(net, len)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        })
    }

    /// The client behind `peer`: `peer` itself unless it is in this set (a trusted proxy); then
    /// `forwarded` (the `X-Forwarded-For` values in order) is walked from the right, past further
    /// trusted proxies, and the first other address is the client. An entry that is not an IP
    /// address ends the walk at the last trusted hop: no proxy we trust wrote it.
    pub fn client<'a>(
        &self,
        peer: IpAddr,
        forwarded: impl DoubleEndedIterator<Item = &'a str>,
    ) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.contains(client) {
            return client;
        }
        for entry in forwarded.flat_map(|v| v.split(',')).rev() {
            match entry.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip.to_canonical();
                    if !self.contains(client) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        client
    }
}

impl std::str::FromStr for IpBlocks {
    type Err = String;

    /// A comma-separated list of addresses and `address/prefix` blocks; empty is the empty set.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut nets = Vec::new();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (addr, len) = match entry.split_once('/') {
                Some((a, l)) => (a, Some(l)),
                None => (entry, None),
            };
            let bad = || format!("`{entry}` is not an IP address or CIDR block");
            let addr = addr.parse::<IpAddr>().map_err(|_| bad())?.to_canonical();
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let len = match len {
                Some(l) => l.parse::<u8>().ok().filter(|l| *l <= max).ok_or_else(bad)?,
                None => max,
            };
            nets.push((addr, len));
        }
        Ok(Self(nets))
    }
}

impl<'de> Deserialize<'de> for IpBlocks {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            List(Vec<String>),
            One(String),
        }
        let joined = match Raw::deserialize(d)? {
            Raw::List(list) => list.join(","),
            Raw::One(one) => one,
        };
        joined.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_match_addresses_and_prefixes() {
        let t = IpBlocks::loopback();
        assert!(t.contains(ip("127.0.0.1")) && t.contains(ip("127.9.9.9")));
        assert!(t.contains(ip("::1")) && t.contains(ip("::ffff:127.0.0.1")));
        assert!(!t.contains(ip("10.0.0.1")) && !t.contains(ip("::2")));
        let t: IpBlocks = "10.0.0.0/8, 192.0.2.7 ,2001:db8::/32".parse().unwrap();
        assert!(t.contains(ip("10.200.0.1")) && t.contains(ip("192.0.2.7")));
        assert!(!t.contains(ip("192.0.2.8")) && !t.contains(ip("127.0.0.1")));
        assert!(t.contains(ip("2001:db8::1")) && !t.contains(ip("2001:db9::1")));
        let all: IpBlocks = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        assert!("".parse::<IpBlocks>().unwrap().is_empty());
        for bad in ["10.0.0.0/33", "example.com", "10.0.0.1/x", "::1/129"] {
            assert!(bad.parse::<IpBlocks>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies: IpBlocks = "10.0.0.0/8".parse().unwrap();
        let client = |peer: &str, xff: &[&str]| proxies.client(ip(peer), xff.iter().copied());
        // An untrusted peer is the client, whatever it claims.
        assert_eq!(client("203.0.113.5", &["198.51.100.1"]), ip("203.0.113.5"));
        // A trusted one: the rightmost entry it did not itself forward from another proxy.
        assert_eq!(
            client("10.0.0.2", &["198.51.100.1, 203.0.113.9, 10.0.0.7"]),
            ip("203.0.113.9")
        );
        assert_eq!(
            client("10.0.0.2", &["198.51.100.1", "203.0.113.9"]),
            ip("203.0.113.9")
        );
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(client("10.0.0.2", &["junk, 10.0.0.9"]), ip("10.0.0.9"));
        assert_eq!(client("10.0.0.2", &[]), ip("10.0.0.2"));
    }
}
