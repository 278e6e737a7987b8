//! Fixed-key AES-128 and the correlation-robust hashes of Guo, Katz, Wang and Yu (2020,
//! eprint 2019/074) built on it.
//!
//! The `aes` crate detects AES-NI at run time and pipelines eight blocks at a time; where the
//! CPU has VAES and AVX-512, the batch entry points run [`vaes`](super::vaes) instead, four
//! blocks per instruction. Every batch entry point hands whole slices on so the pipelines stay
//! full.

use std::sync::LazyLock;

use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use aes::Aes128;

use super::Block;

/// AES-128 under a key fixed for the life of the process: the random permutation π.
#[derive(Clone)]
pub struct FixedKeyAes {
    cipher: Aes128,
    /// The same key for the VAES passes, where the CPU has them (wiped on drop: a
    /// [`Prg`](super::Prg) or control PRF keys this type with a secret).
    #[cfg(target_arch = "x86_64")]
    wide: Option<super::vaes::RoundKeys>,
}

impl Drop for FixedKeyAes {
    // The `aes` crate wipes its own key schedule (its `zeroize` feature); the VAES copy is
    // wiped here.
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        if let Some(keys) = &mut self.wide {
            keys.wipe();
        }
    }
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
            #[cfg(target_arch = "x86_64")]
            wide: super::vaes::RoundKeys::for_key(key),
        }
    }

    /// The VAES round keys of this key, where the CPU has VAES and AVX-512.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn wide(&self) -> Option<&super::vaes::RoundKeys> {
        self.wide.as_ref()
    }

    /// π(x) for one block.
    #[inline]
    pub fn encrypt(&self, x: Block) -> Block {
        let mut b = [x];
        self.encrypt_blocks(&mut b);
        b[0]
    }

    /// π applied in place to every block; the AES pipeline processes eight at a time (32 on
    /// VAES).
    #[inline]
    pub fn encrypt_blocks(&self, blocks: &mut [Block]) {
        #[cfg(target_endian = "big")]
        compile_error!("pibench assumes a little-endian target");
        #[cfg(target_arch = "x86_64")]
        if let Some(k) = self.wide.as_ref().filter(|_| blocks.len() > 1) {
            k.encrypt_blocks(blocks);
            return;
        }
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

    /// `xs[k] ← tccr(tweaks[k], xs[k])` for every k, in two pipelined AES passes (one fused
    /// pass on VAES, the middle values kept in registers).
    ///
    /// `scratch` must be as long as `xs`; it may be overwritten, and holds AES states a caller
    /// hashing secrets wipes. Panics if the lengths differ, which is a programming error, never
    /// a consequence of input.
    #[inline]
    pub fn tccr_batch(&self, tweaks: &[Block], xs: &mut [Block], scratch: &mut [Block]) {
        assert!(tweaks.len() == xs.len() && scratch.len() == xs.len());
        #[cfg(target_arch = "x86_64")]
        if let Some(k) = &self.wide {
            k.tccr_blocks(tweaks, xs);
            return;
        }
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

    /// The block whose 16 bytes, in order, are the 32 hex digits `hex` (as the standards print
    /// their vectors).
    fn block(hex: &str) -> Block {
        let byte = |i: usize| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        Block::from_bytes(core::array::from_fn(byte))
    }

    /// FIPS-197 Appendix C.1: AES-128 known-answer test.
    #[test]
    fn fips197_known_answer() {
        let key = block("000102030405060708090a0b0c0d0e0f");
        let pt = block("00112233445566778899aabbccddeeff");
        let ct = block("69c4e0d86a7b0430d8cdb78070b4c55a");
        assert_eq!(FixedKeyAes::new(key).encrypt(pt), ct);
    }

    /// NIST SP 800-38A F.1.1 (ECB-AES128), all four blocks, through the batched path.
    #[test]
    fn sp800_38a_ecb_known_answer_batched() {
        let key = block("2b7e151628aed2a6abf7158809cf4f3c");
        let pts = [
            "6bc1bee22e409f96e93d7e117393172a",
            "ae2d8a571e03ac9c9eb76fac45af8e51",
            "30c81c46a35ce411e5fbc1191a0a52ef",
            "f69f2445df4f9b17ad2b417be66c3710",
        ];
        let cts = [
            "3ad77bb40d7a3660a89ecaf32466ef97",
            "f5d3d58503b9699de785895a96fdbaaf",
            "43b1cd7f598ece23881b00e3ed030688",
            "7b0c785e27e8ad3f8223207104725dd4",
        ];
        let aes = FixedKeyAes::new(key);
        // 12 blocks so the 8-wide pipeline and its tail are both exercised.
        let mut blocks: Vec<Block> = (0..12).map(|i| block(pts[i % 4])).collect();
        aes.encrypt_blocks(&mut blocks);
        for (i, b) in blocks.iter().enumerate() {
            assert_eq!(*b, block(cts[i % 4]), "block {i}");
        }
    }

    #[test]
    fn fixed_key_is_the_documented_digest() {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(b"pibench fixed-key AES");
        assert_eq!(FIXED_KEY[..], digest[..16]);
    }

    /// The VAES batch paths and the `aes` crate's (what a CPU without VAES runs) give the same
    /// blocks, at lengths around the VAES pass width.
    #[test]
    fn vaes_and_aes_crate_batches_agree() {
        let key = Block(0x2f2e_2d2c_2b2a_2928_2726_2524_2322_2120);
        let wide = FixedKeyAes::new(key);
        let mut narrow = FixedKeyAes::new(key);
        #[cfg(target_arch = "x86_64")]
        if let Some(mut k) = narrow.wide.take() {
            k.wipe();
        }
        for n in [0usize, 1, 2, 3, 4, 5, 31, 32, 33, 77] {
            let xs: Vec<Block> = (0..n as u128)
                .map(|i| Block(i * 0x9e37_79b9_7f4a + 5))
                .collect();
            let tweaks: Vec<Block> = (0..n as u128).map(|i| Block(i << 64 | 1)).collect();
            let mut scratch = vec![Block::ZERO; n];
            let (mut a, mut b) = (xs.clone(), xs.clone());
            wide.encrypt_blocks(&mut a);
            narrow.encrypt_blocks(&mut b);
            assert_eq!(a, b, "encrypt, {n} blocks");
            let (mut a, mut b) = (xs.clone(), xs.clone());
            wide.tccr_batch(&tweaks, &mut a, &mut scratch);
            narrow.tccr_batch(&tweaks, &mut b, &mut scratch);
            assert_eq!(a, b, "tccr, {n} blocks");
            let (mut a, mut b) = (xs.clone(), xs.clone());
            wide.cr_batch(&mut a, &mut scratch);
            narrow.cr_batch(&mut b, &mut scratch);
            assert_eq!(a, b, "cr, {n} blocks");
        }
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
