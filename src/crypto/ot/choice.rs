//! The receiver's choice bits, packed 64 to a `u64` word ([`ChoiceBits`]), and the one-bit
//! derandomization of chosen OTs from random ones (`choice_corrections` at the receiver,
//! `apply_choice_corrections` at the sender), computed a word of 64 OTs at a time.
//!
//! A ReLU site asks for `ℓ` choice bits per instance (its share's; `2ℓ` before protocol
//! version 7, with the mask's), 6.4 M for 100,000 ReLUs at ℓ = 64: held one `bool` each and
//! walked bit by bit on both sides of the OT, they cost the session milliseconds of serial work
//! between the OT extension and garbling. Packed, the client's shares are the words themselves
//! (ℓ = 64), and the corrections of a word of chosen OTs are one XOR.

use rayon::prelude::*;

use super::ChoicePattern;
use crate::crypto::Block;

/// Choice bits of one call of OTs, packed little-endian: OT `j`'s bit is bit `j % 64` of word
/// `j / 64`. The bits past [`ChoiceBits::len`] in the last word are zero. Secret (the
/// receiver's inputs, or the random bits its labels encode): wiped when dropped or cleared,
/// never printed.
#[derive(Clone, Default)]
pub struct ChoiceBits {
    words: Vec<u64>,
    len: usize,
}

/// The mask of the `k ≤ 64` low bits of a word.
#[inline]
pub(crate) fn low_bits(k: usize) -> u64 {
    if k >= 64 {
        u64::MAX
    } else {
        (1u64 << k) - 1
    }
}

impl ChoiceBits {
    /// No bits.
    pub fn new() -> Self {
        Self::default()
    }

