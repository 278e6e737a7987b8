//! Test-only support for the two batched engines, [`batch`](super::batch) (half gates) and
//! [`thbatch`](super::thbatch) (three-halves): random ReLU batches and the labels the evaluator
//! would hold, checks against the plain ReLU and against each scheme's one-instance reference,
//! and the test bodies both engines run, written once and generic over the table scheme.

use std::time::Duration;

use proptest::test_runner::TestCaseError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;

use super::batch::{
    instances, recv_bits, send_bits, table_blocks, BatchEvaluator, BatchGarbler, EvaluatorLabels,
    Garbler, GarblerLabels, HalfGates, TableScheme,
};
use super::circuit::{bits_to_words, words_to_bits, BinaryGates, Circuit, CircuitBuilder};
use super::halfgates::{decode, decode_words, encode, encode_words, Delta};
use super::relu::{relu_circuit, relu_plain};
use super::thbatch::{instances_in, table_words, ThGarbler, ThreeHalves};
use super::{thbatch, GcError};
use crate::crypto::Block;
use crate::net::channel::{mem_pair, Channel};

/// A table scheme as the tests drive it: its public constructor and its table sizes.
pub(crate) trait TestScheme: TableScheme<Elem: PartialEq + std::fmt::Debug> + Sized {
    /// Bytes of the tables of one 64-bit ReLU (177 AND gates).
    const RELU64_BYTES: u64;
    /// The garbler of `circuit` under `delta`; `seed` keys the scheme's secret besides Δ, if it
    /// has one.
    fn garbler<'a>(circuit: &'a Circuit, delta: &Delta, seed: Block) -> BatchGarbler<'a, Self>;
    /// Zeroed tables for `n` instances of `circuit`.
    fn tables(circuit: &Circuit, n: usize) -> Vec<Self::Elem>;
    /// Bytes of the tables of `n` instances of `circuit`.
    fn table_bytes(circuit: &Circuit, n: usize) -> u64;
    /// How many whole instances `tables` holds.
    fn instances_in(circuit: &Circuit, tables: &[Self::Elem]) -> Result<usize, GcError>;
}

impl TestScheme for HalfGates {
    /// Two blocks per AND gate.
    const RELU64_BYTES: u64 = 177 * 32;

    fn garbler<'a>(circuit: &'a Circuit, delta: &Delta, _seed: Block) -> Garbler<'a> {
        Garbler::new(circuit, delta)
    }

    fn tables(circuit: &Circuit, n: usize) -> Vec<Block> {
        vec![Block::ZERO; table_blocks(circuit, n)]
    }

    fn table_bytes(circuit: &Circuit, n: usize) -> u64 {
        super::batch::table_bytes(circuit, n)
    }

    fn instances_in(circuit: &Circuit, tables: &[Block]) -> Result<usize, GcError> {
        instances::<HalfGates>(circuit, tables.len())
    }
}

impl TestScheme for ThreeHalves {
    /// 1.5κ + 5 bits per AND gate, padded to whole words.
    const RELU64_BYTES: u64 = 4360;

    fn garbler<'a>(circuit: &'a Circuit, delta: &Delta, seed: Block) -> ThGarbler<'a> {
        ThGarbler::new(circuit, delta, seed)
    }

    fn tables(circuit: &Circuit, n: usize) -> Vec<u64> {
        vec![0; table_words(circuit, n)]
    }

    fn table_bytes(circuit: &Circuit, n: usize) -> u64 {
        thbatch::table_bytes(circuit, n)
    }

    fn instances_in(circuit: &Circuit, tables: &[u64]) -> Result<usize, GcError> {
        instances_in(circuit, tables)
    }
}

/// A scheme's one-instance reference garbler: (circuit, Δ, the seed of
/// [`TestScheme::garbler`], garbler and evaluator zero-labels, instance) → (tables, output
/// zero-labels).
pub(crate) type GarbleReference<E> =
    fn(&Circuit, &Delta, Block, &[Block], &[Block], u64) -> Result<(Vec<E>, Vec<Block>), GcError>;

