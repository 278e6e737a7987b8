//! Oblivious transfer: base OT on Ristretto ([`base`]), semi-honest OT extension in the
//! correlated mode that hands out free-XOR labels — IKNP/ALSZ ([`iknp`]), SoftSpoken
//! ([`softspoken`]) and silent OT ([`silent`], built on SoftSpoken) — and the bit-matrix
//! transpose at their core ([`transpose`]).
//!
//! The garbler is the COT *sender* and holds the global `Δ`; the evaluator is the COT
//! *receiver*. See [`iknp`] for the protocol and why it is secure for our use. A session picks
//! its extension with an [`OtKind`]; [`OtSender`] and [`OtReceiver`] run either behind one
//! interface in which each OT's choice bit is chosen or random ([`ChoicePattern`]).

pub mod base;
pub mod choice;
pub mod iknp;
pub mod silent;
pub mod softspoken;
#[cfg(test)]
pub(crate) mod test_support;
pub mod transpose;

pub use self::choice::ChoiceBits;
pub(crate) use self::choice::{apply_choice_corrections, choice_corrections};
pub use self::iknp::{CotReceiver, CotSender};
pub use self::silent::{SilentDeferredReceive, SilentDeferredSend, SilentReceiver, SilentSender};
pub use self::softspoken::{DeferredSend, SoftSpokenReceiver, SoftSpokenSender};

use rand_core::{CryptoRng, RngCore};

use crate::crypto::block::words_as_bytes_mut;
use crate::crypto::Prg;
use crate::net::Channel;

/// Which OTs of one call take the receiver's chosen bits; the others take random bits that the
/// receiver learns (and that cost SoftSpoken one bit less each). OT `j` of a call is chosen iff
/// `j % period < chosen`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChoicePattern {
    /// The period of the pattern (at least 1).
    pub period: usize,
    /// How many OTs at the start of each period are chosen.
    pub chosen: usize,
}

impl ChoicePattern {
    /// Every choice is chosen.
    pub const ALL_CHOSEN: ChoicePattern = ChoicePattern {
        period: 1,
        chosen: 1,
    };
    /// Every choice is random.
    pub const ALL_RANDOM: ChoicePattern = ChoicePattern {
        period: 1,
        chosen: 0,
    };

    /// Whether OT `j` takes a chosen bit.
    #[inline]
    pub fn is_chosen(&self, j: usize) -> bool {
        j % self.period.max(1) < self.chosen
    }

    /// How many of OTs `j0..j0 + n` take chosen bits.
    pub fn count_in(&self, j0: usize, n: usize) -> usize {
        let (p, c) = (self.period.max(1), self.chosen.min(self.period.max(1)));
        // Chosen OTs among 0..x: c per whole period, then the start of the partial one.
        let upto = |x: usize| x / p * c + (x % p).min(c);
        upto(j0 + n) - upto(j0)
    }

    /// Which of OTs `j0..j0 + 64` take chosen bits, as a mask (bit `i` for OT `j0 + i`): one
    /// comparison where the 64 are all chosen or all random (the protocol's pattern at a
    /// word's start), else OT by OT.
    #[inline]
    pub fn chosen_mask(&self, j0: usize) -> u64 {
        let p = self.period.max(1);
        if self.chosen == 0 {
            return 0;
        }
        if self.chosen >= p {
            return u64::MAX;
        }
        let phase = j0 % p;
        if p - phase >= 64 && (phase + 64 <= self.chosen || phase >= self.chosen) {
            return if phase < self.chosen { u64::MAX } else { 0 };
        }
        self.flags_from(j0)
            .take(64)
            .enumerate()
            .fold(0, |m, (i, c)| m | (u64::from(c) << i))
    }

    /// [`ChoicePattern::is_chosen`] for OTs `j0, j0 + 1, …`, without a division per OT (the OT
    /// extensions walk millions of them).
    pub fn flags_from(&self, j0: usize) -> impl Iterator<Item = bool> + '_ {
        let p = self.period.max(1);
        let mut phase = j0 % p;
        std::iter::repeat_with(move || {
            let chosen = phase < self.chosen;
            phase += 1;
            if phase == p {
                phase = 0;
            }
            chosen
        })
    }
}

