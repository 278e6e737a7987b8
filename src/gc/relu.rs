//! The ReLU gadget on ℓ-bit additive shares, with free truncation, and its plaintext reference.
//!
//! The garbler (server) holds a share `a` and the evaluator (client) a share `c` in Z_2^ℓ.
//! The value is `v = relu((a + c) >>arith f)`, where `a + c` is read as a signed two's-complement
//! ℓ-bit value and `>>arith` is floor division by 2^f. Two circuits compute it:
//!
//! - [`relu_select_circuit`], the protocol's: outputs the low `ℓ − f − 1` bits of the
//!   truncated sum and the selector `¬sign`, whose product is `v`; `gc::arith` turns them into
//!   additive shares of that product, the selection included, with two short ciphertexts per
//!   bit, instead of AND gates for the selection and a subtractor for a mask.
//! - [`relu_circuit`], self-contained: the evaluator also inputs a fresh mask `r` and the
//!   circuit outputs `z = v − r (mod 2^ℓ)`, the garbler's new share (`r` stays the
//!   evaluator's). The engine's benchmarks and the comparisons with other garbling libraries
//!   use it, since any garbler can run it as it is.
//!
//! Cost: the adder `y = a + c` takes ℓ−1 AND gates (no carry into bit 0, none out of the top
//! bit); the truncation is free rewiring (drop the f low bits, the sign fills the top); the
//! selection `v_i = t_i ∧ ¬sign` takes ℓ−f−1 AND gates (bit ℓ−f−1 of the truncated value is the
//! sign itself and the bits above copy it, so in a non-negative result they are constant 0);
//! the re-masking subtractor `v − r` of [`relu_circuit`] takes ℓ−1. Totals at ℓ = 64, f = 12:
//! 63 for the select circuit (the adder alone), 177 for [`relu_circuit`]. When `f = ℓ−1` the truncated value is 0
//! or −1, so the ReLU is constant zero: [`relu_circuit`]'s output `−r` does not depend on the
//! shares, the adder is dead, and the subtractor's first borrow is free, leaving `ℓ−2` AND
//! gates; the select circuit keeps one value bit, the sign, selected by `¬sign`.
//!
//! Wire order: garbler inputs `a₀..a_{ℓ−1}`; evaluator inputs `c₀..c_{ℓ−1}` (then
//! `r₀..r_{ℓ−1}` for [`relu_circuit`]); outputs `t₀..` then `¬sign` for
//! [`relu_select_circuit`], `z₀..z_{ℓ−1}` for [`relu_circuit`] (bit 0 least significant
//! everywhere).

use super::circuit::{BinaryGates, Circuit, CircuitBuilder};
use super::GcError;

/// Checks `0 ≤ frac < ell ≤ 64`.
fn check_params(ell: usize, frac: usize) -> Result<(), GcError> {
    if !(1..=64).contains(&ell) || frac >= ell {
        return Err(GcError::Params(format!(
            "ReLU needs 1 ≤ ℓ ≤ 64 and 0 ≤ f < ℓ, got ℓ = {ell}, f = {frac}"
        )));
    }
    Ok(())
}

/// `x + y mod 2^n` with a ripple-carry adder: `n − 1` AND gates.
pub fn ripple_add<F: BinaryGates>(f: &mut F, x: &[F::Bit], y: &[F::Bit]) -> Vec<F::Bit> {
    let n = x.len().min(y.len());
    let mut out = Vec::with_capacity(n);
    let mut carry = f.constant(false);
    for i in 0..n {
        let t = f.xor(&x[i], &y[i]);
        out.push(f.xor(&t, &carry));
        if i + 1 < n {
            // carry' = maj(x, y, carry) = carry ⊕ ((x ⊕ carry) ∧ (y ⊕ carry)): one AND.
            let xc = f.xor(&x[i], &carry);
            let yc = f.xor(&y[i], &carry);
            let m = f.and(&xc, &yc);
            carry = f.xor(&carry, &m);
        }
    }
    out
}

