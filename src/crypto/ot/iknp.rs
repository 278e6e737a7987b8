//! Semi-honest IKNP OT extension (Ishai–Kilian–Nissim–Petrank, CRYPTO 2003) with the ALSZ
//! optimisations (Asharov–Lindell–Schneider–Zohner, CCS 2013), in the *correlated* mode that
//! delivers free-XOR labels — the mode emp-ot's `IKNP::send_cot`/`recv_cot` gives emp-sh2pc's
//! semi-honest garbler and evaluator.
//!
//! # Protocol
//! Setup, once: the COT sender (the garbler, holding `Δ` with lsb 1) is the base-OT *receiver*
//! with the 128 bits of `Δ` as its choices; the COT receiver is the base-OT *sender* of 128
//! random seed pairs `(k_i^0, k_i^1)`. The sender keeps `k_i^{Δ_i}`; each seed keys a [`Prg`].
//!
//! Extension of n OTs with choice bits `b` (in chunks of [`CHUNK_OTS`]): the receiver expands
//! column `t^i = G(k_i^0)` and sends `u^i = t^i ⊕ G(k_i^1) ⊕ b`; the sender computes
//! `q^i = G(k_i^{Δ_i}) ⊕ Δ_i·u^i = t^i ⊕ Δ_i·b`. Transposing the 128 columns gives rows with
//! `q_j = t_j ⊕ b_j·Δ`: the sender outputs `q_j` (the zero-label of wire j, `q_j ⊕ Δ` its
//! one-label), the receiver `t_j`, the label of its choice. The receiver sends 16 B per OT (plus
//! an 8-byte count per call and padding of each call to a multiple of 128 OTs); the sender sends
//! nothing.
//!
//! # Why no hash, and why that is secure here
//! Classic IKNP hashes the rows to break the correlation and obtain independent OTs. Garbling
//! with free XOR *wants* the correlation: the garbler's labels must be `(q_j, q_j ⊕ Δ)` for its
//! one global `Δ`. Semi-honest security of the correlated functionality follows from IKNP's: the
//! receiver's view is its own seeds and outputs, independent of `Δ`; the sender's view is the
//! `u^i`, each masked by `G(k_i^{1−Δ_i})` whose seed it never learns, hence pseudorandom and
//! independent of `b`. What the correlation costs is that the labels themselves must only ever
//! be fed to a hash that is (tweakable) *circular* correlation robust, which the garbling scheme
//! does anyway (Guo–Katz–Wang–Yu, S&P 2020, eprint 2019/074, §7; emp-ot and emp-sh2pc use this
//! exact composition). The chosen-message mode below is the standard hashed IKNP on top.
//!
//! # Streams
//! Every call continues the seeds' PRG streams, so one setup serves any number of calls (one
//! per layer, say) and no pseudorandom column is ever used twice. Both parties count the OTs
//! run so far; the chosen-message mode uses that count as its unique hash tweak.
//!
//! After any error the two parties' streams and counts may disagree: drop both ends and run
//! a fresh setup rather than calling again.

use core::fmt;

use rand_core::{CryptoRng, RngCore};

use super::transpose::transpose_128xn;
use super::{base, blocks_as_bytes, blocks_as_bytes_mut, ChoiceBits, OtError};
use crate::crypto::{Block, BlockChannel, Prg, FIXED_KEY_AES};
use crate::net::{Channel, ChannelExt};

/// OTs per chunk: bounds memory to two 128 × `CHUNK_OTS` bit matrices per party (512 KiB) and
/// keeps each within the L2 cache. A multiple of 128.
pub const CHUNK_OTS: usize = 1 << 14;

/// Blocks per column of a full chunk.
pub(super) const CHUNK_COL_BLOCKS: usize = CHUNK_OTS / 128;

/// Hashes of the chosen-message mode per batch.
const HASH_BATCH: usize = 1024;

/// The all-ones or all-zeros mask of a bit, without a branch.
#[inline(always)]
pub(super) fn mask(bit: bool) -> u128 {
    0u128.wrapping_sub(bit as u128)
}

