//! The `he` linear-preprocessing backend: a real two-party protocol in which the client obtains
//! `M·c − s mod 2^ℓ` under RLWE homomorphic encryption, without learning M and without the
//! server learning `c`.
//!
//! Scheme: BFV-style symmetric RLWE over R_q = Z_q[X]/(X^8192 + 1), q a 215-bit product of four
//! 54-bit NTT primes (128-bit classical security per the homomorphicencryption.org standard:
//! log q ≤ 218 for N = 8192, ternary secret, σ ≈ 3.2), plaintext modulus t = 2^ℓ with
//! coefficient encoding (Cheetah, Huang et al. 2022): a convolution is one polynomial product
//! per (input-channel block, output-channel block, row tile), with no rotations and no
//! key-switching. Strided convolutions are computed at stride 1 and sub-sampled; fully connected
//! layers are 1×1 convolutions on a 1×1 image; per-channel scales are diagonal 1×1 convolutions.
//!
//! The server re-randomizes every result with a fresh public-key encryption of zero and floods
//! its noise with a uniform term 2^40 times larger than the proven noise bound, and adds a fresh
//! uniform mask to *every* coefficient (the unused ones too), so the client learns only
//! `M·c − s`. Keys are fresh per backend instance (one per inference). See `docs/HE.md`.

pub mod pack;
pub mod rq;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore};
use rayon::prelude::*;
use std::sync::Arc;

use super::prepro::{ClientPreprocessing, ServerPreprocessing};
use super::ProtocolError;
use crate::net::{Channel, ChannelExt};
use crate::plain::{FixedNetwork, StepKind};
use pack::Plan;
use rq::{Context, Poly, L, N};

/// Statistical security of noise flooding (bits).
pub const FLOOD_SECURITY: u32 = 40;

/// Errors of the `he` backend.
#[derive(Debug, thiserror::Error)]
pub enum HeError {
    /// The ring is outside what the parameters carry.
    #[error("the he backend supports 1 ≤ ℓ ≤ 64, got ℓ = {0}")]
    UnsupportedRing(u32),
    /// A layer's geometry does not fit the ring degree.
    #[error("step {step}: {why}")]
    Geometry {
        /// The step.
        step: usize,
        /// What does not fit.
        why: String,
    },
    /// The server's weights are too large for the noise budget of the 128-bit parameters.
    #[error(
        "step {step}: weights of {weight_bits} bits (with {terms} terms per output and ℓ = {ell}) \
         exceed the noise budget of the 128-bit HE parameters (at most {max_weight_bits} weight \
         bits here); use a smaller ℓ"
    )]
    WeightsTooLarge {
        /// The step.
        step: usize,
        /// Bits of the largest centered weight.
        weight_bits: u32,
        /// Largest weight bits the budget allows.
        max_weight_bits: i64,
        /// Products summed into one coefficient.
        terms: usize,
        /// ℓ.
        ell: u32,
    },
    /// A step asked of the backend is not a linear step.
    #[error("step {0} is not a linear step")]
    NotLinear(usize),
}

impl From<HeError> for ProtocolError {
    fn from(e: HeError) -> Self {
        ProtocolError::Internal(format!("he backend: {e}"))
    }
}

/// Check that the `he` backend can run at ring width ℓ.
pub fn check_ring(ell: u32) -> Result<(), HeError> {
    if (1..=64).contains(&ell) {
        Ok(())
    } else {
        Err(HeError::UnsupportedRing(ell))
    }
}

fn linear_plan(net: &FixedNetwork, step: usize, in_len: usize) -> Result<Plan, HeError> {
    match net.steps.get(step).map(|s| &s.kind) {
        Some(StepKind::Linear(l)) => Plan::new(step, &l.kind, in_len),
        _ => Err(HeError::NotLinear(step)),
    }
}

fn input_len(net: &FixedNetwork, step: usize) -> Result<usize, HeError> {
    match net.steps.get(step).map(|s| s.inputs.first().copied()) {
        Some(Some(crate::model::ValueId::Input)) => Ok(net.input_shape.elements()),
        Some(Some(crate::model::ValueId::Layer(j))) => Ok(net.steps[j].out_shape.elements()),
        _ => Err(HeError::NotLinear(step)),
    }
}

fn send_poly(ch: &mut dyn Channel, p: &[u64]) -> Result<(), ProtocolError> {
    ch.send_u64s(p)?;
    Ok(())
}

