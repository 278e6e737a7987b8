//! Images through the real two-party protocol, both parties in this process (in-memory channel,
//! trusted-dealer preprocessing): the check that the simulated PI arithmetic ([`super::pi`]) is
//! what the protocol computes.
//!
//! A run is either fresh (OS randomness everywhere, as a deployment) or seeded by
//! [`ProtocolSeeds`]: then the client's offline rng (its input mask and ReLU output masks) and
//! the dealer's masks are fixed, and [`super::pi::ReplayShares`] with the same seeds makes the
//! simulation equal to the run's logits bit for bit. The base OTs, Δ and the garbling always use
//! fresh randomness: they change the messages, never the values.
//!
//! Unlike the measured session (`bench::run`), this skips the handshake, the timings and the
//! report: both parties are this process and only the logits matter.

use std::sync::Arc;
use std::time::Duration;

use super::pi::{PiError, ProtocolSeeds};
use crate::crypto::ot::OtKind;
use crate::crypto::prg::Prg;
use crate::net::mem_pair;
use crate::plain::FixedNetwork;
use crate::protocol::prepro::Dealer;
use crate::protocol::{client, server, GcOptions, PartyTimings, ProtocolError};
use crate::ring::Ring;

/// The ReLU cryptography of these runs: IKNP, whose outputs follow from the seeds alone (silent
/// OT's base OTs and chunking add work a replay does not need); the client draws its ReLU
/// output masks from its offline rng, so that a seeded run is replayable.
const GC: GcOptions = GcOptions {
    garbling: GcOptions::RECOMMENDED.garbling,
    ot: OtKind::Iknp,
};

/// How long either party waits for the other before failing.
const TIMEOUT: Duration = Duration::from_secs(300);

/// The logits of one secure run.
#[derive(Clone, Debug, PartialEq)]
pub struct SecureOutput {
    /// The logits the client reconstructed.
    pub logits: Vec<f64>,
    /// The same as ring elements, where every logit's signed value is below 2^53 in magnitude
    /// (so its decoding was exact); `None` otherwise (a wrapped output).
    pub raw: Option<Vec<u64>>,
    /// The predicted class (the largest logit, the first on ties).
    pub class: usize,
}

/// The ring element a logit was decoded from, when the decoding was exact.
pub fn raw_of_logit(ring: &Ring, scale: u32, logit: f64) -> Option<u64> {
    let scaled = logit * (scale as f64).exp2();
    (scaled.abs() < (53f64).exp2() && scaled.fract() == 0.0)
        .then(|| ring.from_signed(scaled as i64))
}

/// One image through the protocol; `seeds` fixes the client's offline rng and the dealer
/// (`None`: fresh OS randomness). `image` is the image's global index, for error messages.
pub fn secure_inference(
    net: &Arc<FixedNetwork>,
    input: &[f32],
    seeds: Option<&ProtocolSeeds>,
    image: u64,
) -> Result<SecureOutput, PiError> {
    let secure = |source: ProtocolError| PiError::Secure { image, source };
    let dealer = match seeds {
        Some(s) => Dealer::with_seed(net.clone(), s.dealer),
        None => Dealer::new(net.clone()),
    };
    let (mut s_ch, mut c_ch) = mem_pair(TIMEOUT);
    let mut server_dealer = dealer.clone();
    let server_net = net.clone();
    let server = std::thread::spawn(move || -> Result<(), ProtocolError> {
        let mut rng = Prg::from_entropy();
        let mut timings = PartyTimings::default();
        let (mut cot, delta) = server::setup(&mut s_ch, GC.ot, &mut rng)?;
        let state = server::offline(
            &mut s_ch,
            &server_net,
            &mut server_dealer,
            &mut cot,
            delta,
            GC.garbling,
            &mut rng,
            &mut timings,
        )?;
        server::online(&mut s_ch, &server_net, state, &mut timings)
    });
    let client = (|| -> Result<Vec<f64>, ProtocolError> {
        let mut client_dealer = dealer;
        let mut timings = PartyTimings::default();
        let mut cot = client::setup(&mut c_ch, GC.ot, &mut Prg::from_entropy())?;
        let state = match seeds {
            Some(s) => client::offline(
                &mut c_ch,
                net,
                &mut client_dealer,
                &mut cot,
                GC.garbling,
                &mut s.client_rng(),
                &mut timings,
            )?,
            None => client::offline(
                &mut c_ch,
                net,
                &mut client_dealer,
                &mut cot,
                GC.garbling,
                &mut Prg::from_entropy(),
                &mut timings,
            )?,
        };
        client::online(&mut c_ch, net, state, input, &mut timings)
    })();
    // The client's channel closes here, so a server still waiting fails instead of hanging.
    drop(c_ch);
    let server = server
        .join()
        .map_err(|_| PiError::Internal(format!("the server of image {image} panicked")))?;
    // The root cause first: when one side fails the other usually sees a disconnect.
    let logits = client.map_err(secure)?;
    server.map_err(secure)?;
    let raw: Option<Vec<u64>> = logits
        .iter()
        .map(|&v| raw_of_logit(&net.ring, net.output_scale, v))
        .collect();
    // Decoding is monotone, so this is the class of the ring values too.
    let class = crate::plain::f32::argmax(&logits);
    Ok(SecureOutput { logits, raw, class })
}

/// `images` images (`inputs` is `[N, input elements]`) through the protocol one after another;
/// image i has global index `first_image + i`. With `run_seed`, image i's run is seeded by
/// [`ProtocolSeeds::for_image`]`(run_seed, first_image + i)`, and
/// [`super::pi::BatchEvaluator::replay`] with the same arguments reproduces its logits bit for
/// bit.
pub fn secure_batch(
    net: &Arc<FixedNetwork>,
    inputs: &[f32],
    first_image: u64,
    run_seed: Option<u64>,
) -> Result<Vec<SecureOutput>, PiError> {
    let per_image = net.input_shape.elements();
    if per_image == 0 || !inputs.len().is_multiple_of(per_image) {
        return Err(PiError::BatchSize {
            got: inputs.len(),
            per_image,
        });
    }
    inputs
        .chunks(per_image)
        .enumerate()
        .map(|(i, input)| {
            let image = first_image + i as u64;
            let seeds = run_seed.map(|s| ProtocolSeeds::for_image(s, image));
            secure_inference(net, input, seeds.as_ref(), image)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_logits_are_recovered_only_when_exact() {
        let ring = Ring::new(64, 12).unwrap();
        for v in [0i64, 1, -1, 123_456_789, -(1 << 52), (1 << 53) - 1] {
            let x = ring.from_signed(v);
            assert_eq!(raw_of_logit(&ring, 24, ring.decode(x, 24)), Some(x), "{v}");
        }
        let huge = ring.from_signed(-(1 << 60) - 1);
        assert_eq!(raw_of_logit(&ring, 24, ring.decode(huge, 24)), None);
    }
}
