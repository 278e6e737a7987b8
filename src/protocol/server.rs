//! The server: holds the weights, garbles every kept ReLU, computes the linear layers on its
//! shares. Mirror image of [`super::client`].

use std::time::Instant;

use rand_core::{CryptoRng, RngCore};

use super::engine::ReluEngine;
use super::prepro::ServerPreprocessing;
use super::{sites_of, PartyTimings, ProtocolError, SitePlan};
use crate::crypto::ot::{OtKind, OtSender};
use crate::crypto::Block;
use crate::gc::{Delta, Scheme};
use crate::net::{Channel, ChannelExt, Phase};
use crate::plain::{FixedNetwork, StepKind};

/// What the server keeps from the offline phase for one ReLU site.
struct ServerSite {
    plan: SitePlan,
    /// Seed of the server's input zero-labels, regenerated online instead of stored.
    label_seed: Block,
    /// Per kept element, the colour bits of the output zero-labels.
    decode: Vec<u64>,
}

/// The server's state between the offline and the online phase.
pub struct ServerState {
    delta: Delta,
    masks: Vec<Option<Vec<u64>>>,
    sites: Vec<ServerSite>,
}

impl ServerState {
    /// Bytes the server stores between the phases.
    pub fn storage_bytes(&self) -> u64 {
        let masks: usize = self.masks.iter().flatten().map(|m| m.len() * 8).sum();
        let sites: usize = self
            .sites
            .iter()
            .map(|s| s.decode.len() * 8 + 16 + s.plan.kept.len() * 4)
            .sum();
        (masks + sites + 16) as u64
    }
}

/// Setup: a fresh Δ for this session and the base OTs of the correlated-OT extension `ot`.
pub fn setup<C: Channel + ?Sized, R: RngCore + CryptoRng>(
    ch: &mut C,
    ot: OtKind,
    rng: &mut R,
) -> Result<(OtSender, Delta), ProtocolError> {
    ch.set_scope(Phase::Setup, Some("base-ot"));
    let delta = Delta::random(rng);
    let cot = OtSender::setup(ch, ot, delta.block(), rng)?;
    ch.flush()?;
    Ok((cot, delta))
}

/// Offline: masks from the preprocessing backend for every linear step; for every ReLU site the
/// client's input labels by correlated OT and the tables garbled with `garbling`, streamed to
/// the client.
#[allow(clippy::too_many_arguments)]
pub fn offline<C: Channel, R: RngCore + CryptoRng>(
    ch: &mut C,
    net: &FixedNetwork,
    pre: &mut dyn ServerPreprocessing,
    cot: &mut OtSender,
    delta: Delta,
    garbling: Scheme,
    rng: &mut R,
    timings: &mut PartyTimings,
) -> Result<ServerState, ProtocolError> {
    // Keys the three-halves control randomness of every site of the session.
    let control_seed = Block::random(rng);
    let mut masks = vec![None; net.steps.len()];
    let mut sites = Vec::new();
    let plans = sites_of(net);
    let mut plan_iter = plans.into_iter();
    for (i, step) in net.steps.iter().enumerate() {
        let t0 = Instant::now();
        ch.set_scope(Phase::Offline, Some(&step.name));
        match &step.kind {
            StepKind::Linear(_) => masks[i] = Some(pre.mask(ch, i)?),
            StepKind::Relu { .. } => {
                let plan = plan_iter
                    .next()
                    .ok_or_else(|| ProtocolError::Internal("site plan out of step".into()))?;
                let engine = ReluEngine::new(net.ring, plan.trunc, garbling)?;
                // Regenerated from the seed online instead of stored.
                let label_seed = Block::random(rng);
                let decode = engine.server_offline(
                    ch,
                    cot,
                    &delta,
                    control_seed,
                    label_seed,
                    plan.kept.len(),
                    plan.instance_base,
                )?;
                ch.flush()?;
                sites.push(ServerSite {
                    plan,
                    label_seed,
                    decode,
                });
            }
            _ => {}
        }
        timings.record(
            i,
            &step.name,
            step.kind_name(),
            Phase::Offline,
            t0.elapsed().as_secs_f64(),
        );
    }
    Ok(ServerState {
        delta,
        masks,
        sites,
    })
}