fn recv_poly(ctx: &Context, ch: &mut dyn Channel) -> Result<Poly, ProtocolError> {
    let mut p = rq::zero();
    ch.recv_u64s(&mut p)?;
    // Reduce rather than trust the peer: out-of-range residues must not break the arithmetic.
    for (i, chunk) in p.chunks_mut(N).enumerate() {
        let q = ctx.p(i);
        chunk.iter_mut().for_each(|v| *v %= q);
    }
    Ok(p)
}

fn recv_seed(ch: &mut dyn Channel) -> Result<[u8; 32], ProtocolError> {
    let mut s = [0u8; 32];
    ch.recv(&mut s)?;
    Ok(s)
}

/// The client's half: holds the fresh secret key of this inference.
pub struct HeClient {
    net: Arc<FixedNetwork>,
    ctx: Arc<Context>,
    s: Poly,
    s_comp: Vec<u64>,
    rng: ChaCha20Rng,
    pk_sent: bool,
}

impl std::fmt::Debug for HeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeClient").finish_non_exhaustive()
    }
}

impl HeClient {
    /// A client with a fresh key for one inference on `net` (only its public geometry is used).
    pub fn new(net: Arc<FixedNetwork>) -> Result<Self, HeError> {
        check_ring(net.ring.ell)?;
        let ctx = Arc::new(Context::new(net.ring.ell));
        let mut rng = ChaCha20Rng::from_rng(OsRng).expect("OS randomness");
        let mut s = rq::from_signed(&ctx, &rq::ternary(&mut rng));
        rq::ntt(&ctx, &mut s);
        let s_comp = rq::companions(&ctx, &s);
        Ok(HeClient {
            net,
            ctx,
            s,
            s_comp,
            rng,
            pk_sent: false,
        })
    }

    /// `(seed, b̂)` with `b = −a·s + e + Δ·m`, `a` expanded from `seed`, all in NTT form.
    fn encrypt(&self, m: &[u64], seed: [u8; 32], err_seed: [u8; 32]) -> Poly {
        let ctx = &self.ctx;
        let mut erng = ChaCha20Rng::from_seed(err_seed);
        let e = rq::cbd(&mut erng);
        let mut b = rq::from_signed(ctx, &e);
        for i in 0..L {
            let p = ctx.p(i);
            let d = ctx.delta_mod[i];
            for (x, &mv) in b[i * N..(i + 1) * N].iter_mut().zip(m) {
                *x = (*x + rq::mulmod(d, mv % p, p)) % p;
            }
        }
        rq::ntt(ctx, &mut b);
        let a = rq::uniform_from_seed(ctx, seed);
        let mut as_ = rq::zero();
        rq::mul_fixed(ctx, &a, &self.s, &self.s_comp, &mut as_);
        rq::neg_assign(ctx, &mut as_);
        rq::add_assign(ctx, &mut b, &as_);
        b
    }

    fn seeds(&mut self) -> ([u8; 32], [u8; 32]) {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        self.rng.fill_bytes(&mut a);
        self.rng.fill_bytes(&mut b);
        (a, b)
    }
}

impl ClientPreprocessing for HeClient {
    fn backend(&self) -> crate::protocol::prepro::Backend {
        crate::protocol::prepro::Backend::He
    }

