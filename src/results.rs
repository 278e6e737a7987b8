//! The results schema: one measured private inference, as JSON that every table and plot is
//! redrawn from. `bench` writes it, `report` reads it. Field names are stable; add, never
//! rename.

use serde::{Deserialize, Serialize};

use crate::model::ModelCard;
use crate::net::link::Link;
use crate::protocol::prepro::Backend;
use crate::ring::Ring;

/// Cost of one phase (or of one layer in one phase).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseCost {
    /// Wall-clock seconds from the phase's start until both parties finished it.
    pub seconds: f64,
    /// The server's wall-clock seconds in the phase (including waiting for the client).
    pub seconds_server: f64,
    /// The client's wall-clock seconds in the phase (including waiting for the server).
    pub seconds_client: f64,
    /// Bytes the client sent.
    pub bytes_client_to_server: u64,
    /// Bytes the server sent.
    pub bytes_server_to_client: u64,
    /// Flights (changes of direction) as counted at the server.
    pub rounds: u64,
}

impl PhaseCost {
    /// Bytes in both directions.
    pub fn bytes(&self) -> u64 {
        self.bytes_client_to_server + self.bytes_server_to_client
    }
}

/// Cost of one layer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerCost {
    /// Layer name (`input`/`output` for the transfers at either end).
    pub name: String,
    /// Op kind.
    pub kind: String,
    /// Elements of the layer's output.
    pub elements: u64,
    /// ReLUs kept (ReLU sites only).
    pub relus_kept: u64,
    /// Multiply-accumulates (linear layers only).
    pub macs: u64,
    /// Offline cost.
    pub offline: PhaseCost,
    /// Online cost.
    pub online: PhaseCost,
}

/// A phase's cost estimated on a network link: measured compute + bytes / bandwidth + rounds ×
/// one-way latency.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkEstimate {
    /// The link (its name is `lan`, `wan`, `mobile` or a custom spec). Results written before
    /// the link itself was stored carry only the name, which is parsed when they are read.
    #[serde(deserialize_with = "link_or_name")]
    pub link: Link,
    /// Estimated offline seconds.
    pub offline_seconds: f64,
    /// Estimated online seconds.
    pub online_seconds: f64,
    /// Whether this was measured through an emulated (throttled) channel rather than estimated.
    pub emulated: bool,
}

/// A stored link, or the name older results stored instead (a preset or a custom `BW,RTT`
/// spec, which `net::link` parsed when the run was made, so it parses again).
fn link_or_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Link, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Link(Link),
        Name(String),
    }
    match Stored::deserialize(d)? {
        Stored::Link(l) => Ok(l),
        Stored::Name(name) => Link::parse(&name).map_err(serde::de::Error::custom),
    }
}

/// Local (SecureML) truncation of linearized elements: how often and how risky.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LocalTruncation {
    /// Elements truncated locally in one inference.
    pub count: u64,
    /// Largest bit length of a truncated value (ℓx), from the oracle run.
    pub max_value_bits: u32,
    /// Probability that one local truncation wraps: 2^(ℓx + 1 − ℓ).
    pub failure_probability_per_element: f64,
    /// Union bound over the inference: count × the above.
    pub failure_probability: f64,
}

/// The machine a result was measured on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model name.
    pub cpu: String,
    /// Logical cores.
    pub cores: usize,
    /// Operating system.
    pub os: String,
    /// Whether AES-NI was detected.
    pub aes_ni: bool,
}

impl Machine {
    /// Describe this machine.
    pub fn this() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        #[cfg(target_arch = "x86_64")]
        let aes_ni = std::arch::is_x86_feature_detected!("aes");
        #[cfg(not(target_arch = "x86_64"))]
        let aes_ni = false;
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            os: std::env::consts::OS.into(),
            aes_ni,
        }
    }
}

/// The model as run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Bundle path.
    pub path: String,
    /// The bundle's card.
    pub card: ModelCard,
    /// Batch-norm path (`clean`/`adv`).
    pub bn_path: String,
    /// Fingerprint of architecture and masks (hex).
    pub fingerprint: String,
    /// ReLU elements over all sites.
    pub total_relus: u64,
    /// ReLUs kept: the budget.
    pub budget: u64,
    /// Multiply-accumulates of one inference.
    pub macs: u64,
}

