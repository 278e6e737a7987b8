//! An RLWE engine: ring arithmetic in R_q = Z_q\[X\]/(X^8192 + 1) with q a product of four
//! 54-bit NTT primes in RNS form, plaintext modulus t = 2^ℓ. It depends on nothing else in
//! pibench; the `he` preprocessing backend (`protocol::he`) is built on it.
//!
//! - [`ntt`](mod@ntt): the negacyclic NTT over one prime and its modular arithmetic;
//! - [`rns`]: the RNS basis and everything derived from q and t ([`Context`]), polynomials as
//!   residue vectors ([`Poly`]);
//! - [`sample`]: uniform, ternary and centered-binomial polynomials, and flooding noise.

pub mod ntt;
pub mod rns;
pub mod sample;

pub use ntt::{mul_shoup, mulmod, shoup, Prime};
pub use rns::{
    add_assign, big_log2, companions, from_signed, intt, low_mask, mul_fixed, neg_assign, ntt,
    reply_bits, upload_drop_bits, zero, Big, Context, Poly,
};
pub use sample::{cbd, ternary, uniform_from_seed, Flood};

/// Ring degree N.
pub const N: usize = 8192;
/// log2 N.
pub const LOG_N: u32 = 13;
/// Number of RNS primes (q = p0·p1·p2·p3 < 2^216 ≤ 2^218, the 128-bit bound for N = 8192).
pub const L: usize = 4;
/// Bit size bound of each prime: every prime is below 2^PRIME_BITS.
pub const PRIME_BITS: u32 = 54;
/// Half-width of the centered binomial error distribution (σ = sqrt(η/2) ≈ 3.24).
pub const CBD_ETA: u32 = 21;