    /// `len` bits, all zero.
    pub fn zeros(len: usize) -> Self {
        ChoiceBits {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    /// The bits of `bits`, in order.
    pub fn from_bools(bits: &[bool]) -> Self {
        let mut c = Self::zeros(bits.len());
        for (w, part) in c.words.iter_mut().zip(bits.chunks(64)) {
            *w = part
                .iter()
                .enumerate()
                .fold(0, |w, (i, &b)| w | (u64::from(b) << i));
        }
        c
    }

    /// The bits as `bool`s, in order.
    pub fn to_bools(&self) -> Vec<bool> {
        (0..self.len).map(|j| self.get(j)).collect()
    }

    /// Number of bits.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no bit.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Wipes the bits and empties the set, keeping its memory for reuse.
    pub fn clear(&mut self) {
        for w in &mut self.words {
            zeroize::Zeroize::zeroize(w);
        }
        self.words.clear();
        self.len = 0;
    }

    /// Makes room for `bits` bits in all, so that pushing up to them moves no secret bits to
    /// a new allocation and leaves none behind in a freed one.
    pub fn reserve(&mut self, bits: usize) {
        let words = bits.div_ceil(64);
        if words > self.words.capacity() {
            let mut v = Vec::with_capacity(words);
            v.extend_from_slice(&self.words);
            for w in &mut self.words {
                zeroize::Zeroize::zeroize(w);
            }
            self.words = v;
        }
    }

    /// Bit `j` (`j < len`).
    #[inline]
    pub fn get(&self, j: usize) -> bool {
        assert!(j < self.len, "choice bit {j} of {}", self.len);
        (self.words[j / 64] >> (j % 64)) & 1 == 1
    }

    /// Sets bit `j` (`j < len`) to `b`.
    #[inline]
    pub fn set(&mut self, j: usize, b: bool) {
        assert!(j < self.len, "choice bit {j} of {}", self.len);
        let w = &mut self.words[j / 64];
        *w = (*w & !(1 << (j % 64))) | (u64::from(b) << (j % 64));
    }

    /// Appends the `k ≤ 64` low bits of `w`, bit 0 first (the higher bits of `w` are ignored).
    #[inline]
    pub fn push_word(&mut self, w: u64, k: usize) {
        assert!(k <= 64, "{k} bits do not fit a word");
        let w = w & low_bits(k);
        if self.len + k > 64 * self.words.capacity() {
            // Doubling, as `Vec` would, but through `reserve`: the old buffer is wiped.
            self.reserve((self.len + k).max(128 * self.words.capacity()));
        }
        let off = self.len % 64;
        if off == 0 {
            if k > 0 {
                self.words.push(w);
            }
        } else {
            let last = self.words.len() - 1;
            self.words[last] |= w << off;
            if off + k > 64 {
                self.words.push(w >> (64 - off));
            }
        }
        self.len += k;
    }

    /// Bits `at..at + k` (`k ≤ 64`, inside the set) as the low bits of a word.
    #[inline]
    pub fn word_at(&self, at: usize, k: usize) -> u64 {
        assert!(
            k <= 64 && at + k <= self.len,
            "bits {at}..+{k} of {}",
            self.len
        );
        if k == 0 {
            return 0;
        }
        let (i, off) = (at / 64, at % 64);
        let mut w = self.words[i] >> off;
        if off + k > 64 {
            w |= self.words[i + 1] << (64 - off);
        }
        w & low_bits(k)
    }

    /// Overwrites bits `at..at + k` (`k ≤ 64`, inside the set) with the `k` low bits of `w`.
    #[inline]
    pub fn set_word_at(&mut self, at: usize, k: usize, w: u64) {
        assert!(
            k <= 64 && at + k <= self.len,
            "bits {at}..+{k} of {}",
            self.len
        );
        if k == 0 {
            return;
        }
        let w = w & low_bits(k);
        let (i, off) = (at / 64, at % 64);
        let m = low_bits(k);
        self.words[i] = (self.words[i] & !(m << off)) | (w << off);
        if off + k > 64 {
            let (m1, w1) = (m >> (64 - off), w >> (64 - off));
            self.words[i + 1] = (self.words[i + 1] & !m1) | w1;
        }
    }

    /// Copies `src`'s bits `from..from + k` to bits `at..at + k` of this set (both ranges
    /// inside their sets).
    pub fn copy_from(&mut self, at: usize, src: &ChoiceBits, from: usize, k: usize) {
        let mut done = 0;
        while done < k {
            let step = (k - done).min(64);
            self.set_word_at(at + done, step, src.word_at(from + done, step));
            done += step;
        }
    }

    /// Resizes to `len` bits, new bits zero.
    pub fn resize(&mut self, len: usize) {
        if len < self.len {
            for w in &mut self.words[len.div_ceil(64)..] {
                zeroize::Zeroize::zeroize(w);
            }
        }
        self.reserve(len);
        self.words.resize(len.div_ceil(64), 0);
        self.len = len;
        if let Some(last) = self.words.last_mut() {
            *last &= low_bits(len - (len - 1) / 64 * 64);
        }
    }

    /// The packed words (`⌈len/64⌉`, the bits past `len` zero).
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// The packed words, for writers that keep the bits past `len` zero.
    pub(crate) fn words_mut(&mut self) -> &mut [u64] {
        &mut self.words
    }
}

impl Drop for ChoiceBits {
    fn drop(&mut self) {
        self.clear();
    }
}

impl std::fmt::Debug for ChoiceBits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChoiceBits")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// Reads the `k ≤ 64` bits of `d` (little-endian) from bit `at` on.
#[inline]
fn read_bits(d: &[u8], at: usize, k: usize) -> u64 {
    if at.is_multiple_of(8) {
        let mut w = [0u8; 8];
        let bytes = k.div_ceil(8);
        w[..bytes].copy_from_slice(&d[at / 8..at / 8 + bytes]);
        return u64::from_le_bytes(w) & low_bits(k);
    }
    (0..k).fold(0, |w, i| {
        let b = at + i;
        w | (u64::from((d[b / 8] >> (b % 8)) & 1) << i)
    })
}

/// The receiver's side of derandomizing OTs `j0..j0 + n` of a call (`j0` counted in the call,
/// so that `pattern` applies) whose random choice bits are `random` (packed as [`ChoiceBits`],
/// bit `j` for OT `j0 + j`): where `pattern` marks an OT chosen, the returned corrections carry
/// `random ⊕ choice`, one bit each, packed little-endian in order; elsewhere the choice bit is
/// overwritten with the random one. `choices` holds the `n` bits the same way (the bits past
/// `n` in its last word are left zero). The sender applies the corrections with
/// [`apply_choice_corrections`]. Empty when no OT is chosen. A word of 64 OTs that are all
/// chosen or all random costs one XOR; mixed words go bit by bit.
pub(crate) fn choice_corrections(
    pattern: ChoicePattern,
    j0: usize,
    n: usize,
    random: &[u64],
    choices: &mut [u64],
) -> Vec<u8> {
    let mut d = vec![0u8; pattern.count_in(j0, n).div_ceil(8)];
    let mut at = 0;
    for (w, (c, &r)) in choices
        .iter_mut()
        .zip(random)
        .take(n.div_ceil(64))
        .enumerate()
    {
        let k = (n - 64 * w).min(64);
        let used = low_bits(k);
        let cm = pattern.chosen_mask(j0 + 64 * w) & used;
        let x = (r ^ *c) & cm;
        if cm == used && at % 8 == 0 {
            // A whole word of chosen OTs on a byte of `d` (the last word may end early).
            let bytes = k.div_ceil(8);
            d[at / 8..at / 8 + bytes].copy_from_slice(&x.to_le_bytes()[..bytes]);
            at += k;
        } else {
            let mut m = cm;
            while m != 0 {
                let i = m.trailing_zeros();
                d[at / 8] |= (((x >> i) & 1) as u8) << (at % 8);
                at += 1;
                m &= m - 1;
            }
        }
        *c = ((*c & cm) | (r & !cm)) & used;
    }
    d
}

/// OTs below which [`apply_choice_corrections`] runs on the calling thread.
const PAR_APPLY_OTS: usize = 1 << 18;

/// The sender's side of [`choice_corrections`] for OTs `j0..j0 + out.len()` of a call, whose
/// first correction bit is bit `at` of `d`: each chosen OT's zero-label `out[j]` becomes
/// `out[j] ⊕ d·Δ` for its correction bit `d`, so that the receiver's label is that of its
/// chosen bit; the random OTs' labels are not touched. Large calls are spread over the rayon
/// pool.
pub(crate) fn apply_choice_corrections(
    pattern: ChoicePattern,
    j0: usize,
    d: &[u8],
    at: usize,
    delta: Block,
    out: &mut [Block],
) {
    if out.len() < PAR_APPLY_OTS {
        return apply_range(pattern, j0, d, at, delta, out);
    }
    // Pieces of whole words; each finds its first correction bit by counting.
    out.par_chunks_mut(PAR_APPLY_OTS / 4)
        .enumerate()
        .for_each(|(p, piece)| {
            let start = p * (PAR_APPLY_OTS / 4);
            let at = at + pattern.count_in(j0, start);
            apply_range(pattern, j0 + start, d, at, delta, piece);
        });
}

/// [`apply_choice_corrections`] on one thread, for OTs `j0..` whose first correction bit is
/// bit `at` of `d`.
fn apply_range(
    pattern: ChoicePattern,
    j0: usize,
    d: &[u8],
    mut at: usize,
    delta: Block,
    out: &mut [Block],
) {
    for (w, qs) in out.chunks_mut(64).enumerate() {
        // Words of random OTs are not touched (half the labels, for the protocol's pattern).
        let Some(bits) = flip_word(pattern, j0 + 64 * w, qs.len(), d, &mut at) else {
            continue;
        };
        for (i, q) in qs.iter_mut().enumerate() {
            *q ^= delta.select((bits >> i) & 1 == 1);
        }
    }
}

/// The flips of the `k ≤ 64` OTs from `j` on whose corrections start at bit `*at` of `d`
/// (advanced past them); `None` when none of them is chosen.
#[inline]
fn flip_word(pattern: ChoicePattern, j: usize, k: usize, d: &[u8], at: &mut usize) -> Option<u64> {
    let cm = pattern.chosen_mask(j) & low_bits(k);
    if cm == 0 {
        return None;
    }
    if cm == low_bits(k) {
        let b = read_bits(d, *at, k);
        *at += k;
        return Some(b);
    }
    let (mut m, mut b) = (cm, 0u64);
    while m != 0 {
        let i = m.trailing_zeros();
        b |= u64::from((d[*at / 8] >> (*at % 8)) & 1) << i;
        *at += 1;
        m &= m - 1;
    }
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Prg;
    use rand_core::RngCore;

    /// The definition, one OT at a time: the reference the word-wise code is checked against.
    fn corrections_bitwise(
        pattern: ChoicePattern,
        j0: usize,
        random: &[bool],
        choices: &mut [bool],
    ) -> Vec<u8> {
        let mut d = vec![0u8; pattern.count_in(j0, choices.len()).div_ceil(8)];
        let mut c = 0;
        for (j, bj) in choices.iter_mut().enumerate() {
            if pattern.is_chosen(j0 + j) {
                d[c / 8] |= u8::from(random[j] ^ *bj) << (c % 8);
                c += 1;
            } else {
                *bj = random[j];
            }
        }
        d
    }

    fn apply_bitwise(pattern: ChoicePattern, j0: usize, d: &[u8], delta: Block, out: &mut [Block]) {
        let mut c = 0;
        for (j, q) in out.iter_mut().enumerate() {
            if pattern.is_chosen(j0 + j) {
                *q ^= delta.select((d[c / 8] >> (c % 8)) & 1 == 1);
                c += 1;
            }
        }
    }

    fn random_bools(n: usize, rng: &mut Prg) -> Vec<bool> {
        (0..n).map(|_| rng.next_u32() & 1 == 1).collect()
    }

    #[test]
    fn packed_bits_push_read_write_and_copy() {
        let mut rng = Prg::from_seed(Block(3));
        let bools = random_bools(1000, &mut rng);
        let c = ChoiceBits::from_bools(&bools);
        assert_eq!((c.len(), c.to_bools()), (1000, bools.clone()));
        assert_eq!(c.words().len(), 16);
        assert_eq!(c.words()[15] >> (1000 - 960), 0, "bits past len are zero");
        // Pushing words of every width rebuilds the same bits.
        let mut p = ChoiceBits::new();
        p.reserve(500);
        assert!(p.words.capacity() >= 8);
        let mut at = 0;
        for k in [64usize, 3, 61, 64, 1, 0, 40, 64, 64, 7] {
            p.push_word(c.word_at(at, k) | !low_bits(k), k);
            at += k;
        }
        assert_eq!(p.to_bools(), bools[..at]);
        assert_eq!(p.words().last().unwrap() >> (at % 64), 0);
        // Unaligned writes and copies.
        let mut q = ChoiceBits::zeros(1000);
        q.copy_from(37, &c, 5, 900);
        for j in 0..1000 {
            let want = (37..937).contains(&j) && bools[j - 32];
            assert_eq!(q.get(j), want, "bit {j}");
        }
        q.set(3, true);
        q.set(37, !bools[5]);
        assert!(q.get(3) && q.get(37) != bools[5]);
        q.resize(100);
        assert_eq!(q.words().len(), 2);
        assert_eq!(q.words()[1] >> 36, 0);
        q.resize(130);
        assert!(!q.get(129));
        q.clear();
        assert!(q.is_empty());
        assert_eq!(format!("{c:?}"), "ChoiceBits { len: 1000, .. }");
    }

    /// The word-wise corrections and their application equal the bit-at-a-time definition, for
    /// the protocol's patterns and others, at offsets and lengths that do and do not fill
    /// words, on one thread and spread over the pool.
    #[test]
    fn corrections_by_word_equal_the_bitwise_ones() {
        let mut rng = Prg::from_seed(Block(11));
        let delta = Block(0xfeed_f00d_0000_0001_1234_5678_9abc_def1);
        let patterns = [
            ChoicePattern {
                period: 128,
                chosen: 64,
            },
            ChoicePattern {
                period: 192,
                chosen: 128,
            },
            ChoicePattern {
                period: 64,
                chosen: 32,
            },
            ChoicePattern::ALL_CHOSEN,
            ChoicePattern::ALL_RANDOM,
            ChoicePattern {
                period: 10,
                chosen: 3,
            },
        ];
        let sizes = [
            (0usize, 1000usize),
            (1 << 14, 4096),
            (64, 200),
            (5, 300),
            (0, PAR_APPLY_OTS + 1000),
        ];
        for pattern in patterns {
            for (j0, n) in sizes {
                let (random, given) = (random_bools(n, &mut rng), random_bools(n, &mut rng));
                let mut c1 = given.clone();
                let d1 = corrections_bitwise(pattern, j0, &random, &mut c1);
                let r = ChoiceBits::from_bools(&random);
                let mut c2 = ChoiceBits::from_bools(&given);
                let d2 = choice_corrections(pattern, j0, n, r.words(), c2.words_mut());
                assert_eq!(d1, d2, "{pattern:?} j0 {j0} n {n}");
                assert_eq!(c1, c2.to_bools(), "{pattern:?} j0 {j0} n {n}");
                if n % 64 != 0 {
                    assert_eq!(c2.words()[n / 64] >> (n % 64), 0, "bits past the call");
                }
                let mut q1 = vec![Block::ZERO; n];
                rng.fill_blocks(&mut q1);
                let mut q2 = q1.clone();
                let mut q3 = q1.clone();
                apply_bitwise(pattern, j0, &d1, delta, &mut q1);
                apply_choice_corrections(pattern, j0, &d1, 0, delta, &mut q2);
                assert!(q1 == q2, "{pattern:?} j0 {j0} n {n}");
                // In two pieces, the second from the correction bit where the first ends.
                let cut = n / 3 + 1;
                let (a, b) = q3.split_at_mut(cut.min(n));
                apply_choice_corrections(pattern, j0, &d1, 0, delta, a);
                let at = pattern.count_in(j0, a.len());
                apply_choice_corrections(pattern, j0 + a.len(), &d1, at, delta, b);
                assert!(q1 == q3, "pieces: {pattern:?} j0 {j0} n {n}");
            }
        }
    }
}
