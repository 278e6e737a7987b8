//! Network links: the presets PI papers use, parsing of custom `BW,RTT` links, and the cost model
//! that turns measured compute, bytes and rounds into a latency on a link.
//!
//! # The cost model
//!
//! `time = compute + bytes_up / up_bandwidth + bytes_down / down_bandwidth + rounds × RTT/2`
//!
//! A round is one flight of messages in one direction (see [`crate::net::meter`]): a request and
//! its reply are 2 rounds and cost one RTT, so each round costs one one-way latency, RTT/2. The
//! model assumes nothing overlaps (no compute during transfer, no transfer in both directions at
//! once), so it is an upper bound for protocols that pipeline; the emulated transport
//! ([`crate::net::emulate`]) reproduces it exactly for a protocol that alternates strictly.
//!
//! "Up" is client → server and "down" is server → client throughout.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a link description was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid link {input:?}: {reason} (expected a preset lan, wan, mobile, or BW,RTT such as 1gbit,10ms or 865mbit/135mbit,0ms with BW = UP/DOWN)")]
pub struct LinkError {
    /// The text that was parsed.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A network link between client and server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// A short name: a preset's name or the text it was parsed from.
    pub name: String,
    /// Bandwidth client → server, bits per second.
    pub up_bits_per_sec: u64,
    /// Bandwidth server → client, bits per second.
    pub down_bits_per_sec: u64,
    /// Round-trip time; each direction's one-way delay is half of it.
    #[serde(rename = "rtt_secs", with = "duration_secs")]
    pub rtt: Duration,
}

/// One direction of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Client → server.
    Up,
    /// Server → client.
    Down,
}

impl Link {
    /// A link with the given name, bandwidths (bits per second) and round-trip time.
    pub fn new(name: &str, up_bits_per_sec: u64, down_bits_per_sec: u64, rtt: Duration) -> Link {
        Link {
            name: name.to_owned(),
            up_bits_per_sec,
            down_bits_per_sec,
            rtt,
        }
    }

    /// LAN: 3 Gbit/s both ways, 0.3 ms RTT (OpenCheetah's throttle script).
    pub fn lan() -> Link {
        Link::new(
            "lan",
            3_000_000_000,
            3_000_000_000,
            Duration::from_micros(300),
        )
    }

    /// WAN: 400 Mbit/s both ways, 40 ms RTT (OpenCheetah's throttle script).
    pub fn wan() -> Link {
        Link::new("wan", 400_000_000, 400_000_000, Duration::from_millis(40))
    }

    /// Mobile: 865 Mbit/s up (client → server), 135 Mbit/s down (server → client), as used by
    /// Cryptonite. No RTT is documented with these figures, so it is 0: the preset isolates the
    /// effect of the asymmetric bandwidth; use a custom link such as `865mbit/135mbit,30ms` to
    /// add latency.
    pub fn mobile() -> Link {
        Link::new("mobile", 865_000_000, 135_000_000, Duration::ZERO)
    }

    /// All presets, in the order lan, wan, mobile: the order reports list them in.
    pub fn presets() -> Vec<Link> {
        vec![Link::lan(), Link::wan(), Link::mobile()]
    }

    /// The place of the preset named `name` (exactly, lower case) in [`Link::presets`], or
    /// `None` for any other link.
    pub fn preset_rank(name: &str) -> Option<usize> {
        Link::presets().iter().position(|p| p.name == name)
    }

    /// The bandwidth of `dir`, bits per second.
    pub fn bits_per_sec(&self, dir: Direction) -> u64 {
        match dir {
            Direction::Up => self.up_bits_per_sec,
            Direction::Down => self.down_bits_per_sec,
        }
    }

    /// The one-way delay, RTT/2.
    pub fn one_way_delay(&self) -> Duration {
        self.rtt / 2
    }

