//! The three-halves garbling scheme of Rosulek and Roy ("Three Halves Make a Whole? Beating the
//! Half-Gates Lower Bound for Garbled Circuits", CRYPTO 2021, ePrint 2021/749): free XOR, and
//! `1.5κ + 5` bits per AND gate instead of half gates' `2κ`. This module owns the scheme — the
//! per-gate garbling and evaluation, the tweak schedule, the table layout and the garbler's
//! control randomness — and a one-instance reference garbler and evaluator that the batched
//! engine ([`super::thbatch`]) is checked against.
//!
//! # The scheme ("slicing and dicing")
//!
//! Labels and Δ are cut into halves, `X = (X_L, X_R)` with `X_L` the low 64 bits (which hold the
//! colour bit, so Δ's lsb is 1 as for half gates). Zero-labels, XOR, NOT and constants are
//! exactly those of [`halfgates`](super::halfgates), so the two schemes share every encoding and
//! decoding routine. For an AND gate the evaluator, holding `A`, `B` with colours `i`, `j`,
//! computes three hashes `H(A, t₀)`, `H(B, t₁)`, `H(A ⊕ B, t₂)` (the tweakable circular
//! correlation-robust hash [`tccr`](crate::crypto::aes::FixedKeyAes::tccr); `h(·)` below is its
//! low half, `h'(·)` its bit 64) and
//!
//! ```text
//! (c₁, c₂) = (z₀ ⊕ i·z₂ ⊕ (i⊕j)·z₄ ⊕ h'(A) ⊕ h'(A⊕B),  z₁ ⊕ j·z₃ ⊕ (i⊕j)·z₄ ⊕ h'(B) ⊕ h'(A⊕B))
//! R        = Rp_ij ⊕ c₁·S₁ ⊕ c₂·S₂                               (a 2 × 4 bit matrix)
//! C_L      = h(A) ⊕ h(A⊕B) ⊕ i·G₀ ⊕ (i⊕j)·G₂ ⊕ R_L · (A_L, A_R, B_L, B_R)
//! C_R      = h(B) ⊕ h(A⊕B) ⊕ j·G₁ ⊕ (i⊕j)·G₂ ⊕ R_R · (A_L, A_R, B_L, B_R)
//! ```
//!
//! with the gate's material `G₀, G₁, G₂` (three half-labels) and `z₀..z₄` (five control bits).
//! The garbler picks two random bits per gate; they fix, for each of the four colour pairs, the
//! pair of control bits `c_ij` and so the matrix `R_ij`. Each `c_ij` is uniform whatever the
//! gate's permutation bits, so the one matrix the evaluator learns says nothing about which
//! colour pair holds the 1 of the AND. The garbler then solves the four rows' equations for the
//! output zero-label `C` and for `G₀, G₁, G₂`, `z₀..z₄` (8 half-label equations in 5 unknowns:
//! the `R_ij` are exactly the choices that make them consistent).
//!
//! The constants (`S₁`, `S₂`, `Rp_ij` and the map from the random bits to `c_ij`) were derived
//! here by solving that consistency condition over GF(2) and taking the lowest-weight solution
//! with `Rp₁₁ = 0` and `c₀₀` equal to the random bits; they coincide with the paper's choice.
//! The derivation is re-checked by the tests: every row of every gate decodes correctly for
//! every permutation and every random choice, and every row's matrix is uniform over the same
//! four values whatever the permutation.
//!
//! # Tweaks
//!
//! AND gate `k` of instance `n` hashes with `n·2⁶⁴ + 2⁶³ + 4k + s`, `s ∈ {0, 1, 2}`
//! ([`and_tweaks`]): unique per gate and instance, disjoint from the half-gates tweaks (bit 63
//! clear) and from the OT-extension tweaks (bit 127 set) used with the same Δ, as long as
//! instance numbers stay below 2⁶³.
//!
//! # Table layout
//!
//! One instance of a circuit with `A` AND gates owns [`instance_words`]`(A) = 3A + ⌈5A/64⌉`
//! little-endian `u64` words: words `3k, 3k+1, 3k+2` hold `G₀, G₁, G₂` of AND gate `k`; the
//! remaining `⌈5A/64⌉` words hold the control bits as one bit string, gate `k`'s `z_m` at bit
//! `5k + m` (bit `p` is bit `p % 64` of control word `p / 64`), the unused high bits zero. Each
//! instance is padded to whole words so instances can be sliced, garbled in parallel and
//! streamed independently: at ℓ = 64 (177 AND gates) that is 545 words = 4,360 bytes, against
//! the 4,358.6 of `177 · (1.5 · 128 + 5)` bits.
//!
//! # Randomness
//!
//! The two random bits of each gate come from a PRF the garbler keys with a secret seed
//! ([`ControlPrf`]): AES under the seed on `instance · 2⁶⁴ + b` gives block `b` of the instance's
//! bit string, and gate `k` takes bits `2k, 2k + 1`. Garbling is therefore a deterministic
//! function of Δ, the seed, the zero-labels and the instance numbers, whatever the batching.

