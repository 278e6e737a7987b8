//! Garbled outputs turned into additive shares in Z_2^ℓ of a *selected* value, the selection
//! included: the last layer of AND gates of a circuit that outputs `g · Y` is replaced by two
//! short ciphertexts per bit of `Y` and one for the selector `g`.
//!
//! The protocol's ReLU circuit ([`relu_select_circuit`](super::relu::relu_select_circuit))
//! outputs the bits `y_o` of `Y = Σ_o 2^o y_o` (the truncated sum) and a selector wire `g`
//! (`¬sign`); the ReLU is `g · Y`. A wire with the garbler's zero-label `Z` has colour
//! `p = lsb(Z)` on its zero-label and labels `L_b = Z ⊕ bΔ` of colour `p ⊕ b`; write `L⁰` for
//! its colour-0 label (which carries the bit `p`) and `L¹` for the other. Each bit wire `o` of
//! instance `i` is hashed under its own tweak, `h_o(L) = tccr(τ(i, o), L)`, whose two 64-bit
//! halves are two pads `h¹_o(L)` (low) and `h²_o(L)` (high); the selector is hashed under
//! `τ(i, outputs)`, pad `h_g(L)` (low half). Let `q` be the selector's colour-0 bit (so
//! `g = σ ⊕ q` for the colour `σ` the evaluator sees) and `k = 1 − 2q`. Then
//!
//! `g · Y = q·Y + σ·k·Y`,
//!
//! a product the garbler knows the first factor of (`q`), plus one the evaluator knows the first
//! factor of (`σ`): the two halves of a half-gates AND, taken into Z_2^ℓ. Per bit `o` (with
//! `p = p_o`, all mod 2^(ℓ−o)) the garbler sets
//!
//! - `s¹_o = h¹_o(L⁰) − q·p` and sends `ct¹_o = s¹_o + q·(1 − p) − h¹_o(L¹)`,
//! - `s²_o = h²_o(L⁰) − k·p` and sends `ct²_o = s²_o + k·(1 − p) − h²_o(L¹)`,
//!
//! so the evaluator, holding the label of colour `e`, gets `t¹_o = h¹_o(L) + e·ct¹_o = s¹_o +
//! q·y_o` and `t²_o = s²_o + k·y_o`. With `S^j = Σ_o 2^o s^j_o` and `T^j = Σ_o 2^o t^j_o`
//! (mod 2^ℓ), `T¹ = S¹ + qY` and `T² = S² + kY`. For the selector (mod 2^ℓ) the garbler sends
//! `ct_g = h_g(L⁰_g) − h_g(L¹_g) − S²`, and the evaluator computes
//! `t_g = h_g(L_g) + σ·(ct_g + T²) = h_g(L⁰_g) + σ·k·Y`. So
//!
//! `u = T¹ + t_g` (the evaluator's) and `w = −S¹ − h_g(L⁰_g)` (the garbler's)
//!
//! are additive shares of `g · Y` mod 2^ℓ. Only the low `ℓ − o` bits of `t^j_o` reach the sums,
//! so `ct^j_o` is sent truncated to `ℓ − o` bits: at ℓ = 64 with 51 bits, 506 bytes per
//! instance ([`ArithOutputs::instance_bytes`]), where the 51 AND gates of the selection and a
//! ciphertext per output wire cost 1,256 + 249 bytes with three-halves garbling; the garbler
//! hashes two labels per wire (104, two more than the conversion of the 51 outputs alone did,
//! and none for the selection's gates), the evaluator one.
//!
//! # Security (semi-honest)
//! The evaluator holds one label per wire. The hash of the other label of a wire is pseudorandom
//! to it (the tweakable circular correlation-robust hash of GKWY20, under a tweak used nowhere
//! else), so the ciphertexts, each masked by a pad of a label it does not hold (two independent
//! halves of one hash for `ct¹_o`, `ct²_o`), are uniform given its labels, whose colours are
//! independent of the bits. Its view is therefore independent of the values, and `u` is a
//! function of its view. The garbler only sends, and never branches on permute bits.
//!
//! # Tweaks
//! `τ(i, o) = i·2^64 + 2^63 + 4·o + 3` for `o ≤ outputs` (the selector last): three-halves
//! tweaks end in `0`, `1` or `2` below their bit 63
//! ([`threehalves::and_tweaks`](super::threehalves::and_tweaks)), half-gates tweaks have bit
//! 63 clear (`halfgates::check_instances` keeps the AND
//! index below 2^61), and bit 127 is clear as for every garbling tweak, away from the OT
//! tweaks. Each wire of each instance number is hashed under its own tweak once per Δ.

