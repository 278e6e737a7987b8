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
        let tables = tables(n);
        for part in [0, 1] {
            convolve(p, part, &tables);
        }
        expand(s, p, &tables);
    }
}

/// What the code with `n` outputs derives from its public stream, built once per `n` and
/// process ([`tables`]) and shared: deriving it costs about as much as applying it.
struct Tables {
    /// Per convolution pass, what [`convolve_avx512`] reads (empty where it does not run).
    conv: [ConvTable; 2],
    /// The expander's positions in row order ([`expander_positions`]).
    expander: Positions,
}

/// The expander's positions, as `u16` where every position fits (every chunk up to `2^16`
/// outputs): the expander streams them once per compression beside its random reads, and
/// half the bytes measured about 5 % faster at `2^16`.
enum Positions {
    /// For codes of at most `2^16` outputs.
    Short(Vec<u16>),
    /// For longer codes.
    Long(Vec<u32>),
}

/// One convolution pass of [`convolve_avx512`] on `n` blocks: the [`group_masks`] of the
/// grouped positions `0..masks.len()`, then the coefficient words of the rest.
#[derive(Default)]
struct ConvTable {
    /// Per position of `0..masks.len()` (a multiple of four), its [`group_masks`] word.
    masks: Vec<u64>,
    /// The coefficient words of the positions after them, which take [`push_wrapping`].
    tail: Vec<u32>,
}

impl ConvTable {
    /// The table of pass `part` on `n` blocks, `n ≥ WINDOW + 4`.
    fn new(n: usize, part: u128) -> Self {
        let grouped = (n - WINDOW - 4) / 4 * 4 + 4;
        let mut t = ConvTable {
            masks: vec![0; grouped],
            tail: Vec::with_capacity(n - grouped),
        };
        let mut prg = stream(n, part);
        let mut coef = [Block::ZERO; BATCH / 4];
        for start in (0..n).step_by(BATCH) {
            prg.fill_blocks(&mut coef);
            let cw = blocks_as_words(&coef);
            let (end, stop) = ((start + BATCH).min(n), (start + BATCH).min(grouped));
            if start < stop {
                window_masks(cw, start, &mut t.masks[start..stop]);
            }
            t.tail
                .extend((stop.max(start)..end).map(|i| coefficient(cw, i - start)));
        }
        group_masks(&mut t.masks);
        t
    }
}

/// The shared [`Tables`] of the code with `n` outputs.
fn tables(n: usize) -> std::sync::Arc<Tables> {
    use std::sync::{Arc, Mutex};
    static TABLES: Mutex<Vec<(usize, Arc<Tables>)>> = Mutex::new(Vec::new());
    if let Some((_, t)) = TABLES
        .lock()
        .ok()
        .and_then(|g| g.iter().find(|(k, _)| *k == n).cloned())
    {
        return t;
    }
    #[cfg(target_arch = "x86_64")]
    let conv = if n >= WINDOW + 4 && has_avx512() {
        [ConvTable::new(n, 0), ConvTable::new(n, 1)]
    } else {
        Default::default()
    };
    #[cfg(not(target_arch = "x86_64"))]
    let conv = Default::default();
    let positions = expander_positions(n, n, &mut stream(n, 2));
    let expander = match positions.iter().map(|&j| u16::try_from(j)).collect() {
        Ok(short) => Positions::Short(short),
        Err(_) => Positions::Long(positions),
    };
    let t = Arc::new(Tables { conv, expander });
    if let Ok(mut g) = TABLES.lock() {
        // Chunk sizes are few (one per tree depth); keep every code's tables.
        g.push((n, t.clone()));
    }
    t
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

/// Convolution pass `part` over `x` (`n` blocks), its coefficients from the code's stream of
/// that part (24 bits of one 32-bit word per position): [`convolve_avx512`] where `tables`
/// has its masks (the CPU has AVX-512F and AVX-512DQ and `x` holds a register window), else
/// [`convolve_portable`]. Both compute the same thing (`convolution_matches_its_definition`).
fn convolve(x: &mut [Block], part: usize, tables: &Tables) {
    let t = &tables.conv[part];
    #[cfg(target_arch = "x86_64")]
    if !t.masks.is_empty() {
        // SAFETY: the masks exist only if the CPU has the features `convolve_avx512` enables.
        return unsafe { convolve_avx512(x, t) };
    }
    convolve_portable(x, &mut stream(x.len(), part as u128))
}

/// Position `i`'s update with its window taken modulo `x.len()`: the definition, used where
/// the window reaches past the end.
#[inline]
fn push_wrapping(x: &mut [Block], i: usize, c: u32) {
    let m = x.len();
    let xi = x[i].0;
    for b in 0..CONV_WIDTH {
        x[(i + 1 + b) % m].0 ^= xi & 0u128.wrapping_sub(((c >> b) & 1) as u128);
    }
    x[(i + 1 + CONV_WIDTH) % m].0 ^= xi;
}

/// The 32-bit coefficient word of position `k` of a batch.
#[inline]
fn coefficient(cw: &[u64], k: usize) -> u32 {
    (cw[k / 2] >> (32 * (k % 2))) as u32
}

/// [`convolve`] without SIMD intrinsics.
///
/// Position `i` adds itself to the 25 positions after it, which the next position reads at
/// once: the loop is bound by how fast a store reaches the next load. Updating the window in
/// place at its own offset makes every load straddle two earlier stores, which the CPU cannot
/// forward (a stall of its own per load). So the window is widened to the seven 64-byte-aligned
/// four-block groups that cover it and each group is updated whole, with the coefficients
/// shifted by the window's offset in its first group: every location is then always stored and
/// loaded at the same address and size. The few positions at the ends take the plain path.
fn convolve_portable(x: &mut [Block], prg: &mut Prg) {
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
            let c = coefficient(cw, i - start);
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
                push_wrapping(x, i, c);
            }
        }
    }
}