use super::circuit::{check_len, Circuit};
use super::halfgates::{walk_instance, Delta};
use super::GcError;
use crate::crypto::{Block, FixedKeyAes, FIXED_KEY_AES};

/// Control bits per AND gate.
pub const CONTROL_BITS: usize = 5;

/// `S₁`, `S₂`: the two directions in which the garbler randomises each row's matrix. A matrix
/// is a byte: bit `m < 4` is the coefficient of `(A_L, A_R, B_L, B_R)[m]` in the left output
/// half, bit `4 + m` in the right one.
const S1: u8 = 0x97;
/// See [`S1`].
const S2: u8 = 0xE9;
/// `Rp_ij` has bit 2 (`B_L` into the left half) when `i = 0` and bit 5 (`A_R` into the right
/// half) when `j = 0`.
const RP_LEFT: u8 = 0x04;
/// See [`RP_LEFT`].
const RP_RIGHT: u8 = 0x20;

/// Words of garbled material of one instance of a circuit with `ands` AND gates (see the module
/// docs for the layout).
#[inline]
pub const fn instance_words(ands: usize) -> usize {
    3 * ands + (CONTROL_BITS * ands).div_ceil(64)
}

/// Refuses instance numbers `first..first + n` that reach
/// [`INSTANCE_LIMIT`](super::halfgates::INSTANCE_LIMIT) (so every tweak has bit 127 clear, apart
/// from the OT tweaks of the same Δ), and circuits whose AND index (shifted by 2 below the
/// scheme's bit 63) would spill into the instance bits.
pub(crate) fn check_instances(first: u64, n: usize, ands: usize) -> Result<(), GcError> {
    super::halfgates::check_instances(first, n, ands)?;
    if ands as u64 >= 1 << 61 {
        return Err(GcError::InstanceOverflow { first, n });
    }
    Ok(())
}

/// The three hash tweaks `[t₀, t₁, t₂]` of AND gate `and_index` of instance `instance`; kept
/// apart from the OT tweaks by `check_instances`.
#[inline(always)]
pub fn and_tweaks(instance: u64, and_index: usize) -> [Block; 3] {
    let t = ((instance as u128) << 64) | (1u128 << 63) | ((and_index as u128) << 2);
    [Block(t), Block(t | 1), Block(t | 2)]
}

/// Blocks of control randomness per instance: two bits per AND gate.
#[inline]
pub const fn rand_blocks(ands: usize) -> usize {
    (2 * ands).div_ceil(128)
}

/// The garbler's secret PRF for the control randomness (see the module docs). `Debug` does not
/// print the key.
#[derive(Clone)]
pub struct ControlPrf(FixedKeyAes);

impl ControlPrf {
    /// The PRF keyed by `seed`, which must be secret and uniformly random.
    pub fn new(seed: Block) -> Self {
        ControlPrf(FixedKeyAes::new(seed))
    }

    /// The control randomness of `instance`: `out[b] = PRF(instance · 2⁶⁴ + b)`; gate `k` uses
    /// bits `2k, 2k + 1` of the blocks read as one little-endian bit string.
    #[inline]
    pub fn fill(&self, instance: u64, out: &mut [Block]) {
        for (b, o) in out.iter_mut().enumerate() {
            *o = Block(((instance as u128) << 64) | b as u128);
        }
        self.0.encrypt_blocks(out);
    }
}

impl core::fmt::Debug for ControlPrf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ControlPrf(..)")
    }
}

