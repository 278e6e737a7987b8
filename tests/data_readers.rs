//! Every dataset layout `pibench::data` reads, written small into a temporary directory (or
//! committed under tests/fixtures/data/ for the pickles, made by tools/make_data_fixtures.py),
//! read back exactly, and the ways each can be wrong.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pibench::data::{
    self, Batch, CifarC, Corruption, CorruptionSuite, DataError, DataOptions, Generated, ImageSet,
    ImageShape, Layout,
};
use serde_pickle::{HashableValue, Value};

/// Pixel `p` (C-order within the image's stored bytes) of image `n`.
fn px(n: usize, p: usize) -> u8 {
    ((7 * n + 13 * p) % 256) as u8
}

fn label(n: usize, classes: usize) -> u32 {
    ((3 * n + 1) % classes) as u32
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/data")
        .join(rel)
}

fn opts() -> DataOptions {
    DataOptions::default()
}

fn limit(n: usize) -> DataOptions {
    DataOptions {
        limit: Some(n),
        ..DataOptions::default()
    }
}

fn all(set: &dyn ImageSet, batch: usize) -> Vec<Batch> {
    set.batches(batch).collect::<Result<_, _>>().unwrap()
}

/// Checks images stored CHW with bytes `px(n, p)`.
fn check_chw(set: &dyn ImageSet, n_images: usize, classes: usize) {
    assert_eq!(set.len(), n_images);
    let batches = all(set, 5);
    assert_eq!(batches.len(), n_images.div_ceil(5));
    let mut n = 0;
    for b in &batches {
        assert_eq!(b.start, n);
        for i in 0..b.len() {
            assert_eq!(b.labels[i], label(n, classes), "image {n}");
            for (p, &v) in b.image(i).iter().enumerate() {
                assert_eq!(v, f32::from(px(n, p)) / 255.0, "image {n} element {p}");
            }
            n += 1;
        }
    }
    assert_eq!(n, n_images);
}

fn err_text(e: DataError) -> String {
    e.to_string()
}

// ------------------------------------------------------------------------ CIFAR binary

fn write_cifar_bin(path: &Path, n: usize, label_bytes: usize, classes: usize) {
    let mut bytes = Vec::new();
    for k in 0..n {
        if label_bytes == 2 {
            bytes.push((k % 20) as u8); // coarse
        }
        bytes.push(label(k, classes) as u8);
        bytes.extend((0..3072).map(|p| px(k, p)));
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn cifar10_binary_by_directory_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cifar-10-batches-bin/test_batch.bin");
    write_cifar_bin(&file, 11, 1, 10);
    let set = data::open(file.parent().unwrap(), &opts()).unwrap();
    assert_eq!(set.shape(), ImageShape::new(3, 32, 32));
    assert_eq!(set.classes(), 10);
    check_chw(&*set, 11, 10);
    let set = data::open(&file, &limit(4)).unwrap();
    check_chw(&*set, 4, 10);
    // A range (one shard) reads the same images as the whole.
    let shard: Vec<Batch> = set.batches_in(1..4, 2).collect::<Result<_, _>>().unwrap();
    assert_eq!((shard[0].start, shard[1].start, shard[1].len()), (1, 3, 1));
    assert_eq!(shard[0].image(0), set.read(1, 1).unwrap().image(0));
    assert!(matches!(set.read(3, 2), Err(DataError::Range { .. })));
}

#[test]
fn cifar100_binary_uses_fine_labels() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cifar-100-binary/test.bin");
    write_cifar_bin(&file, 6, 2, 100);
    let set = data::open(file.parent().unwrap(), &opts()).unwrap();
    assert_eq!(set.classes(), 100);
    check_chw(&*set, 6, 100);
}

