//! Link emulation: an in-memory channel pair that enforces a [`Link`]'s bandwidth per direction
//! and its one-way delay, so that a run through it takes what the link would make it take.
//!
//! # Model
//!
//! Each direction is a FIFO wire with a sender-side [`TokenBucket`] (rate = the direction's
//! bandwidth, burst 0 by default) followed by a propagation delay of RTT/2:
//!
//! - a flushed chunk of `n` bytes is scheduled on the wire after everything sent before it; its
//!   last byte leaves at `done` (the token bucket's answer) and it becomes readable by the peer at
//!   `done + RTT/2`. The receiver sleeps until then.
//! - the sender may run ahead of the wire by at most `send_buffer_bytes` (like a kernel socket
//!   buffer): a flush that would queue more blocks until the excess has drained.
//!
//! With burst 0, a flight of `n` bytes that starts when the wire is idle is fully readable
//! `n / bandwidth + RTT/2` later: exactly the cost model of [`Link::estimate`]. For a protocol
//! that alternates strictly and computes nothing, the emulated time equals the estimate (tested
//! below with a [`ManualClock`]).
//!
//! All times are read from a [`Clock`], so the arithmetic is tested deterministically with a
//! [`ManualClock`] (whose `sleep_until` just moves time forward) and runs for real on a
//! [`SystemClock`]. Sleeps are to absolute deadlines computed from the schedule, so the
//! oversleeping of real sleeps does not accumulate from chunk to chunk.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::channel::{Channel, NetError, Phase, Scope};
use super::link::{Direction, Link};

/// A source of time for the emulator.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The time elapsed since the clock's origin.
    fn now(&self) -> Duration;
    /// Return once `now() >= t` (at once if it already is).
    fn sleep_until(&self, t: Duration);
}

/// Real time, from the moment the clock was made.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> SystemClock {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
    fn sleep_until(&self, t: Duration) {
        let now = self.now();
        if t > now {
            std::thread::sleep(t - now);
        }
    }
}

/// Virtual time for deterministic tests: it stands still until someone sleeps or calls
/// [`ManualClock::advance`]; `sleep_until(t)` moves it to `t` at once.
#[derive(Debug, Default)]
pub struct ManualClock {
    ns: AtomicU64,
}

impl ManualClock {
    /// A clock at time zero.
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// Move time forward by `d` (models compute).
    pub fn advance(&self, d: Duration) {
        self.ns.fetch_add(to_ns(d), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.ns.load(Ordering::SeqCst))
    }
    fn sleep_until(&self, t: Duration) {
        self.ns.fetch_max(to_ns(t), Ordering::SeqCst);
    }
}

fn to_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A token bucket that may go into debt: the sender-side shaper of one direction.
///
/// Tokens (bytes) accrue at `bits_per_sec / 8` per second up to `burst_bytes`. Reserving `n`
/// bytes takes `n` tokens, possibly going negative; the reservation completes — the last byte
/// leaves — when the debt has been repaid. With `burst_bytes = 0` this is a FIFO wire: a chunk
/// starts when the previous one finished (or now, if the wire is idle) and takes `n / rate`.
///
/// Time is kept in units of nanoseconds × bits-per-second, so that `n` bytes are exactly
/// `8 · 10⁹ · n` units and no rounding accumulates over many reservations.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    bits_per_sec: u128,
    burst_units: u128,
    /// The (scaled) instant at which the bucket is exactly empty; tokens at time t are
    /// `(t - empty_at) · rate`, capped at the burst.
    empty_at: u128,
}

const NS_PER_SEC: u128 = 1_000_000_000;

impl TokenBucket {
    /// A bucket for `bits_per_sec` (at least 1) holding at most `burst_bytes`, empty at time
    /// zero.
    pub fn new(bits_per_sec: u64, burst_bytes: u64) -> TokenBucket {
        let bits_per_sec = u128::from(bits_per_sec.max(1));
        TokenBucket {
            bits_per_sec,
            burst_units: u128::from(burst_bytes) * 8 * NS_PER_SEC,
            empty_at: 0,
        }
    }

