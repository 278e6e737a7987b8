//! The two parties of Delphi-class private inference — server and client, offline and online,
//! layer by layer — and the linear preprocessing backends.
//!
//! Semi-honest. Public: the architecture, the shapes, the masks, ℓ and f. Private: the weights
//! (server), the input and the logits (client). Every value is additively shared in Z_2^ℓ; the
//! client's share of every value is fixed offline, so online the client only sends `x − r` once,
//! evaluates the garbled ReLUs of the kept elements and reconstructs the logits:
//!
//! - linear step: the server computes `M·S + s + b` on its share; the client's share `M·c − s`
//!   came from the preprocessing backend ([`prepro`]);
//! - ReLU site: kept elements go through the garbled ReLU (exact truncation inside), whose value
//!   the two parties end up sharing as `relu(y) − r'` (the server, adding the masked share the
//!   client returns to its own) and `r'` (the client's mask, drawn offline); linearized
//!   elements are truncated locally by each party (SecureML) and cost nothing;
//! - add, sum pool, flatten: local on both shares.
//!
//! [`server`] and [`client`] mirror each other step for step; [`site`] is one ReLU site's
//! offline and online step for each party.

pub mod client;
pub mod he;
pub mod prepro;
pub mod server;
pub mod session;
pub mod site;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

// Each backend's halves are built here, above both `prepro` (the traits every backend
// implements, and the dealer) and `he`, so that neither of those depends on the other.
use prepro::{
    Backend, ClientPreprocessing, Dealer, RemoteDealerClient, RemoteDealerServer,
    ServerPreprocessing,
};

use crate::model::StepRef;
use crate::net::{NetError, Phase};
use crate::plain::{FixedNetwork, PlainError, StepKind};

/// The cryptography of the ReLU sites: both parties must agree on it (it is part of the
/// [`fingerprint`] and of the [`public_params`]). Results written before these choices existed
/// deserialize to half gates with IKNP, which is what they measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcOptions {
    /// The garbling scheme.
    #[serde(default)]
    pub garbling: crate::gc::Scheme,
    /// The correlated-OT extension for the client's input labels.
    #[serde(default)]
    pub ot: crate::crypto::ot::OtKind,
}

impl GcOptions {
    /// What a run uses unless told otherwise: the combination fastest on the LAN preset in
    /// this machine's measurements (README, *Garbling scheme and OT*). Since the ReLU circuit
    /// lost its selection (protocol version 8, 63 AND gates), three-halves with SoftSpoken
    /// k = 4 wins it: its OT costs less compute than silent OT's trees and code, which on a
    /// LAN outweighs silent OT's 201 fewer bytes per ReLU. `--ot silent` sends the fewest bytes
    /// (2,113 per ReLU against 2,314) and is the choice on slower links; half gates compute
    /// less per AND but send a third more tables.
    pub const RECOMMENDED: GcOptions = GcOptions {
        garbling: crate::gc::Scheme::ThreeHalves,
        ot: crate::crypto::ot::OtKind::SoftSpoken(4),
    };
}

impl std::fmt::Display for GcOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} + {}", self.garbling, self.ot)
    }
}

/// The protocol version exchanged in the handshake; bump on any wire change. Version 4: the
/// garbling scheme and OT extension are chosen per session, and the client's output-mask wires
/// take random-choice OT. Version 5: silent OT's base OTs and small-count fallback run
/// SoftSpoken with k = 4 (31 columns per 128 OTs instead of k = 8's 15). Version 6: a ReLU
/// site's silent OT is a deferred call: the client's choice corrections come first, and each
/// chunk's tree message goes just ahead of the tables garbled with its OTs. Version 7: a ReLU
/// garbles only its value, whose output wires become additive shares through ciphertexts sent
/// after the tables (`gc::arith`); the client's mask is no longer a circuit input, and it
/// returns its masked share instead of output colours. Version 8: the ReLU's selection leaves
/// the circuit too (`gc::relu::relu_select_circuit`, the adder alone): the ciphertexts give
/// shares of the selected value directly, two per bit and one for the selector. Version 9:
/// each chunk's output ciphertexts follow that chunk's tables instead of all of them following
/// the site's last table, and a chunk is 2048 ReLUs instead of 4096
/// (`gc::batch::DEFAULT_STREAM_CHUNK`).
pub const PROTOCOL_VERSION: u32 = 9;

