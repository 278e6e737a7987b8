//! Test-only support for the OT extensions' tests: setting up a sender and a receiver of the
//! session interface ([`OtSender`], [`OtReceiver`]) over a channel pair, running one call of
//! correlated OTs between them and checking it, what a call costs on the wire, and how count
//! mismatches are refused, written once for every extension (SoftSpoken and silent OT test
//! themselves through it; IKNP's own tests drive its choice-only interface).

use rand_core::RngCore;

use super::{ChoiceBits, ChoicePattern, OtError, OtKind, OtReceiver, OtSender};
use crate::crypto::{Block, Prg};
use crate::net::{Channel, Metered};

/// `n` uniformly random bits.
pub(crate) fn random_bits(n: usize, rng: &mut Prg) -> Vec<bool> {
    (0..n).map(|_| rng.next_u32() & 1 == 1).collect()
}

/// A sender with its end of the channel and its Δ.
pub(crate) type Sender<C> = (OtSender, C, Block);

/// Sets up both parties of `kind` over the channel pair `(a, b)`: the sender on a thread of its
/// own with a fresh Δ (lsb 1), the receiver on this one, each with a fresh PRG.
pub(crate) fn setup_pair<C: Channel + Send + 'static>(
    kind: OtKind,
    mut a: C,
    mut b: C,
) -> (Sender<C>, OtReceiver, C) {
    let t = std::thread::spawn(move || {
        let mut rng = Prg::from_entropy();
        let d = Block::random(&mut rng).with_lsb(true);
        (OtSender::setup(&mut a, kind, d, &mut rng).unwrap(), a, d)
    });
    let r = OtReceiver::setup(&mut b, kind, &mut Prg::from_entropy()).unwrap();
    (t.join().unwrap(), r, b)
}

/// What one call of OTs gave: the bits the receiver asked for (`want`), the bits it got
/// (`choices`), the sender's zero-labels (`y`) and the receiver's labels (`z`).
pub(crate) struct Call {
    pub(crate) want: Vec<bool>,
    pub(crate) choices: Vec<bool>,
    pub(crate) y: Vec<Block>,
    pub(crate) z: Vec<Block>,
}

/// Runs one call of `want.len()` OTs under `pattern`: the sender on a thread of its own (handed
/// back for the next call), the receiver on this one.
pub(crate) fn run_call<C: Channel + Send + 'static>(
    (mut s, mut chs, d): Sender<C>,
    r: &mut OtReceiver,
    chr: &mut C,
    pattern: ChoicePattern,
    want: Vec<bool>,
) -> (Sender<C>, Call) {
    let n = want.len();
    let h = std::thread::spawn(move || {
        let mut y = vec![Block::ZERO; n];
        s.send(&mut chs, pattern, &mut y).unwrap();
        (s, chs, y)
    });
    let mut bits = ChoiceBits::from_bools(&want);
    let mut z = vec![Block::ZERO; n];
    r.receive(chr, pattern, &mut bits, &mut z).unwrap();
    collect_call(h, d, want, &bits, z)
}

/// The sender handed back by its thread `h` and the call it ran with the receiver's bits and
/// labels.
fn collect_call<C>(
    h: std::thread::JoinHandle<(OtSender, C, Vec<Block>)>,
    d: Block,
    want: Vec<bool>,
    bits: &ChoiceBits,
    z: Vec<Block>,
) -> (Sender<C>, Call) {
    let (s, chs, y) = h.join().unwrap();
    let choices = bits.to_bools();
    (
        (s, chs, d),
        Call {
            want,
            choices,
            y,
            z,
        },
    )
}

/// A block the sender of [`run_deferred_call`] sends after each piece, standing for what a
/// protocol sends there (the tables garbled with the piece's OTs).
const MARK: Block = Block(0x5eed_0f7a_b1e5);

