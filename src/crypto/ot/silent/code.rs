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

use crate::crypto::block::blocks_as_words;
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

    /// The public stream of part `part` (0, 1: the convolutions; 2: the expander).
    fn stream(&self, part: u128) -> Prg {
        let s = Block::from_bytes(CODE_SEED) ^ Block(((self.n as u128) << 8) | part);
        Prg::from_seed(FIXED_KEY_AES.encrypt(s))
    }

    /// Compresses `v` (`2n` blocks) in place: afterwards `v[..n] = H·v` and `v[n..]` holds
    /// scratch values.
    pub fn compress(&self, v: &mut [Block]) {
        let n = self.n;
        assert_eq!(v.len(), 2 * n, "the code takes 2n = {} blocks", 2 * n);
        let (s, p) = v.split_at_mut(n);
        convolve(p, &mut self.stream(0));
        convolve(p, &mut self.stream(1));
        expand(s, p, &mut self.stream(2));
    }
}

/// One convolution pass over `x` with coefficients from `prg` (24 bits of one 32-bit word per
/// position).
fn convolve(x: &mut [Block], prg: &mut Prg) {
    let m = x.len();
    let mut coef = [Block::ZERO; BATCH / 4];
    for start in (0..m).step_by(BATCH) {
        prg.fill_blocks(&mut coef);
        let words = blocks_as_words(&coef);
        let end = (start + BATCH).min(m);
        for i in start..end {
            let k = i - start;
            let c = (words[k / 2] >> (32 * (k % 2))) as u32;
            let xi = x[i].0;
            if i + CONV_WIDTH + 1 < m {
                let window = &mut x[i + 1..i + CONV_WIDTH + 2];
                for (b, y) in window[..CONV_WIDTH].iter_mut().enumerate() {
                    y.0 ^= xi & 0u128.wrapping_sub(((c >> b) & 1) as u128);
                }
                window[CONV_WIDTH].0 ^= xi;
            } else {
                for b in 0..CONV_WIDTH {
                    x[(i + 1 + b) % m].0 ^= xi & 0u128.wrapping_sub(((c >> b) & 1) as u128);
                }
                x[(i + 1 + CONV_WIDTH) % m].0 ^= xi;
            }
        }
    }
}

/// `s[i] ^= ⊕_k p[j_{i,k}]` for [`EXPANDER_WEIGHT`] positions per row drawn from `prg`.
fn expand(s: &mut [Block], p: &[Block], prg: &mut Prg) {
    let m = p.len() as u64;
    // One 32-bit word per index, scaled into 0..m (a bias below 2^-12 for m ≤ 2^20: the code is
    // public and its analysis does not need exactly uniform positions).
    let mut raw = [Block::ZERO; BATCH * EXPANDER_WEIGHT / 4];
    for chunk in s.chunks_mut(BATCH) {
        prg.fill_blocks(&mut raw);
        let words = blocks_as_words(&raw);
        let idx = |k: usize| {
            let r = (words[k / 2] >> (32 * (k % 2))) & 0xffff_ffff;
            ((r * m) >> 32) as usize
        };
        for (i, y) in chunk.iter_mut().enumerate() {
            let mut acc = y.0;
            for k in 0..EXPANDER_WEIGHT {
                acc ^= p[idx(i * EXPANDER_WEIGHT + k)].0;
            }
            y.0 = acc;
        }
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
