//! The client: holds the input, tracks its shares of every value offline, evaluates the garbled
//! ReLUs online and reconstructs the logits. Mirror image of [`super::server`].

use std::time::Instant;

use rand_core::{CryptoRng, RngCore};

use super::engine::{client_choices, ReluEngine, CHUNK};
use super::prepro::ClientPreprocessing;
use super::{sites_of, PartyTimings, ProtocolError, SitePlan};
use crate::crypto::ot::CotReceiver;
use crate::net::{Channel, ChannelExt, Phase};
use crate::plain::{FixedNetwork, StepKind};

/// What the client stores from the offline phase for one ReLU site.
struct ClientSite {
    plan: SitePlan,
    /// Garbled tables of the kept elements, in order.
    tables: crate::crypto::buffer::BlockBuf,
    /// The client's input labels (`2ℓ` per kept element).
    labels: crate::crypto::buffer::BlockBuf,
}

/// The client's stored preprocessing: everything the online phase needs besides the input.
pub struct ClientState {
    r0: Vec<u64>,
    sites: Vec<ClientSite>,
    out_share: Vec<u64>,
}

impl ClientState {
    /// Bytes the client stores between the phases (the quantity Delphi's storage figures count).
    pub fn storage_bytes(&self) -> u64 {
        let sites: usize = self
            .sites
            .iter()
            .map(|s| (s.tables.len() + s.labels.len()) * 16 + s.plan.kept.len() * 4)
            .sum();
        ((self.r0.len() + self.out_share.len()) * 8 + sites) as u64
    }
}

/// Setup: the base OTs of the correlated-OT extension.
pub fn setup<C: Channel + ?Sized, R: RngCore + CryptoRng>(
    ch: &mut C,
    rng: &mut R,
) -> Result<CotReceiver, ProtocolError> {
    ch.set_scope(Phase::Setup, Some("base-ot"));
    let cot = CotReceiver::setup(ch, rng)?;
    ch.flush()?;
    Ok(cot)
}

/// Offline: follow the client's share of every value through the network; get `M·c − s` per
/// linear step from the backend; per ReLU site, draw fresh masks, receive the input labels by
/// correlated OT and store the garbled tables.
pub fn offline<C: Channel, R: RngCore + CryptoRng>(
    ch: &mut C,
    net: &FixedNetwork,
    pre: &mut dyn ClientPreprocessing,
    cot: &mut CotReceiver,
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
    let mut choices = Vec::new();
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
                let engine = ReluEngine::new(ring, plan.trunc)?;
                let ell = engine.ell;
                let n = plan.kept.len();
                let mut out: Vec<u64> = if *trunc > 0 {
                    c.iter()
                        .map(|&v| ring.trunc_share_client(v, *trunc))
                        .collect()
                } else {
                    c.clone()
                };
                let kept_c: Vec<u64> = plan.kept.iter().map(|&j| c[j as usize]).collect();
                let masks: Vec<u64> = (0..n).map(|_| ring.reduce(rng.next_u64())).collect();
                for (&j, &r) in plan.kept.iter().zip(&masks) {
                    out[j as usize] = r;
                }
                let mut labels = crate::crypto::buffer::BlockBuf::with_len(n * 2 * ell);
                if n > 0 {
                    client_choices(&kept_c, &masks, ell, &mut choices);
                    cot.receive(ch, &choices, &mut labels)?;
                }
                let mut tables =
                    crate::crypto::buffer::BlockBuf::with_len(n * engine.table_blocks());
                for chunk in tables.chunks_mut(CHUNK * engine.table_blocks()) {
                    ch.recv_blocks(chunk)?;
                }
                sites.push(ClientSite {
                    plan,
                    tables,
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
            let engine = ReluEngine::new(ring, site.plan.trunc)?;
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