/// `x − y mod 2^n` with a ripple-borrow subtractor: `n − 1` AND gates (fewer when constants
/// fold).
pub fn ripple_sub<F: BinaryGates>(f: &mut F, x: &[F::Bit], y: &[F::Bit]) -> Vec<F::Bit> {
    let n = x.len().min(y.len());
    let mut out = Vec::with_capacity(n);
    let mut borrow = f.constant(false);
    for i in 0..n {
        let t = f.xor(&x[i], &y[i]);
        out.push(f.xor(&t, &borrow));
        if i + 1 < n {
            // borrow' = maj(¬x, y, borrow) = borrow ⊕ ((¬x ⊕ borrow) ∧ (y ⊕ borrow)).
            let nx = f.not(&x[i]);
            let xb = f.xor(&nx, &borrow);
            let yb = f.xor(&y[i], &borrow);
            let m = f.and(&xb, &yb);
            borrow = f.xor(&borrow, &m);
        }
    }
    out
}

/// The ReLU gadget over any [`BinaryGates`] interpreter: `relu((a + c) >>arith frac) − r` on
/// ℓ-bit words given as little-endian bit slices of equal length ℓ.
pub fn relu_gadget<F: BinaryGates>(
    f: &mut F,
    a: &[F::Bit],
    c: &[F::Bit],
    r: &[F::Bit],
    frac: usize,
) -> Result<Vec<F::Bit>, GcError> {
    let ell = a.len();
    check_params(ell, frac)?;
    super::circuit::check_len("ReLU mask r bits", ell, r.len())?;
    let zero = f.constant(false);
    // At f = ℓ − 1 the value is the constant 0: no gate is spent on it.
    let mut v = if frac + 1 < ell {
        relu_value_gadget(f, a, c, frac)?
    } else {
        super::circuit::check_len("ReLU share c bits", ell, c.len())?;
        Vec::new()
    };
    v.resize(ell, zero);
    Ok(ripple_sub(f, &v, r))
}

/// Bits of the value [`relu_value_gadget`] outputs, and of the truncated sum
/// [`relu_select_gadget`] outputs: `ℓ − frac − 1` (a non-negative result of the truncation is
/// below `2^(ℓ−frac−1)`), and one bit when `frac = ℓ − 1`, so that the circuit always has an
/// output.
pub fn relu_value_bits(ell: usize, frac: usize) -> usize {
    ell.saturating_sub(frac + 1).max(1)
}

/// The ReLU before its selection: the low [`relu_value_bits`] bits `t` of
/// `(a + c) >>arith frac` and the selector `¬sign`, so that `relu = ¬sign · t`. `ℓ − 1` AND
/// gates (the adder's).
pub fn relu_select_gadget<F: BinaryGates>(
    f: &mut F,
    a: &[F::Bit],
    c: &[F::Bit],
    frac: usize,
) -> Result<(Vec<F::Bit>, F::Bit), GcError> {
    let ell = a.len();
    check_params(ell, frac)?;
    super::circuit::check_len("ReLU share c bits", ell, c.len())?;
    let y = ripple_add(f, a, c);
    let positive = f.not(&y[ell - 1]);
    // Truncated bits t_i = y_{i+frac}; bit ℓ−frac−1 is the sign, and the extension above it
    // copies the sign: in the selected (non-negative) value all of those are 0.
    let t = (0..relu_value_bits(ell, frac))
        .map(|i| y[(i + frac).min(ell - 1)].clone())
        .collect();
    Ok((t, positive))
}

/// The value part of the ReLU gadget: the low [`relu_value_bits`] bits of
/// `relu((a + c) >>arith frac)`, whose higher bits are always 0: [`relu_select_gadget`] and an
/// AND per bit, `(ℓ−1) + (ℓ−f−1)` AND gates (one select when `frac = ℓ − 1`: the single
/// output is then `sign ∧ ¬sign`).
pub fn relu_value_gadget<F: BinaryGates>(
    f: &mut F,
    a: &[F::Bit],
    c: &[F::Bit],
    frac: usize,
) -> Result<Vec<F::Bit>, GcError> {
    let (t, positive) = relu_select_gadget(f, a, c, frac)?;
    Ok(t.iter().map(|t| f.and(t, &positive)).collect())
}

