//! The public linear code of silent OT's LPN step: an expand-convolute code in the style of
//! Raghuraman, Rindal and Tanguy (CRYPTO 2023, ePrint 2023/882), written here from the paper's
//! description.
//!
//! The compression `H : F_2^{2n} → F_2^n` (blocks are 128 parallel bit vectors, so it acts on
//! every bit of a block at once) is systematic: for `v = (s ‖ p)` with halves of `n`,
//! `H·v = s ⊕ B·C·C'·p`, where
//!
//! - `C` and `C'` are two *convolutions*: position `i` of `p`, in order, is added to each of the
//!   next [`CONV_WIDTH`] positions with a public random coefficient bit and always to the one
//!   after those (positions past the end wrap around). Each is lower-triangular with a unit
//!   diagonal up to the wrap, so it mixes every position into all later ones at the cost of
//!   `CONV_WIDTH + 1` XORs per position. Two passes with independent coefficients, as libOTe
//!   and CryProt do by default, guard against an expander row whose entries all fall near the
//!   end of `p`.
//! - `B` is the *expander*: every output row takes [`EXPANDER_WEIGHT`] uniformly random
//!   positions of the convolved `p`.
//!
//! The parameters are RRT23's fast instantiation (expander weight 7, convolution width 24, rate
//! 1/2: 2n noise positions for n outputs), the ones libOTe's `ExConv7x24` and the `cryprot-codes`
//! crate use by default. The coefficients and expander positions are drawn from AES-CTR
//! ([`Prg`]) under seeds derived from a fixed public constant and `n`, so both parties build the
//! same code without talking; the code is public in the LPN assumption anyway.

use crate::crypto::block::{blocks_as_words, blocks_as_words_mut};
use crate::crypto::{Block, Prg, FIXED_KEY_AES};

/// Ones per expander row.
pub const EXPANDER_WEIGHT: usize = 7;
/// Random coefficients per position of one convolution pass.
pub const CONV_WIDTH: usize = 24;

/// The first 16 bytes of the SHA-256 of "pibench silent OT code": a nothing-up-my-sleeve seed
/// (`code_seed_is_the_documented_digest` recomputes it).
const CODE_SEED: [u8; 16] = [
    0x96, 0x13, 0x1d, 0x7d, 0x1b, 0x92, 0x9f, 0xce, 0x52, 0x83, 0xe3, 0xb4, 0xbd, 0x62, 0xab, 0x78,
];

/// Positions handled per batch of pseudorandom coefficients or expander indices.
const BATCH: usize = 256;

/// The code compressing `2n` blocks to `n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExConvCode {
    n: usize,
}

impl ExConvCode {
    /// The code with `n` outputs (and `2n` inputs). `n` must be at least `CONV_WIDTH + 2`.
    pub fn new(n: usize) -> Self {
        assert!(n > CONV_WIDTH + 1, "code too short: {n}");
        ExConvCode { n }
    }

    /// Outputs.
    pub fn outputs(&self) -> usize {
        self.n
    }

    /// Compresses `v` (`2n` blocks) in place: afterwards `v[..n] = H·v` and `v[n..]` holds
    /// scratch values.
    pub fn compress(&self, v: &mut [Block]) {
        let n = self.n;
        assert_eq!(v.len(), 2 * n, "the code takes 2n = {} blocks", 2 * n);
        let (s, p) = v.split_at_mut(n);
        convolve(p, &mut stream(n, 0));
        convolve(p, &mut stream(n, 1));
        expand(s, p);
    }
}

/// The public stream of part `part` (0, 1: the convolutions; 2: the expander) of the code with
/// `n` outputs.
fn stream(n: usize, part: u128) -> Prg {
    let s = Block::from_bytes(CODE_SEED) ^ Block(((n as u128) << 8) | part);
    Prg::from_seed(FIXED_KEY_AES.encrypt(s))
}

