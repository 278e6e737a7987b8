//! Arithmetic in the ring Z_2^ℓ: fixed-point encoding, truncation, additive shares, and the fast
//! integer matrix and convolution kernels the server runs online.
//!
//! Ring elements are `u64` holding a value reduced modulo 2^ℓ (ℓ ≤ 64); wrapping arithmetic
//! followed by [`Ring::reduce`] is exact ring arithmetic. Signed values are two's complement in
//! ℓ bits.

pub mod igemm;
pub mod kernels;

use serde::{Deserialize, Serialize};

/// Errors in ring parameters.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RingError {
    /// ℓ or f out of range.
    #[error(
        "invalid ring parameters ℓ = {ell}, f = {frac}: need 8 ≤ ℓ ≤ 64 and 1 ≤ f, 2f + 2 < ℓ"
    )]
    InvalidParams {
        /// Ring bit width.
        ell: u32,
        /// Fractional bits.
        frac: u32,
    },
}

/// The ring Z_2^ℓ with fixed-point values of `frac` fractional bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ring {
    /// Bit width ℓ of the ring.
    pub ell: u32,
    /// Fractional bits f of activations and weights.
    pub frac: u32,
}

impl Default for Ring {
    fn default() -> Self {
        Ring {
            ell: Ring::DEFAULT_ELL,
            frac: Ring::DEFAULT_FRAC,
        }
    }
}

impl Ring {
    /// The default ring width ℓ (the command line's `--ell`).
    pub const DEFAULT_ELL: u32 = 64;
    /// The default fractional bits f (the command line's `--frac`).
    pub const DEFAULT_FRAC: u32 = 12;

    /// The ring Z_2^ℓ with f fractional bits; products of two values carry 2f bits, so
    /// 2f + 2 < ℓ is required for any headroom at all.
    pub fn new(ell: u32, frac: u32) -> Result<Self, RingError> {
        if !(8..=64).contains(&ell) || frac == 0 || 2 * frac + 2 >= ell {
            return Err(RingError::InvalidParams { ell, frac });
        }
        Ok(Ring { ell, frac })
    }

    /// 2^ℓ − 1.
    #[inline(always)]
    pub const fn mask(&self) -> u64 {
        if self.ell == 64 {
            u64::MAX
        } else {
            (1u64 << self.ell) - 1
        }
    }

    /// `x mod 2^ℓ`.
    #[inline(always)]
    pub const fn reduce(&self, x: u64) -> u64 {
        x & self.mask()
    }

    /// The signed value of a ring element (two's complement in ℓ bits).
    #[inline(always)]
    pub const fn to_signed(&self, x: u64) -> i64 {
        let shift = 64 - self.ell;
        ((x << shift) as i64) >> shift
    }

    /// The ring element of a signed value.
    #[inline(always)]
    pub const fn from_signed(&self, v: i64) -> u64 {
        (v as u64) & self.mask()
    }

    /// Encode a real number with `scale` fractional bits, rounding to nearest; values beyond the
    /// ring's range saturate at its ends.
    pub fn encode(&self, v: f64, scale: u32) -> u64 {
        let scaled = (v * (scale as f64).exp2()).round();
        let max = ((1u128 << (self.ell - 1)) - 1) as f64;
        let clamped = scaled.clamp(-max, max);
        self.from_signed(clamped as i64)
    }

    /// The bound below which a real value's encoding with `scale` fractional bits does not
    /// saturate: 2^(ℓ−1−scale). [`Ring::encode`] is exact (up to rounding) for `|v|` below it.
    pub fn encodable_limit(&self, scale: u32) -> f64 {
        (f64::from(self.ell) - 1.0 - f64::from(scale)).exp2()
    }

    /// Decode a ring element holding a value with `scale` fractional bits.
    pub fn decode(&self, x: u64, scale: u32) -> f64 {
        self.to_signed(x) as f64 / (scale as f64).exp2()
    }

    /// Exact arithmetic right shift of the signed value by `f` bits (floor division by 2^f).
    #[inline(always)]
    pub const fn trunc(&self, x: u64, f: u32) -> u64 {
        self.from_signed(self.to_signed(x) >> f)
    }

    /// Local (SecureML) truncation, the server's half: `a >> f` read as an unsigned ℓ-bit value.
    #[inline(always)]
    pub const fn trunc_share_server(&self, a: u64, f: u32) -> u64 {
        self.reduce(a) >> f
    }

