//! The half-gates garbling scheme (Zahur–Rosulek–Evans, Eurocrypt 2015) with free XOR and
//! point-and-permute, hashed with the tweakable circular correlation-robust hash of Guo, Katz,
//! Wang and Yu (2020): the global offset [`Delta`], the tweak schedule, encoding of inputs,
//! decoding of outputs, and a one-instance reference garbler and evaluator.
//!
//! Labels: every wire `w` has a zero-label `W⁰` known to the garbler; the label of value `v` is
//! `W⁰ ⊕ v·Δ`. The evaluator holds exactly one label per wire. XOR gates XOR labels; a NOT gate
//! is `W⁰ ← W⁰ ⊕ Δ` for the garbler and a copy for the evaluator; a constant `v` has zero-label
//! `v·Δ` and the evaluator's label is the all-zero block.
//!
//! An AND gate with inputs `a`, `b` (zero-labels `A⁰`, `B⁰`, colours `pa = lsb A⁰`, `pb = lsb B⁰`)
//! produces two ciphertexts, hashed with the two tweaks of [`and_tweaks`]:
//!
//! ```text
//! T_G = H(A⁰, t₀) ⊕ H(A⁰⊕Δ, t₀) ⊕ pb·Δ        W_G⁰ = H(A⁰, t₀) ⊕ pa·T_G
//! T_E = H(B⁰, t₁) ⊕ H(B⁰⊕Δ, t₁) ⊕ A⁰          W_E⁰ = H(B⁰, t₁) ⊕ pb·(T_E ⊕ A⁰)
//! output zero-label W⁰ = W_G⁰ ⊕ W_E⁰
//! ```
//!
//! and the evaluator, holding `A`, `B` with colours `sa`, `sb`, computes
//! `W = H(A, t₀) ⊕ sa·T_G ⊕ H(B, t₁) ⊕ sb·(T_E ⊕ A)`. `H(x, t) = π(π(x) ⊕ t) ⊕ π(x)`
//! ([`FixedKeyAes::tccr`](crate::crypto::aes::FixedKeyAes::tccr)).
//!
//! Every colour-dependent choice is a mask ([`Block::select`]), never a branch.

use rand_core::{CryptoRng, RngCore};

use super::circuit::{check_len, Circuit, Gate};
use super::GcError;
use crate::crypto::{Block, FIXED_KEY_AES};

/// The global free-XOR offset Δ of a garbling session: a random block with lsb 1.
///
/// Draw a fresh one per session with [`Delta::random`]; every label of the session differs from
/// its partner by Δ, so Δ must never reach the evaluator. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Delta(Block);

impl Drop for Delta {
    // Δ opens every label of the session: wiped when the last copy goes.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0 .0);
    }
}

impl Delta {
    /// A fresh uniformly random Δ (127 random bits, lsb forced to 1).
    pub fn random<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Delta(Block::random(rng).with_lsb(true))
    }

    /// Δ from a block chosen elsewhere (for instance by a correlated-OT sender, whose correlation
    /// must equal the garbling offset). Fails unless its lsb is 1.
    pub fn from_block(block: Block) -> Result<Self, GcError> {
        if block.lsb() {
            Ok(Delta(block))
        } else {
            Err(GcError::DeltaLsb)
        }
    }

    /// The offset as a block.
    #[inline(always)]
    pub fn block(&self) -> Block {
        self.0
    }
}

impl core::fmt::Debug for Delta {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Delta(..)")
    }
}

/// Instance numbers stay below 2^63 within one Δ: every garbling tweak then has bit 127 clear,
/// while the chosen-message OT tweaks used with the same Δ have it set
/// ([`OT_TWEAK_BIT`](crate::crypto::ot::iknp::OT_TWEAK_BIT)), so the two never meet. Enforced
/// by `check_instances` wherever instances are garbled or evaluated, not assumed.
pub const INSTANCE_LIMIT: u64 = 1 << 63;

// The largest garbler-half tweak (last instance, AND index 2^63 − 1, far beyond the 2^61 that
// `check_instances` allows) lies below the OT tweaks, and so does its evaluator half, which only
// sets bit 0.
const _: () = assert!(
    (((INSTANCE_LIMIT - 1) as u128) << 64 | ((u64::MAX >> 1) as u128) << 1)
        < crate::crypto::ot::iknp::OT_TWEAK_BIT
);

