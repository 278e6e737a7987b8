//! The 128-bit block: a wire label, a PRG output, an OT message.

use core::fmt;
use core::ops::{BitAnd, BitAndAssign, BitXor, BitXorAssign};

use crate::net::{Channel, NetError};

/// A 128-bit value, the unit of garbling and oblivious transfer.
///
/// `Debug` prints only that it is a block, never its contents, so labels and keys cannot leak
/// into logs by accident.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
#[repr(transparent)]
pub struct Block(pub u128);

impl Block {
    /// All zeros.
    pub const ZERO: Block = Block(0);
    /// All ones.
    pub const ONES: Block = Block(u128::MAX);

    /// The block from its 16 little-endian bytes.
    #[inline(always)]
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Block(u128::from_le_bytes(bytes))
    }

    /// The 16 little-endian bytes of the block.
    #[inline(always)]
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0.to_le_bytes()
    }

    /// The least significant bit: the point-and-permute (colour) bit of a label.
    #[inline(always)]
    pub const fn lsb(self) -> bool {
        (self.0 & 1) == 1
    }

    /// The block with its least significant bit set to `bit`.
    #[inline(always)]
    pub const fn with_lsb(self, bit: bool) -> Self {
        Block((self.0 & !1) | bit as u128)
    }

    /// `self` if `bit` is set, zero otherwise, without a branch on `bit`.
    #[inline(always)]
    pub const fn select(self, bit: bool) -> Self {
        Block(self.0 & (0u128.wrapping_sub(bit as u128)))
    }

    /// A uniformly random block from `rng`.
    #[inline]
    pub fn random<R: rand_core::RngCore + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        Block::from_bytes(bytes)
    }

    /// The linear orthomorphism σ(x_L ‖ x_R) = (x_L ⊕ x_R) ‖ x_L of Guo–Katz–Wang–Yu (2020).
    #[inline(always)]
    pub const fn sigma(self) -> Self {
        let hi = (self.0 >> 64) as u64;
        let lo = self.0 as u64;
        Block((((hi ^ lo) as u128) << 64) | hi as u128)
    }
}

/// Wipes blocks that held secrets (volatile writes the compiler cannot drop).
pub(crate) fn wipe(blocks: &mut [Block]) {
    for b in blocks {
        zeroize::Zeroize::zeroize(&mut b.0);
    }
}

/// Blocks that hold secrets, wiped when dropped, on every path (errors included).
#[derive(Default)]
pub(crate) struct SecretBlocks(pub(crate) Vec<Block>);

impl SecretBlocks {
    /// `n` zero blocks.
    pub(crate) fn zeros(n: usize) -> Self {
        SecretBlocks(zeroed_blocks(n))
    }
}

impl Drop for SecretBlocks {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl core::ops::Deref for SecretBlocks {
    type Target = [Block];
    fn deref(&self) -> &[Block] {
        &self.0
    }
}

impl core::ops::DerefMut for SecretBlocks {
    fn deref_mut(&mut self) -> &mut [Block] {
        &mut self.0
    }
}

/// `n` zero blocks in a fresh vector.
///
/// The memory comes zeroed from the allocator (`calloc`: fresh pages are known to be zero), so
/// it is not written here: the first touch of each page happens where the caller fills it, and
/// a buffer of hundreds of MB (garbled tables, labels) is not swept twice.
///
/// With `PIBENCH_THP=1`, large vectors are advised to use transparent huge pages (512× fewer
/// page faults on first touch). Off by default: on a virtual machine whose host takes free
/// memory back (free page reporting), a fresh 2 MiB page is most often host memory that must be
/// faulted in again, and `relu-bench --relus 100000` measured 2.3–3.5 s of system time with huge
/// pages against 0.8–0.9 s without.
pub fn zeroed_blocks(n: usize) -> Vec<Block> {
    if n == 0 {
        return Vec::new();
    }
    let layout = std::alloc::Layout::array::<Block>(n).expect("block buffer size overflows");
    // SAFETY: `layout` has a non-zero size (n > 0, 16 bytes per block).
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<Block>();
    if ptr.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 4 << 20;
        if n * 16 >= HUGE && std::env::var_os("PIBENCH_THP").is_some_and(|v| v == "1") {
            let start = ptr as usize;
            let page = 2 << 20;
            let aligned = start.div_ceil(page) * page;
            let end = start + n * 16;
            if end > aligned + page {
                // SAFETY: the range lies inside the allocation just made and is only advised,
                // never read or written here; madvise has no effect on memory contents.
                unsafe {
                    libc::madvise(
                        aligned as *mut libc::c_void,
                        (end - aligned) / page * page,
                        libc::MADV_HUGEPAGE,
                    );
                }
            }
        }
    }
    // SAFETY: `ptr` was allocated by the global allocator with the layout of `n` blocks (the
    // layout a `Vec<Block>` of capacity `n` frees with), and all `n` blocks are initialised:
    // zero bytes are the valid block `Block::ZERO`.
    unsafe { Vec::from_raw_parts(ptr, n, n) }
}

