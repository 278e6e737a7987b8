//! One measured run, sweeps, and the results schema that every report is redrawn from.

pub mod plaintime;
pub mod relu;
pub mod result;
pub mod run;
pub mod sweep;
pub mod table;

pub use result::{
    LayerCost, LinkEstimate, LocalTruncation, Machine, ModelInfo, PhaseCost, RunResult,
};