/// Refuses instance numbers `first..first + n` that reach [`INSTANCE_LIMIT`], and circuits
/// of 2^61 AND gates or more: their tweaks would reach bit 63 of the low word, where the
/// output tweaks of [`gc::arith`](super::arith) live (and, beyond, the instance bits).
pub(crate) fn check_instances(first: u64, n: usize, and_count: usize) -> Result<(), GcError> {
    let end = first.checked_add(n as u64);
    if n > 0 && end.is_none_or(|e| e > INSTANCE_LIMIT) || and_count as u64 >= 1 << 61 {
        return Err(GcError::InstanceOverflow { first, n });
    }
    Ok(())
}

/// The two hash tweaks of AND gate `and_index` (counting AND gates only, in gate order) of
/// instance `instance`: `t₀` for the garbler half, `t₁ = t₀ ⊕ 1` for the evaluator half.
///
/// `t₀ = instance · 2⁶⁴ + 2 · and_index`, so tweaks are unique across a session as long as every
/// instance number is used once per Δ, whatever circuits the instances run.
#[inline(always)]
pub fn and_tweaks(instance: u64, and_index: usize) -> (Block, Block) {
    let t = ((instance as u128) << 64) | ((and_index as u128) << 1);
    (Block(t), Block(t | 1))
}

/// The label of each bit: `out[i] = zero[i] ⊕ bits[i]·Δ`, without branching on the bits.
///
/// This is how the garbler turns its own input bits into the labels it sends.
pub fn encode(
    zero: &[Block],
    bits: &[bool],
    delta: &Delta,
    out: &mut [Block],
) -> Result<(), GcError> {
    check_len("bits to encode", zero.len(), bits.len())?;
    check_len("encoded labels", zero.len(), out.len())?;
    let d = delta.block();
    for ((o, &z), &b) in out.iter_mut().zip(zero).zip(bits) {
        *o = z ^ d.select(b);
    }
    Ok(())
}

/// Output decoding: `bits[i] = eval_lsb[i] ⊕ zero_lsb[i]`, from the colour bits the evaluator
/// sends and the colours of the garbler's output zero-labels.
pub fn decode(zero_lsb: &[bool], eval_lsb: &[bool], bits: &mut [bool]) -> Result<(), GcError> {
    check_len("evaluator output colours", zero_lsb.len(), eval_lsb.len())?;
    check_len("decoded bits", zero_lsb.len(), bits.len())?;
    for ((o, &z), &e) in bits.iter_mut().zip(zero_lsb).zip(eval_lsb) {
        *o = z ^ e;
    }
    Ok(())
}

/// [`encode`] for ring words: the labels of the low `ell` bits of each word (bit 0 first),
/// `out[i·ell + b] = zero[i·ell + b] ⊕ bit_b(words[i])·Δ`. This is how the garbler sends the
/// labels of its shares online.
pub fn encode_words(
    zero: &[Block],
    words: &[u64],
    ell: usize,
    delta: &Delta,
    out: &mut [Block],
) -> Result<(), GcError> {
    if !(1..=64).contains(&ell) {
        return Err(GcError::Params(format!("words of {ell} bits")));
    }
    check_len("zero-labels (words · ell)", words.len() * ell, zero.len())?;
    check_len("encoded labels", zero.len(), out.len())?;
    let d = delta.block();
    for (i, &w) in words.iter().enumerate() {
        for b in 0..ell {
            out[i * ell + b] = zero[i * ell + b] ^ d.select((w >> b) & 1 == 1);
        }
    }
    Ok(())
}

/// [`decode`] for ring words: each run of `ell` output colours (bit 0 first) becomes a word.
pub fn decode_words(zero_lsb: &[bool], eval_lsb: &[bool], ell: usize) -> Result<Vec<u64>, GcError> {
    let mut bits = vec![false; zero_lsb.len()];
    decode(zero_lsb, eval_lsb, &mut bits)?;
    super::circuit::bits_to_words(&bits, ell)
}