/// A scheme's one-instance reference evaluator: (circuit, garbler and evaluator labels, tables,
/// instance) → output labels.
pub(crate) type EvalReference<E> =
    fn(&Circuit, &[Block], &[Block], &[E], u64) -> Result<Vec<Block>, GcError>;

/// Random plain ReLU inputs and labels for `n` instances, with edge values mixed in.
pub(crate) struct Batch {
    pub(crate) a: Vec<u64>,
    pub(crate) c: Vec<u64>,
    pub(crate) r: Vec<u64>,
    pub(crate) gb_zero: Vec<Block>,
    pub(crate) ev_zero: Vec<Block>,
}

pub(crate) fn batch(rng: &mut ChaCha12Rng, n: usize, ell: usize) -> Batch {
    let m = if ell == 64 {
        u64::MAX
    } else {
        (1u64 << ell) - 1
    };
    let edges = [0, 1, m, m - 1, 1u64 << (ell - 1), (1u64 << (ell - 1)) - 1];
    let mut val = |i: usize| {
        if i.is_multiple_of(5) {
            edges[rng.gen_range(0..edges.len())]
        } else {
            rng.gen::<u64>() & m
        }
    };
    let a: Vec<u64> = (0..n).map(&mut val).collect();
    let c: Vec<u64> = (0..n).map(&mut val).collect();
    let r: Vec<u64> = (0..n).map(&mut val).collect();
    let gb_zero = (0..n * ell).map(|_| Block::random(rng)).collect();
    let ev_zero = (0..n * 2 * ell).map(|_| Block::random(rng)).collect();
    Batch {
        a,
        c,
        r,
        gb_zero,
        ev_zero,
    }
}

/// The labels the evaluator would hold: the garbler encodes `a`, OT delivers `c ‖ r`.
pub(crate) fn labels(b: &Batch, ell: usize, delta: &Delta) -> (Vec<Block>, Vec<Block>) {
    let mut gl = vec![Block::ZERO; b.gb_zero.len()];
    encode(&b.gb_zero, &words_to_bits(&b.a, ell), delta, &mut gl).unwrap();
    let mut ebits = Vec::new();
    for i in 0..b.c.len() {
        ebits.extend(words_to_bits(&[b.c[i]], ell));
        ebits.extend(words_to_bits(&[b.r[i]], ell));
    }
    let mut el = vec![Block::ZERO; b.ev_zero.len()];
    encode(&b.ev_zero, &ebits, delta, &mut el).unwrap();
    (gl, el)
}

/// The garbler's and the evaluator's output colours decode to `relu_plain` of every instance.
pub(crate) fn check_decoded(
    b: &Batch,
    ell: usize,
    frac: usize,
    zero_lsb: &[bool],
    eval_lsb: &[bool],
) {
    let mut bits = vec![false; zero_lsb.len()];
    decode(zero_lsb, eval_lsb, &mut bits).unwrap();
    let z = bits_to_words(&bits, ell).unwrap();
    for (i, &zi) in z.iter().enumerate() {
        assert_eq!(
            zi,
            relu_plain(b.a[i], b.c[i], b.r[i], ell, frac),
            "instance {i}"
        );
    }
}

/// How a test runs an engine: on the portable kernel or the detected one, on the calling thread
/// or over rayon.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Way {
    pub(crate) portable: bool,
    pub(crate) par: bool,
}

impl Way {
    /// Detected kernel, calling thread.
    pub(crate) const SEQ: Way = Way {
        portable: false,
        par: false,
    };
    /// Detected kernel, rayon.
    pub(crate) const PAR: Way = Way {
        portable: false,
        par: true,
    };
    /// Portable kernel, calling thread.
    pub(crate) const PORTABLE: Way = Way {
        portable: true,
        par: false,
    };
}

/// One test case: a batch of `n` random ℓ-bit ReLUs on circuit `relu_circuit(ℓ, f)`, a random
/// Δ and scheme seed, and the labels the evaluator would hold, all drawn from one seeded stream.
pub(crate) struct Case {
    pub(crate) ell: usize,
    pub(crate) frac: usize,
    pub(crate) circ: Circuit,
    pub(crate) delta: Delta,
    pub(crate) seed: Block,
    pub(crate) b: Batch,
    pub(crate) gl: Vec<Block>,
    pub(crate) el: Vec<Block>,
}

