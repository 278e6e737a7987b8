//! Fixed-key AES-128 and the correlation-robust hashes of Guo, Katz, Wang and Yu (2020,
//! eprint 2019/074) built on it.
//!
//! The `aes` crate detects AES-NI at run time and pipelines eight blocks at a time; every batch
//! entry point here hands it whole slices so that pipeline stays full.

use std::sync::LazyLock;

use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use aes::Aes128;

use super::Block;

/// AES-128 under a key fixed for the life of the process: the random permutation π.
#[derive(Clone)]
pub struct FixedKeyAes {
    cipher: Aes128,
}

/// The fixed key: the first 16 bytes of the SHA-256 of "pibench fixed-key AES" (a nothing-up-
/// my-sleeve constant; `fixed_key_is_the_documented_digest` recomputes it). Any public constant
/// serves; it is fixed so that both parties use the same permutation without talking.
pub(crate) const FIXED_KEY: [u8; 16] = [
    0x87, 0x02, 0x99, 0xb3, 0x74, 0x99, 0xa0, 0xae, 0x7d, 0xb3, 0xde, 0x4b, 0x64, 0xd6, 0x65, 0x5a,
];

/// The process-wide fixed-key AES instance.
pub static FIXED_KEY_AES: LazyLock<FixedKeyAes> =
    LazyLock::new(|| FixedKeyAes::new(Block::from_bytes(FIXED_KEY)));

fn as_generic_blocks(blocks: &mut [Block]) -> &mut [GenericArray<u8, aes::cipher::consts::U16>] {
    // SAFETY: `Block` is `repr(transparent)` over `u128`, 16 bytes with no padding; a
    // `GenericArray<u8, U16>` is 16 bytes with alignment 1, so every `Block` is a valid,
    // suitably aligned `GenericArray<u8, U16>` and the lengths agree. AES works on the
    // little-endian byte image of the block, which is what `Block::to_bytes` gives.
    unsafe { core::slice::from_raw_parts_mut(blocks.as_mut_ptr().cast(), blocks.len()) }
}

impl FixedKeyAes {
    /// AES-128 keyed with `key`.
    pub fn new(key: Block) -> Self {
        let key_bytes = key.to_bytes();
        FixedKeyAes {
            cipher: Aes128::new(GenericArray::from_slice(&key_bytes)),
        }
    }

    /// π(x) for one block.
    #[inline]
    pub fn encrypt(&self, x: Block) -> Block {
        let mut b = [x];
        self.encrypt_blocks(&mut b);
        b[0]
    }

    /// π applied in place to every block; the AES pipeline processes eight at a time.
    #[inline]
    pub fn encrypt_blocks(&self, blocks: &mut [Block]) {
        #[cfg(target_endian = "big")]
        compile_error!("pibench assumes a little-endian target");
        self.cipher.encrypt_blocks(as_generic_blocks(blocks));
    }

    /// The correlation-robust hash `π(x) ⊕ x` (GKWY20 §7.2).
    #[inline]
    pub fn cr(&self, x: Block) -> Block {
        self.encrypt(x) ^ x
    }

    /// The circular correlation-robust hash `π(σ(x)) ⊕ σ(x)` (GKWY20 §7.3).
    #[inline]
    pub fn ccr(&self, x: Block) -> Block {
        let s = x.sigma();
        self.encrypt(s) ^ s
    }

    /// The tweakable circular correlation-robust hash `π(π(x) ⊕ i) ⊕ π(x)` (GKWY20 §7.4),
    /// used for garbling with a unique tweak `i` per use.
    #[inline]
    pub fn tccr(&self, tweak: Block, x: Block) -> Block {
        let y = self.encrypt(x);
        y ^ self.encrypt(y ^ tweak)
    }

    /// `xs[k] ← tccr(tweaks[k], xs[k])` for every k, in two pipelined AES passes.
    ///
    /// `scratch` must be as long as `xs`; it is overwritten. Panics if the lengths differ, which
    /// is a programming error, never a consequence of input.
    #[inline]
    pub fn tccr_batch(&self, tweaks: &[Block], xs: &mut [Block], scratch: &mut [Block]) {
        assert!(tweaks.len() == xs.len() && scratch.len() == xs.len());
        self.encrypt_blocks(xs);
        for ((s, x), t) in scratch.iter_mut().zip(xs.iter()).zip(tweaks) {
            *s = *x ^ *t;
        }
        self.encrypt_blocks(scratch);
        for (x, s) in xs.iter_mut().zip(scratch.iter()) {
            *x ^= *s;
        }
    }