    /// Reserve `bytes` at time `now`; returns the time its last byte leaves.
    pub fn reserve(&mut self, now: Duration, bytes: u64) -> Duration {
        let now_units = u128::from(to_ns(now)) * self.bits_per_sec;
        // Tokens never exceed the burst: the empty instant is at least `burst` ago.
        self.empty_at = self
            .empty_at
            .max(now_units.saturating_sub(self.burst_units));
        self.empty_at += u128::from(bytes) * 8 * NS_PER_SEC;
        if self.empty_at <= now_units {
            now
        } else {
            let ns = self.empty_at.div_ceil(self.bits_per_sec);
            Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
        }
    }

    /// The time at which everything reserved so far has left (with burst 0: when the wire goes
    /// idle).
    pub fn drained_at(&self) -> Duration {
        let ns = self.empty_at.div_ceil(self.bits_per_sec);
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// How long `bytes` take at this bucket's rate.
    pub fn duration_of(&self, bytes: u64) -> Duration {
        let ns = (u128::from(bytes) * 8 * NS_PER_SEC).div_ceil(self.bits_per_sec);
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }
}

/// Tuning of the emulated transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmulationOptions {
    /// Bytes the sender may queue ahead of the wire before a flush blocks (a socket buffer).
    pub send_buffer_bytes: u64,
    /// Bytes the token bucket lets through at once after an idle period; 0 makes the wire a
    /// strict FIFO at line rate, matching [`Link::estimate`].
    pub burst_bytes: u64,
    /// Sends are flushed in chunks of at most about this many bytes; the receiver can read a
    /// chunk only once all of it has arrived.
    pub chunk_bytes: usize,
}

impl Default for EmulationOptions {
    fn default() -> Self {
        EmulationOptions {
            send_buffer_bytes: 4 << 20,
            burst_bytes: 0,
            chunk_bytes: 64 << 10,
        }
    }
}

/// A chunk in flight, readable from `ready_at`.
struct Packet {
    ready_at: Duration,
    data: Vec<u8>,
}

/// One end of an emulated link: an in-memory channel whose traffic is shaped by a [`Link`].
pub struct EmulatedChannel {
    tx: mpsc::Sender<Packet>,
    rx: mpsc::Receiver<Packet>,
    out: Vec<u8>,
    inbuf: Vec<u8>,
    inpos: usize,
    bucket: TokenBucket,
    delay: Duration,
    send_ahead: Duration,
    chunk_bytes: usize,
    clock: Arc<dyn Clock>,
    timeout: Duration,
    scope: Scope,
    /// The link's name, for errors that the link's own slowness causes.
    link: String,
}