/// The masks of the four coefficient bits of a nibble, as `u64` words (two per block), so
/// that one position's update of four blocks is an AND and an XOR over 512 bits.
static NIBBLE_MASKS: [[u64; 8]; 16] = {
    let mut t = [[0u64; 8]; 16];
    let mut v = 0;
    while v < 16 {
        let mut k = 0;
        while k < 4 {
            let m = 0u64.wrapping_sub((v >> k) & 1);
            t[v as usize][2 * k as usize] = m;
            t[v as usize][2 * k as usize + 1] = m;
            k += 1;
        }
        v += 1;
    }
    t
};

/// `w[..8] ^= x & m` for four blocks seen as eight words.
#[inline(always)]
fn masked_xor4(w: &mut [u64], x: &[u64; 8], m: &[u64; 8]) {
    let w: &mut [u64; 8] = w.try_into().expect("eight words");
    for q in 0..8 {
        w[q] ^= x[q] & m[q];
    }
}

/// One convolution pass over `x` with coefficients from `prg` (24 bits of one 32-bit word per
/// position).
///
/// Position `i` adds itself to the 25 positions after it, which the next position reads at
/// once: the loop is bound by how fast a store reaches the next load. Updating the window in
/// place at its own offset makes every load straddle two earlier stores, which the CPU cannot
/// forward (a stall of its own per load). So the window is widened to the seven 64-byte-aligned
/// four-block groups that cover it and each group is updated whole, with the coefficients
/// shifted by the window's offset in its first group: every location is then always stored and
/// loaded at the same address and size. The few positions at the ends take the plain path.
fn convolve(x: &mut [Block], prg: &mut Prg) {
    let m = x.len();
    let mut coef = [Block::ZERO; BATCH / 4];
    // Positions whose window does not wrap.
    let main = m.saturating_sub(CONV_WIDTH + 1);
    // The first block on a 64-byte boundary (blocks are 16-byte aligned), and the positions
    // whose seven aligned groups lie inside `x`.
    let g0 = (x.as_ptr() as usize).wrapping_neg() % 64 / 16;
    let grouped = g0.saturating_sub(1)..m.saturating_sub(CONV_WIDTH + 4);
    for start in (0..m).step_by(BATCH) {
        prg.fill_blocks(&mut coef);
        let cw = blocks_as_words(&coef);
        let end = (start + BATCH).min(m);
        for i in start..end {
            let k = i - start;
            let c = (cw[k / 2] >> (32 * (k % 2))) as u32;
            let xi = x[i].0;
            let (lo, hi) = (xi as u64, (xi >> 64) as u64);
            let x8 = [lo, hi, lo, hi, lo, hi, lo, hi];
            if grouped.contains(&i) {
                // Blocks i + 1 + b take bit b (b < 24), block i + 25 always: bit 24.
                let e = i + 1 - g0;
                let first = g0 + (e & !3);
                let d = ((u64::from(c) & 0xff_ffff) | 1 << CONV_WIDTH) << (e & 3);
                let words = blocks_as_words_mut(&mut x[first..first + 28]);
                for (g, w) in words.chunks_exact_mut(8).enumerate() {
                    masked_xor4(w, &x8, &NIBBLE_MASKS[((d >> (4 * g)) & 15) as usize]);
                }
            } else if i < main {
                let words = blocks_as_words_mut(&mut x[i + 1..i + CONV_WIDTH + 2]);
                for (nib, w) in words[..2 * CONV_WIDTH].chunks_exact_mut(8).enumerate() {
                    masked_xor4(w, &x8, &NIBBLE_MASKS[((c >> (4 * nib)) & 15) as usize]);
                }
                x[i + CONV_WIDTH + 1].0 ^= xi;
            } else {
                for b in 0..CONV_WIDTH {
                    x[(i + 1 + b) % m].0 ^= xi & 0u128.wrapping_sub(((c >> b) & 1) as u128);
                }
                x[(i + 1 + CONV_WIDTH) % m].0 ^= xi;
            }
        }
    }
}

