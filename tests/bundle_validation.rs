//! Every way a bundle can be wrong gets its own clear `ModelError`, naming the op, tensor or
//! metadata entry at fault; and the valid tiny bundle loads with the documented semantics
//! (batch-norm folding, dual-BN path choice, zero bias).

use std::collections::HashMap;

use pibench::model::bundle::{KEY_CARD, KEY_FORMAT, KEY_GRAPH, KEY_SYNTHETIC};
use pibench::model::raw::{RawConv2d, RawGraph, RawOp};
use pibench::model::{BnPath, Bundle, BundleWriter, ModelCard, ModelError, Network, Op, ValueId};
use safetensors::Dtype;
use serde_json::json;

const EPS: f64 = 1e-5;

/// Conv weight of the tiny bundle: `[3, 2, 3, 3]`.
fn conv1_weight() -> Vec<f32> {
    (0..54).map(|i| (i as f32 - 27.0) / 20.0).collect()
}

/// Mask of site 0 (`[3, 4, 4]`): keeps every third element.
fn mask0() -> Vec<u8> {
    (0..48).map(|i| u8::from(i % 3 == 0)).collect()
}

fn graph_json() -> serde_json::Value {
    let bn = |p: &str| {
        json!({"weight": format!("{p}.weight"), "bias": format!("{p}.bias"),
               "running_mean": format!("{p}.running_mean"), "running_var": format!("{p}.running_var")})
    };
    json!({
        "input": {"name": "input", "shape": [2, 4, 4]},
        "output": "fc",
        "ops": [
            {"op": "conv2d", "name": "conv1", "input": "input", "weight": "conv1.weight",
             "bias": null, "stride": 1, "padding": 1},
            {"op": "dual_batchnorm", "name": "bn1", "input": "conv1", "eps": EPS,
             "clean": bn("bn1.BN_c"), "adv": bn("bn1.BN_a")},
            {"op": "relu", "name": "relu1", "input": "bn1", "mask": "mask.0"},
            {"op": "conv2d", "name": "conv2", "input": "relu1", "weight": "conv2.weight",
             "bias": "conv2.bias", "stride": 1, "padding": 0},
            {"op": "batchnorm", "name": "bn2", "input": "conv2", "eps": EPS,
             "weight": "bn2.weight", "bias": "bn2.bias",
             "running_mean": "bn2.running_mean", "running_var": "bn2.running_var"},
            {"op": "add", "name": "add", "inputs": ["relu1", "bn2"]},
            {"op": "relu", "name": "relu2", "input": "add", "mask": null},
            {"op": "avgpool", "name": "pool", "input": "relu2", "global": true},
            {"op": "flatten", "name": "flat", "input": "pool"},
            {"op": "linear", "name": "fc", "input": "flat", "weight": "fc.weight", "bias": "fc.bias"}
        ]
    })
}

fn card() -> ModelCard {
    ModelCard {
        name: Some("tiny".into()),
        architecture: "tiny".into(),
        dataset: "test".into(),
        input_shape: vec![2, 4, 4],
        classes: 5,
        method: "rlnet".into(),
        budget: Some(16 + 48),
        total_relus: Some(96),
        ..ModelCard::default()
    }
}

/// γ, β, μ, σ² of one batch norm, distinct per prefix.
fn bn_params(prefix: &str, salt: f32) -> [(String, Vec<f32>); 4] {
    [
        (format!("{prefix}.weight"), vec![1.0 + salt, 0.5, 2.0]),
        (format!("{prefix}.bias"), vec![0.1, -0.2 * salt, 0.3]),
        (format!("{prefix}.running_mean"), vec![0.05, salt, -0.5]),
        (format!("{prefix}.running_var"), vec![1.5, 0.25, 4.0 + salt]),
    ]
}