/// The opening check of every receiver's call: its output slice must match its choices.
/// `Ok(false)` when the call has no OTs, and so sends nothing.
pub(crate) fn receive_has_work(choices: usize, outputs: usize) -> Result<bool, OtError> {
    if outputs != choices {
        return Err(OtError::LengthMismatch { choices, outputs });
    }
    Ok(choices > 0)
}

/// The OT extension of a session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OtKind {
    /// IKNP/ALSZ: 128 bits from the receiver per OT, chosen or random alike.
    #[default]
    Iknp,
    /// SoftSpoken with parameter `k` (1 ≤ k ≤ 8, dividing 128): `128/k − 1` bits per random
    /// OT, one more per chosen one, `2^k / k` AES blocks of PRG per OT and party.
    SoftSpoken(u8),
    /// Silent OT (sparse VOLE and an expand-convolute code, [`silent`]): about 6 bits per
    /// random OT in chunks of 2^16, one more per chosen one; SoftSpoken (k = 4) at small counts.
    Silent,
}

impl OtKind {
    /// Every extension at its usual parameter: the kinds the tests and side-by-side
    /// comparisons run through.
    pub const COMMON: [OtKind; 4] = [
        OtKind::Iknp,
        OtKind::SoftSpoken(4),
        OtKind::SoftSpoken(8),
        OtKind::Silent,
    ];
}

impl std::fmt::Display for OtKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OtKind::Iknp => f.write_str("iknp"),
            OtKind::SoftSpoken(k) => write!(f, "softspoken-k{k}"),
            OtKind::Silent => f.write_str("silent"),
        }
    }
}

impl std::str::FromStr for OtKind {
    type Err = String;
    /// `iknp`, `softspoken` (k = 4), `softspoken-kK` or `silent`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("unknown OT `{s}` (expected iknp, softspoken, softspoken-kK with K in 1, 2, 4, 8, or silent)")
        };
        match s {
            "iknp" => Ok(OtKind::Iknp),
            "silent" => Ok(OtKind::Silent),
            "softspoken" => Ok(OtKind::SoftSpoken(4)),
            _ => {
                let k: u8 = s
                    .strip_prefix("softspoken-k")
                    .ok_or_else(bad)?
                    .parse()
                    .map_err(|_| bad())?;
                if (1..=8).contains(&k) && 128 % k == 0 {
                    Ok(OtKind::SoftSpoken(k))
                } else {
                    Err(bad())
                }
            }
        }
    }
}

impl serde::Serialize for OtKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for OtKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The correlated-OT sender of a session (the garbler), either extension.
#[derive(Debug)]
pub enum OtSender {
    /// IKNP.
    Iknp(CotSender),
    /// SoftSpoken.
    SoftSpoken(SoftSpokenSender),
    /// Silent OT (boxed: it carries its own PRG and buffers).
    Silent(Box<SilentSender>),
}

impl OtSender {
    /// Runs `kind`'s setup (128 base OTs either way) for the global offset `delta` (lsb 1).
    pub fn setup<C: Channel + ?Sized, R: RngCore + CryptoRng>(
        ch: &mut C,
        kind: OtKind,
        delta: Block,
        rng: &mut R,
    ) -> Result<Self, OtError> {
        Ok(match kind {
            OtKind::Iknp => OtSender::Iknp(CotSender::setup(ch, delta, rng)?),
            OtKind::SoftSpoken(k) => {
                OtSender::SoftSpoken(SoftSpokenSender::setup(ch, k as usize, delta, rng)?)
            }
            OtKind::Silent => OtSender::Silent(Box::new(SilentSender::setup(ch, delta, rng)?)),
        })
    }

