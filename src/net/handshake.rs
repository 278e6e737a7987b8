//! The first exchange of every connection: each side proves it speaks pibench, plays the other
//! role, runs the same protocol version and holds the same public model (architecture and masks,
//! summarised as a [`Fingerprint`]), with the same public parameters (named `key=value` pairs
//! such as the ring width, so that a mismatch names the parameter instead of only the digest).
//!
//! Wire format of the hello each side sends, 47 bytes and the parameters:
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | magic `PIBENCH\x01` |
//! | 8 | role: 0 client, 1 server; `0xB5` is a server turning the peer away (busy) |
//! | 9..13 | protocol version, `u32` little-endian |
//! | 13..45 | model fingerprint (SHA-256) |
//! | 45..47 | length `n` of the parameters, `u16` little-endian, at most [`MAX_PARAMS_LEN`] |
//! | 47..47+n | the parameters, UTF-8 `key=value` pairs separated by `;` |
//!
//! Both sides send their hello before reading the peer's, so the exchange costs one one-way
//! latency, and both see the same two hellos: on any mismatch both return the same kind of error.

use std::fmt;

use sha2::{Digest, Sha256};

use super::channel::{Channel, NetError, Phase};

/// The magic that opens every pibench connection.
pub const MAGIC: [u8; 8] = *b"PIBENCH\x01";

/// The length in bytes of a hello message without its parameters.
pub const HELLO_LEN: usize = 8 + 1 + 4 + 32 + 2;

/// The most bytes of parameters a hello may carry; a peer announcing more is refused before
/// anything is allocated.
pub const MAX_PARAMS_LEN: usize = 4096;

/// The role byte of a server that is busy with another client and turns this one away.
const BUSY: u8 = 0xB5;

/// The layer name under which the handshake's traffic is counted (in [`Phase::Setup`]).
pub const HANDSHAKE_LAYER: &str = "handshake";

/// Which party a side plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Holds the input, evaluates the garbled circuits, learns the logits.
    Client,
    /// Holds the weights, garbles.
    Server,
}

impl Role {
    fn to_byte(self) -> u8 {
        match self {
            Role::Client => 0,
            Role::Server => 1,
        }
    }

    fn from_byte(b: u8) -> Option<Role> {
        match b {
            0 => Some(Role::Client),
            1 => Some(Role::Server),
            _ => None,
        }
    }

    /// The other role.
    pub fn peer(self) -> Role {
        match self {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Client => "client",
            Role::Server => "server",
        })
    }
}

/// A 32-byte SHA-256 digest identifying what both parties must agree on (architecture, shapes,
/// masks, ring parameters — whatever the caller feeds in). Public data only: it is sent in clear.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(bytes).into())
    }

    /// SHA-256 over several parts, each preceded by its length as a `u64` little-endian, so that
    /// moving bytes from one part to the next changes the fingerprint.
    pub fn of_parts(parts: &[&[u8]]) -> Fingerprint {
        let mut h = Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p);
        }
        Fingerprint(h.finalize().into())
    }

    /// The first 8 bytes in hex: enough to tell two fingerprints apart in a message.
    pub fn short_hex(&self) -> String {
        hex(&self.0[..8])
    }

    /// All 32 bytes in hex.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.short_hex())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short_hex())
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(2 * bytes.len());
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Why a handshake failed: the peer is not the party we expected (another program, role,
/// protocol version or model), or the channel failed during the exchange.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The channel failed during the exchange: the peer disconnected or stalled.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The peer's first bytes are not a pibench hello.
    #[error("peer is not a pibench endpoint (first bytes {got}, expected {expected})", got = hex(got), expected = hex(&MAGIC))]
    BadMagic {
        /// The 8 bytes received instead of the magic.
        got: [u8; 8],
    },
    /// The peer's role byte is not a role.
    #[error("peer sent an unknown role byte {0:#04x}")]
    BadRole(u8),
    /// Both sides play the same role (two clients or two servers).
    #[error("both sides are {0}s: connect a client to a server")]
    SameRole(Role),
    /// The protocol versions differ.
    #[error("protocol version mismatch: we run version {ours}, the peer runs version {theirs}")]
    Version {
        /// Our version.
        ours: u32,
        /// The peer's version.
        theirs: u32,
    },
    /// The peer is a server busy with another client: it turned this connection away.
    #[error("the server is busy with another client; try again when its session has ended")]
    ServerBusy,
    /// A public parameter differs (the ring, the preprocessing backend, the batch-norm path...).
    #[error("the peer runs with {name} = {theirs}, this side with {name} = {ours}: start both with the same {name}")]
    Param {
        /// The parameter's name.
        name: String,
        /// Our value.
        ours: String,
        /// The peer's value (`(none)` when it sent no such parameter).
        theirs: String,
    },
    /// The peer's parameters are not a list of `key=value` pairs within the size limit.
    #[error("the peer's hello parameters are malformed: {0}")]
    BadParams(String),
    /// The model fingerprints differ: the peer runs another architecture or other masks.
    #[error("model fingerprint mismatch: ours is {ours}, the peer's is {theirs} (different architecture or masks)")]
    Fingerprint {
        /// Our fingerprint.
        ours: Fingerprint,
        /// The peer's fingerprint.
        theirs: Fingerprint,
    },
}