/// The valid tiny bundle: conv-dualBN-masked ReLU-conv(bias)-BN-add-ReLU-pool-flatten-linear.
fn tiny() -> BundleWriter {
    let graph: RawGraph = serde_json::from_value(graph_json()).unwrap();
    let mut w = BundleWriter::new(graph, card());
    w.f32("conv1.weight", &[3, 2, 3, 3], &conv1_weight());
    for (p, salt) in [("bn1.BN_c", 0.0), ("bn1.BN_a", 0.7), ("bn2", 0.3)] {
        for (name, v) in bn_params(p, salt) {
            w.f32(&name, &[3], &v);
        }
    }
    w.f32(
        "conv2.weight",
        &[3, 3, 1, 1],
        &[0.5, -0.25, 0.125, 1.0, 0.0, -1.0, 0.3, 0.3, 0.3],
    );
    w.f32("conv2.bias", &[3], &[0.01, 0.02, 0.03]);
    w.f32(
        "fc.weight",
        &[5, 3],
        &(0..15).map(|i| i as f32 / 10.0).collect::<Vec<_>>(),
    );
    w.f32("fc.bias", &[5], &[0.0, 1.0, 2.0, 3.0, 4.0]);
    w.u8("mask.0", &[3, 4, 4], &mask0());
    w
}

fn load(w: &BundleWriter) -> Result<Network, ModelError> {
    Bundle::from_bytes(&w.to_bytes().unwrap())?.network(BnPath::Clean)
}

fn set_graph(w: &mut BundleWriter, graph: serde_json::Value) {
    *w.graph_mut() = serde_json::from_value(graph).unwrap();
}

// ---------------------------------------------------------------- the valid bundle

#[test]
fn the_tiny_bundle_loads_with_folding_and_sites() {
    let net = load(&tiny()).unwrap();
    assert!(net.dual_bn);
    assert_eq!(net.sites().len(), 2);
    assert_eq!(net.kept_relus(), 64);
    assert_eq!(net.total_relus(), 96);
    // Both batch norms fold: conv1, relu1, conv2, add, relu2, pool, flat, fc.
    let kinds: Vec<&str> = net.layers.iter().map(|l| l.op.kind()).collect();
    assert_eq!(
        kinds,
        ["conv2d", "relu", "conv2d", "add", "relu", "avgpool", "flatten", "linear"]
    );
    // The relu reads the folded conv; the add reads relu1 and the folded conv2.
    assert_eq!(net.layers[1].inputs, vec![ValueId::Layer(0)]);
    assert_eq!(
        net.layers[3].inputs,
        vec![ValueId::Layer(1), ValueId::Layer(2)]
    );
    assert_eq!(net.output, ValueId::Layer(7));
}

fn folded(w: &[f32], b: &[f32], prefix: &str, salt: f32) -> (Vec<f32>, Vec<f32>) {
    let p: HashMap<String, Vec<f32>> = bn_params(prefix, salt).into_iter().collect();
    let get = |s: &str| &p[&format!("{prefix}.{s}")];
    let (g, be, m, v) = (
        get("weight"),
        get("bias"),
        get("running_mean"),
        get("running_var"),
    );
    let per = w.len() / 3;
    let mut wf = w.to_vec();
    let mut bf = vec![0.0; 3];
    for o in 0..3 {
        let s = g[o] as f64 / (v[o] as f64 + EPS).sqrt();
        for x in &mut wf[o * per..(o + 1) * per] {
            *x = (*x as f64 * s) as f32;
        }
        bf[o] = ((b[o] as f64 - m[o] as f64) * s + be[o] as f64) as f32;
    }
    (wf, bf)
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= 1e-6 * (1.0 + y.abs()))
}

