//! A hostile or mismatched peer, played from a test thread that speaks the wire format: every
//! lie about a size, every differing public parameter and a busy server end in a clear error on
//! the honest side, never a panic, a huge allocation or a hang.

mod cli_support;

use std::sync::Arc;
use std::time::Duration;

use pibench::crypto::ot::OtKind;
use pibench::gc::Scheme;
use pibench::model::{BnPath, Bundle};
use pibench::net::{handshake_with, mem_pair, Channel, ChannelExt, HandshakeError, Metered, Role};
use pibench::plain::FixedNetwork;
use pibench::protocol::prepro::{
    Backend, ClientPreprocessing, Dealer, RemoteDealerClient, ServerPreprocessing,
};
use pibench::protocol::session::{client_session, server_session, PartyReport};
use pibench::protocol::{fingerprint, public_params, GcOptions, ProtocolError, PROTOCOL_VERSION};
use pibench::ring::Ring;

use cli_support::{fixture, spawn_serve};

fn lowered(name: &str, bn: BnPath, ring: Ring) -> Arc<FixedNetwork> {
    let net = Bundle::open(fixture(name)).unwrap().network(bn).unwrap();
    Arc::new(FixedNetwork::lower(&net, ring).unwrap())
}

/// A hostile server for a client using the remote dealer: the real handshake and base OTs,
/// then, for the first linear step, it reads the client's share and announces `announced`
/// values, sending `sent` of them. Returns the client's error.
fn lying_dealer(announced: u64, sent: usize) -> ProtocolError {
    let fixed = lowered("snl-resnet18-w8-c10", BnPath::Clean, Ring::default());
    let (a, b) = mem_pair(Duration::from_secs(20));
    let f2 = fixed.clone();
    let server = std::thread::spawn(move || {
        let mut ch = Metered::new(b);
        handshake_with(
            &mut ch,
            Role::Server,
            PROTOCOL_VERSION,
            &public_params(&f2, Backend::Dealer, GcOptions::RECOMMENDED),
            &fingerprint(&f2, Backend::Dealer, GcOptions::RECOMMENDED),
        )
        .unwrap();
        let mut rng = pibench::crypto::prg::Prg::from_entropy();
        let _ =
            pibench::protocol::server::setup(&mut ch, GcOptions::RECOMMENDED.ot, &mut rng).unwrap();
        // The client's share of the first linear step's input (the image).
        let mut c = vec![0u64; f2.input_shape.elements()];
        ch.recv_u64s(&mut c).unwrap();
        ch.send_u64(announced).unwrap();
        ch.send_u64s(&vec![7u64; sent]).unwrap();
        ch.flush().unwrap();
        // Stay until the client has given up.
        let mut rest = [0u8; 1];
        let _ = ch.recv(&mut rest);
    });
    let mut ch = Metered::new(a);
    let mut pre = RemoteDealerClient::new(fixed.clone());
    let input = vec![0.25f32; fixed.input_shape.elements()];
    let err = client_session(
        &mut ch,
        &fixed,
        &mut pre,
        GcOptions::RECOMMENDED,
        &input,
        None,
    )
    .unwrap_err();
    drop(ch);
    server.join().unwrap();
    err
}

#[test]
fn a_dealer_announcing_fewer_values_is_a_peer_error_not_a_panic() {
    let fixed = lowered("snl-resnet18-w8-c10", BnPath::Clean, Ring::default());
    let need = fixed.steps[0].out_shape.elements();
    let e = lying_dealer(need as u64 - 1, need - 1);
    assert!(matches!(e, ProtocolError::Peer(_)), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("the peer misbehaved"), "{msg}");
    assert!(
        msg.contains(&format!("{}", need - 1)) && msg.contains(&need.to_string()),
        "{msg}"
    );
    assert!(!msg.contains("internal error"), "{msg}");
}

#[test]
fn a_dealer_announcing_a_huge_count_allocates_nothing() {
    // 2^40 values would be 8 TB: refused from the count alone, before any allocation.
    let e = lying_dealer(1 << 40, 0);
    assert!(matches!(e, ProtocolError::Peer(_)), "{e}");
    assert!(e.to_string().contains("1099511627776"), "{e}");
}