/// Gate `k`'s two random bits from an instance's control randomness.
#[inline(always)]
pub(crate) fn rand_bits(rand: &[Block], k: usize) -> u8 {
    let p = 2 * k;
    ((rand[p / 128].0 >> (p % 128)) & 3) as u8
}

/// All ones if `b`, zero otherwise.
#[inline(always)]
fn m64(b: bool) -> u64 {
    0u64.wrapping_sub(b as u64)
}

/// All ones if `b`, zero otherwise.
#[inline(always)]
fn m8(b: bool) -> u8 {
    0u8.wrapping_sub(b as u8)
}

/// One output half of `R · x`: the nibble `r` (low four bits) picks entries of `x`.
#[inline(always)]
fn dot(r: u8, x: &[u64; 4]) -> u64 {
    (m64(r & 1 != 0) & x[0])
        ^ (m64(r & 2 != 0) & x[1])
        ^ (m64(r & 4 != 0) & x[2])
        ^ (m64(r & 8 != 0) & x[3])
}

#[inline(always)]
fn lo(b: Block) -> u64 {
    b.0 as u64
}

#[inline(always)]
fn hi(b: Block) -> u64 {
    (b.0 >> 64) as u64
}

/// The bit of a hash that encrypts control bits.
#[inline(always)]
fn cbit(b: Block) -> u8 {
    ((b.0 >> 64) & 1) as u8
}

/// The row matrix `Rp_ij ⊕ c₁·S₁ ⊕ c₂·S₂`.
#[inline(always)]
fn row_matrix(i: bool, j: bool, c1: u8, c2: u8) -> u8 {
    (m8(!i) & RP_LEFT) ^ (m8(!j) & RP_RIGHT) ^ (m8(c1 & 1 != 0) & S1) ^ (m8(c2 & 1 != 0) & S2)
}

/// The garbler's six hash inputs of an AND gate with zero-labels `a0`, `b0`:
/// `[A⁰, A⁰⊕Δ, B⁰, B⁰⊕Δ, A⁰⊕B⁰, A⁰⊕B⁰⊕Δ]`, hashed with tweaks `[t₀, t₀, t₁, t₁, t₂, t₂]`.
#[inline(always)]
pub(crate) fn garble_inputs(a0: Block, b0: Block, d: Block) -> [Block; 6] {
    let x0 = a0 ^ b0;
    [a0, a0 ^ d, b0, b0 ^ d, x0, x0 ^ d]
}

/// Garbles one AND gate from the hashes `h` of [`garble_inputs`] and the gate's two random bits
/// `rb`: returns the output zero-label, the material `[G₀, G₁, G₂]` and the control bits
/// (`z_m` in bit `m`). Branch-free in every secret.
#[inline(always)]
pub(crate) fn garble_gate(
    a0: Block,
    b0: Block,
    d: Block,
    h: &[Block; 6],
    rb: u8,
) -> (Block, [u64; 3], u8) {
    let (pa, pb) = (a0.lsb(), b0.lsb());
    // Colour-0 labels and the colour pair (α, β) whose output is 1.
    let a = a0 ^ d.select(pa);
    let b = b0 ^ d.select(pb);
    let (alpha, beta) = (!pa, !pb);
    // Hashes by colour: hA0 = H(colour-0 label of a), hX0 = H(A_0 ⊕ B_0).
    let ha0 = Block(h[0].0 ^ ((h[0].0 ^ h[1].0) & 0u128.wrapping_sub(pa as u128)));
    let hb0 = Block(h[2].0 ^ ((h[2].0 ^ h[3].0) & 0u128.wrapping_sub(pb as u128)));
    let hx0 = Block(h[4].0 ^ ((h[4].0 ^ h[5].0) & 0u128.wrapping_sub((pa ^ pb) as u128)));
    let (r1, r2) = (rb & 1, (rb >> 1) & 1);
    let (al, be) = (alpha as u8, beta as u8);
    let r00 = row_matrix(false, false, r1, r2);
    let r01 = row_matrix(false, true, al ^ be ^ r1, al ^ r2);
    let r11 = row_matrix(true, true, al ^ r1, be ^ r2);
    let (dl, dr) = (lo(d), hi(d));
    let x00 = [lo(a), hi(a), lo(b), hi(b)];
    let x01 = [lo(a), hi(a), lo(b) ^ dl, hi(b) ^ dr];
    let x11 = [lo(a) ^ dl, hi(a) ^ dr, lo(b) ^ dl, hi(b) ^ dr];
    let m00l = dot(r00, &x00);
    let m00r = dot(r00 >> 4, &x00);
    let m01l = dot(r01, &x01);
    let m11l = dot(r11, &x11);
    let m11r = dot(r11 >> 4, &x11);
    // t_ij = [(i, j) = (α, β)]
    let t00 = m64(pa & pb);
    let t01 = m64(pa & !pb);
    let t11 = m64(!pa & !pb);
    let cl = lo(ha0) ^ lo(hx0) ^ m00l ^ (t00 & dl);
    let cr = lo(hb0) ^ lo(hx0) ^ m00r ^ (t00 & dr);
    let g0 = lo(h[0]) ^ lo(h[1]) ^ m00l ^ m11l ^ ((t00 ^ t11) & dl);
    let g1 = lo(h[2]) ^ lo(h[3]) ^ m00r ^ m11r ^ ((t00 ^ t11) & dr);
    let g2 = lo(h[4]) ^ lo(h[5]) ^ m00l ^ m01l ^ ((t00 ^ t01) & dl);
    let z0 = r1 ^ cbit(ha0) ^ cbit(hx0);
    let z1 = r2 ^ cbit(hb0) ^ cbit(hx0);
    let z2 = al ^ cbit(h[0]) ^ cbit(h[1]);
    let z3 = be ^ cbit(h[2]) ^ cbit(h[3]);
    let z4 = al ^ be ^ cbit(h[4]) ^ cbit(h[5]);
    let z = z0 | (z1 << 1) | (z2 << 2) | (z3 << 3) | (z4 << 4);
    (
        Block(u128::from(cl) | (u128::from(cr) << 64)),
        [g0, g1, g2],
        z,
    )
}