    /// Local (SecureML) truncation, the client's half: `−((−c) >> f)`.
    ///
    /// With `trunc_share_server` on the other share, the sum is `floor(x / 2^f)` or one more,
    /// except with probability about `|x| / 2^ℓ` (the shares wrap), where `x = a + c`.
    #[inline(always)]
    pub const fn trunc_share_client(&self, c: u64, f: u32) -> u64 {
        let neg = self.reduce(c.wrapping_neg());
        self.reduce((neg >> f).wrapping_neg())
    }

    /// `a + b` in the ring.
    #[inline(always)]
    pub const fn add(&self, a: u64, b: u64) -> u64 {
        self.reduce(a.wrapping_add(b))
    }

    /// `a − b` in the ring.
    #[inline(always)]
    pub const fn sub(&self, a: u64, b: u64) -> u64 {
        self.reduce(a.wrapping_sub(b))
    }

    /// `a · b` in the ring.
    #[inline(always)]
    pub const fn mul(&self, a: u64, b: u64) -> u64 {
        self.reduce(a.wrapping_mul(b))
    }

    /// `x · 2^k` in the ring (aligning a value of scale s to scale s + k).
    #[inline(always)]
    pub const fn shl(&self, x: u64, k: u32) -> u64 {
        self.reduce(x << k)
    }

    /// Probability that one local truncation of a value of magnitude below 2^`value_bits` fails
    /// by wrapping (SecureML): 2^(value_bits + 1 − ℓ).
    pub fn local_trunc_failure_probability(&self, value_bits: u32) -> f64 {
        ((value_bits as f64) + 1.0 - self.ell as f64)
            .exp2()
            .min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn params_are_checked() {
        assert!(Ring::new(64, 12).is_ok());
        assert!(Ring::new(32, 15).is_err());
        assert!(Ring::new(65, 12).is_err());
        assert!(Ring::new(64, 0).is_err());
    }

    #[test]
    fn values_below_the_encodable_limit_round_trip_and_the_limit_saturates() {
        let r = Ring::new(24, 6).unwrap();
        let lim = r.encodable_limit(6);
        assert_eq!(lim, 131072.0);
        let v = lim - 1.0;
        assert_eq!(r.decode(r.encode(v, 6), 6), v);
        assert!(r.decode(r.encode(lim * 4.0, 6), 6) < lim);
    }

    #[test]
    fn encode_decode_round_trip() {
        let r = Ring::new(40, 12).unwrap();
        for v in [0.0, 1.0, -1.0, 3.25, -7.5, 1e-4, -123.456] {
            let x = r.encode(v, 12);
            assert!((r.decode(x, 12) - v).abs() <= 0.5 / 4096.0 + 1e-12, "{v}");
            assert_eq!(x & !r.mask(), 0);
        }
    }

    proptest! {
        #[test]
        fn exact_truncation_is_floor(v in -(1i64 << 40)..(1i64 << 40), f in 1u32..20) {
            let r = Ring::new(64, 12).unwrap();
            prop_assert_eq!(r.to_signed(r.trunc(r.from_signed(v), f)), v.div_euclid(1 << f));
        }

        #[test]
        fn local_truncation_is_within_one_ulp(
            v in -(1i64 << 30)..(1i64 << 30),
            share in any::<u64>(),
            ell in prop::sample::select(vec![48u32, 56, 64]),
            f in 1u32..16,
        ) {
            let r = Ring::new(ell, 12).unwrap();
            let x = r.from_signed(v);
            let c = r.reduce(share);
            let a = r.sub(x, c);
            let t = r.add(r.trunc_share_server(a, f), r.trunc_share_client(c, f));
            let want = v.div_euclid(1 << f);
            let got = r.to_signed(t);
            // The shares wrap (probability about 2^(31 - ℓ)) unless 0 ≤ v + (−c mod 2^ℓ) < 2^ℓ;
            // otherwise only the documented ±1 outcome is allowed.
            let neg_c = r.reduce(c.wrapping_neg()) as i128;
            let wrapped = !(0..(1i128 << ell)).contains(&(v as i128 + neg_c));
            if !wrapped {
                prop_assert!(got == want || got == want + 1, "v={} got={} want={}", v, got, want);
            }
        }

        #[test]
        fn ring_ops_match_i128(a in any::<i64>(), b in any::<i64>(), ell in 8u32..=64) {
            let r = Ring { ell, frac: 1 };
            let m = 1i128 << ell;
            let red = |x: i128| x.rem_euclid(m) as u64;
            let (ua, ub) = (r.from_signed(a), r.from_signed(b));
            prop_assert_eq!(r.add(ua, ub), red(a as i128 + b as i128));
            prop_assert_eq!(r.sub(ua, ub), red(a as i128 - b as i128));
            prop_assert_eq!(r.mul(ua, ub), red((a as i128).wrapping_mul(b as i128)));
        }
    }
}