/// Blocks of the register window of [`convolve_avx512`]: seven registers of four blocks hold
/// the positions a group of four updates besides itself (offsets up to 3 + 25 = 28).
const WINDOW: usize = 28;

/// Whether this CPU runs [`convolve_avx512`].
#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512dq")
}

/// The window bits of a batch's positions: for position `first + k` (lane `j = (first + k) mod
/// 4` of its group) bit `j + 1 + b` is set for each offset it updates, counted from its
/// group's first block, so that nibble `g` covers the window's register `g` (bit 28 at most).
/// [`group_masks`] turns them into what [`convolve_groups`] reads.
fn window_masks(cw: &[u64], first: usize, masks: &mut [u64]) {
    for (k, mask) in masks.iter_mut().enumerate() {
        let c = u64::from(coefficient(cw, k));
        *mask = ((c & 0xff_ffff) | 1 << CONV_WIDTH) << ((first + k) % 4 + 1);
    }
}

/// Rewrites the [`window_masks`] of each group of four positions into the words
/// [`convolve_groups`] reads.
///
/// First in terms of the group's blocks *as they stand when the group starts*: the final block
/// of lane `j` is its start value plus the final blocks of the earlier lanes its bits pick, a
/// unit triangle, so each final block is a fixed XOR of start values and so is every update
/// the group makes. Lane `k`'s word becomes the sum of the windows of the lanes its start
/// value reaches (itself and, through the triangle, later lanes), and the four broadcasts
/// need no lane to wait for another. Only the last lane's offset 28 (register 7) stays as the
/// final block's own bit: [`convolve_groups`] adds it from the final block.
///
/// Then as four `u16` byte offsets into [`MASK_PAIRS`], the masks of register pairs
/// `(2s, 2s + 1)` (lanes 0 to 2) or `(2s + 1, 2s + 2)` (lane 3) for `s < 4`. The
/// coefficients are public.
fn group_masks(masks: &mut [u64]) {
    for group in masks.chunks_exact_mut(4) {
        let bits = [group[0], group[1], group[2], group[3]];
        for (k, word) in group.iter_mut().enumerate() {
            let mut reach = bits[k];
            for (j, b) in bits.iter().enumerate().skip(k + 1) {
                if (reach >> j) & 1 == 1 {
                    reach ^= b;
                }
            }
            let first = usize::from(k == 3);
            *word = (0..4).fold(0, |w, s| {
                let pair = (reach >> (4 * (first + 2 * s))) & 0xff;
                w | (pair * 128) << (16 * s)
            });
        }
    }
}

/// The AND masks of every pair of four-block registers: entry `v` (128 bytes at `128 v`) sets
/// block `q` of the first register where bit `q` of `v` is set and block `q` of the second
/// where bit `4 + q` is. Aligned so that each register's mask is one cache line.
#[repr(C, align(64))]
struct MaskPairs([[u64; 16]; 256]);

