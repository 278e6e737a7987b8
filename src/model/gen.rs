//! Synthetic-bundle generation (the logic of `pibench gen`): an architecture from [`super::arch`],
//! weights left synthetic (drawn from the seed by every loader), masks allocated per site from a
//! named allocation with exact per-site counts, batch-norm statistics calibrated so that every
//! batch norm's output is standardized on random inputs, and a card that says all of this.
//!
//! Calibration runs a small local f32 forward (this module's private `forward`) over the
//! *unfolded* network, batch norm by batch norm in graph order: each batch norm's running mean
//! and variance are set to the per-channel statistics of its input over a few N(0, 1) images,
//! so its output has mean β and standard deviation γ (γ ≈ 1, β ≈ 0 drawn from the seed) no matter
//! how deep it sits. Trained networks look like this too, which keeps fixed-point ranges realistic.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use rand::seq::index::sample;
use rayon::prelude::*;

use super::arch::{resnet18, Arch, ArchSpec};
use super::bundle::Bundle;
use super::error::ModelError;
use super::graph::{BnPath, Conv2d, Layer, Network, Op, Shape, ValueId};
use super::synth::{fill_standard_normal, tensor_rng};
use super::writer::BundleWriter;

/// RLNet's per-site keep fractions for ResNet18 (`sensitivity_list.yaml`, 17 sites in forward
/// order, stem site first), as listed in REFERENCES.md.
pub const RLNET_ALLOCATIONS: [(&str, [f64; 17]); 7] = [
    (
        "ResNet18_C10_relu82k",
        [
            0.01, 0.11, 0.14, 0.19, 0.21, 0.03, 0.03, 0.03, 0.03, 0.1, 0.14, 0.19, 0.34, 0.35,
            0.76, 0.83, 0.85,
        ],
    ),
    (
        "ResNet18_C10_relu150k",
        [
            0.02, 0.055, 0.062, 0.074, 0.081, 0.2, 0.28, 0.30, 0.32, 0.79, 0.96, 0.97, 1.0, 1.0,
            1.0, 1.0, 1.0,
        ],
    ),
    (
        "ResNet18_c100_relu50k",
        [
            0.02, 0.025, 0.03, 0.025, 0.025, 0.05, 0.05, 0.05, 0.05, 0.25, 0.25, 0.25, 0.25, 0.5,
            0.6, 0.6, 0.6,
        ],
    ),
    (
        "ResNet18_c100_relu25k",
        [
            0.004, 0.01, 0.01, 0.01, 0.011, 0.027, 0.038, 0.04, 0.042, 0.102, 0.124, 0.126, 0.13,
            0.28, 0.30, 0.30, 0.30,
        ],
    ),
    (
        "ResNet18_c100_relu100k",
        [
            0.00967, 0.0313, 0.036, 0.04236, 0.0466, 0.12, 0.165, 0.172, 0.188, 0.45555, 0.5505,
            0.56, 0.583, 1.0, 1.0, 1.0, 1.0,
        ],
    ),
    (
        "ResNet18_c100_relu120k",
        [
            0.012, 0.040, 0.046, 0.055, 0.060, 0.155, 0.214, 0.223, 0.244, 0.59, 0.714, 0.726,
            0.756, 1.0, 1.0, 1.0, 1.0,
        ],
    ),
    (
        "ResNet18_tiny_imagenet_relu300k",
        [
            0.00654, 0.02122, 0.02436, 0.02868, 0.03157, 0.08122, 0.11177, 0.11677, 0.12743,
            0.30848, 0.37277, 0.37887, 0.39474, 0.86147, 0.90656, 0.91427, 0.91553,
        ],
    ),
];

