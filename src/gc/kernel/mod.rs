//! The AND-gate kernels of the batched engine ([`super::batch`]) and the group layout they work
//! on, with one picker: [`Kernel::detect`] takes the fastest kernel the CPU has, the way the
//! `aes` crate and our own transpose do.
//!
//! A group is [`GROUP`] instances stored wire-major ([`Lanes`]: one wire's label in every
//! instance of the group). The gate loops ([`garble_gates`], [`eval_gates`]) run XOR, NOT and
//! constants themselves and hand each AND gate of the whole group to a kernel:
//!
//! - [`vaes`] (x86-64 with VAES and AVX-512, detected at run time): fixed-key AES on 512-bit
//!   registers, four instances per register and eight registers in flight, fused with the
//!   half-gates arithmetic;
//! - [`portable`] (anywhere): one [`tccr_batch`](crate::crypto::aes::FixedKeyAes::tccr_batch)
//!   call per AND gate and group.
//!
//! Both produce identical tables (tested in `batch`). The three-halves engine
//! ([`thbatch`](super::thbatch)) runs its own AND kernels through the same gate loops, which are
//! generic over the table element; its fused x86-64 kernel is [`thvaes`].

pub(crate) mod portable;
#[cfg(target_arch = "x86_64")]
pub(crate) mod thvaes;
#[cfg(target_arch = "x86_64")]
pub(crate) mod vaes;

use super::circuit::{Circuit, Gate};
use crate::crypto::Block;

/// Instances interleaved gate by gate: each AND gate hashes `4 · GROUP` blocks (garbler) or
/// `2 · GROUP` (evaluator) in one batched AES call.
pub(crate) const GROUP: usize = 16;

/// One wire's labels for a whole group: lane `j` is words `2j` (low half) and `2j + 1` (high
/// half), the memory image of `[Block; GROUP]` on a little-endian machine. Kept as `u64` words
/// because LLVM vectorises loops over them, while it keeps `u128` in register pairs.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub struct Lanes(pub(crate) [u64; 2 * GROUP]);

impl Lanes {
    pub(crate) const ZERO: Lanes = Lanes([0; 2 * GROUP]);

    /// Every lane holds `b`.
    #[inline(always)]
    pub(crate) fn splat(b: Block) -> Lanes {
        let (lo, hi) = (b.0 as u64, (b.0 >> 64) as u64);
        Lanes(core::array::from_fn(|i| if i % 2 == 0 { lo } else { hi }))
    }

    /// Lane `j`.
    #[inline(always)]
    pub(crate) fn lane(&self, j: usize) -> Block {
        Block(u128::from(self.0[2 * j]) | (u128::from(self.0[2 * j + 1]) << 64))
    }

    /// Sets lane `j`.
    #[inline(always)]
    pub(crate) fn set_lane(&mut self, j: usize, b: Block) {
        self.0[2 * j] = b.0 as u64;
        self.0[2 * j + 1] = (b.0 >> 64) as u64;
    }

    /// Lane-wise XOR.
    #[inline(always)]
    pub(crate) fn xor(&self, other: &Lanes) -> Lanes {
        let mut o = Lanes::ZERO;
        for i in 0..2 * GROUP {
            o.0[i] = self.0[i] ^ other.0[i];
        }
        o
    }
}

/// [`Kernel::load_lanes`] of a full group, wires `0..per / 4 · 4`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn load_lanes_avx512(labels: &mut [Lanes], src: &[Block], per: usize) {
    use core::arch::x86_64::*;
    assert!(labels.len() >= per && src.len() >= GROUP * per);
    for jq in 0..GROUP / 4 {
        for wq in 0..per / 4 {
            // a[i]: wires 4wq..4wq + 4 of instance 4jq + i.
            let a: [__m512i; 4] = core::array::from_fn(|i| {
                let at = (4 * jq + i) * per + 4 * wq;
                // SAFETY: blocks `at..at + 4` lie in `src` (checked above); unaligned load.
                unsafe { _mm512_loadu_si512(src[at..at + 4].as_ptr().cast()) }
            });
            // t[l]: wire 4wq + l of instances 4jq..4jq + 4.
            let t = crate::crypto::vaes::transpose_lanes(a);
            for (l, v) in t.into_iter().enumerate() {
                let dst = &mut labels[4 * wq + l].0[8 * jq..8 * jq + 8];
                // SAFETY: eight words, 64-byte aligned (`Lanes` is, and `8 · jq` words are
                // 64 · jq bytes into it).
                unsafe { _mm512_store_si512(dst.as_mut_ptr().cast(), v) };
            }
        }
    }
}