/// The server's and the client's results of one session.
type Outcome = (
    Result<PartyReport, ProtocolError>,
    Result<(PartyReport, Vec<f64>), ProtocolError>,
);

/// Runs the server's and the client's sessions (real backends) on two lowered networks over
/// memory; returns both results.
fn sessions(
    server_net: Arc<FixedNetwork>,
    server_pre: Box<dyn ServerPreprocessing>,
    client_net: Arc<FixedNetwork>,
    client_pre: Box<dyn ClientPreprocessing>,
) -> Outcome {
    let gc = GcOptions::RECOMMENDED;
    sessions_with(server_net, server_pre, gc, client_net, client_pre, gc)
}

/// [`sessions`] with each party's garbling scheme and OT.
fn sessions_with(
    server_net: Arc<FixedNetwork>,
    server_pre: Box<dyn ServerPreprocessing>,
    server_gc: GcOptions,
    client_net: Arc<FixedNetwork>,
    client_pre: Box<dyn ClientPreprocessing>,
    client_gc: GcOptions,
) -> Outcome {
    let (a, b) = mem_pair(Duration::from_secs(20));
    let mut server_pre = server_pre;
    let server = std::thread::spawn(move || {
        server_session(
            &mut Metered::new(b),
            &server_net,
            server_pre.as_mut(),
            server_gc,
            None,
        )
    });
    let input = vec![0.1f32; client_net.input_shape.elements()];
    let mut client_pre = client_pre;
    let rc = client_session(
        &mut Metered::new(a),
        &client_net,
        client_pre.as_mut(),
        client_gc,
        &input,
        None,
    );
    (server.join().unwrap(), rc)
}

/// Asserts both parties failed at the handshake naming `flag`.
fn assert_param_mismatch(r: Outcome, flag: &str) {
    let errs = [r.0.err().unwrap(), r.1.err().unwrap()];
    for e in errs {
        match &e {
            ProtocolError::Handshake(HandshakeError::Param { name, .. }) => {
                assert_eq!(name, flag, "{e}");
            }
            other => panic!("expected a parameter mismatch on {flag}, got: {other}"),
        }
        assert!(!e.to_string().contains("architecture or masks"), "{e}");
    }
}

#[test]
fn a_different_ring_or_backend_is_named_at_the_handshake() {
    let name = "snl-resnet18-w8-c10";
    let base = lowered(name, BnPath::Clean, Ring::default());
    let dealer = |n: &Arc<FixedNetwork>| Dealer::new(n.clone());

    for (ring, flag) in [
        (Ring::new(64, 16).unwrap(), "--frac"),
        (Ring::new(48, 12).unwrap(), "--ell"),
    ] {
        let other = lowered(name, BnPath::Clean, ring);
        let r = sessions(
            base.clone(),
            Box::new(dealer(&base)),
            other.clone(),
            Box::new(dealer(&other)),
        );
        assert_param_mismatch(r, flag);
    }

    let he = pibench::protocol::he::HeClient::new(base.clone()).unwrap();
    let r = sessions(
        base.clone(),
        Box::new(dealer(&base)),
        base.clone(),
        Box::new(he),
    );
    assert_param_mismatch(r, "--offline");
}

#[test]
fn a_different_garbling_scheme_or_ot_is_named_at_the_handshake() {
    let base = lowered("snl-resnet18-w8-c10", BnPath::Clean, Ring::default());
    let dealer = || Box::new(Dealer::new(base.clone()));
    let ours = GcOptions {
        garbling: Scheme::ThreeHalves,
        ot: OtKind::SoftSpoken(4),
    };
    for (theirs, flag) in [
        (
            GcOptions {
                garbling: Scheme::HalfGates,
                ..ours
            },
            "--garbling",
        ),
        (
            GcOptions {
                ot: OtKind::SoftSpoken(8),
                ..ours
            },
            "--ot",
        ),
        (
            GcOptions {
                ot: OtKind::Iknp,
                ..ours
            },
            "--ot",
        ),
    ] {
        let r = sessions_with(base.clone(), dealer(), ours, base.clone(), dealer(), theirs);
        assert_param_mismatch(r, flag);
    }
}