/// Named public parameters both sides must agree on, in a fixed order (e.g. `("ell", "64")`).
pub type Params = [(&'static str, String)];

/// The parameters as sent: `key=value` pairs joined by `;`.
fn encode_params(params: &Params) -> Vec<u8> {
    params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";")
        .into_bytes()
}

/// The hello of one side.
fn hello(role_byte: u8, version: u32, fingerprint: &Fingerprint, params: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8; HELLO_LEN];
    m[..8].copy_from_slice(&MAGIC);
    m[8] = role_byte;
    m[9..13].copy_from_slice(&version.to_le_bytes());
    m[13..45].copy_from_slice(&fingerprint.0);
    // Our own parameters are short; the peer checks the length it reads against the limit.
    m[45..47].copy_from_slice(&(params.len().min(MAX_PARAMS_LEN) as u16).to_le_bytes());
    m.extend_from_slice(&params[..params.len().min(MAX_PARAMS_LEN)]);
    m
}

/// The hello a busy server sends instead of its own before closing the connection.
pub(crate) fn busy_hello() -> Vec<u8> {
    hello(BUSY, 0, &Fingerprint([0; 32]), &[])
}

/// Check the fixed part of the peer's hello against ours. Checked in this order: magic, busy,
/// role, version, so the reported difference is the most basic one; the parameters and the
/// fingerprint are checked by [`check_params`] once the parameters have been read.
fn check(peer: &[u8; HELLO_LEN], role: Role, version: u32) -> Result<usize, HandshakeError> {
    let magic: [u8; 8] = peer[..8].try_into().expect("8 bytes");
    if magic != MAGIC {
        return Err(HandshakeError::BadMagic { got: magic });
    }
    if peer[8] == BUSY && role == Role::Client {
        return Err(HandshakeError::ServerBusy);
    }
    let peer_role = Role::from_byte(peer[8]).ok_or(HandshakeError::BadRole(peer[8]))?;
    if peer_role == role {
        return Err(HandshakeError::SameRole(role));
    }
    let theirs = u32::from_le_bytes(peer[9..13].try_into().expect("4 bytes"));
    if theirs != version {
        return Err(HandshakeError::Version {
            ours: version,
            theirs,
        });
    }
    let n = usize::from(u16::from_le_bytes([peer[45], peer[46]]));
    if n > MAX_PARAMS_LEN {
        return Err(HandshakeError::BadParams(format!(
            "{n} bytes announced, at most {MAX_PARAMS_LEN} allowed"
        )));
    }
    Ok(n)
}

/// Compare the peer's parameters with ours (each of ours by name, in our order), then the
/// fingerprints: a parameter that differs is named before the digest that summarises it.
fn check_params(
    peer: &[u8; HELLO_LEN],
    peer_params: &[u8],
    params: &Params,
    fingerprint: &Fingerprint,
) -> Result<(), HandshakeError> {
    let text = std::str::from_utf8(peer_params)
        .map_err(|_| HandshakeError::BadParams("not UTF-8".into()))?;
    let mut theirs = std::collections::HashMap::new();
    for pair in text.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| HandshakeError::BadParams(format!("`{pair}` is not key=value")))?;
        theirs.insert(k, v);
    }
    for (name, ours) in params {
        let t = theirs.get(name).copied().unwrap_or("(none)");
        if t != ours {
            return Err(HandshakeError::Param {
                name: (*name).to_string(),
                ours: ours.clone(),
                theirs: t.to_string(),
            });
        }
    }
    let theirs = Fingerprint(peer[13..45].try_into().expect("32 bytes"));
    if theirs != *fingerprint {
        return Err(HandshakeError::Fingerprint {
            ours: *fingerprint,
            theirs,
        });
    }
    Ok(())
}

/// Exchange hellos with the peer and check that it is a pibench endpoint of the other role with
/// the same protocol `version` and model `fingerprint`; [`handshake_with`] without parameters.
pub fn handshake<C: Channel + ?Sized>(
    ch: &mut C,
    role: Role,
    version: u32,
    fingerprint: &Fingerprint,
) -> Result<(), HandshakeError> {
    handshake_with(ch, role, version, &[], fingerprint)
}