    /// Announces that the next calls will take `n` OTs in all, so that an extension with
    /// per-chunk interaction can run it for all of them now (silent OT: every chunk's base OTs
    /// in one flight, [`SilentSender::reserve`]); nothing for the others. The receiver calls
    /// [`OtReceiver::reserve`] with the same `n` at the same point.
    pub fn reserve<C: Channel + ?Sized>(&mut self, ch: &mut C, n: usize) -> Result<(), OtError> {
        match self {
            OtSender::Silent(s) => s.reserve(ch, n),
            OtSender::Iknp(_) | OtSender::SoftSpoken(_) => Ok(()),
        }
    }

    /// Runs `out.len()` correlated OTs: `out[j]` becomes the zero-label `q_j`, the receiver
    /// gets `q_j ⊕ b_j·Δ` for its chosen or random bit `b_j` as `pattern` says.
    pub fn send<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        pattern: ChoicePattern,
        out: &mut [Block],
    ) -> Result<(), OtError> {
        match self {
            // IKNP costs the same for chosen and random bits: the receiver picks the random
            // ones itself and the sender cannot tell.
            OtSender::Iknp(s) => s.send(ch, out),
            OtSender::SoftSpoken(s) => s.send(ch, pattern, out),
            OtSender::Silent(s) => s.send(ch, pattern, out),
        }
    }

    /// Whether [`OtSender::send_deferred`] is available (SoftSpoken and silent OT). Not the
    /// same answer as [`OtReceiver::defers`] for SoftSpoken, whose deferred sender pairs with a
    /// plain [`OtReceiver::receive`]: a protocol pairs each side's call by its own `defers`.
    pub fn defers(&self) -> bool {
        matches!(self, OtSender::SoftSpoken(_) | OtSender::Silent(_))
    }

    /// Reads what the receiver sends for `n` OTs now and computes the outputs later, in
    /// order, a piece at a time: SoftSpoken's whole message
    /// ([`SoftSpokenSender::send_deferred`]; the receiver calls [`OtReceiver::receive`]), or
    /// silent OT's choice corrections, its chunks generated as they are needed
    /// ([`SilentSender::send_deferred`]; the receiver calls [`OtReceiver::receive_deferred`]).
    /// The same bytes as [`OtSender::send`]. An error for the kind that does not
    /// [defer](OtSender::defers).
    pub fn send_deferred<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        pattern: ChoicePattern,
        n: usize,
    ) -> Result<OtDeferredSend<'_>, OtError> {
        match self {
            OtSender::SoftSpoken(s) => s
                .send_deferred(ch, pattern, n)
                .map(OtDeferredSend::SoftSpoken),
            OtSender::Silent(s) => s.send_deferred(ch, pattern, n).map(OtDeferredSend::Silent),
            OtSender::Iknp(_) => Err(OtError::Parameter(
                "IKNP computes its outputs with the message".into(),
            )),
        }
    }
}

/// A deferred call of the sender ([`OtSender::send_deferred`]).
pub enum OtDeferredSend<'s> {
    /// SoftSpoken's: every message already read.
    SoftSpoken(DeferredSend<'s>),
    /// Silent OT's: each chunk's message is written when the chunk is generated.
    Silent(SilentDeferredSend<'s>),
}

impl OtDeferredSend<'_> {
    /// OTs not handed out yet.
    pub fn remaining(&self) -> usize {
        match self {
            OtDeferredSend::SoftSpoken(d) => d.remaining(),
            OtDeferredSend::Silent(d) => d.remaining(),
        }
    }

    /// Fills `out` with the call's next `out.len()` zero-labels, corrections applied; the
    /// messages this needs to send (silent OT's chunks) are appended to `msg`, for the caller to
    /// send before anything the receiver reads after its matching
    /// [`SilentDeferredReceive::read_messages`].
    pub fn fill(&mut self, out: &mut [Block], msg: &mut Vec<Block>) -> Result<(), OtError> {
        match self {
            OtDeferredSend::SoftSpoken(d) => d.fill(out),
            OtDeferredSend::Silent(d) => d.fill(out, msg),
        }
    }
}

