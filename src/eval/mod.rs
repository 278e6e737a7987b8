//! Accuracy under private inference: the fixed-point and the exact PI arithmetic batched over
//! images ([`pi`]), real protocol runs to check them ([`secure`]), and the statistics of the
//! results ([`stats`]).

pub mod pi;
pub mod secure;
pub mod stats;