/// How many ReLUs each site keeps.
#[derive(Clone, Debug, PartialEq)]
pub enum Allocation {
    /// Every ReLU kept; relus carry no mask.
    All,
    /// The same keep fraction at every site.
    Uniform(f64),
    /// One of [`RLNET_ALLOCATIONS`], by its key.
    Named(&'static str),
    /// A keep fraction per site.
    Fractions(Vec<f64>),
    /// A keep count per site.
    Counts(Vec<usize>),
}

impl Allocation {
    /// The keep count of every site, given the sites' element counts: `round(fraction ×
    /// elements)` for fractions.
    pub fn keep_counts(&self, elements: &[usize]) -> Result<Vec<usize>, ModelError> {
        let err = |reason: String| ModelError::Gen { reason };
        let from_fractions = |f: &[f64]| -> Result<Vec<usize>, ModelError> {
            if f.len() != elements.len() {
                return Err(err(format!(
                    "allocation `{self}` has {} per-site entries but the network has {} ReLU sites",
                    f.len(),
                    elements.len()
                )));
            }
            f.iter()
                .zip(elements)
                .enumerate()
                .map(|(site, (&fr, &n))| {
                    if !(0.0..=1.0).contains(&fr) {
                        return Err(err(format!(
                            "site {site}: keep fraction {fr} is not within [0, 1]"
                        )));
                    }
                    Ok((fr * n as f64).round() as usize)
                })
                .collect()
        };
        match self {
            Allocation::All => Ok(elements.to_vec()),
            Allocation::Uniform(f) => from_fractions(&vec![*f; elements.len()]),
            Allocation::Named(key) => from_fractions(named_allocation(key).unwrap_or(&[])),
            Allocation::Fractions(f) => from_fractions(f),
            Allocation::Counts(c) => {
                if c.len() != elements.len() {
                    return Err(err(format!(
                        "allocation has {} per-site counts but the network has {} ReLU sites",
                        c.len(),
                        elements.len()
                    )));
                }
                for (site, (&k, &n)) in c.iter().zip(elements).enumerate() {
                    if k > n {
                        return Err(err(format!(
                            "site {site}: keep count {k} exceeds its {n} elements"
                        )));
                    }
                }
                Ok(c.clone())
            }
        }
    }

    /// The short label used in generated bundle names: `82k` for `ResNet18_C10_relu82k`, `all`,
    /// or the budget in thousands.
    pub fn label(&self, budget: usize) -> String {
        match self {
            Allocation::All => "all".into(),
            Allocation::Named(key) => key
                .rsplit_once("relu")
                .map_or_else(|| key.to_string(), |(_, l)| l.to_ascii_lowercase()),
            _ => format!("{}k", (budget as f64 / 1000.0).round() as u64),
        }
    }
}

/// The per-site fractions of a named RLNet allocation (key matched case-insensitively).
pub fn named_allocation(key: &str) -> Option<&'static [f64]> {
    RLNET_ALLOCATIONS
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, f)| &f[..])
}

impl fmt::Display for Allocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |v: Vec<String>| v.join(",");
        match self {
            Allocation::All => f.write_str("all"),
            Allocation::Uniform(x) => write!(f, "uniform:{x}"),
            Allocation::Named(k) => f.write_str(k),
            Allocation::Fractions(v) => write!(
                f,
                "fractions:{}",
                join(v.iter().map(|x| x.to_string()).collect())
            ),
            Allocation::Counts(v) => write!(
                f,
                "counts:{}",
                join(v.iter().map(|x| x.to_string()).collect())
            ),
        }
    }
}

impl FromStr for Allocation {
    type Err = ModelError;

    /// `all`, `uniform:<fraction>`, an RLNet key such as `ResNet18_C10_relu82k`,
    /// `fractions:<f0>,<f1>,...` or `counts:<k0>,<k1>,...`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| ModelError::Gen { reason };
        let s = s.trim();
        if s.eq_ignore_ascii_case("all") {
            return Ok(Allocation::All);
        }
        if let Some((key, _)) = RLNET_ALLOCATIONS
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(s))
        {
            return Ok(Allocation::Named(key));
        }
        let parse_f = |t: &str| {
            t.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| (0.0..=1.0).contains(x))
                .ok_or_else(|| bad(format!("`{t}` is not a fraction in [0, 1]")))
        };
        if let Some(rest) = s.strip_prefix("uniform:") {
            return Ok(Allocation::Uniform(parse_f(rest)?));
        }
        if let Some(rest) = s.strip_prefix("fractions:") {
            return Ok(Allocation::Fractions(
                rest.split(',').map(parse_f).collect::<Result<_, _>>()?,
            ));
        }
        if let Some(rest) = s.strip_prefix("counts:") {
            return Ok(Allocation::Counts(
                rest.split(',')
                    .map(|t| {
                        t.trim()
                            .parse::<usize>()
                            .map_err(|_| bad(format!("`{t}` is not a count")))
                    })
                    .collect::<Result<_, _>>()?,
            ));
        }
        let keys: Vec<&str> = RLNET_ALLOCATIONS.iter().map(|(k, _)| *k).collect();
        Err(bad(format!(
            "unknown allocation `{s}` (expected all, uniform:<f>, fractions:<f,..>, counts:<k,..> or one of {})",
            keys.join(", ")
        )))
    }
}