/// The correlated-OT receiver of a session (the evaluator), either extension.
#[derive(Debug)]
pub enum OtReceiver {
    /// IKNP, with the stream its random choice bits come from.
    Iknp(CotReceiver, Box<Prg>),
    /// SoftSpoken.
    SoftSpoken(SoftSpokenReceiver),
    /// Silent OT (boxed, as for the sender).
    Silent(Box<SilentReceiver>),
}

impl OtReceiver {
    /// Runs `kind`'s setup.
    pub fn setup<C: Channel + ?Sized, R: RngCore + CryptoRng>(
        ch: &mut C,
        kind: OtKind,
        rng: &mut R,
    ) -> Result<Self, OtError> {
        Ok(match kind {
            OtKind::Iknp => OtReceiver::Iknp(
                CotReceiver::setup(ch, rng)?,
                Box::new(Prg::from_seed(Block::random(rng))),
            ),
            OtKind::SoftSpoken(k) => {
                OtReceiver::SoftSpoken(SoftSpokenReceiver::setup(ch, k as usize, rng)?)
            }
            OtKind::Silent => OtReceiver::Silent(Box::new(SilentReceiver::setup(ch, rng)?)),
        })
    }

    /// The receiver's side of [`OtSender::reserve`].
    pub fn reserve<C: Channel + ?Sized>(&mut self, ch: &mut C, n: usize) -> Result<(), OtError> {
        match self {
            OtReceiver::Silent(r) => r.reserve(ch, n),
            OtReceiver::Iknp(..) | OtReceiver::SoftSpoken(_) => Ok(()),
        }
    }

    /// Whether [`OtReceiver::receive_deferred`] is available (silent OT), which its sender's
    /// [`OtSender::send_deferred`] then expects instead of [`OtReceiver::receive`]. SoftSpoken's
    /// sender defers with a plain receiver ([`OtSender::defers`]).
    pub fn defers(&self) -> bool {
        matches!(self, OtReceiver::Silent(_))
    }

    /// The receiver's side of a deferred silent-OT call ([`SilentReceiver::receive_deferred`]):
    /// settles every choice bit and sends the corrections now; the labels come later through
    /// the returned call's `fill`. An error for the kinds that do not
    /// [defer](OtReceiver::defers).
    pub fn receive_deferred<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        pattern: ChoicePattern,
        choices: &mut ChoiceBits,
    ) -> Result<SilentDeferredReceive<'_>, OtError> {
        match self {
            OtReceiver::Silent(r) => r.receive_deferred(ch, pattern, choices),
            OtReceiver::Iknp(..) | OtReceiver::SoftSpoken(_) => Err(OtError::Parameter(
                "only silent OT's receiver defers its outputs".into(),
            )),
        }
    }

    /// Runs `choices.len()` correlated OTs: `out[j]` becomes `q_j ⊕ b_j·Δ`; where `pattern`
    /// marks OT `j` chosen, `b_j` is choice bit `j`; elsewhere choice bit `j` is overwritten
    /// with the random `b_j`.
    pub fn receive<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        pattern: ChoicePattern,
        choices: &mut ChoiceBits,
        out: &mut [Block],
    ) -> Result<(), OtError> {
        match self {
            OtReceiver::Iknp(r, prg) => {
                let n = choices.len();
                let mut random = [0u64; 64];
                for (c, words) in choices.words_mut().chunks_mut(64).enumerate() {
                    prg.fill_bytes(words_as_bytes_mut(&mut random));
                    for (w, (b, r)) in words.iter_mut().zip(&random).enumerate() {
                        let j = 64 * (64 * c + w);
                        let used = choice::low_bits(n - j);
                        let cm = pattern.chosen_mask(j);
                        *b = ((*b & cm) | (r & !cm)) & used;
                    }
                }
                random.iter_mut().for_each(zeroize::Zeroize::zeroize);
                r.receive_packed(ch, choices, out)
            }
            OtReceiver::SoftSpoken(r) => r.receive_packed(ch, pattern, choices, out),
            OtReceiver::Silent(r) => r.receive(ch, pattern, choices, out),
        }
    }
}

