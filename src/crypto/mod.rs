//! Cryptographic primitives: the 128-bit [`Block`], fixed-key AES and the correlation-robust
//! hashes built on it, the AES-CTR PRG, base oblivious transfer on Ristretto and OT extension.
//!
//! Nothing here knows about circuits or networks; `gc` and `protocol` build on these pieces.

pub mod aes;
pub mod block;
pub mod buffer;
pub mod ot;
pub mod prg;
#[cfg(target_arch = "x86_64")]
pub mod vaes;

pub use self::aes::{FixedKeyAes, FIXED_KEY_AES};
pub use self::block::{Block, BlockChannel};
pub use self::prg::Prg;
