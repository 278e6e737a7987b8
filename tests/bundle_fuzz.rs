//! No input makes loading panic: valid small bundles truncated, bit-flipped, or with their JSON
//! metadata corrupted (text edits, and numbers replaced by anything up to 2^64) must give `Ok`
//! or `Err`, never a panic, a hang or a huge allocation.

use pibench::model::arch::{ArchSpec, Dataset, Layout};
use pibench::model::bundle::{KEY_CARD, KEY_GRAPH};
use pibench::model::{generate, Allocation, BnPath, Bundle, BundleWriter, GenSpec};
use proptest::prelude::*;
use std::sync::OnceLock;

/// Two bases: a narrow synthetic RLNet ResNet18 (dual BN, masks, seeded weights) and the same
/// graph with every weight stored (so weight decoding is exercised too).
fn bases() -> &'static [BundleWriter; 2] {
    static BASES: OnceLock<[BundleWriter; 2]> = OnceLock::new();
    BASES.get_or_init(|| {
        let mut spec = GenSpec::new(
            ArchSpec {
                layout: Layout::RlnetDualBn,
                dataset: Dataset::Cifar10,
                width: 2,
            },
            Allocation::Uniform(0.2),
            9,
        );
        spec.calibration_images = 1;
        let synthetic = generate(&spec).unwrap();
        let bundle = Bundle::from_bytes(&synthetic.to_bytes().unwrap()).unwrap();
        let net = bundle.network_unfolded(BnPath::Clean).unwrap();
        let mut stored = synthetic.clone();
        stored.metadata_override("pibench.synthetic", None);
        for l in &net.layers {
            match &l.op {
                pibench::model::Op::Conv2d(c) => {
                    let dims = [c.out_channels, c.in_channels, c.kernel.0, c.kernel.1];
                    stored.f32(&format!("{}.weight", l.name), &dims, &c.weight);
                }
                pibench::model::Op::Linear(li) => {
                    stored.f32(
                        "linear.weight",
                        &[li.out_features, li.in_features],
                        &li.weight,
                    );
                    stored.f32("linear.bias", &[li.out_features], &li.bias);
                }
                _ => {}
            }
        }
        [synthetic, stored]
    })
}

fn base_bytes() -> &'static [Vec<u8>; 2] {
    static BYTES: OnceLock<[Vec<u8>; 2]> = OnceLock::new();
    BYTES.get_or_init(|| {
        let [a, b] = bases();
        [a.to_bytes().unwrap(), b.to_bytes().unwrap()]
    })
}

fn header_len(bytes: &[u8]) -> usize {
    u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize
}

/// Loads on both paths; the point is that this returns at all.
fn exercise(bytes: &[u8]) -> bool {
    match Bundle::from_bytes(bytes) {
        Ok(b) => {
            let clean = b.network(BnPath::Clean).is_ok();
            // A single-BN model has no adv path and refuses it.
            let adv = b.network(BnPath::Adv).is_ok() || !b.has_dual_bn();
            clean && adv
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            false
        }
    }
}

#[test]
fn the_bases_are_valid() {
    for bytes in base_bytes() {
        assert!(exercise(bytes));
    }
}

/// Every number in a JSON value, by path, so one can be replaced.
fn number_slots(v: &serde_json::Value, out: &mut Vec<Vec<String>>, path: &mut Vec<String>) {
    match v {
        serde_json::Value::Number(_) => out.push(path.clone()),
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                path.push(i.to_string());
                number_slots(x, out, path);
                path.pop();
            }
        }
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                path.push(k.clone());
                number_slots(x, out, path);
                path.pop();
            }
        }
        _ => {}
    }
}

fn slot<'a>(v: &'a mut serde_json::Value, path: &[String]) -> &'a mut serde_json::Value {
    path.iter().fold(v, |v, k| match v {
        serde_json::Value::Array(a) => &mut a[k.parse::<usize>().unwrap()],
        other => &mut other[k.as_str()],
    })
}

fn interesting_number() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        (0u64..70).prop_map(serde_json::Value::from),
        (0u32..64).prop_map(|k| serde_json::Value::from(1u64 << k)),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        (-1e6f64..1e6).prop_map(serde_json::Value::from),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn truncation_never_panics(which in 0usize..2, frac in 0.0f64..1.0) {
        let bytes = &base_bytes()[which];
        let cut = (frac * bytes.len() as f64) as usize;
        prop_assert!(!exercise(&bytes[..cut]));
    }

    #[test]
    fn byte_flips_never_panic(
        which in 0usize..2,
        in_header in any::<bool>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..8),
    ) {
        let mut bytes = base_bytes()[which].clone();
        let n = header_len(&bytes);
        for (i, x) in flips {
            let at = if in_header { 8 + i.index(n) } else { i.index(bytes.len()) };
            bytes[at] ^= x;
        }
        exercise(&bytes);
    }

    #[test]
    fn json_text_edits_never_panic(
        which in 0usize..2,
        graph in any::<bool>(),
        at in any::<prop::sample::Index>(),
        delete in 0usize..40,
        insert in "[ -~]{0,12}",
    ) {
        let w = &bases()[which];
        let meta = w.metadata().unwrap();
        let key = if graph { KEY_GRAPH } else { KEY_CARD };
        let text = &meta[key];
        let start = at.index(text.len());
        let end = (start + delete).min(text.len());
        let edited = format!("{}{}{}", &text[..start], insert, &text[end..]);
        let mut w = w.clone();
        w.metadata_override(key, Some(&edited));
        exercise(&w.to_bytes().unwrap());
    }

    #[test]
    fn json_numbers_replaced_never_panic_or_allocate_wildly(
        which in 0usize..2,
        graph in any::<bool>(),
        pick in any::<prop::sample::Index>(),
        value in interesting_number(),
    ) {
        let w = &bases()[which];
        let meta = w.metadata().unwrap();
        let key = if graph { KEY_GRAPH } else { KEY_CARD };
        let mut json: serde_json::Value = serde_json::from_str(&meta[key]).unwrap();
        let mut slots = Vec::new();
        number_slots(&json, &mut slots, &mut Vec::new());
        let path = &slots[pick.index(slots.len())];
        *slot(&mut json, path) = value;
        let mut w = w.clone();
        w.metadata_override(key, Some(&json.to_string()));
        exercise(&w.to_bytes().unwrap());
    }
}