/// One measured private inference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// pibench version.
    pub pibench_version: String,
    /// The model.
    pub model: ModelInfo,
    /// ℓ and f.
    pub ring: Ring,
    /// Linear preprocessing backend.
    pub backend: Backend,
    /// Garbling scheme and OT of the ReLU sites (JSON fields `garbling` and `ot`; absent in
    /// results from before the choice existed, which used half gates and IKNP).
    #[serde(flatten, default)]
    pub gc: crate::protocol::GcOptions,
    /// Worker threads (rayon) per process.
    pub threads: usize,
    /// `tcp-loopback`, `memory`, `tcp`.
    pub transport: String,
    /// Where it ran.
    pub machine: Machine,
    /// Setup (handshake, base OTs).
    pub setup: PhaseCost,
    /// Offline phase in total.
    pub offline: PhaseCost,
    /// Online phase in total.
    pub online: PhaseCost,
    /// Per layer.
    pub layers: Vec<LayerCost>,
    /// Bytes the client stores between the phases.
    pub client_storage_bytes: u64,
    /// Bytes the server stores between the phases.
    pub server_storage_bytes: u64,
    /// Peak resident memory during the run (both parties when run in one process; in a sweep it
    /// includes large buffers pooled by the process's earlier runs).
    pub peak_rss_bytes: u64,
    /// AND gates per garbled ReLU.
    pub and_gates_per_relu: u64,
    /// Secure logits equal the fixed-point oracle's (within the local-truncation tolerance) and
    /// give the same class.
    pub correct: bool,
    /// Secure logits equal the oracle's bit for bit.
    pub exact: bool,
    /// Largest |secure − oracle| logit difference.
    pub max_logit_diff_vs_oracle: f64,
    /// Largest |oracle − f32| logit difference (the fixed-point error).
    pub max_logit_diff_fixed_vs_f32: f64,
    /// The class of the secure logits.
    pub predicted_class: usize,
    /// The class of the f32 logits.
    pub f32_class: usize,
    /// Whether the logits were checked against the oracle at all: false for a client holding
    /// only the public bundle (no weights), whose `correct`, `exact` and oracle figures are then
    /// empty.
    #[serde(default = "yes")]
    pub oracle_checked: bool,
    /// The secure logits.
    pub logits: Vec<f64>,
    /// Local truncation statistics.
    pub local_truncation: LocalTruncation,
    /// Estimates (and emulated measurements) per link.
    pub links: Vec<LinkEstimate>,
    /// The linear layers' two-party preprocessing against the SIMD yardstick (`he` runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub he: Option<HeTraffic>,
    /// Where the run sits in the sweep that measured it, and that sweep's command; absent for
    /// `pibench run` and in runs written before sweeps recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepPlace>,
}

/// A run's place in its sweep: what orders a report's runs ([`crate::report::Sweep`]) and what
/// its "how to reproduce" names, so that a report redrawn from the run files alone
/// (`pibench report DIR`) is the one the sweep wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepPlace {
    /// The seed of the input image (seeded random images 0, 1, ...; 0 for an emulated run).
    pub input: u64,
    /// The repeat of that input (0 for an emulated run).
    pub repeat: u64,
    /// Which sweep into its directory measured the run: 0 for the one that started it, k for
    /// its k-th `--append` (whose runs have inputs and repeats of their own).
    #[serde(default)]
    pub appended: u64,
    /// The command that ran the sweep, as one shell line.
    pub command: String,
}

fn yes() -> bool {
    true
}

/// The `he` backend's linear preprocessing, measured, next to what Delphi-style SIMD packing
/// would move for the same steps (an estimate counting ciphertexts only, no rotation keys; see
/// `protocol::he::baseline`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HeTraffic {
    /// Wall seconds of the linear steps' offline phase.
    pub seconds: f64,
    /// Bytes client → server over the linear steps (input ciphertexts).
    pub bytes_client_to_server: u64,
    /// Bytes server → client over the linear steps (results).
    pub bytes_server_to_client: u64,
    /// Bytes of the key exchange (the client's public key; metered in the setup phase).
    #[serde(default)]
    pub key_bytes: u64,
    /// SIMD packing with whole ciphertexts both ways, as Delphi sends them.
    pub simd_bytes_as_sent: u64,
    /// SIMD packing with this crate's ciphertext compression.
    pub simd_bytes_compressed: u64,
    /// Plaintext primes the SIMD CRT needs for exact shares.
    pub simd_crt_primes: u32,
}

impl HeTraffic {
    /// Measured bytes both ways, keys included.
    pub fn bytes(&self) -> u64 {
        self.bytes_client_to_server + self.bytes_server_to_client + self.key_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimate(link: &str) -> String {
        format!(r#"{{"link":{link},"offline_seconds":1.5,"online_seconds":0.25,"emulated":false}}"#)
    }

    #[test]
    fn link_estimates_store_the_link_and_still_read_old_names() {
        let e = LinkEstimate {
            link: Link::wan(),
            offline_seconds: 1.5,
            online_seconds: 0.25,
            emulated: false,
        };
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains(r#""rtt_secs":0.04"#), "{json}");
        assert_eq!(serde_json::from_str::<LinkEstimate>(&json).unwrap(), e);
        // Results written before the link was stored carry its name only.
        let old: LinkEstimate = serde_json::from_str(&estimate(r#""wan""#)).unwrap();
        assert_eq!(old, e);
        let old: LinkEstimate =
            serde_json::from_str(&estimate(r#""865mbit/135mbit,30ms""#)).unwrap();
        assert_eq!(
            (old.link.up_bits_per_sec, old.link.down_bits_per_sec),
            (865_000_000, 135_000_000)
        );
        assert_eq!(old.link.name, "865mbit/135mbit,30ms");
        // A name the link parser refuses is an error that names it, not a silent default.
        let err = serde_json::from_str::<LinkEstimate>(&estimate(r#""100,20""#))
            .unwrap_err()
            .to_string();
        assert!(err.contains("100,20"), "{err}");
    }
}