/// Evaluates one AND gate from the labels `a`, `b`, the hashes `[H(A, t₀), H(B, t₁),
/// H(A⊕B, t₂)]`, the material and the control bits. Branch-free.
#[inline(always)]
pub(crate) fn eval_gate(a: Block, b: Block, h: &[Block; 3], g: &[u64; 3], z: u8) -> Block {
    let (i, j) = (a.lsb(), b.lsb());
    let (iu, ju) = (i as u8, j as u8);
    let zb = |m: u32| (z >> m) & 1;
    let c1 = zb(0) ^ (iu & zb(2)) ^ ((iu ^ ju) & zb(4)) ^ cbit(h[0]) ^ cbit(h[2]);
    let c2 = zb(1) ^ (ju & zb(3)) ^ ((iu ^ ju) & zb(4)) ^ cbit(h[1]) ^ cbit(h[2]);
    let r = row_matrix(i, j, c1, c2);
    let x = [lo(a), hi(a), lo(b), hi(b)];
    let g2 = m64(i ^ j) & g[2];
    let cl = lo(h[0]) ^ lo(h[2]) ^ (m64(i) & g[0]) ^ g2 ^ dot(r, &x);
    let cr = lo(h[1]) ^ lo(h[2]) ^ (m64(j) & g[1]) ^ g2 ^ dot(r >> 4, &x);
    Block(u128::from(cl) | (u128::from(cr) << 64))
}

/// Writes gate `k`'s control bits into an instance's zeroed control words.
#[inline(always)]
pub(crate) fn put_control(ctrl: &mut [u64], k: usize, z: u8) {
    let p = CONTROL_BITS * k;
    let (w, o) = (p / 64, p % 64);
    ctrl[w] |= u64::from(z) << o;
    if o > 64 - CONTROL_BITS {
        ctrl[w + 1] |= u64::from(z) >> (64 - o);
    }
}

/// Reads gate `k`'s control bits from an instance's control words.
#[inline(always)]
pub(crate) fn get_control(ctrl: &[u64], k: usize) -> u8 {
    let p = CONTROL_BITS * k;
    let (w, o) = (p / 64, p % 64);
    let mut v = ctrl[w] >> o;
    if o > 64 - CONTROL_BITS {
        v |= ctrl[w + 1] << (64 - o);
    }
    (v & ((1 << CONTROL_BITS) - 1)) as u8
}