    fn correlate(
        &mut self,
        ch: &mut dyn Channel,
        step: usize,
        c: &[u64],
    ) -> Result<Vec<u64>, ProtocolError> {
        let ctx = self.ctx.clone();
        if !self.pk_sent {
            // Public key (b = −a·s + e, a from a seed) for the server's re-randomization.
            let (seed, eseed) = self.seeds();
            let pk0 = self.encrypt(&[0u64; N], seed, eseed);
            ch.send(&seed)?;
            send_poly(ch, &pk0)?;
            self.pk_sent = true;
        }
        let plan = linear_plan(&self.net, step, c.len())?;
        let polys = plan.pack_input(c);
        let seeds: Vec<_> = polys.iter().map(|_| self.seeds()).collect();
        let cts: Vec<Poly> = polys
            .par_iter()
            .zip(&seeds)
            .map(|(m, &(s, e))| self.encrypt(m, s, e))
            .collect();
        for ((seed, _), ct) in seeds.iter().zip(&cts) {
            ch.send(seed)?;
            send_poly(ch, ct)?;
        }
        ch.flush()?;
        drop(cts);
        let n_out = plan.output_cts();
        let mut results = Vec::with_capacity(n_out);
        for _ in 0..n_out {
            let c0 = recv_poly(&ctx, ch)?;
            let c1 = recv_poly(&ctx, ch)?;
            results.push((c0, c1));
        }
        let mut out = vec![0u64; plan.out_len()];
        let decoded: Vec<Vec<(usize, u64)>> = results
            .par_iter()
            .enumerate()
            .map(|(k, (c0, c1))| {
                let mut x = rq::zero();
                rq::mul_fixed(&ctx, c1, &self.s, &self.s_comp, &mut x);
                rq::add_assign(&ctx, &mut x, c0);
                rq::intt(&ctx, &mut x);
                plan.outputs(k)
                    .into_iter()
                    .map(|(coef, idx)| {
                        let res: [u64; L] = std::array::from_fn(|i| x[i * N + coef]);
                        (idx, ctx.decode(res))
                    })
                    .collect()
            })
            .collect();
        for (idx, v) in decoded.into_iter().flatten() {
            out[idx] = v;
        }
        Ok(out)
    }
}

/// The server's half: holds the weights and the client's public key.
pub struct HeServer {
    net: Arc<FixedNetwork>,
    ctx: Arc<Context>,
    pk: Option<(Poly, Vec<u64>, Poly, Vec<u64>)>,
}

impl std::fmt::Debug for HeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeServer").finish_non_exhaustive()
    }
}

impl HeServer {
    /// A server for `net` (with weights).
    pub fn new(net: Arc<FixedNetwork>) -> Result<Self, HeError> {
        check_ring(net.ring.ell)?;
        let ctx = Arc::new(Context::new(net.ring.ell));
        Ok(HeServer { net, ctx, pk: None })
    }

    /// The bits of uniform flooding noise: below Δ/8, so decryption stays exact.
    fn flood_bits(&self) -> u32 {
        self.ctx.log_delta - 2
    }
}

impl ServerPreprocessing for HeServer {
    fn backend(&self) -> crate::protocol::prepro::Backend {
        crate::protocol::prepro::Backend::He
    }

