//! The trained digits-32 bundles (`models/digits-*.safetensors`, made by `tools/rlnet`, see its
//! README): real models whose cards say `digits-32`, an all-ReLU teacher plus RLNet and SeNet at
//! the same budgets, and pibench's own f32 inference on the committed test split
//! (`data/digits32/test_batch.bin`, CIFAR-10 binary) reproduces the clean accuracy that training
//! reported in each card, through `BN_c` for dual-BN models.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use pibench::model::{BnPath, Bundle};
use pibench::plain::{f32::argmax, forward_f32};

/// One CIFAR-10 binary record: a label byte, then 32×32 bytes of R, G and B.
const RECORD: usize = 1 + 3 * 32 * 32;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// (pixels/255 per image, labels) of the committed test split.
fn test_split() -> (Vec<Vec<f32>>, Vec<usize>) {
    let path = root().join("data/digits32/test_batch.bin");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        !bytes.is_empty() && bytes.len().is_multiple_of(RECORD),
        "{}: {} bytes is not a whole number of CIFAR records",
        path.display(),
        bytes.len()
    );
    bytes
        .chunks_exact(RECORD)
        .map(|r| {
            let x = r[1..].iter().map(|&b| f32::from(b) / 255.0).collect();
            (x, usize::from(r[0]))
        })
        .unzip()
}

fn digits_bundles() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("models"))
        .expect("models/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("digits-") && name.ends_with(".safetensors")
        })
        .collect();
    v.sort();
    v
}

#[test]
fn digits_bundles_reproduce_their_reported_clean_accuracy() {
    let (images, labels) = test_split();
    assert_eq!(images.len(), 500, "the digits-32 test split has 500 images");
    let bundles = digits_bundles();
    let mut budgets: [BTreeSet<u64>; 2] = Default::default();
    let mut teachers = 0;
    for path in &bundles {
        let bundle = Bundle::open(path).unwrap();
        let card = bundle.card().clone();
        let name = path.display();
        assert_eq!(card.dataset, "digits-32", "{name}");
        assert!(!card.synthetic, "{name}: trained weights, not synthetic");
        assert_eq!(card.input_shape, vec![3, 32, 32], "{name}");
        let budget = card.budget.expect("budget in the card");
        match card.method.as_str() {
            "dense" => {
                teachers += 1;
                assert_eq!(Some(budget), card.total_relus, "{name}: all-ReLU");
            }
            "rlnet" => {
                assert!(bundle.has_dual_bn(), "{name}: RLNet models have dual BN");
                budgets[0].insert(budget);
            }
            "senet" => {
                assert!(!bundle.has_dual_bn(), "{name}: SeNet models have one BN");
                budgets[1].insert(budget);
            }
            other => panic!("{name}: unexpected method {other}"),
        }
        let acc = card.accuracy.as_ref().expect("accuracy in the card");
        let reported = acc.clean.expect("clean accuracy in the card");
        assert!(
            acc.adv.is_some() && acc.attack.is_some(),
            "{name}: PGD accuracy and its attack"
        );

        let net = bundle.network(BnPath::Clean).unwrap();
        let correct = images
            .iter()
            .zip(&labels)
            .filter(|(x, &y)| argmax(&forward_f32(&net, x).unwrap()) == y)
            .count();
        let measured = 100.0 * correct as f64 / images.len() as f64;
        println!("{name}: clean accuracy {measured:.1} % (training reported {reported:.1} %)");
        // PyTorch's and pibench's f32 sums round differently: allow two borderline images.
        assert!(
            (measured - reported).abs() <= 0.4 + 1e-9,
            "{name}: pibench f32 gives {measured} %, the card says {reported} %"
        );
    }
    assert_eq!(teachers, 1, "one all-ReLU teacher");
    assert_eq!(budgets[0].len(), 3, "RLNet at three budgets");
    assert_eq!(budgets[0], budgets[1], "SeNet at RLNet's budgets");
}