impl Case {
    pub(crate) fn new(rng_seed: u64, ell: usize, frac: usize, n: usize) -> Case {
        let circ = relu_circuit(ell, frac).unwrap();
        let mut rng = ChaCha12Rng::seed_from_u64(rng_seed);
        let delta = Delta::random(&mut rng);
        let seed = Block::random(&mut rng);
        let b = batch(&mut rng, n, ell);
        let (gl, el) = labels(&b, ell, &delta);
        Case {
            ell,
            frac,
            circ,
            delta,
            seed,
            b,
            gl,
            el,
        }
    }

    pub(crate) fn n(&self) -> usize {
        self.b.a.len()
    }

    pub(crate) fn garbler<S: TestScheme>(&self, portable: bool) -> BatchGarbler<'_, S> {
        let g = S::garbler(&self.circ, &self.delta, self.seed);
        if portable {
            g.portable()
        } else {
            g
        }
    }

    pub(crate) fn evaluator<S: TestScheme>(&self, portable: bool) -> BatchEvaluator<'_, S> {
        let e = BatchEvaluator::new(&self.circ);
        if portable {
            e.portable()
        } else {
            e
        }
    }

    /// Garbles the batch `way` from instance `first` on: its tables and output colours.
    pub(crate) fn garble<S: TestScheme>(&self, way: Way, first: u64) -> (Vec<S::Elem>, Vec<bool>) {
        let g = self.garbler::<S>(way.portable);
        let mut tables = S::tables(&self.circ, self.n());
        let mut lsb = vec![false; self.n() * self.ell];
        let (gz, ez) = (&self.b.gb_zero, &self.b.ev_zero);
        if way.par {
            g.garble_batch_par(gz, ez, first, &mut tables, &mut lsb)
        } else {
            g.garble_batch(gz, ez, first, &mut tables, &mut lsb)
        }
        .unwrap();
        (tables, lsb)
    }

    /// Evaluates `tables` on the case's labels `way` from instance `first` on: the output
    /// colours.
    pub(crate) fn eval<S: TestScheme>(
        &self,
        way: Way,
        tables: &[S::Elem],
        first: u64,
    ) -> Vec<bool> {
        let e = self.evaluator::<S>(way.portable);
        let mut lsb = vec![false; self.n() * self.ell];
        if way.par {
            e.eval_batch_par(&self.gl, &self.el, tables, first, &mut lsb)
        } else {
            e.eval_batch(&self.gl, &self.el, tables, first, &mut lsb)
        }
        .unwrap();
        lsb
    }

    pub(crate) fn check_decoded(&self, zero_lsb: &[bool], eval_lsb: &[bool]) {
        check_decoded(&self.b, self.ell, self.frac, zero_lsb, eval_lsb);
    }

    /// The outputs of a batch engine, instance by instance against a reference garbler and
    /// evaluator from instance number `first` on: the tables (each instance's share of
    /// `tables`), the garbler's output colours (`lsb.0`) and the evaluator's (`lsb.1`).
    pub(crate) fn check_against_reference<E: PartialEq + std::fmt::Debug>(
        &self,
        first: u64,
        tables: &[E],
        lsb: (&[bool], &[bool]),
        (garble_reference, eval_reference): (GarbleReference<E>, EvalReference<E>),
    ) {
        let (n, ell) = (self.n(), self.ell);
        let w = tables.len() / n;
        let colours = |labels: &[Block]| labels.iter().map(|l| l.lsb()).collect::<Vec<_>>();
        for i in 0..n {
            let (g, e) = (i * ell..(i + 1) * ell, 2 * i * ell..2 * (i + 1) * ell);
            let instance = first + i as u64;
            let (t, out0) = garble_reference(
                &self.circ,
                &self.delta,
                self.seed,
                &self.b.gb_zero[g.clone()],
                &self.b.ev_zero[e.clone()],
                instance,
            )
            .unwrap();
            assert_eq!(
                &tables[i * w..(i + 1) * w],
                &t[..],
                "tables of instance {i}"
            );
            assert_eq!(&lsb.0[g.clone()], &colours(&out0)[..]);
            let outl =
                eval_reference(&self.circ, &self.gl[g.clone()], &self.el[e], &t, instance).unwrap();
            assert_eq!(&lsb.1[g], &colours(&outl)[..]);
        }
    }
}