#[test]
fn cifar_binary_errors_name_the_file_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("test_batch.bin");
    write_cifar_bin(&file, 3, 1, 10);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.pop();
    std::fs::write(&file, &bytes).unwrap();
    let e = err_text(data::open(&file, &opts()).err().unwrap());
    assert!(
        e.contains("test_batch.bin") && e.contains("multiple of the 3073-byte"),
        "{e}"
    );

    write_cifar_bin(&file, 3, 1, 10);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[3073] = 12; // image 1's label
    std::fs::write(&file, &bytes).unwrap();
    let e = data::open(&file, &opts()).err().unwrap();
    assert!(
        matches!(
            &e,
            DataError::BadLabel {
                index: 1,
                label: 12,
                classes: 10,
                ..
            }
        ),
        "{e}"
    );

    write_cifar_bin(&file, 3, 1, 10);
    let want_100 = DataOptions {
        classes: Some(100),
        ..opts()
    };
    let e = data::open(&file, &want_100).err().unwrap();
    assert!(matches!(
        e,
        DataError::ClassMismatch {
            found: 10,
            expected: 100,
            ..
        }
    ));

    let odd = dir.path().join("mystery.bin");
    std::fs::write(&odd, [0u8; 3073]).unwrap();
    let e = err_text(data::open(&odd, &opts()).err().unwrap());
    assert!(e.contains("mystery.bin"), "{e}");
}

// ------------------------------------------------------------------------ CIFAR pickles

#[test]
fn cifar_python_pickles_of_every_protocol() {
    // Python 2 cPickle style (protocol 2, str opcodes), protocol 4 and protocol 5.
    let c10 = data::open(fixture("cifar-10-batches-py"), &opts()).unwrap();
    assert_eq!(c10.classes(), 10);
    check_chw(&*c10, 12, 10);
    for dir in ["cifar-100-python", "cifar-100-python-p5"] {
        let c100 = data::open(fixture(dir), &opts()).unwrap();
        assert_eq!(c100.classes(), 100, "{dir}");
        check_chw(&*c100, 12, 100);
    }
    let five = data::open(fixture("cifar-100-python/test"), &limit(5)).unwrap();
    check_chw(&*five, 5, 100);
}

fn key(k: &str) -> HashableValue {
    HashableValue::Bytes(k.as_bytes().to_vec())
}

/// A CIFAR-like pickle built as a serde-pickle value tree: `data` as NumPy's reconstruct state.
fn write_pickle(path: &Path, shape: &[i64], raw: Vec<u8>, labels: Option<Vec<i64>>) {
    let state = Value::Tuple(vec![
        Value::I64(1),
        Value::Tuple(shape.iter().map(|&d| Value::I64(d)).collect()),
        Value::None,
        Value::Bool(false),
        Value::Bytes(raw),
    ]);
    let mut dict = BTreeMap::new();
    dict.insert(key("data"), state);
    if let Some(l) = labels {
        dict.insert(
            key("labels"),
            Value::List(l.into_iter().map(Value::I64).collect()),
        );
    }
    let bytes = serde_pickle::value_to_vec(&Value::Dict(dict), Default::default()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn cifar_pickle_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test_batch");
    // Sanity: the value-tree pickle itself reads.
    write_pickle(&path, &[2, 3072], vec![5; 6144], Some(vec![1, 2]));
    assert_eq!(data::open(&path, &opts()).unwrap().len(), 2);

    write_pickle(&path, &[2, 3072], vec![5; 6144], None);
    let e = err_text(data::open(&path, &opts()).err().unwrap());
    assert!(
        e.contains("test_batch") && e.contains("without `labels`"),
        "{e}"
    );

    write_pickle(&path, &[2, 3072], vec![5; 6144 * 4], Some(vec![1, 2]));
    let e = err_text(data::open(&path, &opts()).err().unwrap());
    assert!(e.contains("only 1-byte"), "{e}");

    write_pickle(&path, &[2, 1024], vec![5; 2048], Some(vec![1, 2]));
    let e = err_text(data::open(&path, &opts()).err().unwrap());
    assert!(e.contains("expected [N, 3072]"), "{e}");

    write_pickle(&path, &[2, 3072], vec![5; 6144], Some(vec![1, 2, 3]));
    let e = err_text(data::open(&path, &opts()).err().unwrap());
    assert!(e.contains("2 images") && e.contains("3 labels"), "{e}");

    write_pickle(&path, &[2, 3072], vec![5; 6144], Some(vec![1, 10]));
    assert!(matches!(
        data::open(&path, &opts()).err().unwrap(),
        DataError::BadLabel {
            index: 1,
            label: 10,
            ..
        }
    ));

    let mut truncated = std::fs::read(fixture("cifar-10-batches-py/test_batch")).unwrap();
    truncated.truncate(truncated.len() / 2);
    std::fs::write(&path, truncated).unwrap();
    let e = err_text(data::open(&path, &opts()).err().unwrap());
    assert!(e.contains("not a readable pickle"), "{e}");
}

// ------------------------------------------------------------------------ .npy

/// A `.npy` (format 1.0) with the given dtype string, shape and raw little-endian data.
fn write_npy(path: &Path, descr: &str, shape: &[usize], data: &[u8]) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    std::fs::write(path, bytes).unwrap();
}