/// The bit set in every chosen-message OT tweak and clear in every garbling tweak
/// (`instance·2^64 + 2k (+1)` with instance < 2^63, checked by the garbler: see
/// `gc::halfgates::INSTANCE_LIMIT`), so the two kinds of tweak used with the same Δ never meet.
pub const OT_TWEAK_BIT: u128 = 1 << 127;

/// The tweak of OT number `index` (counted over the life of a setup) in the chosen-message mode.
#[inline(always)]
fn tweak(index: u64) -> Block {
    Block(OT_TWEAK_BIT | index as u128)
}

/// The COT sender: the garbler, who holds `Δ` and obtains the zero-labels.
pub struct CotSender {
    delta: Block,
    /// `G(k_i^{Δ_i})` for i in 0..128.
    prgs: Vec<Prg>,
    /// OTs run so far (the next chosen-mode tweak).
    count: u64,
    /// The q matrix of one chunk: 128 columns of `CHUNK_COL_BLOCKS` blocks.
    cols: Vec<Block>,
    /// One received column of u.
    ucol: Vec<Block>,
    /// Transposed rows when a chunk is shorter than its padded width.
    tail: Vec<Block>,
}

impl Drop for CotSender {
    // Its copy of Δ is the garbling offset; the PRGs wipe their own keys (the `aes` crate's
    // `zeroize` feature).
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.delta.0);
    }
}

/// The COT receiver: the evaluator, who obtains the label of each of its choice bits.
pub struct CotReceiver {
    /// `G(k_i^0)` and `G(k_i^1)` for i in 0..128.
    prgs0: Vec<Prg>,
    prgs1: Vec<Prg>,
    count: u64,
    /// The t matrix of one chunk.
    cols: Vec<Block>,
    /// The column of u being sent.
    ucol: Vec<Block>,
    /// The packed choice bits of one chunk.
    packed: Vec<Block>,
    tail: Vec<Block>,
}

/// What the Debug of an extension's party shows: its name, `k` where it has one and how many
/// OTs it ran — never its seeds or Δ.
pub(super) fn debug_party(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    k: Option<usize>,
    count: u64,
) -> fmt::Result {
    let mut d = f.debug_struct(name);
    if let Some(k) = k {
        d.field("k", &k);
    }
    d.field("ots_run", &count).finish_non_exhaustive()
}

impl fmt::Debug for CotSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_party(f, "CotSender", None, self.count)
    }
}

impl fmt::Debug for CotReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_party(f, "CotReceiver", None, self.count)
    }
}

/// The sender's side of one extension call, shared by IKNP and SoftSpoken: checks that the
/// receiver asked for `out.len()` OTs (`protocol` names the extension in the error), then runs
/// `chunk(ch, j0, out[j0..])` on every [`CHUNK_OTS`] OTs in order.
pub(super) fn send_chunked<C, F>(
    ch: &mut C,
    protocol: &'static str,
    out: &mut [Block],
    mut chunk: F,
) -> Result<(), OtError>
where
    C: Channel + ?Sized,
    F: FnMut(&mut C, usize, &mut [Block]) -> Result<(), OtError>,
{
    if out.is_empty() {
        return Ok(());
    }
    recv_count(ch, protocol, out.len())?;
    for (c, part) in out.chunks_mut(CHUNK_OTS).enumerate() {
        // Outputs may be fresh memory (a site's labels: hundreds of MB): fault in a chunk's
        // pages at once rather than one by one as the transpose first writes them.
        crate::crypto::buffer::prefault(part);
        chunk(ch, c * CHUNK_OTS, part)?;
    }
    Ok(())
}

/// The sender's check that the receiver announced `n` OTs for this call (`protocol` names the
/// extension in the error).
pub(super) fn recv_count<C: Channel + ?Sized>(
    ch: &mut C,
    protocol: &'static str,
    n: usize,
) -> Result<(), OtError> {
    let theirs = ch.recv_u64()?;
    if theirs != n as u64 {
        return Err(OtError::CountMismatch {
            protocol,
            ours: n as u64,
            theirs,
        });
    }
    Ok(())
}

