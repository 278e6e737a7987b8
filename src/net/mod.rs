//! The channel between the two parties: TCP and in-memory, counting bytes per direction, phase
//! and layer, and rounds; time-outs; link emulation.

pub mod channel;

pub use channel::{mem_pair, Channel, ChannelExt, MemChannel, NetError, Phase, TcpChannel};
