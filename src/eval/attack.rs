//! White-box L∞ attacks in \[0,1\] pixel space, crafted against the f32 network: PGD (Madry et
//! al.) with a random start, and FGSM.
//!
//! PGD follows the usual recipe (RLNet's `helper/attack.py`, torchattacks): start at
//! `clip₀₁(x + U[−ε, ε])`, then `steps` times move by `step · sign(∇ₓ loss)` and project back
//! onto the ε-ball around `x` and onto \[0,1\]. The loss is each image's cross-entropy against its
//! label (`sign(0) = 0`, as `torch.sign`). The random start of image `i` of the dataset is drawn
//! from ChaCha8 seeded with the attack's seed on stream `i`, so it does not depend on the batch
//! or the shard the image falls in; the gradients of one image do not depend on the others
//! either (the loss is summed over the batch), up to the last bits of the GEMMs, which may sum
//! in another order for another batch size. Runs with the same batch boundaries reproduce
//! exactly.
//!
//! For a dual-BN model the caller passes the network loaded on the path the attack targets
//! (`BN_a` for RLNet's AdvA).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::float::{check_labels, FloatNet};
use super::EvalError;

/// L∞ projected gradient descent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pgd {
    /// Radius of the L∞ ball (pixels in \[0,1\]); default 8/255.
    pub eps: f32,
    /// Step size; default 2/255.
    pub step: f32,
    /// Gradient steps; default 7 (RLNet's validation script; its paper's tables use 20).
    pub steps: usize,
    /// Start from a uniform random point of the ball (default) rather than the image.
    pub random_start: bool,
    /// Seed of the random start.
    pub seed: u64,
}

impl Default for Pgd {
    fn default() -> Self {
        Pgd {
            eps: 8.0 / 255.0,
            step: 2.0 / 255.0,
            steps: 7,
            random_start: true,
            seed: 0,
        }
    }
}

impl Pgd {
    fn check(&self) -> Result<(), EvalError> {
        check_radius("eps", self.eps)?;
        check_radius("step", self.step)
    }
}

fn check_radius(what: &str, v: f32) -> Result<(), EvalError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(EvalError::Attack {
            reason: format!("{what} is {v}; it must be a finite number ≥ 0"),
        })
    }
}

/// An attack applied to a batch before it is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Attack {
    /// The clean images.
    #[default]
    None,
    /// One step of size `eps` along the gradient's sign, no random start.
    Fgsm {
        /// The step and radius.
        eps: f32,
    },
    /// Projected gradient descent.
    Pgd(Pgd),
}

impl Attack {
    /// The attacked batch: `pixels` `[N, C, H, W]` in \[0,1\], `labels` one per image,
    /// `first_index` the dataset index of the batch's first image (PGD's random start is drawn
    /// per index).
    pub fn perturb(
        &self,
        net: &FloatNet<'_, f32>,
        pixels: &[f32],
        labels: &[usize],
        first_index: u64,
    ) -> Result<Vec<f32>, EvalError> {
        match self {
            Attack::None => {
                net.images(pixels.len())?;
                Ok(pixels.to_vec())
            }
            Attack::Fgsm { eps } => fgsm(net, pixels, labels, *eps),
            Attack::Pgd(cfg) => pgd(net, pixels, labels, first_index, cfg),
        }
    }
}

/// Checks a batch an attack starts from: whole images in \[0,1\] and one valid label each.
fn check_batch(net: &FloatNet<'_, f32>, pixels: &[f32], labels: &[usize]) -> Result<(), EvalError> {
    let images = net.images(pixels.len())?;
    check_labels(labels, images, net.classes())?;
    let per = net.image_len();
    if let Some((i, &value)) = pixels
        .iter()
        .enumerate()
        .find(|(_, v)| !(0.0..=1.0).contains(*v))
    {
        return Err(EvalError::PixelRange {
            image: i / per,
            index: i % per,
            value,
        });
    }
    Ok(())
}

