//! Reference inference in the clear: f32, and fixed point on the ring with exactly the semantics
//! of the secure protocol (the oracle for every secure test).

pub mod f32;
pub mod fixed;
pub mod toy;

pub use self::f32::{forward_f32, forward_f32_values};
pub use fixed::{FixedNetwork, FixedOutput, LinearKind, LinearStep, Share, Step, StepKind};

/// The kernel geometry of conv op `c` on a `[C, H, W]` input.
pub(crate) fn conv_geometry(
    c: &crate::model::graph::Conv2d,
    (in_channels, in_h, in_w): (usize, usize, usize),
) -> crate::ring::kernels::ConvGeometry {
    crate::ring::kernels::ConvGeometry {
        in_channels,
        in_h,
        in_w,
        out_channels: c.out_channels,
        kh: c.kernel.0,
        kw: c.kernel.1,
        stride: c.stride,
        padding: c.padding,
    }
}

/// Errors of plain inference and of lowering a network to fixed point.
#[derive(Debug, thiserror::Error)]
pub enum PlainError {
    /// The input has the wrong number of elements.
    #[error("input has {got} values, the network expects {expected} ({shape:?})")]
    InputSize {
        /// Values given.
        got: usize,
        /// Values expected.
        expected: usize,
        /// The input shape.
        shape: Vec<usize>,
    },
    /// An op cannot be computed on the ring with the protocol's semantics.
    #[error("layer `{layer}` ({kind}) is not supported in fixed point: {reason}")]
    Unsupported {
        /// Layer name.
        layer: String,
        /// Op kind.
        kind: &'static str,
        /// Why.
        reason: String,
    },
    /// A step reads a value that is not there (a bug, or a hand-built network out of order).
    #[error(transparent)]
    Walk(#[from] crate::model::WalkError),
    /// The network is malformed (should have been caught at load).
    #[error("malformed network at layer `{layer}`: {reason}")]
    Malformed {
        /// Layer name.
        layer: String,
        /// What is wrong.
        reason: String,
    },
}