/// A batch of `n` ReLUs garbled and evaluated on the calling thread from instance `first` on
/// decodes to the plain ReLU.
pub(crate) fn relu_batch_decodes<S: TestScheme>(
    rng_seed: u64,
    (ell, frac): (usize, usize),
    n: usize,
    first: u64,
) {
    let c = Case::new(rng_seed, ell, frac, n);
    let (tables, zero_lsb) = c.garble::<S>(Way::SEQ, first);
    let eval_lsb = c.eval::<S>(Way::SEQ, &tables, first);
    c.check_decoded(&zero_lsb, &eval_lsb);
}

/// The batch engine against the scheme's reference garbler and evaluator, instance by
/// instance, and decoding.
pub(crate) fn engine_equals_reference_and_decodes<S: TestScheme>(
    reference: (GarbleReference<S::Elem>, EvalReference<S::Elem>),
) {
    let c = Case::new(3, 16, 5, super::kernel::GROUP + 3);
    let (tables, zero_lsb) = c.garble::<S>(Way::SEQ, 77);
    let eval_lsb = c.eval::<S>(Way::SEQ, &tables, 77);
    c.check_decoded(&zero_lsb, &eval_lsb);
    c.check_against_reference(77, &tables, (&zero_lsb, &eval_lsb), reference);
}

/// Two ways of running the engine (kernel, threads) on `n` 64-bit ReLUs from instance `first`
/// on garble the same tables and colours, evaluate to the same colours, and decode; evaluating
/// under the wrong instance numbers does not (the tweaks are bound).
pub(crate) fn ways_agree<S: TestScheme>(rng_seed: u64, n: usize, first: u64, ways: [Way; 2]) {
    let c = Case::new(rng_seed, 64, 12, n);
    let kernels = ways.map(|w| c.garbler::<S>(w.portable).kernel());
    for (w, k) in ways.iter().zip(kernels) {
        if w.portable {
            assert_eq!(k, "portable");
        }
    }
    let (t1, l1) = c.garble::<S>(ways[0], first);
    let (t2, l2) = c.garble::<S>(ways[1], first);
    assert!(
        t1 == t2 && l1 == l2,
        "{ways:?} on kernels {kernels:?} garble differently"
    );
    let e1 = c.eval::<S>(ways[0], &t1, first);
    let e2 = c.eval::<S>(ways[1], &t1, first);
    assert_eq!(e1, e2);
    c.check_decoded(&l1, &e1);
    let wrong = c.eval::<S>(ways[1], &t1, first + 1);
    assert_ne!(wrong, e1);
}