/// What `pibench gen` builds.
#[derive(Clone, Debug, PartialEq)]
pub struct GenSpec {
    /// The architecture.
    pub arch: ArchSpec,
    /// How many ReLUs each site keeps.
    pub allocation: Allocation,
    /// Seed of the weights, masks and batch-norm parameters.
    pub seed: u64,
    /// Method label for the card; the layout's default (`rlnet`, `senet`, `snl`) when `None`.
    pub method: Option<String>,
    /// Bundle name for the card; derived (`resnet18-c10-rlnet-82k`) when `None`.
    pub name: Option<String>,
    /// Random images the batch-norm calibration runs (at least 1).
    pub calibration_images: usize,
}

impl GenSpec {
    /// A spec with derived method and name and two calibration images.
    pub fn new(arch: ArchSpec, allocation: Allocation, seed: u64) -> GenSpec {
        GenSpec {
            arch,
            allocation,
            seed,
            method: None,
            name: None,
            calibration_images: 2,
        }
    }
}

/// Per batch-norm op: two per-channel vectors (γ and β, or mean and variance).
type ChannelStats = HashMap<String, (Vec<f32>, Vec<f32>)>;

/// Generates a synthetic bundle. The writer's bytes load with [`Bundle::from_bytes`].
pub fn generate(spec: &GenSpec) -> Result<BundleWriter, ModelError> {
    let arch: Arch = resnet18(&spec.arch)?;
    let elements: Vec<usize> = arch.sites.iter().map(|s| s.elements()).collect();
    let counts = spec.allocation.keep_counts(&elements)?;
    let budget: usize = counts.iter().sum();
    let total: usize = elements.iter().sum();
    let method = spec
        .method
        .clone()
        .unwrap_or_else(|| spec.arch.layout.default_method().to_string());
    let name = spec.name.clone().unwrap_or_else(|| {
        let mut n = format!(
            "resnet18-{}-{method}-{}",
            spec.arch.dataset.short(),
            spec.allocation.label(budget)
        );
        if spec.arch.width != 64 {
            n.push_str(&format!("-w{}", spec.arch.width));
        }
        n
    });

    let mut graph = arch.graph.clone();
    if spec.allocation == Allocation::All {
        for op in &mut graph.ops {
            if let super::raw::RawOp::Relu(r) = op {
                r.mask = None;
            }
        }
    }
    let mut card = arch.card.clone();
    card.name = Some(name);
    card.method = method;
    card.budget = Some(budget as u64);
    card.total_relus = Some(total as u64);
    card.synthetic = true;
    card.allocation = Some(spec.allocation.to_string());
    card.source = Some(format!("pibench gen, seed {}", spec.seed));
    card.notes = Some(format!(
        "Synthetic: untrained He-normal weights drawn from seed {} (not stored); masks with exact \
         per-site keep counts at positions drawn from the seed; batch-norm statistics calibrated \
         on {} random N(0,1) inputs so each batch norm's output is standardized. Accuracy is \
         meaningless; costs are architecture-true.",
        spec.seed,
        spec.calibration_images.max(1)
    ));

    let mut w = BundleWriter::new(graph, card);
    w.synthetic(spec.seed);

    if spec.allocation != Allocation::All {
        for (site, (s, &k)) in arch.sites.iter().zip(&counts).enumerate() {
            let n = s.elements();
            let mut mask = vec![0u8; n];
            let mut rng = tensor_rng(spec.seed, &format!("mask.{site}"));
            for i in sample(&mut rng, n, k) {
                mask[i] = 1;
            }
            w.u8(&s.mask, &s.shape, &mask);
        }
    }

    // γ ≈ 1 and β ≈ 0 per path; running statistics are placeholders until calibrated.
    let mut affine: Vec<ChannelStats> = vec![HashMap::new(); 2];
    for bn in &arch.bns {
        for (path, p) in bn.paths.iter().enumerate() {
            let c = bn.channels;
            let mut gamma = vec![0f32; c];
            fill_standard_normal(&mut tensor_rng(spec.seed, &p.weight), 0.1, &mut gamma);
            gamma.iter_mut().for_each(|g| *g += 1.0);
            let mut beta = vec![0f32; c];
            fill_standard_normal(&mut tensor_rng(spec.seed, &p.bias), 0.1, &mut beta);
            w.f32(&p.weight, &[c], &gamma);
            w.f32(&p.bias, &[c], &beta);
            w.f32(&p.running_mean, &[c], &vec![0.0; c]);
            w.f32(&p.running_var, &[c], &vec![1.0; c]);
            affine[path].insert(bn.op.clone(), (gamma, beta));
        }
    }

    let paths: &[BnPath] = if spec.arch.layout.dual_bn() {
        &[BnPath::Clean, BnPath::Adv]
    } else {
        &[BnPath::Clean]
    };
    let (c, h, wd) = (3, spec.arch.dataset.side(), spec.arch.dataset.side());
    let n_img = spec.calibration_images.max(1);
    let mut images = vec![vec![0f32; c * h * wd]; n_img];
    for (i, img) in images.iter_mut().enumerate() {
        fill_standard_normal(
            &mut tensor_rng(spec.seed, &format!("calibration.{i}")),
            1.0,
            img,
        );
    }
    for (pi, &path) in paths.iter().enumerate() {
        let bundle = Bundle::from_vec(w.to_bytes()?)?;
        let net = bundle.network_unfolded(path)?;
        // The adversarial path sees slightly perturbed inputs, as it does in training.
        let imgs: Vec<Vec<f32>> = if path == BnPath::Adv {
            images
                .iter()
                .enumerate()
                .map(|(i, img)| {
                    let mut noise = vec![0f32; img.len()];
                    let mut rng = tensor_rng(spec.seed, &format!("calibration.adv.{i}"));
                    fill_standard_normal(&mut rng, 0.1, &mut noise);
                    img.iter().zip(&noise).map(|(a, b)| a + b).collect()
                })
                .collect()
        } else {
            images.clone()
        };
        let stats = calibrate(net, &imgs, &affine[pi]);
        for bn in &arch.bns {
            let p = &bn.paths[pi];
            if let Some((mean, var)) = stats.get(&bn.op) {
                w.f32(&p.running_mean, &[bn.channels], mean);
                w.f32(&p.running_var, &[bn.channels], var);
            }
        }
    }
    Ok(w)
}

