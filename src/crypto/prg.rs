//! The AES-128 counter-mode PRG: the expansion of every OT-extension seed and the source of
//! pseudorandom blocks for the protocols.
//!
//! Block `k` of the stream is `AES_seed(k)` with `k` the little-endian 128-bit counter, starting
//! at zero. A [`Prg`] never rewinds and cannot be cloned, so a stream is never reused: OT
//! extension relies on that when one setup serves many `extend` calls. The one way to get a
//! second cursor on a stream is `Prg::ahead`, for two threads splitting its next blocks.

use core::fmt;

use rand_core::{CryptoRng, OsRng, RngCore};

use super::{Block, FixedKeyAes};

/// Blocks encrypted per refill of the byte-level buffer: eight keep the AES pipeline full.
const BUF_BLOCKS: usize = 8;

/// AES-128 in counter mode keyed by a seed [`Block`].
///
/// [`Prg::fill_blocks`] is the fast path (whole slices through the pipelined AES); the
/// [`RngCore`] methods serve byte-level consumers such as scalar sampling and share one stream
/// with it without overlap.
pub struct Prg {
    /// The key, with its VAES round keys where the CPU has them (the fast path of
    /// [`Prg::fill_blocks`]; the `aes` crate does one block per instruction). Wiped on drop.
    aes: FixedKeyAes,
    /// The next unused counter value.
    counter: u128,
    /// Encrypted counters not yet handed out byte-wise; `buf[pos..]` is unused.
    buf: [u8; 16 * BUF_BLOCKS],
    pos: usize,
}

impl fmt::Debug for Prg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Prg(..)")
    }
}

impl Prg {
    /// The PRG whose key is `seed`.
    pub fn from_seed(seed: Block) -> Self {
        Prg {
            aes: FixedKeyAes::new(seed),
            counter: 0,
            buf: [0; 16 * BUF_BLOCKS],
            pos: 16 * BUF_BLOCKS,
        }
    }

    /// A PRG keyed from the operating system's entropy source.
    pub fn from_entropy() -> Self {
        Prg::from_seed(Block::random(&mut OsRng))
    }

    /// Overwrite `out` with the next `out.len()` blocks of the stream.
    ///
    /// Bytes already buffered for [`RngCore`] use stay buffered: their counters are spent, so the
    /// two interfaces never return the same block.
    #[inline]
    pub fn fill_blocks(&mut self, out: &mut [Block]) {
        let start = self.counter;
        #[cfg(target_arch = "x86_64")]
        if let Some(keys) = self.aes.wide() {
            keys.ctr(start, out);
            self.counter = start.wrapping_add(out.len() as u128);
            return;
        }
        for (k, b) in out.iter_mut().enumerate() {
            *b = Block(start.wrapping_add(k as u128));
        }
        self.counter = start.wrapping_add(out.len() as u128);
        self.aes.encrypt_blocks(out);
    }

    /// SoftSpoken's sums of the next `w = u.len()` blocks of each of `streams` (`2^k` of
    /// them): `u[j] = ⊕_x r_x[j]` and `v[b·w + j] = ⊕_{x : x_b = 1} r_x[j]`, `r_x` being the
    /// next blocks of `streams[x]`, which all advance by `w`. Computed in registers by the VAES
    /// kernel ([`ctr_fold`](super::vaes::ctr_fold)) where it applies (`k` ∈ {2, 4}, the
    /// streams at one counter, VAES present); otherwise `false`, with nothing drawn.
    pub(crate) fn fold_streams(streams: &mut [Prg], u: &mut [Block], v: &mut [Block]) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            let Some(first) = streams.first() else {
                return false;
            };
            let counter = first.counter;
            let (Some(k0), true) = (first.aes.wide(), streams.len() <= 16) else {
                return false;
            };
            let mut keys = [k0; 16];
            for (slot, p) in keys.iter_mut().zip(streams.iter()) {
                match p.aes.wide() {
                    Some(k) if p.counter == counter => *slot = k,
                    _ => return false,
                }
            }
            if super::vaes::ctr_fold(&keys[..streams.len()], counter, u, v).is_none() {
                return false;
            }
            for p in streams.iter_mut() {
                p.counter = counter.wrapping_add(u.len() as u128);
            }
            true
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (streams, u, v);
            false
        }
    }

    /// A second cursor on this stream, `blocks` blocks ahead of this one (with no byte-wise
    /// buffer): to split the stream's next blocks between two threads, this one drawing the
    /// first `blocks` and the returned one those after. A block is then drawn twice only if
    /// this cursor draws more than `blocks`, so the caller draws exactly that many here and
    /// afterwards keeps only the cursor that went furthest (dropping or replacing this one).
    pub(crate) fn ahead(&self, blocks: u128) -> Prg {
        Prg {
            aes: self.aes.clone(),
            counter: self.counter.wrapping_add(blocks),
            buf: [0; 16 * BUF_BLOCKS],
            pos: 16 * BUF_BLOCKS,
        }
    }

    /// Moves this cursor to `blocks` blocks ahead of `lead`, a cursor on the same stream (this
    /// one or `lead` made from the other by [`Prg::ahead`], possibly through other such
    /// cursors): what [`Prg::ahead`] returns, without copying the key. The same rule holds: a
    /// block is drawn twice only if `lead` draws more than `blocks` before this cursor or
    /// `lead` is dropped or replaced.
    pub(crate) fn reseat(&mut self, lead: &Prg, blocks: u128) {
        self.counter = lead.counter.wrapping_add(blocks);
        self.pos = 16 * BUF_BLOCKS;
    }

    /// The next block of the stream.
    #[inline]
    pub fn next_block(&mut self) -> Block {
        let mut b = [Block::ZERO];
        self.fill_blocks(&mut b);
        b[0]
    }

    fn refill(&mut self) {
        let mut blocks = [Block::ZERO; BUF_BLOCKS];
        self.fill_blocks(&mut blocks);
        for (chunk, b) in self.buf.chunks_exact_mut(16).zip(blocks.iter()) {
            chunk.copy_from_slice(&b.to_bytes());
        }
        self.pos = 0;
    }
}