/// Errors of a private inference.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The channel failed (disconnect, time-out, bad message), with phase and layer.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The peer is not the party we expected: another program, role, protocol version or model.
    #[error("handshake failed: {0}")]
    Handshake(crate::net::HandshakeError),
    /// Oblivious transfer failed.
    #[error("oblivious transfer: {0}")]
    Ot(#[from] crate::crypto::ot::OtError),
    /// The garbling engine refused its arguments (a bug: the protocol sizes them).
    #[error("garbling: {0}")]
    Gc(crate::gc::GcError),
    /// The `he` backend cannot run this network or ring (parameters, geometry, noise budget), or
    /// failed.
    #[error("he backend: {0}")]
    He(#[from] he::HeError),
    /// The network cannot be run (lowering or input).
    #[error(transparent)]
    Plain(#[from] PlainError),
    /// A step read a value that is not there (a bug, reported instead of a panic).
    #[error("internal error: {0}")]
    Walk(#[from] crate::model::WalkError),
    /// The peer sent something the public architecture rules out (a count or size other than
    /// the one both parties derive from the model, a malformed report): a misbehaving or
    /// mismatched peer, not a bug on this side.
    #[error("the peer misbehaved: {0}")]
    Peer(String),
    /// A broken invariant inside pibench (a bug, reported instead of a panic).
    #[error("internal error: {0}")]
    Internal(String),
}

/// A channel failure inside the garbling engine is reported as the channel failure it is (with
/// its phase and layer), so that a peer's disconnect reads the same wherever it is noticed.
impl From<crate::gc::GcError> for ProtocolError {
    fn from(e: crate::gc::GcError) -> Self {
        match e {
            crate::gc::GcError::Net(n) => ProtocolError::Net(n),
            other => ProtocolError::Gc(other),
        }
    }
}

/// The server's and the client's halves of a backend, for both parties in one process.
pub type Halves = (Box<dyn ServerPreprocessing>, Box<dyn ClientPreprocessing>);

impl Backend {
    /// Both halves for one inference on `net` with both parties in this process: one dealer
    /// shared by the two, or a fresh `he` key pair.
    pub fn halves(
        self,
        net: &Arc<FixedNetwork>,
        flood: he::FloodTarget,
    ) -> Result<Halves, ProtocolError> {
        match self {
            Backend::Dealer => {
                let d = Dealer::new(net.clone());
                Ok((Box::new(d.clone()), Box::new(d)))
            }
            Backend::He => Ok((self.server_half(net, flood)?, self.client_half(net)?)),
        }
    }

    /// The server's half when the client is another process (whose dealer, for `dealer`, is
    /// this server's process). Fails, before any client connects, on a model the backend cannot
    /// carry. `flood` sets the `he` server's noise flooding (the queries it must withstand).
    pub fn server_half(
        self,
        net: &Arc<FixedNetwork>,
        flood: he::FloodTarget,
    ) -> Result<Box<dyn ServerPreprocessing>, ProtocolError> {
        Ok(match self {
            Backend::Dealer => Box::new(RemoteDealerServer(Dealer::new(net.clone()))),
            Backend::He => Box::new(he::HeServer::with_target(net.clone(), flood)?),
        })
    }

    /// The client's half when the server is another process.
    pub fn client_half(
        self,
        net: &Arc<FixedNetwork>,
    ) -> Result<Box<dyn ClientPreprocessing>, ProtocolError> {
        Ok(match self {
            Backend::Dealer => Box::new(RemoteDealerClient::new(net.clone())),
            Backend::He => Box::new(he::HeClient::new(net.clone())?),
        })
    }
}

/// A channel failure during the handshake is the channel failure it is, as everywhere else.
impl From<crate::net::HandshakeError> for ProtocolError {
    fn from(e: crate::net::HandshakeError) -> Self {
        match e {
            crate::net::HandshakeError::Net(n) => ProtocolError::Net(n),
            other => ProtocolError::Handshake(other),
        }
    }
}

impl ProtocolError {
    /// Whether this is the channel reporting that the peer went away, however deeply wrapped:
    /// when both parties fail, the other party's error is the root cause.
    pub fn is_disconnect(&self) -> bool {
        matches!(self.net(), Some(NetError::Disconnected { .. }))
    }

    /// Whether this is a party giving up on a silent peer (not a link too slow for the
    /// time-out): when the other party failed for a reason of its own, that reason is the root
    /// cause and this only its echo.
    pub fn is_peer_silence(&self) -> bool {
        matches!(self.net(), Some(NetError::Timeout { .. }))
    }

    /// The channel error inside, however wrapped.
    fn net(&self) -> Option<&NetError> {
        match self {
            ProtocolError::Net(e) | ProtocolError::Ot(crate::crypto::ot::OtError::Net(e)) => {
                Some(e)
            }
            _ => None,
        }
    }
}

/// The public parameters both parties must agree on, named by the command-line flag that sets
/// them, so that a handshake mismatch says which flag differs (the fingerprint covers them too).
pub fn public_params(
    net: &FixedNetwork,
    backend: prepro::Backend,
    gc: GcOptions,
) -> Vec<(&'static str, String)> {
    vec![
        ("--offline", backend.to_string()),
        ("--garbling", gc.garbling.to_string()),
        ("--ot", gc.ot.to_string()),
        ("--ell", net.ring.ell.to_string()),
        ("--frac", net.ring.frac.to_string()),
        ("--bn", net.bn_path.to_string()),
    ]
}

/// The public plan of one ReLU site, computed identically by both parties.
#[derive(Clone, Debug)]
pub struct SitePlan {
    /// The step of the site.
    pub step: usize,
    /// Element indices that keep their ReLU, ascending.
    pub kept: Vec<u32>,
    /// Bits truncated.
    pub trunc: u32,
    /// Global index of the site's first garbled instance in the session (tweaks are unique).
    pub instance_base: u64,
}

/// Every ReLU site's plan, in forward order.
pub fn sites_of(net: &FixedNetwork) -> Vec<SitePlan> {
    let mut base = 0u64;
    let mut out = Vec::new();
    for (i, step) in net.steps.iter().enumerate() {
        if let StepKind::Relu { keep, trunc, .. } = &step.kind {
            let kept: Vec<u32> = match keep {
                None => (0..step.out_shape.elements() as u32).collect(),
                Some(k) => k
                    .iter()
                    .enumerate()
                    .filter(|(_, &b)| b)
                    .map(|(j, _)| j as u32)
                    .collect(),
            };
            let n = kept.len() as u64;
            out.push(SitePlan {
                step: i,
                kept,
                trunc: *trunc,
                instance_base: base,
            });
            base += n;
        }
    }
    out
}

/// The correlated OTs of a whole session's sites: the client's `ℓ` input wires per kept ReLU
/// (its share; see [`site`]).
pub fn session_ots(plans: &[SitePlan], ell: usize) -> usize {
    plans.iter().map(|p| p.kept.len() * ell).sum()
}

/// Time spent by one party on one step in one phase.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepTiming {
    /// The step, or the input or output transfer.
    pub step: StepRef,
    /// Layer name.
    pub name: String,
    /// Op kind.
    pub kind: String,
    /// Phase.
    pub phase: Phase,
    /// Wall-clock seconds, including time waiting for the peer.
    pub seconds: f64,
}

/// Watches a party's progress (a progress bar, for instance): told of every step it finishes.
pub trait Observer: Send + Sync + std::fmt::Debug {
    /// The step named `name` of `phase` is done.
    fn step_done(&self, phase: Phase, name: &str);
    /// The party's session is over.
    fn finished(&self) {}
}

/// A party's per-step timings.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PartyTimings {
    /// One entry per step and phase, in order.
    pub steps: Vec<StepTiming>,
    /// Told of every recorded step (not of the input and output transfers), when set.
    #[serde(skip)]
    pub observer: Option<std::sync::Arc<dyn Observer>>,
}

impl PartyTimings {
    /// Append one entry.
    pub fn record(&mut self, step: StepRef, name: &str, kind: &str, phase: Phase, seconds: f64) {
        self.steps.push(StepTiming {
            step,
            name: name.to_string(),
            kind: kind.to_string(),
            phase,
            seconds,
        });
        if let (Some(o), StepRef::Step(_)) = (&self.observer, step) {
            o.step_done(phase, name);
        }
    }

    /// Record the time since `t0` spent on `at` (a step of `net`, or the input or output
    /// transfer) in `phase`.
    pub fn record_step(
        &mut self,
        net: &FixedNetwork,
        at: StepRef,
        phase: Phase,
        t0: std::time::Instant,
    ) {
        let (name, kind) = match at {
            StepRef::Input => ("input", "input"),
            StepRef::Output => ("output", "output"),
            StepRef::Step(i) => net
                .steps
                .get(i)
                .map_or(("?", "?"), |s| (s.name.as_str(), s.kind_name())),
        };
        self.record(at, name, kind, phase, t0.elapsed().as_secs_f64());
    }

    /// Total seconds in `phase`.
    pub fn total(&self, phase: Phase) -> f64 {
        self.steps
            .iter()
            .filter(|s| s.phase == phase)
            .fold(0.0, |acc, s| acc + s.seconds)
    }
}

/// A fingerprint of everything both parties must agree on: protocol version, ring, batch-norm
/// path, every step's kind, geometry, shape and truncation, the masks, the linear
/// preprocessing backend, and the garbling scheme and OT of the ReLU sites. Weights are not part
/// of it.
pub fn fingerprint(net: &FixedNetwork, backend: Backend, gc: GcOptions) -> crate::net::Fingerprint {
    use crate::plain::LinearKind;
    let mut desc = format!(
        "backend={backend};bn={};garbling={};ot={};",
        net.bn_path, gc.garbling, gc.ot
    ) + &format!(
        "pibench-protocol-{PROTOCOL_VERSION};ring={},{};input={:?};",
        net.ring.ell, net.ring.frac, net.input_shape
    );
    let mut masks: Vec<u8> = Vec::new();
    for step in &net.steps {
        desc.push_str(&format!(
            "{}:{:?}:{:?}:{}:",
            step.name, step.inputs, step.out_shape, step.out_scale
        ));
        match &step.kind {
            StepKind::Linear(l) => {
                let k = match &l.kind {
                    LinearKind::Conv(g) => format!("conv{g:?}"),
                    LinearKind::Fc { out_features } => format!("fc{out_features}"),
                    LinearKind::ChannelScale { channels, plane } => {
                        format!("scale{channels}x{plane}")
                    }
                };
                desc.push_str(&format!("{k}/{}/{};", l.input_trunc, l.weight.len()));
            }
            StepKind::Relu { site, keep, trunc } => {
                desc.push_str(&format!("relu{site}/{trunc}/{};", keep.is_some()));
                if let Some(k) = keep {
                    masks.extend(k.iter().map(|&b| b as u8));
                }
            }
            StepKind::Add { shift_a, shift_b } => {
                desc.push_str(&format!("add{shift_a},{shift_b};"))
            }
            StepKind::SumPool {
                in_shape,
                kernel,
                stride,
            } => desc.push_str(&format!("pool{in_shape:?}{kernel}{stride};")),
            StepKind::Flatten => desc.push_str("flatten;"),
        }
    }
    crate::net::Fingerprint::of_parts(&[desc.as_bytes(), &masks])
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::crypto::prg::Prg;
    use crate::plain::toy::{toy_input, toy_network, ToyMasks};
    use crate::plain::FixedOutput;
    use crate::ring::Ring;

    /// Server and client of one inference on `fixed`, in memory with a dealer: the client's
    /// logits, both parties' timings, and the oracle's output.
    fn run(
        fixed: &Arc<FixedNetwork>,
        input: &[f32],
    ) -> (Vec<f64>, PartyTimings, PartyTimings, FixedOutput) {
        run_with(fixed, input, GcOptions::RECOMMENDED)
    }

    /// [`run`] with the garbling scheme and OT of `gc`.
    fn run_with(
        fixed: &Arc<FixedNetwork>,
        input: &[f32],
        gc: GcOptions,
    ) -> (Vec<f64>, PartyTimings, PartyTimings, FixedOutput) {
        let (mut s, mut c) = crate::net::mem_pair(Duration::from_secs(30));
        let dealer = Dealer::new(fixed.clone());
        let (fs, mut ds) = (fixed.clone(), dealer.clone());
        let server = std::thread::spawn(move || -> Result<PartyTimings, ProtocolError> {
            let mut rng = Prg::from_entropy();
            let mut t = PartyTimings::default();
            let (mut cot, delta) = server::setup(&mut s, gc.ot, &mut rng)?;
            let state = server::offline(
                &mut s,
                &fs,
                &mut ds,
                &mut cot,
                delta,
                gc.garbling,
                &mut rng,
                &mut t,
            )?;
            server::online(&mut s, &fs, state, &mut t)?;
            Ok(t)
        });
        let mut dc = dealer;
        let mut rng = Prg::from_entropy();
        let mut tc = PartyTimings::default();
        let mut cot = client::setup(&mut c, gc.ot, &mut rng).unwrap();
        let state = client::offline(
            &mut c,
            fixed,
            &mut dc,
            &mut cot,
            gc.garbling,
            &mut rng,
            &mut tc,
        )
        .unwrap();
        let logits = client::online(&mut c, fixed, state, input, &mut tc).unwrap();
        let ts = server.join().expect("server thread").unwrap();
        (logits, ts, tc, fixed.forward(input).unwrap())
    }

    #[test]
    fn all_relu_toy_network_equals_the_oracle_bit_for_bit() {
        for seed in 0..3 {
            let net = toy_network(seed, ToyMasks::All);
            let fixed = Arc::new(FixedNetwork::lower(&net, Ring::default()).unwrap());
            let (logits, _, _, oracle) = run(&fixed, &toy_input(seed));
            // Nothing is truncated locally, so nothing may differ.
            assert_eq!(oracle.local_truncations, 0);
            assert_eq!(logits, oracle.logits, "seed {seed}");
        }
    }

    #[test]
    fn every_garbling_scheme_and_ot_equals_the_oracle_bit_for_bit() {
        use crate::crypto::ot::OtKind;
        let net = toy_network(11, ToyMasks::All);
        let fixed = Arc::new(FixedNetwork::lower(&net, Ring::default()).unwrap());
        for garbling in crate::gc::Scheme::ALL {
            for ot in [
                OtKind::Iknp,
                OtKind::SoftSpoken(2),
                OtKind::SoftSpoken(8),
                OtKind::Silent,
            ] {
                let gc = GcOptions { garbling, ot };
                let (logits, _, _, oracle) = run_with(&fixed, &toy_input(11), gc);
                assert_eq!(logits, oracle.logits, "{gc}");
            }
        }
    }

    #[test]
    fn linearized_elements_stay_within_local_truncation_of_the_oracle() {
        for masks in [ToyMasks::None, ToyMasks::Random] {
            for seed in 0..3 {
                let net = toy_network(seed, masks);
                let ring = Ring::new(64, 16).unwrap();
                let fixed = Arc::new(FixedNetwork::lower(&net, ring).unwrap());
                let (logits, _, _, oracle) = run(&fixed, &toy_input(seed));
                assert!(oracle.local_truncations > 0, "{masks:?}");
                // Each local truncation is off by at most one ulp (2^-16); the toy's weights
                // carry that to the logits as a few ulps, far below 10^-3.
                for (g, w) in logits.iter().zip(&oracle.logits) {
                    assert!((g - w).abs() < 1e-3, "{masks:?} seed {seed}: {g} vs {w}");
                }
            }
        }
    }

    #[test]
    fn timings_name_the_input_every_step_and_the_output() {
        let net = toy_network(7, ToyMasks::Random);
        let fixed = Arc::new(FixedNetwork::lower(&net, Ring::default()).unwrap());
        let (_, ts, tc, _) = run(&fixed, &toy_input(7));
        let steps = |t: &PartyTimings, phase: Phase| -> Vec<StepRef> {
            t.steps
                .iter()
                .filter(|s| s.phase == phase)
                .map(|s| s.step)
                .collect()
        };
        let every: Vec<StepRef> = (0..fixed.steps.len()).map(StepRef::Step).collect();
        // Offline both parties visit every step; online the server computes every step and
        // the client only evaluates the ReLU sites, between the input and the output.
        assert_eq!(steps(&ts, Phase::Offline), every);
        assert_eq!(steps(&tc, Phase::Offline), every);
        let mut server_online = vec![StepRef::Input];
        server_online.extend(&every);
        server_online.push(StepRef::Output);
        assert_eq!(steps(&ts, Phase::Online), server_online);
        let mut client_online = vec![StepRef::Input];
        client_online.extend(sites_of(&fixed).iter().map(|site| StepRef::Step(site.step)));
        client_online.push(StepRef::Output);
        assert_eq!(steps(&tc, Phase::Online), client_online);
    }
}