/// The receiver's announcement of the `n` OTs of a call, checked by [`recv_count`].
pub(super) fn send_count<C: Channel + ?Sized>(ch: &mut C, n: usize) -> Result<(), OtError> {
    Ok(ch.send_u64(n as u64)?)
}

/// The receiver's side of one extension call, the counterpart of [`send_chunked`]: checks
/// that `out` has one label per choice, announces the count, runs `chunk(ch, j0, out[j0..])`
/// on every [`CHUNK_OTS`] OTs in order and flushes.
pub(super) fn receive_chunked<C, F>(
    ch: &mut C,
    choices: usize,
    out: &mut [Block],
    mut chunk: F,
) -> Result<(), OtError>
where
    C: Channel + ?Sized,
    F: FnMut(&mut C, usize, &mut [Block]) -> Result<(), OtError>,
{
    if !super::receive_has_work(choices, out.len())? {
        return Ok(());
    }
    send_count(ch, choices)?;
    for (c, part) in out.chunks_mut(CHUNK_OTS).enumerate() {
        // Outputs may be fresh memory (a site's labels: hundreds of MB): fault in a chunk's
        // pages at once rather than one by one as the transpose first writes them.
        crate::crypto::buffer::prefault(part);
        chunk(ch, c * CHUNK_OTS, part)?;
    }
    ch.flush()?;
    Ok(())
}

/// The padded width of a chunk of `len` OTs and its blocks per column.
#[inline]
pub(super) fn padded(len: usize) -> (usize, usize) {
    let m = len.div_ceil(128) * 128;
    (m, m / 128)
}

impl CotSender {
    /// Run the base OTs as their receiver with the bits of `delta` as choices.
    ///
    /// `delta` must have its least significant bit set (point-and-permute); it is the global
    /// free-XOR offset of every label this sender hands out.
    pub fn setup<C: Channel + ?Sized, R: RngCore + CryptoRng>(
        ch: &mut C,
        delta: Block,
        rng: &mut R,
    ) -> Result<Self, OtError> {
        if !delta.lsb() {
            return Err(OtError::InvalidDelta);
        }
        let choices: Vec<bool> = (0..128).map(|i| (delta.0 >> i) & 1 == 1).collect();
        let seeds = base::receive(ch, &choices, rng)?;
        Ok(CotSender {
            delta,
            prgs: seeds.into_iter().map(Prg::from_seed).collect(),
            count: 0,
            cols: vec![Block::ZERO; 128 * CHUNK_COL_BLOCKS],
            ucol: vec![Block::ZERO; CHUNK_COL_BLOCKS],
            tail: Vec::new(),
        })
    }

    /// The global offset: the one-label of every wire is its zero-label ⊕ `delta`.
    pub fn delta(&self) -> Block {
        self.delta
    }