#[test]
fn a_different_batch_norm_path_is_caught_at_the_handshake() {
    let name = "rlnet-resnet18-w8-c10";
    let clean = lowered(name, BnPath::Clean, Ring::default());
    let adv = lowered(name, BnPath::Adv, Ring::default());
    // Weights are not fingerprinted, but the path is: it changes what the server computes.
    assert_ne!(
        fingerprint(&clean, Backend::Dealer, GcOptions::RECOMMENDED),
        fingerprint(&adv, Backend::Dealer, GcOptions::RECOMMENDED)
    );
    let r = sessions(
        clean.clone(),
        Box::new(Dealer::new(clean)),
        adv.clone(),
        Box::new(Dealer::new(adv)),
    );
    assert_param_mismatch(r, "--bn");
}

#[test]
fn a_second_client_is_told_the_server_is_busy() {
    let (mut server, addr) = spawn_serve(&fixture("snl-resnet18-w8-c10"), &[]);
    // The first client connects and stays silent: the server accepts it (connections are
    // accepted in arrival order) and is busy with it from then on.
    let first = pibench::net::tcp::connect(addr.as_str(), Duration::from_secs(20)).unwrap();
    let mut ch = pibench::net::tcp::connect(addr.as_str(), Duration::from_secs(20)).unwrap();
    let fp = pibench::net::Fingerprint([0; 32]);
    let second = pibench::net::handshake(&mut ch, Role::Client, PROTOCOL_VERSION, &fp);
    drop(first);
    let _ = server.kill();
    let _ = server.wait();
    let e = second.unwrap_err();
    assert!(
        matches!(e, HandshakeError::ServerBusy),
        "expected `server busy`, got: {e}"
    );
    assert!(e.to_string().contains("busy"), "{e}");
}

/// A ReLU site's client against a server that runs silent OT's setup, reads the client's
/// choice corrections (which come first since protocol version 6) and then sends `sent`
/// bytes of what should be the first chunk's tree message before it hangs up: the client gets
/// a channel error, never a panic or a hang, wherever the stream stops.
fn site_client_against_a_server_that_stops(sent: usize) -> ProtocolError {
    use pibench::crypto::ot::{ChoiceBits, OtReceiver, OtSender};
    use pibench::crypto::prg::Prg;
    use pibench::gc::Delta;
    use pibench::protocol::site::{ClientSite, ReluEngine};
    let engine = ReluEngine::new(Ring::default(), 12, Scheme::ThreeHalves).unwrap();
    let n = 1000;
    let (mut a, mut b) = mem_pair(Duration::from_secs(20));
    let engine_wires = engine.client_wires();
    let pattern = pibench::crypto::ot::ChoicePattern::ALL_CHOSEN;
    let server = std::thread::spawn(move || {
        let mut rng = Prg::from_entropy();
        let delta = Delta::random(&mut rng);
        let mut cot = OtSender::setup(&mut b, OtKind::Silent, delta.block(), &mut rng).unwrap();
        let call = cot
            .send_deferred(&mut b, pattern, n * engine_wires)
            .unwrap();
        drop(call);
        b.send(&vec![0x5a; sent]).unwrap();
        b.flush().unwrap();
    });
    let mut rng = Prg::from_entropy();
    let mut cot = OtReceiver::setup(&mut a, OtKind::Silent, &mut rng).unwrap();
    let c = vec![3u64; n];
    let got = ClientSite::offline(
        &mut a,
        &engine,
        &c,
        0,
        &mut cot,
        &mut rng,
        &mut ChoiceBits::new(),
    );
    server.join().unwrap();
    match got {
        Ok(_) => panic!("a site completed against a server that sent {sent} bytes"),
        Err(e) => e,
    }
}

#[test]
fn a_server_that_stops_inside_a_relu_site_is_a_channel_error() {
    // Nothing after the corrections; half a tree message (43,008 bytes for a chunk of 2^16
    // OTs); a whole one and the start of the tables.
    for sent in [0, 20_000, 43_008 + 100] {
        let e = site_client_against_a_server_that_stops(sent);
        assert!(
            matches!(
                e,
                ProtocolError::Net(_) | ProtocolError::Ot(pibench::crypto::ot::OtError::Net(_))
            ),
            "sent {sent}: {e}"
        );
    }
}
