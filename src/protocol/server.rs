//! The server: holds the weights, garbles every kept ReLU, computes the linear layers on its
//! shares. Mirror image of [`super::client`].

use std::time::Instant;

use rand_core::{CryptoRng, RngCore};

use super::prepro::ServerPreprocessing;
use super::site::{ReluEngine, ServerSite};
use super::{session_ots, sites_of, PartyTimings, ProtocolError, SitePlan};
use crate::crypto::ot::{OtKind, OtSender};
use crate::gc::{Delta, Scheme};
use crate::model::walk::walk;
use crate::model::StepRef;
use crate::net::{Channel, ChannelExt, Phase};
use crate::plain::{FixedNetwork, Share, StepKind};

/// The server's state between the offline and the online phase.
pub struct ServerState {
    delta: Delta,
    /// Per linear step, its mask `s` (the client holds `M·c − s`).
    linear_masks: Vec<Option<Vec<u64>>>,
    sites: Vec<(SitePlan, ServerSite)>,
}

impl ServerState {
    /// Bytes the server stores between the phases.
    pub fn storage_bytes(&self) -> u64 {
        let masks: usize = self
            .linear_masks
            .iter()
            .flatten()
            .map(|m| m.len() * 8)
            .sum();
        let sites: usize = self
            .sites
            .iter()
            .map(|(plan, site)| site.storage_bytes() as usize + plan.kept.len() * 4)
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
    let mut linear_masks = vec![None; net.steps.len()];
    let mut sites = Vec::new();
    let plans = sites_of(net);
    // Every site's OTs announced at the first site (in its scope and time), so that an OT with
    // per-chunk interaction runs it once for the session instead of per chunk.
    let mut session_ots = Some(session_ots(&plans, net.ring.ell as usize));
    let mut plan_iter = plans.into_iter();
    for (i, step) in net.steps.iter().enumerate() {
        let t0 = Instant::now();
        ch.set_scope(Phase::Offline, Some(&step.name));
        match &step.kind {
            StepKind::Linear(_) => linear_masks[i] = Some(pre.linear_mask(ch, i)?),
            StepKind::Relu { .. } => {
                let plan = plan_iter
                    .next()
                    .ok_or_else(|| ProtocolError::Internal("site plan out of step".into()))?;
                let engine = ReluEngine::new(net.ring, plan.trunc, garbling)?;
                if let Some(n) = session_ots.take() {
                    cot.reserve(ch, n)?;
                }
                let site = ServerSite::offline(
                    ch,
                    &engine,
                    plan.kept.len(),
                    plan.instance_base,
                    cot,
                    &delta,
                    rng,
                )?;
                sites.push((plan, site));
            }
            _ => {}
        }
        timings.record_step(net, StepRef::Step(i), Phase::Offline, t0);
    }
    Ok(ServerState {
        delta,
        linear_masks,
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
    timings.record_step(net, StepRef::Input, Phase::Online, t_in);
    let ServerState {
        delta,
        linear_masks,
        sites,
    } = state;
    let mut sites = sites.into_iter();
    let out = walk(net, x0, |i, ins| -> Result<Vec<u64>, ProtocolError> {
        let step = &net.steps[i];
        let t0 = Instant::now();
        ch.set_scope(Phase::Online, Some(&step.name));
        let x = ins[0];
        let out = match &step.kind {
            StepKind::Linear(l) => {
                let xin = Share::Server.trunc_all(&ring, x, l.input_trunc);
                let mut y = l.apply(&ring, &xin);
                let s = linear_masks[i]
                    .as_ref()
                    .ok_or_else(|| ProtocolError::Internal(format!("no mask for step {i}")))?;
                y.iter_mut()
                    .zip(s)
                    .for_each(|(v, &si)| *v = ring.add(*v, si));
                l.add_bias(&ring, &mut y);
                y
            }
            StepKind::Relu { trunc, .. } => {
                let (plan, site) = sites
                    .next()
                    .ok_or_else(|| ProtocolError::Internal("site out of step".into()))?;
                let mut out = Share::Server.trunc_all(&ring, x, *trunc);
                if !plan.kept.is_empty() {
                    let vals: Vec<u64> = plan.kept.iter().map(|&j| x[j as usize]).collect();
                    let z = site.online(ch, &delta, &vals)?;
                    for (&j, zj) in plan.kept.iter().zip(z) {
                        out[j as usize] = zj;
                    }
                }
                out
            }
            kind => net.local_step(i, kind, ins)?,
        };
        timings.record_step(net, StepRef::Step(i), Phase::Online, t0);
        Ok(out)
    })?;
    let t_out = Instant::now();
    ch.set_scope(Phase::Online, Some("output"));
    ch.send_u64s(&out)?;
    ch.flush()?;
    timings.record_step(net, StepRef::Output, Phase::Online, t_out);
    Ok(())
}