    /// Run `out.len()` correlated OTs.
    ///
    /// `out[j] = q_j`, the zero-labels; the receiver gets `q_j ^ b_j*delta`.
    pub fn send<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        out: &mut [Block],
    ) -> Result<(), OtError> {
        send_chunked(ch, "OT extension", out, |ch, _, chunk| {
            self.send_chunk(ch, chunk)
        })?;
        self.count += out.len() as u64;
        Ok(())
    }

    fn send_chunk<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        out: &mut [Block],
    ) -> Result<(), OtError> {
        let (m, w) = padded(out.len());
        let cols = &mut self.cols[..128 * w];
        let ucol = &mut self.ucol[..w];
        for (i, (col, prg)) in cols
            .chunks_exact_mut(w)
            .zip(self.prgs.iter_mut())
            .enumerate()
        {
            ch.recv(blocks_as_bytes_mut(ucol))?;
            prg.fill_blocks(col);
            // q^i = G(k_i^{Δ_i}) ⊕ Δ_i·u^i, with Δ_i applied as a mask (it is secret).
            let d = mask((self.delta.0 >> i) & 1 == 1);
            for (q, u) in col.iter_mut().zip(ucol.iter()) {
                q.0 ^= u.0 & d;
            }
        }
        transpose_into(blocks_as_bytes(cols), m, out, &mut self.tail);
        Ok(())
    }

    /// Chosen-message OT on top of the correlated one: the receiver learns `msgs[j].0` or
    /// `msgs[j].1` as its j-th choice bit is false or true, and nothing about the other.
    ///
    /// The sender sends `m0 ⊕ H(t, q_j)` and `m1 ⊕ H(t, q_j ⊕ Δ)` with `H` the tweakable
    /// circular correlation-robust hash of GKWY20 and `t` the OT's unique index over the life
    /// of this setup: 32 B per OT on top of the 16 B of the correlated OT, one round trip.
    pub fn send_chosen<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        msgs: &[(Block, Block)],
    ) -> Result<(), OtError> {
        let n = msgs.len();
        let first = self.count;
        // All of u is read before anything is written, so that neither party blocks on a full
        // socket buffer while the other waits to read (the receiver sends all of u first).
        let mut q = vec![Block::ZERO; n];
        self.send(ch, &mut q)?;

        let aes = &*FIXED_KEY_AES;
        let mut tweaks = vec![Block::ZERO; 2 * HASH_BATCH];
        let mut xs = vec![Block::ZERO; 2 * HASH_BATCH];
        let mut scratch = vec![Block::ZERO; 2 * HASH_BATCH];
        for (c, (qs, ms)) in q
            .chunks(HASH_BATCH)
            .zip(msgs.chunks(HASH_BATCH))
            .enumerate()
        {
            let k = qs.len();
            for (j, qj) in qs.iter().enumerate() {
                let t = tweak(first + (c * HASH_BATCH + j) as u64);
                tweaks[2 * j] = t;
                tweaks[2 * j + 1] = t;
                xs[2 * j] = *qj;
                xs[2 * j + 1] = *qj ^ self.delta;
            }
            aes.tccr_batch(&tweaks[..2 * k], &mut xs[..2 * k], &mut scratch[..2 * k]);
            for (j, (m0, m1)) in ms.iter().enumerate() {
                xs[2 * j] ^= *m0;
                xs[2 * j + 1] ^= *m1;
            }
            ch.send_blocks(&xs[..2 * k])?;
        }
        ch.flush()?;
        Ok(())
    }
}

impl CotReceiver {
    /// Run the base OTs as their sender with 128 fresh random seed pairs.
    pub fn setup<C: Channel + ?Sized, R: RngCore + CryptoRng>(
        ch: &mut C,
        rng: &mut R,
    ) -> Result<Self, OtError> {
        let pairs: Vec<(Block, Block)> = (0..128)
            .map(|_| (Block::random(rng), Block::random(rng)))
            .collect();
        base::send(ch, &pairs, rng)?;
        Ok(CotReceiver {
            prgs0: pairs.iter().map(|p| Prg::from_seed(p.0)).collect(),
            prgs1: pairs.iter().map(|p| Prg::from_seed(p.1)).collect(),
            count: 0,
            cols: vec![Block::ZERO; 128 * CHUNK_COL_BLOCKS],
            ucol: vec![Block::ZERO; CHUNK_COL_BLOCKS],
            packed: vec![Block::ZERO; CHUNK_COL_BLOCKS],
            tail: Vec::new(),
        })
    }

