//! Oblivious transfer: base OT on Ristretto ([`base`]), semi-honest IKNP/ALSZ extension in the
//! correlated mode that hands out free-XOR labels ([`iknp`]), and the bit-matrix transpose at
//! its core ([`transpose`]).
//!
//! The garbler is the COT *sender* and holds the global `Δ`; the evaluator is the COT
//! *receiver*. See [`iknp`] for the protocol and why it is secure for our use.

pub mod base;
pub mod iknp;
pub mod transpose;

pub use self::iknp::{CotReceiver, CotSender};

use crate::crypto::Block;
use crate::net::NetError;

/// Errors of base OT and OT extension.
#[derive(Debug, thiserror::Error)]
pub enum OtError {
    /// The channel failed (disconnect, time-out, I/O).
    #[error("OT: {0}")]
    Net(#[from] NetError),
    /// The peer sent 32 bytes that are not the canonical encoding of a Ristretto point, or the
    /// identity where a generator is required.
    #[error("base OT: the peer's {what} is not a valid Ristretto point")]
    InvalidPoint {
        /// Which point: the sender's `A`, or the receiver's `B` with its OT index.
        what: String,
    },
    /// The two parties asked for different numbers of OTs.
    #[error("{protocol}: this party runs {ours} OTs but the peer runs {theirs}")]
    CountMismatch {
        /// Which protocol noticed.
        protocol: &'static str,
        /// The count this party was called with.
        ours: u64,
        /// The count the peer announced.
        theirs: u64,
    },
    /// An output slice whose length does not match the choices.
    #[error("OT extension: {choices} choice bits but an output slice of {outputs} blocks")]
    LengthMismatch {
        /// Number of choice bits.
        choices: usize,
        /// Length of the output slice.
        outputs: usize,
    },
    /// A `Δ` whose least significant bit is 0: free-XOR with point-and-permute needs it set.
    #[error("COT setup: delta must have its least significant bit set (point-and-permute)")]
    InvalidDelta,
}

/// The little-endian byte image of `blocks`, for sending without a copy.
pub(crate) fn blocks_as_bytes(blocks: &[Block]) -> &[u8] {
    // SAFETY: `Block` is `repr(transparent)` over `u128`: 16 initialised bytes, no padding. A
    // `u8` has alignment 1 and every byte is a valid `u8`, so the view is sound; it is the
    // little-endian image because the crate only builds on little-endian targets (see aes.rs).
    unsafe { core::slice::from_raw_parts(blocks.as_ptr().cast::<u8>(), 16 * blocks.len()) }
}

/// The mutable byte image of `blocks`, for receiving without a copy.
pub(crate) fn blocks_as_bytes_mut(blocks: &mut [Block]) -> &mut [u8] {
    // SAFETY: as for `blocks_as_bytes`; moreover every 16-byte pattern is a valid `u128`, so any
    // bytes written through the view leave valid blocks.
    unsafe { core::slice::from_raw_parts_mut(blocks.as_mut_ptr().cast::<u8>(), 16 * blocks.len()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_views_are_the_little_endian_image() {
        let mut blocks = [Block(0x0f0e_0d0c_0b0a_0908_0706_0504_0302_0100), Block(7)];
        let bytes = blocks_as_bytes(&blocks);
        assert_eq!(bytes[..16], blocks[0].to_bytes());
        assert_eq!(bytes[16..], blocks[1].to_bytes());
        blocks_as_bytes_mut(&mut blocks)[16] = 9;
        assert_eq!(blocks[1], Block(9));
    }
}
