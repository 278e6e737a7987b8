//! Base oblivious transfer: n 1-out-of-2 OTs of [`Block`]s, the "simplest OT" of Chou and
//! Orlandi (LATINCRYPT 2015, eprint 2015/267) on the Ristretto group, semi-honest.
//!
//! Protocol (G the Ristretto base point, H = SHA-256 truncated to 128 bits):
//! 1. the sender draws a scalar `a` and sends `A = aG`;
//! 2. for OT `i` the receiver with choice `c` draws `b` and sends `B = bG + cA`;
//! 3. the sender derives `k0 = H(i, A, B, aB)`, `k1 = H(i, A, B, a(B − A))` and sends
//!    `m0 ⊕ k0`, `m1 ⊕ k1`; the receiver's key `H(i, A, B, bA)` equals `k_c`.
//!
//! Hashing the index and both points into every key binds each key to its OT (the fix to the
//! original paper's key derivation that emp-ot and swanky also apply). Every received point is
//! decompressed, which validates its encoding; failures are errors, never panics.
//!
//! Constant time. The receiver never branches on its choice: it computes both candidates for
//! `B` and picks the encoding with a mask. Both sides compress their points in batches through
//! `double_and_compress_batch` (one field inversion for the lot), which is why the scalars
//! here are halved first: compressing `2·(x/2)P` gives the encoding of `xP`.
//! The point products are independent and spread over the cores (rayon), and the receiver
//! computes its shared points `bA` after sending its `B`s, while the sender computes its own.

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoBasepointTable};
use curve25519_dalek::{RistrettoPoint, Scalar};
use rand_core::{CryptoRng, RngCore};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::OtError;
use crate::crypto::{Block, BlockChannel};
use crate::net::{Channel, ChannelExt};

/// Domain separator of the key derivation.
const DOMAIN: &[u8] = b"pibench/base-ot/chou-orlandi/v1";

/// The key of OT `index`: SHA-256 over the domain, the index and the three point encodings,
/// truncated to a block.
fn derive_key(index: usize, a: &[u8; 32], b: &[u8; 32], shared: &[u8; 32]) -> Block {
    let digest = Sha256::new()
        .chain_update(DOMAIN)
        .chain_update((index as u64).to_le_bytes())
        .chain_update(a)
        .chain_update(b)
        .chain_update(shared)
        .finalize();
    Block::from_bytes(digest[..16].try_into().expect("SHA-256 has 32 bytes"))
}

/// The multiplicative inverse of 2 modulo the group order.
fn half() -> Scalar {
    Scalar::from(2u64).invert()
}

fn decompress(bytes: [u8; 32], what: impl FnOnce() -> String) -> Result<RistrettoPoint, OtError> {
    CompressedRistretto(bytes)
        .decompress()
        .ok_or_else(|| OtError::InvalidPoint { what: what() })
}

/// Run `msgs.len()` OTs as the sender: the receiver learns `msgs[i].0` or `msgs[i].1` by its
/// `i`-th choice and nothing about the other.
///
/// One round trip plus one message: `A` (32 B) out, `n` and the `B`s (8 + 32n B) in, the masked
/// pairs (32n B) out. With no messages nothing is sent.
pub fn send<C: Channel + ?Sized, R: RngCore + CryptoRng>(
    ch: &mut C,
    msgs: &[(Block, Block)],
    rng: &mut R,
) -> Result<(), OtError> {
    let n = msgs.len();
    if n == 0 {
        return Ok(());
    }
    let a = Scalar::random(rng);
    let a_point = RistrettoPoint::mul_base(&a);
    let a_bytes = a_point.compress().to_bytes();
    ch.send(&a_bytes)?;
    ch.flush()?;

    let theirs = ch.recv_u64()?;
    if theirs != n as u64 {
        return Err(OtError::CountMismatch {
            protocol: "base OT",
            ours: n as u64,
            theirs,
        });
    }
    let mut b_bytes = vec![0u8; 32 * n];
    ch.recv(&mut b_bytes)?;

    let a_half = a * half();
    let a_half_a = a_point * a_half;
    // halves[2i] = (a/2)·B_i, halves[2i+1] = (a/2)·(B_i − A): doubled and compressed together.
    // The decompressions and products are independent: spread over the cores.
    let pairs = b_bytes
        .par_chunks_exact(32)
        .enumerate()
        .map(|(i, chunk)| {
            let b_point = decompress(chunk.try_into().expect("32 bytes"), || {
                format!("point B of OT {i}")
            })?;
            let u = b_point * a_half;
            Ok([u, u - a_half_a])
        })
        .collect::<Result<Vec<[RistrettoPoint; 2]>, OtError>>()?;
    let halves: Vec<RistrettoPoint> = pairs.into_iter().flatten().collect();
    let shared = RistrettoPoint::double_and_compress_batch(&halves);

    let mut out = Vec::with_capacity(2 * n);
    for (i, ((m0, m1), b)) in msgs.iter().zip(b_bytes.chunks_exact(32)).enumerate() {
        let b: &[u8; 32] = b.try_into().expect("32 bytes");
        out.push(*m0 ^ derive_key(i, &a_bytes, b, shared[2 * i].as_bytes()));
        out.push(*m1 ^ derive_key(i, &a_bytes, b, shared[2 * i + 1].as_bytes()));
    }
    ch.send_blocks(&out)?;
    ch.flush()?;
    Ok(())
}