fn i64_bytes(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn npy_pairs_in_every_layout_and_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let n = 7;
    let (h, w) = (4, 5);
    let labels: Vec<i64> = (0..n).map(|k| i64::from(label(k, 10))).collect();
    // NCHW uint8: stored order is CHW, so px(n, p) indexes CHW directly.
    let chw: Vec<u8> = (0..n)
        .flat_map(|k| (0..3 * h * w).map(move |p| px(k, p)))
        .collect();
    write_npy(&dir.path().join("images.npy"), "|u1", &[n, 3, h, w], &chw);
    write_npy(
        &dir.path().join("labels.npy"),
        "<i8",
        &[n],
        &i64_bytes(&labels),
    );
    let set = data::open(dir.path(), &opts()).unwrap();
    assert_eq!(set.shape(), ImageShape::new(3, h, w));
    assert_eq!(set.classes(), 10);
    check_chw(&*set, n, 10);

    // NHWC uint8 of the same images, with its own labels file name.
    let hwc: Vec<u8> = (0..n)
        .flat_map(|k| (0..h * w).flat_map(move |q| (0..3).map(move |c| px(k, c * h * w + q))))
        .collect();
    let nhwc = dir.path().join("nhwc.npy");
    write_npy(&nhwc, "|u1", &[n, h, w, 3], &hwc);
    write_npy(
        &dir.path().join("nhwc_labels.npy"),
        "|u1",
        &[n],
        &labels.iter().map(|&l| l as u8).collect::<Vec<_>>(),
    );
    check_chw(&*data::open(&nhwc, &opts()).unwrap(), n, 10);

    // float32 NCHW in [0, 1].
    let f: Vec<u8> = chw
        .iter()
        .flat_map(|&v| (f32::from(v) / 255.0).to_le_bytes())
        .collect();
    let float = dir.path().join("float.npy");
    write_npy(&float, "<f4", &[n, 3, h, w], &f);
    write_npy(
        &dir.path().join("float_labels.npy"),
        "<i4",
        &[n],
        &labels
            .iter()
            .flat_map(|&l| (l as i32).to_le_bytes())
            .collect::<Vec<_>>(),
    );
    check_chw(&*data::open(&float, &opts()).unwrap(), n, 10);

    // Grey [N, H, W].
    let grey = dir.path().join("grey.npy");
    write_npy(&grey, "|u1", &[n, h, w], &chw[..n * h * w]);
    write_npy(
        &dir.path().join("grey_labels.npy"),
        "<i8",
        &[n],
        &i64_bytes(&labels),
    );
    let g = data::open(&grey, &opts()).unwrap();
    assert_eq!(g.shape(), ImageShape::new(1, h, w));
}

