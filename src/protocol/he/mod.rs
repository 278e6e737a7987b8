//! The `he` linear-preprocessing backend: a real two-party protocol in which the client obtains
//! `M·c − s mod 2^ℓ` under RLWE homomorphic encryption, without learning M and without the
//! server learning `c`.
//!
//! Scheme: BFV-style symmetric RLWE over R_q = Z_q\[X\]/(X^8192 + 1), q a 215-bit product of four
//! 54-bit NTT primes (128-bit classical security per the homomorphicencryption.org standard:
//! log q ≤ 218 for N = 8192, ternary secret, σ ≈ 3.2), plaintext modulus t = 2^ℓ with
//! coefficient encoding (Cheetah, Huang et al. 2022): a convolution is one polynomial product
//! per (input-channel block, output-channel block, row tile), with no rotations and no
//! key-switching. Strided convolutions are computed at stride 1 and sub-sampled; fully connected
//! layers are 1×1 convolutions on a 1×1 image; per-channel scales are diagonal 1×1 convolutions.
//!
//! The server re-randomizes every result with a fresh public-key encryption of zero, floods its
//! noise with a uniform term large enough that everything an inference reveals is within
//! statistical distance 2^−40 of noise-free, masks it with a fresh uniform `R`, switches it to
//! modulus 2^K and sends `c0` only at the output coefficients, so the client learns only
//! `M·c − s`. Uploads are compressed (low bits dropped). Keys are fresh per backend instance
//! (one per inference). See `docs/HE.md`.

pub mod baseline;
pub mod pack;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore};
use rayon::prelude::*;
use std::sync::Arc;

use super::prepro::{ClientPreprocessing, ServerPreprocessing};
use super::ProtocolError;
use crate::model::StepGraph;
use crate::net::{Channel, Phase};
use crate::plain::{FixedNetwork, StepKind};
use crate::rlwe as rq;
use pack::{Plan, WireCost};
use rq::{Context, Poly, L, N};

/// The metering scope (in the setup phase) of the public-key exchange.
pub const KEY_SCOPE: &str = "he-keys";

/// The default statistical security of noise flooding (bits): everything the client learns
/// stays within statistical distance 2^−40 of what `M·c − s` alone reveals.
pub const FLOOD_SECURITY: u32 = 40;

/// What noise flooding must achieve, a server-side parameter with a documented default.
///
/// Each inference reveals flooded coefficients; their statistical distances add up over one
/// inference and over every inference the same client runs on the same weights. The server
/// therefore floods every inference to `2^−(security_bits + ⌈log2 queries⌉)`, so that
/// `queries` inferences together stay within `2^−security_bits`. The default, 40 bits for one
/// query, makes no allowance for repeated queries; a server that answers many
/// queries on the same weights should say how many (`--he-queries`), and a model whose weights
/// leave too little noise room for that target is refused at load
/// ([`HeError::WeightsTooLarge`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FloodTarget {
    /// Statistical security over all the queries together, in bits.
    pub security_bits: u32,
    /// How many inferences the target must cover (at least 1).
    pub queries: u64,
}

impl Default for FloodTarget {
    fn default() -> Self {
        FloodTarget {
            security_bits: FLOOD_SECURITY,
            queries: 1,
        }
    }
}

impl FloodTarget {
    /// The statistical security each inference must achieve: `security_bits + ⌈log2 queries⌉`.
    pub fn bits_per_inference(&self) -> u32 {
        self.security_bits + ceil_log2(self.queries.max(1))
    }
}

/// ⌈log2 n⌉ for n ≥ 1.
fn ceil_log2(n: u64) -> u32 {
    u64::BITS - n.saturating_sub(1).leading_zeros()
}

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
        "step {step}: weights whose largest per-block L1 norm is about 2^{l1_bits} exceed the \
         noise budget of the 128-bit HE parameters at ℓ = {ell} (at most 2^{max_l1_bits} for \
         statistical distance 2^-{target_bits} per inference); use a smaller ℓ or fewer \
         --he-queries"
    )]
    WeightsTooLarge {
        /// The per-inference statistical target (bits) that could not be met.
        target_bits: u32,
        /// The step.
        step: usize,
        /// Bits of the largest L1 norm of one weight polynomial block (all its output channels).
        l1_bits: u32,
        /// Largest L1 bits the budget allows (negative: none).
        max_l1_bits: i64,
        /// ℓ.
        ell: u32,
    },
    /// A step asked of the backend is not a linear step.
    #[error("step {0} is not a linear step")]
    NotLinear(usize),
}