/// The ReLU circuit for ℓ-bit shares with `frac` fractional bits (see the module docs for wire
/// order and cost). Fails unless `0 ≤ frac < ell ≤ 64`.
pub fn relu_circuit(ell: usize, frac: usize) -> Result<Circuit, GcError> {
    check_params(ell, frac)?;
    let mut b = CircuitBuilder::new();
    let a = b.garbler_inputs(ell)?;
    let c = b.evaluator_inputs(ell)?;
    let r = b.evaluator_inputs(ell)?;
    let z = relu_gadget(&mut b, &a, &c, &r, frac)?;
    for bit in &z {
        b.output(bit);
    }
    Ok(b.finish())
}

/// The protocol's ReLU circuit: garbler input `a`, evaluator input `c` (ℓ bits each); outputs
/// the [`relu_value_bits`] low bits of `(a + c) >>arith frac`, least significant first, then
/// the selector `¬sign` ([`relu_select_gadget`]), which `gc::arith` turns into additive shares
/// of their product, the ReLU. `ℓ − 1` AND gates: 63 at ℓ = 64, against 114 with the selection
/// in the circuit and 177 for [`relu_circuit`], which also masks in the circuit.
pub fn relu_select_circuit(ell: usize, frac: usize) -> Result<Circuit, GcError> {
    check_params(ell, frac)?;
    let mut b = CircuitBuilder::new();
    let a = b.garbler_inputs(ell)?;
    let c = b.evaluator_inputs(ell)?;
    let (t, positive) = relu_select_gadget(&mut b, &a, &c, frac)?;
    for bit in &t {
        b.output(bit);
    }
    b.output(&positive);
    Ok(b.finish())
}