    fn mask(&mut self, ch: &mut dyn Channel, step: usize) -> Result<Vec<u64>, ProtocolError> {
        let ctx = self.ctx.clone();
        let ell = ctx.ell;
        let in_len = input_len(&self.net, step)?;
        let plan = linear_plan(&self.net, step, in_len)?;
        let StepKind::Linear(lin) = &self.net.steps[step].kind else {
            return Err(HeError::NotLinear(step).into());
        };
        let weights = plan.centered_weights(lin, ell);
        // Noise budget: |noise| < T·2^(wb+ℓ) + 2^20 (see docs/HE.md); flooding must exceed it
        // by 2^FLOOD_SECURITY and stay below Δ/8.
        let wmax = weights.iter().map(|w| w.unsigned_abs()).max().unwrap_or(0);
        let wb = 64 - wmax.leading_zeros();
        let terms = plan.terms_per_coefficient();
        let log_t = usize::BITS - terms.saturating_sub(1).leading_zeros();
        let fb = self.flood_bits();
        let noise_bits = (ell + wb + log_t + 1).max(20) + 1;
        if noise_bits + FLOOD_SECURITY > fb - 1 {
            return Err(HeError::WeightsTooLarge {
                step,
                weight_bits: wb,
                max_weight_bits: fb as i64
                    - 2
                    - FLOOD_SECURITY as i64
                    - ell as i64
                    - log_t as i64
                    - 1,
                terms,
                ell,
            }
            .into());
        }
        if self.pk.is_none() {
            let seed = recv_seed(ch)?;
            let pk0 = recv_poly(&ctx, ch)?;
            let pk1 = rq::uniform_from_seed(&ctx, seed);
            let (c0, c1) = (rq::companions(&ctx, &pk0), rq::companions(&ctx, &pk1));
            self.pk = Some((pk0, c0, pk1, c1));
        }
        let n_in = plan.input_cts();
        let mut cts = Vec::with_capacity(n_in);
        for _ in 0..n_in {
            let seed = recv_seed(ch)?;
            let b = recv_poly(&ctx, ch)?;
            cts.push((b, rq::uniform_from_seed(&ctx, seed)));
        }
        let pk = self.pk.as_ref().expect("set above");
        let n_out = plan.output_cts();
        let task_seeds: Vec<[u8; 32]> = (0..plan.m_blocks())
            .map(|_| {
                let mut s = [0u8; 32];
                OsRng.fill_bytes(&mut s);
                s
            })
            .collect();
        // Per output-channel block: all its row tiles (weights transformed once per block pair).
        let per_block: Vec<Vec<(Poly, Poly, Vec<u64>)>> = task_seeds
            .par_iter()
            .enumerate()
            .map(|(mb, &seed)| {
                let mut rng = ChaCha20Rng::from_seed(seed);
                let tiles = plan.tiles();
                let mut acc = vec![(vec![0u128; L * N], vec![0u128; L * N]); tiles];
                for cb in 0..plan.c_blocks() {
                    let Some(w) = plan.weight_poly(&weights, mb, cb) else {
                        continue;
                    };
                    let mut w = rq::from_signed(&ctx, &w);
                    rq::ntt(&ctx, &mut w);
                    for (tile, (a0, a1)) in acc.iter_mut().enumerate() {
                        let (b, a) = &cts[plan.input_index(tile, cb)];
                        for ((x0, x1), ((&wv, &bv), &av)) in
                            a0.iter_mut().zip(a1.iter_mut()).zip(w.iter().zip(b).zip(a))
                        {
                            *x0 += wv as u128 * bv as u128;
                            *x1 += wv as u128 * av as u128;
                        }
                    }
                }
                acc.into_iter()
                    .map(|(a0, a1)| {
                        let reduce = |a: Vec<u128>| -> Poly {
                            a.chunks(N)
                                .enumerate()
                                .flat_map(|(i, c)| {
                                    let p = ctx.p(i) as u128;
                                    c.iter().map(move |&v| (v % p) as u64)
                                })
                                .collect()
                        };
                        let (mut c0, mut c1) = (reduce(a0), reduce(a1));
                        // Fresh encryption of zero under the client's key, flooding, mask.
                        let mut u = rq::from_signed(&ctx, &rq::ternary(&mut rng));
                        rq::ntt(&ctx, &mut u);
                        let mut t0 = rq::zero();
                        rq::mul_fixed(&ctx, &u, &pk.0, &pk.1, &mut t0);
                        rq::add_assign(&ctx, &mut c0, &t0);
                        rq::mul_fixed(&ctx, &u, &pk.2, &pk.3, &mut t0);
                        rq::add_assign(&ctx, &mut c1, &t0);
                        let mut e1 = rq::from_signed(&ctx, &rq::cbd(&mut rng));
                        rq::ntt(&ctx, &mut e1);
                        rq::add_assign(&ctx, &mut c1, &e1);
                        let e0 = rq::cbd(&mut rng);
                        let mut z = rq::zero();
                        let mut r = vec![0u64; N];
                        for k in 0..N {
                            let rk = rng.next_u64() & ring_mask(ell);
                            r[k] = rk;
                            let f = rq::flood_residues(&ctx, &mut rng, fb);
                            for i in 0..L {
                                let p = ctx.p(i);
                                let e = if e0[k] >= 0 {
                                    e0[k] as u64
                                } else {
                                    p - e0[k].unsigned_abs()
                                };
                                let dr = rq::mulmod(ctx.delta_mod[i], rk % p, p);
                                z[i * N + k] = (e + f[i] + p - dr) % p;
                            }
                        }
                        rq::ntt(&ctx, &mut z);
                        rq::add_assign(&ctx, &mut c0, &z);
                        (c0, c1, r)
                    })
                    .collect()
            })
            .collect();
        drop(cts);
        let mut s = vec![0u64; plan.out_len()];
        // Wire order is tile-major: output ct k = tile·m_blocks + mb.
        for k in 0..n_out {
            let (tile, mb) = (k / plan.m_blocks(), k % plan.m_blocks());
            let (c0, c1, r) = &per_block[mb][tile];
            send_poly(ch, c0)?;
            send_poly(ch, c1)?;
            for (coef, idx) in plan.outputs(k) {
                s[idx] = r[coef];
            }
        }
        ch.flush()?;
        Ok(s)
    }
}