/// Check that the `he` backend can run at ring width ℓ.
pub fn check_ring(ell: u32) -> Result<(), HeError> {
    if (1..=64).contains(&ell) {
        Ok(())
    } else {
        Err(HeError::UnsupportedRing(ell))
    }
}

/// Every linear step's packing, and which steps reuse the input ciphertexts uploaded for an
/// earlier step (same input value, same input truncation, compatible geometry: a 1×1
/// shortcut beside its block's first 3×3 conv). Both parties derive it from public geometry.
#[derive(Clone, Debug, Default)]
struct Schedule {
    /// Per step: its plan and, when it reuses another step's input ciphertexts, that step.
    steps: Vec<Option<(Plan, Option<usize>)>>,
}

impl Schedule {
    fn new(net: &FixedNetwork, ctx: &Context) -> Result<Self, HeError> {
        let wire = WireCost::of(ctx);
        let mut steps: Vec<Option<(Plan, Option<usize>)>> = Vec::with_capacity(net.steps.len());
        for (j, step) in net.steps.iter().enumerate() {
            let StepKind::Linear(l) = &step.kind else {
                steps.push(None);
                continue;
            };
            let key = |i: usize| match &net.steps[i].kind {
                StepKind::Linear(li) => Some((net.steps[i].inputs.first(), li.input_trunc)),
                _ => None,
            };
            let shared = (0..j).rev().find_map(|i| {
                let (base, None) = steps[i].as_ref()? else {
                    return None;
                };
                if key(i) != key(j) {
                    return None;
                }
                Plan::on_input_of(&l.kind, base, &wire).map(|p| (p, Some(i)))
            });
            let entry = match shared {
                Some(e) => e,
                None => (Plan::new(j, &l.kind, input_len(net, j)?, &wire)?, None),
            };
            steps.push(Some(entry));
        }
        Ok(Schedule { steps })
    }

    /// The plan of linear step `step` and the step whose input ciphertexts it reuses.
    fn get(&self, step: usize) -> Result<(&Plan, Option<usize>), HeError> {
        match self.steps.get(step) {
            Some(Some((p, base))) => Ok((p, *base)),
            _ => Err(HeError::NotLinear(step)),
        }
    }

    /// How many later steps reuse the input ciphertexts of `step`.
    fn sharers(&self, step: usize) -> usize {
        self.steps
            .iter()
            .filter(|e| matches!(e, Some((_, Some(b))) if *b == step))
            .count()
    }
}

fn input_len(net: &FixedNetwork, step: usize) -> Result<usize, HeError> {
    match net.steps.get(step).and_then(|s| s.inputs.first()) {
        Some(&v) => Ok(net.shape_of(v).elements()),
        None => Err(HeError::NotLinear(step)),
    }
}

/// The wire form of a polynomial given in coefficient form: every coefficient rounded to its
/// top bits ([`Context::compress`]), [`Context::upload_bytes`] little-endian bytes each.
fn compress_poly(ctx: &Context, b: &[u64]) -> Vec<u8> {
    let w = ctx.upload_bytes;
    let mut out = vec![0u8; N * w];
    for (k, dst) in out.chunks_exact_mut(w).enumerate() {
        let v = ctx.compress(std::array::from_fn(|i| b[i * N + k]));
        let mut bytes = [0u8; 32];
        for (chunk, limb) in bytes.chunks_exact_mut(8).zip(v) {
            chunk.copy_from_slice(&limb.to_le_bytes());
        }
        dst.copy_from_slice(&bytes[..w]);
    }
    out
}

/// The inverse of [`compress_poly`], into NTT form. Any bytes give some polynomial: a peer's
/// garbage cannot break the arithmetic.
fn recv_compressed(ctx: &Context, ch: &mut dyn Channel) -> Result<Poly, ProtocolError> {
    let w = ctx.upload_bytes;
    let mut buf = vec![0u8; N * w];
    ch.recv(&mut buf)?;
    let mut p = rq::zero();
    for (k, src) in buf.chunks_exact(w).enumerate() {
        let mut limbs = [0u8; 32];
        limbs[..w].copy_from_slice(src);
        let v: rq::Big = std::array::from_fn(|j| {
            u64::from_le_bytes(limbs[8 * j..8 * j + 8].try_into().expect("8 bytes"))
        });
        for (i, r) in ctx.expand(&v).into_iter().enumerate() {
            p[i * N + k] = r;
        }
    }
    rq::ntt(ctx, &mut p);
    Ok(p)
}

