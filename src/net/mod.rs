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
pub use handshake::{handshake, handshake_with, Fingerprint, HandshakeError, Params, Role};
pub use link::{Direction, Link, LinkError};
/// The longest receive time-out the command line accepts (one year): long enough for any link,
/// short enough that every deadline computed from it is representable.
pub const MAX_TIMEOUT_SECS: u64 = 365 * 24 * 3600;

pub use meter::{ChannelStats, Counters, LayerStats, Metered, PhaseStats};