/// See [`MaskPairs`].
static MASK_PAIRS: MaskPairs = {
    let mut t = [[0u64; 16]; 256];
    let mut v = 0;
    while v < 256 {
        let mut q = 0;
        while q < 16 {
            // Qwords 2b and 2b + 1 of a register are block b.
            t[v][q] = 0u64.wrapping_sub(((v >> (q / 2)) & 1) as u64);
            q += 1;
        }
        v += 1;
    }
    MaskPairs(t)
};

/// [`convolve`] on AVX-512, the window of the current group in registers.
///
/// The portable path is bound by each position's stores reaching the next position's loads.
/// Here the 32 blocks from the current group of four positions on live in eight registers:
/// the group's four start blocks are broadcast and each is ANDed with a mask and XORed into the
/// registers it reaches ([`group_masks`]); then the group's register is final and stored, the
/// window moves by a register and the next four blocks are loaded. Memory sees one load and
/// one store per block, and the masks stream from `t`. Positions whose window would reach
/// past the end run [`push_wrapping`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
fn convolve_avx512(x: &mut [Block], t: &ConvTable) {
    let grouped = t.masks.len();
    assert_eq!(
        grouped + t.tail.len(),
        x.len(),
        "a table for {} blocks",
        x.len()
    );
    convolve_groups(x, &t.masks);
    for (i, &c) in (grouped..).zip(&t.tail) {
        push_wrapping(x, i, c);
    }
}

/// The grouped positions `0..masks.len()` (a multiple of 4, with `masks.len() + WINDOW ≤
/// x.len()`) of [`convolve_avx512`], `masks[i]` the [`group_masks`] word of position `i`. The
/// window is loaded from `x` at the start and stored back at the end; nothing is called in
/// between, so the registers holding secret blocks are not spilled to the stack.
///
/// Each update is one three-input logic op (`w ^= b & mask`) with its mask read from
/// [`MASK_PAIRS`]: write masks would need a mask-register load per update, which measured
/// slower than the whole update (about one per cycle). The four broadcasts read the group's
/// start, so the chain from one group to the next is a broadcast and the four updates of the
/// next register, not four broadcasts in a row.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
fn convolve_groups(x: &mut [Block], masks: &[u64]) {
    use core::arch::x86_64::*;
    let stop = masks.len();
    assert!(stop.is_multiple_of(4) && stop + WINDOW <= x.len());
    let ptr = x.as_mut_ptr();
    let offsets = masks.as_ptr().cast::<u16>();
    let table = MASK_PAIRS.0.as_ptr().cast::<u8>();
    // SAFETY: every load and store of `x` below covers four blocks from `4g` with `g < 7`,
    // from `base + WINDOW` with `base < stop`, or from `stop + 4g` with `g < 7`: all inside
    // `x` as `stop + WINDOW ≤ x.len()` (asserted). They are unaligned. The offsets read are
    // the `4 · stop` `u16` of `masks`; each is `128 v` with `v < 256` ([`group_masks`]), so the
    // two aligned 64-byte loads at it and 64 bytes on lie in `MASK_PAIRS`.
    unsafe {
        let mut w: [__m512i; 8] =
            core::array::from_fn(|g| _mm512_loadu_si512(ptr.add(4 * g.min(6)).cast()));
        let mut base = 0;
        while base < stop {
            w[7] = _mm512_loadu_si512(ptr.add(base + WINDOW).cast());
            let mk = offsets.add(4 * base);
            let b = [
                _mm512_shuffle_i64x2::<0x00>(w[0], w[0]),
                _mm512_shuffle_i64x2::<0x55>(w[0], w[0]),
                _mm512_shuffle_i64x2::<0xaa>(w[0], w[0]),
                _mm512_shuffle_i64x2::<0xff>(w[0], w[0]),
            ];
            // Lane k's pair s updates register g (and g + 1 unless it is a single).
            macro_rules! pair {
                ($k:literal, $s:literal, $g:literal) => {{
                    let o = usize::from(*mk.add(4 * $k + $s));
                    let m = _mm512_load_si512(table.add(o).cast());
                    w[$g] = _mm512_ternarylogic_epi64::<0x78>(w[$g], b[$k], m);
                }};
                ($k:literal, $s:literal, $g:literal, $h:literal) => {{
                    pair!($k, $s, $g);
                    let o = usize::from(*mk.add(4 * $k + $s)) + 64;
                    let m = _mm512_load_si512(table.add(o).cast());
                    w[$h] = _mm512_ternarylogic_epi64::<0x78>(w[$h], b[$k], m);
                }};
            }
            // Register 1 (the next group) first: it is on the chain.
            pair!(0, 0, 0, 1);
            pair!(1, 0, 0, 1);
            pair!(2, 0, 0, 1);
            pair!(3, 0, 1, 2);
            pair!(0, 1, 2, 3);
            pair!(1, 1, 2, 3);
            pair!(2, 1, 2, 3);
            pair!(3, 1, 3, 4);
            pair!(0, 2, 4, 5);
            pair!(1, 2, 4, 5);
            pair!(2, 2, 4, 5);
            pair!(3, 2, 5, 6);
            pair!(0, 3, 6);
            pair!(1, 3, 6);
            pair!(2, 3, 6);
            // Offset 28 from the last lane's final block.
            let last = _mm512_shuffle_i64x2::<0xff>(w[0], w[0]);
            let o = usize::from(*mk.add(4 * 3 + 3));
            let m = _mm512_load_si512(table.add(o).cast());
            w[7] = _mm512_ternarylogic_epi64::<0x78>(w[7], last, m);
            _mm512_storeu_si512(ptr.add(base).cast(), w[0]);
            w = [w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[7]];
            base += 4;
        }
        for (g, r) in w[..7].iter().enumerate() {
            _mm512_storeu_si512(ptr.add(stop + 4 * g).cast(), *r);
        }
    }
}