/// Run `choices.len()` OTs as the receiver: returns `msgs[i].0` or `msgs[i].1` of the sender
/// as `choices[i]` is false or true.
pub fn receive<C: Channel + ?Sized, R: RngCore + CryptoRng>(
    ch: &mut C,
    choices: &[bool],
    rng: &mut R,
) -> Result<Vec<Block>, OtError> {
    let n = choices.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut a_bytes = [0u8; 32];
    ch.recv(&mut a_bytes)?;
    let a_point = decompress(a_bytes, || "point A".to_string())?;
    if a_point == RistrettoPoint::default() {
        // The identity would make B independent of the choice; no honest sender sends it.
        return Err(OtError::InvalidPoint {
            what: "point A (the identity)".to_string(),
        });
    }

    // B_i = 2·X_i + c_i·A with X_i = b_i·G: compress 2X_i and 2(X_i + A/2) in one batch and
    // keep one of the two encodings by mask. The receiver's secret scalar is 2b_i.
    let a_half = a_point * half();
    // The receiver's secrets: wiped on drop, on every return.
    let scalars: zeroize::Zeroizing<Vec<Scalar>> =
        zeroize::Zeroizing::new((0..n).map(|_| Scalar::random(rng)).collect());
    let candidates: Vec<RistrettoPoint> = scalars
        .par_iter()
        .flat_map_iter(|b| {
            let x = b * RISTRETTO_BASEPOINT_TABLE;
            [x, x + a_half]
        })
        .collect();
    let encodings = RistrettoPoint::double_and_compress_batch(&candidates);

    let mut b_bytes = vec![0u8; 32 * n];
    for (i, (dst, &c)) in b_bytes.chunks_exact_mut(32).zip(choices).enumerate() {
        let mask = 0u8.wrapping_sub(c as u8);
        let (e0, e1) = (encodings[2 * i].as_bytes(), encodings[2 * i + 1].as_bytes());
        for k in 0..32 {
            dst[k] = e0[k] ^ (mask & (e0[k] ^ e1[k]));
        }
    }
    ch.send_u64(n as u64)?;
    ch.send(&b_bytes)?;
    ch.flush()?;

    // The shared points, while the sender computes its own.
    let a_table = RistrettoBasepointTable::create(&a_point);
    let b_times_a: Vec<RistrettoPoint> = scalars.par_iter().map(|b| b * &a_table).collect();
    drop(scalars);
    // compress(2·(b_i·A)) = compress((2b_i)·A): the receiver's shared point.
    let shared = RistrettoPoint::double_and_compress_batch(&b_times_a);

    let mut masked = vec![Block::ZERO; 2 * n];
    ch.recv_blocks(&mut masked)?;
    let out = choices
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let b: &[u8; 32] = b_bytes[32 * i..32 * i + 32].try_into().expect("32 bytes");
            let (y0, y1) = (masked[2 * i], masked[2 * i + 1]);
            let y = y0 ^ (y0 ^ y1).select(c);
            y ^ derive_key(i, &a_bytes, b, shared[i].as_bytes())
        })
        .collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Prg;
    use crate::net::mem_pair;
    use std::time::Duration;

    fn run(choices: Vec<bool>) -> (Vec<(Block, Block)>, Vec<Block>) {
        let mut rng = Prg::from_entropy();
        let msgs: Vec<(Block, Block)> = (0..choices.len())
            .map(|_| (Block::random(&mut rng), Block::random(&mut rng)))
            .collect();
        let (mut a, mut b) = mem_pair(Duration::from_secs(10));
        let m = msgs.clone();
        let t = std::thread::spawn(move || send(&mut a, &m, &mut Prg::from_entropy()));
        let got = receive(&mut b, &choices, &mut Prg::from_entropy()).unwrap();
        t.join().unwrap().unwrap();
        (msgs, got)
    }

    #[test]
    fn receiver_gets_exactly_the_chosen_message() {
        let mut rng = Prg::from_entropy();
        for choices in [
            (0..128)
                .map(|_| rng.next_u32() & 1 == 1)
                .collect::<Vec<_>>(),
            vec![false; 37],
            vec![true; 37],
            vec![true],
        ] {
            let (msgs, got) = run(choices.clone());
            assert_eq!(got.len(), choices.len());
            for (i, ((m0, m1), g)) in msgs.iter().zip(&got).enumerate() {
                let (want, other) = if choices[i] { (m1, m0) } else { (m0, m1) };
                assert_eq!(g, want, "OT {i}");
                assert_ne!(g, other, "OT {i}");
            }
        }
    }

    #[test]
    fn zero_ots_send_nothing() {
        let (mut a, mut b) = mem_pair(Duration::from_millis(50));
        send(&mut a, &[], &mut Prg::from_entropy()).unwrap();
        assert!(receive(&mut b, &[], &mut Prg::from_entropy())
            .unwrap()
            .is_empty());
        // Nothing was queued: the peer times out rather than reading stray bytes.
        let mut byte = [0u8; 1];
        assert!(b.recv(&mut byte).is_err());
    }

    #[test]
    fn invalid_point_from_sender_is_an_error() {
        let (mut a, mut b) = mem_pair(Duration::from_secs(5));
        // 0xff.. is not a canonical field element, hence no Ristretto encoding.
        a.send(&[0xffu8; 32]).unwrap();
        a.flush().unwrap();
        let err = receive(&mut b, &[true, false], &mut Prg::from_entropy()).unwrap_err();
        assert!(matches!(err, OtError::InvalidPoint { .. }), "{err}");
    }

    #[test]
    fn identity_a_is_rejected() {
        let (mut a, mut b) = mem_pair(Duration::from_secs(5));
        a.send(RistrettoPoint::default().compress().as_bytes())
            .unwrap();
        a.flush().unwrap();
        let err = receive(&mut b, &[true], &mut Prg::from_entropy()).unwrap_err();
        assert!(matches!(err, OtError::InvalidPoint { .. }), "{err}");
    }

    #[test]
    fn invalid_point_from_receiver_is_an_error() {
        let (mut a, mut b) = mem_pair(Duration::from_secs(5));
        let t = std::thread::spawn(move || {
            let mut rng = Prg::from_entropy();
            send(
                &mut a,
                &[(Block::random(&mut rng), Block::ZERO); 2],
                &mut rng,
            )
        });
        let mut a_bytes = [0u8; 32];
        b.recv(&mut a_bytes).unwrap();
        b.send_u64(2).unwrap();
        b.send(RistrettoPoint::default().compress().as_bytes())
            .unwrap();
        b.send(&[0xffu8; 32]).unwrap();
        b.flush().unwrap();
        let err = t.join().unwrap().unwrap_err();
        match err {
            OtError::InvalidPoint { what } => assert!(what.contains("OT 1"), "{what}"),
            e => panic!("unexpected {e}"),
        }
    }

    #[test]
    fn count_mismatch_is_an_error() {
        let (mut a, mut b) = mem_pair(Duration::from_secs(5));
        let t = std::thread::spawn(move || {
            send(
                &mut a,
                &[(Block::ZERO, Block::ONES); 3],
                &mut Prg::from_entropy(),
            )
        });
        // The receiver runs 2 OTs; it then waits for an answer that never comes.
        let r = receive(&mut b, &[true, true], &mut Prg::from_entropy());
        let err = t.join().unwrap().unwrap_err();
        assert!(
            matches!(
                err,
                OtError::CountMismatch {
                    ours: 3,
                    theirs: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(r.is_err());
    }
}
