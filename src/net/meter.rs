//! Traffic accounting: [`Metered`] wraps any [`Channel`] and counts bytes, rounds and time spent
//! waiting for the peer, per phase and per layer; [`ChannelStats`] is the serializable result.
//!
//! # What a round is
//!
//! Each party sees its own sequence of `send` and `recv` calls. A *flight* is a maximal run of
//! calls in one direction: a run of sends not interrupted by a receive (an outgoing flight) or a
//! run of receives not interrupted by a send (an incoming flight). Calls that move zero bytes do
//! not count and do not interrupt a run.
//!
//! `rounds` is the number of flights: the number of changes of direction, where the first
//! transfer of the connection counts as a change from silence. A request and its response are
//! therefore 2 rounds on both sides, and cost one RTT — which is why the cost model
//! ([`crate::net::Link::estimate`]) charges RTT/2, one one-way latency, per round.
//!
//! A flight is attributed to the scope (phase, layer) that is current when it *starts*; the
//! direction is not reset by [`Channel::set_scope`], so a flight that spans two layers counts once
//! and the per-scope rounds add up to the total exactly.
//!
//! The count is local: when both parties send at the same time (e.g. the handshake, where each
//! sends its hello before reading the other's) each counts 2 rounds though only one one-way
//! latency lies on the critical path. For protocols that alternate strictly, both parties count
//! the same number; otherwise the count is an upper bound on the latencies that cost time.
//!
//! # Time waiting
//!
//! `recv_wait_ns` is the wall time spent inside the inner channel's `recv`: blocked waiting for
//! the peer's data (plus the flush of our own buffered data that every `recv` performs first and
//! the copy out of the receive buffer, both small next to a wait). Subtracting it from a party's
//! wall time separates its own compute from waiting.

use std::collections::HashMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::channel::{Channel, NetError, Phase, Scope};

/// The counters of one scope (or a sum of scopes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Bytes this party sent.
    pub bytes_sent: u64,
    /// Bytes this party received.
    pub bytes_received: u64,
    /// Flights that started in this scope (see the module documentation).
    pub rounds: u64,
    /// Nanoseconds spent inside `recv`, waiting for the peer.
    pub recv_wait_ns: u64,
}

impl Counters {
    /// Bytes in both directions.
    pub fn bytes_total(&self) -> u64 {
        self.bytes_sent + self.bytes_received
    }

    /// The time spent waiting in `recv`, in seconds.
    pub fn recv_wait_secs(&self) -> f64 {
        self.recv_wait_ns as f64 * 1e-9
    }

    /// The field-wise sum.
    pub fn plus(&self, o: &Counters) -> Counters {
        Counters {
            bytes_sent: self.bytes_sent + o.bytes_sent,
            bytes_received: self.bytes_received + o.bytes_received,
            rounds: self.rounds + o.rounds,
            recv_wait_ns: self.recv_wait_ns + o.recv_wait_ns,
        }
    }

    /// The field-wise difference, saturating at zero (counters only grow, so this is exact when
    /// `earlier` is a snapshot of the same counters).
    pub fn minus(&self, earlier: &Counters) -> Counters {
        Counters {
            bytes_sent: self.bytes_sent.saturating_sub(earlier.bytes_sent),
            bytes_received: self.bytes_received.saturating_sub(earlier.bytes_received),
            rounds: self.rounds.saturating_sub(earlier.rounds),
            recv_wait_ns: self.recv_wait_ns.saturating_sub(earlier.recv_wait_ns),
        }
    }

    /// True if nothing was counted.
    pub fn is_zero(&self) -> bool {
        *self == Counters::default()
    }
}

/// The counters of one named layer within a phase.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerStats {
    /// The layer name given to [`Channel::set_scope`].
    pub layer: String,
    /// Its counters.
    #[serde(flatten)]
    pub counters: Counters,
}

/// The counters of one phase.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseStats {
    /// Everything in this phase: `unattributed` plus every layer.
    pub total: Counters,
    /// Traffic in this phase while no layer was set.
    pub unattributed: Counters,
    /// One entry per layer, in the order the layers were first entered.
    pub layers: Vec<LayerStats>,
}

impl PhaseStats {
    /// The counters of `layer`, if it was entered in this phase.
    pub fn layer(&self, layer: &str) -> Option<&Counters> {
        self.layers
            .iter()
            .find(|l| l.layer == layer)
            .map(|l| &l.counters)
    }

    fn recompute_total(&mut self) {
        self.total = self
            .layers
            .iter()
            .fold(self.unattributed, |acc, l| acc.plus(&l.counters));
    }
}

