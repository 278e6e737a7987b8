//! The fixed-point and the private-inference (PI) arithmetic of a [`FixedNetwork`], batched over
//! many images at plaintext speed: what the two-party protocol computes, without the protocol.
//!
//! Two arithmetics ([`Arithmetic`]):
//!
//! - **Fixed**: the deterministic oracle, [`FixedNetwork::forward`] bit for bit (every
//!   truncation an exact floor).
//! - **Pi**: every value is the sum of the client's share `c` and the server's `a = x − c` in
//!   Z_2^ℓ, and each step treats the shares as the protocol does. The evaluator carries the true
//!   value `x` and, where a later local truncation reads it, the client's share `c`:
//!   - the input's client share is the client's mask `r0`;
//!   - a linear step computes `M·x_in + b` exactly on the ring; its output's client share is
//!     `M·c_in − s` for the server's fresh uniform mask `s`, so uniform and independent of
//!     everything else: the fast source draws it directly and never computes `M·c_in`;
//!   - an input scaled 2f is truncated locally first: `trunc_share_server(a) +
//!     trunc_share_client(c)` (±1 ulp, or a wrap with probability about |x|/2^ℓ);
//!   - at a ReLU site kept elements give `relu(x >>arith t)` exactly (the garbled circuit) with
//!     the client's fresh mask as its share, linearized elements are truncated locally as above
//!     and the client's truncated share carries on;
//!   - add, sum pool and flatten act on both shares.
//!
//!   So ±1-ulp effects and wrap failures happen with their true probabilities. Per image the
//!   evaluator counts local truncations off by one ulp and those that wrapped (off by more: a
//!   catastrophic failure that usually ruins the logits).
//!
//! The client's randomness comes from a [`ShareSource`] per image: [`SeededShares`] (AES-CTR
//! keyed by the run seed and the image's global index, so any sharding or batching of a data set
//! gives identical results) for evaluation, and [`ReplayShares`], which draws exactly what the
//! protocol's client and dealer draw for given [`ProtocolSeeds`], so that the simulation equals
//! a real run ([`super::secure`]) bit for bit.
//!
//! Speed: convolutions run as one batched exact 16-bit integer GEMM (`ring::igemm`, AVX-512
//! VNNI where the CPU has it) whenever the weights and the image's values fit ±(2^15 − 1); other
//! linear layers and images run as one batched f64 GEMM (`ring::kernels`, the `gemm` crate) on
//! the signed representatives whenever that is provably exact — every partial sum is an integer
//! of magnitude at most (largest row L1 norm of M) · (the image's max |x|), checked per layer and
//! image against 2^53. Both give the exact integer product, then reduced mod 2^ℓ; an image that
//! fails both (a wrap made a value huge) goes through the exact u64 ring kernel instead. Elementwise work runs in
//! parallel over images; a value is freed after its last use, so memory follows one batch.

use std::sync::{Arc, Mutex, PoisonError};

use rand_chacha::ChaCha12Rng;
use rand_core::{RngCore, SeedableRng};
use rayon::prelude::*;

use crate::crypto::prg::Prg;
use crate::crypto::Block;
use crate::model::walk::{last_uses, slot, StepRef};
use crate::plain::fixed::apply_local;
use crate::plain::{FixedNetwork, LinearKind, LinearStep, PlainError, StepKind};
use crate::protocol::prepro::Dealer;
use crate::protocol::ProtocolError;
use crate::ring::{igemm, kernels, Ring};

/// Errors of the batched evaluator and of the in-process secure runs.
#[derive(Debug, thiserror::Error)]
pub enum PiError {
    /// The network cannot be evaluated (lowering or input).
    #[error(transparent)]
    Plain(#[from] PlainError),
    /// The batch is not a whole number of images.
    #[error("a batch of {got} input values is not a whole, non-zero number of images of {per_image} values")]
    BatchSize {
        /// Values given.
        got: usize,
        /// Values per image.
        per_image: usize,
    },
    /// The number of share sources differs from the number of images.
    #[error("{sources} share sources for {images} images")]
    Sources {
        /// Sources given.
        sources: usize,
        /// Images in the batch.
        images: usize,
    },
    /// A share source failed (the replaying dealer was asked for something it cannot deal).
    #[error("share source at step {step}: {source}")]
    Source {
        /// Step index.
        step: usize,
        /// What failed.
        source: ProtocolError,
    },
    /// A real two-party run failed.
    #[error("secure run of image {image}: {source}")]
    Secure {
        /// Global index of the image.
        image: u64,
        /// What failed.
        source: ProtocolError,
    },
    /// A broken invariant inside pibench (a bug, reported instead of a panic).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Which arithmetic the evaluator computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arithmetic {
    /// The deterministic fixed-point oracle ([`FixedNetwork::forward`]).
    Fixed,
    /// The two-party protocol's arithmetic, with the client's shares drawn by [`SeededShares`]
    /// from this run seed and each image's global index.
    Pi {
        /// The run seed.
        seed: u64,
    },
}

/// Which kernel computes the linear layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LinearPath {
    /// The exact 16-bit product ([`igemm`]) where operands fit, else the f64 GEMM where
    /// provably exact, else the u64 ring kernel (the default).
    #[default]
    Auto,
    /// The f64 GEMM where provably exact, the u64 ring kernel otherwise (for tests and
    /// benchmarks of the float path).
    Float,
    /// Always the u64 ring kernel (for tests and benchmarks of the fallback).
    Ring,
}

/// The outcome of one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageOutcome {
    /// The logits as ring elements.
    pub raw: Vec<u64>,
    /// The predicted class: the index of the largest signed logit (the first on ties).
    pub class: usize,
    /// Local truncations whose result was one ulp off the exact floor (Pi only).
    pub ulp_deviations: u64,
    /// Local truncations that wrapped: off by more than one ulp (Pi only).
    pub wrapped: u64,
}

impl ImageOutcome {
    /// The logits decoded to reals (`scale` is the network's `output_scale`).
    pub fn logits(&self, ring: &Ring, scale: u32) -> Vec<f64> {
        self.raw.iter().map(|&v| ring.decode(v, scale)).collect()
    }
}

/// The index of the largest ring element read as a signed value (the first on ties).
pub fn class_of(ring: &Ring, raw: &[u64]) -> usize {
    raw.iter()
        .enumerate()
        .fold((0, i64::MIN), |(bi, bv), (i, &v)| {
            let s = ring.to_signed(v);
            if s > bv {
                (i, s)
            } else {
                (bi, bv)
            }
        })
        .0
}