/// The AND-gate kernel, chosen once per `Garbler` / `Evaluator` from the CPU's features.
#[derive(Clone, Copy, Debug)]
pub enum Kernel {
    /// Batched fixed-key AES through the `aes` crate
    /// ([`FIXED_KEY_AES`](crate::crypto::FIXED_KEY_AES)); runs anywhere.
    Portable,
    /// VAES on 256/512-bit registers, fused with the half-gates arithmetic.
    #[cfg(target_arch = "x86_64")]
    Vaes(vaes::RoundKeys),
}

impl Kernel {
    /// The fastest kernel this CPU runs.
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if let Some(keys) = vaes::RoundKeys::detect() {
            return Kernel::Vaes(keys);
        }
        Kernel::Portable
    }

    /// Loads `per` labels of each of `g ≤ GROUP` instances, instance `j`'s at `src[j·per..]`,
    /// into lane `j` of `labels[0..per]` (one wire's labels per [`Lanes`]): the transposition
    /// from the instance-major layout labels arrive in to the wire-major one the gate loops run
    /// on. On the VAES kernel (AVX-512) and a full group, four labels of four instances at a
    /// time (a 4 × 4 transpose of 128-bit lanes between 64-byte loads and stores) instead of
    /// one 16-byte move per label.
    #[inline]
    pub(crate) fn load_lanes(&self, labels: &mut [Lanes], g: usize, src: &[Block], per: usize) {
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if let (Kernel::Vaes(_), true) = (self, g == GROUP && per >= 4) {
            // SAFETY: holding VAES round keys proves the CPU has AVX-512F.
            unsafe { load_lanes_avx512(labels, src, per) };
            done = per / 4 * 4;
        }
        for j in 0..g {
            for (w, &l) in src[j * per + done..(j + 1) * per].iter().enumerate() {
                labels[done + w].set_lane(j, l);
            }
        }
    }

    /// `"vaes"` or `"portable"`.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Kernel::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Kernel::Vaes(_) => "vaes",
        }
    }

    /// Garbles one group of `g ≤ GROUP` instances whose input zero-labels are loaded in
    /// `labels` (wire-major): lane `j`'s tables go to `tables[j·2A..]`, its output zero-labels
    /// stay in `labels`.
    pub(crate) fn garble_group(
        &self,
        c: &Circuit,
        d: Block,
        labels: &mut [Lanes],
        g: usize,
        first: u64,
        tables: &mut [Block],
    ) {
        match self {
            Kernel::Portable => garble_gates(
                c,
                d,
                labels,
                g,
                tables,
                2 * c.and_count(),
                &mut portable::PortableGarble::new(d, first),
            ),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Kernel::Vaes` is only built from `RoundKeys::detect`, which checked the
            // CPU features `garble_gates_vaes` enables.
            Kernel::Vaes(keys) => unsafe {
                vaes::garble_gates_vaes(c, keys, d, labels, g, first, tables)
            },
        }
    }

    /// Evaluates one group of `g ≤ GROUP` instances whose input labels are loaded in
    /// `labels`; mirrors [`Kernel::garble_group`].
    pub(crate) fn eval_group(
        &self,
        c: &Circuit,
        labels: &mut [Lanes],
        g: usize,
        first: u64,
        tables: &[Block],
    ) {
        match self {
            Kernel::Portable => eval_gates(
                c,
                labels,
                g,
                tables,
                2 * c.and_count(),
                &mut portable::PortableEval::new(first),
            ),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as in `Kernel::garble_group`.
            Kernel::Vaes(keys) => unsafe {
                vaes::eval_gates_vaes(c, keys, labels, g, first, tables)
            },
        }
    }
}

/// Garbles AND gate `k` (in gate order) of lanes `0..g`, on wires `[a, b, out]` of `labels`
/// (`out` may equal `a` or `b`): writes lane `j`'s garbled material into its tables (which start
/// at `tables[j·stride]`; for half gates `[T_G, T_E]` at `2k`) and its output zero-label to lane
/// `j` of `labels[out]`. `T` is the table element: blocks for half gates, words for three-halves.
pub(crate) trait GarbleAnd<T> {
    #[allow(clippy::too_many_arguments)]
    fn and(
        &mut self,
        labels: &mut [Lanes],
        wires: [usize; 3],
        k: usize,
        g: usize,
        tables: &mut [T],
        stride: usize,
    );
}

/// Gates ahead of the one being evaluated whose tables the evaluator asks L1 for
/// ([`prefetch_lanes`]).
pub(crate) const AHEAD: usize = 4;

/// Asks L1 for element `at` of each of lanes `0..g`'s tables (lane `j`'s at
/// `tables[j·stride]`), if the lane has it: the three-halves evaluator's hint, [`AHEAD`] gates
/// on, for the material it will load there. The gates of a group run one after another (in an
/// adder each one's inputs are the last one's outputs) and one gate's hashes, quad by quad,
/// outlast the reorder window, so a table load that misses L1 stalls the whole chain; the
/// group's tables were only hinted into L2 before it started (`gc::batch`). (The half-gates
/// evaluator hashes the whole group before it loads any table and measured no gain from it.)
/// A hint: no effect on results.
#[inline(always)]
pub(crate) fn prefetch_lanes<T>(tables: &[T], stride: usize, g: usize, at: usize) {
    #[cfg(target_arch = "x86_64")]
    if at < stride {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        for j in 0..g {
            let p = tables.as_ptr().wrapping_add(j * stride + at);
            // SAFETY: prefetching never faults and reads nothing the program sees. SSE is part
            // of the x86-64 baseline.
            #[allow(unused_unsafe)]
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(p.cast())
            };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (tables, stride, g, at);
}

/// Evaluates AND gate `k` of lanes `0..g` on wires `[a, b, out]` of `labels`, lane `j`'s
/// tables starting at `tables[j·stride]`.
pub(crate) trait EvalAnd<T> {
    #[allow(clippy::too_many_arguments)]
    fn and(
        &mut self,
        labels: &mut [Lanes],
        wires: [usize; 3],
        k: usize,
        g: usize,
        tables: &[T],
        stride: usize,
    );
}

/// The garbler's gate loop over one group (labels already loaded). XOR, NOT and constants run
/// on all `GROUP` lanes (lanes past `g` hold garbage nobody reads), which keeps them branch-free
/// fixed-width loops.
#[inline(always)]
pub(crate) fn garble_gates<T, K: GarbleAnd<T>>(
    c: &Circuit,
    d: Block,
    labels: &mut [Lanes],
    g: usize,
    tables: &mut [T],
    stride: usize,
    kern: &mut K,
) {
    let dl = Lanes::splat(d);
    let mut k = 0usize;
    for gate in c.gates() {
        match *gate {
            Gate::Xor { a, b, out } => {
                labels[out as usize] = labels[a as usize].xor(&labels[b as usize])
            }
            Gate::Not { a, out } => labels[out as usize] = labels[a as usize].xor(&dl),
            Gate::Const { value, out } => labels[out as usize] = Lanes::splat(d.select(value)),
            Gate::And { a, b, out } => {
                kern.and(
                    labels,
                    [a as usize, b as usize, out as usize],
                    k,
                    g,
                    tables,
                    stride,
                );
                k += 1;
            }
        }
    }
}

/// The evaluator's gate loop over one group; mirrors [`garble_gates`].
#[inline(always)]
pub(crate) fn eval_gates<T, K: EvalAnd<T>>(
    c: &Circuit,
    labels: &mut [Lanes],
    g: usize,
    tables: &[T],
    stride: usize,
    kern: &mut K,
) {
    let mut k = 0usize;
    for gate in c.gates() {
        match *gate {
            Gate::Xor { a, b, out } => {
                labels[out as usize] = labels[a as usize].xor(&labels[b as usize])
            }
            Gate::Not { a, out } => labels[out as usize] = labels[a as usize],
            Gate::Const { out, .. } => labels[out as usize] = Lanes::ZERO,
            Gate::And { a, b, out } => {
                kern.and(
                    labels,
                    [a as usize, b as usize, out as usize],
                    k,
                    g,
                    tables,
                    stride,
                );
                k += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loaded_lanes_hold_each_instances_labels() {
        // Full and partial groups; wire counts below, at and around multiples of four.
        for g in [1usize, 5, GROUP] {
            for per in [1usize, 3, 4, 7, 64, 66] {
                let src: Vec<Block> = (0..g * per)
                    .map(|i| Block((i as u128 + 1) * 0x0123_4567_89ab_cdef_0011_2233_4455_6677))
                    .collect();
                // Both routes: the portable one and, where the CPU has it, AVX-512's.
                for kernel in [Kernel::Portable, Kernel::detect()] {
                    let mut labels = vec![Lanes::splat(Block::ONES); per + 1];
                    kernel.load_lanes(&mut labels, g, &src, per);
                    for w in 0..per {
                        for j in 0..GROUP {
                            let want = if j < g { src[j * per + w] } else { Block::ONES };
                            assert_eq!(
                                labels[w].lane(j),
                                want,
                                "{kernel:?} g {g} per {per} wire {w} lane {j}"
                            );
                        }
                    }
                    assert_eq!(labels[per].lane(0), Block::ONES, "nothing past the wires");
                }
            }
        }
    }
}