/// Bytes of one modulus-switched reply coefficient.
fn reply_width(ctx: &Context) -> usize {
    ctx.reply_bits.div_ceil(8) as usize
}

fn put_reply(ctx: &Context, out: &mut Vec<u8>, y: u128) {
    out.extend_from_slice(&y.to_le_bytes()[..reply_width(ctx)]);
}

fn get_reply(ctx: &Context, src: &[u8]) -> u128 {
    let mut b = [0u8; 16];
    b[..src.len()].copy_from_slice(src);
    u128::from_le_bytes(b) & rq::low_mask(ctx.reply_bits)
}

fn recv_seed(ch: &mut dyn Channel) -> Result<[u8; 32], ProtocolError> {
    let mut s = [0u8; 32];
    ch.recv(&mut s)?;
    Ok(s)
}

/// The client's half: holds the fresh secret key of this inference.
pub struct HeClient {
    ctx: Arc<Context>,
    s: Poly,
    s_comp: Vec<u64>,
    rng: ChaCha20Rng,
    pk_sent: bool,
    schedule: Schedule,
    /// The input shares uploaded for steps whose ciphertexts later steps reuse, with how many
    /// such steps remain.
    uploaded: std::collections::HashMap<usize, (Vec<u64>, usize)>,
}

impl Drop for HeClient {
    fn drop(&mut self) {
        self.wipe_key();
    }
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
        let schedule = Schedule::new(&net, &ctx)?;
        Ok(HeClient {
            ctx,
            s,
            s_comp,
            rng,
            pk_sent: false,
            schedule,
            uploaded: Default::default(),
        })
    }

    /// The wire form of `b = −a·s + e + Δ·m` (coefficient form, compressed), `a` expanded
    /// from `seed` in NTT form.
    fn encrypt(&self, m: &[u64], seed: [u8; 32], err_seed: [u8; 32]) -> Vec<u8> {
        let ctx = &self.ctx;
        let a = rq::uniform_from_seed(ctx, seed);
        let mut as_ = rq::zero();
        rq::mul_fixed(ctx, &a, &self.s, &self.s_comp, &mut as_);
        rq::intt(ctx, &mut as_);
        let mut erng = ChaCha20Rng::from_seed(err_seed);
        let mut b = rq::from_signed(ctx, &rq::cbd(&mut erng));
        for i in 0..L {
            let p = ctx.p(i);
            for (x, &mv) in b[i * N..(i + 1) * N].iter_mut().zip(m) {
                let s = *x + ctx.delta_times(i, mv);
                *x = if s >= p { s - p } else { s };
            }
        }
        rq::neg_assign(ctx, &mut as_);
        rq::add_assign(ctx, &mut b, &as_);
        compress_poly(ctx, &b)
    }

    /// Decrypts the coefficients `coefs` of a modulus-switched reply `(y0 at coefs, y1)`.
    fn decrypt_reply(&self, y0: &[u128], y1: &[u128], coefs: &[usize]) -> Vec<u64> {
        let ctx = &self.ctx;
        // |y1·s| ≤ N·2^K < p0·p1/2: the first two primes carry the product exactly.
        let mut zs = vec![0u64; 2 * N];
        for (i, z) in zs.chunks_mut(N).enumerate() {
            for (zk, &y) in z.iter_mut().zip(y1) {
                *zk = ctx.reduce_u128(i, y);
            }
            let pr = &ctx.primes[i];
            pr.ntt(z);
            let r = i * N..(i + 1) * N;
            for ((zk, &sv), &ss) in z.iter_mut().zip(&self.s[r.clone()]).zip(&self.s_comp[r]) {
                *zk = rq::mul_shoup(*zk, sv, ss, pr.p);
            }
            pr.intt(z);
        }
        // y0 + y1·s ≈ 2^(K−ℓ)·m + noise (mod 2^K), |noise| < 2^(K−ℓ−1): round away the noise.
        let shift = ctx.reply_bits - ctx.ell;
        coefs
            .iter()
            .zip(y0)
            .map(|(&c, &v0)| {
                let ys = ctx.crt2_mod_reply(zs[c], zs[N + c]);
                let v = (v0 + ys) & rq::low_mask(ctx.reply_bits);
                (((v + (1u128 << (shift - 1))) >> shift) & rq::low_mask(ctx.ell)) as u64
            })
            .collect()
    }

    /// Overwrites the secret key of this inference (and its Shoup companions, which determine
    /// it) with zeros; run on drop.
    fn wipe_key(&mut self) {
        zeroize::Zeroize::zeroize(self.s.as_mut_slice());
        zeroize::Zeroize::zeroize(self.s_comp.as_mut_slice());
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

    /// Sends the public key (`b = −a·s + e`, `a` from a seed) the server re-randomizes with;
    /// metered as setup, like the base OTs: once per session, before any input.
    fn setup(&mut self, ch: &mut dyn Channel) -> Result<(), ProtocolError> {
        let (seed, eseed) = self.seeds();
        let pk0 = self.encrypt(&[0u64; N], seed, eseed);
        ch.set_scope(Phase::Setup, Some(KEY_SCOPE));
        ch.send(&seed)?;
        ch.send(&pk0)?;
        ch.flush()?;
        self.pk_sent = true;
        Ok(())
    }

    fn correlate(
        &mut self,
        ch: &mut dyn Channel,
        step: usize,
        c: &[u64],
    ) -> Result<Vec<u64>, ProtocolError> {
        let ctx = self.ctx.clone();
        if !self.pk_sent {
            return Err(ProtocolError::Internal(
                "he backend: no public key sent (setup was not run)".into(),
            ));
        }
        let (plan, base) = self.schedule.get(step)?;
        let plan = plan.clone();
        if c.len() != plan.in_len() {
            return Err(HeError::Geometry {
                step,
                why: format!(
                    "a share of {} elements, the step needs {}",
                    c.len(),
                    plan.in_len()
                ),
            }
            .into());
        }
        if let Some(b) = base {
            // The server reuses the ciphertexts of step b: they must carry this very share.
            let Some((share, left)) = self.uploaded.get_mut(&b) else {
                return Err(ProtocolError::Internal(format!(
                    "he backend: step {step} reuses the input of step {b}, not preprocessed"
                )));
            };
            if share.as_slice() != c {
                return Err(ProtocolError::Internal(format!(
                    "he backend: step {step} reuses the input of step {b} but got another share"
                )));
            }
            *left -= 1;
            if *left == 0 {
                self.uploaded.remove(&b);
            }
        } else {
            let polys = plan.pack_input(c);
            let seeds: Vec<_> = polys.iter().map(|_| self.seeds()).collect();
            let cts: Vec<Vec<u8>> = polys
                .par_iter()
                .zip(&seeds)
                .map(|(m, &(s, e))| self.encrypt(m, s, e))
                .collect();
            for ((seed, _), ct) in seeds.iter().zip(&cts) {
                ch.send(seed)?;
                ch.send(ct)?;
            }
            ch.flush()?;
            let sharers = self.schedule.sharers(step);
            if sharers > 0 {
                self.uploaded.insert(step, (c.to_vec(), sharers));
            }
        }
        let w = reply_width(&ctx);
        let mut replies = Vec::with_capacity(plan.output_cts());
        for k in 0..plan.output_cts() {
            let coefs: Vec<(usize, usize)> = plan.outputs(k);
            let mut buf = vec![0u8; (N + coefs.len()) * w];
            ch.recv(&mut buf)?;
            replies.push((coefs, buf));
        }
        let mut out = vec![0u64; plan.out_len()];
        let decoded: Vec<Vec<(usize, u64)>> = replies
            .par_iter()
            .map(|(coefs, buf)| {
                let (b1, b0) = buf.split_at(N * w);
                let y1: Vec<u128> = b1.chunks_exact(w).map(|c| get_reply(&ctx, c)).collect();
                let y0: Vec<u128> = b0.chunks_exact(w).map(|c| get_reply(&ctx, c)).collect();
                let pos: Vec<usize> = coefs.iter().map(|&(c, _)| c).collect();
                let vals = self.decrypt_reply(&y0, &y1, &pos);
                coefs.iter().map(|&(_, idx)| idx).zip(vals).collect()
            })
            .collect();
        for (idx, v) in decoded.into_iter().flatten() {
            out[idx] = v;
        }
        Ok(out)
    }
}