/// The little-endian byte image of a slice of blocks, without copying (what goes on the wire).
pub fn blocks_as_bytes(blocks: &[Block]) -> &[u8] {
    #[cfg(target_endian = "big")]
    compile_error!("pibench assumes a little-endian target");
    // SAFETY: `Block` is `repr(transparent)` over `u128`: 16 bytes, no padding, every bit
    // initialized; on a little-endian target its memory is exactly `to_bytes()`. `u8` has
    // alignment 1, and the length is 16 bytes per block.
    unsafe { core::slice::from_raw_parts(blocks.as_ptr().cast::<u8>(), blocks.len() * 16) }
}

/// Mutable byte view of a slice of blocks, to receive into it without copying.
pub fn blocks_as_bytes_mut(blocks: &mut [Block]) -> &mut [u8] {
    // SAFETY: as in `blocks_as_bytes`; additionally every byte pattern is a valid `u128`, so
    // writing arbitrary bytes leaves valid blocks.
    unsafe { core::slice::from_raw_parts_mut(blocks.as_mut_ptr().cast::<u8>(), blocks.len() * 16) }
}

/// The `u64` words of a slice of blocks (low word of each block first), without copying: how
/// three-halves garbled material, which comes in half-labels, lives in block buffers.
pub fn blocks_as_words(blocks: &[Block]) -> &[u64] {
    // SAFETY: `Block` is `repr(transparent)` over `u128`: 16 initialised bytes, alignment 16,
    // no padding. A `u64` needs alignment 8 ≤ 16 and every bit pattern is valid; on a
    // little-endian target word `2i` is the low half of block `i`.
    unsafe { core::slice::from_raw_parts(blocks.as_ptr().cast::<u64>(), blocks.len() * 2) }
}

/// Mutable [`blocks_as_words`].
pub fn blocks_as_words_mut(blocks: &mut [Block]) -> &mut [u64] {
    // SAFETY: as in `blocks_as_words`; every bit pattern written through the view leaves a
    // valid `u128`.
    unsafe { core::slice::from_raw_parts_mut(blocks.as_mut_ptr().cast::<u64>(), blocks.len() * 2) }
}

/// `dst ^= src` block by block, over the shorter of the two. Runs on `u64` words, which the
/// compiler vectorises to the widest registers the target has (a `u128` loop it does not).
#[inline]
pub fn xor_in_place(dst: &mut [Block], src: &[Block]) {
    for (d, s) in blocks_as_words_mut(dst)
        .iter_mut()
        .zip(blocks_as_words(src))
    {
        *d ^= *s;
    }
}

/// The little-endian byte image of a slice of words, without copying (what goes on the wire).
pub fn words_as_bytes(words: &[u64]) -> &[u8] {
    // SAFETY: `u64` has no padding and alignment ≥ 1; on a little-endian target its memory is
    // `to_le_bytes()`.
    unsafe { core::slice::from_raw_parts(words.as_ptr().cast::<u8>(), words.len() * 8) }
}

/// Mutable [`words_as_bytes`], to receive into words without copying.
pub fn words_as_bytes_mut(words: &mut [u64]) -> &mut [u8] {
    // SAFETY: as in `words_as_bytes`; every byte pattern is a valid `u64`.
    unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 8) }
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Block(..)")
    }
}

impl BitXor for Block {
    type Output = Block;
    #[inline(always)]
    fn bitxor(self, rhs: Block) -> Block {
        Block(self.0 ^ rhs.0)
    }
}

impl BitXorAssign for Block {
    #[inline(always)]
    fn bitxor_assign(&mut self, rhs: Block) {
        self.0 ^= rhs.0;
    }
}