/// The expander's positions in row order, [`EXPANDER_WEIGHT`] per row (`rows` rows), each from
/// one 32-bit word of `prg` scaled into `0..m` (no bias when `m` is a power of two, as for
/// every chunk; below 2^-12 for any m ≤ 2^20: the code is public and its analysis does not
/// need exactly uniform positions).
fn expander_positions(rows: usize, m: usize, prg: &mut Prg) -> Vec<u32> {
    let mut positions = Vec::with_capacity(rows * EXPANDER_WEIGHT);
    let mut raw = [Block::ZERO; BATCH * EXPANDER_WEIGHT / 4];
    for first in (0..rows).step_by(BATCH) {
        prg.fill_blocks(&mut raw);
        let words = blocks_as_words(&raw);
        let k = (rows - first).min(BATCH) * EXPANDER_WEIGHT;
        positions.extend((0..k).map(|e| {
            let r = u64::from(coefficient(words, e));
            ((r * m as u64) >> 32) as u32
        }));
    }
    positions
}

/// `s[i] ^= ⊕_k p[j_{i,k}]` for [`EXPANDER_WEIGHT`] positions per row drawn from the code's
/// public stream ([`Tables::expander`]), row by row.
///
/// A chunk's halves fit the L2 cache together (2 × 1 MiB at the largest chunk, see
/// [`MAX_DEPTH`](super::MAX_DEPTH)), so the random reads of `p` hit it and the rows stream; a
/// cache-blocked order (tiles of rows and positions) measured slower at every chunk size, as
/// it streams its plan twice the size and rereads `s` per tile.
fn expand(s: &mut [Block], p: &[Block], tables: &Tables) {
    match &tables.expander {
        Positions::Short(js) => expand_rows(s, p, js),
        Positions::Long(js) => expand_rows(s, p, js),
    }
}

