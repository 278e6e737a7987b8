//! Boolean circuits and their half-gates garbling and evaluation with free XOR, the ReLU gadget on
//! additive shares, batched and parallel over many instances.
//!
//! - [`circuit`]: the flat gate list, the [`BinaryGates`] trait gadgets are written against, the
//!   recorder and the plaintext interpreters.
//! - [`halfgates`]: the garbling scheme itself (Zahur–Rosulek–Evans 2015 with the GKWY20 tweakable
//!   hash): [`Delta`], the tweak schedule, label encoding and output decoding, and a slow
//!   one-instance reference garbler/evaluator that the fast engine is checked against.
//! - [`relu`]: the ReLU gadget on ℓ-bit additive shares and its plaintext reference.
//! - [`arith`]: garbled outputs turned into additive shares of a selected value, the selection
//!   included: two short ciphertexts per bit and one for the selector (how the protocol's ReLU
//!   returns its value).
//! - [`batch`]: the fast engine: many instances of one circuit interleaved gate by gate, spread
//!   over cores, streamed over a [`Channel`](crate::net::channel::Channel) in bounded memory;
//!   its AND-gate kernels (`kernel::{portable, vaes}`, one picked per CPU) hash a whole group of
//!   instances at once.
//! - [`threehalves`] and [`thbatch`]: the three-halves scheme of Rosulek and Roy (1.5κ + 5 bits
//!   per AND gate), its reference and its batched engine on the same machinery.
//!
//! Which of the two schemes a run uses is a [`Scheme`]; both share labels, Δ, encoding and
//! decoding, so everything outside the AND gates is common.
//!
//! The garbled-table layout (shared by every routine here, and what goes on the wire) is
//! documented on [`batch`].

pub mod arith;
pub mod batch;
pub mod circuit;
pub mod halfgates;
mod kernel;
pub mod relu;
#[cfg(test)]
pub(crate) mod test_support;
pub mod thbatch;
pub mod threehalves;

pub use self::batch::{Evaluator, EvaluatorLabels, Garbler, GarblerLabels, OutputWire};
pub use self::circuit::{BinaryGates, Circuit, CircuitBuilder, Gate, PlainGates, WireId};
pub use self::halfgates::Delta;
pub use self::relu::{relu_circuit, relu_plain, relu_select_circuit};
pub use self::thbatch::{ThEvaluator, ThGarbler};

use crate::net::channel::NetError;

/// A garbling scheme for AND gates (free XOR in both).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    /// Half gates (Zahur–Rosulek–Evans 2015): two ciphertexts, 32 bytes, per AND gate. The
    /// default of results written before the choice existed.
    #[default]
    HalfGates,
    /// Three-halves (Rosulek–Roy 2021): three half-ciphertexts and five control bits per AND
    /// gate, 24.6 bytes; 50 % more hashing.
    ThreeHalves,
}

impl Scheme {
    /// Every scheme, in the order reports list them.
    pub const ALL: [Scheme; 2] = [Scheme::HalfGates, Scheme::ThreeHalves];

    /// The name used on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::HalfGates => "half-gates",
            Scheme::ThreeHalves => "three-halves",
        }
    }

    /// Bytes of garbled tables for `n` instances of `circuit` (on the wire and in storage).
    pub fn table_bytes(self, circuit: &Circuit, n: usize) -> u64 {
        match self {
            Scheme::HalfGates => batch::table_bytes(circuit, n),
            Scheme::ThreeHalves => thbatch::table_bytes(circuit, n),
        }
    }
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Scheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Scheme::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                format!("unknown garbling scheme `{s}` (expected half-gates or three-halves)")
            })
    }
}

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
    #[error(
        "instance numbers {first}..{first}+{n} reach 2^63, where garbling tweaks would meet the \
         OT tweaks of the same Δ"
    )]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_names_round_trip() {
        for s in Scheme::ALL {
            assert_eq!(s.name().parse::<Scheme>().unwrap(), s);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert!("halfgates"
            .parse::<Scheme>()
            .unwrap_err()
            .contains("half-gates"));
        let c = relu_circuit(64, 12).unwrap();
        assert_eq!(Scheme::HalfGates.table_bytes(&c, 2), 2 * 5664);
        assert_eq!(Scheme::ThreeHalves.table_bytes(&c, 2), 2 * 4360);
    }
}