/// Runs the unfolded network over `images`, setting each batch norm (a `ChannelAffine` named
/// after it) to standardize its input over the batch before going on; returns the per-channel
/// mean and variance found for each batch norm.
fn calibrate(mut net: Network, images: &[Vec<f32>], affine: &ChannelStats) -> ChannelStats {
    let mut stats = HashMap::new();
    let mut acts: Vec<Vec<Vec<f32>>> = Vec::with_capacity(net.layers.len());
    for li in 0..net.layers.len() {
        let in_shape = net.shape_of(net.layers[li].inputs[0]);
        if matches!(net.layers[li].op, Op::ChannelAffine(_)) {
            let name = net.layers[li].name.clone();
            let input = net.layers[li].inputs[0];
            let c = in_shape.dims()[0];
            let per = in_shape.elements() / c;
            let mut mean = vec![0f32; c];
            let mut var = vec![0f32; c];
            for ch in 0..c {
                let (mut s, mut s2) = (0f64, 0f64);
                for img in 0..images.len() {
                    let x = value(input, img, images, &acts);
                    for &v in &x[ch * per..(ch + 1) * per] {
                        s += f64::from(v);
                        s2 += f64::from(v) * f64::from(v);
                    }
                }
                let n = (per * images.len()) as f64;
                let m = s / n;
                mean[ch] = m as f32;
                var[ch] = (s2 / n - m * m).max(1e-6) as f32;
            }
            if let (Some((gamma, beta)), Op::ChannelAffine(ca)) =
                (affine.get(&name), &mut net.layers[li].op)
            {
                for ch in 0..c {
                    let sc = f64::from(gamma[ch]) / (f64::from(var[ch]) + 1e-5).sqrt();
                    ca.scale[ch] = sc as f32;
                    ca.shift[ch] = (f64::from(beta[ch]) - f64::from(mean[ch]) * sc) as f32;
                }
            }
            stats.insert(name, (mean, var));
        }
        let layer = &net.layers[li];
        let outs: Vec<Vec<f32>> = (0..images.len())
            .map(|img| {
                let ins: Vec<&[f32]> = layer
                    .inputs
                    .iter()
                    .map(|&v| value(v, img, images, &acts))
                    .collect();
                forward(layer, &ins, in_shape)
            })
            .collect();
        acts.push(outs);
    }
    stats
}

