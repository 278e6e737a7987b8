//! The negacyclic number-theoretic transform over one NTT-friendly prime, with the modular
//! arithmetic it needs (Shoup multiplication with precomputed companions, Harvey's lazy
//! reduction) and the primality test that finds the primes.

#![allow(clippy::needless_range_loop)] // butterfly loops index several tables at once

use super::{LOG_N, N};

/// `a·b mod p` through a 128-bit product (for setup and cold paths).
#[inline(always)]
pub fn mulmod(a: u64, b: u64, p: u64) -> u64 {
    ((a as u128 * b as u128) % p as u128) as u64
}

pub(super) fn powmod(mut b: u64, mut e: u64, p: u64) -> u64 {
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
pub(super) fn is_prime(n: u64) -> bool {
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

/// `x·w mod p` up to one extra p: the result is in [0, 2p) (Harvey's lazy reduction).
#[inline(always)]
fn mul_shoup_lazy(x: u64, w: u64, ws: u64, p: u64) -> u64 {
    let q = ((x as u128 * ws as u128) >> 64) as u64;
    x.wrapping_mul(w).wrapping_sub(q.wrapping_mul(p))
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
    pub(super) fn new(p: u64) -> Self {
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
    /// Harvey's lazy butterflies: values stay in [0, 4p) between stages (p < 2^54), reduced once
    /// at the end.
    pub fn ntt(&self, a: &mut [u64]) {
        let p = self.p;
        let two_p = 2 * p;
        let mut t = N;
        let mut m = 1;
        while m < N {
            t >>= 1;
            for i in 0..m {
                let j1 = 2 * i * t;
                let (w, ws) = (self.psi[m + i], self.psi_s[m + i]);
                let (lo, hi) = a[j1..j1 + 2 * t].split_at_mut(t);
                for (u, v) in lo.iter_mut().zip(hi.iter_mut()) {
                    let x = if *u >= two_p { *u - two_p } else { *u };
                    let y = mul_shoup_lazy(*v, w, ws, p);
                    *u = x + y;
                    *v = x + two_p - y;
                }
            }
            m <<= 1;
        }
        for x in a.iter_mut() {
            let y = if *x >= two_p { *x - two_p } else { *x };
            *x = if y >= p { y - p } else { y };
        }
    }

    /// In-place inverse of [`Prime::ntt`] (input in [0, 2p), output in [0, p)).
    pub fn intt(&self, a: &mut [u64]) {
        let p = self.p;
        let two_p = 2 * p;
        let mut t = 1;
        let mut m = N;
        while m > 1 {
            let h = m >> 1;
            for i in 0..h {
                let j1 = 2 * i * t;
                let (w, ws) = (self.ipsi[h + i], self.ipsi_s[h + i]);
                let (lo, hi) = a[j1..j1 + 2 * t].split_at_mut(t);
                for (u, v) in lo.iter_mut().zip(hi.iter_mut()) {
                    let (x, y) = (*u, *v);
                    let s = x + y;
                    *u = if s >= two_p { s - two_p } else { s };
                    *v = mul_shoup_lazy(x + two_p - y, w, ws, p);
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
