//! One party's whole session over a metered channel — handshake, setup, offline, the client's
//! "ready" signal, online — with the party's own measurements, and the report a server process
//! hands its client at the end of a two-process run.

use std::sync::Arc;
use std::time::Instant;

use super::prepro::{ClientPreprocessing, ServerPreprocessing};
use super::{
    client, fingerprint, public_params, server, GcOptions, Observer, PartyTimings, ProtocolError,
    PROTOCOL_VERSION,
};
use crate::crypto::prg::Prg;
use crate::net::{handshake_with, Channel, ChannelExt, ChannelStats, Metered, Phase, Role};
use crate::plain::FixedNetwork;

/// The metering scope (offline) of the client's "ready" signal.
pub const READY_SCOPE: &str = "ready";

/// The metering scope (online) of the server's report to its client in a two-process run.
pub const REPORT_SCOPE: &str = "report";

/// Largest server report a client accepts, in bytes.
const MAX_REPORT_BYTES: usize = 64 << 20;

/// What one party measured of its session.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct PartyReport {
    /// Per step timings.
    pub timings: PartyTimings,
    /// Channel statistics at this party.
    pub stats: ChannelStats,
    /// Seconds of setup, offline, online (this party's wall clock).
    pub setup_secs: f64,
    /// Offline seconds.
    pub offline_secs: f64,
    /// Online seconds.
    pub online_secs: f64,
    /// Bytes stored between the phases.
    pub storage_bytes: u64,
}

/// The client's signal that it has stored all of its preprocessing: online starts after it, so
/// the offline and online phases are measured apart.
pub fn signal_ready<C: Channel + ?Sized>(ch: &mut C) -> Result<(), ProtocolError> {
    ch.set_scope(Phase::Offline, Some(READY_SCOPE));
    ch.send(&[1])?;
    ch.flush()?;
    Ok(())
}

/// The server's side of [`signal_ready`]: wait for the client's signal.
pub fn await_ready<C: Channel + ?Sized>(ch: &mut C) -> Result<(), ProtocolError> {
    ch.set_scope(Phase::Offline, Some(READY_SCOPE));
    let mut ready = [0u8; 1];
    ch.recv(&mut ready)?;
    Ok(())
}

/// The server's whole session over `ch`, its ReLU sites garbled and their OTs run as `gc` says;
/// `observer` is told of every step.
pub fn server_session<C: Channel>(
    ch: &mut Metered<C>,
    net: &FixedNetwork,
    pre: &mut dyn ServerPreprocessing,
    gc: GcOptions,
    observer: Option<Arc<dyn Observer>>,
) -> Result<PartyReport, ProtocolError> {
    let mut rng = Prg::from_entropy();
    let fp = fingerprint(net, pre.backend(), gc);
    let t0 = Instant::now();
    let params = public_params(net, pre.backend(), gc);
    handshake_with(ch, Role::Server, PROTOCOL_VERSION, &params, &fp)?;
    let (mut cot, delta) = server::setup(ch, gc.ot, &mut rng)?;
    pre.setup(ch)?;
    let setup_secs = t0.elapsed().as_secs_f64();
    let mut timings = PartyTimings {
        observer,
        ..Default::default()
    };
    let t1 = Instant::now();
    let state = server::offline(
        ch,
        net,
        pre,
        &mut cot,
        delta,
        gc.garbling,
        &mut rng,
        &mut timings,
    )?;
    await_ready(ch)?;
    let offline_secs = t1.elapsed().as_secs_f64();
    let storage_bytes = state.storage_bytes();
    let t2 = Instant::now();
    server::online(ch, net, state, &mut timings)?;
    let online_secs = t2.elapsed().as_secs_f64();
    Ok(finish(
        ch,
        timings,
        [setup_secs, offline_secs, online_secs],
        storage_bytes,
    ))
}

/// The client's whole session over `ch` on `input` with the ReLU cryptography of `gc`; returns
/// its report and the logits. `observer` is told of every step.
pub fn client_session<C: Channel>(
    ch: &mut Metered<C>,
    net: &FixedNetwork,
    pre: &mut dyn ClientPreprocessing,
    gc: GcOptions,
    input: &[f32],
    observer: Option<Arc<dyn Observer>>,
) -> Result<(PartyReport, Vec<f64>), ProtocolError> {
    let mut rng = Prg::from_entropy();
    let fp = fingerprint(net, pre.backend(), gc);
    let t0 = Instant::now();
    let params = public_params(net, pre.backend(), gc);
    handshake_with(ch, Role::Client, PROTOCOL_VERSION, &params, &fp)?;
    let mut cot = client::setup(ch, gc.ot, &mut rng)?;
    pre.setup(ch)?;
    let setup_secs = t0.elapsed().as_secs_f64();
    let mut timings = PartyTimings {
        observer,
        ..Default::default()
    };
    let t1 = Instant::now();
    let state = client::offline(ch, net, pre, &mut cot, gc.garbling, &mut rng, &mut timings)?;
    signal_ready(ch)?;
    let offline_secs = t1.elapsed().as_secs_f64();
    let storage_bytes = state.storage_bytes();
    let t2 = Instant::now();
    let logits = client::online(ch, net, state, input, &mut timings)?;
    let online_secs = t2.elapsed().as_secs_f64();
    let report = finish(
        ch,
        timings,
        [setup_secs, offline_secs, online_secs],
        storage_bytes,
    );
    Ok((report, logits))
}

/// A party's report at the end of its session (the observer is told the session is over):
/// `secs` are the setup, offline and online seconds.
fn finish<C: Channel>(
    ch: &Metered<C>,
    timings: PartyTimings,
    [setup_secs, offline_secs, online_secs]: [f64; 3],
    storage_bytes: u64,
) -> PartyReport {
    if let Some(o) = &timings.observer {
        o.finished();
    }
    PartyReport {
        timings,
        stats: ch.stats(),
        setup_secs,
        offline_secs,
        online_secs,
        storage_bytes,
    }
}

/// The server's last message in a two-process run: its own report, so the client can assemble
/// the complete result, or an empty report (length 0) when the server does not share its
/// measurements.
pub fn send_report<C: Channel + ?Sized>(
    ch: &mut C,
    report: Option<&PartyReport>,
) -> Result<(), ProtocolError> {
    let json = match report {
        Some(r) => serde_json::to_vec(r).map_err(|e| ProtocolError::Internal(e.to_string()))?,
        None => Vec::new(),
    };
    ch.set_scope(Phase::Online, Some(REPORT_SCOPE));
    ch.send_u64(json.len() as u64)?;
    ch.send(&json)?;
    ch.flush()?;
    Ok(())
}

/// The client's side of [`send_report`]: `None` when the server shares no measurements. A size
/// beyond the limit or a malformed report is the peer's fault.
pub fn recv_report<C: Channel + ?Sized>(ch: &mut C) -> Result<Option<PartyReport>, ProtocolError> {
    ch.set_scope(Phase::Online, Some(REPORT_SCOPE));
    let n = ch.recv_u64()?;
    if n == 0 {
        return Ok(None);
    }
    if n > MAX_REPORT_BYTES as u64 {
        return Err(ProtocolError::Peer(format!(
            "the server announced a report of {n} bytes (at most {MAX_REPORT_BYTES} accepted)"
        )));
    }
    let mut buf = vec![0u8; n as usize];
    ch.recv(&mut buf)?;
    serde_json::from_slice(&buf)
        .map(Some)
        .map_err(|e| ProtocolError::Peer(format!("the server's report is not valid: {e}")))
}
