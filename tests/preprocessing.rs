//! The model card's input preprocessing through a real bundle: written, loaded, validated
//! against the graph's input channels, and absent in older bundles (which load as [0, 1]).

mod cli_support;

use cli_support::{bin, small_card};
use pibench::model::bundle::KEY_CARD;
use pibench::model::raw::RawGraph;
use pibench::model::{BnPath, Bundle, BundleWriter, ModelCard, ModelError, Preprocessing};
use serde_json::json;

/// input [2,2,2] → flatten → linear(3).
fn writer(pre: Option<Preprocessing>) -> BundleWriter {
    let graph: RawGraph = serde_json::from_value(json!({
        "input": {"name": "input", "shape": [2, 2, 2]},
        "output": "fc",
        "ops": [
            {"op": "flatten", "name": "flat", "input": "input"},
            {"op": "linear", "name": "fc", "input": "flat", "weight": "fc.weight", "bias": null}
        ]
    }))
    .unwrap();
    let card = ModelCard {
        preprocessing: pre,
        ..small_card("linear", "dense")
    };
    let mut w = BundleWriter::new(graph, card);
    w.f32("fc.weight", &[3, 8], &[0.5; 24]);
    w
}

#[test]
fn preprocessing_round_trips_through_a_bundle() {
    let pre = Preprocessing::parse("0.5,0.25/0.5,0.125").unwrap();
    let bytes = writer(Some(pre.clone())).to_bytes().unwrap();
    let bundle = Bundle::from_bytes(&bytes).unwrap();
    assert_eq!(bundle.card().preprocessing, Some(pre.clone()));
    let net = bundle.network(BnPath::Clean).unwrap();
    assert_eq!(net.card.preprocessing(), pre);
}

#[test]
fn older_bundles_without_it_load_as_unit_range() {
    let bundle = Bundle::from_bytes(&writer(None).to_bytes().unwrap()).unwrap();
    let card = bundle.card();
    assert!(card.preprocessing.is_none());
    assert!(card.preprocessing().is_identity());
    let warning = card.missing_preprocessing_warning().unwrap();
    assert!(
        warning.contains("[0, 1]") && warning.contains("--normalize"),
        "{warning}"
    );
}

#[test]
fn preprocessing_for_the_wrong_channel_count_is_refused_at_load() {
    let pre = Preprocessing::parse("cifar10").unwrap(); // 3 channels, the graph has 2
    let e = Bundle::from_bytes(&writer(Some(pre)).to_bytes().unwrap()).unwrap_err();
    match e {
        ModelError::InvalidMetadata { key, reason } => {
            assert_eq!(key, KEY_CARD);
            assert!(
                reason.contains("3 mean and 3 std values for 2 input channels"),
                "{reason}"
            );
        }
        other => panic!("unexpected error {other}"),
    }
    let half = Preprocessing {
        std: None,
        ..Preprocessing::parse("0.5,0.5/1,1").unwrap()
    };
    let e = Bundle::from_bytes(&writer(Some(half)).to_bytes().unwrap()).unwrap_err();
    assert!(e.to_string().contains("together"), "{e}");
}

#[test]
fn an_older_bundle_is_warned_about_once_per_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.safetensors");
    writer(None).write(&path).unwrap();
    // A sweep opens the bundle for every run.
    let out = bin()
        .arg("sweep")
        .arg(&path)
        .arg("--out")
        .arg(dir.path().join("out"))
        .args(["--inputs", "2", "--repeats", "2", "--emulate", "none"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("has no `preprocessing` record").count(),
        1,
        "{stderr}"
    );
}
