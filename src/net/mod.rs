//! The channel between the two parties: TCP and in-memory transports with time-outs on every
//! receive, traffic accounting per phase and layer ([`Metered`]), the opening handshake, and
//! network links: presets, a cost model and an emulated transport that enforces them.

pub mod channel;
pub mod handshake;
pub mod meter;
pub mod tcp;

pub use channel::{
    mem_pair, Channel, ChannelExt, MemChannel, NetError, Phase, Scope, TcpChannel, DEFAULT_TIMEOUT,
};
pub use handshake::{handshake, Fingerprint, HandshakeError, Role};
pub use meter::{ChannelStats, Counters, LayerStats, Metered, PhaseStats};
