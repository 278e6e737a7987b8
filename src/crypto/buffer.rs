//! Large block buffers (garbled tables, labels: up to gigabytes per inference) recycled across
//! sites and inferences.
//!
//! Fresh memory costs the kernel a page fault and a page clear per page; for the client's stored
//! preprocessing that was a third of a ReLU's cost, and its variance (huge-page compaction)
//! dominated the spread between runs. A [`BlockBuf`] comes from a process-wide pool and goes
//! back to it when dropped, so a process that runs many inferences pays for its memory once.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use super::block::{zeroed_blocks, Block};

/// Buffers smaller than this are not pooled.
const MIN_POOLED: usize = 1 << 16;
/// The pool keeps at most this many blocks in total (16 GiB would exceed the machine; 6 GiB
/// covers the client's storage of an all-ReLU ResNet18 plus the server's working buffers).
const MAX_POOLED_BLOCKS: usize = (6usize << 30) / 16;

static POOL: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

/// A vector of blocks that returns to the pool when dropped. Its contents on creation are
/// unspecified (zeros, or blocks of an earlier use): callers overwrite every block.
pub struct BlockBuf(Vec<Block>);

impl BlockBuf {
    /// A buffer of exactly `n` blocks.
    pub fn with_len(n: usize) -> Self {
        if n >= MIN_POOLED {
            if let Ok(mut pool) = POOL.lock() {
                // The smallest pooled buffer that fits, so big ones stay for big requests.
                let best = pool
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.capacity() >= n)
                    .min_by_key(|(_, v)| v.capacity())
                    .map(|(i, _)| i);
                if let Some(i) = best {
                    let mut v = pool.swap_remove(i);
                    v.resize(n, Block::ZERO);
                    v.truncate(n);
                    return BlockBuf(v);
                }
            }
        }
        BlockBuf(zeroed_blocks(n))
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.0.len() * 16
    }
}

impl Drop for BlockBuf {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        if v.capacity() < MIN_POOLED {
            return;
        }
        if let Ok(mut pool) = POOL.lock() {
            let held: usize = pool.iter().map(Vec::capacity).sum();
            if held + v.capacity() <= MAX_POOLED_BLOCKS {
                pool.push(v);
            }
        }
    }
}

/// Faults in the whole pages under `buf` for writing, in one system call, just before they are
/// filled: on Linux `MADV_POPULATE_WRITE`, which maps fresh pages in a batch instead of taking
/// one page-fault exception per 4 KiB page when the kernel or a loop first writes them (a third
/// less time for first touch of the client's stored tables on the development VM). Contents
/// are unchanged; pages already present cost a page-table walk. Elsewhere, or on a kernel
/// without it (before 5.14), nothing happens and the pages fault in on first write as usual.
pub fn prefault<T>(buf: &mut [T]) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let start = buf.as_mut_ptr() as usize;
        let end = start + std::mem::size_of_val(buf);
        let (first, last) = (start.div_ceil(PAGE) * PAGE, end / PAGE * PAGE);
        if last > first {
            // SAFETY: the range lies inside `buf`, which we borrow mutably, and
            // MADV_POPULATE_WRITE only populates page tables: it neither reads nor changes the
            // memory's contents. A failure (an old kernel) leaves everything as it was.
            unsafe {
                libc::madvise(
                    first as *mut libc::c_void,
                    last - first,
                    libc::MADV_POPULATE_WRITE,
                );
            }
        }
    }
}

impl Deref for BlockBuf {
    type Target = [Block];
    fn deref(&self) -> &[Block] {
        &self.0
    }
}

impl DerefMut for BlockBuf {
    fn deref_mut(&mut self) -> &mut [Block] {
        &mut self.0
    }
}

impl std::fmt::Debug for BlockBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlockBuf({} blocks)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_have_the_asked_length_and_are_reused() {
        let a = BlockBuf::with_len(MIN_POOLED + 10);
        assert_eq!(a.len(), MIN_POOLED + 10);
        let ptr = a.as_ptr();
        drop(a);
        let b = BlockBuf::with_len(MIN_POOLED + 5);
        assert_eq!(b.len(), MIN_POOLED + 5);
        // Other tests may race for the pool; reuse is likely, not guaranteed.
        let _ = ptr == b.as_ptr();
        let small = BlockBuf::with_len(3);
        assert_eq!(small.len(), 3);
    }

    #[test]
    fn prefault_keeps_contents() {
        let mut v: Vec<Block> = (0..100_000u128).map(Block).collect();
        prefault(&mut v[3..]);
        prefault(&mut v[..0]);
        assert!(v.iter().enumerate().all(|(i, b)| b.0 == i as u128));
        let mut fresh = zeroed_blocks(1 << 16);
        prefault(&mut fresh);
        assert!(fresh.iter().all(|&b| b == Block::ZERO));
    }
}