/// [`expand`] with the positions in `J`.
fn expand_rows<J: Copy + Into<u32>>(s: &mut [Block], p: &[Block], positions: &[J]) {
    assert_eq!(s.len(), p.len());
    assert_eq!(positions.len(), s.len() * EXPANDER_WEIGHT);
    for (row, js) in s.iter_mut().zip(positions.chunks_exact(EXPANDER_WEIGHT)) {
        let mut acc = row.0;
        for &j in js {
            acc ^= p[j.into() as usize].0;
        }
        row.0 = acc;
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

    /// One convolution pass by its definition: each position, in order, added to the next
    /// positions its coefficient bits pick and to the one after them, wrapping.
    fn convolution_definition(x: &mut [Block], part: u128) {
        let n = x.len();
        let mut prg = stream(n, part);
        let mut coef = [Block::ZERO; BATCH / 4];
        for i in 0..n {
            if i % BATCH == 0 {
                prg.fill_blocks(&mut coef);
            }
            let k = i % BATCH;
            let c = (blocks_as_words(&coef)[k / 2] >> (32 * (k % 2))) as u32;
            let xi = x[i];
            for b in 0..CONV_WIDTH {
                if (c >> b) & 1 == 1 {
                    x[(i + 1 + b) % n] ^= xi;
                }
            }
            x[(i + 1 + CONV_WIDTH) % n] ^= xi;
        }
    }

    /// Lengths around the register window, the coefficient batch and the wrap.
    const CONV_LENGTHS: [usize; 14] = [
        27,
        31,
        32,
        33,
        35,
        36,
        40,
        61,
        255,
        256,
        257,
        300,
        1000,
        2 * BATCH + WINDOW + 3,
    ];

    /// Both convolution paths (and the dispatcher) compute the definition at every length
    /// above and every alignment of the slice.
    #[test]
    fn convolution_matches_its_definition() {
        for n in CONV_LENGTHS {
            let mut buf = random(n + 3, 5);
            for skew in 0..4 {
                let x = &mut buf[skew..skew + n];
                let mut want = x.to_vec();
                convolution_definition(&mut want, 1);
                let mut portable = x.to_vec();
                convolve_portable(&mut portable, &mut stream(n, 1));
                assert_eq!(portable, want, "portable n {n} skew {skew}");
                convolve(x, 1, &tables(n));
                assert_eq!(x, &want[..], "dispatched n {n} skew {skew}");
            }
        }
    }

    /// The AVX-512 convolution equals the portable one at every length above and every
    /// alignment (where the CPU has it).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_and_portable_convolutions_agree() {
        if !has_avx512() {
            return; // The portable path runs; tested against the definition above.
        }
        for n in CONV_LENGTHS.into_iter().filter(|&n| n >= WINDOW + 4) {
            let mut buf = random(n + 3, 6);
            for skew in 0..4 {
                let x = &mut buf[skew..skew + n];
                let mut want = x.to_vec();
                convolve_portable(&mut want, &mut stream(n, 0));
                // SAFETY: the features were detected above.
                unsafe { convolve_avx512(x, &ConvTable::new(n, 0)) };
                assert_eq!(x, &want[..], "n {n} skew {skew}");
            }
        }
    }

    /// The expander by its definition: row `i` of `s` gathers the positions scaled from words
    /// `7i .. 7i + 7` of the code's stream (a fresh batch of words every `BATCH` rows).
    fn expander_definition(s: &mut [Block], p: &[Block]) {
        let n = s.len();
        let mut prg = stream(n, 2);
        let mut raw = [Block::ZERO; BATCH * EXPANDER_WEIGHT / 4];
        for (i, row) in s.iter_mut().enumerate() {
            if i % BATCH == 0 {
                prg.fill_blocks(&mut raw);
            }
            for k in 0..EXPANDER_WEIGHT {
                let e = (i % BATCH) * EXPANDER_WEIGHT + k;
                let r = (blocks_as_words(&raw)[e / 2] >> (32 * (e % 2))) & 0xffff_ffff;
                *row ^= p[((r * n as u64) >> 32) as usize];
            }
        }
    }

    /// The expander computes its definition.
    #[test]
    fn expander_matches_its_definition() {
        // Every length has u16 positions but the last.
        for n in [300usize, 1 << 12, 3 * BATCH + 5, (1 << 16) + 3] {
            let p = random(n, 3);
            let mut s = random(n, 4);
            let mut want = s.clone();
            expander_definition(&mut want, &p);
            expand(&mut s, &p, &tables(n));
            assert_eq!(s, want, "n {n}");
        }
    }

    /// The whole compression computes its definition, `s ⊕ B·C'·C·p`, at the largest chunk
    /// and at lengths that are no multiple of the register group or the batch.
    #[test]
    fn compress_matches_its_definition() {
        for n in [27usize, 301, 4096 + 17, 1 << 16] {
            let mut v = random(2 * n, 9);
            let (s, p) = v.split_at(n);
            let (mut want, mut q) = (s.to_vec(), p.to_vec());
            convolution_definition(&mut q, 0);
            convolution_definition(&mut q, 1);
            expander_definition(&mut want, &q);
            ExConvCode::new(n).compress(&mut v);
            assert_eq!(v[..n], want[..], "n {n}");
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