/// A step's input ciphertexts on the server, `(b, a)` in NTT form.
type InputCts = Vec<(Poly, Poly)>;

/// One reply ciphertext before the modulus switch: `(c0, c1)` in coefficient form and the
/// uniform mask `R` it carries.
type Reply = (Poly, Poly, Vec<u64>);

/// The server's half: holds the weights and the client's public key.
pub struct HeServer {
    net: Arc<FixedNetwork>,
    ctx: Arc<Context>,
    target: FloodTarget,
    pk: Option<(Poly, Vec<u64>, Poly, Vec<u64>)>,
    schedule: Schedule,
    /// Input ciphertexts kept for later steps that reuse them, with how many such steps remain.
    kept: std::collections::HashMap<usize, (Arc<InputCts>, usize)>,
}

impl std::fmt::Debug for HeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeServer").finish_non_exhaustive()
    }
}

impl HeServer {
    /// A server for `net` (with weights) flooding to the default [`FloodTarget`].
    pub fn new(net: Arc<FixedNetwork>) -> Result<Self, HeError> {
        HeServer::with_target(net, FloodTarget::default())
    }

    /// A server for `net` (with weights) flooding to `target`; refuses weights whose noise
    /// leaves the flood too little room for it.
    pub fn with_target(net: Arc<FixedNetwork>, target: FloodTarget) -> Result<Self, HeError> {
        check_ring(net.ring.ell)?;
        let ctx = Arc::new(Context::new(net.ring.ell));
        let schedule = Schedule::new(&net, &ctx)?;
        check_noise_budget(&net, &ctx, &schedule, target)?;
        Ok(HeServer {
            net,
            ctx,
            target,
            pk: None,
            schedule,
            kept: Default::default(),
        })
    }