    /// The bandwidths and RTT without the name, e.g. `400 Mbit/s both ways, RTT 40 ms`.
    pub fn describe(&self) -> String {
        let rtt_ms = trim_float(self.rtt.as_secs_f64() * 1e3);
        if self.up_bits_per_sec == self.down_bits_per_sec {
            format!(
                "{} both ways, RTT {rtt_ms} ms",
                fmt_bits(self.up_bits_per_sec)
            )
        } else {
            format!(
                "{} up, {} down, RTT {rtt_ms} ms",
                fmt_bits(self.up_bits_per_sec),
                fmt_bits(self.down_bits_per_sec)
            )
        }
    }

    /// The modelled latency, in seconds, of a run that computed for `compute_secs`, sent
    /// `bytes_client_to_server` and `bytes_server_to_client`, in `rounds` flights: see the
    /// module documentation.
    pub fn estimate(
        &self,
        compute_secs: f64,
        bytes_client_to_server: u64,
        bytes_server_to_client: u64,
        rounds: u64,
    ) -> f64 {
        self.latency(
            compute_secs,
            bytes_client_to_server as f64,
            bytes_server_to_client as f64,
            rounds as f64,
        )
    }

    /// [`Link::estimate`] for fractional byte and round counts (a cost model's predictions).
    pub fn latency(&self, compute_secs: f64, bytes_up: f64, bytes_down: f64, rounds: f64) -> f64 {
        compute_secs
            + bytes_up * 8.0 / self.bits_per_sec(Direction::Up) as f64
            + bytes_down * 8.0 / self.bits_per_sec(Direction::Down) as f64
            + rounds * self.one_way_delay().as_secs_f64()
    }

    /// [`Link::estimate`] from the counters one party measured: `role`'s bytes sent travel up if
    /// it is the client and down if it is the server; its rounds are taken as the flights.
    pub fn estimate_for(
        &self,
        role: crate::net::handshake::Role,
        compute_secs: f64,
        counters: &crate::net::meter::Counters,
    ) -> f64 {
        let (up, down) = match role {
            crate::net::handshake::Role::Client => (counters.bytes_sent, counters.bytes_received),
            crate::net::handshake::Role::Server => (counters.bytes_received, counters.bytes_sent),
        };
        self.estimate(compute_secs, up, down, counters.rounds)
    }

    /// Parse a preset name (`lan`, `wan`, `mobile`) or a custom link `BW,RTT` where `BW` is one
    /// bandwidth for both directions or `UP/DOWN`. Bandwidths are bits per second with a unit
    /// `bit`, `kbit`, `mbit`, `gbit`, `tbit` (or `bps`, `kbps`, `mbps`, `gbps`, `tbps`, also
    /// bits; powers of 1000), case-insensitive, decimals allowed: `1gbit`, `2.5Gbit`. The RTT
    /// takes a unit `ns`, `us`, `ms` or `s` (`0` alone is allowed): `10ms`, `0.3ms`.
    pub fn parse(s: &str) -> Result<Link, LinkError> {
        let err = |reason: &str| LinkError {
            input: s.to_owned(),
            reason: reason.to_owned(),
        };
        let t = s.trim();
        let lower = t.to_ascii_lowercase();
        if let Some(preset) = Link::presets().into_iter().find(|p| p.name == lower) {
            return Ok(preset);
        }
        let (bw, rtt) = t
            .split_once(',')
            .ok_or_else(|| err("not a preset and no ',' between bandwidth and RTT"))?;
        let (up, down) = match bw.split_once('/') {
            Some((u, d)) => (
                parse_bandwidth(u).map_err(|r| err(&r))?,
                parse_bandwidth(d).map_err(|r| err(&r))?,
            ),
            None => {
                let b = parse_bandwidth(bw).map_err(|r| err(&r))?;
                (b, b)
            }
        };
        let rtt = parse_duration(rtt).map_err(|r| err(&r))?;
        Ok(Link::new(t, up, down, rtt))
    }
}

impl FromStr for Link {
    type Err = LinkError;
    fn from_str(s: &str) -> Result<Link, LinkError> {
        Link::parse(s)
    }
}