fn value<'x>(
    v: ValueId,
    img: usize,
    images: &'x [Vec<f32>],
    acts: &'x [Vec<Vec<f32>>],
) -> &'x [f32] {
    match v {
        ValueId::Input => &images[img],
        ValueId::Layer(j) => &acts[j][img],
    }
}

/// One layer of plain f32 inference (calibration only; `plain::f32` is the reference).
fn forward(layer: &Layer, ins: &[&[f32]], in_shape: Shape) -> Vec<f32> {
    let x = ins[0];
    match &layer.op {
        Op::Conv2d(c) => conv2d(c, x, in_shape, layer.out_shape),
        Op::ChannelAffine(a) => {
            let per = in_shape.elements() / a.scale.len();
            x.iter()
                .enumerate()
                .map(|(i, &v)| v * a.scale[i / per] + a.shift[i / per])
                .collect()
        }
        Op::Linear(l) => (0..l.out_features)
            .map(|o| {
                let row = &l.weight[o * l.in_features..(o + 1) * l.in_features];
                row.iter().zip(x).map(|(w, v)| w * v).sum::<f32>() + l.bias[o]
            })
            .collect(),
        Op::Relu { mask, .. } => x
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let keep = mask.as_ref().is_none_or(|m| m.keep[i]);
                if keep {
                    v.max(0.0)
                } else {
                    v
                }
            })
            .collect(),
        Op::Add => x.iter().zip(ins[1]).map(|(a, b)| a + b).collect(),
        Op::AvgPool { kernel, stride } => {
            pool(x, in_shape, layer.out_shape, *kernel, *stride, 0, false)
        }
        Op::MaxPool {
            kernel,
            stride,
            padding,
        } => pool(
            x,
            in_shape,
            layer.out_shape,
            *kernel,
            *stride,
            *padding,
            true,
        ),
        Op::Flatten => x.to_vec(),
    }
}

fn conv2d(c: &Conv2d, x: &[f32], in_shape: Shape, out_shape: Shape) -> Vec<f32> {
    let (Shape::Chw(ci, h, w), Shape::Chw(o, oh, ow)) = (in_shape, out_shape) else {
        return Vec::new();
    };
    let (kh, kw) = c.kernel;
    let (s, p) = (c.stride, c.padding);
    let mut out = vec![0f32; o * oh * ow];
    out.par_chunks_mut(oh * ow)
        .enumerate()
        .for_each(|(oc, plane)| {
            plane.iter_mut().for_each(|v| *v = c.bias[oc]);
            for ic in 0..ci {
                let xin = &x[ic * h * w..(ic + 1) * h * w];
                for ky in 0..kh {
                    for kx in 0..kw {
                        let wt = c.weight[((oc * ci + ic) * kh + ky) * kw + kx];
                        for oy in 0..oh {
                            let iy = (oy * s + ky) as isize - p as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            let row = &xin[iy as usize * w..(iy as usize + 1) * w];
                            let orow = &mut plane[oy * ow..(oy + 1) * ow];
                            for (ox, ov) in orow.iter_mut().enumerate() {
                                let ix = (ox * s + kx) as isize - p as isize;
                                if ix >= 0 && ix < w as isize {
                                    *ov += wt * row[ix as usize];
                                }
                            }
                        }
                    }
                }
            }
        });
    out
}