    /// The statistical target this server floods to.
    pub fn target(&self) -> FloodTarget {
        self.target
    }

    /// The bits of uniform flooding noise.
    fn flood_bits(&self) -> u32 {
        flood_bits(&self.ctx)
    }
}

/// Bits `fb` of the uniform flood: |flood| ≤ 2^(fb−1) ≤ Δ/4, which after the switch to 2^K is
/// at most 2^(K−ℓ−2); with the switch's rounding (≤ 4129) that stays below 2^(K−ℓ−1) for
/// K − ℓ ≥ 16, so decryption is exact.
fn flood_bits(ctx: &Context) -> u32 {
    ctx.log_delta - 1
}

/// Refuses, at load time, a network whose weights the flooding cannot hide: for every linear
/// step, `noise + target bits per inference + log2(coefficients revealed per inference) ≤
/// flood bits`.
fn check_noise_budget(
    net: &FixedNetwork,
    ctx: &Context,
    schedule: &Schedule,
    target: FloodTarget,
) -> Result<(), HeError> {
    let revealed: usize = schedule
        .steps
        .iter()
        .flatten()
        .map(|(p, _)| p.out_len())
        .sum();
    let log_rev = ceil_log2(revealed as u64);
    let fb = flood_bits(ctx);
    let target_bits = target.bits_per_inference();
    let fits = |l1: f64, block: f64| noise_bits(ctx, l1, block) + target_bits + log_rev <= fb;
    for (step, entry) in schedule.steps.iter().enumerate() {
        let (Some((plan, _)), StepKind::Linear(lin)) = (entry, &net.steps[step].kind) else {
            continue;
        };
        let weights = plan.centered_weights(lin, ctx.ell);
        let (l1, block) = (plan.max_output_l1(&weights), plan.max_block_l1(&weights));
        if !fits(l1, block) {
            // The limit, stated for the block norm at this step's ratio of block to channel.
            let ratio = block / l1.max(1.0);
            let max_l1_bits = (0..=128)
                .rev()
                .find(|&b| fits(2f64.powi(b) / ratio, 2f64.powi(b)))
                .map_or(-1, i64::from);
            return Err(HeError::WeightsTooLarge {
                target_bits,
                step,
                l1_bits: block.log2().ceil() as u32,
                max_l1_bits,
                ell: ctx.ell,
            });
        }
    }
    Ok(())
}