#[test]
fn npy_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let labels = i64_bytes(&[0, 1, 2]);
    write_npy(&d.join("labels.npy"), "<i8", &[3], &labels);

    // Values outside [0, 1] in a float file: found when the batch is read.
    let f: Vec<u8> = (0..3 * 3 * 2 * 2)
        .flat_map(|i| if i == 20 { 1.5f32 } else { 0.5 }.to_le_bytes())
        .collect();
    write_npy(&d.join("images.npy"), "<f4", &[3, 3, 2, 2], &f);
    let set = data::open(d, &opts()).unwrap();
    let e = set.read(0, 3).err().unwrap();
    assert!(matches!(e, DataError::PixelRange { index: 1, .. }), "{e}");

    // Truncated data.
    write_npy(&d.join("images.npy"), "|u1", &[3, 3, 2, 2], &[0u8; 30]);
    let e = err_text(data::open(d, &opts()).err().unwrap());
    assert!(e.contains("images.npy") && e.contains("truncated"), "{e}");

    // Count mismatch.
    write_npy(&d.join("images.npy"), "|u1", &[4, 3, 2, 2], &[0u8; 48]);
    let e = data::open(d, &opts()).err().unwrap();
    assert!(
        matches!(
            e,
            DataError::CountMismatch {
                n_images: 4,
                n_labels: 3,
                ..
            }
        ),
        "{e}"
    );

    // Labels beyond the model's classes.
    write_npy(&d.join("images.npy"), "|u1", &[3, 3, 2, 2], &[0u8; 36]);
    let two = DataOptions {
        classes: Some(2),
        ..opts()
    };
    assert!(matches!(
        data::open(d, &two).err().unwrap(),
        DataError::BadLabel {
            index: 2,
            label: 2,
            classes: 2,
            ..
        }
    ));

    // Ambiguous and impossible shapes, unless the layout is given.
    write_npy(&d.join("images.npy"), "|u1", &[3, 3, 4, 3], &[0u8; 108]);
    let e = err_text(data::open(d, &opts()).err().unwrap());
    assert!(e.contains("could be NCHW or NHWC"), "{e}");
    let hwc = DataOptions {
        layout: Some(Layout::Hwc),
        ..opts()
    };
    assert_eq!(
        data::open(d, &hwc).unwrap().shape(),
        ImageShape::new(3, 3, 4)
    );
    write_npy(&d.join("images.npy"), "|u1", &[3, 5, 5, 5], &[0u8; 375]);
    assert!(data::open(d, &opts()).is_err());

    // Wrong dtype.
    write_npy(&d.join("images.npy"), "<i4", &[3, 3, 1, 1], &[0u8; 36]);
    let e = err_text(data::open(d, &opts()).err().unwrap());
    assert!(e.contains("expected uint8"), "{e}");

    // Not an npy at all.
    std::fs::write(d.join("images.npy"), b"hello").unwrap();
    let e = err_text(data::open(d, &opts()).err().unwrap());
    assert!(e.contains("not a valid .npy"), "{e}");
}

// ------------------------------------------------------------------------ safetensors