#[test]
fn batch_norm_folds_into_the_conv_for_the_chosen_path_and_missing_bias_is_zero() {
    let bundle = Bundle::from_bytes(&tiny().to_bytes().unwrap()).unwrap();
    for (path, prefix, salt) in [
        (BnPath::Clean, "bn1.BN_c", 0.0),
        (BnPath::Adv, "bn1.BN_a", 0.7),
    ] {
        let net = bundle.network(path).unwrap();
        let Op::Conv2d(c) = &net.layers[0].op else {
            panic!("layer 0 is {:?}", net.layers[0].op.kind())
        };
        // conv1 has no bias: folding starts from zeros.
        let (w, b) = folded(&conv1_weight(), &[0.0; 3], prefix, salt);
        assert!(close(&c.weight, &w), "{path} weight");
        assert!(close(&c.bias, &b), "{path} bias");
        assert_eq!(net.bn_path, path);
    }
    let net = bundle.network(BnPath::Clean).unwrap();
    let Op::Conv2d(c2) = &net.layers[2].op else {
        panic!()
    };
    let w2 = [0.5, -0.25, 0.125, 1.0, 0.0, -1.0, 0.3, 0.3, 0.3];
    let (w, b) = folded(&w2, &[0.01, 0.02, 0.03], "bn2", 0.3);
    assert!(close(&c2.weight, &w) && close(&c2.bias, &b));
}

#[test]
fn batch_norm_after_a_conv_read_twice_stays_a_channel_affine() {
    let mut w = tiny();
    let mut g = graph_json();
    // `add` now reads conv2 directly as well as through bn2: conv2 has two readers.
    g["ops"][5]["inputs"] = json!(["conv2", "bn2"]);
    set_graph(&mut w, g);
    let net = load(&w).unwrap();
    let affine = net
        .layers
        .iter()
        .find(|l| l.name == "bn2")
        .expect("bn2 kept as its own layer");
    let Op::ChannelAffine(a) = &affine.op else {
        panic!("bn2 is {}", affine.op.kind())
    };
    let s0 = 1.3 / (1.5f64 + EPS).sqrt();
    assert!((a.scale[0] as f64 - s0).abs() < 1e-6);
    assert!((a.shift[0] as f64 - (0.1 - 0.05 * s0)).abs() < 1e-6);
    let conv2 = net.layers.iter().find(|l| l.name == "conv2").unwrap();
    let Op::Conv2d(c) = &conv2.op else { panic!() };
    assert_eq!(
        c.bias,
        vec![0.01, 0.02, 0.03],
        "unfolded conv keeps its own bias"
    );
}

#[test]
fn masks_load_as_keep_flags() {
    let net = load(&tiny()).unwrap();
    let Op::Relu {
        site: 0,
        mask: Some(m),
    } = &net.layers[1].op
    else {
        panic!()
    };
    let want: Vec<bool> = mask0().iter().map(|&v| v == 1).collect();
    assert_eq!(m.keep, want);
    assert!(matches!(
        net.layers[4].op,
        Op::Relu {
            site: 1,
            mask: None
        }
    ));
}

// ---------------------------------------------------------------- one test per bad case