/// Split `12.5mbit` into (`12.5`, `mbit`).
fn split_number(s: &str) -> (&str, &str) {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    (&s[..end], &s[end..])
}

fn parse_number(num: &str, what: &str, whole: &str) -> Result<f64, String> {
    if num.is_empty() {
        return Err(format!("{what} {whole:?} does not start with a number"));
    }
    num.parse::<f64>()
        .map_err(|_| format!("{what} {whole:?} has a malformed number"))
}

fn parse_bandwidth(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = split_number(s);
    let value = parse_number(num, "bandwidth", s)?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "bit" | "bps" => 1e0,
        "kbit" | "kbps" => 1e3,
        "mbit" | "mbps" => 1e6,
        "gbit" | "gbps" => 1e9,
        "tbit" | "tbps" => 1e12,
        "" => return Err(format!("bandwidth {s:?} has no unit (e.g. mbit, gbit)")),
        u => {
            return Err(format!(
                "bandwidth {s:?} has an unknown unit {u:?} (use bit, kbit, mbit, gbit, tbit)"
            ))
        }
    };
    let bits = (value * scale).round();
    if !(bits >= 1.0 && bits < u64::MAX as f64) {
        return Err(format!("bandwidth {s:?} must be at least 1 bit/s"));
    }
    Ok(bits as u64)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = split_number(s);
    let value = parse_number(num, "RTT", s)?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "" if value == 0.0 => 0.0,
        "" => return Err(format!("RTT {s:?} has no unit (e.g. ms)")),
        u => {
            return Err(format!(
                "RTT {s:?} has an unknown unit {u:?} (use ns, us, ms, s)"
            ))
        }
    };
    Duration::try_from_secs_f64(value * scale).map_err(|_| format!("RTT {s:?} is out of range"))
}

fn fmt_bits(bps: u64) -> String {
    let b = bps as f64;
    let (v, u) = if b >= 1e9 {
        (b / 1e9, "Gbit/s")
    } else if b >= 1e6 {
        (b / 1e6, "Mbit/s")
    } else if b >= 1e3 {
        (b / 1e3, "kbit/s")
    } else {
        (b, "bit/s")
    };
    format!("{} {u}", trim_float(v))
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_owned()
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.describe())
    }
}

