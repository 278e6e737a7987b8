//! Garbled outputs turned into additive shares in Z_2^ℓ: one short ciphertext per output wire,
//! instead of a subtractor in the circuit and a mask the evaluator feeds in by OT.
//!
//! The protocol's ReLU circuit ([`relu_value_circuit`](super::relu::relu_value_circuit))
//! outputs the bits `b_o` of a value `v = Σ_o 2^o b_o`. Output wire `o` of instance `i` has the
//! garbler's zero-label `Z`, colour `p = lsb(Z)`, and labels `L_b = Z ⊕ bΔ` of colour `p ⊕ b`.
//! With `h(L) = tccr(τ(i, o), L) mod 2^64` and the colour-0 label `L_p`, which carries the bit
//! `p`, the garbler sets
//!
//! `s_o = h(L_p) − p` and `ct_o = s_o + (1 − p) − h(L_{1−p})  (mod 2^(ℓ−o))`
//!
//! and sends `ct_o`. The evaluator, holding the label of colour `e`, computes
//! `t_o = h(L) + e·ct_o`, which is `s_o + b_o` either way. So
//!
//! `u = Σ_o 2^o t_o` (the evaluator's) and `w = −Σ_o 2^o s_o` (the garbler's)
//!
//! are additive shares of `v` mod 2^ℓ. Only the low `ℓ − o` bits of `t_o` reach the sum, so
//! `ct_o` is sent truncated to `ℓ − o` bits: at ℓ = 64 with 51 outputs, 249 bytes per
//! instance ([`ArithOutputs::instance_bytes`]) where the subtractor cost 63 AND gates (1,551
//! bytes of three-halves tables) and the mask 64 OTs.
//!
//! # Security (semi-honest)
//! The evaluator holds one label per wire. The hash of the other is pseudorandom to it (the
//! tweakable circular correlation-robust hash of GKWY20 under a tweak used nowhere else), so
//! `ct_o` is uniform given its view, and `t_o` is a function of its label and `ct_o`, whose
//! colour is independent of `b_o`: its view, and so `u`, is independent of `v`. The garbler
//! only sends. This is the row-reduced "garbled output to arithmetic share" table: one row per
//! wire, the colour-0 row being implicit.
//!
//! # Tweaks
//! `τ(i, o) = i·2^64 + 2^63 + 4·o + 3`: three-halves tweaks end in `0`, `1` or `2` below their
//! bit 63 ([`threehalves::and_tweaks`](super::threehalves::and_tweaks)), half-gates tweaks have
//! bit 63 clear ([`halfgates::check_instances`](super::halfgates::check_instances) keeps the AND
//! index below 2^61), and bit 127 is clear as for every garbling tweak, away from the OT
//! tweaks. Each output of each instance number is hashed once per Δ.

use rayon::prelude::*;

use super::halfgates::{check_instances, Delta};
use super::GcError;
use crate::crypto::aes::FIXED_KEY_AES;
use crate::crypto::Block;

/// Instances per rayon task.
const PAR: usize = 256;

/// The hash tweak of output `output` of instance `instance` (see the module docs).
#[inline(always)]
pub fn output_tweak(instance: u64, output: usize) -> Block {
    Block(((instance as u128) << 64) | (1u128 << 63) | ((output as u128) << 2) | 3)
}

/// The shape of the conversion: ℓ and the outputs per instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArithOutputs {
    ell: usize,
    outputs: usize,
}

impl ArithOutputs {
    /// Shares in Z_2^ℓ of values with `outputs` bits (`1 ≤ outputs ≤ ℓ ≤ 64`).
    pub fn new(ell: usize, outputs: usize) -> Result<Self, GcError> {
        if !(1..=64).contains(&ell) || !(1..=ell).contains(&outputs) {
            return Err(GcError::Params(format!(
                "arithmetic outputs need 1 ≤ outputs ≤ ℓ ≤ 64, got ℓ = {ell}, {outputs} outputs"
            )));
        }
        Ok(ArithOutputs { ell, outputs })
    }

    /// Output wires per instance.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Bits of the ciphertexts of one instance: `Σ_o (ℓ − o)`.
    pub fn instance_bits(&self) -> usize {
        (0..self.outputs).map(|o| self.ell - o).sum()
    }

    /// Bytes of the ciphertexts of one instance, on the wire and in the evaluator's storage
    /// (the bits packed, least significant first, the last byte padded with zeros).
    pub fn instance_bytes(&self) -> usize {
        self.instance_bits().div_ceil(8)
    }

    fn mask(&self) -> u64 {
        u64::MAX >> (64 - self.ell)
    }

    /// Instances of a call, from the labels' length, with every other length checked.
    fn instances(&self, labels: usize, cts: usize, shares: usize) -> Result<usize, GcError> {
        if !labels.is_multiple_of(self.outputs) {
            return Err(GcError::Length {
                what: "output labels (a multiple of the outputs)",
                expected: self.outputs,
                got: labels,
            });
        }
        let n = labels / self.outputs;
        super::circuit::check_len("output ciphertext bytes", n * self.instance_bytes(), cts)?;
        super::circuit::check_len("output shares", n, shares)?;
        Ok(n)
    }