/// The client's randomness for one image: where its shares of the input, of every linear
/// output and of every kept ReLU's output come from. The evaluator calls [`input`] first, then
/// [`linear`] and [`relu`] in forward step order, once per step whose output share it needs.
///
/// [`input`]: ShareSource::input
/// [`linear`]: ShareSource::linear
/// [`relu`]: ShareSource::relu
pub trait ShareSource: Send {
    /// Whether the client's share of every value must be computed. A source that replays the
    /// protocol needs the share of every linear step's input (to compute `M·c_in − s`); the
    /// others need shares only where a local truncation reads them, which is faster.
    fn needs_all_shares(&self) -> bool;

    /// The client's share of the input (its mask `r0`), one per input element.
    fn input(&mut self, ring: &Ring, out: &mut [u64]) -> Result<(), PiError>;

    /// The client's share of linear step `step`'s output, `M·c_in − s`; `c_in` is the client's
    /// (locally truncated) share of the step's input, empty unless [`needs_all_shares`].
    ///
    /// [`needs_all_shares`]: ShareSource::needs_all_shares
    fn linear(
        &mut self,
        ring: &Ring,
        step: usize,
        c_in: &[u64],
        out: &mut [u64],
    ) -> Result<(), PiError>;

    /// The client's fresh masks `r` of the kept elements of the ReLU site at step `step`, in
    /// element order: the client's shares of their outputs.
    fn relu(&mut self, ring: &Ring, step: usize, out: &mut [u64]) -> Result<(), PiError>;
}

/// A 32-byte key from a run seed, an image's global index and a domain tag.
fn derive_key(run_seed: u64, image: u64, tag: &[u8; 16]) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&run_seed.to_le_bytes());
    key[8..16].copy_from_slice(&image.to_le_bytes());
    key[16..].copy_from_slice(tag);
    key
}

/// The evaluation's share source: every share uniform from AES-128 in counter mode
/// ([`Prg`]) keyed by (run seed, global image index). The protocol's shares are uniform and
/// independent exactly where this draws them (the input mask, each linear output masked by the
/// server's fresh `s`, each kept ReLU's fresh mask), so the simulated failures have the
/// protocol's distribution.
#[derive(Debug)]
pub struct SeededShares {
    prg: Prg,
}

impl SeededShares {
    /// The source of image `image` (its index in the whole data set) under `run_seed`.
    pub fn new(run_seed: u64, image: u64) -> Self {
        SeededShares {
            prg: Prg::from_seed(Block(u128::from(run_seed) | (u128::from(image) << 64))),
        }
    }

    /// Uniform ring elements, two per AES block.
    fn fill(&mut self, ring: &Ring, out: &mut [u64]) {
        let mut blocks = [Block::ZERO; 64];
        for chunk in out.chunks_mut(2 * blocks.len()) {
            let used = &mut blocks[..chunk.len().div_ceil(2)];
            self.prg.fill_blocks(used);
            for (pair, b) in chunk.chunks_mut(2).zip(used.iter()) {
                pair[0] = ring.reduce(b.0 as u64);
                if let Some(hi) = pair.get_mut(1) {
                    *hi = ring.reduce((b.0 >> 64) as u64);
                }
            }
        }
    }
}

impl ShareSource for SeededShares {
    fn needs_all_shares(&self) -> bool {
        false
    }

    fn input(&mut self, ring: &Ring, out: &mut [u64]) -> Result<(), PiError> {
        self.fill(ring, out);
        Ok(())
    }

    fn linear(&mut self, ring: &Ring, _: usize, _: &[u64], out: &mut [u64]) -> Result<(), PiError> {
        self.fill(ring, out);
        Ok(())
    }

    fn relu(&mut self, ring: &Ring, _: usize, out: &mut [u64]) -> Result<(), PiError> {
        self.fill(ring, out);
        Ok(())
    }
}

/// The seeds of one real protocol run's client-side randomness: the client's offline rng
/// (ChaCha12; it draws `r0`, then each site's kept-element masks) and the dealer's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolSeeds {
    /// Seed of the rng passed to `protocol::client::offline`.
    pub client: [u8; 32],
    /// Seed of the [`Dealer`] (`Dealer::with_seed`).
    pub dealer: [u8; 32],
}

impl ProtocolSeeds {
    /// The seeds of image `image` (global index) under `run_seed`.
    pub fn for_image(run_seed: u64, image: u64) -> Self {
        ProtocolSeeds {
            client: derive_key(run_seed, image, b"pibench-client\0\0"),
            dealer: derive_key(run_seed, image, b"pibench-dealer\0\0"),
        }
    }

    /// The client's offline rng, as the protocol run uses it.
    pub fn client_rng(&self) -> ChaCha12Rng {
        ChaCha12Rng::from_seed(self.client)
    }
}

/// A share source that draws exactly what a protocol run with [`ProtocolSeeds`] draws: `r0` and
/// the ReLU masks from the client's offline rng in the client's order, and each linear output's
/// client share `M·c_in − s` from the same seeded [`Dealer`]. Slow (one image at a time through
/// the ring kernel); for tests and for checking real runs.
pub struct ReplayShares {
    rng: ChaCha12Rng,
    dealer: Dealer,
}

impl ReplayShares {
    /// The replay of a run of `net` (with weights) under `seeds`.
    pub fn new(net: Arc<FixedNetwork>, seeds: &ProtocolSeeds) -> Self {
        ReplayShares {
            rng: seeds.client_rng(),
            dealer: Dealer::with_seed(net, seeds.dealer),
        }
    }
}

impl ShareSource for ReplayShares {
    fn needs_all_shares(&self) -> bool {
        true
    }

    fn input(&mut self, ring: &Ring, out: &mut [u64]) -> Result<(), PiError> {
        // The client's order: one `next_u64` per element.
        out.iter_mut()
            .for_each(|v| *v = ring.reduce(self.rng.next_u64()));
        Ok(())
    }

    fn linear(
        &mut self,
        _: &Ring,
        step: usize,
        c_in: &[u64],
        out: &mut [u64],
    ) -> Result<(), PiError> {
        let (mc, _) = self
            .dealer
            .deal(step, c_in)
            .map_err(|source| PiError::Source { step, source })?;
        if mc.len() != out.len() {
            return Err(PiError::Internal(format!(
                "dealer gave {} values for step {step}, expected {}",
                mc.len(),
                out.len()
            )));
        }
        out.copy_from_slice(&mc);
        Ok(())
    }