/// A snapshot of everything a [`Metered`] channel counted, from one party's point of view.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelStats {
    /// All phases together.
    pub total: Counters,
    /// The setup phase (handshake, base OTs).
    pub setup: PhaseStats,
    /// The offline phase.
    pub offline: PhaseStats,
    /// The online phase.
    pub online: PhaseStats,
}

impl ChannelStats {
    /// The counters of `phase`.
    pub fn phase(&self, phase: Phase) -> &PhaseStats {
        match phase {
            Phase::Setup => &self.setup,
            Phase::Offline => &self.offline,
            Phase::Online => &self.online,
        }
    }

    fn phase_mut(&mut self, phase: Phase) -> &mut PhaseStats {
        match phase {
            Phase::Setup => &mut self.setup,
            Phase::Offline => &mut self.offline,
            Phase::Online => &mut self.online,
        }
    }

    /// The counters of `layer` in `phase`, if it was entered.
    pub fn layer(&self, phase: Phase, layer: &str) -> Option<&Counters> {
        self.phase(phase).layer(layer)
    }

    /// What was counted between the snapshot `earlier` and this one (of the same channel).
    ///
    /// Layers that saw no traffic in between are left out.
    pub fn since(&self, earlier: &ChannelStats) -> ChannelStats {
        let mut out = ChannelStats::default();
        for phase in [Phase::Setup, Phase::Offline, Phase::Online] {
            let (now, then) = (self.phase(phase), earlier.phase(phase));
            let p = out.phase_mut(phase);
            p.unattributed = now.unattributed.minus(&then.unattributed);
            for l in &now.layers {
                let d = match then.layer(&l.layer) {
                    Some(c) => l.counters.minus(c),
                    None => l.counters,
                };
                if !d.is_zero() {
                    p.layers.push(LayerStats {
                        layer: l.layer.clone(),
                        counters: d,
                    });
                }
            }
            p.recompute_total();
        }
        out.recompute_total();
        out
    }

    /// The same traffic from the other end of the channel: bytes sent and received swapped,
    /// flights kept (a strictly alternating protocol counts the same flights on both sides), no
    /// waiting time (the peer's is not known here). What a party reports for its peer when the
    /// peer does not share its own counters.
    pub fn as_seen_by_peer(&self) -> ChannelStats {
        let flip = |c: &Counters| Counters {
            bytes_sent: c.bytes_received,
            bytes_received: c.bytes_sent,
            rounds: c.rounds,
            recv_wait_ns: 0,
        };
        let mut out = self.clone();
        for phase in [Phase::Setup, Phase::Offline, Phase::Online] {
            let p = out.phase_mut(phase);
            p.unattributed = flip(&p.unattributed);
            for l in &mut p.layers {
                l.counters = flip(&l.counters);
            }
            p.recompute_total();
        }
        out.recompute_total();
        out
    }

    fn recompute_total(&mut self) {
        self.total = self
            .setup
            .total
            .plus(&self.offline.total)
            .plus(&self.online.total);
    }
}

/// The direction of the last transfer, for counting flights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Silent,
    Sending,
    Receiving,
}

/// One scope's counters inside a [`Metered`].
#[derive(Debug)]
struct Slot {
    phase: Phase,
    layer: Option<String>,
    counters: Counters,
}

fn phase_index(p: Phase) -> usize {
    match p {
        Phase::Setup => 0,
        Phase::Offline => 1,
        Phase::Online => 2,
    }
}

/// A [`Channel`] that counts what passes through it; see the module documentation for what
/// exactly is counted.
///
/// Sends and receives cost an addition and a comparison (plus two clock reads per receive); the
/// only map lookup happens in [`Channel::set_scope`], and a scope's slot is allocated once, the
/// first time it is entered.
#[derive(Debug)]
pub struct Metered<C: Channel> {
    inner: C,
    slots: Vec<Slot>,
    /// Slot of each phase's layer-less scope, by phase index.
    phase_slots: [usize; 3],
    /// Slot of each named layer, per phase index.
    layer_slots: [HashMap<String, usize>; 3],
    cur: usize,
    dir: Direction,
    scope: Scope,
}

impl<C: Channel> Metered<C> {
    /// Start counting on `inner`, in the setup phase with no layer.
    pub fn new(inner: C) -> Self {
        let slots = [Phase::Setup, Phase::Offline, Phase::Online]
            .into_iter()
            .map(|phase| Slot {
                phase,
                layer: None,
                counters: Counters::default(),
            })
            .collect();
        let mut m = Metered {
            inner,
            slots,
            phase_slots: [0, 1, 2],
            layer_slots: Default::default(),
            cur: 0,
            dir: Direction::Silent,
            scope: Scope::new(),
        };
        m.inner.set_scope(Phase::Setup, None);
        m
    }