/// The reference: `relu((a + c mod 2^ℓ) >>arith frac) − r mod 2^ℓ`, with `a + c` read as a
/// signed ℓ-bit value. Only the low ℓ bits of `a`, `c`, `r` are used.
///
/// # Panics
/// If not `0 ≤ frac < ell ≤ 64` (the parameters come from code, never from a peer;
/// [`relu_circuit`] reports the same condition as an error).
pub fn relu_plain(a: u64, c: u64, r: u64, ell: usize, frac: usize) -> u64 {
    assert!(
        (1..=64).contains(&ell) && frac < ell,
        "relu_plain: need 0 ≤ f < ℓ ≤ 64, got ℓ = {ell}, f = {frac}"
    );
    let mask = if ell == 64 {
        u64::MAX
    } else {
        (1u64 << ell) - 1
    };
    let y = a.wrapping_add(c) & mask;
    let unused = 64 - ell as u32;
    let signed = ((y << unused) as i64) >> unused;
    let v = (signed >> frac).max(0) as u64;
    v.wrapping_sub(r) & mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Block;
    use crate::gc::circuit::{bits_to_words, words_to_bits, AndCounter, PlainGates};
    use crate::gc::halfgates::{decode, encode, eval_reference, garble_reference, Delta};
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha12Rng;

    #[test]
    fn and_count_is_exactly_the_construction() {
        for (ell, frac) in [
            (64, 12),
            (64, 0),
            (64, 62),
            (41, 8),
            (32, 16),
            (16, 4),
            (8, 3),
            (3, 1),
            (2, 0),
        ] {
            let c = relu_circuit(ell, frac).unwrap();
            assert_eq!(
                c.and_count(),
                (ell - 1) + (ell - frac - 1) + (ell - 1),
                "ℓ = {ell}, f = {frac}"
            );
            assert_eq!(c.garbler_inputs(), ell);
            assert_eq!(c.evaluator_inputs(), 2 * ell);
            assert_eq!(c.outputs().len(), ell);
        }
        // f = ℓ − 1: the output is −r whatever the shares; only the negation's borrows remain.
        for ell in [2usize, 5, 64] {
            assert_eq!(relu_circuit(ell, ell - 1).unwrap().and_count(), ell - 2);
        }
        // The 64-bit, 12-fraction circuit garbles to 177 · 32 bytes.
        assert_eq!(relu_circuit(64, 12).unwrap().and_count(), 177);
    }

    #[test]
    fn select_circuit_and_count_is_the_adder() {
        for (ell, frac) in [
            (64, 12),
            (64, 0),
            (64, 62),
            (64, 63),
            (41, 8),
            (16, 4),
            (3, 1),
            (2, 0),
            (1, 0),
        ] {
            let c = relu_select_circuit(ell, frac).unwrap();
            assert_eq!(c.and_count(), ell - 1, "ℓ = {ell}, f = {frac}");
            assert_eq!(c.garbler_inputs(), ell);
            assert_eq!(c.evaluator_inputs(), ell);
            assert_eq!(c.outputs().len(), relu_value_bits(ell, frac) + 1);
        }
        assert_eq!(relu_select_circuit(64, 12).unwrap().and_count(), 63);
    }

    #[test]
    fn and_counter_sees_the_same_gadget() {
        let (ell, frac) = (20, 5);
        let mut k = AndCounter::default();
        let x = vec![None; ell];
        relu_gadget(&mut k, &x, &x, &x, frac).unwrap();
        // The counter does no dead-gate removal, and this gadget has no dead AND gates.
        assert_eq!(k.ands, relu_circuit(ell, frac).unwrap().and_count());
    }

    #[test]
    fn bad_params_are_errors() {
        for (ell, frac) in [(0, 0), (65, 12), (8, 8), (8, 9)] {
            assert!(matches!(relu_circuit(ell, frac), Err(GcError::Params(_))));
        }
        let bits = vec![false; 8];
        assert!(relu_gadget(&mut PlainGates, &bits, &bits[..7], &bits, 2).is_err());
    }

    #[test]
    fn plain_reference_on_hand_cases() {
        // ℓ = 8, f = 2: 0x14 = 20 → 5; −20 → 0; 3 → 0; −1 → floor(−1/4) = −1 → 0.
        assert_eq!(relu_plain(10, 10, 0, 8, 2), 5);
        assert_eq!(relu_plain(0, 256 - 20, 0, 8, 2), 0);
        assert_eq!(relu_plain(1, 2, 0, 8, 2), 0);
        assert_eq!(relu_plain(255, 0, 0, 8, 2), 0);
        // Mask subtraction wraps: 5 − 7 = −2 = 254.
        assert_eq!(relu_plain(10, 10, 7, 8, 2), 254);
        // Shares that overflow: 200 + 100 = 300 ≡ 44 → 11.
        assert_eq!(relu_plain(200, 100, 0, 8, 2), 11);
        // Largest positive 64-bit value, f = 12.
        assert_eq!(
            relu_plain(i64::MAX as u64, 0, 0, 64, 12),
            (i64::MAX >> 12) as u64
        );
        assert_eq!(relu_plain(i64::MIN as u64, 0, 1, 64, 12), u64::MAX);
    }

    fn mask(ell: usize) -> u64 {
        if ell == 64 {
            u64::MAX
        } else {
            (1u64 << ell) - 1
        }
    }

    /// A value in Z_2^ℓ: uniform, or one of the edge cases (0, ±1, ±2, the extremes of the
    /// signed range, ℓ-bit all ones).
    fn value(ell: usize) -> impl Strategy<Value = u64> {
        let m = mask(ell);
        let half = 1u64 << (ell - 1);
        let edges = vec![
            0,
            1,
            2,
            m,
            m - 1,
            half,
            half - 1,
            half + 1,
            half.wrapping_sub(2) & m,
        ];
        prop_oneof![
            any::<u64>().prop_map(move |v| v & m),
            prop::sample::select(edges)
        ]
    }

    fn case() -> impl Strategy<Value = (usize, usize, u64, u64, u64)> {
        prop_oneof![Just(64usize), Just(41usize), Just(32usize), 1usize..=64]
            .prop_flat_map(|ell| {
                let frac = prop_oneof![Just(12usize.min(ell - 1)), 0..ell];
                (Just(ell), frac)
            })
            .prop_flat_map(|(ell, frac)| {
                (Just(ell), Just(frac), value(ell), value(ell), value(ell))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn plain_circuit_and_gadget_match_reference((ell, frac, a, c, r) in case()) {
            let want = relu_plain(a, c, r, ell, frac);
            let circ = relu_circuit(ell, frac).unwrap();
            let mut ev = words_to_bits(&[c], ell);
            ev.extend(words_to_bits(&[r], ell));
            let out = circ.eval_plain(&words_to_bits(&[a], ell), &ev).unwrap();
            prop_assert_eq!(bits_to_words(&out, ell).unwrap(), vec![want]);
            let g = relu_gadget(&mut PlainGates, &words_to_bits(&[a], ell),
                &words_to_bits(&[c], ell), &words_to_bits(&[r], ell), frac).unwrap();
            prop_assert_eq!(bits_to_words(&g, ell).unwrap(), vec![want]);
        }

        #[test]
        fn select_circuit_matches_reference((ell, frac, a, c, _r) in case()) {
            let want = relu_plain(a, c, 0, ell, frac);
            let circ = relu_select_circuit(ell, frac).unwrap();
            let out = circ
                .eval_plain(&words_to_bits(&[a], ell), &words_to_bits(&[c], ell))
                .unwrap();
            let bits = relu_value_bits(ell, frac);
            prop_assert_eq!(out.len(), bits + 1);
            // The bits above the value's are zero in the reference (at most 63 of them).
            prop_assert_eq!(want >> bits, 0);
            let t = bits_to_words(&out[..bits], bits).unwrap()[0];
            prop_assert_eq!(if out[bits] { t } else { 0 }, want);
            let v = relu_value_gadget(&mut PlainGates, &words_to_bits(&[a], ell),
                &words_to_bits(&[c], ell), frac).unwrap();
            prop_assert_eq!(bits_to_words(&v, bits).unwrap(), vec![want]);
        }

        /// Against i64 arithmetic written independently of `relu_plain`, for ℓ = 64.
        #[test]
        fn reference_matches_i64_semantics(a in any::<u64>(), c in any::<u64>(), r in any::<u64>(), frac in 0usize..64) {
            let y = (a as i64).wrapping_add(c as i64);
            let t = y.div_euclid(1i64 << frac.min(62)) ;
            // div_euclid by a positive divisor is floor division; frac 63 is checked separately.
            if frac <= 62 {
                let want = (if t > 0 { t } else { 0 }) as u64;
                prop_assert_eq!(relu_plain(a, c, r, 64, frac), want.wrapping_sub(r));
            } else {
                prop_assert_eq!(relu_plain(a, c, r, 64, 63), 0u64.wrapping_sub(r));
            }
        }

        #[test]
        fn garbled_reference_matches((ell, frac, a, c, r) in case(), seed in any::<u64>()) {
            let circ = relu_circuit(ell, frac).unwrap();
            let mut rng = ChaCha12Rng::seed_from_u64(seed);
            let delta = Delta::random(&mut rng);
            let gz: Vec<Block> = (0..ell).map(|_| Block::random(&mut rng)).collect();
            let ez: Vec<Block> = (0..2 * ell).map(|_| Block::random(&mut rng)).collect();
            let (tables, out0) = garble_reference(&circ, &delta, &gz, &ez, seed >> 1).unwrap();
            let mut gl = vec![Block::ZERO; ell];
            encode(&gz, &words_to_bits(&[a], ell), &delta, &mut gl).unwrap();
            let mut ebits = words_to_bits(&[c], ell);
            ebits.extend(words_to_bits(&[r], ell));
            let mut el = vec![Block::ZERO; 2 * ell];
            encode(&ez, &ebits, &delta, &mut el).unwrap();
            let outl = eval_reference(&circ, &gl, &el, &tables, seed >> 1).unwrap();
            let zl: Vec<bool> = out0.iter().map(|b| b.lsb()).collect();
            let el_lsb: Vec<bool> = outl.iter().map(|b| b.lsb()).collect();
            let mut bits = vec![false; ell];
            decode(&zl, &el_lsb, &mut bits).unwrap();
            prop_assert_eq!(bits_to_words(&bits, ell).unwrap(), vec![relu_plain(a, c, r, ell, frac)]);
        }
    }
}