    fn relu(&mut self, ring: &Ring, _: usize, out: &mut [u64]) -> Result<(), PiError> {
        out.iter_mut()
            .for_each(|v| *v = ring.reduce(self.rng.next_u64()));
        Ok(())
    }
}

/// The f64 and 16-bit forms of a GEMM-backed linear step, prepared once.
struct FloatWeights {
    /// M's signed representatives.
    weight: Vec<f64>,
    /// The largest L1 norm of a row of M (of the signed representatives).
    row_l1: u128,
    /// A convolution's M packed for the exact 16-bit product, when its entries fit.
    packed: Option<igemm::PackedI16>,
}

/// 2^53: integers below it in magnitude are exact in f64.
const F64_EXACT: u128 = 1 << 53;

/// One value of a batch: the true values `x` of every image, and the client's shares where the
/// Pi arithmetic needs them.
struct Value {
    x: Vec<u64>,
    c: Option<Vec<u64>>,
}

/// Large buffers recycled across the steps and batches of one evaluator. A batch's values are
/// tens of megabytes, above glibc's mmap threshold: without reuse every step would map, fault in
/// and unmap fresh pages, which cost more than a tenth of the evaluation. A taken buffer holds
/// stale values: every caller overwrites all of it.
struct Pool<T> {
    free: Mutex<Vec<Vec<T>>>,
}

/// Buffers a pool keeps at most (a batch has a few live values, each with a share).
const POOL_BUFFERS: usize = 12;

impl<T: Copy + Default> Pool<T> {
    fn new() -> Self {
        Pool {
            free: Mutex::new(Vec::new()),
        }
    }

    /// A buffer of `len` elements, recycled when one of a fitting capacity is free.
    fn take(&self, len: usize) -> Vec<T> {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        let best = free
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= len && v.capacity() <= 2 * len)
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i);
        match best {
            Some(i) => {
                let mut v = free.swap_remove(i);
                drop(free);
                if v.len() >= len {
                    v.truncate(len);
                } else {
                    v.resize(len, T::default());
                }
                v
            }
            None => {
                drop(free);
                vec![T::default(); len]
            }
        }
    }

    /// Return a buffer for reuse.
    fn give(&self, v: Vec<T>) {
        if v.capacity() < 1 << 16 {
            return; // small: the allocator recycles it well enough
        }
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        if free.len() < POOL_BUFFERS {
            free.push(v);
        } else if let Some(smallest) = free.iter_mut().min_by_key(|b| b.capacity()) {
            if smallest.capacity() < v.capacity() {
                *smallest = v;
            }
        }
    }
}

/// Per-image counters of local truncation outcomes.
#[derive(Clone, Copy, Default)]
struct Deviations {
    ulp: u64,
    wrapped: u64,
}

impl Deviations {
    #[inline(always)]
    fn count(&mut self, d: i64) {
        // Without branches: whether a truncation is off by one is a coin toss.
        let a = d.unsigned_abs();
        self.ulp += u64::from(a == 1);
        self.wrapped += u64::from(a > 1);
    }
}

/// Local (SecureML) truncation of the value `x` whose client share is `c`: the recombined
/// result, the client's truncated share, and the deviation from the exact floor.
#[inline(always)]
fn local_trunc(ring: &Ring, x: u64, c: u64, t: u32) -> (u64, u64, i64) {
    let ct = ring.trunc_share_client(c, t);
    let y = ring.add(ring.trunc_share_server(ring.sub(x, c), t), ct);
    (y, ct, ring.to_signed(ring.sub(y, ring.trunc(x, t))))
}

/// `relu(x >>arith t)`: a kept element, as the garbled circuit computes it.
#[inline(always)]
fn relu_trunc(ring: &Ring, x: u64, t: u32) -> u64 {
    let v = ring.trunc(x, t);
    if ring.to_signed(v) < 0 {
        0
    } else {
        v
    }
}

/// The batched evaluator of one [`FixedNetwork`].
pub struct BatchEvaluator {
    net: Arc<FixedNetwork>,
    /// Per step: the f64 weights of a conv or fully connected step.
    float: Vec<Option<FloatWeights>>,
    /// Per value slot: the last step reading it.
    last_use: Vec<Option<StepRef>>,
    /// Per value slot: whether a local truncation (directly or through local steps) reads its
    /// client share.
    needs_share: Vec<bool>,
    /// Per step: kept elements of a ReLU site.
    kept: Vec<usize>,
    path: LinearPath,
    ring_buffers: Pool<u64>,
}

impl BatchEvaluator {
    /// An evaluator of `net`.
    pub fn new(net: Arc<FixedNetwork>) -> Self {
        let ring = net.ring;
        let float = net
            .steps
            .iter()
            .map(|s| match &s.kind {
                StepKind::Linear(l) => {
                    let cols = match &l.kind {
                        LinearKind::Conv(g) => g.patch_len(),
                        LinearKind::Fc { out_features } => l.weight.len() / (*out_features).max(1),
                        LinearKind::ChannelScale { .. } => return None,
                    };
                    let row_l1 = l
                        .weight
                        .chunks(cols.max(1))
                        .map(|row| {
                            row.iter()
                                .map(|&w| ring.to_signed(w).unsigned_abs() as u128)
                                .sum::<u128>()
                        })
                        .max()
                        .unwrap_or(0);
                    let signed: Vec<i64> = l.weight.iter().map(|&w| ring.to_signed(w)).collect();
                    let packed = match &l.kind {
                        LinearKind::Conv(g) => {
                            igemm::PackedI16::new(&signed, g.out_channels, g.patch_len())
                        }
                        _ => None,
                    };
                    let weight = signed.iter().map(|&w| w as f64).collect();
                    Some(FloatWeights {
                        weight,
                        row_l1,
                        packed,
                    })
                }
                _ => None,
            })
            .collect();
        let kept = net
            .steps
            .iter()
            .map(|s| match &s.kind {
                StepKind::Relu { keep: None, .. } => s.out_shape.elements(),
                StepKind::Relu { keep: Some(k), .. } => k.iter().filter(|&&b| b).count(),
                _ => 0,
            })
            .collect();
        BatchEvaluator {
            last_use: last_uses(net.as_ref()),
            needs_share: share_needs(&net),
            float,
            kept,
            net,
            path: LinearPath::Auto,
            ring_buffers: Pool::new(),
        }
    }

