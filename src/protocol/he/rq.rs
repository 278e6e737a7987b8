//! Arithmetic in R_q = Z_q[X]/(X^N + 1) in RNS form: the NTT-friendly primes, the negacyclic
//! number-theoretic transform, samplers, and the exact big-integer decoding of `round(t·x/q)`
//! for a power-of-two plaintext modulus t = 2^ℓ.
//!
//! Everything here is public-parameter arithmetic; the only data-dependent branches are the
//! modular reductions' final conditional subtractions, which the compiler turns into selects.

#![allow(clippy::needless_range_loop)] // limb and RNS loops index several arrays at once

use rand::Rng;
use rand_core::RngCore;

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

/// `a·b mod p` through a 128-bit product (for setup and cold paths).
#[inline(always)]
pub fn mulmod(a: u64, b: u64, p: u64) -> u64 {
    ((a as u128 * b as u128) % p as u128) as u64
}

fn powmod(mut b: u64, mut e: u64, p: u64) -> u64 {
    let mut r = 1u64;
    b %= p;
    while e > 0 {
        if e & 1 == 1 {
            r = mulmod(r, b, p);
        }
        b = mulmod(b, b, p);
        e >>= 1;
    }
    r
}

/// Deterministic Miller–Rabin for 64-bit integers.
fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    const BASES: [u64; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];
    for &b in &BASES {
        if n.is_multiple_of(b) {
            return n == b;
        }
    }
    let mut d = n - 1;
    let mut s = 0;
    while d.is_multiple_of(2) {
        d /= 2;
        s += 1;
    }
    'outer: for &a in &BASES {
        let mut x = powmod(a, d, n);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mulmod(x, x, n);
            if x == n - 1 {
                continue 'outer;
            }
        }
        return false;
    }
    true
}

/// Shoup's precomputed companion `floor(w·2^64 / p)` of a fixed multiplicand `w`.
#[inline(always)]
pub fn shoup(w: u64, p: u64) -> u64 {
    (((w as u128) << 64) / p as u128) as u64
}

/// `x·w mod p` for a fixed `w` with companion `ws` (any x < 2^64, p < 2^63).
#[inline(always)]
pub fn mul_shoup(x: u64, w: u64, ws: u64, p: u64) -> u64 {
    let q = ((x as u128 * ws as u128) >> 64) as u64;
    let r = x.wrapping_mul(w).wrapping_sub(q.wrapping_mul(p));
    if r >= p {
        r - p
    } else {
        r
    }
}

/// One RNS prime with its NTT tables.
pub struct Prime {
    /// The prime p ≡ 1 mod 2N.
    pub p: u64,
    psi: Vec<u64>,
    psi_s: Vec<u64>,
    ipsi: Vec<u64>,
    ipsi_s: Vec<u64>,
    n_inv: u64,
    n_inv_s: u64,
}

fn bitrev(x: usize, bits: u32) -> usize {
    x.reverse_bits() >> (usize::BITS - bits)
}

impl Prime {
    fn new(p: u64) -> Self {
        // A primitive 2N-th root of unity: g^((p−1)/2N) with ψ^N = −1.
        let mut g = 2u64;
        let psi = loop {
            let c = powmod(g, (p - 1) / (2 * N as u64), p);
            if powmod(c, N as u64, p) == p - 1 {
                break c;
            }
            g += 1;
        };
        let ipsi_root = powmod(psi, p - 2, p);
        let mut tab = vec![0u64; N];
        let mut itab = vec![0u64; N];
        let (mut a, mut b) = (1u64, 1u64);
        for i in 0..N {
            tab[bitrev(i, LOG_N)] = a;
            itab[bitrev(i, LOG_N)] = b;
            a = mulmod(a, psi, p);
            b = mulmod(b, ipsi_root, p);
        }
        let psi_s = tab.iter().map(|&w| shoup(w, p)).collect();
        let ipsi_s = itab.iter().map(|&w| shoup(w, p)).collect();
        let n_inv = powmod(N as u64, p - 2, p);
        Prime {
            p,
            psi: tab,
            psi_s,
            ipsi: itab,
            ipsi_s,
            n_inv,
            n_inv_s: shoup(n_inv, p),
        }
    }

