//! Measurement: one measured private inference ([`run`]), sweeps of them ([`sweep`]), the
//! price of ReLUs alone ([`relu`]) and of plain inference ([`plaintime`]), what the process
//! used meanwhile ([`usage`]), and their console tables. What they measure is written in the
//! [`crate::results`] schema.

pub mod plaintime;
pub mod relu;
pub mod run;
pub mod sweep;
pub mod table;
pub mod usage;