    /// The same evaluator computing linear layers on `path`.
    pub fn with_linear_path(mut self, path: LinearPath) -> Self {
        self.path = path;
        self
    }

    /// The network.
    pub fn network(&self) -> &Arc<FixedNetwork> {
        &self.net
    }

    /// Evaluate a batch `inputs` (`[N, input elements]`, f32 in the model's input encoding)
    /// whose first image has global index `first_image` (it keys the Pi randomness).
    pub fn evaluate(
        &self,
        inputs: &[f32],
        first_image: u64,
        arithmetic: Arithmetic,
    ) -> Result<Vec<ImageOutcome>, PiError> {
        match arithmetic {
            Arithmetic::Fixed => self.walk::<SeededShares>(inputs, None),
            Arithmetic::Pi { seed } => {
                let n = self.images(inputs)?;
                let mut sources: Vec<SeededShares> = (0..n as u64)
                    .map(|i| SeededShares::new(seed, first_image + i))
                    .collect();
                self.walk(inputs, Some(&mut sources))
            }
        }
    }

    /// Evaluate a batch in the Pi arithmetic with one share source per image.
    pub fn evaluate_with<S: ShareSource>(
        &self,
        inputs: &[f32],
        sources: &mut [S],
    ) -> Result<Vec<ImageOutcome>, PiError> {
        self.walk(inputs, Some(sources))
    }

    /// Evaluate a batch in the Pi arithmetic replaying the protocol runs seeded by
    /// [`ProtocolSeeds::for_image`]`(run_seed, first_image + i)` for image i.
    pub fn replay(
        &self,
        inputs: &[f32],
        first_image: u64,
        run_seed: u64,
    ) -> Result<Vec<ImageOutcome>, PiError> {
        let n = self.images(inputs)?;
        let mut sources: Vec<ReplayShares> = (0..n as u64)
            .map(|i| {
                ReplayShares::new(
                    self.net.clone(),
                    &ProtocolSeeds::for_image(run_seed, first_image + i),
                )
            })
            .collect();
        self.walk(inputs, Some(&mut sources))
    }

    fn images(&self, inputs: &[f32]) -> Result<usize, PiError> {
        let per_image = self.net.input_shape.elements();
        if per_image == 0 || inputs.is_empty() || !inputs.len().is_multiple_of(per_image) {
            return Err(PiError::BatchSize {
                got: inputs.len(),
                per_image,
            });
        }
        Ok(inputs.len() / per_image)
    }

    /// The walk over the steps: the Fixed arithmetic without sources, Pi with them.
    fn walk<S: ShareSource>(
        &self,
        inputs: &[f32],
        mut sources: Option<&mut [S]>,
    ) -> Result<Vec<ImageOutcome>, PiError> {
        let net = &*self.net;
        let ring = net.ring;
        let n = self.images(inputs)?;
        if let Some(s) = &sources {
            if s.len() != n {
                return Err(PiError::Sources {
                    sources: s.len(),
                    images: n,
                });
            }
        }
        let all_shares = sources
            .as_ref()
            .is_some_and(|s| s.iter().any(|s| s.needs_all_shares()));
        let pi = sources.is_some();
        let need = |slot: usize| pi && (all_shares || self.needs_share[slot]);
        let per_in = net.input_shape.elements();
        let mut dev = vec![Deviations::default(); n];

        let mut values: Vec<Option<Value>> = Vec::new();
        values.resize_with(net.steps.len() + 1, || None);
        let mut x0 = self.ring_buffers.take(n * per_in);
        x0.par_chunks_mut(per_in)
            .zip(inputs.par_chunks(per_in))
            .try_for_each(|(out, img)| -> Result<(), PiError> {
                out.copy_from_slice(&net.encode_input(img)?);
                Ok(())
            })?;
        let c0 = match sources.as_deref_mut() {
            Some(src) if need(0) => {
                let mut c = self.ring_buffers.take(n * per_in);
                c.par_chunks_mut(per_in)
                    .zip(src.par_iter_mut())
                    .try_for_each(|(c, s)| s.input(&ring, c))?;
                Some(c)
            }
            _ => None,
        };
        values[0] = Some(Value { x: x0, c: c0 });

        for (i, step) in net.steps.iter().enumerate() {
            let out_slot = i + 1;
            let need_out = need(out_slot);
            let in_slot = slot(step.inputs[0]);
            let freed = || PiError::Internal(format!("step {i} reads a freed value"));
            let per_out = step.out_shape.elements();
            let out = match &step.kind {
                StepKind::Linear(l) => {
                    let truncated = if l.input_trunc > 0 {
                        let mut v = self.owned(&mut values, in_slot, i).ok_or_else(freed)?;
                        truncate(&ring, &mut v, l.input_trunc, pi, n, &mut dev)?;
                        Some(v)
                    } else {
                        None
                    };
                    let input = match &truncated {
                        Some(v) => v,
                        None => values[in_slot].as_ref().ok_or_else(freed)?,
                    };
                    let per = input.x.len() / n;
                    let y = self.linear(i, l, &input.x, n)?;
                    let c = match sources.as_deref_mut() {
                        Some(src) if need_out => {
                            let c_in = input.c.as_deref().filter(|_| all_shares);
                            let mut c = self.ring_buffers.take(n * per_out);
                            c.par_chunks_mut(per_out)
                                .zip(src.par_iter_mut())
                                .enumerate()
                                .try_for_each(|(img, (c, s))| {
                                    let cin = c_in.map_or(&[][..], |ci| &ci[img * per..][..per]);
                                    s.linear(&ring, i, cin, c)
                                })?;
                            Some(c)
                        }
                        _ => None,
                    };
                    Value { x: y, c }
                }
                StepKind::Relu { keep, trunc, .. } => {
                    let mut v = self.owned(&mut values, in_slot, i).ok_or_else(freed)?;
                    self.relu(
                        i,
                        &mut v,
                        keep.as_deref(),
                        *trunc,
                        n,
                        need_out,
                        sources.as_deref_mut(),
                        &mut dev,
                    )?;
                    v
                }
                local => {
                    let input = values[in_slot].as_ref().ok_or_else(freed)?;
                    let second = match step.inputs.get(1) {
                        Some(&v) => Some(values[slot(v)].as_ref().ok_or_else(freed)?),
                        None => None,
                    };
                    let per_a = input.x.len() / n;
                    let per_b = second.map_or(0, |v| v.x.len() / n);
                    let apply = |a: &[u64], b: Option<&[u64]>| -> Result<Vec<u64>, PiError> {
                        let mut out = self.ring_buffers.take(n * per_out);
                        out.par_chunks_mut(per_out).enumerate().try_for_each(
                            |(img, o)| -> Result<(), PiError> {
                                let bi = b.map(|b| &b[img * per_b..(img + 1) * per_b]);
                                let ai = &a[img * per_a..(img + 1) * per_a];
                                let y = match bi {
                                    Some(bi) => apply_local(&ring, local, &[ai, bi]),
                                    None => apply_local(&ring, local, &[ai]),
                                }
                                .ok_or_else(|| {
                                    PiError::Internal(format!("step {i} is not local"))
                                })?;
                                o.copy_from_slice(&y);
                                Ok(())
                            },
                        )?;
                        Ok(out)
                    };
                    let x = apply(&input.x, second.map(|v| v.x.as_slice()))?;
                    let c = if need_out {
                        fn share(v: &Value, i: usize) -> Result<&[u64], PiError> {
                            v.c.as_deref().ok_or_else(|| {
                                PiError::Internal(format!("step {i}: an operand has no share"))
                            })
                        }
                        let b = match second {
                            Some(v) => Some(share(v, i)?),
                            None => None,
                        };
                        Some(apply(share(input, i)?, b)?)
                    } else {
                        None
                    };
                    Value { x, c }
                }
            };
            values[out_slot] = Some(out);
            for (v, &l) in values.iter_mut().zip(&self.last_use) {
                if l == Some(StepRef::Step(i)) {
                    if let Some(dead) = v.take() {
                        self.recycle(dead);
                    }
                }
            }
        }
        let logits = values[slot(net.output)]
            .take()
            .ok_or_else(|| PiError::Internal("the logits were never computed".into()))?
            .x;
        let per = logits.len() / n;
        Ok(logits
            .chunks(per.max(1))
            .zip(dev)
            .map(|(raw, d)| ImageOutcome {
                raw: raw.to_vec(),
                class: class_of(&ring, raw),
                ulp_deviations: d.ulp,
                wrapped: d.wrapped,
            })
            .collect())
    }