fn pool(
    x: &[f32],
    in_shape: Shape,
    out_shape: Shape,
    k: usize,
    s: usize,
    p: usize,
    max: bool,
) -> Vec<f32> {
    let (Shape::Chw(c, h, w), Shape::Chw(_, oh, ow)) = (in_shape, out_shape) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(c * oh * ow);
    for ch in 0..c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = if max { f32::NEG_INFINITY } else { 0.0 };
                for ky in 0..k {
                    for kx in 0..k {
                        let iy = (oy * s + ky) as isize - p as isize;
                        let ix = (ox * s + kx) as isize - p as isize;
                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                            continue;
                        }
                        let v = x[(ch * h + iy as usize) * w + ix as usize];
                        acc = if max { acc.max(v) } else { acc + v };
                    }
                }
                out.push(if max { acc } else { acc / (k * k) as f32 });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::arch::{Dataset, Layout};

    fn small(layout: Layout, allocation: Allocation) -> GenSpec {
        GenSpec::new(
            ArchSpec {
                layout,
                dataset: Dataset::Cifar10,
                width: 4,
            },
            allocation,
            11,
        )
    }

    #[test]
    fn named_lists_give_exact_per_site_counts() {
        let spec = small(Layout::RlnetDualBn, "ResNet18_C10_relu82k".parse().unwrap());
        let bundle = Bundle::from_vec(generate(&spec).unwrap().to_bytes().unwrap()).unwrap();
        let net = bundle.network(BnPath::Clean).unwrap();
        let fr = named_allocation("resnet18_c10_relu82k").unwrap();
        let sites = net.sites();
        assert_eq!(sites.len(), 17);
        for (s, f) in sites.iter().zip(fr) {
            assert_eq!(
                s.kept,
                (f * s.elements as f64).round() as usize,
                "site {}",
                s.site
            );
        }
        assert_eq!(bundle.card().budget, Some(net.kept_relus() as u64));
        assert!(bundle.card().synthetic);
        assert_eq!(bundle.card().method, "rlnet");
        assert_eq!(
            bundle.card().name.as_deref(),
            Some("resnet18-c10-rlnet-82k-w4")
        );
    }

    #[test]
    fn generation_is_deterministic_and_seed_dependent() {
        let spec = small(Layout::RlnetSingleBn, Allocation::Uniform(0.3));
        let a = Bundle::from_vec(generate(&spec).unwrap().to_bytes().unwrap()).unwrap();
        let b = Bundle::from_vec(generate(&spec).unwrap().to_bytes().unwrap()).unwrap();
        for name in a.tensor_names() {
            assert_eq!(a.tensor_bytes(name), b.tensor_bytes(name), "{name}");
        }
        let mut other = spec.clone();
        other.seed += 1;
        let c = Bundle::from_vec(generate(&other).unwrap().to_bytes().unwrap()).unwrap();
        assert_ne!(a.tensor_bytes("mask.3"), c.tensor_bytes("mask.3"));
    }

    #[test]
    fn calibrated_batch_norms_standardize_their_outputs() {
        // Re-run calibration on the generated bundle: every batch norm's input statistics must
        // now equal the stored running statistics, so its output has mean β and std γ.
        let spec = small(Layout::RlnetDualBn, Allocation::Uniform(0.5));
        let w = generate(&spec).unwrap();
        let bundle = Bundle::from_vec(w.to_bytes().unwrap()).unwrap();
        let net = bundle.network_unfolded(BnPath::Clean).unwrap();
        let mut images = vec![vec![0f32; 3 * 32 * 32]; 2];
        for (i, img) in images.iter_mut().enumerate() {
            fill_standard_normal(&mut tensor_rng(11, &format!("calibration.{i}")), 1.0, img);
        }
        let stats = calibrate(net, &images, &HashMap::new());
        let arch = resnet18(&spec.arch).unwrap();
        assert_eq!(stats.len(), arch.bns.len());
        for bn in &arch.bns {
            let (mean, var) = &stats[&bn.op];
            let p = &bn.paths[0];
            let stored_mean = bundle.tensor_bytes(&p.running_mean).unwrap();
            let stored_var = bundle.tensor_bytes(&p.running_var).unwrap();
            for ch in 0..bn.channels {
                let m = f32::from_le_bytes(stored_mean[4 * ch..4 * ch + 4].try_into().unwrap());
                let v = f32::from_le_bytes(stored_var[4 * ch..4 * ch + 4].try_into().unwrap());
                assert!(
                    (m - mean[ch]).abs() <= 1e-3 * (1.0 + v.sqrt()),
                    "{} mean",
                    bn.op
                );
                assert!(
                    (v / var[ch] - 1.0).abs() < 1e-2,
                    "{} var {v} vs {}",
                    bn.op,
                    var[ch]
                );
            }
        }
    }

    /// Whole-network f32 inference with this module's calibration kernels.
    fn run(net: &Network, image: &[f32]) -> Vec<f32> {
        let images = vec![image.to_vec()];
        let mut acts: Vec<Vec<Vec<f32>>> = Vec::new();
        for layer in &net.layers {
            let ins: Vec<&[f32]> = layer
                .inputs
                .iter()
                .map(|&v| value(v, 0, &images, &acts))
                .collect();
            let out = forward(layer, &ins, net.shape_of(layer.inputs[0]));
            acts.push(vec![out]);
        }
        value(net.output, 0, &images, &acts).to_vec()
    }

    #[test]
    fn folded_and_unfolded_networks_compute_the_same_logits_on_both_paths() {
        let spec = small(Layout::RlnetDualBn, Allocation::Uniform(0.4));
        let bundle = Bundle::from_vec(generate(&spec).unwrap().to_bytes().unwrap()).unwrap();
        let mut image = vec![0f32; 3 * 32 * 32];
        fill_standard_normal(&mut tensor_rng(99, "test image"), 1.0, &mut image);
        let mut per_path = Vec::new();
        for path in [BnPath::Clean, BnPath::Adv] {
            let folded = bundle.network(path).unwrap();
            let unfolded = bundle.network_unfolded(path).unwrap();
            assert!(folded.layers.len() < unfolded.layers.len());
            let (a, b) = (run(&folded, &image), run(&unfolded, &image));
            assert_eq!(a.len(), 10);
            for (x, y) in a.iter().zip(&b) {
                assert!(
                    (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                    "{path}: {x} vs {y}"
                );
            }
            per_path.push(a);
        }
        assert_ne!(
            per_path[0], per_path[1],
            "the two batch-norm paths must differ"
        );
    }

    #[test]
    fn tiny_imagenet_uses_64x64_inputs_and_200_classes() {
        let mut spec = small(
            Layout::RlnetSingleBn,
            "ResNet18_tiny_imagenet_relu300k".parse().unwrap(),
        );
        spec.arch.dataset = Dataset::TinyImageNet;
        spec.calibration_images = 1;
        let b = Bundle::from_vec(generate(&spec).unwrap().to_bytes().unwrap()).unwrap();
        let net = b.network(BnPath::Clean).unwrap();
        assert_eq!(net.input_shape, Shape::Chw(3, 64, 64));
        assert_eq!(net.shape_of(net.output), Shape::Flat(200));
        // Width 4 is 1/16 of ResNet18: 4 × 557,056 / 16 ReLU elements.
        assert_eq!(net.total_relus(), 139_264);
        assert_eq!(b.card().name.as_deref(), Some("resnet18-tin-senet-300k-w4"));
    }

    #[test]
    fn allocation_strings_round_trip_and_reject_nonsense() {
        for s in [
            "all",
            "uniform:0.25",
            "ResNet18_c100_relu50k",
            "fractions:0.1,1",
            "counts:3,4",
        ] {
            let a: Allocation = s.parse().unwrap();
            assert_eq!(a.to_string().parse::<Allocation>().unwrap(), a);
        }
        assert!("uniform:1.5".parse::<Allocation>().is_err());
        assert!("ResNet18_C10_relu1k".parse::<Allocation>().is_err());
        let counts = Allocation::Counts(vec![5, 6]);
        assert!(counts.keep_counts(&[4, 10]).is_err());
        assert!(counts.keep_counts(&[10]).is_err());
        assert_eq!(counts.keep_counts(&[10, 10]).unwrap(), vec![5, 6]);
    }

    #[test]
    fn seventeen_entry_lists_are_refused_for_the_snl_layout() {
        let spec = small(Layout::Snl, "ResNet18_C10_relu82k".parse().unwrap());
        assert!(matches!(generate(&spec), Err(ModelError::Gen { .. })));
        let ok = small(Layout::Snl, Allocation::Uniform(0.1));
        let b = Bundle::from_vec(generate(&ok).unwrap().to_bytes().unwrap()).unwrap();
        assert_eq!(b.network(BnPath::Clean).unwrap().sites().len(), 16);
    }
}