    /// The garbler's side for instances `first_instance..` with output zero-labels
    /// `zero[i·outputs..]` (as [`OutputWire`](super::OutputWire) `Block` gives them): writes
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
        let (no, nb, d) = (self.outputs, self.instance_bytes(), delta.block());
        zero.par_chunks(PAR * no)
            .zip(cts.par_chunks_mut(PAR * nb))
            .zip(shares.par_chunks_mut(PAR))
            .enumerate()
            .for_each(|(k, ((z, ct), w))| {
                let mut hashes = vec![Block::ZERO; 2 * no];
                let mut tweaks = vec![Block::ZERO; 2 * no];
                let mut scratch = vec![Block::ZERO; 2 * no];
                for (j, ((z, ct), w)) in z
                    .chunks_exact(no)
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
                    let mut rows = RowWriter::new(ct);
                    let mut share = 0u64;
                    for o in 0..no {
                        let (h0, h1) = (hashes[2 * o].0 as u64, hashes[2 * o + 1].0 as u64);
                        let p = z[o].0 as u64 & 1;
                        // Colour-0 and colour-1 hashes, without branching on the permute bit.
                        let c0 = h0 ^ ((h0 ^ h1) & p.wrapping_neg());
                        let c1 = h0 ^ h1 ^ c0;
                        let s = c0.wrapping_sub(p);
                        rows.push(s.wrapping_add(1 - p).wrapping_sub(c1), self.ell - o);
                        share = share.wrapping_sub(s << o);
                    }
                    rows.finish();
                    *w = share & self.mask();
                    // The permute bits and both labels' hashes would reveal the bits; the AES
                    // states left in `scratch` invert (fixed key, known tweak) to Z and Z ⊕ Δ.
                    crate::crypto::block::wipe(&mut hashes);
                    crate::crypto::block::wipe(&mut scratch);
                }
            });
        Ok(())
    }

    /// The evaluator's side: from its output labels `labels[i·outputs..]` and the garbler's
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
        let (no, nb) = (self.outputs, self.instance_bytes());
        labels
            .par_chunks(PAR * no)
            .zip(cts.par_chunks(PAR * nb))
            .zip(shares.par_chunks_mut(PAR))
            .enumerate()
            .for_each(|(k, ((l, ct), u))| {
                let mut hashes = vec![Block::ZERO; no];
                let mut tweaks = vec![Block::ZERO; no];
                let mut scratch = vec![Block::ZERO; no];
                for (j, ((l, ct), u)) in l
                    .chunks_exact(no)
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
                    let mut share = 0u64;
                    for (o, (h, label)) in hashes.iter().zip(l).enumerate() {
                        let row = rows.next(self.ell - o);
                        let e = label.0 as u64 & 1;
                        let t = (h.0 as u64).wrapping_add(row & e.wrapping_neg());
                        share = share.wrapping_add(t << o);
                    }
                    *u = share & self.mask();
                }
            });
        Ok(())
    }
}

