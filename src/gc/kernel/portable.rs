//! The portable AND-gate kernels: the group's hash inputs of one AND gate go through one batched
//! fixed-key AES call ([`FIXED_KEY_AES`]); runs on any CPU.

use super::{EvalAnd, GarbleAnd, Lanes, GROUP};
use crate::crypto::{Block, FIXED_KEY_AES};

/// The instance part of the tweaks of each lane: `(first + j) · 2⁶⁴`.
#[inline(always)]
fn lane_tweaks(first: u64) -> [u128; GROUP] {
    core::array::from_fn(|j| (first.wrapping_add(j as u64) as u128) << 64)
}

/// The portable garbler kernel: one [`FixedKeyAes::tccr_batch`](crate::crypto::aes::FixedKeyAes::tccr_batch)
/// over the group's `4g` hash inputs per AND gate.
pub(crate) struct PortableGarble {
    d: Block,
    inst: [u128; GROUP],
}

impl PortableGarble {
    pub(crate) fn new(d: Block, first: u64) -> Self {
        PortableGarble {
            d,
            inst: lane_tweaks(first),
        }
    }
}

impl GarbleAnd<Block> for PortableGarble {
    #[inline(always)]
    fn and(
        &mut self,
        labels: &mut [Lanes],
        wires: [usize; 3],
        k: usize,
        g: usize,
        tables: &mut [Block],
        stride: usize,
    ) {
        let (x, y) = (labels[wires[0]], labels[wires[1]]);
        let out = &mut labels[wires[2]];
        let d = self.d;
        let mut h = [Block::ZERO; 4 * GROUP];
        let mut tw = [Block::ZERO; 4 * GROUP];
        let mut scratch = [Block::ZERO; 4 * GROUP];
        let kk = (k as u128) << 1;
        for j in 0..g {
            let (t0, t1) = (Block(self.inst[j] | kk), Block(self.inst[j] | kk | 1));
            h[4 * j..4 * j + 4].copy_from_slice(&[
                x.lane(j),
                x.lane(j) ^ d,
                y.lane(j),
                y.lane(j) ^ d,
            ]);
            tw[4 * j..4 * j + 4].copy_from_slice(&[t0, t0, t1, t1]);
        }
        FIXED_KEY_AES.tccr_batch(&tw[..4 * g], &mut h[..4 * g], &mut scratch[..4 * g]);
        for j in 0..g {
            let (a0, b0) = (x.lane(j), y.lane(j));
            let (ha0, ha1, hb0, hb1) = (h[4 * j], h[4 * j + 1], h[4 * j + 2], h[4 * j + 3]);
            let tg = ha0 ^ ha1 ^ d.select(b0.lsb());
            let te = hb0 ^ hb1 ^ a0;
            let wg = ha0 ^ tg.select(a0.lsb());
            let we = hb0 ^ (hb0 ^ hb1).select(b0.lsb());
            let base = j * stride + 2 * k;
            tables[base] = tg;
            tables[base + 1] = te;
            out.set_lane(j, wg ^ we);
        }
    }
}

/// The portable evaluator kernel: one batched hash over the group's `2g` inputs per AND gate.
pub(crate) struct PortableEval {
    inst: [u128; GROUP],
}

impl PortableEval {
    pub(crate) fn new(first: u64) -> Self {
        PortableEval {
            inst: lane_tweaks(first),
        }
    }
}

impl EvalAnd<Block> for PortableEval {
    #[inline(always)]
    fn and(
        &mut self,
        labels: &mut [Lanes],
        wires: [usize; 3],
        k: usize,
        g: usize,
        tables: &[Block],
        stride: usize,
    ) {
        let (x, y) = (labels[wires[0]], labels[wires[1]]);
        let out = &mut labels[wires[2]];
        let mut h = [Block::ZERO; 2 * GROUP];
        let mut tw = [Block::ZERO; 2 * GROUP];
        let mut scratch = [Block::ZERO; 2 * GROUP];
        let kk = (k as u128) << 1;
        for j in 0..g {
            h[2 * j] = x.lane(j);
            h[2 * j + 1] = y.lane(j);
            tw[2 * j] = Block(self.inst[j] | kk);
            tw[2 * j + 1] = Block(self.inst[j] | kk | 1);
        }
        FIXED_KEY_AES.tccr_batch(&tw[..2 * g], &mut h[..2 * g], &mut scratch[..2 * g]);
        for j in 0..g {
            let (la, lb) = (x.lane(j), y.lane(j));
            let base = j * stride + 2 * k;
            let (tg, te) = (tables[base], tables[base + 1]);
            let wg = h[2 * j] ^ tg.select(la.lsb());
            let we = h[2 * j + 1] ^ (te ^ la).select(lb.lsb());
            out.set_lane(j, wg ^ we);
        }
    }
}