fn ring_mask(ell: u32) -> u64 {
    if ell == 64 {
        u64::MAX
    } else {
        (1u64 << ell) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Shape, ValueId};
    use crate::plain::{LinearKind, LinearStep, Step};
    use crate::ring::kernels::ConvGeometry;
    use crate::ring::Ring;
    use rand::Rng;
    use std::time::Duration;

    fn one_step_net(
        ring: Ring,
        kind: LinearKind,
        weight: Vec<u64>,
        in_shape: Shape,
        out_shape: Shape,
    ) -> Arc<FixedNetwork> {
        Arc::new(FixedNetwork {
            ring,
            input_shape: in_shape,
            steps: vec![Step {
                name: "lin".into(),
                inputs: vec![ValueId::Input],
                kind: StepKind::Linear(LinearStep {
                    kind,
                    weight,
                    bias: vec![],
                    input_trunc: 0,
                }),
                out_scale: ring.frac,
                out_shape,
            }],
            output: ValueId::Layer(0),
            output_scale: ring.frac,
        })
    }

    /// Runs both halves over an in-memory channel: (client's result, server's mask).
    fn run(net: &Arc<FixedNetwork>, c: &[u64]) -> Result<(Vec<u64>, Vec<u64>), ProtocolError> {
        let (mut a, mut b) = crate::net::mem_pair(Duration::from_secs(60));
        let ns = net.clone();
        let server = std::thread::spawn(move || {
            let mut s = HeServer::new(ns)?;
            s.mask(&mut a, 0)
        });
        let mut cl = HeClient::new(net.clone())?;
        let got = cl.correlate(&mut b, 0, c);
        let s = server.join().expect("server thread")?;
        Ok((got?, s))
    }

    fn small_weights(ring: &Ring, n: usize, bits: u32) -> Vec<u64> {
        let mut rng = rand::thread_rng();
        let b = 1i64 << bits;
        (0..n)
            .map(|_| ring.reduce(rng.gen_range(-b..b) as u64))
            .collect()
    }

    fn check(ring: Ring, kind: LinearKind, wlen: usize, in_shape: Shape, out_shape: Shape) {
        let weight = small_weights(&ring, wlen, 14);
        let net = one_step_net(ring, kind, weight, in_shape, out_shape);
        let mut rng = rand::thread_rng();
        let c: Vec<u64> = (0..in_shape.elements())
            .map(|_| ring.reduce(rng.gen()))
            .collect();
        let (got, s) = run(&net, &c).unwrap();
        let StepKind::Linear(l) = &net.steps[0].kind else {
            unreachable!()
        };
        let want: Vec<u64> = l
            .apply(&ring, &c)
            .iter()
            .zip(&s)
            .map(|(&m, &si)| ring.sub(m, si))
            .collect();
        assert_eq!(got, want);
        // The mask is not trivially zero (it hides M·c from the client).
        assert!(s.iter().any(|&v| v != 0));
    }

    #[test]
    fn conv_fc_and_scale_give_exact_shares() {
        for ell in [64u32, 41] {
            let ring = Ring::new(ell, 12).unwrap();
            let g = ConvGeometry {
                in_channels: 6,
                in_h: 9,
                in_w: 9,
                out_channels: 5,
                kh: 3,
                kw: 3,
                stride: 2,
                padding: 1,
            };
            check(
                ring,
                LinearKind::Conv(g),
                5 * 6 * 9,
                Shape::Chw(6, 9, 9),
                Shape::Chw(5, g.out_h(), g.out_w()),
            );
            check(
                ring,
                LinearKind::Fc { out_features: 10 },
                10 * 64,
                Shape::Flat(64),
                Shape::Flat(10),
            );
            check(
                ring,
                LinearKind::ChannelScale {
                    channels: 4,
                    plane: 16,
                },
                4,
                Shape::Chw(4, 4, 4),
                Shape::Chw(4, 4, 4),
            );
        }
    }

    #[test]
    fn oversized_weights_and_rings_are_refused() {
        let ring = Ring::new(64, 12).unwrap();
        let weight = small_weights(&ring, 10 * 64, 60);
        let net = one_step_net(
            ring,
            LinearKind::Fc { out_features: 10 },
            weight,
            Shape::Flat(64),
            Shape::Flat(10),
        );
        let s = HeServer::new(net).unwrap();
        let mut s = s;
        let (mut a, _b) = crate::net::mem_pair(Duration::from_secs(5));
        let err = s.mask(&mut a, 0).unwrap_err().to_string();
        assert!(err.contains("noise budget"), "{err}");
        assert!(check_ring(0).is_err() && check_ring(65).is_err());
        assert!(check_ring(48).is_ok());
    }
}