#[test]
fn safetensors_pair_and_its_errors() {
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;
    let dir = tempfile::tempdir().unwrap();
    let n = 5;
    let chw: Vec<u8> = (0..n)
        .flat_map(|k| (0..3 * 2 * 4).map(move |p| px(k, p)))
        .collect();
    let labels = i64_bytes(&(0..n).map(|k| i64::from(label(k, 10))).collect::<Vec<_>>());
    let path = dir.path().join("test.safetensors");
    let write = |tensors: Vec<(&str, TensorView)>| {
        let bytes = safetensors::serialize(tensors, &None).unwrap();
        std::fs::write(&path, bytes).unwrap();
    };
    write(vec![
        (
            "images",
            TensorView::new(Dtype::U8, vec![n, 3, 2, 4], &chw).unwrap(),
        ),
        (
            "labels",
            TensorView::new(Dtype::I64, vec![n], &labels).unwrap(),
        ),
    ]);
    let set = data::open(
        &path,
        &DataOptions {
            classes: Some(10),
            ..opts()
        },
    )
    .unwrap();
    check_chw(&*set, n, 10);

    write(vec![(
        "images",
        TensorView::new(Dtype::U8, vec![n, 3, 2, 4], &chw).unwrap(),
    )]);
    let e = err_text(data::open(&path, &opts()).err().unwrap());
    assert!(e.contains("no tensor `labels`"), "{e}");

    write(vec![
        (
            "images",
            TensorView::new(Dtype::U8, vec![n, 3, 2, 4], &chw).unwrap(),
        ),
        (
            "labels",
            TensorView::new(Dtype::I64, vec![n - 1], &labels[..8 * (n - 1)]).unwrap(),
        ),
    ]);
    let e = err_text(data::open(&path, &opts()).err().unwrap());
    assert!(e.contains("5 images") && e.contains("4 labels"), "{e}");
}

// ------------------------------------------------------------------------ CIFAR-C

/// A CIFAR-C directory of 8×8 images: `blocks` images per severity; stored HWC bytes of image
/// `n` (global index) are `px(n + salt, q)`.
fn write_cifar_c(dir: &Path, names: &[&str], block: usize, labels_len: usize) {
    for (salt, name) in names.iter().enumerate() {
        let n = 5 * block;
        let bytes: Vec<u8> = (0..n)
            .flat_map(|k| (0..8 * 8 * 3).map(move |q| px(k + salt, q)))
            .collect();
        write_npy(
            &dir.join(format!("{name}.npy")),
            "|u1",
            &[n, 8, 8, 3],
            &bytes,
        );
    }
    let labels: Vec<u8> = (0..labels_len)
        .map(|k| label(k % block, 10) as u8)
        .collect();
    write_npy(&dir.join("labels.npy"), "|u1", &[labels_len], &labels);
}

#[test]
fn cifar_c_severity_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let block = 4;
    write_cifar_c(
        dir.path(),
        &["fog", "speckle_noise", "gaussian_noise"],
        block,
        5 * block,
    );
    let suite = CifarC::open(dir.path(), &opts()).unwrap();
    assert_eq!(suite.block(), block);
    assert_eq!(
        suite.corruptions(),
        ["gaussian_noise", "fog", "speckle_noise"]
    );
    for severity in 1..=5u8 {
        let set = suite.set("fog", severity).unwrap();
        assert_eq!(set.len(), block);
        let b = set.read(0, block).unwrap();
        for i in 0..block {
            let global = usize::from(severity - 1) * block + i;
            assert_eq!(b.labels[i], label(i, 10));
            // fog is file 0 (salt 0); HWC pixel (y, x, c) of the stored image.
            let img = b.image(i);
            for q in 0..64 {
                for c in 0..3 {
                    assert_eq!(img[c * 64 + q], f32::from(px(global, q * 3 + c)) / 255.0);
                }
            }
        }
    }
    // --limit keeps the first images of every block.
    let limited = CifarC::open(dir.path(), &limit(2)).unwrap();
    let s3 = limited.set("gaussian_noise", 3).unwrap();
    assert_eq!(s3.len(), 2);
    assert_eq!(
        s3.read(0, 2).unwrap().images,
        suite
            .set("gaussian_noise", 3)
            .unwrap()
            .read(0, 2)
            .unwrap()
            .images
    );
    assert!(matches!(
        suite.set("snow", 1),
        Err(DataError::MissingCorruption { .. })
    ));
    assert!(suite.set("fog", 6).is_err());
    // A CIFAR-C directory given as the clean test set is refused with a hint.
    let e = err_text(data::open(dir.path(), &opts()).err().unwrap());
    assert!(e.contains("--corrupted"), "{e}");
}

