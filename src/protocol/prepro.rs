//! Linear-layer preprocessing backends: for each linear step the client obtains `M·c − s` for its
//! share `c` of the step's input and the server's fresh mask `s`, without the client learning M.
//!
//! `dealer` is a trusted third party that knows M and sees the client's share: it costs the two
//! parties nothing and exists to measure everything else. Results label it wherever they appear.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rand::RngCore;
use rand_core::{OsRng, SeedableRng};

use super::ProtocolError;
use crate::model::StepGraph;
use crate::net::{Channel, ChannelExt};
use crate::plain::{FixedNetwork, StepKind};

/// Which preprocessing backend produced the linear correlations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A trusted dealer (no traffic between the parties; not a real two-party protocol).
    Dealer,
    /// Homomorphic encryption between the two parties ([`super::he`]).
    He,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Dealer => "dealer",
            Backend::He => "he",
        })
    }
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dealer" => Ok(Backend::Dealer),
            "he" => Ok(Backend::He),
            other => Err(format!(
                "unknown preprocessing backend `{other}` (expected `dealer` or `he`)"
            )),
        }
    }
}

/// The client's half of a backend.
pub trait ClientPreprocessing: Send {
    /// Which backend this is (part of the handshake: both parties must use the same).
    fn backend(&self) -> Backend;
    /// The backend's own setup, once per session before the offline phase (the `he` backend's
    /// public key); `ch` is the channel to the server. Nothing by default.
    fn setup(&mut self, _ch: &mut dyn Channel) -> Result<(), ProtocolError> {
        Ok(())
    }
    /// `M·c − s` for linear step `step` and the client's (already truncated) input share `c`;
    /// `ch` is the channel to the server, for backends that talk.
    fn correlate(
        &mut self,
        ch: &mut dyn Channel,
        step: usize,
        c: &[u64],
    ) -> Result<Vec<u64>, ProtocolError>;
}

/// The server's half of a backend.
pub trait ServerPreprocessing: Send {
    /// Which backend this is (part of the handshake: both parties must use the same).
    fn backend(&self) -> Backend;
    /// The backend's own setup, once per session before the offline phase (the `he` backend's
    /// public key); `ch` is the channel to the client. Nothing by default.
    fn setup(&mut self, _ch: &mut dyn Channel) -> Result<(), ProtocolError> {
        Ok(())
    }
    /// The server's mask `s` of linear step `step`; `ch` is the channel to the client.
    fn linear_mask(&mut self, ch: &mut dyn Channel, step: usize)
        -> Result<Vec<u64>, ProtocolError>;
}

/// A trusted dealer shared by both parties of one process. It draws `s` on first touch of a
/// step by either party, so neither waits for the other.
#[derive(Clone)]
pub struct Dealer {
    net: Arc<FixedNetwork>,
    masks: Arc<Mutex<HashMap<usize, Vec<u64>>>>,
    seed: [u8; 32],
}

impl Dealer {
    /// A dealer for `net` (with weights), seeded from the OS.
    pub fn new(net: Arc<FixedNetwork>) -> Self {
        let mut seed = [0u8; 32];
        OsRng.fill_bytes(&mut seed);
        Self::with_seed(net, seed)
    }

    /// A dealer whose masks are a function of `seed` (step `i`'s mask `s` is ChaCha12 keyed by
    /// `seed` with `i` XORed into its first 8 bytes): for tests and for replaying a run exactly
    /// (`eval::pi` reproduces a protocol run bit for bit from it). Never for a real deployment.
    pub fn with_seed(net: Arc<FixedNetwork>, seed: [u8; 32]) -> Self {
        Dealer {
            net,
            masks: Arc::default(),
            seed,
        }
    }

    fn linear_mask_of(&self, step: usize) -> Result<Vec<u64>, ProtocolError> {
        let out_len = self
            .net
            .steps
            .get(step)
            .filter(|s| matches!(s.kind, StepKind::Linear(_)))
            .ok_or_else(|| {
                ProtocolError::Internal(format!(
                    "dealer asked for step {step}, which is not linear"
                ))
            })?
            .out_shape
            .elements();
        let mut masks = self
            .masks
            .lock()
            .map_err(|_| ProtocolError::Internal("dealer lock poisoned".into()))?;
        let ring = self.net.ring;
        Ok(masks
            .entry(step)
            .or_insert_with(|| {
                let mut seed = self.seed;
                seed[..8]
                    .iter_mut()
                    .zip((step as u64).to_le_bytes())
                    .for_each(|(a, b)| *a ^= b);
                let mut rng = rand_chacha::ChaCha12Rng::from_seed(seed);
                (0..out_len).map(|_| ring.reduce(rng.next_u64())).collect()
            })
            .clone())
    }
}