/// Packs rows of given widths, least significant bit first, into a byte slice.
struct RowWriter<'a> {
    out: &'a mut [u8],
    at: usize,
    acc: u128,
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

    /// Appends the low `width` (≤ 64) bits of `row`, writing eight bytes at a time (the row
    /// widths are public, so the branches are too).
    #[inline(always)]
    fn push(&mut self, row: u64, width: usize) {
        let row = u128::from(row) & ((1u128 << width) - 1);
        self.acc |= row << self.bits;
        self.bits += width;
        if self.bits >= 64 {
            self.out[self.at..self.at + 8].copy_from_slice(&(self.acc as u64).to_le_bytes());
            (self.at, self.acc, self.bits) = (self.at + 8, self.acc >> 64, self.bits - 64);
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
    acc: u128,
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

    /// The next row of `width` (≤ 64) bits, reading eight bytes at a time where they are left.
    #[inline(always)]
    fn next(&mut self, width: usize) -> u64 {
        if self.bits < width {
            if let Some(w) = self.input.get(self.at..self.at + 8) {
                let w = u64::from_le_bytes(w.try_into().expect("eight bytes"));
                self.acc |= u128::from(w) << self.bits;
                (self.at, self.bits) = (self.at + 8, self.bits + 64);
            } else {
                while self.bits < width {
                    self.acc |= u128::from(self.input[self.at]) << self.bits;
                    (self.at, self.bits) = (self.at + 1, self.bits + 8);
                }
            }
        }
        let row = self.acc & ((1u128 << width) - 1);
        (self.acc, self.bits) = (self.acc >> width, self.bits - width);
        row as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha12Rng;

    /// Garbles random zero-labels, picks random bits, and returns (bits per instance as a value,
    /// garbler shares, evaluator shares, evaluator labels, ciphertexts).
    #[allow(clippy::type_complexity)]
    fn run(
        shape: ArithOutputs,
        n: usize,
        first: u64,
        seed: u64,
    ) -> (Vec<u64>, Vec<u64>, Vec<u64>, Vec<Block>, Vec<u8>) {
        let mut rng = ChaCha12Rng::seed_from_u64(seed);
        let delta = Delta::random(&mut rng);
        let no = shape.outputs();
        let zero: Vec<Block> = (0..n * no).map(|_| Block::random(&mut rng)).collect();
        let bits: Vec<bool> = (0..n * no).map(|_| rng.gen()).collect();
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
            .chunks(no)
            .map(|b| b.iter().enumerate().map(|(o, &b)| u64::from(b) << o).sum())
            .collect();
        (values, w, u, labels, cts)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The shares add up to the output bits' value in Z_2^ℓ, for every shape.
        #[test]
        fn shares_add_up_to_the_value(
            ell in 1usize..=64,
            outputs_frac in 0.0f64..1.0,
            n in 0usize..600,
            first in 0u64..1 << 40,
            seed in any::<u64>(),
        ) {
            let outputs = 1 + ((ell - 1) as f64 * outputs_frac) as usize;
            let shape = ArithOutputs::new(ell, outputs).unwrap();
            let (values, w, u, _, _) = run(shape, n, first, seed);
            let mask = u64::MAX >> (64 - ell);
            for j in 0..n {
                prop_assert_eq!(u[j].wrapping_add(w[j]) & mask, values[j], "instance {}", j);
                prop_assert_eq!(u[j] & !mask, 0);
                prop_assert_eq!(w[j] & !mask, 0);
            }
        }
    }

    #[test]
    fn ciphertext_sizes() {
        let s = ArithOutputs::new(64, 51).unwrap();
        assert_eq!(s.instance_bits(), 51 * 64 - 50 * 51 / 2);
        assert_eq!(s.instance_bytes(), 249);
        assert_eq!(ArithOutputs::new(8, 3).unwrap().instance_bytes(), 3);
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

    /// The conversion written out with one hash per call, branching freely (a test may), against
    /// the batched, branch-free code.
    #[test]
    fn matches_its_definition() {
        let shape = ArithOutputs::new(64, 51).unwrap();
        let (n, first) = (300, 77);
        let mut rng = ChaCha12Rng::seed_from_u64(9);
        let delta = Delta::random(&mut rng);
        let zero: Vec<Block> = (0..n * 51).map(|_| Block::random(&mut rng)).collect();
        let mut cts = vec![0u8; n * shape.instance_bytes()];
        let mut w = vec![0u64; n];
        shape
            .garble(&delta, first, &zero, &mut cts, &mut w)
            .unwrap();
        for j in 0..n {
            let mut rd = RowReader::new(&cts[j * 249..(j + 1) * 249]);
            let mut share = 0u64;
            for o in 0..51 {
                let z = zero[j * 51 + o];
                let h =
                    |l: Block| FIXED_KEY_AES.tccr(output_tweak(first + j as u64, o), l).0 as u64;
                let (colour0, colour1) = if z.lsb() {
                    (z ^ delta.block(), z)
                } else {
                    (z, z ^ delta.block())
                };
                let p = u64::from(z.lsb());
                let s = h(colour0).wrapping_sub(p);
                let mask = u64::MAX >> o;
                assert_eq!(
                    rd.next(64 - o),
                    s.wrapping_add(1 - p).wrapping_sub(h(colour1)) & mask
                );
                share = share.wrapping_sub(s << o);
            }
            assert_eq!(w[j], share);
        }
    }

    /// What the evaluator sees does not depend on the bits: for a fixed garbling, flipping an
    /// output bit changes its label but the shares it derives stay uniform; here, the
    /// evaluator's share for all-zero and all-one bits under many Δs spreads over every
    /// residue mod 8 about equally (a smoke test of the masking, not a proof).
    #[test]
    fn evaluator_shares_look_uniform() {
        let shape = ArithOutputs::new(8, 3).unwrap();
        let mut counts = [[0u32; 8]; 2];
        for seed in 0..4000u64 {
            let mut rng = ChaCha12Rng::seed_from_u64(seed);
            let delta = Delta::random(&mut rng);
            let zero: Vec<Block> = (0..3).map(|_| Block::random(&mut rng)).collect();
            let mut cts = vec![0u8; shape.instance_bytes()];
            let mut w = [0u64];
            shape.garble(&delta, seed, &zero, &mut cts, &mut w).unwrap();
            for (k, bit) in [false, true].into_iter().enumerate() {
                let labels: Vec<Block> = zero
                    .iter()
                    .map(|&z| if bit { z ^ delta.block() } else { z })
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
            for o in [0usize, 1, 50, 63] {
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
        let zero = vec![Block::ZERO; 51 * 2];
        let mut w = vec![0u64; 2];
        assert!(shape
            .garble(&delta, 0, &zero[..50], &mut [0u8; 249], &mut w[..1])
            .is_err());
        assert!(shape
            .garble(&delta, 0, &zero, &mut [0u8; 249], &mut w)
            .is_err());
        assert!(shape
            .garble(&delta, 0, &zero, &mut [0u8; 498], &mut w[..1])
            .is_err());
        assert!(shape.eval(u64::MAX, &zero, &[0u8; 498], &mut w).is_err());
    }
}