#[test]
fn missing_tensor() {
    let mut w = tiny();
    w.remove("bn2.running_var");
    match load(&w) {
        Err(ModelError::MissingTensor { op, tensor }) => {
            assert_eq!((op.as_str(), tensor.as_str()), ("bn2", "bn2.running_var"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_weight_without_synthetic_seed() {
    let mut w = tiny();
    w.remove("conv1.weight");
    assert!(
        matches!(load(&w), Err(ModelError::MissingTensor { ref tensor, .. }) if tensor == "conv1.weight")
    );
}

#[test]
fn synthetic_weight_without_its_shape() {
    let mut w = tiny();
    w.remove("conv1.weight").synthetic(3);
    match load(&w) {
        Err(ModelError::InvalidOp { name, reason, .. }) => {
            assert_eq!(name, "conv1");
            assert!(reason.contains("out_channels"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn synthetic_weights_are_materialized_and_missing_biases_are_zero() {
    let mut w = tiny();
    w.remove("conv1.weight").remove("fc.bias").synthetic(3);
    if let RawOp::Conv2d(RawConv2d {
        out_channels,
        kernel,
        ..
    }) = &mut w.graph_mut().ops[0]
    {
        *out_channels = Some(3);
        *kernel = Some(pibench::model::raw::Kernel::Square(3));
    }
    let bundle = Bundle::from_bytes(&w.to_bytes().unwrap()).unwrap();
    let unfolded = bundle.network_unfolded(BnPath::Clean).unwrap();
    let Op::Conv2d(c) = &unfolded.layers[0].op else {
        panic!()
    };
    let want = pibench::model::synth::he_normal(3, "conv1.weight", 54, 18);
    assert_eq!(c.weight, want);
    assert_eq!(c.bias, vec![0.0; 3]);
    let Some(Op::Linear(l)) = unfolded.layers.last().map(|l| &l.op) else {
        panic!()
    };
    assert_eq!(l.bias, vec![0.0; 5]);
}

#[test]
fn wrong_dtype() {
    let mut w = tiny();
    let bytes: Vec<u8> = [1.0f64, 1.0, 1.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    w.raw("bn2.weight", Dtype::F64, &[3], bytes);
    match load(&w) {
        Err(ModelError::WrongDtype {
            tensor,
            found,
            expected,
            ..
        }) => {
            assert_eq!(
                (tensor.as_str(), found.as_str(), expected),
                ("bn2.weight", "F64", "F32")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn mask_of_wrong_dtype() {
    let mut w = tiny();
    w.f32("mask.0", &[3, 4, 4], &[1.0; 48]);
    assert!(
        matches!(load(&w), Err(ModelError::WrongDtype { ref tensor, expected: "U8", .. }) if tensor == "mask.0")
    );
}

#[test]
fn bool_masks_are_accepted() {
    let mut w = tiny();
    w.raw("mask.0", Dtype::BOOL, &[3, 4, 4], mask0());
    assert_eq!(load(&w).unwrap().kept_relus(), 64);
}

#[test]
fn wrong_shape() {
    let mut w = tiny();
    w.f32("bn1.BN_c.running_mean", &[4], &[0.0; 4]);
    match load(&w) {
        Err(ModelError::WrongShape {
            op, tensor, found, ..
        }) => {
            assert_eq!(
                (op.as_str(), tensor.as_str()),
                ("bn1", "bn1.BN_c.running_mean")
            );
            assert_eq!(found, vec![4]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn conv_weight_of_the_wrong_rank() {
    let mut w = tiny();
    w.f32("conv1.weight", &[3, 18], &conv1_weight());
    assert!(matches!(load(&w), Err(ModelError::WrongShape { ref op, .. }) if op == "conv1"));
}

#[test]
fn mask_shape_differs_from_its_activation() {
    let mut w = tiny();
    w.u8("mask.0", &[3, 16], &mask0());
    match load(&w) {
        Err(ModelError::MaskShape {
            op,
            activation,
            mask,
            ..
        }) => {
            assert_eq!(op, "relu1");
            assert_eq!((activation, mask), (vec![3, 4, 4], vec![3, 16]));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn mask_value_other_than_0_or_1() {
    let mut w = tiny();
    let mut m = mask0();
    m[7] = 2;
    w.u8("mask.0", &[3, 4, 4], &m);
    match load(&w) {
        Err(ModelError::MaskValue {
            tensor,
            element,
            value,
            ..
        }) => assert_eq!((tensor.as_str(), element, value), ("mask.0", 7, 2)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_op() {
    let mut w = tiny();
    let mut g = graph_json();
    g["ops"][6]["op"] = json!("gelu");
    w.metadata_override(KEY_GRAPH, Some(&g.to_string()));
    match Bundle::from_bytes(&w.to_bytes().unwrap()) {
        Err(ModelError::UnknownOp {
            index, name, op, ..
        }) => {
            assert_eq!((index, name.as_str(), op.as_str()), (6, "relu2", "gelu"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn newer_format_version() {
    let mut w = tiny();
    w.metadata_override(KEY_FORMAT, Some("2"));
    assert!(matches!(
        Bundle::from_bytes(&w.to_bytes().unwrap()),
        Err(ModelError::NewerFormat {
            found: 2,
            supported: 1
        })
    ));
}

#[test]
fn truncated_file() {
    let bytes = tiny().to_bytes().unwrap();
    for cut in [0, 5, 8, 20, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            matches!(
                Bundle::from_bytes(&bytes[..cut]),
                Err(ModelError::Corrupt { .. })
            ),
            "cut at {cut}"
        );
    }
}

#[test]
fn corrupt_file() {
    let mut bytes = tiny().to_bytes().unwrap();
    bytes[8] = b'[';
    assert!(matches!(
        Bundle::from_bytes(&bytes),
        Err(ModelError::Corrupt { .. })
    ));
    assert!(matches!(
        Bundle::from_bytes(b"this is not a safetensors file"),
        Err(ModelError::Corrupt { .. })
    ));
}

#[test]
fn file_without_pibench_metadata() {
    // A plain safetensors file, as torch's `save_file` would write without metadata.
    let data = [0u8; 12];
    let view = safetensors::tensor::TensorView::new(Dtype::F32, vec![3], &data).unwrap();
    let bytes = safetensors::serialize([("w", view)], &None).unwrap();
    assert!(matches!(
        Bundle::from_bytes(&bytes),
        Err(ModelError::MissingMetadata {
            key: "pibench.format"
        })
    ));
}

#[test]
fn missing_metadata_entry() {
    let mut w = tiny();
    w.metadata_override(KEY_GRAPH, None);
    assert!(matches!(
        Bundle::from_bytes(&w.to_bytes().unwrap()),
        Err(ModelError::MissingMetadata {
            key: "pibench.graph"
        })
    ));
}

#[test]
fn invalid_metadata_entries() {
    for (key, value) in [
        (KEY_FORMAT, "one"),
        (KEY_GRAPH, "{\"ops\": []"),
        (KEY_CARD, "{\"architecture\": \"x\"}"),
        (KEY_SYNTHETIC, "{\"seed\": -1}"),
    ] {
        let mut w = tiny();
        w.metadata_override(key, Some(value));
        match Bundle::from_bytes(&w.to_bytes().unwrap()) {
            Err(ModelError::InvalidMetadata { key: k, .. }) => assert_eq!(k, key),
            other => panic!("{key}: {other:?}"),
        }
    }
}

#[test]
fn conv_input_channels_do_not_chain() {
    let mut w = tiny();
    w.f32("conv2.weight", &[3, 2, 1, 1], &[0.0; 6]);
    match load(&w) {
        Err(ModelError::ShapeMismatch { op, reason }) => {
            assert_eq!(op, "conv2");
            assert!(reason.contains("input channels"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn linear_input_size_does_not_chain() {
    let mut w = tiny();
    w.f32("fc.weight", &[5, 4], &[0.0; 20]);
    assert!(matches!(load(&w), Err(ModelError::ShapeMismatch { ref op, .. }) if op == "fc"));
}

#[test]
fn linear_on_an_unflattened_value() {
    let mut w = tiny();
    let mut g = graph_json();
    g["ops"][9]["input"] = json!("pool");
    set_graph(&mut w, g);
    assert!(matches!(load(&w), Err(ModelError::ShapeMismatch { ref op, .. }) if op == "fc"));
}

#[test]
fn add_operand_shapes_differ() {
    let mut w = tiny();
    let mut g = graph_json();
    g["ops"][5]["inputs"] = json!(["relu1", "input"]);
    set_graph(&mut w, g);
    match load(&w) {
        Err(ModelError::ShapeMismatch { op, reason }) => {
            assert_eq!(op, "add");
            assert!(
                reason.contains("[3, 4, 4]") && reason.contains("[2, 4, 4]"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn value_read_before_it_is_produced() {
    let mut w = tiny();
    let mut g = graph_json();
    g["ops"][2]["input"] = json!("add");
    set_graph(&mut w, g);
    match load(&w) {
        Err(ModelError::UnknownValue { op, value, reason }) => {
            assert_eq!((op.as_str(), value.as_str()), ("relu1", "add"));
            assert!(reason.contains("later"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn value_never_produced() {
    let mut w = tiny();
    let mut g = graph_json();
    g["output"] = json!("logits");
    set_graph(&mut w, g);
    match load(&w) {
        Err(ModelError::UnknownValue { op, value, reason }) => {
            assert_eq!((op.as_str(), value.as_str()), ("graph output", "logits"));
            assert!(reason.contains("no op"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn duplicate_names() {
    let mut w = tiny();
    let mut g = graph_json();
    g["ops"][8]["name"] = json!("pool");
    g["ops"][9]["input"] = json!("pool");
    set_graph(&mut w, g);
    assert!(matches!(load(&w), Err(ModelError::DuplicateName { ref name }) if name == "pool"));
}

#[test]
fn op_named_like_the_input() {
    let mut w = tiny();
    let mut g = graph_json();
    g["ops"][0]["name"] = json!("input");
    set_graph(&mut w, g);
    assert!(matches!(load(&w), Err(ModelError::DuplicateName { ref name }) if name == "input"));
}

#[test]
fn card_budget_disagrees_with_the_masks() {
    let mut w = tiny();
    w.card_mut().budget = Some(65);
    match load(&w) {
        Err(ModelError::CardMismatch { field, card, .. }) => {
            assert_eq!((field, card.as_str()), ("budget", "65"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn card_total_relus_disagrees_with_the_graph() {
    let mut w = tiny();
    w.card_mut().total_relus = Some(557_056);
    assert!(matches!(
        load(&w),
        Err(ModelError::CardMismatch {
            field: "total_relus",
            ..
        })
    ));
}

#[test]
fn card_classes_disagree_with_the_output() {
    let mut w = tiny();
    w.card_mut().classes = 10;
    assert!(matches!(
        load(&w),
        Err(ModelError::CardMismatch {
            field: "classes",
            ..
        })
    ));
}

#[test]
fn non_finite_weight() {
    let mut w = tiny();
    let mut v = conv1_weight();
    v[10] = f32::NAN;
    w.f32("conv1.weight", &[3, 2, 3, 3], &v);
    assert!(
        matches!(load(&w), Err(ModelError::BadValue { ref tensor, .. }) if tensor == "conv1.weight")
    );
}

#[test]
fn negative_variance() {
    let mut w = tiny();
    w.f32("bn2.running_var", &[3], &[1.0, -2.0, 1.0]);
    match load(&w) {
        Err(ModelError::BadValue { op, tensor, reason }) => {
            assert_eq!((op.as_str(), tensor.as_str()), ("bn2", "bn2.running_var"));
            assert!(reason.contains("channel 1"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn huge_shapes_are_refused_before_allocating() {
    let mut w = tiny();
    let mut g = graph_json();
    g["input"]["shape"] = json!([2, 1u64 << 31, 1u64 << 31]);
    set_graph(&mut w, g);
    assert!(matches!(load(&w), Err(ModelError::TooLarge { .. })));

    let mut w = tiny();
    w.remove("conv1.weight").synthetic(1);
    let mut g = graph_json();
    g["ops"][0]["out_channels"] = json!(1u64 << 40);
    g["ops"][0]["kernel"] = json!(3);
    set_graph(&mut w, g);
    assert!(matches!(load(&w), Err(ModelError::TooLarge { ref op, .. }) if op == "conv1"));
}

#[test]
fn kernel_larger_than_the_padded_input() {
    let mut w = tiny();
    w.f32("conv1.weight", &[3, 2, 7, 7], &[0.0; 294]);
    assert!(matches!(load(&w), Err(ModelError::ShapeMismatch { ref op, .. }) if op == "conv1"));
}

#[test]
fn add_with_three_inputs() {
    let mut w = tiny();
    let mut g = graph_json();
    g["ops"][5]["inputs"] = json!(["relu1", "bn2", "relu1"]);
    set_graph(&mut w, g);
    assert!(matches!(load(&w), Err(ModelError::InvalidOp { ref name, .. }) if name == "add"));
}

#[test]
fn errors_read_well() {
    let mut w = tiny();
    w.remove("bn2.running_var");
    let msg = load(&w).unwrap_err().to_string();
    assert_eq!(
        msg,
        "op `bn2` needs tensor `bn2.running_var`, which the bundle does not contain"
    );
}