    /// Return a dead value's buffers to the pool.
    fn recycle(&self, v: Value) {
        self.ring_buffers.give(v.x);
        if let Some(c) = v.c {
            self.ring_buffers.give(c);
        }
    }

    /// The value in `slot` as a buffer step `step` may overwrite: moved out when `step` is its
    /// last reader (and reads it once), copied otherwise. `None` if it was freed.
    fn owned(&self, values: &mut [Option<Value>], slot_: usize, step: usize) -> Option<Value> {
        let readers = self.net.steps[step]
            .inputs
            .iter()
            .filter(|&&v| slot(v) == slot_)
            .count();
        if self.last_use[slot_] == Some(StepRef::Step(step)) && readers == 1 {
            values[slot_].take()
        } else {
            let copy = |src: &Vec<u64>| {
                let mut b = self.ring_buffers.take(src.len());
                b.copy_from_slice(src);
                b
            };
            values[slot_].as_ref().map(|v| Value {
                x: copy(&v.x),
                c: v.c.as_ref().map(copy),
            })
        }
    }

    /// A ReLU site on a batch, in place.
    #[allow(clippy::too_many_arguments)]
    fn relu<S: ShareSource>(
        &self,
        step: usize,
        v: &mut Value,
        keep: Option<&[bool]>,
        t: u32,
        n: usize,
        need_out: bool,
        sources: Option<&mut [S]>,
        dev: &mut [Deviations],
    ) -> Result<(), PiError> {
        let ring = self.net.ring;
        let per = v.x.len() / n;
        let Some(sources) = sources else {
            // The oracle: exact floor everywhere.
            v.x.par_chunks_mut(per)
                .for_each(|x| relu_fixed(&ring, x, keep, t));
            if let Some(c) = v.c.take() {
                self.ring_buffers.give(c);
            }
            return Ok(());
        };
        let linearized = keep.is_some_and(|k| k.iter().any(|&b| !b));
        if v.c.is_none() && linearized && (t > 0 || need_out) {
            return Err(PiError::Internal(format!(
                "ReLU step {step}: a linearized element has no client share"
            )));
        }
        if v.c.is_none() && need_out {
            // Every element kept: the shares are all fresh masks.
            v.c = Some(self.ring_buffers.take(v.x.len()));
        }
        let kept = self.kept[step];
        let c_chunks: Vec<Option<&mut [u64]>> = match v.c.as_mut() {
            Some(c) => c.chunks_mut(per).map(Some).collect(),
            None => (0..n).map(|_| None).collect(),
        };
        v.x.par_chunks_mut(per)
            .zip(c_chunks)
            .zip(sources.par_iter_mut())
            .zip(dev.par_iter_mut())
            .try_for_each(|(((x, c), src), d)| -> Result<(), PiError> {
                let mut masks = Vec::new();
                if need_out {
                    masks = vec![0u64; kept];
                    src.relu(&ring, step, &mut masks)?;
                }
                match (keep, c) {
                    (_, None) => relu_fixed(&ring, x, keep, t),
                    (None, Some(c)) => {
                        x.iter_mut().for_each(|v| *v = relu_trunc(&ring, *v, t));
                        if need_out {
                            c.copy_from_slice(&masks);
                        }
                    }
                    (Some(k), Some(c)) => relu_pi(&ring, x, c, k, t, need_out, &masks, d),
                }
                Ok(())
            })?;
        if !need_out {
            if let Some(c) = v.c.take() {
                self.ring_buffers.give(c);
            }
        }
        Ok(())
    }