/// Over a channel, `n` 64-bit ReLUs twice: streamed (chunks of 300 garbled, 128 evaluated),
/// then streamed again in chunks of 7 with later instance numbers and stored by the evaluator;
/// the evaluator returns both sessions' output colours to the garbler, eight to a byte. Sizes
/// are `n` times the scheme's bytes per ReLU, and everything decodes.
pub(crate) fn streaming_and_stored_tables<S: TestScheme>(n: usize) {
    let c = Case::new(11, 64, 12, n);
    let ell = c.ell;
    let (mut cg, mut ce) = mem_pair(Duration::from_secs(30));
    let case = &c;
    let ((s1, s2, rbits, zl, zl2, ev1, ev2), (got1, got2, sent_bits, o1, o2)) =
        std::thread::scope(|sc| {
            let garbler = sc.spawn(move || {
                let g = case.garbler::<S>(false);
                let (gz, ez) = (&case.b.gb_zero, &case.b.ev_zero);
                let mut zl = vec![false; n * ell];
                let s1 = g
                    .garble_stream(
                        &mut cg,
                        GarblerLabels::Held(gz),
                        EvaluatorLabels::Held(ez),
                        0,
                        &mut zl,
                        300,
                    )
                    .unwrap();
                let mut zl2 = vec![false; n * ell];
                let s2 = g
                    .garble_stream(
                        &mut cg,
                        GarblerLabels::Held(gz),
                        EvaluatorLabels::Held(ez),
                        n as u64,
                        &mut zl2,
                        7,
                    )
                    .unwrap();
                let mut ev1 = vec![false; n * ell];
                let mut ev2 = vec![false; n * ell];
                let r1 = recv_bits(&mut cg, &mut ev1).unwrap();
                let r2 = recv_bits(&mut cg, &mut ev2).unwrap();
                (s1, s2, r1 + r2, zl, zl2, ev1, ev2)
            });
            let e = case.evaluator::<S>(false);
            let mut o1 = vec![false; n * ell];
            let got1 = e
                .eval_stream(&mut ce, &case.gl, &case.el, 0, &mut o1, 128)
                .unwrap();
            let mut stored = S::tables(&case.circ, n);
            let got2 = e.recv_tables(&mut ce, &mut stored).unwrap();
            assert_eq!(S::instances_in(&case.circ, &stored).unwrap(), n);
            assert!(e.recv_tables(&mut ce, &mut stored[1..]).is_err());
            let mut o2 = vec![false; n * ell];
            e.eval_batch_par(&case.gl, &case.el, &stored, n as u64, &mut o2)
                .unwrap();
            let sent_bits = send_bits(&mut ce, &o1).unwrap() + send_bits(&mut ce, &o2).unwrap();
            ce.flush().unwrap();
            (garbler.join().unwrap(), (got1, got2, sent_bits, o1, o2))
        });
    let expect = S::table_bytes(&c.circ, n);
    assert_eq!((s1, s2, got1, got2), (expect, expect, expect, expect));
    assert_eq!(expect, n as u64 * S::RELU64_BYTES);
    assert_eq!(rbits, sent_bits);
    assert_eq!(sent_bits, 2 * (n * ell).div_ceil(8) as u64);
    assert!(ev1 == o1 && ev2 == o2);
    c.check_decoded(&zl, &ev1);
    c.check_decoded(&zl2, &ev2);
}

/// Wrong lengths, instance numbers past the limit and a silent peer are errors, not panics.
pub(crate) fn bad_lengths_are_errors_not_panics<S: TestScheme>() {
    let circ = relu_circuit(8, 2).unwrap();
    let d = Delta::from_block(Block(1)).unwrap();
    let g = S::garbler(&circ, &d, Block(2));
    let mut t = S::tables(&circ, 2);
    let mut l = vec![false; 16];
    let gz = vec![Block::ZERO; 16];
    let ez = vec![Block::ZERO; 32];
    assert!(g.garble_batch(&gz, &ez, 0, &mut t, &mut l).is_ok());
    for r in [
        g.garble_batch(&gz[1..], &ez, 0, &mut t, &mut l),
        g.garble_batch(&gz, &ez, 0, &mut t[1..], &mut l),
        g.garble_batch(&gz, &ez, 0, &mut t, &mut l[1..]),
    ] {
        assert!(matches!(r, Err(GcError::Length { .. })), "{r:?}");
    }
    assert!(matches!(
        g.garble_batch(&gz, &ez, u64::MAX, &mut t, &mut l),
        Err(GcError::InstanceOverflow { .. })
    ));
    let e = BatchEvaluator::<S>::new(&circ);
    assert!(e.eval_batch_par(&gz, &ez[2..], &t, 0, &mut l).is_err());
    assert!(S::instances_in(&circ, &t[1..]).is_err());
    let (mut a, _b) = mem_pair(Duration::from_millis(50));
    assert!(matches!(
        e.recv_tables(&mut a, &mut t[1..]),
        Err(GcError::Length { .. })
    ));
    // A peer that never sends: a time-out error, not a hang.
    assert!(matches!(
        e.recv_tables(&mut a, &mut t),
        Err(GcError::Net(_))
    ));
}