/// Garbles one instance, gate by gate: the reference the batched engine is tested against.
///
/// Returns the garbled tables (`2 · and_count` blocks: `[T_G, T_E]` per AND gate in gate order)
/// and the output zero-labels.
pub fn garble_reference(
    circuit: &Circuit,
    delta: &Delta,
    gb_zero: &[Block],
    ev_zero: &[Block],
    instance: u64,
) -> Result<(Vec<Block>, Vec<Block>), GcError> {
    check_instances(instance, 1, circuit.and_count())?;
    circuit.check_inputs(
        ["garbler zero-labels", "evaluator zero-labels"],
        gb_zero.len(),
        ev_zero.len(),
    )?;
    let d = delta.block();
    let aes = &*FIXED_KEY_AES;
    let mut tables = Vec::with_capacity(2 * circuit.and_count());
    let out = walk_instance(circuit, gb_zero, ev_zero, d, |k, a0, b0| {
        let (t0, t1) = and_tweaks(instance, k);
        let (ha0, ha1) = (aes.tccr(t0, a0), aes.tccr(t0, a0 ^ d));
        let (hb0, hb1) = (aes.tccr(t1, b0), aes.tccr(t1, b0 ^ d));
        let tg = ha0 ^ ha1 ^ d.select(b0.lsb());
        let te = hb0 ^ hb1 ^ a0;
        let wg = ha0 ^ tg.select(a0.lsb());
        let we = hb0 ^ (te ^ a0).select(b0.lsb());
        tables.push(tg);
        tables.push(te);
        wg ^ we
    });
    Ok((tables, out))
}

/// One instance walked gate by gate on its labels: the loop shared by the reference garblers
/// and evaluators of both schemes. The inputs are `gb` then `ev`; XOR is free; NOT adds `d`
/// and constant `v` is `v·d`, where `d` is Δ for the garbler and zero for the evaluator (for
/// whom NOT is free and constants are the zero label); AND gate `k` (in gate order) on labels
/// `a`, `b` gets `and(k, a, b)`. Returns the output labels. Lengths are the caller's to check.
pub(crate) fn walk_instance(
    circuit: &Circuit,
    gb: &[Block],
    ev: &[Block],
    d: Block,
    mut and: impl FnMut(usize, Block, Block) -> Block,
) -> Vec<Block> {
    let mut w = vec![Block::ZERO; circuit.wires()];
    w[..gb.len()].copy_from_slice(gb);
    w[gb.len()..gb.len() + ev.len()].copy_from_slice(ev);
    let mut k = 0;
    for g in circuit.gates() {
        match *g {
            Gate::Xor { a, b, out } => w[out as usize] = w[a as usize] ^ w[b as usize],
            Gate::Not { a, out } => w[out as usize] = w[a as usize] ^ d,
            Gate::Const { value, out } => w[out as usize] = d.select(value),
            Gate::And { a, b, out } => {
                w[out as usize] = and(k, w[a as usize], w[b as usize]);
                k += 1;
            }
        }
    }
    circuit.outputs().iter().map(|&o| w[o as usize]).collect()
}