/// Garbles one instance gate by gate: the reference the batched engine is tested against.
///
/// Returns the instance's garbled material ([`instance_words`] words, laid out as in the module
/// docs) and the output zero-labels.
pub fn garble_reference(
    circuit: &Circuit,
    delta: &Delta,
    prf: &ControlPrf,
    gb_zero: &[Block],
    ev_zero: &[Block],
    instance: u64,
) -> Result<(Vec<u64>, Vec<Block>), GcError> {
    circuit.check_inputs(
        ["garbler zero-labels", "evaluator zero-labels"],
        gb_zero.len(),
        ev_zero.len(),
    )?;
    let ands = circuit.and_count();
    check_instances(instance, 1, ands)?;
    let d = delta.block();
    let aes = &*FIXED_KEY_AES;
    let mut rand = vec![Block::ZERO; rand_blocks(ands)];
    prf.fill(instance, &mut rand);
    let mut table = vec![0u64; instance_words(ands)];
    let (mat, ctrl) = table.split_at_mut(3 * ands);
    let out = walk_instance(circuit, gb_zero, ev_zero, d, |k, a0, b0| {
        let t = and_tweaks(instance, k);
        let x = garble_inputs(a0, b0, d);
        let h: [Block; 6] = core::array::from_fn(|m| aes.tccr(t[m / 2], x[m]));
        let (c, gm, z) = garble_gate(a0, b0, d, &h, rand_bits(&rand, k));
        mat[3 * k..3 * k + 3].copy_from_slice(&gm);
        put_control(ctrl, k, z);
        c
    });
    Ok((table, out))
}

