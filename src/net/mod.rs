//! The channel between the two parties: TCP and in-memory transports with time-outs on every
//! receive, traffic accounting per phase and layer ([`Metered`]), the opening handshake, and
//! network links: presets, a cost model and an emulated transport that enforces them.

pub mod channel;
pub mod emulate;
pub mod handshake;
pub mod link;
pub mod meter;
pub mod tcp;

pub use channel::{
    mem_pair, Channel, ChannelExt, MemChannel, NetError, Phase, Scope, TcpChannel, DEFAULT_TIMEOUT,
};
pub use emulate::{emulated_pair, emulated_pair_with, EmulatedChannel, EmulationOptions};
pub use handshake::{handshake, Fingerprint, HandshakeError, Role};
pub use link::{Direction, Link, LinkError};
pub use meter::{ChannelStats, Counters, LayerStats, Metered, PhaseStats};