use rayon::prelude::*;

use super::halfgates::{check_instances, Delta};
use super::GcError;
use crate::crypto::aes::FIXED_KEY_AES;
use crate::crypto::Block;

/// Instances per rayon task.
const PAR: usize = 256;

/// The hash tweak of output wire `output` of instance `instance` (see the module docs).
#[inline(always)]
pub fn output_tweak(instance: u64, output: usize) -> Block {
    Block(((instance as u128) << 64) | (1u128 << 63) | ((output as u128) << 2) | 3)
}

/// The shape of the conversion: ℓ and the bits of the selected value per instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArithOutputs {
    ell: usize,
    outputs: usize,
}

impl ArithOutputs {
    /// Shares in Z_2^ℓ of selected values with `outputs` bits (`1 ≤ outputs ≤ ℓ ≤ 64`).
    pub fn new(ell: usize, outputs: usize) -> Result<Self, GcError> {
        if !(1..=64).contains(&ell) || !(1..=ell).contains(&outputs) {
            return Err(GcError::Params(format!(
                "arithmetic outputs need 1 ≤ outputs ≤ ℓ ≤ 64, got ℓ = {ell}, {outputs} outputs"
            )));
        }
        Ok(ArithOutputs { ell, outputs })
    }

    /// Bits of the selected value per instance.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Output wires per instance: the value's bits, then the selector.
    pub fn wires(&self) -> usize {
        self.outputs + 1
    }

    /// Bits of the ciphertexts of one instance: `2·Σ_o (ℓ − o) + ℓ`.
    pub fn instance_bits(&self) -> usize {
        2 * (0..self.outputs).map(|o| self.ell - o).sum::<usize>() + self.ell
    }

    /// Bytes of the ciphertexts of one instance, on the wire and in the evaluator's storage
    /// (the bits packed, least significant first, in the order `ct¹_0, ct²_0, ct¹_1, …, ct_g`,
    /// the last byte padded with zeros).
    pub fn instance_bytes(&self) -> usize {
        self.instance_bits().div_ceil(8)
    }

    fn mask(&self) -> u64 {
        u64::MAX >> (64 - self.ell)
    }

    /// Instances of a call, from the labels' length, with every other length checked.
    fn instances(&self, labels: usize, cts: usize, shares: usize) -> Result<usize, GcError> {
        if !labels.is_multiple_of(self.wires()) {
            return Err(GcError::Length {
                what: "output labels (a multiple of the output wires)",
                expected: self.wires(),
                got: labels,
            });
        }
        let n = labels / self.wires();
        super::circuit::check_len("output ciphertext bytes", n * self.instance_bytes(), cts)?;
        super::circuit::check_len("output shares", n, shares)?;
        Ok(n)
    }

