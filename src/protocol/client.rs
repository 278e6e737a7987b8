//! The client: holds the input, tracks its shares of every value offline, evaluates the garbled
//! ReLUs online and reconstructs the logits. Mirror image of [`super::server`].

use std::time::Instant;

use rand_core::{CryptoRng, RngCore};

use super::prepro::ClientPreprocessing;
use super::site::{ClientSite, ReluEngine};
use super::{session_ots, sites_of, PartyTimings, ProtocolError, SitePlan};
use crate::crypto::ot::{ChoiceBits, OtKind, OtReceiver};
use crate::gc::Scheme;
use crate::model::walk::walk;
use crate::model::StepRef;
use crate::net::{Channel, ChannelExt, Phase};
use crate::plain::{FixedNetwork, Share, StepKind};

/// The client's stored preprocessing: everything the online phase needs besides the input.
pub struct ClientState {
    r0: Vec<u64>,
    garbling: Scheme,
    sites: Vec<(SitePlan, ClientSite)>,
    out_share: Vec<u64>,
}

impl ClientState {
    /// Bytes the client stores between the phases (the quantity Delphi's storage figures count).
    pub fn storage_bytes(&self) -> u64 {
        let sites: usize = self
            .sites
            .iter()
            .map(|(plan, site)| site.storage_bytes() as usize + plan.kept.len() * 4)
            .sum();
        ((self.r0.len() + self.out_share.len()) * 8 + sites) as u64
    }
}

/// Setup: the base OTs of the correlated-OT extension `ot`.
pub fn setup<C: Channel + ?Sized, R: RngCore + CryptoRng>(
    ch: &mut C,
    ot: OtKind,
    rng: &mut R,
) -> Result<OtReceiver, ProtocolError> {
    ch.set_scope(Phase::Setup, Some("base-ot"));
    let cot = OtReceiver::setup(ch, ot, rng)?;
    ch.flush()?;
    Ok(cot)
}

/// Offline: follow the client's share of every value through the network; get `M·c − s` per
/// linear step from the backend; per ReLU site, receive the input labels of its share by
/// correlated OT, store the tables garbled with `garbling` and the output ciphertexts, and draw
/// the fresh output masks from `rng` (see [`ClientSite::offline`]).
#[allow(clippy::too_many_arguments)]
pub fn offline<C: Channel, R: RngCore + CryptoRng>(
    ch: &mut C,
    net: &FixedNetwork,
    pre: &mut dyn ClientPreprocessing,
    cot: &mut OtReceiver,
    garbling: Scheme,
    rng: &mut R,
    timings: &mut PartyTimings,
) -> Result<ClientState, ProtocolError> {
    let ring = net.ring;
    let r0: Vec<u64> = (0..net.input_shape.elements())
        .map(|_| ring.reduce(rng.next_u64()))
        .collect();
    let mut sites = Vec::new();
    let plans = sites_of(net);
    // As the server does: every site's OTs announced at the first site.
    let mut session_ots = Some(session_ots(&plans, ring.ell as usize));
    let mut plan_iter = plans.into_iter();
    let mut choices = ChoiceBits::new();
    let out_share = walk(
        net,
        r0.clone(),
        |i, ins| -> Result<Vec<u64>, ProtocolError> {
            let step = &net.steps[i];
            let t0 = Instant::now();
            ch.set_scope(Phase::Offline, Some(&step.name));
            let c = ins[0];
            let out = match &step.kind {
                StepKind::Linear(l) => {
                    let cin = Share::Client.trunc_all(&ring, c, l.input_trunc);
                    let out = pre.correlate(ch, i, &cin)?;
                    // Whatever the backend, a share of the wrong length must not reach the next
                    // step's indexing.
                    if out.len() != step.out_shape.elements() {
                        return Err(ProtocolError::Peer(format!(
                            "the preprocessing of step `{}` delivered {} values, its output has {}",
                            step.name,
                            out.len(),
                            step.out_shape.elements()
                        )));
                    }
                    out
                }
                StepKind::Relu { trunc, .. } => {
                    let plan = plan_iter
                        .next()
                        .ok_or_else(|| ProtocolError::Internal("site plan out of step".into()))?;
                    let engine = ReluEngine::new(ring, plan.trunc, garbling)?;
                    let mut out = Share::Client.trunc_all(&ring, c, *trunc);
                    let kept_c: Vec<u64> = plan.kept.iter().map(|&j| c[j as usize]).collect();
                    if let Some(n) = session_ots.take() {
                        cot.reserve(ch, n)?;
                    }
                    let site = ClientSite::offline(
                        ch,
                        &engine,
                        &kept_c,
                        plan.instance_base,
                        cot,
                        rng,
                        &mut choices,
                    )?;
                    // The kept elements' next share: the fresh mask r'; online the server ends
                    // up with relu(y) − r'.
                    for (&j, &r) in plan.kept.iter().zip(site.masks()) {
                        out[j as usize] = r;
                    }
                    sites.push((plan, site));
                    out
                }
                kind => net.local_step(i, kind, ins)?,
            };
            timings.record_step(net, StepRef::Step(i), Phase::Offline, t0);
            Ok(out)
        },
    )?;
    Ok(ClientState {
        r0,
        garbling,
        sites,
        out_share,
    })
}

/// Online: send `x − r`, evaluate every site's garbled ReLUs on the server's labels, return the
/// decoded logits.
pub fn online<C: Channel + ?Sized>(
    ch: &mut C,
    net: &FixedNetwork,
    state: ClientState,
    input: &[f32],
    timings: &mut PartyTimings,
) -> Result<Vec<f64>, ProtocolError> {
    let ring = net.ring;
    let t_in = Instant::now();
    ch.set_scope(Phase::Online, Some("input"));
    let x = net.encode_input(input)?;
    let masked: Vec<u64> = x
        .iter()
        .zip(&state.r0)
        .map(|(&v, &r)| ring.sub(v, r))
        .collect();
    ch.send_u64s(&masked)?;
    ch.flush()?;
    timings.record_step(net, StepRef::Input, Phase::Online, t_in);
    let mut sites = state.sites.into_iter();
    for (i, step) in net.steps.iter().enumerate() {
        let StepKind::Relu { .. } = step.kind else {
            continue;
        };
        let t0 = Instant::now();
        ch.set_scope(Phase::Online, Some(&step.name));
        let (plan, site) = sites
            .next()
            .ok_or_else(|| ProtocolError::Internal("site out of step".into()))?;
        if !site.is_empty() {
            let engine = ReluEngine::new(ring, plan.trunc, state.garbling)?;
            site.online(ch, &engine)?;
        }
        timings.record_step(net, StepRef::Step(i), Phase::Online, t0);
    }
    let t_out = Instant::now();
    ch.set_scope(Phase::Online, Some("output"));
    let mut server_share = vec![0u64; state.out_share.len()];
    ch.recv_u64s(&mut server_share)?;
    let logits = server_share
        .iter()
        .zip(&state.out_share)
        .map(|(&a, &c)| ring.decode(ring.add(a, c), net.output_scale))
        .collect();
    timings.record_step(net, StepRef::Output, Phase::Online, t_out);
    Ok(logits)
}