/// PGD against `net` (see the module doc): the adversarial batch.
pub fn pgd(
    net: &FloatNet<'_, f32>,
    pixels: &[f32],
    labels: &[usize],
    first_index: u64,
    cfg: &Pgd,
) -> Result<Vec<f32>, EvalError> {
    cfg.check()?;
    check_batch(net, pixels, labels)?;
    let per = net.image_len();
    let mut x = pixels.to_vec();
    if cfg.random_start {
        let eps = cfg.eps;
        x.par_chunks_mut(per).enumerate().for_each(|(n, img)| {
            let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
            rng.set_stream(first_index.wrapping_add(n as u64));
            for v in img {
                *v = (*v + rng.gen_range(-eps..=eps)).clamp(0.0, 1.0);
            }
        });
    }
    for _ in 0..cfg.steps {
        let grad = net.loss_grad(&x, labels)?.grad;
        signed_step(&mut x, pixels, &grad, cfg.step, cfg.eps);
    }
    Ok(x)
}

/// FGSM against `net`: `clip₀₁(x + eps · sign(∇ₓ loss))`.
pub fn fgsm(
    net: &FloatNet<'_, f32>,
    pixels: &[f32],
    labels: &[usize],
    eps: f32,
) -> Result<Vec<f32>, EvalError> {
    check_radius("eps", eps)?;
    check_batch(net, pixels, labels)?;
    let grad = net.loss_grad(pixels, labels)?.grad;
    let mut x = pixels.to_vec();
    signed_step(&mut x, pixels, &grad, eps, eps);
    Ok(x)
}

