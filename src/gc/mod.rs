//! Boolean circuits and their half-gates garbling and evaluation with free XOR, the ReLU gadget on
//! additive shares, batched and parallel over many instances.
//!
//! - [`circuit`]: the flat gate list, the [`BinaryGates`] trait gadgets are written against, the
//!   recorder and the plaintext interpreters.
//! - [`halfgates`]: the garbling scheme itself (Zahur–Rosulek–Evans 2015 with the GKWY20 tweakable
//!   hash): [`Delta`], the tweak schedule, label encoding and output decoding, and a slow
//!   one-instance reference garbler/evaluator that the fast engine is checked against.
//! - [`relu`]: the ReLU gadget on ℓ-bit additive shares and its plaintext reference.
//! - [`batch`]: the fast engine: many instances of one circuit interleaved gate by gate, spread
//!   over cores, streamed over a [`Channel`](crate::net::channel::Channel) in bounded memory.
//!
//! The garbled-table layout (shared by every routine here, and what goes on the wire) is
//! documented on [`batch`].

pub mod batch;
pub mod circuit;
pub mod halfgates;
pub mod relu;
pub mod thbatch;
pub mod threehalves;
#[cfg(target_arch = "x86_64")]
mod vaes;

pub use self::batch::{Evaluator, Garbler};
pub use self::circuit::{BinaryGates, Circuit, CircuitBuilder, Gate, PlainGates, WireId};
pub use self::halfgates::Delta;
pub use self::relu::{relu_circuit, relu_plain};
pub use self::thbatch::{ThEvaluator, ThGarbler};

use crate::net::channel::NetError;

/// Errors of the garbling engine.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// A slice handed to the engine has the wrong length.
    #[error("wrong length of {what}: expected {expected}, got {got}")]
    Length {
        /// Which argument.
        what: &'static str,
        /// The length the circuit and instance count require.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// Inputs were declared out of order while building a circuit.
    #[error("circuit inputs must be declared garbler first, then evaluator, before any gate")]
    InputOrder,
    /// Parameters outside what a gadget supports.
    #[error("invalid gadget parameters: {0}")]
    Params(String),
    /// A global Δ must have its least significant bit set (point-and-permute).
    #[error("a garbling offset Δ must have lsb 1")]
    DeltaLsb,
    /// The instance range of a call overflows the 64-bit instance numbering.
    #[error("instance numbers {first}..{first}+{n} overflow u64")]
    InstanceOverflow {
        /// First instance of the call.
        first: u64,
        /// Number of instances.
        n: usize,
    },
    /// Sending or receiving garbled material failed.
    #[error("garbled-circuit transfer failed: {0}")]
    Net(#[from] NetError),
}
