//! Synthetic weights: the deterministic He-normal tensors a bundle with `pibench.synthetic`
//! omits, so that bundled models stay small and every reader materializes the same numbers.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The `pibench.synthetic` metadata entry: weights not stored are drawn from this seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Synthetic {
    /// The bundle's seed `N`.
    pub seed: u64,
}

/// 64-bit FNV-1a of a byte string (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`):
/// gives each tensor name its own stream under one seed.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The generator for tensor `name` of a bundle seeded with `seed`: ChaCha8 seeded (via
/// `seed_from_u64`) with `seed ⊕ fnv1a64(name)`.
pub fn tensor_rng(seed: u64, name: &str) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ fnv1a64(name.as_bytes()))
}

/// Fills `out` with standard normal samples by Box–Muller on pairs of `gen::<f64>()` draws
/// `(u1, u2)`: `r = sqrt(−2 ln(1 − u1))`, `z0 = r cos 2πu2`, `z1 = r sin 2πu2`, emitted in that
/// order (the last `z1` is dropped for an odd length). `1 − u1` keeps the log finite.
pub fn fill_standard_normal(rng: &mut impl Rng, scale: f64, out: &mut [f32]) {
    let mut chunks = out.chunks_exact_mut(2);
    for pair in &mut chunks {
        let (z0, z1) = box_muller(rng);
        pair[0] = (z0 * scale) as f32;
        pair[1] = (z1 * scale) as f32;
    }
    if let [last] = chunks.into_remainder() {
        *last = (box_muller(rng).0 * scale) as f32;
    }
}

fn box_muller(rng: &mut impl Rng) -> (f64, f64) {
    let u1: f64 = rng.gen();
    let u2: f64 = rng.gen();
    let r = (-2.0 * (1.0 - u1).ln()).sqrt();
    let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
    (r * c, r * s)
}

/// The synthetic weight of tensor `name`: `elements` He-normal values `N(0, 2 / fan_in)`,
/// row-major, as docs/FORMAT.md specifies.
///
/// Large tensors are filled in parallel: chunk `j` of [`CHUNK`] elements starts its own copy of
/// the stream at word `2 · CHUNK · j` (each element consumes one `u64`, two ChaCha words), so the
/// result is exactly the sequential stream.
pub fn he_normal(seed: u64, name: &str, elements: usize, fan_in: usize) -> Vec<f32> {
    let mut out = vec![0f32; elements];
    let scale = (2.0 / fan_in.max(1) as f64).sqrt();
    let base = tensor_rng(seed, name);
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(j, chunk)| {
            let mut rng = base.clone();
            rng.set_word_pos(2 * (CHUNK as u128) * j as u128);
            fill_standard_normal(&mut rng, scale, chunk);
        });
    out
}

/// Elements per parallel chunk of [`he_normal`] (even, so chunks hold whole Box–Muller pairs).
pub const CHUNK: usize = 1 << 15;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_known_answers() {
        // Published FNV-1a 64-bit test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn he_normal_is_deterministic_per_name_and_has_the_right_spread() {
        let a = he_normal(7, "layer1.0.conv1.weight", 64 * 64 * 9, 64 * 9);
        let b = he_normal(7, "layer1.0.conv1.weight", 64 * 64 * 9, 64 * 9);
        let c = he_normal(7, "layer1.0.conv2.weight", 64 * 64 * 9, 64 * 9);
        let d = he_normal(8, "layer1.0.conv1.weight", 64 * 64 * 9, 64 * 9);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        let n = a.len() as f64;
        let mean = a.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        let want: f64 = 2.0 / (64.0 * 9.0);
        assert!(mean.abs() < 0.1 * want.sqrt(), "mean {mean}");
        assert!((var / want - 1.0).abs() < 0.03, "var {var} want {want}");
        assert!(a.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn parallel_chunks_equal_the_sequential_stream() {
        let n = 3 * CHUNK + 7;
        let par = he_normal(5, "big", n, 2);
        let mut seq = vec![0f32; n];
        fill_standard_normal(&mut tensor_rng(5, "big"), 1.0, &mut seq);
        assert!(par.iter().zip(&seq).all(|(p, s)| *p == *s));
    }

    #[test]
    fn odd_lengths_are_a_prefix_of_the_even_stream() {
        let odd = he_normal(3, "w", 5, 1);
        let even = he_normal(3, "w", 6, 1);
        assert_eq!(&odd[..4], &even[..4]);
        assert_eq!(odd[4], even[4]);
    }
}