    /// The garbler's side for instances `first_instance..` with output zero-labels
    /// `zero[i·wires..]` (as [`OutputWire`](super::OutputWire) `Block` gives them): writes
    /// their ciphertexts to `cts[i·instance_bytes..]`, sent to the evaluator, and the garbler's
    /// shares `w` to `shares[i]`.
    pub fn garble(
        &self,
        delta: &Delta,
        first_instance: u64,
        zero: &[Block],
        cts: &mut [u8],
        shares: &mut [u64],
    ) -> Result<(), GcError> {
        let n = self.instances(zero.len(), cts.len(), shares.len())?;
        check_instances(first_instance, n, 0)?;
        let (no, nw, nb, d) = (
            self.outputs,
            self.wires(),
            self.instance_bytes(),
            delta.block(),
        );
        zero.par_chunks(PAR * nw)
            .zip(cts.par_chunks_mut(PAR * nb))
            .zip(shares.par_chunks_mut(PAR))
            .enumerate()
            .for_each(|(k, ((z, ct), w))| {
                let mut hashes = vec![Block::ZERO; 2 * nw];
                let mut tweaks = vec![Block::ZERO; 2 * nw];
                let mut scratch = vec![Block::ZERO; 2 * nw];
                for (j, ((z, ct), w)) in z
                    .chunks_exact(nw)
                    .zip(ct.chunks_exact_mut(nb))
                    .zip(w.iter_mut())
                    .enumerate()
                {
                    let instance = first_instance + (k * PAR + j) as u64;
                    for (o, &l) in z.iter().enumerate() {
                        let t = output_tweak(instance, o);
                        (tweaks[2 * o], tweaks[2 * o + 1]) = (t, t);
                        (hashes[2 * o], hashes[2 * o + 1]) = (l, l ^ d);
                    }
                    FIXED_KEY_AES.tccr_batch(&tweaks, &mut hashes, &mut scratch);
                    // The colour-0 and colour-1 hashes of wire `o`, without branching on its
                    // permute bit `p`, returned with `p` (0 or 1).
                    let colours = |o: usize| {
                        let (h0, h1) = (hashes[2 * o].0, hashes[2 * o + 1].0);
                        let p = z[o].0 as u64 & 1;
                        let c0 = h0 ^ ((h0 ^ h1) & u128::from(p).wrapping_neg());
                        (c0, h0 ^ h1 ^ c0, p)
                    };
                    let (g0, g1, q) = colours(no);
                    let k = 1u64.wrapping_sub(q << 1);
                    let mut rows = RowWriter::new(ct);
                    let (mut s1_sum, mut s2_sum) = (0u64, 0u64);
                    for o in 0..no {
                        let (c0, c1, p) = colours(o);
                        let (pm, np) = (p.wrapping_neg(), (1 - p).wrapping_neg());
                        let s1 = (c0 as u64).wrapping_sub(q & p);
                        let s2 = ((c0 >> 64) as u64).wrapping_sub(k & pm);
                        let width = self.ell - o;
                        rows.push(s1.wrapping_add(q & (1 - p)).wrapping_sub(c1 as u64), width);
                        rows.push(
                            s2.wrapping_add(k & np).wrapping_sub((c1 >> 64) as u64),
                            width,
                        );
                        s1_sum = s1_sum.wrapping_add(s1 << o);
                        s2_sum = s2_sum.wrapping_add(s2 << o);
                    }
                    let (g0, g1) = (g0 as u64, g1 as u64);
                    rows.push(g0.wrapping_sub(g1).wrapping_sub(s2_sum), self.ell);
                    rows.finish();
                    *w = 0u64.wrapping_sub(s1_sum).wrapping_sub(g0) & self.mask();
                }
                // Both labels' hashes would reveal the bits; the AES states `scratch` may hold
                // invert (fixed key, known tweak) to Z and Z ⊕ Δ. Every instance overwrites all
                // of both, so what the task leaves is the last instance's: wiped once here.
                crate::crypto::block::wipe(&mut hashes);
                crate::crypto::block::wipe(&mut scratch);
            });
        Ok(())
    }

    /// The evaluator's side: from its output labels `labels[i·wires..]` and the garbler's
    /// ciphertexts `cts[i·instance_bytes..]`, writes its shares `u` to `shares[i]`.
    pub fn eval(
        &self,
        first_instance: u64,
        labels: &[Block],
        cts: &[u8],
        shares: &mut [u64],
    ) -> Result<(), GcError> {
        let n = self.instances(labels.len(), cts.len(), shares.len())?;
        check_instances(first_instance, n, 0)?;
        let (no, nw, nb) = (self.outputs, self.wires(), self.instance_bytes());
        labels
            .par_chunks(PAR * nw)
            .zip(cts.par_chunks(PAR * nb))
            .zip(shares.par_chunks_mut(PAR))
            .enumerate()
            .for_each(|(k, ((l, ct), u))| {
                let mut hashes = vec![Block::ZERO; nw];
                let mut tweaks = vec![Block::ZERO; nw];
                let mut scratch = vec![Block::ZERO; nw];
                for (j, ((l, ct), u)) in l
                    .chunks_exact(nw)
                    .zip(ct.chunks_exact(nb))
                    .zip(u.iter_mut())
                    .enumerate()
                {
                    let instance = first_instance + (k * PAR + j) as u64;
                    for (o, t) in tweaks.iter_mut().enumerate() {
                        *t = output_tweak(instance, o);
                    }
                    hashes.copy_from_slice(l);
                    FIXED_KEY_AES.tccr_batch(&tweaks, &mut hashes, &mut scratch);
                    let mut rows = RowReader::new(ct);
                    let (mut t1, mut t2) = (0u64, 0u64);
                    for (o, (h, label)) in hashes[..no].iter().zip(l).enumerate() {
                        let e = (label.0 as u64 & 1).wrapping_neg();
                        let width = self.ell - o;
                        let (r1, r2) = (rows.next(width), rows.next(width));
                        t1 = t1.wrapping_add((h.0 as u64).wrapping_add(r1 & e) << o);
                        t2 = t2.wrapping_add(((h.0 >> 64) as u64).wrapping_add(r2 & e) << o);
                    }
                    let sigma = (l[no].0 as u64 & 1).wrapping_neg();
                    let tg = (hashes[no].0 as u64)
                        .wrapping_add(rows.next(self.ell).wrapping_add(t2) & sigma);
                    *u = t1.wrapping_add(tg) & self.mask();
                }
            });
        Ok(())
    }
}
/// Packs rows of given widths, least significant bit first, into a byte slice.
struct RowWriter<'a> {
    out: &'a mut [u8],
    at: usize,
    /// The bits not written yet, `bits` (< 64) of them.
    acc: u64,
    bits: usize,
}