/// Evaluates one garbled instance gate by gate: the reference for the batched evaluator.
/// Returns the output labels.
pub fn eval_reference(
    circuit: &Circuit,
    gb_labels: &[Block],
    ev_labels: &[Block],
    tables: &[Block],
    instance: u64,
) -> Result<Vec<Block>, GcError> {
    check_instances(instance, 1, circuit.and_count())?;
    circuit.check_inputs(
        ["garbler labels", "evaluator labels"],
        gb_labels.len(),
        ev_labels.len(),
    )?;
    check_len("garbled tables", 2 * circuit.and_count(), tables.len())?;
    let aes = &*FIXED_KEY_AES;
    Ok(walk_instance(
        circuit,
        gb_labels,
        ev_labels,
        Block::ZERO,
        |k, la, lb| {
            let (t0, t1) = and_tweaks(instance, k);
            let (tg, te) = (tables[2 * k], tables[2 * k + 1]);
            let wg = aes.tccr(t0, la) ^ tg.select(la.lsb());
            let we = aes.tccr(t1, lb) ^ (te ^ la).select(lb.lsb());
            wg ^ we
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gc::circuit::{BinaryGates, CircuitBuilder};
    use crate::gc::test_support;
    use rand::SeedableRng;
    use rand_chacha::ChaCha12Rng;

    /// Every two-input function of one garbler and one evaluator bit, through AND, XOR, NOT and
    /// constants, garbled and evaluated for all four inputs.
    #[test]
    fn every_gate_kind_garbles_correctly() {
        test_support::every_gate_kind_garbles_correctly(
            7,
            8,
            (
                |c, d, _, gz, ez, i| garble_reference(c, d, gz, ez, i),
                eval_reference,
            ),
            |ands| 2 * ands,
        );
    }

    #[test]
    fn garbling_tweaks_never_meet_ot_tweaks() {
        use crate::crypto::ot::iknp::OT_TWEAK_BIT;
        for inst in [0, 1, INSTANCE_LIMIT / 2, INSTANCE_LIMIT - 1] {
            for k in [0usize, 1, 176, 1 << 40] {
                let (t0, t1) = and_tweaks(inst, k);
                assert_eq!(t0.0 & OT_TWEAK_BIT, 0);
                assert_eq!(t1.0 & OT_TWEAK_BIT, 0);
            }
        }
        // The check refuses any instance range reaching the limit.
        assert!(check_instances(INSTANCE_LIMIT - 2, 2, 177).is_ok());
        assert!(matches!(
            check_instances(INSTANCE_LIMIT - 1, 2, 177),
            Err(GcError::InstanceOverflow { .. })
        ));
        assert!(check_instances(u64::MAX, 1, 177).is_err());
        assert!(check_instances(u64::MAX, 0, 177).is_ok());
        assert!(check_instances(0, 1, (1 << 61) - 1).is_ok());
        assert!(check_instances(0, 1, 1 << 61).is_err());
        // And the garbler itself applies it.
        let circ = one_and();
        let mut rng = ChaCha12Rng::seed_from_u64(3);
        let delta = Delta::random(&mut rng);
        let e =
            garble_reference(&circ, &delta, &[Block(1)], &[Block(2)], INSTANCE_LIMIT).unwrap_err();
        assert!(matches!(e, GcError::InstanceOverflow { .. }), "{e}");
    }

    #[test]
    fn delta_is_wiped_when_dropped() {
        let mut rng = ChaCha12Rng::seed_from_u64(5);
        let mut d = std::mem::ManuallyDrop::new(Delta::random(&mut rng));
        assert_ne!(d.block(), Block::ZERO);
        // SAFETY: dropped once, then only its inline bytes are read (a u128 has no invalid bit
        // patterns and owns no heap memory).
        unsafe { std::mem::ManuallyDrop::drop(&mut d) };
        assert_eq!(d.0, Block::ZERO);
    }

    #[test]
    fn tweaks_are_unique_and_delta_has_colour_bit() {
        let mut seen = std::collections::HashSet::new();
        for inst in [0u64, 1, 2, INSTANCE_LIMIT - 1] {
            for k in 0..50 {
                let (t0, t1) = and_tweaks(inst, k);
                assert!(seen.insert(t0.0) && seen.insert(t1.0));
            }
        }
        let mut rng = ChaCha12Rng::seed_from_u64(1);
        for _ in 0..32 {
            assert!(Delta::random(&mut rng).block().lsb());
        }
        assert!(matches!(
            Delta::from_block(Block(2)),
            Err(GcError::DeltaLsb)
        ));
        assert_eq!(
            format!("{:?}", Delta::from_block(Block(3)).unwrap()),
            "Delta(..)"
        );
    }

    /// One garbler input AND one evaluator input.
    fn one_and() -> Circuit {
        let mut b = CircuitBuilder::new();
        let x = b.garbler_input().unwrap();
        let y = b.evaluator_input().unwrap();
        let z = b.and(&x, &y);
        b.output(&z);
        b.finish()
    }

    #[test]
    fn wrong_lengths_are_errors() {
        let c = one_and();
        let d = Delta::from_block(Block(1)).unwrap();
        assert!(garble_reference(&c, &d, &[], &[Block::ZERO], 0).is_err());
        assert!(eval_reference(&c, &[Block::ZERO], &[Block::ZERO], &[Block::ZERO], 0).is_err());
        assert!(encode(&[Block::ZERO], &[], &d, &mut [Block::ZERO]).is_err());
        assert!(decode(&[true], &[true, false], &mut [false]).is_err());
    }
}
