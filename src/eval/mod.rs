//! Accuracy under private inference: `pibench eval`.

pub mod results;