    /// In-place forward negacyclic NTT (input in natural order, output bit-reversed).
    pub fn ntt(&self, a: &mut [u64]) {
        let p = self.p;
        let mut t = N;
        let mut m = 1;
        while m < N {
            t >>= 1;
            for i in 0..m {
                let j1 = 2 * i * t;
                let (w, ws) = (self.psi[m + i], self.psi_s[m + i]);
                let (lo, hi) = a[j1..j1 + 2 * t].split_at_mut(t);
                for (u, v) in lo.iter_mut().zip(hi.iter_mut()) {
                    let x = *u;
                    let y = mul_shoup(*v, w, ws, p);
                    let s = x + y;
                    *u = if s >= p { s - p } else { s };
                    *v = if x >= y { x - y } else { x + p - y };
                }
            }
            m <<= 1;
        }
    }

    /// In-place inverse of [`Prime::ntt`].
    pub fn intt(&self, a: &mut [u64]) {
        let p = self.p;
        let mut t = 1;
        let mut m = N;
        while m > 1 {
            let h = m >> 1;
            for i in 0..h {
                let j1 = 2 * i * t;
                let (w, ws) = (self.ipsi[h + i], self.ipsi_s[h + i]);
                let (lo, hi) = a[j1..j1 + 2 * t].split_at_mut(t);
                for (u, v) in lo.iter_mut().zip(hi.iter_mut()) {
                    let x = *u;
                    let y = *v;
                    let s = x + y;
                    *u = if s >= p { s - p } else { s };
                    let d = if x >= y { x - y } else { x + p - y };
                    *v = mul_shoup(d, w, ws, p);
                }
            }
            t <<= 1;
            m = h;
        }
        for x in a.iter_mut() {
            *x = mul_shoup(*x, self.n_inv, self.n_inv_s, p);
        }
    }
}

/// A fixed-width unsigned big integer, little-endian 64-bit limbs (enough for q·2).
pub type Big = [u64; 4];

fn big_mul_add(x: &Big, m: u64, a: u64) -> Big {
    let mut out = [0u64; 4];
    let mut carry = a as u128;
    for i in 0..4 {
        let v = x[i] as u128 * m as u128 + carry;
        out[i] = v as u64;
        carry = v >> 64;
    }
    out
}

fn big_ge(a: &Big, b: &Big) -> bool {
    for i in (0..4).rev() {
        if a[i] != b[i] {
            return a[i] > b[i];
        }
    }
    true
}

fn big_sub(a: &Big, b: &Big) -> Big {
    let mut out = [0u64; 4];
    let mut borrow = 0u64;
    for i in 0..4 {
        let (d1, b1) = a[i].overflowing_sub(b[i]);
        let (d2, b2) = d1.overflowing_sub(borrow);
        out[i] = d2;
        borrow = (b1 | b2) as u64;
    }
    out
}

fn big_shl1(a: &Big) -> Big {
    [
        a[0] << 1,
        (a[1] << 1) | (a[0] >> 63),
        (a[2] << 1) | (a[1] >> 63),
        (a[3] << 1) | (a[2] >> 63),
    ]
}

fn big_shr(a: &Big, k: u32) -> Big {
    let (w, b) = ((k / 64) as usize, k % 64);
    let mut out = [0u64; 4];
    for i in 0..4 {
        let lo = a.get(i + w).copied().unwrap_or(0);
        let hi = a.get(i + w + 1).copied().unwrap_or(0);
        out[i] = if b == 0 {
            lo
        } else {
            (lo >> b) | (hi << (64 - b))
        };
    }
    out
}

fn big_mod(a: &Big, p: u64) -> u64 {
    a.iter()
        .rev()
        .fold(0u128, |r, &l| ((r << 64) | l as u128) % p as u128) as u64
}

/// Floor of log2 of a non-zero big integer.
pub fn big_log2(a: &Big) -> u32 {
    for i in (0..4).rev() {
        if a[i] != 0 {
            return 64 * i as u32 + 63 - a[i].leading_zeros();
        }
    }
    0
}

/// The RNS basis and everything derived from q and t = 2^ℓ.
pub struct Context {
    /// The primes.
    pub primes: Vec<Prime>,
    /// q = Π p_i.
    pub q: Big,
    /// floor(q/2).
    q_half: Big,
    /// ℓ (t = 2^ℓ).
    pub ell: u32,
    /// Δ = floor(q / t) reduced modulo each prime.
    pub delta_mod: [u64; L],
    /// floor(log2 Δ).
    pub log_delta: u32,
    /// Garner constants: inv[i][j] = p_j^{-1} mod p_i for j < i.
    garner: [[u64; L]; L],
}

