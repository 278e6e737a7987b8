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
    /// An input value the ring cannot represent: its fixed-point encoding would saturate, and
    /// the secure result would not mean anything.
    #[error(
        "input value {value:e} at element {index} is outside the fixed-point range (−{limit}, \
         {limit}) of ℓ = {ell}, f = {frac} (|x|·2^f must stay below 2^(ℓ−1)); rescale the input \
         or use a wider ring"
    )]
    InputRange {
        /// Row-major index of the first such value.
        index: usize,
        /// The value.
        value: f64,
        /// The bound: 2^(ℓ−1−f).
        limit: f64,
        /// ℓ.
        ell: u32,
        /// f.
        frac: u32,
    },
    /// A weight or bias the ring cannot represent at its scale.
    #[error(
        "layer `{layer}`: {detail} is outside the fixed-point range; use a wider ring or fewer \
         fractional bits"
    )]
    ParameterRange {
        /// Layer name.
        layer: String,
        /// Which parameter, its value, and the range it misses, e.g. `conv2d weight 3 = 3e38
        /// (the range at ℓ = 64 with 12 fractional bits is ±2^51)`.
        detail: String,
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