/// `x ← clip₀₁(x₀ + clip_{±eps}(x + step · sign(g) − x₀))`.
fn signed_step(x: &mut [f32], x0: &[f32], g: &[f32], step: f32, eps: f32) {
    x.par_iter_mut()
        .zip(x0.par_iter().zip(g.par_iter()))
        .for_each(|(x, (&x0, &g))| {
            let s = if g > 0.0 {
                step
            } else if g < 0.0 {
                -step
            } else {
                0.0
            };
            *x = (x0 + (*x + s - x0).clamp(-eps, eps)).clamp(0.0, 1.0);
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::float::tests::every_op_network;
    use crate::model::Preprocessing;

    fn batch(net: &FloatNet<'_, f32>, images: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = (0..images * net.image_len())
            .map(|_| rng.gen::<f32>())
            .collect();
        // Some pixels on the box's faces, where clipping matters.
        let mut x: Vec<f32> = x;
        for v in x.iter_mut().step_by(7) {
            *v = if *v > 0.5 { 1.0 } else { 0.0 };
        }
        let labels = (0..images).map(|n| (n * 3 + 1) % net.classes()).collect();
        (x, labels)
    }

    fn pre() -> Preprocessing {
        Preprocessing::normalized(vec![0.45, 0.5], vec![0.25, 0.3])
    }

    #[test]
    fn pgd_raises_the_loss_and_stays_in_the_ball_and_the_box() {
        let net = every_op_network(4);
        let f = FloatNet::<f32>::new(&net, pre()).unwrap();
        let (x, labels) = batch(&f, 6, 1);
        let clean = f.loss_grad(&x, &labels).unwrap().loss;
        for steps in [7, 20] {
            let cfg = Pgd {
                steps,
                ..Pgd::default()
            };
            let adv = pgd(&f, &x, &labels, 0, &cfg).unwrap();
            let attacked = f.loss_grad(&adv, &labels).unwrap().loss;
            for (n, (a, c)) in attacked.iter().zip(&clean).enumerate() {
                assert!(a > c, "PGD-{steps} image {n}: loss {a} not above clean {c}");
            }
            for (a, c) in adv.iter().zip(&x) {
                assert!((0.0..=1.0).contains(a));
                assert!((a - c).abs() <= cfg.eps * (1.0 + 1e-6), "{a} vs {c}");
            }
        }
    }

    #[test]
    fn pgd_is_deterministic_per_seed_and_image_index() {
        let net = every_op_network(5);
        let f = FloatNet::<f32>::new(&net, pre()).unwrap();
        let (x, labels) = batch(&f, 4, 2);
        let cfg = Pgd::default();
        let a = pgd(&f, &x, &labels, 10, &cfg).unwrap();
        assert_eq!(a, pgd(&f, &x, &labels, 10, &cfg).unwrap());
        let other_seed = Pgd { seed: 1, ..cfg };
        assert_ne!(a, pgd(&f, &x, &labels, 10, &other_seed).unwrap());
        // The random start of an image depends on its dataset index only, not its batch.
        let start = Pgd { steps: 0, ..cfg };
        let whole = pgd(&f, &x, &labels, 10, &start).unwrap();
        let per = f.image_len();
        let tail = pgd(&f, &x[2 * per..], &labels[2..], 12, &start).unwrap();
        assert_eq!(&whole[2 * per..], &tail[..]);
        assert_ne!(&whole[..per], &whole[per..2 * per]);
    }

    #[test]
    fn pgd_of_an_image_does_not_depend_on_its_batch() {
        // What makes sharded adversarial counts merge exactly with any `--batch`.
        let net = crate::plain::toy::toy_network(7, crate::plain::toy::ToyMasks::Random);
        let pre = Preprocessing::normalized(vec![0.5, 0.4, 0.3], vec![0.2, 0.3, 0.4]);
        let f = FloatNet::<f32>::new(&net, pre).unwrap();
        let (x, labels) = batch(&f, 5, 4);
        let per = f.image_len();
        let cfg = Pgd::default();
        let whole = pgd(&f, &x, &labels, 10, &cfg).unwrap();
        for n in 0..5 {
            let one = pgd(
                &f,
                &x[n * per..(n + 1) * per],
                &labels[n..n + 1],
                10 + n as u64,
                &cfg,
            )
            .unwrap();
            assert_eq!(one, whole[n * per..(n + 1) * per], "image {n}");
        }
    }

    #[test]
    fn fgsm_is_one_signed_step() {
        let net = every_op_network(6);
        let f = FloatNet::<f32>::new(&net, pre()).unwrap();
        let (x, labels) = batch(&f, 3, 3);
        let eps = 8.0 / 255.0;
        let g = f.loss_grad(&x, &labels).unwrap().grad;
        let adv = fgsm(&f, &x, &labels, eps).unwrap();
        for ((a, x), g) in adv.iter().zip(&x).zip(&g) {
            let want = (x + eps
                * if *g > 0.0 {
                    1.0
                } else if *g < 0.0 {
                    -1.0
                } else {
                    0.0
                })
            .clamp(0.0, 1.0);
            assert_eq!(*a, want);
        }
        let one_step = Pgd {
            eps,
            step: eps,
            steps: 1,
            random_start: false,
            seed: 0,
        };
        assert_eq!(adv, pgd(&f, &x, &labels, 0, &one_step).unwrap());
        assert_eq!(
            adv,
            Attack::Fgsm { eps }.perturb(&f, &x, &labels, 0).unwrap()
        );
        assert_eq!(x, Attack::None.perturb(&f, &x, &labels, 0).unwrap());
    }

    #[test]
    fn bad_attacks_are_errors() {
        let net = every_op_network(7);
        let f = FloatNet::<f32>::new(&net, pre()).unwrap();
        let (mut x, labels) = batch(&f, 2, 4);
        let bad = Pgd {
            eps: -1.0,
            ..Pgd::default()
        };
        assert!(matches!(
            pgd(&f, &x, &labels, 0, &bad),
            Err(EvalError::Attack { .. })
        ));
        assert!(matches!(
            fgsm(&f, &x, &labels, f32::NAN),
            Err(EvalError::Attack { .. })
        ));
        x[f.image_len() + 3] = 1.5;
        let err = fgsm(&f, &x, &labels, 0.1).unwrap_err().to_string();
        assert!(err.contains("image 1: pixel 3 is 1.5"), "{err}");
    }
}