impl HeServer {
    /// The input ciphertexts of linear step `step`: received from the client, or those of the
    /// earlier step `base` whose input this step reuses.
    fn receive_inputs(
        &mut self,
        ch: &mut dyn Channel,
        step: usize,
        plan: &Plan,
        base: Option<usize>,
    ) -> Result<Arc<InputCts>, ProtocolError> {
        let ctx = self.ctx.clone();
        Ok(match base {
            Some(b) => {
                let (cts, left) = self.kept.get_mut(&b).ok_or_else(|| {
                    ProtocolError::Internal(format!(
                        "he backend: step {step} reuses the input of step {b}, not preprocessed"
                    ))
                })?;
                let cts = cts.clone();
                *left -= 1;
                if *left == 0 {
                    self.kept.remove(&b);
                }
                cts
            }
            None => {
                let n_in = plan.input_cts();
                let mut cts = Vec::with_capacity(n_in);
                for _ in 0..n_in {
                    let seed = recv_seed(ch)?;
                    let b = recv_compressed(&ctx, ch)?;
                    cts.push((b, rq::uniform_from_seed(&ctx, seed)));
                }
                let cts = Arc::new(cts);
                let sharers = self.schedule.sharers(step);
                if sharers > 0 {
                    self.kept.insert(step, (cts.clone(), sharers));
                }
                cts
            }
        })
    }

    /// `Enc(M·c − R)` per output-channel block and row tile, re-randomized under the client's
    /// public key and flooded; `R` is the fresh uniform mask of each output ciphertext.
    fn compute(
        &self,
        plan: &Plan,
        weights: &[i64],
        cts: &InputCts,
    ) -> Result<Vec<Vec<Reply>>, ProtocolError> {
        let ctx = self.ctx.clone();
        let ell = ctx.ell;
        let flood = rq::Flood::new(&ctx, self.flood_bits());
        let pk = self.pk.as_ref().ok_or_else(|| {
            ProtocolError::Internal("he backend: no public key (setup was not run)".into())
        })?;
        let task_seeds: Vec<[u8; 32]> = (0..plan.m_blocks())
            .map(|_| {
                let mut s = [0u8; 32];
                OsRng.fill_bytes(&mut s);
                s
            })
            .collect();
        // Per output-channel block: all its row tiles (weights transformed once per block pair).
        Ok(task_seeds
            .par_iter()
            .enumerate()
            .map(|(mb, &seed)| {
                let mut rng = ChaCha20Rng::from_seed(seed);
                let tiles = plan.tiles();
                let mut acc = vec![(vec![0u128; L * N], vec![0u128; L * N]); tiles];
                for cb in 0..plan.c_blocks() {
                    let Some(w) = plan.weight_poly(weights, mb, cb) else {
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
                        let ctx: &Context = &ctx;
                        let reduce = |a: Vec<u128>| -> Poly {
                            a.chunks(N)
                                .enumerate()
                                .flat_map(|(i, c)| c.iter().map(move |&v| ctx.reduce_u128(i, v)))
                                .collect()
                        };
                        let (mut c0, mut c1) = (reduce(a0), reduce(a1));
                        // Fresh encryption of zero under the client's key (its products in NTT
                        // form, its errors added in coefficient form), flooding, mask.
                        let mut u = rq::from_signed(ctx, &rq::ternary(&mut rng));
                        rq::ntt(ctx, &mut u);
                        let mut t0 = rq::zero();
                        rq::mul_fixed(ctx, &u, &pk.0, &pk.1, &mut t0);
                        rq::add_assign(ctx, &mut c0, &t0);
                        rq::mul_fixed(ctx, &u, &pk.2, &pk.3, &mut t0);
                        rq::add_assign(ctx, &mut c1, &t0);
                        rq::intt(ctx, &mut c0);
                        rq::intt(ctx, &mut c1);
                        let e1 = rq::from_signed(ctx, &rq::cbd(&mut rng));
                        rq::add_assign(ctx, &mut c1, &e1);
                        let e0 = rq::cbd(&mut rng);
                        let mut z = rq::zero();
                        let mut r = vec![0u64; N];
                        for k in 0..N {
                            let rk = rng.next_u64() & ring_mask(ell);
                            r[k] = rk;
                            let f = flood.sample(ctx, &mut rng);
                            for i in 0..L {
                                let p = ctx.p(i);
                                let e = if e0[k] >= 0 {
                                    e0[k] as u64
                                } else {
                                    p - e0[k].unsigned_abs()
                                };
                                // e, f[i] < p and p − Δr ≤ p: below 3p.
                                let v = e + f[i] + (p - ctx.delta_times(i, rk));
                                let v = if v >= p { v - p } else { v };
                                z[i * N + k] = if v >= p { v - p } else { v };
                            }
                        }
                        rq::add_assign(ctx, &mut c0, &z);
                        (c0, c1, r)
                    })
                    .collect()
            })
            .collect())
    }