/// Serde helper: a `Duration` as fractional seconds.
mod duration_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_the_references() {
        let lan = Link::lan();
        assert_eq!(
            (lan.up_bits_per_sec, lan.down_bits_per_sec),
            (3_000_000_000, 3_000_000_000)
        );
        assert_eq!(lan.rtt, Duration::from_micros(300));
        let wan = Link::wan();
        assert_eq!(
            (wan.up_bits_per_sec, wan.rtt),
            (400_000_000, Duration::from_millis(40))
        );
        let m = Link::mobile();
        assert_eq!(
            (m.up_bits_per_sec, m.down_bits_per_sec),
            (865_000_000, 135_000_000)
        );
        for (i, p) in Link::presets().into_iter().enumerate() {
            assert_eq!(Link::parse(&p.name).unwrap(), p);
            assert_eq!(Link::parse(&p.name.to_uppercase()).unwrap(), p);
            assert_eq!(Link::preset_rank(&p.name), Some(i));
        }
        assert_eq!(Link::preset_rank("1gbit,10ms"), None);
        assert_eq!(Link::preset_rank("LAN"), None);
    }

    #[test]
    fn custom_links_parse() {
        let l = Link::parse("1gbit,10ms").unwrap();
        assert_eq!(
            (l.up_bits_per_sec, l.down_bits_per_sec),
            (1_000_000_000, 1_000_000_000)
        );
        assert_eq!(l.rtt, Duration::from_millis(10));
        let l: Link = "100mbit,50ms".parse().unwrap();
        assert_eq!(
            (l.up_bits_per_sec, l.rtt),
            (100_000_000, Duration::from_millis(50))
        );
        let l = Link::parse(" 865Mbit/135mbps , 0.3ms ").unwrap();
        assert_eq!(
            (l.up_bits_per_sec, l.down_bits_per_sec),
            (865_000_000, 135_000_000)
        );
        assert_eq!(l.rtt, Duration::from_micros(300));
        let l = Link::parse("2.5gbit,0").unwrap();
        assert_eq!((l.up_bits_per_sec, l.rtt), (2_500_000_000, Duration::ZERO));
        assert_eq!(
            Link::parse("10kbit,1s").unwrap().rtt,
            Duration::from_secs(1)
        );
        assert_eq!(
            Link::parse("10kbit,250us").unwrap().rtt,
            Duration::from_micros(250)
        );
    }

    #[test]
    fn bad_links_are_clear_errors() {
        for (input, needle) in [
            ("fast", "no ','"),
            ("1gbit", "no ','"),
            ("1gbyte,10ms", "unknown unit \"gbyte\""),
            ("1,10ms", "no unit"),
            ("gbit,10ms", "does not start with a number"),
            ("1.2.3gbit,10ms", "malformed number"),
            ("0gbit,10ms", "at least 1 bit/s"),
            ("1gbit,10", "no unit"),
            ("1gbit,10 parsecs", "unknown unit"),
            ("1gbit/,10ms", "does not start with a number"),
        ] {
            let e = Link::parse(input).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(needle), "{input}: {msg}");
            assert!(msg.contains(&format!("{input:?}")), "{input}: {msg}");
        }
    }

    #[test]
    fn estimate_is_compute_plus_bytes_plus_half_rtt_per_round() {
        // 8 Mbit/s = 1 byte/µs up, 4 Mbit/s down, 10 ms RTT.
        let l = Link::new("t", 8_000_000, 4_000_000, Duration::from_millis(10));
        let e = l.estimate(0.5, 1_000_000, 1_000_000, 4);
        let expected = 0.5 + 1.0 + 2.0 + 4.0 * 0.005;
        assert!((e - expected).abs() < 1e-12, "{e} vs {expected}");
        // A request/response of nothing costs exactly one RTT.
        assert!((l.estimate(0.0, 0, 0, 2) - 0.010).abs() < 1e-15);
        // Direction matters on an asymmetric link.
        let m = Link::mobile();
        assert!(m.estimate(0.0, 0, 1 << 20, 0) > m.estimate(0.0, 1 << 20, 0, 0));
        // The two parties' mirrored counters give the same estimate.
        use crate::net::{handshake::Role, meter::Counters};
        let client = Counters {
            bytes_sent: 10,
            bytes_received: 5000,
            rounds: 3,
            recv_wait_ns: 0,
        };
        let server = Counters {
            bytes_sent: client.bytes_received,
            bytes_received: client.bytes_sent,
            ..client
        };
        // Fractional counts (a cost model's predictions) follow the same formula.
        let l2 = Link::parse("8mbit/16mbit,100ms").unwrap();
        assert!((l2.latency(1.0, 1e6, 2e6, 4.0) - 3.2).abs() < 1e-12);
        assert_eq!(
            l.latency(0.5, 1e6, 1e6, 4.0),
            l.estimate(0.5, 1_000_000, 1_000_000, 4)
        );
        let e = l.estimate_for(Role::Client, 0.1, &client);
        assert_eq!(e, l.estimate(0.1, 10, 5000, 3));
        assert_eq!(e, l.estimate_for(Role::Server, 0.1, &server));
    }

    #[test]
    fn display_and_serde() {
        assert_eq!(
            Link::wan().to_string(),
            "wan (400 Mbit/s both ways, RTT 40 ms)"
        );
        assert_eq!(
            Link::lan().to_string(),
            "lan (3 Gbit/s both ways, RTT 0.3 ms)"
        );
        assert_eq!(
            Link::mobile().to_string(),
            "mobile (865 Mbit/s up, 135 Mbit/s down, RTT 0 ms)"
        );
        let json = serde_json::to_string(&Link::wan()).unwrap();
        assert!(json.contains("\"rtt_secs\":0.04"), "{json}");
        let back: Link = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Link::wan());
    }
}
