//! # pibench
//!
//! Measures what cryptographic private inference (PI) really costs for ReLU-linearized neural
//! networks: a client and a server run a complete two-party inference of a mask-annotated network
//! (linear layers on additive secret shares, every kept ReLU in a half-gates garbled circuit,
//! linearized elements for free) and every phase, layer, byte and round is measured.
//!
//! Data flows one way: a bundle on disk → [`model::Network`] → [`protocol`] (server and client
//! over a [`net`] channel) → measurements ([`bench`](mod@bench)) in the [`results`] schema →
//! [`report`]; [`job`] runs a sweep and then its report. The engines ([`ring`], [`crypto`], [`gc`],
//! [`net`]) know nothing about networks; [`protocol`] knows nothing about files or plots.
#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod bench;
pub mod crypto;
pub mod data;
pub mod eval;
pub mod gc;
pub mod job;
pub mod model;
pub mod net;
pub mod plain;
pub mod protocol;
pub mod report;
pub mod results;
pub mod ring;
pub mod rlwe;