    /// Run `choices.len()` correlated OTs: `out[j]` becomes the sender's `q_j ⊕ choices[j]·Δ`.
    ///
    /// `out` must be as long as `choices`.
    pub fn receive<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        choices: &[bool],
        out: &mut [Block],
    ) -> Result<(), OtError> {
        self.receive_packed(ch, &ChoiceBits::from_bools(choices), out)
    }

    /// [`CotReceiver::receive`] with the choice bits packed.
    pub fn receive_packed<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        choices: &ChoiceBits,
        out: &mut [Block],
    ) -> Result<(), OtError> {
        let words = choices.words();
        receive_chunked(ch, choices.len(), out, |ch, j0, chunk| {
            // A chunk starts on a word: CHUNK_OTS is a multiple of 128.
            let w = &words[j0 / 64..(j0 + chunk.len()).div_ceil(64)];
            self.receive_chunk(ch, w, chunk)
        })?;
        self.count += out.len() as u64;
        Ok(())
    }

    /// One chunk of OTs whose choice bits are the packed `choices`.
    fn receive_chunk<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        choices: &[u64],
        out: &mut [Block],
    ) -> Result<(), OtError> {
        let (m, w) = padded(out.len());
        let packed = &mut self.packed[..w];
        for (p, pair) in packed.iter_mut().zip(choices.chunks(2)) {
            let hi = pair.get(1).copied().unwrap_or(0);
            *p = Block(u128::from(pair[0]) | (u128::from(hi) << 64));
        }
        let cols = &mut self.cols[..128 * w];
        let ucol = &mut self.ucol[..w];
        for ((col, g0), g1) in cols
            .chunks_exact_mut(w)
            .zip(self.prgs0.iter_mut())
            .zip(self.prgs1.iter_mut())
        {
            g0.fill_blocks(col);
            g1.fill_blocks(ucol);
            for ((u, t), b) in ucol.iter_mut().zip(col.iter()).zip(packed.iter()) {
                u.0 ^= t.0 ^ b.0;
            }
            ch.send(blocks_as_bytes(ucol))?;
        }
        transpose_into(blocks_as_bytes(cols), m, out, &mut self.tail);
        Ok(())
    }

    /// Chosen-message OT: returns `msgs[j].0` or `msgs[j].1` of the sender's
    /// [`CotSender::send_chosen`] as `choices[j]` is false or true.
    pub fn receive_chosen<C: Channel + ?Sized>(
        &mut self,
        ch: &mut C,
        choices: &[bool],
    ) -> Result<Vec<Block>, OtError> {
        let n = choices.len();
        let first = self.count;
        let mut t = vec![Block::ZERO; n];
        self.receive(ch, choices, &mut t)?;

        let aes = &*FIXED_KEY_AES;
        let mut tweaks = vec![Block::ZERO; HASH_BATCH];
        let mut scratch = vec![Block::ZERO; HASH_BATCH];
        let mut ys = vec![Block::ZERO; 2 * HASH_BATCH];
        for (c, (ts, bs)) in t
            .chunks_mut(HASH_BATCH)
            .zip(choices.chunks(HASH_BATCH))
            .enumerate()
        {
            let k = ts.len();
            for (j, tw) in tweaks[..k].iter_mut().enumerate() {
                *tw = tweak(first + (c * HASH_BATCH + j) as u64);
            }
            aes.tccr_batch(&tweaks[..k], ts, &mut scratch[..k]);
            ch.recv_blocks(&mut ys[..2 * k])?;
            for (j, (tj, &b)) in ts.iter_mut().zip(bs).enumerate() {
                let (y0, y1) = (ys[2 * j], ys[2 * j + 1]);
                *tj ^= y0 ^ (y0 ^ y1).select(b);
            }
        }
        Ok(t)
    }
}

