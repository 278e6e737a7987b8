//! What Delphi-style (Gazelle SIMD) packing would move for the same linear steps: the yardstick
//! the `he` backend's traffic is reported against. An estimate from the geometry, not a run:
//! it counts ciphertexts only (no rotation keys, which SIMD packing needs and coefficient
//! packing does not), so it is a lower bound on that design's traffic.
//!
//! SIMD slots need a prime plaintext modulus `t ≡ 1 mod 2N`, so exact `Z_2^ℓ` shares take a CRT
//! over several plaintext primes of at most 60 bits (SEAL's limit) that together hold the
//! integer inner product plus a 40-bit statistical mask: `ℓ + wb + ⌈log2(C·kh·kw)⌉ + 41` bits.
//! Each prime is a full set of ciphertexts. Slots are filled as Gazelle does: `⌊N / (H·W)⌋`
//! channels per ciphertext (padding not counted, in the baseline's favour).

use super::pack::{Plan, WireCost};
use super::HeError;
use crate::plain::{FixedNetwork, LinearKind, StepKind};
use crate::rlwe::{Context, L, N};

/// Plaintext primes' bit size bound for SIMD batching (SEAL).
const SIMD_PRIME_BITS: u32 = 60;

/// The SIMD-packing estimate of one network.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SimdBaseline {
    /// Plaintext primes of the CRT (largest over the steps).
    pub crt_primes: u32,
    /// Ciphertexts the client uploads (over all steps and primes).
    pub ciphertexts_up: u64,
    /// Ciphertexts the server returns.
    pub ciphertexts_down: u64,
    /// Bytes with ciphertexts sent whole, as Delphi sends them: both polynomials, every RNS
    /// residue a 64-bit word, both ways.
    pub bytes_as_sent: u64,
    /// Bytes with this crate's own compression applied to SIMD packing too: seeded, compressed
    /// uploads and modulus-switched replies (all coefficients of both polynomials, since SIMD
    /// fills every slot).
    pub bytes_compressed: u64,
}

fn cts(channels: usize, plane: usize) -> u64 {
    if plane <= N {
        channels.div_ceil(N / plane) as u64
    } else {
        (channels * plane.div_ceil(N)) as u64
    }
}

/// The estimate for every linear step of `net`.
pub fn simd_baseline(net: &FixedNetwork) -> Result<SimdBaseline, HeError> {
    let ctx = Context::new(net.ring.ell);
    let wire = WireCost::of(&ctx);
    let mut out = SimdBaseline::default();
    let (mut up_ct, mut down_ct) = (0u64, 0u64);
    for (i, step) in net.steps.iter().enumerate() {
        let StepKind::Linear(lin) = &step.kind else {
            continue;
        };
        let in_len = super::input_len(net, i)?;
        let plan = Plan::new(i, &lin.kind, in_len, &wire)?;
        let wmax = plan
            .centered_weights(lin, net.ring.ell)
            .iter()
            .map(|w| w.unsigned_abs())
            .max()
            .unwrap_or(0);
        let wb = 64 - wmax.leading_zeros();
        let (c, in_plane, m, out_plane, patch) = match &lin.kind {
            LinearKind::Conv(g) => (
                g.in_channels,
                g.in_h * g.in_w,
                g.out_channels,
                g.out_h() * g.out_w(),
                g.in_channels * g.kh * g.kw,
            ),
            LinearKind::Fc { out_features } => (1, in_len, 1, *out_features, in_len),
            LinearKind::ChannelScale { channels, plane } => {
                (*channels, *plane, *channels, *plane, 1)
            }
        };
        let log_patch = usize::BITS - patch.saturating_sub(1).leading_zeros();
        let bits = net.ring.ell + wb + log_patch + 41;
        let k = bits.div_ceil(SIMD_PRIME_BITS);
        out.crt_primes = out.crt_primes.max(k);
        up_ct += k as u64 * cts(c, in_plane);
        down_ct += k as u64 * cts(m, out_plane);
    }
    let full = (2 * N * L * 8) as u64;
    out.ciphertexts_up = up_ct;
    out.ciphertexts_down = down_ct;
    out.bytes_as_sent = (up_ct + down_ct) * full;
    out.bytes_compressed =
        up_ct * wire.upload_ct as u64 + down_ct * 2 * N as u64 * wire.reply_coef as u64;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Shape, ValueId};
    use crate::plain::{LinearStep, Step};
    use crate::ring::kernels::ConvGeometry;
    use crate::ring::Ring;

    #[test]
    fn a_resnet_conv_costs_three_primes_of_eight_channel_ciphertexts() {
        let ring = Ring::new(64, 12).unwrap();
        let g = ConvGeometry {
            in_channels: 64,
            in_h: 32,
            in_w: 32,
            out_channels: 64,
            kh: 3,
            kw: 3,
            stride: 1,
            padding: 1,
        };
        // Weights of 13 bits: 64 + 13 + ⌈log2 576⌉ + 41 = 128 bits → three 60-bit primes.
        let weight = (0..64 * 64 * 9).map(|i| (i % 8000) as u64).collect();
        let net = FixedNetwork {
            ring,
            input_shape: Shape::Chw(64, 32, 32),
            steps: vec![Step {
                name: "conv".into(),
                inputs: vec![ValueId::Input],
                kind: StepKind::Linear(LinearStep {
                    kind: LinearKind::Conv(g),
                    weight,
                    bias: vec![],
                    input_trunc: 0,
                }),
                out_scale: 12,
                out_shape: Shape::Chw(64, 32, 32),
            }],
            output: ValueId::Layer(0),
            output_scale: 12,
            bn_path: crate::model::BnPath::Clean,
        };
        let b = simd_baseline(&net).unwrap();
        assert_eq!(b.crt_primes, 3);
        assert_eq!((b.ciphertexts_up, b.ciphertexts_down), (24, 24));
        assert_eq!(b.bytes_as_sent, 48 * 2 * 8192 * 4 * 8);
        let ctx = Context::new(64);
        let up = 24 * (32 + 8192 * ctx.upload_bytes as u64);
        assert_eq!(b.bytes_compressed, up + 24 * 2 * 8192 * 10);
    }

    #[test]
    fn slots_fill_by_channels_and_split_large_planes() {
        assert_eq!(cts(64, 1024), 8); // 8 channels of 32×32 per ciphertext
        assert_eq!(cts(3, 1024), 1);
        assert_eq!(cts(512, 16), 1);
        assert_eq!(cts(2, 3 * N), 6); // a plane larger than N spans several ciphertexts
    }
}