impl<'a> RowWriter<'a> {
    fn new(out: &'a mut [u8]) -> Self {
        RowWriter {
            out,
            at: 0,
            acc: 0,
            bits: 0,
        }
    }

    /// Appends the low `width` (1 ≤ width ≤ 64) bits of `row`, writing eight bytes at a time
    /// (the row widths are public, so the branches are too).
    #[inline(always)]
    fn push(&mut self, row: u64, width: usize) {
        let row = row & (u64::MAX >> (64 - width));
        self.acc |= row << self.bits;
        let total = self.bits + width;
        if total >= 64 {
            self.out[self.at..self.at + 8].copy_from_slice(&self.acc.to_le_bytes());
            self.at += 8;
            // The bits of `row` that did not fit: `row >> (64 − bits)`, written as two
            // shifts so that `bits = 0` gives 0 instead of an overlong shift.
            self.acc = (row >> 1) >> (63 - self.bits);
            self.bits = total - 64;
        } else {
            self.bits = total;
        }
    }

    /// Writes the bits still held (the last byte zero-padded).
    fn finish(self) {
        let n = self.bits.div_ceil(8);
        self.out[self.at..self.at + n].copy_from_slice(&self.acc.to_le_bytes()[..n]);
    }
}

/// Reads the rows [`RowWriter`] packed.
struct RowReader<'a> {
    input: &'a [u8],
    at: usize,
    /// Bits read ahead and not handed out yet, `bits` (≤ 64) of them.
    acc: u64,
    bits: usize,
}

impl<'a> RowReader<'a> {
    fn new(input: &'a [u8]) -> Self {
        RowReader {
            input,
            at: 0,
            acc: 0,
            bits: 0,
        }
    }

    /// The next row of `width` (1 ≤ width ≤ 64) bits, reading eight bytes at a time where they
    /// are left.
    #[inline(always)]
    fn next(&mut self, width: usize) -> u64 {
        let mask = u64::MAX >> (64 - width);
        if self.bits >= width {
            let row = self.acc & mask;
            // `width` may be 64 only when `bits` is 64 too: two shifts keep it in range.
            self.acc = (self.acc >> 1) >> (width - 1);
            self.bits -= width;
            return row;
        }
        let word = match self.input.get(self.at..self.at + 8) {
            Some(w) => {
                self.at += 8;
                u64::from_le_bytes(w.try_into().expect("eight bytes"))
            }
            None => {
                // The instance's last bytes, fewer than eight.
                let mut w = [0u8; 8];
                let rest = &self.input[self.at..];
                w[..rest.len()].copy_from_slice(rest);
                self.at = self.input.len();
                u64::from_le_bytes(w)
            }
        };
        // `bits < width ≤ 64`: the row is the held bits, then the word's low bits.
        let row = (self.acc | (word << self.bits)) & mask;
        let used = width - self.bits;
        self.acc = (word >> 1) >> (used - 1);
        self.bits = 64 - used;
        row
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha12Rng;

    /// Garbles random zero-labels, picks random bits and selectors, and returns (the selected
    /// value per instance, garbler shares, evaluator shares).
    fn run(shape: ArithOutputs, n: usize, first: u64, seed: u64) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
        let mut rng = ChaCha12Rng::seed_from_u64(seed);
        let delta = Delta::random(&mut rng);
        let nw = shape.wires();
        let zero: Vec<Block> = (0..n * nw).map(|_| Block::random(&mut rng)).collect();
        let bits: Vec<bool> = (0..n * nw).map(|_| rng.gen()).collect();
        let labels: Vec<Block> = zero
            .iter()
            .zip(&bits)
            .map(|(&z, &b)| if b { z ^ delta.block() } else { z })
            .collect();
        let mut cts = vec![0u8; n * shape.instance_bytes()];
        let (mut w, mut u) = (vec![0u64; n], vec![0u64; n]);
        shape
            .garble(&delta, first, &zero, &mut cts, &mut w)
            .unwrap();
        shape.eval(first, &labels, &cts, &mut u).unwrap();
        let values = bits
            .chunks(nw)
            .map(|b| {
                let y: u64 = b[..nw - 1]
                    .iter()
                    .enumerate()
                    .map(|(o, &b)| u64::from(b) << o)
                    .sum();
                if b[nw - 1] {
                    y
                } else {
                    0
                }
            })
            .collect();
        (values, w, u)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The shares add up to the selected value in Z_2^ℓ, for every shape.
        #[test]
        fn shares_add_up_to_the_selected_value(
            ell in 1usize..=64,
            outputs_frac in 0.0f64..1.0,
            n in 0usize..600,
            first in 0u64..1 << 40,
            seed in any::<u64>(),
        ) {
            let outputs = 1 + ((ell - 1) as f64 * outputs_frac) as usize;
            let shape = ArithOutputs::new(ell, outputs).unwrap();
            let (values, w, u) = run(shape, n, first, seed);
            let mask = u64::MAX >> (64 - ell);
            for j in 0..n {
                prop_assert_eq!(u[j].wrapping_add(w[j]) & mask, values[j], "instance {}", j);
                prop_assert_eq!(u[j] & !mask, 0);
                prop_assert_eq!(w[j] & !mask, 0);
            }
        }
    }