use crate::crypto::Block;
use crate::net::NetError;

/// Errors of base OT and OT extension.
#[derive(Debug, thiserror::Error)]
pub enum OtError {
    /// The channel failed (disconnect, time-out, I/O).
    #[error("OT: {0}")]
    Net(#[from] NetError),
    /// The peer sent 32 bytes that are not the canonical encoding of a Ristretto point, or the
    /// identity where a generator is required.
    #[error("base OT: the peer's {what} is not a valid Ristretto point")]
    InvalidPoint {
        /// Which point: the sender's `A`, or the receiver's `B` with its OT index.
        what: String,
    },
    /// The two parties asked for different numbers of OTs.
    #[error("{protocol}: this party runs {ours} OTs but the peer runs {theirs}")]
    CountMismatch {
        /// Which protocol noticed.
        protocol: &'static str,
        /// The count this party was called with.
        ours: u64,
        /// The count the peer announced.
        theirs: u64,
    },
    /// An output slice whose length does not match the choices.
    #[error("OT extension: {choices} choice bits but an output slice of {outputs} blocks")]
    LengthMismatch {
        /// Number of choice bits.
        choices: usize,
        /// Length of the output slice.
        outputs: usize,
    },
    /// Parameters outside what a protocol supports (such as SoftSpoken's `k`).
    #[error("OT parameters: {0}")]
    Parameter(String),
    /// A bug of this party's own (a broken internal invariant), never caused by the peer.
    #[error("OT: internal error: {0}")]
    Internal(String),
    /// A `Δ` whose least significant bit is 0: free-XOR with point-and-permute needs it set.
    #[error("COT setup: delta must have its least significant bit set (point-and-permute)")]
    InvalidDelta,
}

/// The little-endian byte image of `blocks`, for sending without a copy.
pub(crate) fn blocks_as_bytes(blocks: &[Block]) -> &[u8] {
    // SAFETY: `Block` is `repr(transparent)` over `u128`: 16 initialised bytes, no padding. A
    // `u8` has alignment 1 and every byte is a valid `u8`, so the view is sound; it is the
    // little-endian image because the crate only builds on little-endian targets (see aes.rs).
    unsafe { core::slice::from_raw_parts(blocks.as_ptr().cast::<u8>(), 16 * blocks.len()) }
}

/// The mutable byte image of `blocks`, for receiving without a copy.
pub(crate) fn blocks_as_bytes_mut(blocks: &mut [Block]) -> &mut [u8] {
    // SAFETY: as for `blocks_as_bytes`; moreover every 16-byte pattern is a valid `u128`, so any
    // bytes written through the view leave valid blocks.
    unsafe { core::slice::from_raw_parts_mut(blocks.as_mut_ptr().cast::<u8>(), 16 * blocks.len()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_views_are_the_little_endian_image() {
        let mut blocks = [Block(0x0f0e_0d0c_0b0a_0908_0706_0504_0302_0100), Block(7)];
        let bytes = blocks_as_bytes(&blocks);
        assert_eq!(bytes[..16], blocks[0].to_bytes());
        assert_eq!(bytes[16..], blocks[1].to_bytes());
        blocks_as_bytes_mut(&mut blocks)[16] = 9;
        assert_eq!(blocks[1], Block(9));
    }
}

#[cfg(test)]
mod kind_tests {
    use super::test_support::{check_call, ones, run_call, setup_pair};
    use super::*;
    use crate::net::{mem_pair, TcpChannel};
    use std::time::Duration;

    #[test]
    fn kinds_parse_print_and_serialize() {
        for k in [
            OtKind::Iknp,
            OtKind::SoftSpoken(1),
            OtKind::SoftSpoken(4),
            OtKind::SoftSpoken(8),
            OtKind::Silent,
        ] {
            assert_eq!(k.to_string().parse::<OtKind>().unwrap(), k);
            let j = serde_json::to_string(&k).unwrap();
            assert_eq!(serde_json::from_str::<OtKind>(&j).unwrap(), k);
        }
        assert_eq!(
            "softspoken".parse::<OtKind>().unwrap(),
            OtKind::SoftSpoken(4)
        );
        for bad in ["softspoken-k3", "softspoken-k16", "ferret", "softspoken-kx"] {
            assert!(bad.parse::<OtKind>().is_err(), "{bad}");
        }
        let p = ChoicePattern {
            period: 8,
            chosen: 3,
        };
        assert_eq!(p.count_in(5, 11), 3);
        assert_eq!(p.count_in(0, 16), 6);
        for pat in [
            p,
            ChoicePattern::ALL_CHOSEN,
            ChoicePattern::ALL_RANDOM,
            ChoicePattern {
                period: 128,
                chosen: 64,
            },
            ChoicePattern {
                period: 3,
                chosen: 5,
            },
        ] {
            for j0 in [0usize, 1, 7, 127, 300] {
                let want: Vec<bool> = (j0..j0 + 333).map(|j| pat.is_chosen(j)).collect();
                let got: Vec<bool> = pat.flags_from(j0).take(333).collect();
                assert_eq!(got, want, "{pat:?} from {j0}");
                let mask = (0..64).fold(0u64, |m, i| m | (u64::from(want[i]) << i));
                assert_eq!(pat.chosen_mask(j0), mask, "{pat:?} from {j0}");
                for n in [0usize, 1, 5, 128, 333] {
                    let count = want[..n].iter().filter(|&&b| b).count();
                    assert_eq!(pat.count_in(j0, n), count, "{pat:?} {j0} {n}");
                }
            }
        }
        assert!(ChoicePattern::ALL_CHOSEN.is_chosen(7) && !ChoicePattern::ALL_RANDOM.is_chosen(7));
    }

    /// Runs `n` OTs of `kind` between the two ends of a channel pair behind the session
    /// interface and checks them: chosen bits where asked, random ones reported (and about half
    /// of them ones) elsewhere, and the correlation under the sender's Δ.
    fn check_kind<C: Channel + Send + 'static>(kind: OtKind, n: usize, a: C, b: C) {
        let pattern = ChoicePattern {
            period: 128,
            chosen: 64,
        };
        let (sender, mut r, mut chr) = setup_pair(kind, a, b);
        let d = sender.2;
        let want: Vec<bool> = (0..n).map(|j| j % 3 == 0).collect();
        let (_, call) = run_call(sender, &mut r, &mut chr, pattern, want);
        let random_ones = ones(&check_call(&call, d, pattern, &kind.to_string()));
        assert!(
            random_ones > n / 8 && random_ones < 3 * n / 8,
            "{kind}: {random_ones}"
        );
    }

    #[test]
    fn either_kind_delivers_the_correlation() {
        for (kind, n) in [
            (OtKind::Iknp, 128 * 40),
            (OtKind::SoftSpoken(4), 128 * 40),
            (OtKind::Silent, silent::SILENT_MIN_OTS + 128 * 40),
        ] {
            let (a, b) = mem_pair(Duration::from_secs(30));
            check_kind(kind, n, a, b);
        }
    }

    /// Over loopback TCP, across several of each extension's chunks (IKNP's own test also runs
    /// its chosen-message OTs there).
    #[test]
    fn either_kind_over_tcp_on_loopback() {
        for (kind, n) in [
            (OtKind::SoftSpoken(8), 3 * iknp::CHUNK_OTS + 128),
            (
                OtKind::Silent,
                silent::chunk_ots(silent::MIN_DEPTH + 1) + 123,
            ),
        ] {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = std::thread::spawn(move || listener.accept().unwrap().0);
            let client = std::net::TcpStream::connect(addr).unwrap();
            let a = TcpChannel::new(server.join().unwrap(), Duration::from_secs(60)).unwrap();
            let b = TcpChannel::new(client, Duration::from_secs(60)).unwrap();
            check_kind(kind, n, a, b);
        }
    }
}