#[test]
fn cifar_c_with_one_block_of_labels_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar_c(dir.path(), &["contrast"], 3, 3);
    let suite = CifarC::open(dir.path(), &opts()).unwrap();
    assert_eq!(
        suite.set("contrast", 5).unwrap().read(0, 3).unwrap().labels,
        [1, 4, 7]
    );

    let bad = tempfile::tempdir().unwrap();
    write_cifar_c(bad.path(), &["contrast"], 3, 7);
    let e = CifarC::open(bad.path(), &opts()).err().unwrap();
    assert!(
        matches!(
            e,
            DataError::CountMismatch {
                n_images: 15,
                n_labels: 7,
                ..
            }
        ),
        "{e}"
    );

    let odd = tempfile::tempdir().unwrap();
    write_npy(
        &odd.path().join("fog.npy"),
        "|u1",
        &[7, 2, 2, 3],
        &[0u8; 84],
    );
    write_npy(&odd.path().join("labels.npy"), "|u1", &[7], &[0u8; 7]);
    let e = err_text(CifarC::open(odd.path(), &opts()).err().unwrap());
    assert!(
        e.contains("fog.npy") && e.contains("multiple of the 5 severities"),
        "{e}"
    );

    let mislabelled = tempfile::tempdir().unwrap();
    write_cifar_c(mislabelled.path(), &["fog"], 2, 10);
    write_npy(
        &mislabelled.path().join("labels.npy"),
        "|u1",
        &[10],
        &[0, 1, 2, 3, 4, 5, 6, 7, 8, 10],
    );
    let e = CifarC::open(
        mislabelled.path(),
        &DataOptions {
            classes: Some(10),
            ..opts()
        },
    )
    .err()
    .unwrap();
    assert!(
        matches!(
            e,
            DataError::BadLabel {
                index: 9,
                label: 10,
                ..
            }
        ),
        "{e}"
    );
}

// ------------------------------------------------------------------------ generated corruptions

#[test]
fn generated_corruptions_are_exact_under_any_batching() {
    let base = data::open(fixture("cifar-10-batches-py"), &opts()).unwrap();
    let suite = Generated::new(&*base, 42);
    assert_eq!(suite.corruptions().len(), 15);
    for name in ["glass_blur", "snow", "jpeg_compression"] {
        let set = suite.set(name, 3).unwrap();
        let whole = set.read(0, 12).unwrap();
        let pieces: Vec<Batch> = set.batches(5).collect::<Result<_, _>>().unwrap();
        let joined: Vec<f32> = pieces.iter().flat_map(|b| b.images.clone()).collect();
        assert_eq!(whole.images, joined, "{name}");
        assert_eq!(whole.labels, base.read(0, 12).unwrap().labels);
        // The batch equals applying the corruption to each clean image with its index.
        let clean = base.read(7, 1).unwrap();
        let mut hwc = clean.image_u8_hwc(0);
        let c = Corruption::from_name(name).unwrap();
        pibench::data::corrupt::apply(c, 3, &mut hwc, clean.shape, 42, 7).unwrap();
        assert_eq!(whole.image_u8_hwc(7), hwc, "{name}");
        assert_ne!(whole.image(7), clean.image(0), "{name} changed nothing");
    }
    assert!(suite.set("speckle_noise", 1).is_err());
    assert!(suite.set("fog", 0).is_err());
}

// ------------------------------------------------------------------------ Tiny-ImageNet