    #[test]
    fn every_output_width_at_full_size() {
        for outputs in [1usize, 2, 51, 63, 64] {
            let shape = ArithOutputs::new(64, outputs).unwrap();
            let (values, w, u) = run(shape, 300, 5, outputs as u64);
            for j in 0..300 {
                assert_eq!(
                    u[j].wrapping_add(w[j]),
                    values[j],
                    "{outputs} outputs, #{j}"
                );
            }
        }
    }

    #[test]
    fn ciphertext_sizes() {
        let s = ArithOutputs::new(64, 51).unwrap();
        assert_eq!(s.wires(), 52);
        assert_eq!(s.instance_bits(), 2 * (51 * 64 - 50 * 51 / 2) + 64);
        assert_eq!(s.instance_bytes(), 506);
        assert_eq!(ArithOutputs::new(8, 3).unwrap().instance_bytes(), 7);
        assert!(ArithOutputs::new(8, 9).is_err());
        assert!(ArithOutputs::new(0, 0).is_err());
        assert!(ArithOutputs::new(65, 1).is_err());
    }

    #[test]
    fn rows_round_trip_at_every_width() {
        let mut rng = ChaCha12Rng::seed_from_u64(5);
        let widths: Vec<usize> = (0..200).map(|_| rng.gen_range(1..=64)).collect();
        let rows: Vec<u64> = widths.iter().map(|_| rng.gen()).collect();
        let bytes = widths.iter().sum::<usize>().div_ceil(8);
        let mut out = vec![0u8; bytes];
        let mut wr = RowWriter::new(&mut out);
        for (&r, &w) in rows.iter().zip(&widths) {
            wr.push(r, w);
        }
        wr.finish();
        let mut rd = RowReader::new(&out);
        for (&r, &w) in rows.iter().zip(&widths) {
            assert_eq!(rd.next(w), r & (u64::MAX >> (64 - w)));
        }
    }