    /// `M·x + b` on the ring for a batch of `n` images.
    fn linear(
        &self,
        step: usize,
        l: &LinearStep,
        x: &[u64],
        n: usize,
    ) -> Result<Vec<u64>, PiError> {
        let ring = self.net.ring;
        let per_in = x.len() / n;
        if let LinearKind::ChannelScale { channels, plane } = l.kind {
            let mut y = self.ring_buffers.take(x.len());
            y.par_chunks_mut(plane.max(1))
                .zip(x.par_chunks(plane.max(1)))
                .enumerate()
                .for_each(|(row, (yo, xi))| {
                    let ch = row % channels.max(1);
                    let (w, b) = (l.weight[ch], l.bias[ch]);
                    for (o, &v) in yo.iter_mut().zip(xi) {
                        *o = ring.add(ring.mul(v, w), b);
                    }
                });
            return Ok(y);
        }
        let fw = self.float[step]
            .as_ref()
            .ok_or_else(|| PiError::Internal(format!("step {step} has no prepared weights")))?;
        let per_out = match &l.kind {
            LinearKind::Conv(g) => g.out_channels * g.out_h() * g.out_w(),
            LinearKind::Fc { out_features } => *out_features,
            LinearKind::ChannelScale { .. } => unreachable!("handled above"),
        };
        // Per image, the largest magnitude of its signed values, which decides the kernel: the
        // exact 16-bit product when they fit `i16` with a provably overflow-free K-chunk, else
        // the f64 product when every partial sum, an integer of magnitude ≤ row_l1 · max|x|,
        // stays below 2^53, else the u64 ring kernel.
        let max_abs: Vec<u64> = match self.path {
            LinearPath::Ring => vec![u64::MAX; n],
            LinearPath::Auto | LinearPath::Float => x
                .par_chunks(per_in)
                .map(|img| {
                    // Signed min and max (a form that vectorizes), then the larger magnitude.
                    let (lo, hi) = img.iter().fold((0i64, 0i64), |(lo, hi), &v| {
                        let s = ring.to_signed(v);
                        (lo.min(s), hi.max(s))
                    });
                    lo.unsigned_abs().max(hi.unsigned_abs())
                })
                .collect(),
        };
        let packed = fw.packed.as_ref().filter(|_| self.path == LinearPath::Auto);
        let route = |max: u64| {
            let wide = u128::from(max);
            if packed.is_some_and(|p| p.chunk_for(max).is_some()) {
                Route::I16
            } else if fw.row_l1 < F64_EXACT && wide < F64_EXACT && fw.row_l1 * wide < F64_EXACT {
                Route::F64
            } else {
                Route::Ring
            }
        };
        let routes: Vec<Route> = max_abs.iter().map(|&m| route(m)).collect();
        let imgs = |r: Route| -> Vec<usize> { (0..n).filter(|&i| routes[i] == r).collect() };
        let (i16_imgs, float_imgs, ring_imgs) =
            (imgs(Route::I16), imgs(Route::F64), imgs(Route::Ring));
        let mut y = self.ring_buffers.take(n * per_out);
        let mask = ring.mask();
        if let (Some(packed), LinearKind::Conv(g)) = (packed, &l.kind) {
            if !i16_imgs.is_empty() {
                let sub = gather(x, per_in, &i16_imgs, n);
                let xs = sub.as_deref().unwrap_or(x);
                let worst = i16_imgs.iter().map(|&i| max_abs[i]).max().unwrap_or(0);
                let chunk = packed.chunk_for(worst).ok_or_else(|| {
                    PiError::Internal(format!("step {step}: no 16-bit chunk for a fitting batch"))
                })?;
                // Every value of these images lies in ±(2^15 − 1): the cast is exact.
                let to_i16 = move |v: u64| ring.to_signed(v) as i16;
                let mut picked = pick(&mut y, per_out, &i16_imgs);
                let mut pairs = igemm::PairRows::default();
                kernels::conv2d_batch_chunks_with(
                    xs,
                    i16_imgs.len(),
                    g,
                    |x, nb, p| {
                        igemm::im2col_pairs(x, nb, g, to_i16, &mut pairs);
                        igemm::matmul(packed, chunk, &pairs, p);
                    },
                    |start, nb, p| {
                        to_ring_planes(
                            &mut picked[start..start + nb],
                            nb,
                            p,
                            g,
                            &l.bias,
                            mask,
                            |v| v,
                        )
                    },
                );
            }
        }
        if !float_imgs.is_empty() {
            let sub = gather(x, per_in, &float_imgs, n);
            let xs = sub.as_deref().unwrap_or(x);
            let k = float_imgs.len();
            let to_f64 = move |v: u64| ring.to_signed(v) as f64;
            // Exact integers below 2^53: `as i64` is exact, and two's complement is the ring.
            let to_ring = |v: f64| v as i64 as u64;
            match &l.kind {
                LinearKind::Conv(g) => {
                    // The conversion to f64 happens inside im2col, and the products go to the
                    // ring with their bias in the pass that lays them out per image.
                    let mut picked = pick(&mut y, per_out, &float_imgs);
                    kernels::conv2d_batch_chunks(xs, k, &fw.weight, g, to_f64, |start, nb, p| {
                        to_ring_planes(
                            &mut picked[start..start + nb],
                            nb,
                            p,
                            g,
                            &l.bias,
                            mask,
                            |v| {
                                // SAFETY: the bound checked above makes every product an integer
                                // of magnitude below 2^53, finite and in i64's range (the
                                // unchecked conversion vectorizes; `as` saturates and checks for
                                // NaN per element).
                                unsafe { v.to_int_unchecked::<i64>() }
                            },
                        )
                    });
                }
                _ => {
                    let xf: Vec<f64> = xs.par_iter().map(|&v| to_f64(v)).collect();
                    let yf = product(&l.kind, &xf, k, &fw.weight);
                    scatter(&ring, l, &mut y, per_out, &float_imgs, &yf, to_ring);
                }
            }
        }
        if !ring_imgs.is_empty() {
            let sub = gather(x, per_in, &ring_imgs, n);
            let xs = sub.as_deref().unwrap_or(x);
            let k = ring_imgs.len();
            let yr = product(&l.kind, xs, k, &l.weight);
            scatter(&ring, l, &mut y, per_out, &ring_imgs, &yr, |v| v);
            self.ring_buffers.give(yr);
        }
        Ok(y)
    }
}

/// Which kernel computes a linear step for one image.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    /// The exact 16-bit product ([`igemm`]).
    I16,
    /// The f64 GEMM, provably exact.
    F64,
    /// The u64 ring kernel.
    Ring,
}

/// The products `p` (`[O, nb·P]`, channel-major, as `to_i64` converts them to exact integers)
/// of `nb` images of a convolution, written as ring elements with the bias `bias` into the
/// images' outputs `imgs` (`[O, P]` each).
fn to_ring_planes<P: Copy + Sync>(
    imgs: &mut [&mut [u64]],
    nb: usize,
    p: &[P],
    g: &kernels::ConvGeometry,
    bias: &[u64],
    mask: u64,
    to_i64: impl Fn(P) -> i64 + Sync,
) {
    let plane = g.out_h() * g.out_w();
    imgs.par_iter_mut().enumerate().for_each(|(j, img)| {
        for ((o, &b), ch) in img.chunks_mut(plane.max(1)).zip(bias).zip(0..) {
            let src = &p[(ch * nb + j) * plane..][..plane];
            for (o, &v) in o.iter_mut().zip(src) {
                *o = (to_i64(v) as u64).wrapping_add(b) & mask;
            }
        }
    });
}

