//! One measured run, sweeps, and the results schema that every report is redrawn from.

pub mod result;

pub use result::{
    LayerCost, LinkEstimate, LocalTruncation, Machine, ModelInfo, PhaseCost, RunResult,
};
