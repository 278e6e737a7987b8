//! Model bundles: the on-disk format, its validation, the network graph (ops, public shapes,
//! masks, private weights), batch-norm folding, the dual-BN path choice, mask allocation and
//! synthetic-model generation.
//!
//! - [`bundle`]: [`Bundle::open`] / [`Bundle::from_bytes`] and [`Bundle::network`], with every
//!   check of docs/FORMAT.md;
//! - [`raw`]: the stored graph as serde structs; [`graph`]: the loaded [`Network`] IR and the
//!   [`StepGraph`] view every evaluator walks;
//! - [`writer`]: [`BundleWriter`]; [`synth`]: synthetic weights;
//! - [`arch`], [`gen`]: architecture builders and `pibench gen`; [`inspect`]: `pibench inspect`;
//! - [`bundled`]: the models shipped in `models/`; [`public`]: weight-free bundles for clients;
//! - [`walk`]: one walk over a network's steps ([`ValueStore`]) for every evaluator.

pub mod arch;
pub mod bundle;
pub mod bundled;
pub mod card;
pub mod error;
pub mod gen;
pub mod graph;
pub mod inspect;
pub mod public;
pub mod raw;
pub mod synth;
pub mod walk;
pub mod writer;

pub use bundle::{Bundle, FORMAT_VERSION};
pub use card::{Accuracy, ModelCard, PixelScale, Preprocessing, PreprocessingError};
pub use error::ModelError;
pub use gen::{generate, Allocation, GenSpec};
pub use graph::{
    BnPath, ChannelAffine, Conv2d, Layer, Linear, Mask, Network, Op, Shape, SiteInfo, StepGraph,
    ValueId,
};
pub use inspect::Inspection;
pub use public::public_bundle;
pub use walk::{StepRef, ValueStore, WalkError};
pub use writer::BundleWriter;