/// Transpose a padded chunk of width `m` into `out` (the first `out.len()` rows), through
/// `tail` when the chunk was padded.
pub(super) fn transpose_into(matrix: &[u8], m: usize, out: &mut [Block], tail: &mut Vec<Block>) {
    if out.len() == m {
        transpose_128xn(matrix, m, out);
    } else {
        tail.resize(m, Block::ZERO);
        transpose_128xn(matrix, m, tail);
        out.copy_from_slice(&tail[..out.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ot::test_support::random_bits;
    use crate::net::{mem_pair, TcpChannel};
    use std::time::Duration;

    fn random_delta(rng: &mut Prg) -> Block {
        Block::random(rng).with_lsb(true)
    }

    /// Runs `f_send` and `f_recv` as the two parties over `mem_pair`, after setup.
    fn with_pair<S, R, A, B>(f_send: S, f_recv: R) -> (A, B)
    where
        S: FnOnce(&mut CotSender, &mut crate::net::MemChannel) -> A + Send + 'static,
        R: FnOnce(&mut CotReceiver, &mut crate::net::MemChannel) -> B,
        A: Send + 'static,
    {
        let (mut a, mut b) = mem_pair(Duration::from_secs(30));
        let t = std::thread::spawn(move || {
            let mut rng = Prg::from_entropy();
            let delta = random_delta(&mut rng);
            let mut s = CotSender::setup(&mut a, delta, &mut rng).unwrap();
            f_send(&mut s, &mut a)
        });
        let mut r = CotReceiver::setup(&mut b, &mut Prg::from_entropy()).unwrap();
        let rb = f_recv(&mut r, &mut b);
        (t.join().unwrap(), rb)
    }

    fn check_correlation(delta: Block, q: &[Block], t: &[Block], b: &[bool]) {
        assert_eq!(q.len(), t.len());
        for j in 0..q.len() {
            assert_eq!(t[j], q[j] ^ delta.select(b[j]), "OT {j}");
        }
    }

    #[test]
    fn correlated_ots_satisfy_t_eq_q_xor_b_delta() {
        let mut rng = Prg::from_entropy();
        // Odd sizes: below 128, not a multiple of 128, spanning chunks with a short tail.
        let sizes = [1usize, 127, 1000, CHUNK_OTS, 2 * CHUNK_OTS + 333];
        let mut choice_sets: Vec<Vec<bool>> =
            sizes.iter().map(|&n| random_bits(n, &mut rng)).collect();
        choice_sets.push(vec![false; 3001]);
        choice_sets.push(vec![true; 3001]);
        let lens: Vec<usize> = choice_sets.iter().map(Vec::len).collect();
        let cs = choice_sets.clone();
        let ((delta, qs), ts) = with_pair(
            move |s, ch| {
                let qs: Vec<Vec<Block>> = lens
                    .iter()
                    .map(|&n| {
                        let mut q = vec![Block::ZERO; n];
                        s.send(ch, &mut q).unwrap();
                        q
                    })
                    .collect();
                (s.delta(), qs)
            },
            move |r, ch| {
                cs.iter()
                    .map(|b| {
                        let mut t = vec![Block::ZERO; b.len()];
                        r.receive(ch, b, &mut t).unwrap();
                        t
                    })
                    .collect::<Vec<_>>()
            },
        );
        assert!(delta.lsb());
        for ((q, t), b) in qs.iter().zip(&ts).zip(&choice_sets) {
            check_correlation(delta, q, t, b);
        }
        // Repeated calls continue the streams: no two calls hand out the same labels.
        assert_ne!(qs[5][0], qs[6][0]);
        assert_ne!(qs[5][..100], qs[6][..100]);
        // The zero-labels of one call are pairwise distinct (they come from fresh PRG output).
        let mut sorted: Vec<u128> = qs[4].iter().map(|b| b.0).collect();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), qs[4].len());
    }

    #[test]
    fn chosen_message_mode_delivers_exactly_the_chosen_message() {
        let mut rng = Prg::from_entropy();
        let n = 5000;
        let msgs: Vec<(Block, Block)> = (0..n)
            .map(|_| (Block::random(&mut rng), Block::random(&mut rng)))
            .collect();
        let b = random_bits(n, &mut rng);
        let (m, bb) = (msgs.clone(), b.clone());
        let ((), got) = with_pair(
            move |s, ch| {
                // A correlated call first, so the chosen-mode tweaks start past zero.
                let mut q = vec![Block::ZERO; 77];
                s.send(ch, &mut q).unwrap();
                s.send_chosen(ch, &m).unwrap();
                s.send_chosen(ch, &m[..10]).unwrap();
            },
            move |r, ch| {
                let mut t = vec![Block::ZERO; 77];
                r.receive(ch, &[true; 77], &mut t).unwrap();
                let a = r.receive_chosen(ch, &bb).unwrap();
                let c = r.receive_chosen(ch, &bb[..10]).unwrap();
                (a, c)
            },
        );
        for (got, k) in [(&got.0, n), (&got.1, 10)] {
            assert_eq!(got.len(), k);
            for j in 0..k {
                let (want, other) = if b[j] {
                    (msgs[j].1, msgs[j].0)
                } else {
                    (msgs[j].0, msgs[j].1)
                };
                assert_eq!(got[j], want, "OT {j}");
                assert_ne!(got[j], other, "OT {j}");
            }
        }
    }

    #[test]
    fn over_tcp_on_loopback() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut rng = Prg::from_entropy();
        let n = 3 * CHUNK_OTS + 17;
        let b = random_bits(n, &mut rng);
        let msgs: Vec<(Block, Block)> = (0..999)
            .map(|_| (Block::random(&mut rng), Block::random(&mut rng)))
            .collect();
        let m = msgs.clone();
        let t = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut ch = TcpChannel::new(s, Duration::from_secs(30)).unwrap();
            let mut rng = Prg::from_entropy();
            let mut s = CotSender::setup(&mut ch, random_delta(&mut rng), &mut rng).unwrap();
            let mut q = vec![Block::ZERO; n];
            s.send(&mut ch, &mut q).unwrap();
            s.send_chosen(&mut ch, &m).unwrap();
            (s.delta(), q)
        });
        let stream = std::net::TcpStream::connect(addr).unwrap();
        let mut ch = TcpChannel::new(stream, Duration::from_secs(30)).unwrap();
        let mut r = CotReceiver::setup(&mut ch, &mut rng).unwrap();
        let mut tt = vec![Block::ZERO; n];
        r.receive(&mut ch, &b, &mut tt).unwrap();
        let got = r.receive_chosen(&mut ch, &b[..999]).unwrap();
        let (delta, q) = t.join().unwrap();
        check_correlation(delta, &q, &tt, &b);
        for j in 0..999 {
            assert_eq!(got[j], if b[j] { msgs[j].1 } else { msgs[j].0 });
        }
    }

    #[test]
    fn large_chosen_batch_over_tcp_does_not_deadlock() {
        // Far more than both socket buffers in each direction.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let n = 1 << 18;
        let t = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut ch = TcpChannel::new(s, Duration::from_secs(30)).unwrap();
            let mut rng = Prg::from_entropy();
            let mut s = CotSender::setup(&mut ch, random_delta(&mut rng), &mut rng).unwrap();
            let msgs: Vec<(Block, Block)> = (0..n as u128)
                .map(|j| (Block(2 * j), Block(2 * j + 1)))
                .collect();
            s.send_chosen(&mut ch, &msgs).unwrap();
        });
        let mut ch = TcpChannel::new(
            std::net::TcpStream::connect(addr).unwrap(),
            Duration::from_secs(30),
        )
        .unwrap();
        let mut rng = Prg::from_entropy();
        let mut r = CotReceiver::setup(&mut ch, &mut rng).unwrap();
        let b = random_bits(n, &mut rng);
        let got = r.receive_chosen(&mut ch, &b).unwrap();
        t.join().unwrap();
        for j in 0..n {
            assert_eq!(got[j], Block(2 * j as u128 + b[j] as u128));
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let (mut a, _b) = mem_pair(Duration::from_millis(100));
        assert!(matches!(
            CotSender::setup(&mut a, Block(2), &mut Prg::from_entropy()),
            Err(OtError::InvalidDelta)
        ));

        let (err_send, err_recv) = with_pair(
            |s, ch| {
                let mut q = vec![Block::ZERO; 10];
                s.send(ch, &mut q).unwrap_err()
            },
            |r, ch| {
                let mut t = vec![Block::ZERO; 3];
                let len_err = r.receive(ch, &[true; 4], &mut t).unwrap_err();
                r.receive(ch, &[true; 3], &mut t).unwrap();
                len_err
            },
        );
        assert!(
            matches!(
                err_send,
                OtError::CountMismatch {
                    ours: 10,
                    theirs: 3,
                    ..
                }
            ),
            "{err_send}"
        );
        assert!(
            matches!(
                err_recv,
                OtError::LengthMismatch {
                    choices: 4,
                    outputs: 3
                }
            ),
            "{err_recv}"
        );
    }

    #[test]
    fn debug_does_not_print_secrets() {
        let ((), s) = with_pair(|_, _| (), |r, _| format!("{r:?}"));
        assert_eq!(s, "CotReceiver { ots_run: 0, .. }");
    }
}