    /// The replies, modulus-switched to 2^K, in wire order; returns the server's mask `s`.
    fn reply(
        &self,
        ch: &mut dyn Channel,
        plan: &Plan,
        per_block: &[Vec<Reply>],
    ) -> Result<Vec<u64>, ProtocolError> {
        let ctx: &Context = &self.ctx;
        let mut s = vec![0u64; plan.out_len()];
        // Wire order is tile-major: output ct k = tile·m_blocks + mb.
        for k in 0..plan.output_cts() {
            let (tile, mb) = (k / plan.m_blocks(), k % plan.m_blocks());
            let (c0, c1, r) = &per_block[mb][tile];
            // Modulus-switched to 2^K: all of c1, and c0 only where the client decrypts (the
            // other coefficients are never sent).
            let coefs = plan.outputs(k);
            let mut wire = Vec::with_capacity((N + coefs.len()) * reply_width(ctx));
            for j in 0..N {
                put_reply(
                    ctx,
                    &mut wire,
                    ctx.switch(std::array::from_fn(|i| c1[i * N + j])),
                );
            }
            for &(coef, idx) in &coefs {
                put_reply(
                    ctx,
                    &mut wire,
                    ctx.switch(std::array::from_fn(|i| c0[i * N + coef])),
                );
                s[idx] = r[coef];
            }
            ch.send(&wire)?;
        }
        ch.flush()?;
        Ok(s)
    }
}

impl ServerPreprocessing for HeServer {
    fn backend(&self) -> crate::protocol::prepro::Backend {
        crate::protocol::prepro::Backend::He
    }

    /// Receives the client's public key (`b = −a·s + e`, `a` from a seed), metered as setup.
    fn setup(&mut self, ch: &mut dyn Channel) -> Result<(), ProtocolError> {
        let ctx = &self.ctx;
        ch.set_scope(Phase::Setup, Some(KEY_SCOPE));
        let seed = recv_seed(ch)?;
        let pk0 = recv_compressed(ctx, ch)?;
        let pk1 = rq::uniform_from_seed(ctx, seed);
        let (c0, c1) = (rq::companions(ctx, &pk0), rq::companions(ctx, &pk1));
        self.pk = Some((pk0, c0, pk1, c1));
        Ok(())
    }

    fn linear_mask(
        &mut self,
        ch: &mut dyn Channel,
        step: usize,
    ) -> Result<Vec<u64>, ProtocolError> {
        let (plan, base) = self.schedule.get(step)?;
        let plan = plan.clone();
        let StepKind::Linear(lin) = &self.net.steps[step].kind else {
            return Err(HeError::NotLinear(step).into());
        };
        let weights = plan.centered_weights(lin, self.ctx.ell);
        let cts = self.receive_inputs(ch, step, &plan, base)?;
        let per_block = self.compute(&plan, &weights, &cts)?;
        drop(cts);
        self.reply(ch, &plan, &per_block)
    }
}