/// Online: receive `x − r`, run every layer on the server's shares, and send the logits' share.
pub fn online<C: Channel + ?Sized>(
    ch: &mut C,
    net: &FixedNetwork,
    state: ServerState,
    timings: &mut PartyTimings,
) -> Result<(), ProtocolError> {
    let ring = net.ring;
    let t_in = Instant::now();
    ch.set_scope(Phase::Online, Some("input"));
    let mut x0 = vec![0u64; net.input_shape.elements()];
    ch.recv_u64s(&mut x0)?;
    x0.iter_mut().for_each(|v| *v = ring.reduce(*v));
    timings.record(
        usize::MAX,
        "input",
        "input",
        Phase::Online,
        t_in.elapsed().as_secs_f64(),
    );
    let mut values: Vec<Option<Vec<u64>>> = vec![None; net.steps.len() + 1];
    values[0] = Some(x0);
    let last_use = super::last_uses(net);
    let mut sites = state.sites.into_iter();
    for (i, step) in net.steps.iter().enumerate() {
        let t0 = Instant::now();
        ch.set_scope(Phase::Online, Some(&step.name));
        let x = super::value(&values, step.inputs[0])?;
        let out = match &step.kind {
            StepKind::Linear(l) => {
                let xin: Vec<u64> = if l.input_trunc > 0 {
                    x.iter()
                        .map(|&v| ring.trunc_share_server(v, l.input_trunc))
                        .collect()
                } else {
                    x.clone()
                };
                let mut y = l.apply(&ring, &xin);
                let s = state.masks[i]
                    .as_ref()
                    .ok_or_else(|| ProtocolError::Internal(format!("no mask for step {i}")))?;
                y.iter_mut()
                    .zip(s)
                    .for_each(|(v, &si)| *v = ring.add(*v, si));
                l.add_bias(&ring, &mut y);
                y
            }
            StepKind::Relu { trunc, .. } => {
                let site = sites
                    .next()
                    .ok_or_else(|| ProtocolError::Internal("site out of step".into()))?;
                let ell = ring.ell as usize;
                let n = site.plan.kept.len();
                let mut out: Vec<u64> = if *trunc > 0 {
                    x.iter()
                        .map(|&v| ring.trunc_share_server(v, *trunc))
                        .collect()
                } else {
                    x.clone()
                };
                if n > 0 {
                    let vals: Vec<u64> = site.plan.kept.iter().map(|&j| x[j as usize]).collect();
                    let z = super::engine::server_online_site(
                        ch,
                        ell,
                        &vals,
                        site.label_seed,
                        &state.delta,
                        &site.decode,
                    )?;
                    for (&j, zj) in site.plan.kept.iter().zip(z) {
                        out[j as usize] = zj;
                    }
                }
                out
            }
            local => {
                let y = match step.inputs.get(1) {
                    Some(&v) => Some(super::value(&values, v)?.as_slice()),
                    None => None,
                };
                crate::plain::fixed::apply_local(&ring, local, x, y)
                    .ok_or_else(|| ProtocolError::Internal(format!("step {i} is not local")))?
            }
        };
        values[i + 1] = Some(out);
        super::free_dead(&mut values, &last_use, i);
        timings.record(
            i,
            &step.name,
            step.kind_name(),
            Phase::Online,
            t0.elapsed().as_secs_f64(),
        );
    }
    let t_out = Instant::now();
    ch.set_scope(Phase::Online, Some("output"));
    let out = super::value(&values, net.output)?;
    ch.send_u64s(out)?;
    ch.flush()?;
    timings.record(
        usize::MAX,
        "output",
        "output",
        Phase::Online,
        t_out.elapsed().as_secs_f64(),
    );
    Ok(())
}