/// The product of a convolution or fully connected step (no bias) with weights `w` for a batch
/// of `k` images, in floating point or on the ring.
fn product<T: kernels::Elem>(kind: &LinearKind, x: &[T], k: usize, w: &[T]) -> Vec<T> {
    match kind {
        LinearKind::Conv(g) => kernels::conv2d_batch(x, k, w, None, g),
        LinearKind::Fc { out_features } => kernels::linear_batch(x, k, w, None, *out_features),
        LinearKind::ChannelScale { .. } => unreachable!("a channel scale is computed elementwise"),
    }
}

/// The images `imgs` of a batch of `n` (`per` values each), or `None` when that is all of them.
fn gather<T: Copy + Send + Sync>(x: &[T], per: usize, imgs: &[usize], n: usize) -> Option<Vec<T>> {
    (imgs.len() != n).then(|| {
        imgs.iter()
            .flat_map(|&i| &x[i * per..(i + 1) * per])
            .copied()
            .collect()
    })
}

/// The outputs of images `imgs` (increasing) of a batch `y` of `per_out` values per image.
fn pick<'a>(y: &'a mut [u64], per_out: usize, imgs: &[usize]) -> Vec<&'a mut [u64]> {
    let mut picked = Vec::with_capacity(imgs.len());
    let mut wanted = imgs.iter().peekable();
    for (i, chunk) in y.chunks_mut(per_out.max(1)).enumerate() {
        if wanted.peek() == Some(&&i) {
            picked.push(chunk);
            wanted.next();
        }
    }
    picked
}

/// Write the products `sub` of images `imgs` (in order) into the batch `y` as ring elements
/// (`to_ring`, then reduced) plus the step's bias.
fn scatter<T: Copy + Send + Sync>(
    ring: &Ring,
    l: &LinearStep,
    y: &mut [u64],
    per_out: usize,
    imgs: &[usize],
    sub: &[T],
    to_ring: impl Fn(T) -> u64 + Sync,
) {
    let bias_plane = (per_out / l.bias.len().max(1)).max(1);
    pick(y, per_out, imgs)
        .into_par_iter()
        .zip(sub.par_chunks(per_out))
        .for_each(|(o, s)| {
            for ((o, s), &b) in o
                .chunks_mut(bias_plane)
                .zip(s.chunks(bias_plane))
                .zip(&l.bias)
            {
                for (o, &v) in o.iter_mut().zip(s) {
                    *o = ring.add(ring.reduce(to_ring(v)), b);
                }
            }
        });
}

/// Local truncation by `t` of every value of a batch in place: exact floor in the Fixed
/// arithmetic, the two shares' local truncation in Pi (counting deviations per image).
fn truncate(
    ring: &Ring,
    v: &mut Value,
    t: u32,
    pi: bool,
    n: usize,
    dev: &mut [Deviations],
) -> Result<(), PiError> {
    if !pi {
        v.x.par_iter_mut().for_each(|x| *x = ring.trunc(*x, t));
        return Ok(());
    }
    let per = v.x.len() / n;
    let c = v
        .c
        .as_mut()
        .ok_or_else(|| PiError::Internal("a locally truncated value has no client share".into()))?;
    v.x.par_chunks_mut(per)
        .zip(c.par_chunks_mut(per))
        .zip(dev.par_iter_mut())
        .for_each(|((x, c), d)| {
            for (x, c) in x.iter_mut().zip(c.iter_mut()) {
                let (y, ct, e) = local_trunc(ring, *x, *c, t);
                *x = y;
                *c = ct;
                d.count(e);
            }
        });
    Ok(())
}

/// A ReLU site on one image in the Fixed arithmetic, in place: kept elements `relu(x >> t)`,
/// the others `x >> t` (exact floor). Also the Pi arithmetic of a site without client shares
/// (then nothing linearized truncates).
fn relu_fixed(ring: &Ring, x: &mut [u64], keep: Option<&[bool]>, t: u32) {
    match keep {
        None => x.iter_mut().for_each(|v| *v = relu_trunc(ring, *v, t)),
        Some(k) => x.iter_mut().zip(k).for_each(|(v, &kept)| {
            *v = if kept {
                relu_trunc(ring, *v, t)
            } else {
                ring.trunc(*v, t)
            }
        }),
    }
}

/// A ReLU site on one image in the Pi arithmetic, in place on the values `x` and the client's
/// shares `c`: kept elements exact with the next fresh mask as share (when `need_out`),
/// linearized ones truncated locally. Branch-free per element: the kept pattern is irregular.
#[allow(clippy::too_many_arguments)]
fn relu_pi(
    ring: &Ring,
    x: &mut [u64],
    c: &mut [u64],
    keep: &[bool],
    t: u32,
    need_out: bool,
    masks: &[u64],
    d: &mut Deviations,
) {
    let mut next = 0usize;
    for ((x, c), &kept) in x.iter_mut().zip(c.iter_mut()).zip(keep) {
        let exact = relu_trunc(ring, *x, t);
        let (y, ct, e) = local_trunc(ring, *x, *c, t);
        *x = if kept { exact } else { y };
        if need_out {
            let m = masks.get(next).copied().unwrap_or(0);
            *c = if kept { m } else { ct };
            next += usize::from(kept);
        }
        d.count(if kept { 0 } else { e });
    }
}