/// [`run_call`] through the deferred calls ([`OtSender::send_deferred`],
/// [`OtReceiver::receive_deferred`]), both parties taking the outputs in pieces of the sizes
/// in `pieces` (cycled). As a protocol does, the sender sends after each piece the chunk
/// messages its fill wrote and then a block of its own ([`MARK`]); the receiver reads the
/// messages of each piece ([`SilentDeferredReceive::read_messages`]), then that block, which
/// it checks, then expands the piece's labels: so a receiver that read a message too early
/// or too late would read the block as one, or one as the block.
///
/// [`SilentDeferredReceive::read_messages`]: super::SilentDeferredReceive::read_messages
pub(crate) fn run_deferred_call<C: Channel + Send + 'static>(
    (mut s, mut chs, d): Sender<C>,
    r: &mut OtReceiver,
    chr: &mut C,
    pattern: ChoicePattern,
    want: Vec<bool>,
    pieces: &[usize],
) -> (Sender<C>, Call) {
    use crate::crypto::BlockChannel;
    let n = want.len();
    let cuts: Vec<usize> = pieces
        .iter()
        .cycle()
        .scan(0, |at, &k| {
            let k = k.min(n - *at);
            *at += k;
            (k > 0).then_some(k)
        })
        .collect();
    let sender_cuts = cuts.clone();
    let h = std::thread::spawn(move || {
        let mut y = vec![Block::ZERO; n];
        let mut call = s.send_deferred(&mut chs, pattern, n).unwrap();
        let (mut at, mut msg) = (0, Vec::new());
        for k in sender_cuts {
            call.fill(&mut y[at..at + k], &mut msg).unwrap();
            msg.push(MARK);
            chs.send_blocks(&msg).unwrap();
            msg.clear();
            at += k;
        }
        assert_eq!(call.remaining(), 0);
        drop(call);
        chs.flush().unwrap();
        (s, chs, y)
    });
    let mut bits = ChoiceBits::from_bools(&want);
    let mut z = vec![Block::ZERO; n];
    let mut call = r.receive_deferred(chr, pattern, &mut bits).unwrap();
    let mut at = 0;
    for k in cuts {
        call.read_messages(chr, at + k).unwrap();
        let mut mark = [Block::ZERO];
        chr.recv_blocks(&mut mark).unwrap();
        assert_eq!(mark[0], MARK, "OTs {at}..{}", at + k);
        call.fill_read(&mut z[at..at + k]).unwrap();
        at += k;
    }
    assert!(call.is_done());
    drop(call);
    collect_call(h, d, want, &bits, z)
}

/// Checks a call under the sender's `delta`: `z = y ⊕ b·Δ` for every OT and its bit `b`, which
/// is the one asked for wherever `pattern` marks the OT chosen. Returns the bits of the other,
/// random, OTs, for the caller's check of their balance. `what` names the call in failures.
pub(crate) fn check_call(
    call: &Call,
    delta: Block,
    pattern: ChoicePattern,
    what: &str,
) -> Vec<bool> {
    let mut random = Vec::new();
    for j in 0..call.z.len() {
        let b = call.choices[j];
        assert_eq!(call.z[j], call.y[j] ^ delta.select(b), "{what} OT {j}");
        if pattern.is_chosen(j) {
            assert_eq!(b, call.want[j], "{what} OT {j}");
        } else {
            random.push(b);
        }
    }
    random
}

/// [`check_call`], and the call's random bits balanced (45–55 % ones) where there are more
/// than 1,000 of them.
pub(crate) fn check_balanced_call(call: &Call, delta: Block, pattern: ChoicePattern, what: &str) {
    let random = check_call(call, delta, pattern, what);
    let (ones, random) = (ones(&random), random.len());
    if random > 1000 {
        assert!(
            (random * 45 / 100..random * 55 / 100).contains(&ones),
            "{what}: {ones} of {random}"
        );
    }
}

/// How many of `bits` are set.
pub(crate) fn ones(bits: &[bool]) -> usize {
    bits.iter().filter(|&&b| b).count()
}

/// The bytes the sender received and sent (in that order) in one call of `n` OTs under
/// `pattern` over metered channels, setup not counted.
pub(crate) fn call_bytes<C: Channel + Send + 'static>(
    (s, chs, d): Sender<Metered<C>>,
    mut r: OtReceiver,
    mut chr: Metered<C>,
    pattern: ChoicePattern,
    n: usize,
) -> (u64, u64) {
    let before = chs.stats().total;
    let ((_, chs, _), _) = run_call((s, chs, d), &mut r, &mut chr, pattern, vec![false; n]);
    let used = chs.stats().total.minus(&before);
    (used.bytes_received, used.bytes_sent)
}

/// A receiver given 4 choices and 3 outputs refuses; a sender that runs 10 OTs where the
/// receiver ran 3 refuses, naming both counts.
pub(crate) fn mismatched_counts_are_errors<C: Channel>(
    (mut s, mut chs, _): Sender<C>,
    r: &mut OtReceiver,
    chr: &mut C,
) {
    let mut z = vec![Block::ZERO; 3];
    let all_random = ChoicePattern::ALL_RANDOM;
    assert!(matches!(
        r.receive(chr, all_random, &mut ChoiceBits::zeros(4), &mut z),
        Err(OtError::LengthMismatch { .. })
    ));
    r.receive(chr, all_random, &mut ChoiceBits::zeros(3), &mut z)
        .unwrap();
    let mut y = vec![Block::ZERO; 10];
    assert!(matches!(
        s.send(&mut chs, all_random, &mut y),
        Err(OtError::CountMismatch {
            ours: 10,
            theirs: 3,
            ..
        })
    ));
}