    /// The current scope.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// A snapshot of everything counted so far.
    pub fn stats(&self) -> ChannelStats {
        let mut out = ChannelStats::default();
        for s in &self.slots {
            let p = out.phase_mut(s.phase);
            match &s.layer {
                None => p.unattributed = s.counters,
                Some(l) => p.layers.push(LayerStats {
                    layer: l.clone(),
                    counters: s.counters,
                }),
            }
        }
        for phase in [Phase::Setup, Phase::Offline, Phase::Online] {
            out.phase_mut(phase).recompute_total();
        }
        out.recompute_total();
        out
    }

    /// The wrapped channel.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// The wrapped channel, mutably (traffic sent through it directly is not counted).
    pub fn inner_mut(&mut self) -> &mut C {
        &mut self.inner
    }

    /// Stop counting and return the wrapped channel.
    pub fn into_inner(self) -> C {
        self.inner
    }
}

impl<C: Channel> Channel for Metered<C> {
    #[inline]
    fn send(&mut self, bytes: &[u8]) -> Result<(), NetError> {
        if !bytes.is_empty() {
            let c = &mut self.slots[self.cur].counters;
            c.bytes_sent += bytes.len() as u64;
            if self.dir != Direction::Sending {
                self.dir = Direction::Sending;
                c.rounds += 1;
            }
        }
        self.inner.send(bytes)
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<(), NetError> {
        if buf.is_empty() {
            return self.inner.recv(buf);
        }
        let start = Instant::now();
        let r = self.inner.recv(buf);
        let waited = start.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        let c = &mut self.slots[self.cur].counters;
        c.recv_wait_ns += waited;
        if r.is_ok() {
            c.bytes_received += buf.len() as u64;
            if self.dir != Direction::Receiving {
                self.dir = Direction::Receiving;
                c.rounds += 1;
            }
        }
        r
    }

    fn flush(&mut self) -> Result<(), NetError> {
        self.inner.flush()
    }

    fn set_scope(&mut self, phase: Phase, layer: Option<&str>) {
        let pi = phase_index(phase);
        self.cur = match layer {
            None => self.phase_slots[pi],
            Some(l) => match self.layer_slots[pi].get(l) {
                Some(&i) => i,
                None => {
                    let i = self.slots.len();
                    self.slots.push(Slot {
                        phase,
                        layer: Some(l.to_owned()),
                        counters: Counters::default(),
                    });
                    self.layer_slots[pi].insert(l.to_owned(), i);
                    i
                }
            },
        };
        self.scope.set(phase, layer);
        self.inner.set_scope(phase, layer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::channel::{mem_pair, ChannelExt, NetError};
    use std::time::Duration;

    /// Run `f` on the peer end of a metered in-memory pair in a thread, `g` on ours.
    fn pair_run<F, G>(f: F, g: G) -> (ChannelStats, ChannelStats)
    where
        F: FnOnce(&mut Metered<crate::net::MemChannel>) -> Result<(), NetError> + Send + 'static,
        G: FnOnce(&mut Metered<crate::net::MemChannel>) -> Result<(), NetError>,
    {
        let (a, b) = mem_pair(Duration::from_secs(10));
        let t = std::thread::spawn(move || {
            let mut b = Metered::new(b);
            f(&mut b).unwrap();
            b.flush().unwrap();
            b.stats()
        });
        let mut a = Metered::new(a);
        g(&mut a).unwrap();
        a.flush().unwrap();
        (a.stats(), t.join().unwrap())
    }

    #[test]
    fn request_response_is_two_rounds_on_both_sides() {
        let (a, b) = pair_run(
            |b| {
                let mut q = [0u8; 100];
                b.recv(&mut q)?;
                b.send(&[7u8; 300])
            },
            |a| {
                a.send(&[1u8; 60])?;
                a.send(&[2u8; 40])?;
                let mut r = [0u8; 300];
                a.recv(&mut r[..200])?;
                a.recv(&mut r[200..])
            },
        );
        assert_eq!(a.total.bytes_sent, 100);
        assert_eq!(a.total.bytes_received, 300);
        assert_eq!(b.total.bytes_sent, 300);
        assert_eq!(b.total.bytes_received, 100);
        assert_eq!(a.total.rounds, 2);
        assert_eq!(b.total.rounds, 2);
        // Nothing was scoped: all in setup, unattributed.
        assert_eq!(a.setup.unattributed, a.total);
        assert!(a.offline.total.is_zero() && a.online.total.is_zero());
    }

    #[test]
    fn the_peer_view_of_alternating_traffic_is_the_peers_own_count() {
        let (a, b) = pair_run(
            |b| {
                b.set_scope(Phase::Offline, Some("conv1"));
                let mut q = [0u8; 24];
                b.recv(&mut q)?;
                b.send(&[7u8; 300])?;
                b.set_scope(Phase::Online, Some("relu1"));
                b.recv(&mut q[..8])
            },
            |a| {
                a.set_scope(Phase::Offline, Some("conv1"));
                a.send(&[1u8; 24])?;
                let mut r = [0u8; 300];
                a.recv(&mut r)?;
                a.set_scope(Phase::Online, Some("relu1"));
                a.send_u64(3)
            },
        );
        let mirrored = a.as_seen_by_peer();
        let strip = |s: &ChannelStats| {
            let mut s = s.clone();
            for p in [&mut s.setup, &mut s.offline, &mut s.online] {
                p.total.recv_wait_ns = 0;
                p.unattributed.recv_wait_ns = 0;
                p.layers
                    .iter_mut()
                    .for_each(|l| l.counters.recv_wait_ns = 0);
            }
            s.total.recv_wait_ns = 0;
            s
        };
        assert_eq!(mirrored, strip(&b));
    }

    #[test]
    fn per_phase_and_layer_attribution() {
        let (a, b) = pair_run(
            |b| {
                b.set_scope(Phase::Offline, Some("conv1"));
                let mut buf = [0u8; 16];
                b.recv(&mut buf)?;
                b.set_scope(Phase::Online, Some("relu1"));
                b.send_u64(5)?;
                b.recv(&mut buf[..8])?;
                b.set_scope(Phase::Online, Some("conv2"));
                b.send_u64(6)?;
                b.set_scope(Phase::Online, Some("relu1"));
                b.send_u64(7)
            },
            |a| {
                a.set_scope(Phase::Offline, Some("conv1"));
                a.send(&[0u8; 16])?;
                a.set_scope(Phase::Online, Some("relu1"));
                a.recv_u64()?;
                a.send_u64(1)?;
                a.set_scope(Phase::Online, None);
                a.recv_u64()?;
                a.recv_u64()?;
                Ok(())
            },
        );
        // Client side.
        assert_eq!(a.offline.layer("conv1").unwrap().bytes_sent, 16);
        let relu1 = a.online.layer("relu1").unwrap();
        assert_eq!(
            (relu1.bytes_sent, relu1.bytes_received, relu1.rounds),
            (8, 8, 2)
        );
        assert_eq!(a.online.unattributed.bytes_received, 16);
        // The last two u64s form one incoming flight, counted where it started.
        assert_eq!(a.online.unattributed.rounds, 1);
        assert_eq!(a.total.rounds, 4);
        assert_eq!(a.online.layers.len(), 1);
        // Server side: relu1 was re-entered, so its counters accumulate in one entry.
        let names: Vec<_> = b.online.layers.iter().map(|l| l.layer.as_str()).collect();
        assert_eq!(names, ["relu1", "conv2"]);
        let relu1 = b.online.layer("relu1").unwrap();
        assert_eq!((relu1.bytes_sent, relu1.bytes_received), (16, 8));
        // Flights: recv (conv1), send (relu1), recv (relu1), send (conv2; continues into relu1).
        assert_eq!(b.offline.total.rounds, 1);
        assert_eq!(relu1.rounds, 2);
        assert_eq!(b.online.layer("conv2").unwrap().rounds, 1);
        assert_eq!(b.total.rounds, 4);
        // Totals add up and mirror the peer.
        assert_eq!(a.total.bytes_sent, b.total.bytes_received);
        assert_eq!(a.total.bytes_received, b.total.bytes_sent);
        for s in [&a, &b] {
            let sum = s.setup.total.plus(&s.offline.total).plus(&s.online.total);
            assert_eq!(sum, s.total);
        }
    }

    #[test]
    fn snapshot_diff_isolates_an_interval() {
        let (a, _) = pair_run(
            |b| {
                let mut buf = [0u8; 24];
                b.recv(&mut buf)?;
                b.send(&buf)
            },
            |a| {
                a.set_scope(Phase::Online, Some("x"));
                a.send(&[1u8; 8])?;
                let before = a.stats();
                a.send(&[1u8; 16])?;
                a.set_scope(Phase::Online, Some("y"));
                let mut buf = [0u8; 24];
                a.recv(&mut buf)?;
                let d = a.stats().since(&before);
                assert_eq!(d.total.bytes_sent, 16);
                assert_eq!(d.total.bytes_received, 24);
                // The send of 16 continued the flight begun before the snapshot.
                assert_eq!(d.online.layer("x").unwrap().rounds, 0);
                assert_eq!(d.online.layer("y").unwrap().rounds, 1);
                assert!(d.setup.total.is_zero());
                Ok(())
            },
        );
        assert_eq!(a.total.bytes_sent, 24);
    }

    #[test]
    fn recv_wait_counts_blocking_time() {
        let (a, _) = pair_run(
            |b| {
                std::thread::sleep(Duration::from_millis(30));
                b.send_u64(1)
            },
            |a| {
                a.set_scope(Phase::Online, Some("wait"));
                a.recv_u64().map(|_| ())
            },
        );
        // A lower bound only: the peer slept 30 ms before sending.
        assert!(a.online.layer("wait").unwrap().recv_wait_ns >= 30_000_000);
    }

    #[test]
    fn stats_serialize_round_trip() {
        let (a, _) = pair_run(
            |b| b.recv_u64().map(|_| ()),
            |a| {
                a.set_scope(Phase::Offline, Some("gc"));
                a.send_u64(3)
            },
        );
        let json = serde_json::to_string(&a).unwrap();
        assert!(json.contains("\"layer\":\"gc\""));
        let back: ChannelStats = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
    }

    proptest::proptest! {
        /// Counting checked against a direct computation from the sequence of operations:
        /// bytes per scope, and flights = maximal runs of one direction, attributed to the scope
        /// where they start.
        #[test]
        fn counts_match_the_operation_sequence(
            ops in proptest::collection::vec((0usize..4, proptest::bool::ANY, 0usize..50), 1..60),
        ) {
            const SCOPES: [(Phase, Option<&str>); 4] = [
                (Phase::Setup, None),
                (Phase::Offline, Some("a")),
                (Phase::Online, Some("a")),
                (Phase::Online, Some("b")),
            ];
            let (a, mut b) = mem_pair(Duration::from_secs(5));
            let mut a = Metered::new(a);
            let mut expected = [Counters::default(); 4];
            let mut last_dir = None;
            let buf = [0u8; 50];
            let mut rbuf = [0u8; 50];
            for &(scope, sending, n) in &ops {
                let (phase, layer) = SCOPES[scope];
                a.set_scope(phase, layer);
                let e = &mut expected[scope];
                if sending {
                    a.send(&buf[..n]).unwrap();
                    a.flush().unwrap();
                    b.recv(&mut rbuf[..n]).unwrap();
                    e.bytes_sent += n as u64;
                } else {
                    b.send(&buf[..n]).unwrap();
                    b.flush().unwrap();
                    a.recv(&mut rbuf[..n]).unwrap();
                    e.bytes_received += n as u64;
                }
                if n > 0 && last_dir != Some(sending) {
                    e.rounds += 1;
                    last_dir = Some(sending);
                }
            }
            let st = a.stats();
            for (i, &(phase, layer)) in SCOPES.iter().enumerate() {
                let got = match layer {
                    None => st.phase(phase).unattributed,
                    Some(l) => st.layer(phase, l).copied().unwrap_or_default(),
                };
                proptest::prop_assert_eq!(got.bytes_sent, expected[i].bytes_sent);
                proptest::prop_assert_eq!(got.bytes_received, expected[i].bytes_received);
                proptest::prop_assert_eq!(got.rounds, expected[i].rounds);
            }
            let sum = expected.iter().fold(Counters::default(), |acc, c| acc.plus(c));
            proptest::prop_assert_eq!(st.total.bytes_total(), sum.bytes_total());
            proptest::prop_assert_eq!(st.total.rounds, sum.rounds);
        }
    }

    #[test]
    fn errors_carry_the_scope() {
        let (a, _b) = mem_pair(Duration::from_millis(50));
        let mut a = Metered::new(a);
        a.set_scope(Phase::Offline, Some("relu7"));
        let err = a.recv_u64().unwrap_err();
        assert!(matches!(err, NetError::Timeout { .. }));
        assert!(
            err.to_string().contains("offline phase, layer relu7"),
            "{err}"
        );
        assert_eq!(a.stats().total.bytes_received, 0);
    }
}