/// The expander's `(row, position)` pairs in row order: [`EXPANDER_WEIGHT`] positions per row,
/// each from one 32-bit word of `prg` scaled into `0..m` (a bias below 2^-12 for m ≤ 2^20: the
/// code is public and its analysis does not need exactly uniform positions).
fn expander_pairs(rows: usize, m: usize, prg: &mut Prg) -> Vec<[u32; 2]> {
    let mut pairs = Vec::with_capacity(rows * EXPANDER_WEIGHT);
    let mut raw = [Block::ZERO; BATCH * EXPANDER_WEIGHT / 4];
    for first in (0..rows).step_by(BATCH) {
        prg.fill_blocks(&mut raw);
        let words = blocks_as_words(&raw);
        for i in first..(first + BATCH).min(rows) {
            for k in 0..EXPANDER_WEIGHT {
                let e = (i - first) * EXPANDER_WEIGHT + k;
                let r = (words[e / 2] >> (32 * (e % 2))) & 0xffff_ffff;
                pairs.push([i as u32, ((r * m as u64) >> 32) as u32]);
            }
        }
    }
    pairs
}

/// Rows and positions per tile of the cache-blocked expander: a tile of each (2 × 256 KiB)
/// stays in the L2 cache while its pairs are applied.
const TILE_BITS: u32 = 14;

/// An expander's `(row, position)` pairs in the order they are applied, shared.
type Plan = std::sync::Arc<Vec<[u32; 2]>>;

/// The expander's pairs of the code with `n` outputs, grouped by (position tile, row tile), so
/// that applying them touches one tile of each half at a time instead of reading the parity
/// half at random (a cache miss per read once it outgrows the L2 cache). XOR commutes, so the
/// order does not change the result. Built once per `n` and process, and shared.
fn expander_plan(n: usize) -> Plan {
    use std::sync::{Arc, Mutex};
    static PLANS: Mutex<Vec<(usize, Plan)>> = Mutex::new(Vec::new());
    if let Some((_, p)) = PLANS
        .lock()
        .ok()
        .and_then(|g| g.iter().find(|(k, _)| *k == n).cloned())
    {
        return p;
    }
    let pairs = expander_pairs(n, n, &mut stream(n, 2));
    let tiles = (n >> TILE_BITS) + 1;
    let key = |[r, c]: [u32; 2]| (c >> TILE_BITS) as usize * tiles + (r >> TILE_BITS) as usize;
    // A counting sort by tile, stable within a tile.
    let mut counts = vec![0usize; tiles * tiles + 1];
    for &pr in &pairs {
        counts[key(pr) + 1] += 1;
    }
    for t in 1..counts.len() {
        counts[t] += counts[t - 1];
    }
    let mut sorted = vec![[0u32; 2]; pairs.len()];
    for &pr in &pairs {
        let k = key(pr);
        sorted[counts[k]] = pr;
        counts[k] += 1;
    }
    let plan = Arc::new(sorted);
    if let Ok(mut g) = PLANS.lock() {
        // Chunk sizes are few (one per tree depth); keep every plan.
        g.push((n, plan.clone()));
    }
    plan
}