/// Bits of a bound on the noise, before flooding, of an output coefficient (docs/HE.md), with
/// `l1` the largest L1 norm of one output channel's weights and `block` that of a whole weight
/// polynomial block: `(l1 + 1)·2^ℓ` from the `(q mod t)·k` rounding of the message `Σ w·m − R`
/// (|k| ≤ l1 + 1), `block·(2^(d−1) + η)` from the weights times the inputs' noise (compression
/// error and fresh error, present at every input coefficient), and `N·(2^(d−1) + η) + N·η + η`
/// from the re-randomizing encryption of zero (`(e_pk + ε_pk)·u`, `e1·s`, `e0`).
fn noise_bits(ctx: &Context, l1: f64, block: f64) -> u32 {
    let eta = f64::from(rq::CBD_ETA);
    let half_step = 2f64.powi(ctx.drop_bits as i32 - 1);
    let rounding = (l1 + 1.0) * 2f64.powi(ctx.ell as i32);
    let from_inputs = block * (half_step + eta);
    let from_pk = N as f64 * (half_step + 2.0 * eta) + eta;
    // f64 rounds the sum by a relative 2^−52 at most: one more bit covers it.
    (rounding + from_inputs + from_pk).log2().ceil() as u32 + 1
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
            bn_path: crate::model::BnPath::Clean,
        })
    }

    /// Runs both halves over an in-memory channel: (client's result, server's mask).
    fn run(net: &Arc<FixedNetwork>, c: &[u64]) -> Result<(Vec<u64>, Vec<u64>), ProtocolError> {
        let (mut a, mut b) = crate::net::mem_pair(Duration::from_secs(60));
        let ns = net.clone();
        let server = std::thread::spawn(move || {
            let mut s = HeServer::new(ns)?;
            s.setup(&mut a)?;
            s.linear_mask(&mut a, 0)
        });
        let mut cl = HeClient::new(net.clone())?;
        let got = cl.setup(&mut b).and_then(|()| cl.correlate(&mut b, 0, c));
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
        for (ell, frac) in [(64u32, 12u32), (41, 12), (20, 6)] {
            let ring = Ring::new(ell, frac).unwrap();
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
    fn the_secret_key_is_wiped() {
        let ring = Ring::new(64, 12).unwrap();
        let net = one_step_net(
            ring,
            LinearKind::Fc { out_features: 2 },
            small_weights(&ring, 2 * 4, 4),
            Shape::Flat(4),
            Shape::Flat(2),
        );
        let mut c = HeClient::new(net).unwrap();
        assert!(c.s.iter().any(|&v| v != 0) && c.s_comp.iter().any(|&v| v != 0));
        c.wipe_key();
        assert!(c.s.iter().all(|&v| v == 0) && c.s_comp.iter().all(|&v| v == 0));
        assert_eq!(c.s.len(), L * N);
    }

    #[test]
    fn more_queries_leave_less_room_for_weights() {
        let ring = Ring::new(64, 12).unwrap();
        let net_of = |bits: u32| {
            one_step_net(
                ring,
                LinearKind::Fc { out_features: 10 },
                small_weights(&ring, 10 * 64, bits),
                Shape::Flat(64),
                Shape::Flat(10),
            )
        };
        // The widest weights one query allows...
        let (bits, net) = (1..60)
            .rev()
            .map(|b| (b, net_of(b)))
            .find(|(_, n)| HeServer::new(n.clone()).is_ok())
            .unwrap();
        assert_eq!(
            HeServer::new(net.clone())
                .unwrap()
                .target()
                .bits_per_inference(),
            40
        );
        // ... are refused when the same weights must survive 2^20 queries: 60 bits per inference.
        let many = FloodTarget {
            security_bits: 40,
            queries: 1 << 20,
        };
        assert_eq!(many.bits_per_inference(), 60);
        let err = HeServer::with_target(net, many).unwrap_err();
        assert!(
            matches!(
                err,
                HeError::WeightsTooLarge {
                    target_bits: 60,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("2^-60 per inference"), "{err}");
        // And 20 bits narrower weights fit the larger target.
        assert!(HeServer::with_target(net_of(bits.saturating_sub(20).max(1)), many).is_ok());
        assert_eq!(ceil_log2(1), 0);
        assert_eq!(ceil_log2(3), 2);
        assert_eq!(ceil_log2(1 << 20), 20);
    }

    /// The homomorphicencryption.org security standard (Albrecht et al., 2018), ternary secret,
    /// σ ≈ 3.2: N = 8192 allows log2 q ≤ 218 for 128-bit classical security (202 for 128-bit
    /// quantum, which these parameters do not claim). The figure the README and docs/HE.md state.
    #[test]
    fn log_q_is_within_the_he_standard_for_128_bit_classical_security() {
        let ctx = Context::new(64);
        let log_q: f64 = (0..L).map(|i| (ctx.p(i) as f64).log2()).sum();
        assert_eq!(N, 8192);
        assert!(log_q <= 218.0, "log2 q = {log_q}");
        assert!(
            log_q > 202.0,
            "the docs say the quantum bound is not met; log2 q = {log_q}"
        );
        assert!(
            (log_q - 215.9).abs() < 0.1,
            "docs/HE.md states 215.9; log2 q = {log_q}"
        );
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
        // Refused when the model is loaded, before any client connects.
        let err = HeServer::new(net).unwrap_err().to_string();
        assert!(err.contains("noise budget"), "{err}");
        assert!(check_ring(0).is_err() && check_ring(65).is_err());
        assert!(check_ring(48).is_ok());
    }
}