/// A flat-colour 64×64 JPEG (decodes back within a unit or two).
fn write_jpeg(path: &Path, rgb: [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = image::RgbImage::from_pixel(64, 64, image::Rgb(rgb));
    img.save_with_format(path, image::ImageFormat::Jpeg)
        .unwrap();
}

fn colour(n: usize) -> [u8; 3] {
    [(20 * n % 256) as u8, 100, (255 - 10 * n) as u8]
}

const WNIDS: [&str; 3] = ["n09999999", "n01443537", "n05555555"]; // not sorted, like wnids.txt

#[test]
fn tiny_imagenet_both_layouts_sorted_wnids_numeric_order() {
    let root = tempfile::tempdir().unwrap();
    let official = root.path().join("tiny-imagenet-200");
    std::fs::create_dir_all(official.join("val/images")).unwrap();
    std::fs::write(official.join("wnids.txt"), WNIDS.join("\n") + "\n").unwrap();
    // 12 images so that val_10 and val_11 test numeric (not lexicographic) order.
    let mut ann = String::new();
    let folder = root.path().join("folder/val");
    for n in 0..12 {
        let wnid = WNIDS[n % 3];
        ann += &format!("val_{n}.JPEG\t{wnid}\t0\t0\t63\t63\n");
        write_jpeg(
            &official.join(format!("val/images/val_{n}.JPEG")),
            colour(n),
        );
        write_jpeg(
            &folder.join(format!("{wnid}/images/val_{n}.JPEG")),
            colour(n),
        );
    }
    std::fs::write(official.join("val/val_annotations.txt"), ann).unwrap();
    std::fs::write(root.path().join("folder/wnids.txt"), WNIDS.join("\n")).unwrap();

    let a = data::open(&official, &opts()).unwrap();
    let b = data::open(&folder, &opts()).unwrap();
    assert_eq!(
        (a.len(), a.classes(), a.shape()),
        (12, 3, ImageShape::new(3, 64, 64))
    );
    // Sorted wnids: n01443537 → 0, n05555555 → 1, n09999999 → 2.
    let want: Vec<u32> = (0..12).map(|n| [2, 0, 1][n % 3]).collect();
    let ba = all(&*a, 5);
    let bb = all(&*b, 5);
    let labels: Vec<u32> = ba.iter().flat_map(|x| x.labels.clone()).collect();
    assert_eq!(labels, want);
    for (x, y) in ba.iter().zip(&bb) {
        assert_eq!(x.labels, y.labels);
        assert_eq!(x.images, y.images);
    }
    // Image 11 is val_11 (numeric order), its flat colour decoded within 2/255.
    let img = a.read(11, 1).unwrap();
    for (c, &v) in colour(11).iter().enumerate() {
        let got = img.image(0)[c * 4096 + 2000];
        assert!(
            (got - f32::from(v) / 255.0).abs() <= 2.0 / 255.0,
            "{got} vs {v}"
        );
    }
    assert_eq!(data::open(&official, &limit(4)).unwrap().len(), 4);
}

#[test]
fn tiny_imagenet_errors() {
    let root = tempfile::tempdir().unwrap();
    let val = root.path().join("val");
    std::fs::create_dir_all(val.join("images")).unwrap();
    std::fs::write(root.path().join("wnids.txt"), "n01443537\n").unwrap();
    write_jpeg(&val.join("images/val_0.JPEG"), [1, 2, 3]);
    std::fs::write(
        val.join("val_annotations.txt"),
        "val_0.JPEG\tn07777777\t0\t0\t1\t1\n",
    )
    .unwrap();
    let e = err_text(data::open(root.path(), &opts()).err().unwrap());
    assert!(e.contains("n07777777") && e.contains("wnids.txt"), "{e}");

    std::fs::write(
        val.join("val_annotations.txt"),
        "val_0.JPEG\tn01443537\t0\t0\t1\t1\n",
    )
    .unwrap();
    image::RgbImage::from_pixel(32, 32, image::Rgb([0, 0, 0]))
        .save_with_format(val.join("images/val_0.JPEG"), image::ImageFormat::Jpeg)
        .unwrap();
    let set = data::open(root.path(), &opts()).unwrap();
    let e = err_text(set.read(0, 1).err().unwrap());
    assert!(e.contains("val_0.JPEG") && e.contains("32x32"), "{e}");

    std::fs::write(val.join("images/val_0.JPEG"), b"not a jpeg").unwrap();
    let e = err_text(set.read(0, 1).err().unwrap());
    assert!(e.contains("not a decodable JPEG"), "{e}");
}
