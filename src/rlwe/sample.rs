//! Samplers of the scheme: uniform polynomials expanded from a seed, ternary secrets, centered
//! binomial errors, and the uniform noise that floods a reply.

use rand::Rng;
use rand_core::RngCore;

use super::rns::{zero, Big, Context, Poly};
use super::{CBD_ETA, L, N};

/// A uniform polynomial (in any domain) expanded from a 32-byte seed.
pub fn uniform_from_seed(ctx: &Context, seed: [u8; 32]) -> Poly {
    let mut rng = <rand_chacha::ChaCha12Rng as rand_core::SeedableRng>::from_seed(seed);
    let mut out = zero();
    for (i, pr) in ctx.primes.iter().enumerate() {
        for o in &mut out[i * N..(i + 1) * N] {
            *o = rng.gen_range(0..pr.p);
        }
    }
    out
}

/// Uniform ternary coefficients in {−1, 0, 1}.
pub fn ternary<R: RngCore>(rng: &mut R) -> Vec<i64> {
    (0..N)
        .map(|_| {
            // Rejection on two bits keeps the three values exactly equiprobable.
            loop {
                let v = rng.next_u32() & 3;
                if v < 3 {
                    break v as i64 - 1;
                }
            }
        })
        .collect()
}

/// Centered binomial error with parameter [`CBD_ETA`] (|e| ≤ η).
pub fn cbd<R: RngCore>(rng: &mut R) -> Vec<i64> {
    let mask = (1u64 << CBD_ETA) - 1;
    (0..N)
        .map(|_| {
            let r = rng.next_u64();
            (r & mask).count_ones() as i64 - ((r >> 32) & mask).count_ones() as i64
        })
        .collect()
}

/// Noise flooding: integers uniform in [−2^(bits−1), 2^(bits−1)), as residues. The offset
/// 2^(bits−1) is reduced once, not per sample.
#[derive(Clone, Copy, Debug)]
pub struct Flood {
    bits: u32,
    half: [u64; L],
}

impl Flood {
    /// Flooding of `bits` bits (1 ≤ bits ≤ 256).
    pub fn new(ctx: &Context, bits: u32) -> Self {
        let mut half: Big = [0; 4];
        half[((bits - 1) / 64) as usize] = 1u64 << ((bits - 1) % 64);
        Flood {
            bits,
            half: ctx.residues(&half),
        }
    }

    /// One sample: a uniform `bits`-bit integer minus 2^(bits−1), reduced modulo each prime.
    pub fn sample<R: RngCore>(&self, ctx: &Context, rng: &mut R) -> [u64; L] {
        let mut v: Big = [0; 4];
        for (i, limb) in v.iter_mut().enumerate() {
            let lo = 64 * i as u32;
            if lo >= self.bits {
                break;
            }
            let r = rng.next_u64();
            *limb = if self.bits - lo >= 64 {
                r
            } else {
                r & ((1u64 << (self.bits - lo)) - 1)
            };
        }
        let a = ctx.residues(&v);
        std::array::from_fn(|i| {
            let (p, h) = (ctx.p(i), self.half[i]);
            if a[i] >= h {
                a[i] - h
            } else {
                a[i] + p - h
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rlwe::rns::{big_ge, big_sub};
    use rand::SeedableRng;

    #[test]
    fn flooding_samples_are_centred_and_in_range() {
        let ctx = Context::new(64);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
        for bits in [10u32, 70, 149] {
            let flood = Flood::new(&ctx, bits);
            let (mut neg, mut pos) = (0, 0);
            for _ in 0..500 {
                let x = ctx.to_big(flood.sample(&ctx, &mut rng));
                // x ∈ [0, 2^(bits−1)) or x ∈ [q − 2^(bits−1), q).
                let mut half: Big = [0; 4];
                half[((bits - 1) / 64) as usize] = 1u64 << ((bits - 1) % 64);
                if big_ge(&x, &half) {
                    assert!(big_ge(&x, &big_sub(&ctx.q, &half)), "bits={bits}");
                    neg += 1;
                } else {
                    pos += 1;
                }
            }
            assert!(
                neg > 150 && pos > 150,
                "bits={bits}: {neg} negative, {pos} non-negative"
            );
        }
    }
}
