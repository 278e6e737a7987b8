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
//! - ReLU site: kept elements go through the garbled ReLU (exact truncation inside), whose output
//!   `relu(y) − r'` the server decodes from the colour bits the client returns; linearized
//!   elements are truncated locally by each party (SecureML) and cost nothing;
//! - add, sum pool, flatten: local on both shares.
//!
//! [`server`] and [`client`] mirror each other step for step; [`engine`] holds the OT and
//! garbling calls they share.

pub mod client;
pub mod engine;
pub mod he;
pub mod prepro;
pub mod server;

use serde::{Deserialize, Serialize};

use crate::model::ValueId;
use crate::net::{NetError, Phase};
use crate::plain::{FixedNetwork, PlainError, StepKind};

/// The cryptography of the ReLU sites: both parties must agree on it (it is part of the
/// [`fingerprint`]). Results written before these choices existed deserialize to half gates
/// with IKNP, which is what they measured.
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
    /// this machine's measurements (see README).
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

/// The protocol version exchanged in the handshake; bump on any wire change.
pub const PROTOCOL_VERSION: u32 = 3;

/// Errors of a private inference.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The channel failed (disconnect, time-out, bad message), with phase and layer.
    #[error(transparent)]
    Net(#[from] NetError),
    /// Oblivious transfer failed.
    #[error("oblivious transfer: {0}")]
    Ot(#[from] crate::crypto::ot::OtError),
    /// The network cannot be run (lowering or input).
    #[error(transparent)]
    Plain(#[from] PlainError),
    /// A broken invariant inside pibench (a bug, reported instead of a panic).
    #[error("internal error: {0}")]
    Internal(String),
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

/// Time spent by one party on one step in one phase.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepTiming {
    /// Step index (`usize::MAX` for the input and output transfers).
    pub step: usize,
    /// Layer name.
    pub name: String,
    /// Op kind.
    pub kind: String,
    /// Phase.
    pub phase: Phase,
    /// Wall-clock seconds, including time waiting for the peer.
    pub seconds: f64,
}

/// A party's per-step timings.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PartyTimings {
    /// One entry per step and phase, in order.
    pub steps: Vec<StepTiming>,
    /// Ticked once per recorded step, when set.
    #[serde(skip)]
    pub progress: Option<indicatif::ProgressBar>,
}

impl PartyTimings {
    /// Append one entry.
    pub fn record(&mut self, step: usize, name: &str, kind: &str, phase: Phase, seconds: f64) {
        self.steps.push(StepTiming {
            step,
            name: name.to_string(),
            kind: kind.to_string(),
            phase,
            seconds,
        });
        if let Some(pb) = &self.progress {
            if step != usize::MAX {
                pb.inc(1);
                pb.set_message(format!("{phase} {name}"));
            }
        }
    }

    /// Total seconds in `phase`.
    pub fn total(&self, phase: Phase) -> f64 {
        self.steps
            .iter()
            .filter(|s| s.phase == phase)
            .fold(0.0, |acc, s| acc + s.seconds)
    }
}

/// For each value (0 = input, i + 1 = step i), the last step that reads it.
pub(crate) fn last_uses(net: &FixedNetwork) -> Vec<usize> {
    let mut last = vec![0usize; net.steps.len() + 1];
    for (i, step) in net.steps.iter().enumerate() {
        for &v in &step.inputs {
            last[slot(v)] = i;
        }
    }
    last[slot(net.output)] = usize::MAX;
    last
}

pub(crate) fn slot(v: ValueId) -> usize {
    match v {
        ValueId::Input => 0,
        ValueId::Layer(i) => i + 1,
    }
}

pub(crate) fn value(values: &[Option<Vec<u64>>], v: ValueId) -> Result<&Vec<u64>, ProtocolError> {
    values.get(slot(v)).and_then(Option::as_ref).ok_or_else(|| {
        ProtocolError::Internal(format!(
            "value {v:?} read before it was computed or after it was freed"
        ))
    })
}

/// Drop values no later step reads, so memory follows the live set.
pub(crate) fn free_dead(values: &mut [Option<Vec<u64>>], last: &[usize], step: usize) {
    for (v, &l) in values.iter_mut().zip(last) {
        if l == step {
            *v = None;
        }
    }
}

/// A fingerprint of everything both parties must agree on: protocol version, ring, every step's
/// kind, geometry, shape and truncation, the masks, the linear preprocessing backend, and the
/// garbling scheme and OT of the ReLU sites. Weights are not part of it.
pub fn fingerprint(
    net: &FixedNetwork,
    backend: prepro::Backend,
    gc: GcOptions,
) -> crate::net::Fingerprint {
    use crate::plain::LinearKind;
    let mut desc = format!("backend={backend};garbling={};ot={};", gc.garbling, gc.ot)
        + &format!(
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
