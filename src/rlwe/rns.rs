//! Arithmetic in R_q = Z_q\[X\]/(X^N + 1) in RNS form: the basis of NTT-friendly primes and what
//! derives from q and t = 2^ℓ ([`Context`]: the exact big-integer decoding of `round(t·x/q)`,
//! modulus switching, upload compression), and polynomials as residue vectors.
//!
//! Not hardened against timing: conversions of signed values branch on the sign, and a few
//! reductions use hardware division, whose latency can depend on the value on some CPUs. The
//! backend targets the semi-honest model, where the parties do not time each other's work
//! (docs/HE.md lists this under "not done").

#![allow(clippy::needless_range_loop)] // limb and RNS loops index several arrays at once

use super::ntt::{is_prime, mul_shoup, mulmod, powmod, shoup, Prime};
use super::{L, N, PRIME_BITS};

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

pub(super) fn big_ge(a: &Big, b: &Big) -> bool {
    for i in (0..4).rev() {
        if a[i] != b[i] {
            return a[i] > b[i];
        }
    }
    true
}

pub(super) fn big_sub(a: &Big, b: &Big) -> Big {
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

fn big_add(a: &Big, b: &Big) -> Big {
    let mut out = [0u64; 4];
    let mut carry = false;
    for i in 0..4 {
        let (s1, c1) = a[i].overflowing_add(b[i]);
        let (s2, c2) = s1.overflowing_add(carry as u64);
        out[i] = s2;
        carry = c1 | c2;
    }
    out
}

fn big_div_u64(a: &Big, p: u64) -> Big {
    let mut out = [0u64; 4];
    let mut r = 0u128;
    for i in (0..4).rev() {
        let cur = (r << 64) | a[i] as u128;
        out[i] = (cur / p as u128) as u64;
        r = cur % p as u128;
    }
    out
}

/// The mask of the low `bits` bits (bits ≤ 128).
pub fn low_mask(bits: u32) -> u128 {
    if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

/// `Σ_j v_j·w_j mod p` for limbs `v_j` and Shoup pairs `w_j` (e.g. `2^(64j) mod p`).
#[inline(always)]
fn reduce_limbs(v: &Big, w: &[(u64, u64); 4], p: u64) -> u64 {
    v.iter().zip(w).fold(0u64, |acc, (&limb, &(w, ws))| {
        let s = acc + mul_shoup(limb, w, ws, p);
        if s >= p {
            s - p
        } else {
            s
        }
    })
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
    /// Shoup companions of `delta_mod`.
    delta_s: [u64; L],
    /// Shoup companions of `garner`.
    garner_s: [[u64; L]; L],
    /// `2^(64·j) mod p_i` with Shoup companions, to reduce a big integer.
    limb_pow: [[(u64, u64); 4]; L],
    /// Bits K of a modulus-switched reply coefficient (see [`reply_bits`]).
    pub reply_bits: u32,
    /// Low bits d dropped from each uploaded coefficient (see [`upload_drop_bits`]).
    pub drop_bits: u32,
    /// Bytes of one compressed upload coefficient.
    pub upload_bytes: usize,
    /// `(q/p_i)^{-1} mod p_i` with its Shoup companion (CRT reconstruction).
    hat_inv: [(u64, u64); L],
    /// `floor(2^(K+64) / p_i)`: fixed-point `2^K/p_i` with 64 fractional bits.
    switch_f: [u128; L],
    /// `2^(64·j + d) mod p_i` with Shoup companions, to expand a compressed upload.
    expand: [[(u64, u64); 4]; L],
    /// `p_0^{-1} mod p_1` (two-prime CRT of the client's `y1·s`).
    p0_inv_p1: u64,
}

/// Bits K of each modulus-switched reply coefficient: ℓ + 16 rounded up to whole bytes, so the
/// rounding error of the switch (≤ (N+1)(1/2 + 2^−8) ≈ 4129) and the flooded noise (≤ 2^(K−ℓ−2)) stay below
/// 2^(K−ℓ−1) and decryption remains exact.
pub fn reply_bits(ell: u32) -> u32 {
    (ell + 16).div_ceil(8) * 8
}

/// Low bits d = ℓ + 1 dropped from each coefficient of an uploaded `b`: the rounding error
/// (≤ 2^ℓ) is then no larger than the `q mod t` term the noise budget already carries.
pub fn upload_drop_bits(ell: u32) -> u32 {
    ell + 1
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
        let reply = reply_bits(ell);
        let drop = upload_drop_bits(ell);
        let mut hat_inv = [(0u64, 0u64); L];
        let mut switch_f = [0u128; L];
        let mut expand = [[(0u64, 0u64); 4]; L];
        for i in 0..L {
            let p = ps[i];
            let hat = ps
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .fold(1u64, |a, (_, &pj)| mulmod(a, pj, p));
            let inv = powmod(hat, p - 2, p);
            hat_inv[i] = (inv, shoup(inv, p));
            let mut pow: Big = [0; 4];
            pow[((reply + 64) / 64) as usize] = 1u64 << ((reply + 64) % 64);
            let f = big_div_u64(&pow, p);
            assert!(f[2] == 0 && f[3] == 0, "2^(K+64)/p fits 128 bits");
            switch_f[i] = f[0] as u128 | (f[1] as u128) << 64;
            for (j, e) in expand[i].iter_mut().enumerate() {
                let v = powmod(2, 64 * j as u64 + drop as u64, p);
                *e = (v, shoup(v, p));
            }
        }
        let mut garner_s = [[0u64; L]; L];
        let mut limb_pow = [[(0u64, 0u64); 4]; L];
        for i in 0..L {
            for j in 0..i {
                garner_s[i][j] = shoup(garner[i][j], ps[i]);
            }
            for (j, e) in limb_pow[i].iter_mut().enumerate() {
                let v = powmod(2, 64 * j as u64, ps[i]);
                *e = (v, shoup(v, ps[i]));
            }
        }
        let upload_bits = big_log2(&q) + 1 - drop + 1;
        Context {
            primes: ps.iter().copied().map(Prime::new).collect(),
            q,
            q_half: big_shr(&q, 1),
            ell,
            delta_mod,
            log_delta: big_log2(&delta),
            garner,
            garner_s,
            limb_pow,
            delta_s: std::array::from_fn(|i| shoup(delta_mod[i], ps[i])),
            reply_bits: reply,
            drop_bits: drop,
            upload_bytes: upload_bits.div_ceil(8) as usize,
            hat_inv,
            switch_f,
            expand,
            p0_inv_p1: powmod(ps[0] % ps[1], ps[1] - 2, ps[1]),
        }
    }

    /// `Δ·m mod p_i` for any 64-bit `m`.
    #[inline(always)]
    pub fn delta_times(&self, i: usize, m: u64) -> u64 {
        mul_shoup(m, self.delta_mod[i], self.delta_s[i], self.p(i))
    }

    /// The integer in [0, q) with residues `res` (Garner's mixed radix).
    pub(super) fn to_big(&self, res: [u64; L]) -> Big {
        let mut v = [0u64; L];
        for i in 0..L {
            let p = self.p(i);
            let mut x = res[i] % p;
            for j in 0..i {
                // v[j] < p_j < 2p_i: one conditional subtraction reduces it.
                let vj = if v[j] >= p { v[j] - p } else { v[j] };
                let d = if x >= vj { x - vj } else { x + p - vj };
                x = mul_shoup(d, self.garner[i][j], self.garner_s[i][j], p);
            }
            v[i] = x;
        }
        let mut x: Big = [v[L - 1], 0, 0, 0];
        for j in (0..L - 1).rev() {
            x = big_mul_add(&x, self.p(j), v[j]);
        }
        x
    }

    /// Modulus switching of one coefficient to 2^K ([`reply_bits`]): `round(x·2^K/q) mod 2^K`
    /// up to an error of at most 1/2 + 2^−8, from `x/q ≡ Σ_i [x·(q/p_i)^{-1}]_{p_i} / p_i
    /// (mod 1)` in 64-bit fixed point, with no big-integer division.
    pub fn switch(&self, res: [u64; L]) -> u128 {
        let (mut int, mut frac) = (0u128, 0u128);
        for i in 0..L {
            let p = self.p(i);
            let (h, hs) = self.hat_inv[i];
            let y = mul_shoup(res[i], h, hs, p) as u128;
            let f = self.switch_f[i];
            let lo = y * (f as u64 as u128);
            int = int.wrapping_add(y * (f >> 64)).wrapping_add(lo >> 64);
            frac += lo as u64 as u128;
        }
        let v = int.wrapping_add((frac + (1 << 63)) >> 64);
        v & low_mask(self.reply_bits)
    }

    /// Residues of a reply coefficient `y < 2^K` lifted to R_q.
    pub fn lift(&self, y: u128) -> [u64; L] {
        std::array::from_fn(|i| self.reduce_u128(i, y))
    }

    /// `v mod p_i` for a 128-bit accumulator.
    #[inline(always)]
    pub fn reduce_u128(&self, i: usize, v: u128) -> u64 {
        reduce_limbs(
            &[v as u64, (v >> 64) as u64, 0, 0],
            &self.limb_pow[i],
            self.p(i),
        )
    }

    /// Residues of a 256-bit integer.
    pub fn residues(&self, v: &Big) -> [u64; L] {
        std::array::from_fn(|i| reduce_limbs(v, &self.limb_pow[i], self.p(i)))
    }

    /// The exact integer with residues `(r0, r1)` modulo `p0·p1`, centered, reduced mod 2^K.
    /// Correct for any integer of magnitude below `p0·p1/2` (≈ 2^107).
    pub fn crt2_mod_reply(&self, r0: u64, r1: u64) -> u128 {
        let (p0, p1) = (self.p(0), self.p(1));
        let d = (r1 % p1 + p1 - r0 % p1) % p1;
        let k = mulmod(d, self.p0_inv_p1, p1);
        let m = p0 as u128 * p1 as u128;
        let mut z = r0 as u128 + p0 as u128 * k as u128;
        if z > m / 2 {
            z = z.wrapping_sub(m);
        }
        z & low_mask(self.reply_bits)
    }

    /// The compressed upload of one coefficient: `round(x / 2^d)` (at most
    /// [`Context::upload_bytes`] bytes, little-endian limbs).
    pub fn compress(&self, res: [u64; L]) -> Big {
        let mut half: Big = [0; 4];
        half[(self.drop_bits - 1) as usize / 64] = 1u64 << ((self.drop_bits - 1) % 64);
        big_shr(&big_add(&self.to_big(res), &half), self.drop_bits)
    }

    /// Residues of `v·2^d` for a compressed upload coefficient `v` (any 256-bit value).
    pub fn expand(&self, v: &Big) -> [u64; L] {
        std::array::from_fn(|i| reduce_limbs(v, &self.expand[i], self.p(i)))
    }

    /// The prime values.
    pub fn p(&self, i: usize) -> u64 {
        self.primes[i].p
    }

    /// Decode one coefficient given by its residues: `round(t·x/q) mod t`.
    pub fn decode(&self, res: [u64; L]) -> u64 {
        let x = self.to_big(res);
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
            let m = c.unsigned_abs();
            let r = if m < p { m } else { m % p };
            *o = if c >= 0 || r == 0 { r } else { p - r };
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, RngCore, SeedableRng};

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

    fn random_residues(ctx: &Context, rng: &mut impl RngCore) -> [u64; L] {
        std::array::from_fn(|i| rng.next_u64() % ctx.p(i))
    }

    /// `round(x·2^bits/q) mod 2^bits` by restoring division (the slow, obviously exact way).
    fn reference_switch(ctx: &Context, x: &Big, bits: u32) -> u128 {
        let (mut quo, mut rem) = (0u128, *x);
        for _ in 0..bits {
            rem = big_shl1(&rem);
            quo <<= 1;
            if big_ge(&rem, &ctx.q) {
                rem = big_sub(&rem, &ctx.q);
                quo |= 1;
            }
        }
        if big_ge(&big_shl1(&rem), &ctx.q) {
            quo += 1;
        }
        quo & low_mask(bits)
    }

    #[test]
    fn modulus_switching_rounds_to_within_one() {
        for ell in [20u32, 41, 64] {
            let ctx = Context::new(ell);
            let k = ctx.reply_bits;
            assert!(k >= ell + 16 && k.is_multiple_of(8));
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
            for _ in 0..2000 {
                let res = random_residues(&ctx, &mut rng);
                let want = reference_switch(&ctx, &ctx.to_big(res), k);
                let got = ctx.switch(res);
                let diff = got.wrapping_sub(want) & low_mask(k);
                assert!(diff <= 1 || diff == low_mask(k), "ℓ={ell}: {got} vs {want}");
            }
            // Lifting a switched value and reconstructing it is the identity.
            let y = 0xdead_beef_1234_5678_9abc_u128 & low_mask(k);
            let r = ctx.lift(y);
            assert_eq!(ctx.crt2_mod_reply(r[0], r[1]), y);
        }
    }

    #[test]
    fn two_prime_crt_recovers_signed_integers_mod_2k() {
        let ctx = Context::new(64);
        let k = ctx.reply_bits;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        for _ in 0..1000 {
            // |z| < 2^100, below p0·p1/2.
            let mag = (rng.next_u64() as u128) << 36 | rng.next_u64() as u128 >> 28;
            let z: i128 = if rng.next_u32() & 1 == 1 {
                -(mag as i128)
            } else {
                mag as i128
            };
            let res = |p: u64| z.rem_euclid(p as i128) as u64;
            let got = ctx.crt2_mod_reply(res(ctx.p(0)), res(ctx.p(1)));
            assert_eq!(got, (z as u128) & low_mask(k));
        }
    }

    #[test]
    fn upload_compression_errs_by_at_most_half_a_step() {
        for ell in [16u32, 64] {
            let ctx = Context::new(ell);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
            let bound: Big = {
                let mut h = [0u64; 4];
                h[(ctx.drop_bits - 1) as usize / 64] = 1u64 << ((ctx.drop_bits - 1) % 64);
                h
            };
            for _ in 0..2000 {
                let res = random_residues(&ctx, &mut rng);
                let v = ctx.compress(res);
                assert!(big_log2(&v) < 8 * ctx.upload_bytes as u32);
                // err = expand(v) − x mod q, centered, must be within ±2^(d−1).
                let back = ctx.expand(&v);
                let err: [u64; L] = std::array::from_fn(|i| {
                    let p = ctx.p(i);
                    (back[i] + p - res[i]) % p
                });
                let e = ctx.to_big(err);
                let small = !big_ge(&e, &big_add(&bound, &[1, 0, 0, 0]));
                let neg_small = !big_ge(&big_sub(&ctx.q, &e), &big_add(&bound, &[1, 0, 0, 0]));
                assert!(small || neg_small, "ℓ={ell}");
            }
        }
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
