//! Accuracy of a network as private inference computes it: clean, under natural corruptions
//! and under a gradient attack, each in f32, in the deterministic fixed-point oracle and in the
//! exact PI arithmetic.
//!
//! The evaluator has three parts:
//!
//! - **floating point** ([`float`]): a batched forward pass over a [`crate::model::Network`]
//!   (NCHW batches, one GEMM per convolution over many images, elementwise ops in parallel over
//!   images), with the model's input [`crate::model::Preprocessing`], and the backward pass of every op of the
//!   bundle format giving the gradient of the cross-entropy loss (or of any upstream gradient on
//!   the logits) with respect to the input pixels. It computes what PyTorch computes, in `f32`
//!   (and in `f64`, which the finite-difference tests use);
//! - **attacks** ([`attack`]): white-box L∞ PGD (random start, seeded per image index so that
//!   sharded runs reproduce) and FGSM in \[0,1\] pixel space, crafted against the f32 network —
//!   for a dual-BN model, the network loaded on the `BN_a` path, as RLNet measures AdvA;
//! - **fixed point and PI** (`pi`, written separately): the ring oracle and the exact PI
//!   arithmetic (linear layers on the ring, kept ReLUs as the garbled circuit computes them,
//!   linearized elements truncated locally on fresh random shares), evaluating clean, corrupted
//!   and adversarial images at plaintext speed;
//!
//! and, later, the `eval` command's orchestration (datasets, BN paths, batches, confidence
//! intervals, sharding, the JSON result), which calls these parts.

pub mod attack;
pub mod float;
pub mod job;
pub mod pi;
pub mod results;
pub use job::ring_choice;
pub mod secure;
pub mod stats;

pub use attack::{fgsm, pgd, Attack, Pgd};
pub use float::{cross_entropy, FloatNet, LossGrad, Real, Tape};

/// What can go wrong when evaluating a network on a batch.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The pixel buffer is not a whole number of images of the network's input shape.
    #[error(
        "input has {got} values, not a positive multiple of one image's {per_image} ({shape:?})"
    )]
    InputSize {
        /// Values given.
        got: usize,
        /// Values per image.
        per_image: usize,
        /// The network's input shape `[C, H, W]` or `[N]`.
        shape: Vec<usize>,
    },
    /// A buffer that must hold one entry per image (labels, logit gradients) has the wrong size.
    #[error("{what}: {got} values for {images} images (expected {expected})")]
    BatchSize {
        /// Which buffer.
        what: &'static str,
        /// Values given.
        got: usize,
        /// Images in the batch.
        images: usize,
        /// Values expected.
        expected: usize,
    },
    /// A label is not a class of the network.
    #[error("label {label} of image {image} is not a class (the network has {classes})")]
    Label {
        /// Image index within the batch.
        image: usize,
        /// The label.
        label: usize,
        /// Classes of the network.
        classes: usize,
    },
    /// The preprocessing does not fit the network's input.
    #[error("input preprocessing: {reason}")]
    Preprocess {
        /// What is wrong.
        reason: String,
    },
    /// The network cannot be evaluated (an op on the wrong kind of value, sizes that disagree);
    /// a loaded bundle never gets this, a network built in code might.
    #[error("layer {index} `{layer}` ({kind}): {reason}")]
    Malformed {
        /// Layer index.
        index: usize,
        /// Layer name.
        layer: String,
        /// Op kind.
        kind: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A tape from another network or batch was passed to the backward pass.
    #[error("tape does not belong to this network and batch: {reason}")]
    Tape {
        /// What differs.
        reason: String,
    },
    /// Attack parameters out of range.
    #[error("attack: {reason}")]
    Attack {
        /// What is wrong.
        reason: String,
    },
    /// A pixel an attack starts from lies outside [0, 1] (or is not a number).
    #[error("image {image}: pixel {index} is {value}, outside [0, 1] (attacks work on [0,1] pixels, before preprocessing)")]
    PixelRange {
        /// Image index within the batch.
        image: usize,
        /// Element index within the image.
        index: usize,
        /// The value.
        value: f32,
    },
}