impl BitAnd for Block {
    type Output = Block;
    #[inline(always)]
    fn bitand(self, rhs: Block) -> Block {
        Block(self.0 & rhs.0)
    }
}

impl BitAndAssign for Block {
    #[inline(always)]
    fn bitand_assign(&mut self, rhs: Block) {
        self.0 &= rhs.0;
    }
}

impl From<u128> for Block {
    fn from(v: u128) -> Self {
        Block(v)
    }
}

/// [`Block`]s over any [`Channel`]: each travels as its 16 little-endian bytes. An extension
/// trait on the crypto side, so that the channel knows bytes only.
pub trait BlockChannel: Channel {
    /// Send blocks as their little-endian bytes.
    fn send_blocks(&mut self, blocks: &[Block]) -> Result<(), NetError> {
        self.send(blocks_as_bytes(blocks))
    }
    /// Receive exactly `out.len()` blocks.
    fn recv_blocks(&mut self, out: &mut [Block]) -> Result<(), NetError> {
        self.recv(blocks_as_bytes_mut(out))
    }
}

impl<C: Channel + ?Sized> BlockChannel for C {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_blocks_are_zero_at_every_size_and_growable() {
        for n in [0usize, 1, 7, 1 << 12, (4 << 20) / 16 + 3] {
            let mut v = zeroed_blocks(n);
            assert_eq!(v.len(), n);
            assert!(v.iter().all(|&b| b == Block::ZERO), "{n}");
            // A vector the allocator handed out zeroed is an ordinary vector: it grows and frees.
            v.push(Block::ONES);
            assert_eq!(v[n], Block::ONES);
        }
    }

    #[test]
    fn bytes_round_trip_and_lsb() {
        let b = Block::from_bytes([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
        assert_eq!(b.to_bytes()[0], 1);
        assert!(b.lsb());
        assert!(!b.with_lsb(false).lsb());
        assert_eq!(b.select(true), b);
        assert_eq!(b.select(false), Block::ZERO);
    }

    #[test]
    fn byte_views_are_the_little_endian_images() {
        let mut blocks = [Block(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10), Block(7)];
        let bytes = blocks_as_bytes(&blocks).to_vec();
        assert_eq!(&bytes[..16], &blocks[0].to_bytes());
        assert_eq!(&bytes[16..], &blocks[1].to_bytes());
        blocks_as_bytes_mut(&mut blocks)[16] = 9;
        assert_eq!(blocks[1], Block(9));
        let w = blocks_as_words(&blocks);
        assert_eq!(
            (w[0], w[1], w[2]),
            (0x090a_0b0c_0d0e_0f10, 0x0102_0304_0506_0708, 9)
        );
        assert_eq!(words_as_bytes(&w[..1]), &blocks[0].to_bytes()[..8]);
        blocks_as_words_mut(&mut blocks)[3] = 1;
        assert_eq!(blocks[1], Block(9 | (1 << 64)));
        let mut ws = [0u64; 2];
        words_as_bytes_mut(&mut ws)[8] = 3;
        assert_eq!(ws, [0, 3]);
    }

    #[test]
    fn sigma_is_linear_and_orthomorphic() {
        let a = Block(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
        let b = Block(0x1111_2222_3333_4444_5555_6666_7777_8888);
        assert_eq!((a ^ b).sigma(), a.sigma() ^ b.sigma());
        // σ(x) ⊕ x must also be a permutation: check it is not zero on non-zero inputs.
        assert_ne!(a.sigma() ^ a, Block::ZERO);
    }

    #[test]
    fn tcp_round_trip_blocks() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut ch = crate::net::TcpChannel::new(s, std::time::Duration::from_secs(5)).unwrap();
            let mut blocks = vec![Block::ZERO; 1000];
            ch.recv_blocks(&mut blocks).unwrap();
            ch.send_blocks(&blocks).unwrap();
            ch.flush().unwrap();
        });
        let mut ch = crate::net::TcpChannel::new(
            std::net::TcpStream::connect(addr).unwrap(),
            std::time::Duration::from_secs(5),
        )
        .unwrap();
        let blocks: Vec<Block> = (0..1000u128).map(|i| Block(i * 0x1_0000_0001)).collect();
        ch.send_blocks(&blocks).unwrap();
        let mut back = vec![Block::ZERO; 1000];
        ch.recv_blocks(&mut back).unwrap();
        assert_eq!(blocks, back);
        t.join().unwrap();
    }
}