impl RngCore for Prg {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let mut filled = 0;
        while filled < dest.len() {
            if self.pos == self.buf.len() {
                self.refill();
            }
            let n = (dest.len() - filled).min(self.buf.len() - self.pos);
            dest[filled..filled + n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            filled += n;
            self.pos += n;
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// AES-CTR under a secret, uniformly random key is a PRF evaluated on distinct inputs.
impl CryptoRng for Prg {}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> Block {
        Block(0x0f0e_0d0c_0b0a_0908_0706_0504_0302_0100)
    }

    #[test]
    fn a_cursor_ahead_continues_the_stream_where_this_one_stops() {
        let mut whole = vec![Block::ZERO; 300];
        Prg::from_seed(seed()).fill_blocks(&mut whole);
        let mut prg = Prg::from_seed(seed());
        prg.fill_blocks(&mut [Block::ZERO; 5]);
        let mut ahead = prg.ahead(100);
        let (mut a, mut b) = (vec![Block::ZERO; 100], vec![Block::ZERO; 195]);
        prg.fill_blocks(&mut a);
        ahead.fill_blocks(&mut b);
        assert_eq!(a, whole[5..105]);
        assert_eq!(b, whole[105..]);
    }

    /// The stream is AES-128 of the counters 0, 1, 2, ... under the seed, computed here
    /// independently one block at a time.
    #[test]
    fn known_answer_against_independent_aes() {
        let aes = FixedKeyAes::new(seed());
        let mut prg = Prg::from_seed(seed());
        // 21 blocks: several pipeline widths and a tail, split over two calls.
        let mut a = vec![Block::ZERO; 13];
        let mut b = vec![Block::ZERO; 8];
        prg.fill_blocks(&mut a);
        prg.fill_blocks(&mut b);
        for (k, got) in a.iter().chain(b.iter()).enumerate() {
            assert_eq!(*got, aes.encrypt(Block(k as u128)), "block {k}");
        }
        // Anchor to a published vector too: block 0 under the zero seed is AES-128 of the zero
        // block under the zero key, 66e94bd4ef8a2c3b884cfa59ca342b2e.
        let mut zero = Prg::from_seed(Block::ZERO);
        let expect = [
            0x66, 0xe9, 0x4b, 0xd4, 0xef, 0x8a, 0x2c, 0x3b, 0x88, 0x4c, 0xfa, 0x59, 0xca, 0x34,
            0x2b, 0x2e,
        ];
        assert_eq!(zero.next_block().to_bytes(), expect);
    }

    /// Byte-wise and block-wise reads share one stream and never hand out the same counter.
    #[test]
    fn byte_and_block_interfaces_do_not_overlap() {
        let aes = FixedKeyAes::new(seed());
        let mut prg = Prg::from_seed(seed());
        let x = prg.next_u64();
        assert_eq!(x.to_le_bytes(), aes.encrypt(Block(0)).to_bytes()[..8]);
        // The byte buffer holds counters 0..8; the next block comes from counter 8.
        assert_eq!(prg.next_block(), aes.encrypt(Block(8)));
        // Further bytes continue the buffer (rest of block 0).
        let y = prg.next_u64();
        assert_eq!(y.to_le_bytes(), aes.encrypt(Block(0)).to_bytes()[8..]);
        let mut big = [0u8; 300];
        prg.fill_bytes(&mut big);
        assert_eq!(big[..16], aes.encrypt(Block(1)).to_bytes());
        // 300 bytes: counters 1..8 from the old buffer (112 bytes), then 9.. from a refill.
        assert_eq!(big[112..128], aes.encrypt(Block(9)).to_bytes());
    }

    #[test]
    fn entropy_seeded_prgs_differ_and_debug_hides_state() {
        let mut a = Prg::from_entropy();
        let mut b = Prg::from_entropy();
        assert_ne!(a.next_block(), b.next_block());
        assert_eq!(format!("{a:?}"), "Prg(..)");
    }
}
