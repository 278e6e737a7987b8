//! Model bundles: the on-disk format, its validation, the network graph (ops, public shapes,
//! masks, private weights), batch-norm folding, the dual-BN path choice, mask allocation and
//! synthetic-model generation.

pub mod card;
pub mod graph;

pub use card::{Accuracy, ModelCard};
pub use graph::{
    BnPath, ChannelAffine, Conv2d, Layer, Linear, Mask, Network, Op, Shape, SiteInfo, ValueId,
};