/// Per value slot, whether the Pi arithmetic reads its client share: the input of a locally
/// truncated linear step, of a ReLU site with linearized elements that truncates (or whose own
/// share is read), and the operands of a local step whose share is read.
fn share_needs(net: &FixedNetwork) -> Vec<bool> {
    let mut need = vec![false; net.steps.len() + 1];
    for (i, step) in net.steps.iter().enumerate().rev() {
        let out = need[i + 1];
        let reads = match &step.kind {
            StepKind::Linear(l) => l.input_trunc > 0,
            StepKind::Relu { keep, trunc, .. } => {
                keep.as_ref().is_some_and(|k| k.iter().any(|&b| !b)) && (*trunc > 0 || out)
            }
            _ => out,
        };
        if reads {
            for &v in &step.inputs {
                need[slot(v)] = true;
            }
        }
    }
    need
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plain::Step;

    #[test]
    fn class_reads_signed_values() {
        let ring = Ring::new(16, 4).unwrap();
        assert_eq!(class_of(&ring, &[ring.from_signed(-3), 5, 2]), 1);
        // 0xFFFF is −1 in 16 bits, below 0.
        assert_eq!(class_of(&ring, &[0, 0xFFFF]), 0);
        assert_eq!(class_of(&ring, &[7, 7]), 0);
    }

    #[test]
    fn local_truncation_counts_deviations_and_wraps() {
        let ring = Ring::new(16, 4).unwrap();
        let mut d = Deviations::default();
        // x = 37, floor(37 / 4) = 9. The client's share 2^15 gives it exactly, 2^15 + 1 one
        // ulp more.
        let (y, ct, e) = local_trunc(&ring, 37, 1 << 15, 2);
        assert_eq!((ring.to_signed(y), e), (9, 0));
        assert_eq!(ct, ring.trunc_share_client(1 << 15, 2));
        d.count(e);
        let (y, _, e) = local_trunc(&ring, 37, (1 << 15) + 1, 2);
        assert_eq!((ring.to_signed(y), e), (10, 1));
        d.count(e);
        // x = 2^14 with the share c = 1: x + (−c mod 2^16) ≥ 2^16, the shares wrap.
        let (y, _, e) = local_trunc(&ring, 1 << 14, 1, 2);
        assert_eq!((ring.to_signed(y), e), (-12288, -16384));
        d.count(e);
        assert_eq!((d.ulp, d.wrapped), (1, 1));
    }

    fn conv_step(ring: &Ring, seed: u64, big: bool) -> (FixedNetwork, usize) {
        use crate::model::{Shape, ValueId};
        let g = kernels::ConvGeometry {
            in_channels: 3,
            in_h: 6,
            in_w: 5,
            out_channels: 4,
            kh: 3,
            kw: 3,
            stride: 1,
            padding: 1,
        };
        let mut s = seed | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let weight: Vec<u64> = (0..4 * 27)
            .map(|_| {
                if big {
                    ring.reduce(next())
                } else {
                    ring.from_signed((next() % 2001) as i64 - 1000)
                }
            })
            .collect();
        let bias: Vec<u64> = (0..4).map(|_| ring.reduce(next())).collect();
        let step = Step {
            name: "conv".into(),
            inputs: vec![ValueId::Input],
            kind: StepKind::Linear(LinearStep {
                kind: LinearKind::Conv(g),
                weight,
                bias,
                input_trunc: 0,
            }),
            out_scale: 2 * ring.frac,
            out_shape: Shape::Chw(4, 6, 5),
        };
        let net = FixedNetwork {
            ring: *ring,
            input_shape: Shape::Chw(3, 6, 5),
            steps: vec![step],
            output: ValueId::Layer(0),
            output_scale: 2 * ring.frac,
            bn_path: crate::model::BnPath::Clean,
        };
        (net, 3 * 6 * 5)
    }

    #[test]
    fn all_linear_paths_agree_on_the_ring() {
        // Small weights (the 16-bit and f64 paths), huge weights (neither bound holds: the
        // ring path), and batches mixing small images with one whose values exceed i16 (f64)
        // or are huge (ring).
        let ring = Ring::default();
        for (seed, big) in [(1u64, false), (2, true), (3, false), (4, false)] {
            let (net, per) = conv_step(&ring, seed, big);
            let ev = BatchEvaluator::new(Arc::new(net.clone()));
            let StepKind::Linear(l) = &net.steps[0].kind else {
                unreachable!()
            };
            let n = 5;
            let mut x: Vec<u64> = (0..n * per)
                .map(|i| ring.from_signed((i as i64 * 7919) % 65_535 - 32_767))
                .collect();
            if seed == 3 {
                // Image 2 holds a wrapped value: out of the f64 bound.
                x[2 * per + 4] = ring.from_signed(-(1i64 << 61));
            }
            if seed == 4 {
                // Image 1 holds a value just outside i16, image 3 one at its edge.
                x[per + 7] = ring.from_signed(32_768);
                x[3 * per + 2] = ring.from_signed(-32_767);
            }
            let auto = ev.linear(0, l, &x, n).unwrap();
            let ev = ev.with_linear_path(LinearPath::Float);
            let float = ev.linear(0, l, &x, n).unwrap();
            let ev = ev.with_linear_path(LinearPath::Ring);
            let ring_only = ev.linear(0, l, &x, n).unwrap();
            assert_eq!(auto, ring_only, "seed {seed}");
            assert_eq!(float, ring_only, "seed {seed}");
            // And per image, the oracle's own single-image kernel.
            for img in 0..n {
                let mut want = l.apply(&ring, &x[img * per..(img + 1) * per]);
                l.add_bias(&ring, &mut want);
                let po = want.len();
                assert_eq!(
                    &auto[img * po..(img + 1) * po],
                    &want[..],
                    "seed {seed} image {img}"
                );
            }
        }
    }

    #[test]
    fn batch_size_and_sources_are_checked() {
        let ring = Ring::default();
        let (net, per) = conv_step(&ring, 4, false);
        let ev = BatchEvaluator::new(Arc::new(net));
        assert!(matches!(
            ev.evaluate(&vec![0.0; per + 1], 0, Arithmetic::Fixed),
            Err(PiError::BatchSize { .. })
        ));
        assert!(matches!(
            ev.evaluate(&[], 0, Arithmetic::Fixed),
            Err(PiError::BatchSize { .. })
        ));
        let mut one = vec![SeededShares::new(1, 0)];
        assert!(matches!(
            ev.evaluate_with(&vec![0.0; 2 * per], &mut one),
            Err(PiError::Sources { .. })
        ));
    }

    #[test]
    fn seeded_shares_depend_on_seed_and_index_only() {
        let ring = Ring::new(40, 12).unwrap();
        let draw = |seed, idx| {
            let mut s = SeededShares::new(seed, idx);
            let mut v = vec![0u64; 16];
            s.input(&ring, &mut v).unwrap();
            v
        };
        assert_eq!(draw(7, 3), draw(7, 3));
        assert_ne!(draw(7, 3), draw(7, 4));
        assert_ne!(draw(7, 3), draw(8, 3));
        assert!(draw(7, 3).iter().all(|&v| v == ring.reduce(v)));
    }
}