impl Dealer {
    /// `(M·c − s, s)` for linear step `step` and the client's (already truncated) input share `c`:
    /// the client's and the server's halves of the correlation.
    pub fn deal(&self, step: usize, c: &[u64]) -> Result<(Vec<u64>, Vec<u64>), ProtocolError> {
        let s = self.linear_mask_of(step)?;
        let StepKind::Linear(l) = &self.net.steps[step].kind else {
            return Err(ProtocolError::Internal(format!(
                "step {step} is not linear"
            )));
        };
        let ring = self.net.ring;
        let mut mc = l.apply(&ring, c);
        mc.iter_mut()
            .zip(&s)
            .for_each(|(v, &si)| *v = ring.sub(*v, si));
        Ok((mc, s))
    }
}

impl ClientPreprocessing for Dealer {
    fn backend(&self) -> Backend {
        Backend::Dealer
    }

    fn correlate(
        &mut self,
        _ch: &mut dyn Channel,
        step: usize,
        c: &[u64],
    ) -> Result<Vec<u64>, ProtocolError> {
        Ok(self.deal(step, c)?.0)
    }
}

impl ServerPreprocessing for Dealer {
    fn backend(&self) -> Backend {
        Backend::Dealer
    }

    fn linear_mask(
        &mut self,
        _ch: &mut dyn Channel,
        step: usize,
    ) -> Result<Vec<u64>, ProtocolError> {
        self.linear_mask_of(step)
    }
}

/// The dealer for two processes: the server's process plays the trusted dealer, so the client
/// sends its share to it and gets `M·c − s` back over the channel. Those bytes are the dealer's
/// deliveries, counted in the linear layer's offline traffic; like every dealer result, this is
/// not a two-party protocol (the server process sees the client's masks).
pub struct RemoteDealerClient {
    /// The public architecture: how many values each step's delivery must hold.
    net: Arc<FixedNetwork>,
}

impl RemoteDealerClient {
    /// The client of a remote dealer for `net` (only its public shapes are used).
    pub fn new(net: Arc<FixedNetwork>) -> Self {
        RemoteDealerClient { net }
    }
}

impl ClientPreprocessing for RemoteDealerClient {
    fn backend(&self) -> Backend {
        Backend::Dealer
    }

    fn correlate(
        &mut self,
        ch: &mut dyn Channel,
        step: usize,
        c: &[u64],
    ) -> Result<Vec<u64>, ProtocolError> {
        let s = self
            .net
            .steps
            .get(step)
            .filter(|s| matches!(s.kind, StepKind::Linear(_)))
            .ok_or_else(|| ProtocolError::Internal(format!("step {step} is not a linear step")))?;
        let expected = s.out_shape.elements();
        ch.send_u64s(c)?;
        ch.flush()?;
        // The count comes from the peer: checked against the public shape before anything is
        // allocated, so a lying dealer can neither crash the client nor make it allocate.
        let n = ch.recv_u64()?;
        if n != expected as u64 {
            return Err(ProtocolError::Peer(format!(
                "the dealer announced {n} values for step `{}`, whose output has {expected}",
                s.name
            )));
        }
        let mut out = vec![0u64; expected];
        ch.recv_u64s(&mut out)?;
        let ring = self.net.ring;
        out.iter_mut().for_each(|v| *v = ring.reduce(*v));
        Ok(out)
    }
}

/// The server side of [`RemoteDealerClient`]: a [`Dealer`] answering over the channel.
pub struct RemoteDealerServer(pub Dealer);

impl ServerPreprocessing for RemoteDealerServer {
    fn backend(&self) -> Backend {
        Backend::Dealer
    }

    fn linear_mask(
        &mut self,
        ch: &mut dyn Channel,
        step: usize,
    ) -> Result<Vec<u64>, ProtocolError> {
        let net = &self.0.net;
        let in_len = match net.steps.get(step).and_then(|s| s.inputs.first()) {
            Some(&v) => net.shape_of(v).elements(),
            None => return Err(ProtocolError::Internal(format!("no step {step}"))),
        };
        let mut c = vec![0u64; in_len];
        ch.recv_u64s(&mut c)?;
        c.iter_mut().for_each(|v| *v = net.ring.reduce(*v));
        let (mc, s) = self.0.deal(step, &c)?;
        ch.send_u64(mc.len() as u64)?;
        ch.send_u64s(&mc)?;
        ch.flush()?;
        Ok(s)
    }
}