impl Context {
    /// The context for plaintext modulus 2^ℓ (1 ≤ ℓ ≤ 64).
    pub fn new(ell: u32) -> Self {
        let step = 2 * N as u64;
        let mut c = ((1u64 << PRIME_BITS) - 1) / step * step + 1;
        let mut ps = Vec::new();
        while ps.len() < L {
            if is_prime(c) {
                ps.push(c);
            }
            c -= step;
        }
        let mut q: Big = [1, 0, 0, 0];
        for &p in &ps {
            q = big_mul_add(&q, p, 0);
        }
        let delta = big_shr(&q, ell);
        let mut delta_mod = [0u64; L];
        let mut garner = [[0u64; L]; L];
        for i in 0..L {
            delta_mod[i] = big_mod(&delta, ps[i]);
            for j in 0..i {
                garner[i][j] = powmod(ps[j] % ps[i], ps[i] - 2, ps[i]);
            }
        }
        Context {
            primes: ps.into_iter().map(Prime::new).collect(),
            q,
            q_half: big_shr(&q, 1),
            ell,
            delta_mod,
            log_delta: big_log2(&delta),
            garner,
        }
    }

    /// The prime values.
    pub fn p(&self, i: usize) -> u64 {
        self.primes[i].p
    }

    /// Decode one coefficient given by its residues: `round(t·x/q) mod t`.
    pub fn decode(&self, res: [u64; L]) -> u64 {
        // Garner mixed radix: x = v0 + p0(v1 + p1(v2 + p2 v3)).
        let mut v = [0u64; L];
        for i in 0..L {
            let p = self.p(i);
            let mut x = res[i] % p;
            for j in 0..i {
                let d = (x + p - v[j] % p) % p;
                x = mulmod(d, self.garner[i][j], p);
            }
            v[i] = x;
        }
        let mut x: Big = [v[L - 1], 0, 0, 0];
        for j in (0..L - 1).rev() {
            x = big_mul_add(&x, self.p(j), v[j]);
        }
        // floor(x·2^ℓ/q) by ℓ restoring steps (x < q), then round with the remainder.
        let mut quo = 0u64;
        let mut rem = x;
        for _ in 0..self.ell {
            rem = big_shl1(&rem);
            quo <<= 1;
            if big_ge(&rem, &self.q) {
                rem = big_sub(&rem, &self.q);
                quo |= 1;
            }
        }
        if big_ge(&rem, &big_sub(&self.q, &self.q_half)) {
            quo = quo.wrapping_add(1);
        }
        if self.ell == 64 {
            quo
        } else {
            quo & ((1u64 << self.ell) - 1)
        }
    }
}

/// A polynomial in RNS form: `L` residue vectors of length N, one after the other.
pub type Poly = Vec<u64>;

/// A zero polynomial.
pub fn zero() -> Poly {
    vec![0u64; L * N]
}

/// The residues of signed integer coefficients.
pub fn from_signed(ctx: &Context, coeffs: &[i64]) -> Poly {
    let mut out = zero();
    for (i, pr) in ctx.primes.iter().enumerate() {
        let p = pr.p;
        for (o, &c) in out[i * N..(i + 1) * N].iter_mut().zip(coeffs) {
            *o = if c >= 0 {
                c as u64 % p
            } else {
                p - ((c.unsigned_abs()) % p)
            } % p;
        }
    }
    out
}

/// Forward NTT of every residue vector.
pub fn ntt(ctx: &Context, a: &mut Poly) {
    for (pr, chunk) in ctx.primes.iter().zip(a.chunks_mut(N)) {
        pr.ntt(chunk);
    }
}

/// Inverse NTT of every residue vector.
pub fn intt(ctx: &Context, a: &mut Poly) {
    for (pr, chunk) in ctx.primes.iter().zip(a.chunks_mut(N)) {
        pr.intt(chunk);
    }
}

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

/// Pointwise product with Shoup companions of the fixed factor.
pub fn mul_fixed(ctx: &Context, x: &[u64], w: &[u64], ws: &[u64], out: &mut [u64]) {
    for i in 0..L {
        let p = ctx.p(i);
        let r = i * N..(i + 1) * N;
        for (((o, &a), &b), &bs) in out[r.clone()]
            .iter_mut()
            .zip(&x[r.clone()])
            .zip(&w[r.clone()])
            .zip(&ws[r])
        {
            *o = mul_shoup(a, b, bs, p);
        }
    }
}