/// Evaluates one garbled instance gate by gate: the reference for the batched evaluator.
/// Returns the output labels.
pub fn eval_reference(
    circuit: &Circuit,
    gb_labels: &[Block],
    ev_labels: &[Block],
    table: &[u64],
    instance: u64,
) -> Result<Vec<Block>, GcError> {
    circuit.check_inputs(
        ["garbler labels", "evaluator labels"],
        gb_labels.len(),
        ev_labels.len(),
    )?;
    let ands = circuit.and_count();
    check_instances(instance, 1, ands)?;
    check_len("garbled material", instance_words(ands), table.len())?;
    let (mat, ctrl) = table.split_at(3 * ands);
    let aes = &*FIXED_KEY_AES;
    Ok(walk_instance(
        circuit,
        gb_labels,
        ev_labels,
        Block::ZERO,
        |k, la, lb| {
            let t = and_tweaks(instance, k);
            let h = [
                aes.tccr(t[0], la),
                aes.tccr(t[1], lb),
                aes.tccr(t[2], la ^ lb),
            ];
            let gm = [mat[3 * k], mat[3 * k + 1], mat[3 * k + 2]];
            eval_gate(la, lb, &h, &gm, get_control(ctrl, k))
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gc::circuit::{BinaryGates, CircuitBuilder};
    use crate::gc::test_support;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha12Rng;

    /// One AND gate, garbled from chosen zero-labels, evaluated on all four inputs: every
    /// combination of permutation bits, random bits and tweaks decodes to the AND.
    #[test]
    fn one_gate_every_permutation_and_random_choice() {
        let mut rng = ChaCha12Rng::seed_from_u64(21);
        let aes = &*FIXED_KEY_AES;
        for trial in 0..64u64 {
            let d = Delta::random(&mut rng).block();
            for (pa, pb, rb) in (0..16u8).map(|m| (m & 1 == 1, m & 2 == 2, m >> 2)) {
                let a0 = Block::random(&mut rng).with_lsb(pa);
                let b0 = Block::random(&mut rng).with_lsb(pb);
                let t = and_tweaks(trial, rng.gen_range(0..1000));
                let x = garble_inputs(a0, b0, d);
                let h: [Block; 6] = core::array::from_fn(|m| aes.tccr(t[m / 2], x[m]));
                let (c0, g, z) = garble_gate(a0, b0, d, &h, rb);
                assert!(z < 32);
                for (va, vb) in [(false, false), (false, true), (true, false), (true, true)] {
                    let (la, lb) = (a0 ^ d.select(va), b0 ^ d.select(vb));
                    let he = [
                        aes.tccr(t[0], la),
                        aes.tccr(t[1], lb),
                        aes.tccr(t[2], la ^ lb),
                    ];
                    let c = eval_gate(la, lb, &he, &g, z);
                    assert_eq!(
                        c,
                        c0 ^ d.select(va & vb),
                        "pa {pa} pb {pb} rb {rb} in {va}{vb}"
                    );
                }
            }
        }
    }

    /// The evaluator's row matrix is a secret-independent uniform choice among the same four
    /// matrices for every colour pair: enumerate the garbler's random bits for each
    /// permutation and compare the sets (and counts) of matrices each row can see.
    #[test]
    fn row_matrices_do_not_depend_on_the_permutation() {
        for (i, j) in [(false, false), (false, true), (true, false), (true, true)] {
            let mut seen: Vec<Vec<u8>> = Vec::new();
            for (pa, pb) in [(false, false), (false, true), (true, false), (true, true)] {
                let (al, be) = (!pa as u8, !pb as u8);
                let mut row: Vec<u8> = (0..4u8)
                    .map(|rb| {
                        let (r1, r2) = (rb & 1, rb >> 1);
                        let (c1, c2) = match (i, j) {
                            (false, false) => (r1, r2),
                            (false, true) => (al ^ be ^ r1, al ^ r2),
                            (true, false) => (be ^ r1, al ^ be ^ r2),
                            (true, true) => (al ^ r1, be ^ r2),
                        };
                        row_matrix(i, j, c1, c2)
                    })
                    .collect();
                row.sort_unstable();
                row.dedup();
                assert_eq!(row.len(), 4, "four distinct matrices per row");
                seen.push(row);
            }
            assert!(seen.windows(2).all(|w| w[0] == w[1]), "row ({i}, {j})");
        }
    }

    /// Control bits written gate by gate read back unchanged, including those that straddle
    /// two words.
    #[test]
    fn control_bits_pack_across_words() {
        let ands = 40;
        let mut ctrl = vec![0u64; instance_words(ands) - 3 * ands];
        let zs: Vec<u8> = (0..ands).map(|k| ((k * 7 + 3) % 32) as u8).collect();
        for (k, &z) in zs.iter().enumerate() {
            put_control(&mut ctrl, k, z);
        }
        for (k, &z) in zs.iter().enumerate() {
            assert_eq!(get_control(&ctrl, k), z, "gate {k}");
        }
        // 200 bits: bits above are untouched.
        assert_eq!(ctrl[3] >> 8, 0);
        assert_eq!(instance_words(177), 545);
    }

    #[test]
    fn tweaks_are_disjoint_from_half_gates_and_ot() {
        let mut seen = std::collections::HashSet::new();
        for inst in [0u64, 1, 7, (1 << 63) - 1] {
            for k in 0..200 {
                for t in and_tweaks(inst, k) {
                    assert!(seen.insert(t.0));
                    assert_eq!(t.0 >> 127, 0, "OT tweaks have bit 127 set");
                }
                let (h0, h1) = crate::gc::halfgates::and_tweaks(inst, k);
                assert!(!seen.contains(&h0.0) && !seen.contains(&h1.0));
            }
        }
        assert_eq!(format!("{:?}", ControlPrf::new(Block(5))), "ControlPrf(..)");
    }

    /// Every gate kind through the reference garbler and evaluator, all four inputs.
    #[test]
    fn every_gate_kind_garbles_correctly() {
        test_support::every_gate_kind_garbles_correctly(
            8,
            16,
            (
                |c, d, seed, gz, ez, i| garble_reference(c, d, &ControlPrf::new(seed), gz, ez, i),
                eval_reference,
            ),
            instance_words,
        );
    }

    #[test]
    fn wrong_lengths_are_errors() {
        let mut b = CircuitBuilder::new();
        let x = b.garbler_input().unwrap();
        let y = b.evaluator_input().unwrap();
        let z = b.and(&x, &y);
        b.output(&z);
        let c = b.finish();
        let d = Delta::from_block(Block(1)).unwrap();
        let prf = ControlPrf::new(Block(9));
        assert!(garble_reference(&c, &d, &prf, &[], &[Block::ZERO], 0).is_err());
        assert!(eval_reference(&c, &[Block::ZERO], &[Block::ZERO], &[0; 3], 0).is_err());
        assert!(eval_reference(&c, &[Block::ZERO], &[Block::ZERO], &[0; 4], 0).is_ok());
    }
}