/// The whole engine (parallel garbling, word encoding, parallel evaluation, word decoding)
/// against `relu_plain` on `n` ℓ-bit ReLUs from instance `first` on: the body of both engines'
/// property tests.
pub(crate) fn relu_engine_matches_plain<S: TestScheme>(
    (ell, frac): (usize, usize),
    n: usize,
    first: u64,
    rng_seed: u64,
) -> Result<(), TestCaseError> {
    let c = Case::new(rng_seed, ell, frac, n);
    let (tables, zero_lsb) = c.garble::<S>(Way::PAR, first);
    // The garbler's labels of the words `a`, encoded word by word, are those it evaluates on.
    let mut gl = vec![Block::ZERO; n * ell];
    encode_words(&c.b.gb_zero, &c.b.a, ell, &c.delta, &mut gl).unwrap();
    proptest::prop_assert_eq!(&gl, &c.gl);
    let eval_lsb = c.eval::<S>(Way::PAR, &tables, first);
    let z = decode_words(&zero_lsb, &eval_lsb, ell).unwrap();
    for (i, &zi) in z.iter().enumerate() {
        proptest::prop_assert_eq!(zi, relu_plain(c.b.a[i], c.b.c[i], c.b.r[i], ell, frac));
    }
    Ok(())
}

/// Every two-input function of one garbler and one evaluator bit, through AND, XOR, NOT and
/// constants, garbled by a scheme's reference and evaluated for all four inputs, over `trials`
/// random Δ, seeds and zero-labels drawn from `rng_seed`: the tables are `table_len(and_count)`
/// long, and the evaluator ends with exactly one of the two labels of each output, the one whose
/// colour decodes to the function's value.
pub(crate) fn every_gate_kind_garbles_correctly<E>(
    rng_seed: u64,
    trials: u64,
    (garble_reference, eval_reference): (GarbleReference<E>, EvalReference<E>),
    table_len: fn(usize) -> usize,
) {
    let mut b = CircuitBuilder::new();
    let x = b.garbler_input().unwrap();
    let y = b.evaluator_input().unwrap();
    let and = b.and(&x, &y);
    let xor = b.xor(&x, &y);
    let nx = b.not(&x);
    let nand = b.not(&and);
    let ny = b.not(&y);
    let t = b.and(&nx, &ny);
    let or_ = b.not(&t);
    let and_nx = b.and(&nx, &y);
    let (one, zero) = (b.constant(true), b.constant(false));
    for o in [and, xor, nx, nand, or_, and_nx, one, zero] {
        b.output(&o);
    }
    let c = b.finish();
    let mut rng = ChaCha12Rng::seed_from_u64(rng_seed);
    for trial in 0..trials {
        let delta = Delta::random(&mut rng);
        let seed = Block::random(&mut rng);
        let gz = [Block::random(&mut rng)];
        let ez = [Block::random(&mut rng)];
        let (tables, out0) = garble_reference(&c, &delta, seed, &gz, &ez, trial).unwrap();
        assert_eq!(tables.len(), table_len(c.and_count()));
        for (xb, yb) in [(false, false), (false, true), (true, false), (true, true)] {
            let (mut gl, mut el) = ([Block::ZERO], [Block::ZERO]);
            encode(&gz, &[xb], &delta, &mut gl).unwrap();
            encode(&ez, &[yb], &delta, &mut el).unwrap();
            let outl = eval_reference(&c, &gl, &el, &tables, trial).unwrap();
            let want = [
                xb & yb,
                xb ^ yb,
                !xb,
                !(xb & yb),
                xb | yb,
                !xb & yb,
                true,
                false,
            ];
            for (i, (l, z)) in outl.iter().zip(&out0).enumerate() {
                let v = *l == *z ^ delta.block();
                assert!(v || *l == *z, "output {i} is neither label");
                assert_eq!(v, want[i], "output {i} for inputs {xb} {yb}");
                let mut bit = [false];
                decode(&[z.lsb()], &[l.lsb()], &mut bit).unwrap();
                assert_eq!(bit[0], want[i], "colour of output {i} for inputs {xb} {yb}");
            }
        }
    }
}
