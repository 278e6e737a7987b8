//! Public bundles: what a client needs of a model and nothing more — the graph, the shapes, the
//! masks and the card — written by `pibench public` from a full bundle.
//!
//! The client of a private inference must know the architecture and the masks (they are public
//! in the protocol) but must not need the server's weights. A public bundle is a valid bundle
//! whose private tensors are withheld: convolution and linear weights and biases are left out
//! and marked synthetic (placeholders drawn from seed 0, never the server's), batch-norm
//! parameters are stored as the identity, and the metadata entry [`KEY_PUBLIC`] says so. It
//! loads into a [`Network`](super::Network) whose shapes, masks and protocol fingerprint equal
//! the full bundle's, so `pibench client` can run against a server holding the full bundle;
//! everything that needs the weights (`run`, `serve`, `plain`, the oracle check) refuses it.

use super::bundle::{Bundle, KEY_PUBLIC};
use super::error::ModelError;
use super::raw::{RawBnParams, RawOp};
use super::writer::BundleWriter;

/// The value of [`KEY_PUBLIC`] in a public bundle.
pub const PUBLIC_MARKER: &str = r#"{"weights":"withheld"}"#;

/// The public bundle of `b`: its graph (with every shape a synthetic weight needs stated), card
/// and masks; no weight, bias or batch-norm statistic of `b`.
pub fn public_bundle(b: &Bundle) -> Result<BundleWriter, ModelError> {
    let mut graph = b.graph().clone();
    let mut masks = Vec::new();
    let mut bns: Vec<RawBnParams> = Vec::new();
    for op in &mut graph.ops {
        match op {
            RawOp::Conv2d(c) => {
                // Placeholders are synthetic: the graph must carry the shapes the stored weight
                // gave (checked against it by the loader of the full bundle).
                if let Some(m) = b.tensor_meta(&c.weight) {
                    if let [o, _, kh, kw] = m.shape[..] {
                        c.out_channels = Some(o);
                        c.kernel = Some(super::raw::Kernel::Rect([kh, kw]));
                    }
                }
            }
            RawOp::Linear(l) => {
                if let Some(m) = b.tensor_meta(&l.weight) {
                    if let [o, _] = m.shape[..] {
                        l.out_features = Some(o);
                    }
                }
            }
            RawOp::BatchNorm(n) => bns.push(n.params.clone()),
            RawOp::DualBatchNorm(n) => {
                bns.push(n.clean.clone());
                bns.push(n.adv.clone());
            }
            RawOp::Relu(r) => masks.extend(r.mask.clone()),
            _ => {}
        }
    }
    let mut w = BundleWriter::new(graph, b.card().clone());
    w.synthetic(0);
    w.metadata_override(KEY_PUBLIC, Some(PUBLIC_MARKER));
    for name in masks {
        let (Some(meta), Some(bytes)) = (b.tensor_meta(&name), b.tensor_bytes(&name)) else {
            return Err(ModelError::MissingTensor {
                op: "relu".into(),
                tensor: name,
            });
        };
        w.raw(&name, meta.dtype, &meta.shape, bytes.to_vec());
    }
    for p in bns {
        // The channel count is public (it is the activation's); the statistics are not.
        let c = b
            .tensor_meta(&p.weight)
            .map(|m| m.shape.clone())
            .ok_or_else(|| ModelError::MissingTensor {
                op: "batchnorm".into(),
                tensor: p.weight.clone(),
            })?;
        let n: usize = c.iter().product();
        w.f32(&p.weight, &c, &vec![1.0; n]);
        w.f32(&p.bias, &c, &vec![0.0; n]);
        w.f32(&p.running_mean, &c, &vec![0.0; n]);
        w.f32(&p.running_var, &c, &vec![1.0; n]);
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BnPath, GenSpec};

    #[test]
    fn a_public_bundle_has_no_weights_and_the_same_public_model() {
        use crate::model::arch::{ArchSpec, Dataset, Layout};
        let arch = ArchSpec {
            layout: Layout::RlnetDualBn,
            dataset: Dataset::Cifar10,
            width: 4,
        };
        let mut spec = GenSpec::new(arch, crate::model::Allocation::Uniform(0.3), 7);
        spec.calibration_images = 1;
        let full =
            Bundle::from_vec(crate::model::generate(&spec).unwrap().to_bytes().unwrap()).unwrap();
        let public = Bundle::from_vec(public_bundle(&full).unwrap().to_bytes().unwrap()).unwrap();
        assert!(public.is_public() && !full.is_public());
        // Only masks and identity batch norms are stored.
        for name in public.tensor_names() {
            let m = public.tensor_meta(name).unwrap();
            if m.dtype == safetensors::Dtype::F32 {
                let bytes = public.tensor_bytes(name).unwrap();
                let vals: Vec<f32> = bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                assert!(vals.iter().all(|&v| v == 0.0 || v == 1.0), "{name}");
            }
        }
        for bn in [BnPath::Clean, BnPath::Adv] {
            let (a, b) = (full.network(bn).unwrap(), public.network(bn).unwrap());
            assert_eq!(a.layers.len(), b.layers.len());
            for (x, y) in a.layers.iter().zip(&b.layers) {
                assert_eq!(
                    (&x.name, x.out_shape, x.op.kind()),
                    (&y.name, y.out_shape, y.op.kind())
                );
            }
            assert_eq!(a.kept_relus(), b.kept_relus());
            let ring = crate::ring::Ring::default();
            let (fa, fb) = (
                crate::plain::FixedNetwork::lower(&a, ring).unwrap(),
                crate::plain::FixedNetwork::lower(&b, ring).unwrap(),
            );
            for backend in [
                crate::protocol::prepro::Backend::Dealer,
                crate::protocol::prepro::Backend::He,
            ] {
                assert_eq!(
                    crate::protocol::fingerprint(&fa, backend, Default::default()),
                    crate::protocol::fingerprint(&fb, backend, Default::default())
                );
            }
        }
    }
}