/// Exchange hellos with the peer and check that it is a pibench endpoint of the other role with
/// the same protocol `version`, the same public `params` (each named in the error when it
/// differs) and the same model `fingerprint`.
///
/// Sets the channel's scope to ([`Phase::Setup`], [`HANDSHAKE_LAYER`]) so that its bytes are
/// counted and its errors located there; the caller sets the next scope. A peer that stalls or
/// disconnects gives the channel's `Timeout` / `Disconnected` ([`HandshakeError::Net`]); a
/// mismatch gives the same [`HandshakeError`] on both sides; a server busy with another client
/// gives [`HandshakeError::ServerBusy`].
pub fn handshake_with<C: Channel + ?Sized>(
    ch: &mut C,
    role: Role,
    version: u32,
    params: &Params,
    fingerprint: &Fingerprint,
) -> Result<(), HandshakeError> {
    ch.set_scope(Phase::Setup, Some(HANDSHAKE_LAYER));
    ch.send(&hello(
        role.to_byte(),
        version,
        fingerprint,
        &encode_params(params),
    ))?;
    ch.flush()?;
    let mut peer = [0u8; HELLO_LEN];
    // The magic first: a peer speaking another protocol is reported as such even if it sends
    // fewer bytes than a hello and then waits.
    ch.recv(&mut peer[..8])?;
    let magic: [u8; 8] = peer[..8].try_into().expect("8 bytes");
    if magic != MAGIC {
        return Err(HandshakeError::BadMagic { got: magic });
    }
    ch.recv(&mut peer[8..])?;
    let n = check(&peer, role, version)?;
    let mut peer_params = vec![0u8; n];
    ch.recv(&mut peer_params)?;
    check_params(&peer, &peer_params, params, fingerprint)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::channel::mem_pair;
    use std::time::Duration;

    fn fp(s: &str) -> Fingerprint {
        Fingerprint::of(s.as_bytes())
    }

    /// Run a handshake on both ends of an in-memory pair; results of (client, server).
    fn both(
        client: (Role, u32, Fingerprint),
        server: (Role, u32, Fingerprint),
    ) -> (Result<(), HandshakeError>, Result<(), HandshakeError>) {
        let (mut a, mut b) = mem_pair(Duration::from_secs(5));
        let t = std::thread::spawn(move || handshake(&mut b, server.0, server.1, &server.2));
        let ra = handshake(&mut a, client.0, client.1, &client.2);
        (ra, t.join().unwrap())
    }

    #[test]
    fn fingerprint_is_sha256() {
        // FIPS 180-2 test vector: SHA-256("abc").
        assert_eq!(
            fp("abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(fp("abc").short_hex(), "ba7816bf8f01cfea");
        assert_ne!(
            Fingerprint::of_parts(&[b"ab", b"c"]),
            Fingerprint::of_parts(&[b"a", b"bc"])
        );
    }

    #[test]
    fn matching_peers_pass() {
        let (a, b) = both((Role::Client, 3, fp("m")), (Role::Server, 3, fp("m")));
        a.unwrap();
        b.unwrap();
    }

    #[test]
    fn version_mismatch_fails_on_both_sides() {
        let (a, b) = both((Role::Client, 3, fp("m")), (Role::Server, 4, fp("m")));
        for (r, ours, theirs) in [(a, 3, 4), (b, 4, 3)] {
            let e = r.unwrap_err();
            match &e {
                HandshakeError::Version { ours: o, theirs: t } => {
                    assert_eq!((*o, *t), (ours, theirs));
                }
                other => panic!("unexpected {other}"),
            }
            let msg = e.to_string();
            assert!(
                msg.contains("version") && msg.contains('3') && msg.contains('4'),
                "{msg}"
            );
        }
    }

    #[test]
    fn fingerprint_mismatch_fails_on_both_sides_with_short_hex() {
        let (f1, f2) = (fp("resnet18 masks A"), fp("resnet18 masks B"));
        let (a, b) = both((Role::Client, 1, f1), (Role::Server, 1, f2));
        for r in [a, b] {
            let e = r.unwrap_err();
            assert!(matches!(e, HandshakeError::Fingerprint { .. }), "{e}");
            let msg = e.to_string();
            assert!(
                msg.contains(&f1.short_hex()) && msg.contains(&f2.short_hex()),
                "{msg}"
            );
        }
    }

    #[test]
    fn same_role_is_rejected() {
        let (a, b) = both((Role::Client, 1, fp("m")), (Role::Client, 1, fp("m")));
        for r in [a, b] {
            assert!(matches!(r, Err(HandshakeError::SameRole(Role::Client))));
        }
    }

    #[test]
    fn garbage_magic_is_rejected() {
        let (mut a, mut b) = mem_pair(Duration::from_secs(5));
        let t = std::thread::spawn(move || {
            // An HTTP client, say; it then waits for an answer.
            b.send(b"GET / HTTP/1.1\r\n").unwrap();
            b.flush().unwrap();
            let mut hello = [0u8; HELLO_LEN];
            b.recv(&mut hello).unwrap();
            hello
        });
        let e = handshake(&mut a, Role::Server, 1, &fp("m")).unwrap_err();
        assert!(matches!(e, HandshakeError::BadMagic { .. }), "{e}");
        assert!(e.to_string().contains("not a pibench endpoint"), "{e}");
        // Our own hello went out intact.
        let sent = t.join().unwrap();
        assert_eq!(&sent[..8], &MAGIC);
    }

    #[test]
    fn bad_role_byte_is_rejected() {
        let mut peer = [0u8; HELLO_LEN];
        peer.copy_from_slice(&hello(1, 1, &fp("m"), &[]));
        peer[8] = 9;
        let e = check(&peer, Role::Client, 1).unwrap_err();
        assert!(matches!(e, HandshakeError::BadRole(9)));
    }

    /// Both ends with their own parameters; results of (client, server).
    fn both_with(
        client: Vec<(&'static str, String)>,
        server: Vec<(&'static str, String)>,
    ) -> (Result<(), HandshakeError>, Result<(), HandshakeError>) {
        let (mut a, mut b) = mem_pair(Duration::from_secs(5));
        let t = std::thread::spawn(move || {
            handshake_with(&mut b, Role::Server, 3, &server, &fp("same digest"))
        });
        let ra = handshake_with(&mut a, Role::Client, 3, &client, &fp("same digest"));
        (ra, t.join().unwrap())
    }

    #[test]
    fn a_differing_parameter_is_named_on_both_sides() {
        let ours = vec![("offline", "he".to_string()), ("ell", "64".to_string())];
        let theirs = vec![("offline", "he".to_string()), ("ell", "32".to_string())];
        let (a, b) = both_with(ours, theirs);
        for (r, o, t) in [(a, "64", "32"), (b, "32", "64")] {
            let e = r.unwrap_err();
            match &e {
                HandshakeError::Param { name, ours, theirs } => {
                    assert_eq!(
                        (name.as_str(), ours.as_str(), theirs.as_str()),
                        ("ell", o, t)
                    );
                }
                other => panic!("unexpected {other}"),
            }
            assert!(e.to_string().contains("ell = 32") && e.to_string().contains("ell = 64"));
        }
        let (a, b) = both_with(
            vec![("offline", "he".to_string())],
            vec![("offline", "he".to_string())],
        );
        a.unwrap();
        b.unwrap();
    }

    #[test]
    fn oversized_or_malformed_parameters_are_refused() {
        let mut peer = [0u8; HELLO_LEN];
        peer.copy_from_slice(&hello(1, 1, &fp("m"), &[]));
        peer[45..47].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(matches!(
            check(&peer, Role::Client, 1),
            Err(HandshakeError::BadParams(_))
        ));
        let e =
            check_params(&peer, b"no equals sign", &[("ell", "64".into())], &fp("m")).unwrap_err();
        assert!(matches!(e, HandshakeError::BadParams(_)), "{e}");
        let e = check_params(&peer, &[0xff, 0xfe], &[], &fp("m")).unwrap_err();
        assert!(matches!(e, HandshakeError::BadParams(_)), "{e}");
    }

    #[test]
    fn a_busy_server_is_reported_as_busy() {
        let (mut a, mut b) = mem_pair(Duration::from_secs(5));
        let t = std::thread::spawn(move || {
            b.send(&busy_hello()).unwrap();
            b.flush().unwrap();
            b
        });
        let e = handshake(&mut a, Role::Client, 1, &fp("m")).unwrap_err();
        let _b = t.join().unwrap();
        assert!(matches!(e, HandshakeError::ServerBusy), "{e}");
        assert!(e.to_string().contains("busy"), "{e}");
    }

    #[test]
    fn silent_peer_times_out_in_setup_scope() {
        let (mut a, _b) = mem_pair(Duration::from_millis(50));
        let e = handshake(&mut a, Role::Client, 1, &fp("m")).unwrap_err();
        assert!(matches!(e, HandshakeError::Net(NetError::Timeout { .. })));
        assert!(
            e.to_string().contains("setup phase, layer handshake"),
            "{e}"
        );
    }

    #[test]
    fn debug_shows_short_hex_only() {
        let f = fp("abc");
        assert_eq!(format!("{f:?}"), "Fingerprint(ba7816bf8f01cfea)");
    }
}
