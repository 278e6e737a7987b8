//! The client: holds the input, tracks its shares of every value offline, evaluates the garbled
//! ReLUs online and reconstructs the logits. Mirror image of [`super::server`].

use std::time::Instant;

use rand_core::{CryptoRng, RngCore};

use super::engine::ReluEngine;
use super::prepro::ClientPreprocessing;
use super::{sites_of, PartyTimings, ProtocolError, SitePlan};
use crate::crypto::ot::{OtKind, OtReceiver};
use crate::gc::Scheme;
use crate::net::{Channel, ChannelExt, Phase};
use crate::plain::{FixedNetwork, StepKind};

/// What the client stores from the offline phase for one ReLU site.
struct ClientSite {
    plan: SitePlan,
    /// Garbled tables of the kept elements, in order.
    tables: crate::crypto::buffer::BlockBuf,
    /// Bytes of garbled tables (the buffer may end in padding).
    table_bytes: usize,
    /// The client's input labels (`2ℓ` per kept element).
    labels: crate::crypto::buffer::BlockBuf,
}

/// The client's stored preprocessing: everything the online phase needs besides the input.
pub struct ClientState {
    r0: Vec<u64>,
    garbling: Scheme,
    sites: Vec<ClientSite>,
    out_share: Vec<u64>,
}

impl ClientState {
    /// Bytes the client stores between the phases (the quantity Delphi's storage figures count).
    pub fn storage_bytes(&self) -> u64 {
        let sites: usize = self
            .sites
            .iter()
            .map(|s| s.table_bytes + s.labels.len() * 16 + s.plan.kept.len() * 4)
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
/// linear step from the backend; per ReLU site, receive the input labels by correlated OT (the
/// fresh masks are its random choice bits) and store the tables garbled with `garbling`.
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
    let mut values: Vec<Option<Vec<u64>>> = vec![None; net.steps.len() + 1];
    values[0] = Some(r0.clone());
    let last_use = super::last_uses(net);
    let mut sites = Vec::new();
    let mut plan_iter = sites_of(net).into_iter();
    for (i, step) in net.steps.iter().enumerate() {
        let t0 = Instant::now();
        ch.set_scope(Phase::Offline, Some(&step.name));
        let c = super::value(&values, step.inputs[0])?;
        let out = match &step.kind {
            StepKind::Linear(l) => {
                let cin: Vec<u64> = if l.input_trunc > 0 {
                    c.iter()
                        .map(|&v| ring.trunc_share_client(v, l.input_trunc))
                        .collect()
                } else {
                    c.clone()
                };
                pre.correlate(ch, i, &cin)?
            }
            StepKind::Relu { trunc, .. } => {
                let plan = plan_iter
                    .next()
                    .ok_or_else(|| ProtocolError::Internal("site plan out of step".into()))?;
                let engine = ReluEngine::new(ring, plan.trunc, garbling)?;
                let mut out: Vec<u64> = if *trunc > 0 {
                    c.iter()
                        .map(|&v| ring.trunc_share_client(v, *trunc))
                        .collect()
                } else {
                    c.clone()
                };
                let kept_c: Vec<u64> = plan.kept.iter().map(|&j| c[j as usize]).collect();
                let site = engine.client_offline(ch, cot, &kept_c)?;
                for (&j, &r) in plan.kept.iter().zip(&site.masks) {
                    out[j as usize] = r;
                }
                let table_bytes = plan.kept.len() * engine.table_bytes();
                let (tables, labels) = (site.tables, site.labels);
                sites.push(ClientSite {
                    plan,
                    tables,
                    table_bytes,
                    labels,
                });
                out
            }
            local => {
                let y = match step.inputs.get(1) {
                    Some(&v) => Some(super::value(&values, v)?.as_slice()),
                    None => None,
                };
                crate::plain::fixed::apply_local(&ring, local, c, y)
                    .ok_or_else(|| ProtocolError::Internal(format!("step {i} is not local")))?
            }
        };
        values[i + 1] = Some(out);
        super::free_dead(&mut values, &last_use, i);
        timings.record(
            i,
            &step.name,
            step.kind_name(),
            Phase::Offline,
            t0.elapsed().as_secs_f64(),
        );
    }
    let out_share = super::value(&values, net.output)?.clone();
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
    timings.record(
        usize::MAX,
        "input",
        "input",
        Phase::Online,
        t_in.elapsed().as_secs_f64(),
    );
    let mut sites = state.sites.into_iter();
    for (i, step) in net.steps.iter().enumerate() {
        let StepKind::Relu { .. } = step.kind else {
            continue;
        };
        let t0 = Instant::now();
        ch.set_scope(Phase::Online, Some(&step.name));
        let site = sites
            .next()
            .ok_or_else(|| ProtocolError::Internal("site out of step".into()))?;
        let n = site.plan.kept.len();
        if n > 0 {
            let engine = ReluEngine::new(ring, site.plan.trunc, state.garbling)?;
            engine.client_online_site(
                ch,
                n,
                &site.labels,
                &site.tables,
                site.plan.instance_base,
            )?;
        }
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
    let mut server_share = vec![0u64; state.out_share.len()];
    ch.recv_u64s(&mut server_share)?;
    let logits = server_share
        .iter()
        .zip(&state.out_share)
        .map(|(&a, &c)| ring.decode(ring.add(a, c), net.output_scale))
        .collect();
    timings.record(
        usize::MAX,
        "output",
        "output",
        Phase::Online,
        t_out.elapsed().as_secs_f64(),
    );
    Ok(logits)
}