    /// The construction of the module docs written out with one hash per call and branching
    /// freely (a test may), against the batched, branch-free code.
    #[test]
    fn matches_its_definition() {
        let shape = ArithOutputs::new(64, 51).unwrap();
        let (n, first) = (300, 77);
        let mut rng = ChaCha12Rng::seed_from_u64(9);
        let delta = Delta::random(&mut rng);
        let zero: Vec<Block> = (0..n * 52).map(|_| Block::random(&mut rng)).collect();
        let mut cts = vec![0u8; n * shape.instance_bytes()];
        let mut w = vec![0u64; n];
        shape
            .garble(&delta, first, &zero, &mut cts, &mut w)
            .unwrap();
        for j in 0..n {
            let mut rd = RowReader::new(&cts[j * 506..(j + 1) * 506]);
            let hash =
                |o: usize, l: Block| FIXED_KEY_AES.tccr(output_tweak(first + j as u64, o), l);
            // (colour-0 label, colour-1 label, colour-0 bit) of wire o.
            let wire = |o: usize| {
                let z = zero[j * 52 + o];
                if z.lsb() {
                    (z ^ delta.block(), z, 1u64)
                } else {
                    (z, z ^ delta.block(), 0u64)
                }
            };
            let q = wire(51).2;
            let k: u64 = if q == 1 { u64::MAX } else { 1 };
            let (mut s1_sum, mut s2_sum) = (0u64, 0u64);
            for o in 0..51 {
                let (l0, l1, p) = wire(o);
                let (h0, h1) = (hash(o, l0), hash(o, l1));
                let (lo, hi) = (|b: Block| b.0 as u64, |b: Block| (b.0 >> 64) as u64);
                let s1 = lo(h0).wrapping_sub(q * p);
                let s2 = hi(h0).wrapping_sub(k.wrapping_mul(p));
                let mask = u64::MAX >> o;
                assert_eq!(
                    rd.next(64 - o),
                    s1.wrapping_add(q * (1 - p)).wrapping_sub(lo(h1)) & mask
                );
                assert_eq!(
                    rd.next(64 - o),
                    s2.wrapping_add(k.wrapping_mul(1 - p)).wrapping_sub(hi(h1)) & mask
                );
                s1_sum = s1_sum.wrapping_add(s1 << o);
                s2_sum = s2_sum.wrapping_add(s2 << o);
            }
            let (g0, g1, _) = wire(51);
            let (g0, g1) = (hash(51, g0).0 as u64, hash(51, g1).0 as u64);
            assert_eq!(rd.next(64), g0.wrapping_sub(g1).wrapping_sub(s2_sum));
            assert_eq!(w[j], 0u64.wrapping_sub(s1_sum).wrapping_sub(g0));
        }
    }

    /// What the evaluator derives does not depend on the values: for fresh garblings, its
    /// share for a selected all-zero and a selected all-one value, and for a deselected one,
    /// spreads over every residue mod 8 about equally (a smoke test of the masking, not a
    /// proof).
    #[test]
    fn evaluator_shares_look_uniform() {
        let shape = ArithOutputs::new(8, 3).unwrap();
        let mut counts = [[0u32; 8]; 3];
        for seed in 0..4000u64 {
            let mut rng = ChaCha12Rng::seed_from_u64(seed);
            let delta = Delta::random(&mut rng);
            let zero: Vec<Block> = (0..4).map(|_| Block::random(&mut rng)).collect();
            let mut cts = vec![0u8; shape.instance_bytes()];
            let mut w = [0u64];
            shape.garble(&delta, seed, &zero, &mut cts, &mut w).unwrap();
            for (k, bits) in [[0, 0, 0, 1], [1, 1, 1, 1], [1, 1, 1, 0]]
                .iter()
                .enumerate()
            {
                let labels: Vec<Block> = zero
                    .iter()
                    .zip(bits)
                    .map(|(&z, &b)| if b == 1 { z ^ delta.block() } else { z })
                    .collect();
                let mut u = [0u64];
                shape.eval(seed, &labels, &cts, &mut u).unwrap();
                counts[k][(u[0] & 7) as usize] += 1;
            }
        }
        for c in counts.iter().flatten() {
            assert!((400..600).contains(c), "{counts:?}");
        }
    }

    #[test]
    fn tweaks_are_disjoint_from_the_gates_and_ot() {
        for inst in [0u64, 1, 12345, (1 << 63) - 1] {
            for o in [0usize, 1, 50, 63, 64] {
                let t = output_tweak(inst, o);
                assert_eq!(t.0 >> 127, 0, "OT tweaks have bit 127 set");
                assert_eq!((t.0 >> 63) & 1, 1, "half-gates tweaks have bit 63 clear");
                assert_eq!(t.0 & 3, 3, "three-halves tweaks end in 0, 1 or 2");
            }
        }
        assert_ne!(output_tweak(1, 0), output_tweak(0, 1));
    }

    #[test]
    fn bad_lengths_are_errors() {
        let shape = ArithOutputs::new(64, 51).unwrap();
        let delta = Delta::random(&mut rand_core::OsRng);
        let zero = vec![Block::ZERO; 52 * 2];
        let mut w = vec![0u64; 2];
        assert!(shape
            .garble(&delta, 0, &zero[..51], &mut [0u8; 506], &mut w[..1])
            .is_err());
        assert!(shape
            .garble(&delta, 0, &zero, &mut [0u8; 506], &mut w)
            .is_err());
        assert!(shape
            .garble(&delta, 0, &zero, &mut [0u8; 1012], &mut w[..1])
            .is_err());
        assert!(shape.eval(u64::MAX, &zero, &[0u8; 1012], &mut w).is_err());
    }
}