impl std::fmt::Debug for EmulatedChannel {
    // Buffered bytes may be labels or shares: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatedChannel")
            .field("bucket", &self.bucket)
            .field("delay", &self.delay)
            .field("timeout", &self.timeout)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// A connected (client, server) pair over `link` in real time. The time-out bounds every wait
/// without progress, whatever causes it: a receive fails when no chunk becomes readable within
/// `timeout` (a peer that sends nothing, or a link whose delay or bandwidth makes the next chunk
/// arrive later), and a flush fails when the wire would hold the sender back longer than
/// `timeout`; errors the link causes name it.
pub fn emulated_pair(link: &Link, timeout: Duration) -> (EmulatedChannel, EmulatedChannel) {
    emulated_pair_with(
        link,
        timeout,
        EmulationOptions::default(),
        Arc::new(SystemClock::new()),
    )
}

/// [`emulated_pair`] with explicit options and clock. The client's sends use the link's up
/// bandwidth, the server's the down bandwidth.
pub fn emulated_pair_with(
    link: &Link,
    timeout: Duration,
    options: EmulationOptions,
    clock: Arc<dyn Clock>,
) -> (EmulatedChannel, EmulatedChannel) {
    let (tx_c, rx_s) = mpsc::channel();
    let (tx_s, rx_c) = mpsc::channel();
    let mk = |tx, rx, dir| {
        let bucket = TokenBucket::new(link.bits_per_sec(dir), options.burst_bytes);
        EmulatedChannel {
            tx,
            rx,
            out: Vec::new(),
            inbuf: Vec::new(),
            inpos: 0,
            send_ahead: bucket.duration_of(options.send_buffer_bytes),
            bucket,
            delay: link.one_way_delay(),
            chunk_bytes: options.chunk_bytes.max(1),
            clock: Arc::clone(&clock),
            timeout,
            scope: Scope::new(),
            link: link.name.clone(),
        }
    };
    (
        mk(tx_c, rx_c, Direction::Up),
        mk(tx_s, rx_s, Direction::Down),
    )
}

impl EmulatedChannel {
    /// The clock this channel runs on.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Wait until `t` if that is no later than `deadline`; otherwise wait until the deadline and
    /// fail with a time-out that blames the link (`what` says what the link delays).
    fn wait_for_link(
        &self,
        t: Duration,
        deadline: Duration,
        what: &'static str,
    ) -> Result<(), NetError> {
        if t <= deadline {
            self.clock.sleep_until(t);
            return Ok(());
        }
        let now = self.clock.now();
        self.clock.sleep_until(deadline);
        Err(NetError::LinkTimeout {
            timeout: self.timeout,
            detail: format!(
                "{}: over the emulated link {}, {what} takes {:.3} s more",
                self.scope,
                self.link,
                t.saturating_sub(now).as_secs_f64()
            ),
        })
    }
}

impl EmulatedChannel {
    /// Puts one packet (at most a chunk) on the wire. Packets are chunk-sized, so that the
    /// peer can start reading a long message before its end has arrived, as on a real link.
    fn put(&mut self, data: Vec<u8>) -> Result<(), NetError> {
        debug_assert!(!data.is_empty() && data.len() <= self.chunk_bytes);
        let now = self.clock.now();
        let done = self.bucket.reserve(now, data.len() as u64);
        let packet = Packet {
            ready_at: done + self.delay,
            data,
        };
        self.tx.send(packet).map_err(|_| NetError::Disconnected {
            context: self.scope.context(),
        })?;
        // Block while more than the send buffer is queued ahead of the wire.
        let deadline = now.saturating_add(self.timeout);
        self.wait_for_link(
            done.saturating_sub(self.send_ahead),
            deadline,
            "draining the send buffer",
        )
    }
}

impl Channel for EmulatedChannel {
    fn send(&mut self, bytes: &[u8]) -> Result<(), NetError> {
        // `out` always holds less than a chunk. A send that fills it goes out as a flush of
        // `out ‖ bytes` would, in chunk-sized packets and a shorter last one, but each byte is
        // copied once, into its packet, instead of first being gathered with the rest of its
        // message (megabytes of tables) in a buffer that grows by reallocation.
        if self.out.len() + bytes.len() < self.chunk_bytes {
            self.out.extend_from_slice(bytes);
            return Ok(());
        }
        let (head, rest) = bytes.split_at(self.chunk_bytes - self.out.len());
        self.out.extend_from_slice(head);
        let first = std::mem::take(&mut self.out);
        self.put(first)?;
        for piece in rest.chunks(self.chunk_bytes) {
            self.put(piece.to_vec())?;
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<(), NetError> {
        if !self.out.is_empty() {
            self.flush()?;
        }
        // Taken out for the read: waiting for the link borrows the whole channel.
        let (mut inbuf, mut inpos) = (std::mem::take(&mut self.inbuf), self.inpos);
        let read = super::channel::read_chunks(buf, &mut inbuf, &mut inpos, |_| {
            let deadline = self.clock.now().saturating_add(self.timeout);
            let p = super::channel::recv_queue(&self.rx, self.timeout, &self.scope)?;
            self.wait_for_link(p.ready_at, deadline, "the next chunk's arrival")?;
            Ok(p.data)
        });
        (self.inbuf, self.inpos) = (inbuf, inpos);
        read
    }

    fn flush(&mut self) -> Result<(), NetError> {
        if self.out.is_empty() {
            return Ok(());
        }
        // Taken as it is: a short packet holds only its own bytes while it is queued.
        let data = std::mem::take(&mut self.out);
        self.put(data)
    }

    fn set_scope(&mut self, phase: Phase, layer: Option<&str>) {
        self.scope.set(phase, layer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::channel::ChannelExt;
    use crate::net::meter::Metered;
    use proptest::prelude::*;

    const US: Duration = Duration::from_micros(1);

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn bucket_without_burst_is_a_fifo_wire() {
        // 8 Mbit/s: one byte per microsecond.
        let mut b = TokenBucket::new(8_000_000, 0);
        assert_eq!(b.reserve(Duration::ZERO, 1000), 1000 * US);
        // Queued behind the first chunk.
        assert_eq!(b.reserve(500 * US, 1000), 2000 * US);
        // The wire was idle: starts now.
        assert_eq!(b.reserve(5000 * US, 10), 5010 * US);
        assert_eq!(b.drained_at(), 5010 * US);
        // Idle time is not banked without a burst.
        assert_eq!(b.reserve(ms(100), 1), ms(100) + US);
    }

    #[test]
    fn bucket_burst_lets_a_full_bucket_through_at_once() {
        let mut b = TokenBucket::new(8_000_000, 100);
        let t = ms(10);
        // Full after idling: 50 bytes go at once, then 50 more, then the rest is debt.
        assert_eq!(b.reserve(t, 50), t);
        assert_eq!(b.reserve(t, 50), t);
        assert_eq!(b.reserve(t, 30), t + 30 * US);
        // 100 µs later the debt is repaid and 70 tokens have accrued.
        assert_eq!(b.reserve(t + 100 * US, 70), t + 100 * US);
        assert_eq!(b.reserve(t + 100 * US, 1), t + 101 * US);
    }

    #[test]
    fn bucket_rounding_does_not_accumulate() {
        // 3 bits/ns is not a whole number of ns per byte: 8/3 ns per byte.
        let mut b = TokenBucket::new(3_000_000_000, 0);
        let mut done = Duration::ZERO;
        for _ in 0..3000 {
            done = b.reserve(Duration::ZERO, 1);
        }
        assert_eq!(done, Duration::from_nanos(8000));
        assert_eq!(b.duration_of(3), Duration::from_nanos(8));
        assert_eq!(b.duration_of(1), Duration::from_nanos(3)); // ceil of 2.67
    }

    proptest! {
        #[test]
        fn bucket_never_exceeds_rate_plus_burst(
            rate in 1_000u64..10_000_000_000,
            burst in 0u64..100_000,
            ops in proptest::collection::vec((0u64..2_000_000, 1u64..200_000), 1..40),
        ) {
            let mut b = TokenBucket::new(rate, burst);
            let mut now = Duration::ZERO;
            let mut total = 0u64;
            let mut last = Duration::ZERO;
            for (gap_ns, bytes) in ops {
                now += Duration::from_nanos(gap_ns);
                let done = b.reserve(now, bytes);
                total += bytes;
                prop_assert!(done >= now);
                prop_assert!(done >= last, "completions are FIFO");
                last = done;
                // Over [0, done] at most burst + rate·done bytes can have left.
                let allowed = burst as f64 + rate as f64 / 8.0 * done.as_secs_f64();
                prop_assert!(total as f64 <= allowed + 1.0, "{total} > {allowed}");
            }
        }
    }

    /// A deterministic pair on a manual clock.
    fn manual_pair(
        link: &Link,
        options: EmulationOptions,
    ) -> (EmulatedChannel, EmulatedChannel, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        let (c, s) = emulated_pair_with(link, Duration::from_secs(5), options, clock.clone());
        (c, s, clock)
    }

    #[test]
    fn request_response_takes_what_the_model_says() {
        // 1 byte/µs up, 0.5 byte/µs down, 10 ms RTT.
        let link = Link::new("t", 8_000_000, 4_000_000, ms(10));
        let (mut c, mut s, clock) = manual_pair(&link, EmulationOptions::default());
        c.send(&vec![1u8; 100_000]).unwrap();
        c.flush().unwrap();
        // Within the send buffer: the client did not block.
        assert_eq!(clock.now(), Duration::ZERO);
        let mut buf = vec![0u8; 100_000];
        s.recv(&mut buf).unwrap();
        assert_eq!(clock.now(), ms(100) + ms(5));
        assert!(buf.iter().all(|&b| b == 1));
        s.send(&[2u8; 1000]).unwrap();
        s.flush().unwrap();
        let mut back = [0u8; 1000];
        c.recv(&mut back).unwrap();
        assert_eq!(clock.now(), ms(105) + ms(2) + ms(5));
        let est = link.estimate(0.0, 100_000, 1000, 2);
        assert!((clock.now().as_secs_f64() - est).abs() < 1e-9);
    }

    #[test]
    fn sender_blocks_beyond_its_send_buffer() {
        let link = Link::new("t", 8_000_000, 8_000_000, ms(2));
        let opts = EmulationOptions {
            send_buffer_bytes: 10_000,
            ..EmulationOptions::default()
        };
        let (mut c, mut s, clock) = manual_pair(&link, opts);
        c.send(&vec![0u8; 200_000]).unwrap();
        c.flush().unwrap();
        // The client may run 10 000 bytes (10 ms) ahead of the wire.
        assert_eq!(clock.now(), ms(190));
        let mut buf = vec![0u8; 200_000];
        s.recv(&mut buf).unwrap();
        assert_eq!(clock.now(), ms(200) + ms(1));
    }

    #[test]
    fn compute_on_the_manual_clock_adds_up() {
        let link = Link::new("t", 8_000_000, 8_000_000, ms(4));
        let (mut c, mut s, clock) = manual_pair(&link, EmulationOptions::default());
        clock.advance(ms(30)); // client computes
        c.send_u64(1).unwrap();
        c.flush().unwrap();
        s.recv_u64().unwrap();
        clock.advance(ms(50)); // server computes
        s.send_u64(2).unwrap();
        s.flush().unwrap();
        c.recv_u64().unwrap();
        let est = link.estimate(0.080, 8, 8, 2);
        assert!((clock.now().as_secs_f64() - est).abs() < 1e-9);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// For a strictly alternating protocol with no compute, the emulated time equals the
        /// cost model fed with what `Metered` counted.
        #[test]
        fn emulation_matches_the_cost_model(
            up in 1_000_000u64..4_000_000_000,
            down in 1_000_000u64..4_000_000_000,
            rtt_us in 0u64..50_000,
            send_buffer in prop_oneof![Just(0u64), Just(4u64 << 20)],
            sizes in proptest::collection::vec(1usize..300_000, 1..8),
        ) {
            let link = Link::new("p", up, down, Duration::from_micros(rtt_us));
            let opts = EmulationOptions { send_buffer_bytes: send_buffer, ..EmulationOptions::default() };
            let (c, s, clock) = manual_pair(&link, opts);
            let (mut c, mut s) = (Metered::new(c), Metered::new(s));
            let mut buf = vec![0u8; 300_000];
            for (i, &n) in sizes.iter().enumerate() {
                let (tx, rx) = if i % 2 == 0 { (&mut c, &mut s) } else { (&mut s, &mut c) };
                tx.send(&buf[..n]).unwrap();
                tx.flush().unwrap();
                rx.recv(&mut buf[..n]).unwrap();
            }
            let cs = c.stats().total;
            let ss = s.stats().total;
            prop_assert_eq!(cs.rounds, sizes.len() as u64);
            prop_assert_eq!(ss.rounds, sizes.len() as u64);
            let est = link.estimate(0.0, cs.bytes_sent, cs.bytes_received, cs.rounds);
            // Each chunk's completion is rounded up to the nanosecond (≤ 5 chunks a message).
            let slack = 1e-9 * (8 * sizes.len() + 2) as f64 + est * 1e-12;
            let got = clock.now().as_secs_f64();
            prop_assert!((got - est).abs() <= slack, "emulated {} vs model {}", got, est);
        }
    }

    proptest! {
        /// Whatever the sends, flushes and chunk size, the packets are those of gathering
        /// every send and cutting the buffer into chunks once it holds a chunk or more (the
        /// emulator's first design), byte for byte.
        #[test]
        fn packets_match_gathering_then_cutting(
            chunk in 1usize..9,
            ops in proptest::collection::vec((0usize..30, any::<bool>()), 0..25),
        ) {
            let link: Link = "8mbit,0ms".parse().unwrap();
            let opts = EmulationOptions {
                chunk_bytes: chunk,
                send_buffer_bytes: 1 << 30,
                ..EmulationOptions::default()
            };
            let (mut c, s) =
                emulated_pair_with(&link, Duration::from_secs(5), opts, Arc::new(ManualClock::new()));
            let (mut buffered, mut want): (Vec<u8>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
            let mut next = 0u8;
            for (len, flush) in ops {
                let msg: Vec<u8> = (0..len).map(|_| { next = next.wrapping_add(1); next }).collect();
                c.send(&msg).unwrap();
                buffered.extend_from_slice(&msg);
                if buffered.len() >= chunk || (flush && !buffered.is_empty()) {
                    want.extend(buffered.chunks(chunk).map(<[u8]>::to_vec));
                    buffered.clear();
                }
                if flush {
                    c.flush().unwrap();
                }
            }
            let got: Vec<Vec<u8>> = s.rx.try_iter().map(|p| p.data).collect();
            prop_assert_eq!(got, want);
        }
    }

    /// A message is cut into the packets a flush of everything buffered would make: full
    /// chunks and a shorter last one; smaller sends wait in the buffer for a flush.
    #[test]
    fn sends_are_cut_into_chunk_packets() {
        let link: Link = "8mbit,0ms".parse().unwrap();
        let opts = EmulationOptions {
            chunk_bytes: 64,
            send_buffer_bytes: 1 << 20,
            ..EmulationOptions::default()
        };
        let clock = Arc::new(ManualClock::new());
        let (mut c, s) = emulated_pair_with(&link, Duration::from_secs(5), opts, clock);
        let msg: Vec<u8> = (0..=255u8).cycle().take(500).collect();
        let packets = |s: &EmulatedChannel| -> Vec<usize> {
            let mut v = Vec::new();
            while let Ok(p) = s.rx.try_recv() {
                v.push(p.data.len());
            }
            v
        };
        c.send(&msg[..10]).unwrap();
        assert!(packets(&s).is_empty(), "below a chunk, nothing leaves");
        c.send(&msg[10..20]).unwrap();
        c.send(&msg[20..220]).unwrap();
        assert_eq!(packets(&s), [64, 64, 64, 28]);
        c.send(&msg[220..230]).unwrap();
        c.flush().unwrap();
        assert_eq!(packets(&s), [10]);
        // Exactly a chunk goes at once, and the bytes arrive in order.
        let (mut c2, mut s2) = emulated_pair_with(
            &link,
            Duration::from_secs(5),
            opts,
            Arc::new(ManualClock::new()),
        );
        c2.send(&msg[..64]).unwrap();
        c2.send(&msg[64..]).unwrap();
        c2.flush().unwrap();
        let mut got = vec![0u8; 500];
        s2.recv(&mut got).unwrap();
        assert_eq!(got, msg);
    }

    #[test]
    fn emulated_peer_failures_carry_the_scope() {
        let link = Link::wan();
        let (mut c, s) = emulated_pair(&link, Duration::from_millis(50));
        c.set_scope(Phase::Online, Some("relu2"));
        let e = c.recv_u64().unwrap_err();
        assert!(matches!(e, NetError::Timeout { .. }), "{e}");
        assert!(e.to_string().contains("online phase, layer relu2"), "{e}");
        drop(s);
        let e = c.recv_u64().unwrap_err();
        assert!(matches!(e, NetError::Disconnected { .. }), "{e}");
        assert!(e.to_string().contains("online phase, layer relu2"), "{e}");
    }

    #[test]
    fn a_link_slower_than_the_time_out_times_out_and_names_the_link() {
        // 1 kbit/s: 1000 bytes take 8 s; a 10 s RTT delays every chunk 5 s. Both beyond 3 s.
        for (spec, bytes) in [("1kbit,0ms", 1000), ("1gbit,10s", 8)] {
            let link = Link::parse(spec).unwrap();
            let clock = Arc::new(ManualClock::new());
            let (mut c, mut s) = emulated_pair_with(
                &link,
                Duration::from_secs(3),
                EmulationOptions::default(),
                clock.clone(),
            );
            c.send(&vec![0u8; bytes]).unwrap();
            c.flush().unwrap();
            s.set_scope(Phase::Setup, Some("base-ot"));
            let e = s.recv(&mut vec![0u8; bytes]).unwrap_err();
            assert!(matches!(e, NetError::LinkTimeout { .. }), "{e}");
            let msg = e.to_string();
            assert!(msg.contains("emulated link") && msg.contains(spec), "{msg}");
            assert!(msg.contains("setup phase, layer base-ot"), "{msg}");
            // It gave up at the time-out, not when the chunk arrived.
            assert_eq!(clock.now(), Duration::from_secs(3));
        }
    }

    #[test]
    fn a_sender_held_back_by_the_wire_longer_than_the_time_out_times_out() {
        let link = Link::parse("1kbit,0ms").unwrap();
        let clock = Arc::new(ManualClock::new());
        let opts = EmulationOptions {
            send_buffer_bytes: 0,
            ..EmulationOptions::default()
        };
        let (mut c, _s) = emulated_pair_with(&link, Duration::from_secs(3), opts, clock);
        c.send(&[0u8; 1000]).unwrap();
        let e = c.flush().unwrap_err();
        assert!(matches!(e, NetError::LinkTimeout { .. }), "{e}");
        assert!(e.to_string().contains("send buffer"), "{e}");
    }

    /// Real sleeps: a few round trips over a 100 Mbit/s, 20 ms RTT link take at least what the
    /// model says. `cargo test --release --lib net::emulate -- --ignored --nocapture`
    #[test]
    #[ignore = "sleeps for real; prints emulated vs modelled time"]
    fn real_time_sanity() {
        let link = Link::parse("100mbit/50mbit,20ms").unwrap();
        let (c, s) = emulated_pair(&link, Duration::from_secs(10));
        let (mut c, mut s) = (Metered::new(c), Metered::new(s));
        let sizes = [2_000_000usize, 500_000, 1_000, 3_000_000, 8];
        let start = Instant::now();
        let t = std::thread::spawn(move || {
            let mut buf = vec![0u8; 3_000_000];
            for (i, &n) in sizes.iter().enumerate() {
                if i % 2 == 0 {
                    s.recv(&mut buf[..n]).unwrap();
                } else {
                    s.send(&buf[..n]).unwrap();
                    s.flush().unwrap();
                }
            }
        });
        let mut buf = vec![0u8; 3_000_000];
        for (i, &n) in sizes.iter().enumerate() {
            if i % 2 == 0 {
                c.send(&buf[..n]).unwrap();
                c.flush().unwrap();
            } else {
                c.recv(&mut buf[..n]).unwrap();
            }
        }
        t.join().unwrap();
        let secs = start.elapsed().as_secs_f64();
        let st = c.stats().total;
        let est = link.estimate(0.0, st.bytes_sent, st.bytes_received, st.rounds);
        println!(
            "{link}: emulated {secs:.4} s, model {est:.4} s, ratio {:.3}",
            secs / est
        );
        assert!(
            secs >= est * 0.999,
            "the emulation is never faster than the link"
        );
    }
}