/// Shoup companions of every residue.
pub fn companions(ctx: &Context, w: &[u64]) -> Vec<u64> {
    w.chunks(N)
        .enumerate()
        .flat_map(|(i, c)| {
            let p = ctx.p(i);
            c.iter().map(move |&v| shoup(v, p))
        })
        .collect()
}

/// `a += b` residue-wise.
pub fn add_assign(ctx: &Context, a: &mut [u64], b: &[u64]) {
    for i in 0..L {
        let p = ctx.p(i);
        for (x, &y) in a[i * N..(i + 1) * N].iter_mut().zip(&b[i * N..(i + 1) * N]) {
            let s = *x + y;
            *x = if s >= p { s - p } else { s };
        }
    }
}

/// `a = −a` residue-wise.
pub fn neg_assign(ctx: &Context, a: &mut [u64]) {
    for i in 0..L {
        let p = ctx.p(i);
        for x in &mut a[i * N..(i + 1) * N] {
            *x = if *x == 0 { 0 } else { p - *x };
        }
    }
}

/// A random big integer of `bits` bits, reduced modulo each prime, minus 2^(bits−1): uniform in
/// [−2^(bits−1), 2^(bits−1)). Used for noise flooding.
pub fn flood_residues<R: RngCore>(ctx: &Context, rng: &mut R, bits: u32) -> [u64; L] {
    let mut v: Big = [0; 4];
    for (i, limb) in v.iter_mut().enumerate() {
        let lo = 64 * i as u32;
        if lo >= bits {
            break;
        }
        let r = rng.next_u64();
        *limb = if bits - lo >= 64 {
            r
        } else {
            r & ((1u64 << (bits - lo)) - 1)
        };
    }
    let mut half: Big = [0; 4];
    half[((bits - 1) / 64) as usize] = 1u64 << ((bits - 1) % 64);
    let mut out = [0u64; L];
    for (i, o) in out.iter_mut().enumerate() {
        let p = ctx.p(i);
        let a = big_mod(&v, p);
        let h = big_mod(&half, p);
        *o = if a >= h { a - h } else { a + p - h };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn primes_fit_the_security_bound() {
        let ctx = Context::new(64);
        for pr in &ctx.primes {
            assert!(is_prime(pr.p));
            assert_eq!(pr.p % (2 * N as u64), 1);
            assert!(pr.p < 1 << PRIME_BITS);
        }
        // 128-bit classical security for N = 8192 requires log2 q ≤ 218.
        assert!(big_log2(&ctx.q) < 218);
    }

    #[test]
    fn ntt_is_negacyclic_multiplication() {
        let ctx = Context::new(32);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let a: Vec<i64> = (0..N).map(|_| rng.gen_range(-50..50)).collect();
        let mut b = vec![0i64; N];
        for _ in 0..5 {
            b[rng.gen_range(0..N)] = rng.gen_range(-9..9);
        }
        // Schoolbook negacyclic product over the integers.
        let mut want = vec![0i64; N];
        for (j, &bj) in b.iter().enumerate() {
            if bj == 0 {
                continue;
            }
            for (i, &ai) in a.iter().enumerate() {
                let k = i + j;
                if k < N {
                    want[k] += ai * bj;
                } else {
                    want[k - N] -= ai * bj;
                }
            }
        }
        let (mut pa, mut pb) = (from_signed(&ctx, &a), from_signed(&ctx, &b));
        ntt(&ctx, &mut pa);
        ntt(&ctx, &mut pb);
        let pbs = companions(&ctx, &pb);
        let mut prod = zero();
        mul_fixed(&ctx, &pa, &pb, &pbs, &mut prod);
        intt(&ctx, &mut prod);
        assert_eq!(prod, from_signed(&ctx, &want));
    }

    #[test]
    fn decode_rounds_scaled_values() {
        for ell in [16u32, 37, 64] {
            let ctx = Context::new(ell);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(ell as u64);
            for _ in 0..200 {
                let m = if ell == 64 {
                    rng.next_u64()
                } else {
                    rng.next_u64() & ((1 << ell) - 1)
                };
                let e: i64 = rng.gen_range(-1_000_000..1_000_000);
                let mut res = [0u64; L];
                for (i, r) in res.iter_mut().enumerate() {
                    let p = ctx.p(i);
                    let dm = mulmod(ctx.delta_mod[i], m % p, p);
                    let em = if e >= 0 {
                        e as u64 % p
                    } else {
                        p - (e.unsigned_abs() % p)
                    };
                    *r = (dm + em) % p;
                }
                assert_eq!(ctx.decode(res), m);
            }
        }
    }
}