/// `s[i] ^= ⊕_k p[j_{i,k}]` for [`EXPANDER_WEIGHT`] positions per row drawn from the code's
/// public stream, in the cache-blocked order of [`expander_plan`].
pub(crate) fn expand(s: &mut [Block], p: &[Block]) {
    assert_eq!(s.len(), p.len());
    let plan = expander_plan(s.len());
    for &[r, c] in plan.iter() {
        s[r as usize] ^= p[c as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(n: usize, seed: u128) -> Vec<Block> {
        let mut v = vec![Block::ZERO; n];
        Prg::from_seed(Block(seed)).fill_blocks(&mut v);
        v
    }

    #[test]
    fn code_seed_is_the_documented_digest() {
        use sha2::{Digest, Sha256};
        assert_eq!(
            CODE_SEED[..],
            Sha256::digest(b"pibench silent OT code")[..16]
        );
    }

    /// H(a ⊕ b) = H(a) ⊕ H(b), H is the same on every call, and it depends on n.
    #[test]
    fn the_code_is_linear_and_deterministic() {
        for n in [27usize, 300, 4096 + 17] {
            let code = ExConvCode::new(n);
            let (a, b) = (random(2 * n, 1), random(2 * n, 2));
            let ab: Vec<Block> = a.iter().zip(&b).map(|(x, y)| *x ^ *y).collect();
            let (mut ha, mut hb, mut hab) = (a.clone(), b.clone(), ab);
            code.compress(&mut ha);
            code.compress(&mut hb);
            code.compress(&mut hab);
            for i in 0..n {
                assert_eq!(hab[i], ha[i] ^ hb[i], "n {n} row {i}");
            }
            let mut again = a.clone();
            code.compress(&mut again);
            assert_eq!(again[..n], ha[..n]);
        }
    }

    /// The grouped convolution computes the definition (each position, in order, added to the
    /// next positions its coefficient bits pick and to the one after them, wrapping), whatever
    /// the alignment of the slice.
    #[test]
    fn convolution_matches_its_definition() {
        for n in [40usize, 300, 1000] {
            let mut buf = random(n + 3, 5);
            for skew in 0..4 {
                let x = &mut buf[skew..skew + n];
                let mut want = x.to_vec();
                let mut prg = stream(n, 0);
                let mut coef = [Block::ZERO; BATCH / 4];
                for i in 0..n {
                    if i % BATCH == 0 {
                        prg.fill_blocks(&mut coef);
                    }
                    let k = i % BATCH;
                    let c = (blocks_as_words(&coef)[k / 2] >> (32 * (k % 2))) as u32;
                    let xi = want[i];
                    for b in 0..CONV_WIDTH {
                        if (c >> b) & 1 == 1 {
                            want[(i + 1 + b) % n] ^= xi;
                        }
                    }
                    want[(i + 1 + CONV_WIDTH) % n] ^= xi;
                }
                convolve(x, &mut stream(n, 0));
                assert_eq!(x, &want[..], "n {n} skew {skew}");
            }
        }
    }

    /// The cache-blocked expander computes what the row-by-row definition does.
    #[test]
    fn blocked_expander_matches_row_order() {
        for n in [300usize, (1 << TILE_BITS) * 3 + 5] {
            let p = random(n, 3);
            let mut s = random(n, 4);
            let mut want = s.clone();
            for [r, c] in expander_pairs(n, n, &mut stream(n, 2)) {
                want[r as usize] ^= p[c as usize];
            }
            expand(&mut s, &p);
            assert_eq!(s, want, "n {n}");
        }
    }

    /// A single noise position in the parity half reaches many outputs (the convolution
    /// spreads it, the expander gathers it), and the systematic half passes straight through.
    #[test]
    fn unit_vectors_spread() {
        let n = 1 << 12;
        let code = ExConvCode::new(n);
        for pos in [n, n + 1, n + n / 2, 2 * n - 1] {
            let mut v = vec![Block::ZERO; 2 * n];
            v[pos] = Block(1);
            code.compress(&mut v);
            let ones = v[..n].iter().filter(|b| b.0 == 1).count();
            assert!(ones > n / 8, "position {pos}: {ones} outputs");
        }
        let mut v = vec![Block::ZERO; 2 * n];
        v[5] = Block(3);
        code.compress(&mut v);
        assert_eq!(v[5], Block(3));
        assert_eq!(v[..n].iter().filter(|b| b.0 != 0).count(), 1);
    }

    /// A sparse bit vector of the regular-noise shape compresses to balanced bits.
    #[test]
    fn sparse_noise_compresses_to_balanced_bits() {
        let n = 1 << 14;
        let code = ExConvCode::new(n);
        let mut v = vec![Block::ZERO; 2 * n];
        let block = 2 * n / 128;
        for t in 0..128 {
            v[t * block + (t * 37) % block] = Block(1);
        }
        code.compress(&mut v);
        let ones = v[..n].iter().filter(|b| b.0 == 1).count();
        assert!((n * 2 / 5..n * 3 / 5).contains(&ones), "{ones} of {n}");
    }
}
