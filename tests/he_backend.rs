//! The `he` preprocessing backend end to end: a committed fixture through `run_network` with
//! `Backend::He` gives the oracle's logits.

use std::path::Path;
use std::time::Duration;

use pibench::bench::run::{load_input, run_network, InputSpec, RunOptions};
use pibench::model::{BnPath, Bundle};
use pibench::protocol::prepro::Backend;

#[test]
fn he_backend_matches_the_oracle_on_a_fixture() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/rlnet-wrn16-2-b4-c10.safetensors");
    let net = Bundle::open(&path).unwrap().network(BnPath::Clean).unwrap();
    let mut o = RunOptions::new(&path);
    o.timeout = Duration::from_secs(120);
    o.links = vec![];
    o.backend = Backend::He;
    let input = load_input(&InputSpec::Random { seed: 3 }, &net).unwrap();
    let r = run_network(&net, &input, &o).unwrap();
    assert!(r.correct, "he backend result differs from the oracle");
    // The preprocessing now talks: the offline phase carries the ciphertexts.
    assert!(r.offline.bytes_client_to_server > 0);
}

#[test]
fn he_is_a_known_backend() {
    assert_eq!("he".parse::<Backend>(), Ok(Backend::He));
    assert!("ckks".parse::<Backend>().is_err());
}