    /// `xs[k] ← cr(xs[k])` for every k, in one pipelined AES pass. `scratch` as for
    /// [`FixedKeyAes::tccr_batch`].
    #[inline]
    pub fn cr_batch(&self, xs: &mut [Block], scratch: &mut [Block]) {
        assert!(scratch.len() == xs.len());
        scratch.copy_from_slice(xs);
        self.encrypt_blocks(scratch);
        for (x, s) in xs.iter_mut().zip(scratch.iter()) {
            *x ^= *s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FIPS-197 Appendix C.1: AES-128 known-answer test.
    #[test]
    fn fips197_known_answer() {
        let key = Block::from_bytes([
            0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
            0x0e, 0x0f,
        ]);
        let pt = Block::from_bytes([
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ]);
        let ct = [
            0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4,
            0xc5, 0x5a,
        ];
        assert_eq!(FixedKeyAes::new(key).encrypt(pt).to_bytes(), ct);
    }

    /// NIST SP 800-38A F.1.1 (ECB-AES128), all four blocks, through the batched path.
    #[test]
    fn sp800_38a_ecb_known_answer_batched() {
        let key = Block::from_bytes([
            0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf,
            0x4f, 0x3c,
        ]);
        let pts: [[u8; 16]; 4] = [
            [
                0x6b, 0xc1, 0xbe, 0xe2, 0x2e, 0x40, 0x9f, 0x96, 0xe9, 0x3d, 0x7e, 0x11, 0x73, 0x93,
                0x17, 0x2a,
            ],
            [
                0xae, 0x2d, 0x8a, 0x57, 0x1e, 0x03, 0xac, 0x9c, 0x9e, 0xb7, 0x6f, 0xac, 0x45, 0xaf,
                0x8e, 0x51,
            ],
            [
                0x30, 0xc8, 0x1c, 0x46, 0xa3, 0x5c, 0xe4, 0x11, 0xe5, 0xfb, 0xc1, 0x19, 0x1a, 0x0a,
                0x52, 0xef,
            ],
            [
                0xf6, 0x9f, 0x24, 0x45, 0xdf, 0x4f, 0x9b, 0x17, 0xad, 0x2b, 0x41, 0x7b, 0xe6, 0x6c,
                0x37, 0x10,
            ],
        ];
        let cts: [[u8; 16]; 4] = [
            [
                0x3a, 0xd7, 0x7b, 0xb4, 0x0d, 0x7a, 0x36, 0x60, 0xa8, 0x9e, 0xca, 0xf3, 0x24, 0x66,
                0xef, 0x97,
            ],
            [
                0xf5, 0xd3, 0xd5, 0x85, 0x03, 0xb9, 0x69, 0x9d, 0xe7, 0x85, 0x89, 0x5a, 0x96, 0xfd,
                0xba, 0xaf,
            ],
            [
                0x43, 0xb1, 0xcd, 0x7f, 0x59, 0x8e, 0xce, 0x23, 0x88, 0x1b, 0x00, 0xe3, 0xed, 0x03,
                0x06, 0x88,
            ],
            [
                0x7b, 0x0c, 0x78, 0x5e, 0x27, 0xe8, 0xad, 0x3f, 0x82, 0x23, 0x20, 0x71, 0x04, 0x72,
                0x5d, 0xd4,
            ],
        ];
        let aes = FixedKeyAes::new(key);
        // 12 blocks so the 8-wide pipeline and its tail are both exercised.
        let mut blocks: Vec<Block> = (0..12).map(|i| Block::from_bytes(pts[i % 4])).collect();
        aes.encrypt_blocks(&mut blocks);
        for (i, b) in blocks.iter().enumerate() {
            assert_eq!(b.to_bytes(), cts[i % 4], "block {i}");
        }
    }

    #[test]
    fn fixed_key_is_the_documented_digest() {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(b"pibench fixed-key AES");
        assert_eq!(FIXED_KEY[..], digest[..16]);
    }

    #[test]
    fn tccr_batch_matches_single() {
        let aes = &*FIXED_KEY_AES;
        let xs: Vec<Block> = (0..19u128)
            .map(|i| Block(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834)))
            .collect();
        let tweaks: Vec<Block> = (0..19u128).map(Block).collect();
        let mut batch = xs.clone();
        let mut scratch = vec![Block::ZERO; xs.len()];
        aes.tccr_batch(&tweaks, &mut batch, &mut scratch);
        for k in 0..xs.len() {
            assert_eq!(batch[k], aes.tccr(tweaks[k], xs[k]));
        }
        // Distinct tweaks give distinct outputs for the same input.
        assert_ne!(aes.tccr(Block(1), xs[3]), aes.tccr(Block(2), xs[3]));
    }
}
