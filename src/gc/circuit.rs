//! Boolean circuits: the flat gate list every garbling routine runs, the [`BinaryGates`] trait
//! gadgets are written against, the [`CircuitBuilder`] that records a gadget into a [`Circuit`],
//! and the plaintext interpreters ([`PlainGates`], [`Circuit::eval_plain`]) that serve as oracles.
//!
//! A gadget is written once, generically over [`BinaryGates`]; run with [`PlainGates`] it computes
//! on `bool`s, run with [`CircuitBuilder`] it records gates. The builder folds constants (so the
//! recorded circuit has no gate with a constant input), drops gates whose result is never used,
//! and renumbers wires so that a wire is reused as soon as its value is dead: the garbling engine
//! keeps one label per wire per instance, and few wires keep that working set in cache.

use super::GcError;

/// A wire number in a [`Circuit`].
pub type WireId = u32;

/// One gate of a [`Circuit`]. Every gate writes `out`; inputs are read before `out` is written,
/// so `out` may equal an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// `out = a ⊕ b` (free under free XOR).
    Xor {
        /// First input.
        a: WireId,
        /// Second input.
        b: WireId,
        /// Output.
        out: WireId,
    },
    /// `out = a ∧ b` (two ciphertexts under half gates).
    And {
        /// First input.
        a: WireId,
        /// Second input.
        b: WireId,
        /// Output.
        out: WireId,
    },
    /// `out = ¬a` (free: the garbler flips the meaning of the label, the evaluator copies it).
    Not {
        /// Input.
        a: WireId,
        /// Output.
        out: WireId,
    },
    /// `out = value`, a public constant.
    Const {
        /// The constant.
        value: bool,
        /// Output.
        out: WireId,
    },
}

/// A Boolean circuit as a flat gate list over numbered wires.
///
/// Wires `0..garbler_inputs` carry the garbler's inputs and the next `evaluator_inputs` wires the
/// evaluator's, in the order they were declared; the gates follow in evaluation order and may
/// reuse a wire once its previous value is dead. Built only through [`CircuitBuilder`], so every
/// gate reads wires that already hold a value and every wire number is below [`Circuit::wires`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Circuit {
    garbler_inputs: usize,
    evaluator_inputs: usize,
    wires: usize,
    gates: Vec<Gate>,
    outputs: Vec<WireId>,
    and_count: usize,
}

impl Circuit {
    /// Number of garbler input bits (wires `0..garbler_inputs()`).
    pub fn garbler_inputs(&self) -> usize {
        self.garbler_inputs
    }

    /// Number of evaluator input bits (wires `garbler_inputs()..garbler_inputs() + evaluator_inputs()`).
    pub fn evaluator_inputs(&self) -> usize {
        self.evaluator_inputs
    }

    /// Number of distinct wire numbers (the size of a label array for one instance).
    pub fn wires(&self) -> usize {
        self.wires
    }

    /// The gates in evaluation order.
    pub fn gates(&self) -> &[Gate] {
        &self.gates
    }

    /// The output wires, in output order.
    pub fn outputs(&self) -> &[WireId] {
        &self.outputs
    }

    /// Number of AND gates: each costs two ciphertexts (32 bytes) when garbled.
    pub fn and_count(&self) -> usize {
        self.and_count
    }

    /// Checks that `garbler` and `evaluator` inputs of one instance (bits or labels) are as many
    /// as the circuit takes; `what` names the two in the error.
    pub(crate) fn check_inputs(
        &self,
        what: [&'static str; 2],
        garbler: usize,
        evaluator: usize,
    ) -> Result<(), GcError> {
        check_len(what[0], self.garbler_inputs, garbler)?;
        check_len(what[1], self.evaluator_inputs, evaluator)
    }

    /// Evaluates the circuit on plaintext bits.
    ///
    /// Fails if the number of bits given for either party does not match the circuit.
    pub fn eval_plain(
        &self,
        garbler_bits: &[bool],
        evaluator_bits: &[bool],
    ) -> Result<Vec<bool>, GcError> {
        self.check_inputs(
            ["garbler input bits", "evaluator input bits"],
            garbler_bits.len(),
            evaluator_bits.len(),
        )?;
        let mut w = vec![false; self.wires];
        w[..self.garbler_inputs].copy_from_slice(garbler_bits);
        w[self.garbler_inputs..self.garbler_inputs + self.evaluator_inputs]
            .copy_from_slice(evaluator_bits);
        for g in &self.gates {
            match *g {
                Gate::Xor { a, b, out } => w[out as usize] = w[a as usize] ^ w[b as usize],
                Gate::And { a, b, out } => w[out as usize] = w[a as usize] & w[b as usize],
                Gate::Not { a, out } => w[out as usize] = !w[a as usize],
                Gate::Const { value, out } => w[out as usize] = value,
            }
        }
        Ok(self.outputs.iter().map(|&o| w[o as usize]).collect())
    }
}

pub(crate) fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), GcError> {
    if expected == got {
        Ok(())
    } else {
        Err(GcError::Length {
            what,
            expected,
            got,
        })
    }
}

/// The low `ell` bits of each word, little-endian within a word (bit 0 first), words in order.
pub fn words_to_bits(words: &[u64], ell: usize) -> Vec<bool> {
    words
        .iter()
        .flat_map(|&w| (0..ell).map(move |i| i < 64 && (w >> i) & 1 == 1))
        .collect()
}

/// The inverse of [`words_to_bits`]: packs each run of `ell` bits (bit 0 first) into a word.
/// Fails unless `1 ≤ ell ≤ 64` and `bits.len()` is a multiple of `ell`.
pub fn bits_to_words(bits: &[bool], ell: usize) -> Result<Vec<u64>, GcError> {
    if !(1..=64).contains(&ell) || !bits.len().is_multiple_of(ell) {
        return Err(GcError::Params(format!(
            "cannot pack {} bits into words of {ell} bits",
            bits.len()
        )));
    }
    Ok(bits.chunks(ell).map(pack_word).collect())
}

/// Packs up to 64 bits into a word, `bits[i]` at bit `i`, eight at a time: a group of eight
/// `bool`s read as the bytes of a `u64` (each 0 or 1) is gathered into one byte by a multiply
/// (the output colours of 100,000 ReLUs are 6.4 M bits).
#[inline]
fn pack_word(bits: &[bool]) -> u64 {
    debug_assert!(bits.len() <= 64);
    let mut eights = bits.chunks_exact(8);
    let mut w = 0u64;
    for (i, e) in (&mut eights).enumerate() {
        let x = u64::from_le_bytes(core::array::from_fn(|k| u8::from(e[k])));
        // Byte k of x (bit 8k) times bit 7(8 − k) of the constant lands on bit 56 + k; no
        // other product lands on bits 56..64, and no two on one bit (so nothing carries).
        w |= (x.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * i);
    }
    let base = bits.len() / 8 * 8;
    for (k, &b) in eights.remainder().iter().enumerate() {
        w |= u64::from(b) << (base + k);
    }
    w
}

/// The gates a gadget is written against, in the spirit of swanky's `FancyBinary`: one gadget,
/// many interpreters (a recorder, a plaintext evaluator, ...).
pub trait BinaryGates {
    /// What a wire carries in this interpreter (a `bool`, a recorded wire, ...).
    type Bit: Clone;
    /// `a ⊕ b`.
    fn xor(&mut self, a: &Self::Bit, b: &Self::Bit) -> Self::Bit;
    /// `a ∧ b`.
    fn and(&mut self, a: &Self::Bit, b: &Self::Bit) -> Self::Bit;
    /// `¬a`.
    fn not(&mut self, a: &Self::Bit) -> Self::Bit;
    /// The public constant `value`.
    fn constant(&mut self, value: bool) -> Self::Bit;
}

/// The plaintext interpreter: every bit is a `bool`.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlainGates;

impl BinaryGates for PlainGates {
    type Bit = bool;
    fn xor(&mut self, a: &bool, b: &bool) -> bool {
        a ^ b
    }
    fn and(&mut self, a: &bool, b: &bool) -> bool {
        a & b
    }
    fn not(&mut self, a: &bool) -> bool {
        !a
    }
    fn constant(&mut self, value: bool) -> bool {
        value
    }
}

/// A bit while a circuit is being recorded: a known constant or a wire of the recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildBit {
    /// A public constant, folded away wherever it meets a gate.
    Const(bool),
    /// A wire of the recording (numbered before renumbering).
    Wire(WireId),
}

/// Records a gadget into a [`Circuit`], folding constants as it goes.
///
/// Declare all garbler inputs, then all evaluator inputs (the order of declaration within a party
/// is the order of its input bits), run the gadget, declare the outputs and call
/// [`CircuitBuilder::finish`].
#[derive(Debug, Default)]
pub struct CircuitBuilder {
    garbler_inputs: usize,
    evaluator_inputs: usize,
    next_wire: WireId,
    gates: Vec<Gate>,
    outputs: Vec<BuildBit>,
    /// Set once an evaluator input or a gate was declared: garbler inputs must come first.
    frozen_garbler: bool,
    /// Set once a gate was recorded: inputs must come before gates.
    frozen_inputs: bool,
}

impl CircuitBuilder {
    /// An empty recording.
    pub fn new() -> Self {
        Self::default()
    }

    fn fresh(&mut self) -> WireId {
        let w = self.next_wire;
        self.next_wire += 1;
        w
    }

    /// Declares the next garbler input bit. Fails once an evaluator input or a gate was recorded.
    pub fn garbler_input(&mut self) -> Result<BuildBit, GcError> {
        if self.frozen_garbler {
            return Err(GcError::InputOrder);
        }
        self.garbler_inputs += 1;
        Ok(BuildBit::Wire(self.fresh()))
    }

    /// Declares `n` garbler input bits.
    pub fn garbler_inputs(&mut self, n: usize) -> Result<Vec<BuildBit>, GcError> {
        (0..n).map(|_| self.garbler_input()).collect()
    }

    /// Declares the next evaluator input bit. Fails once a gate was recorded.
    pub fn evaluator_input(&mut self) -> Result<BuildBit, GcError> {
        if self.frozen_inputs {
            return Err(GcError::InputOrder);
        }
        self.frozen_garbler = true;
        self.evaluator_inputs += 1;
        Ok(BuildBit::Wire(self.fresh()))
    }

    /// Declares `n` evaluator input bits.
    pub fn evaluator_inputs(&mut self, n: usize) -> Result<Vec<BuildBit>, GcError> {
        (0..n).map(|_| self.evaluator_input()).collect()
    }

    /// Declares `bit` as the next output.
    pub fn output(&mut self, bit: &BuildBit) {
        self.outputs.push(*bit);
    }

    fn gate(&mut self, make: impl FnOnce(WireId) -> Gate) -> BuildBit {
        self.frozen_garbler = true;
        self.frozen_inputs = true;
        let out = self.fresh();
        self.gates.push(make(out));
        BuildBit::Wire(out)
    }

    /// The finished circuit: dead gates removed, wires renumbered for reuse.
    pub fn finish(mut self) -> Circuit {
        // Constant outputs need a gate to hold them.
        let outputs: Vec<WireId> = std::mem::take(&mut self.outputs)
            .into_iter()
            .map(|b| match b {
                BuildBit::Wire(w) => w,
                BuildBit::Const(value) => match self.gate(|out| Gate::Const { value, out }) {
                    BuildBit::Wire(w) => w,
                    BuildBit::Const(_) => unreachable!("gate() always yields a wire"),
                },
            })
            .collect();
        let n_inputs = self.garbler_inputs + self.evaluator_inputs;
        let n_wires = self.next_wire as usize;

        // Backward pass: keep a gate only if its output is needed, and record each wire's last use
        // (as the index of the last kept gate reading it; outputs live past the end).
        let mut needed = vec![false; n_wires];
        for &o in &outputs {
            needed[o as usize] = true;
        }
        let mut keep = vec![false; self.gates.len()];
        for (i, g) in self.gates.iter().enumerate().rev() {
            let (ins, out) = gate_io(g);
            if needed[out as usize] {
                keep[i] = true;
                for w in ins.into_iter().flatten() {
                    needed[w as usize] = true;
                }
            }
        }
        let never = usize::MAX;
        let mut last_use = vec![never; n_wires];
        for &o in &outputs {
            last_use[o as usize] = self.gates.len();
        }
        for (i, g) in self.gates.iter().enumerate() {
            if keep[i] {
                for w in gate_io(g).0.into_iter().flatten() {
                    if last_use[w as usize] != self.gates.len() {
                        last_use[w as usize] = i;
                    }
                }
            }
        }

        // Forward pass: inputs keep their numbers; gate outputs take the lowest free number.
        let mut map = vec![WireId::MAX; n_wires];
        for (w, m) in map.iter_mut().enumerate().take(n_inputs) {
            *m = w as WireId;
        }
        let mut free: std::collections::BinaryHeap<std::cmp::Reverse<WireId>> = Default::default();
        let mut wires = n_inputs as WireId;
        // Inputs that nothing reads are free from the start.
        for (w, &last) in last_use.iter().enumerate().take(n_inputs) {
            if last == never {
                free.push(std::cmp::Reverse(w as WireId));
            }
        }
        let mut gates = Vec::with_capacity(self.gates.len());
        let mut and_count = 0;
        for (i, g) in self.gates.iter().enumerate() {
            if !keep[i] {
                continue;
            }
            let (ins, out) = gate_io(g);
            let mut mapped_in = [0 as WireId; 2];
            for (k, w) in ins.into_iter().enumerate() {
                if let Some(w) = w {
                    mapped_in[k] = map[w as usize];
                }
            }
            // Inputs read for the last time here release their numbers before the output is
            // placed, so the output may overwrite one of them.
            for (k, w) in ins.into_iter().enumerate() {
                if let Some(w) = w {
                    let dup = k == 1 && ins[0] == Some(w);
                    if last_use[w as usize] == i && !dup {
                        free.push(std::cmp::Reverse(map[w as usize]));
                    }
                }
            }
            let new_out = match free.pop() {
                Some(std::cmp::Reverse(w)) => w,
                None => {
                    wires += 1;
                    wires - 1
                }
            };
            map[out as usize] = new_out;
            if last_use[out as usize] == never {
                // Cannot happen for a kept gate, but a dead value must not pin its number.
                free.push(std::cmp::Reverse(new_out));
            }
            let [a, b] = mapped_in;
            gates.push(match *g {
                Gate::Xor { .. } => Gate::Xor { a, b, out: new_out },
                Gate::And { .. } => {
                    and_count += 1;
                    Gate::And { a, b, out: new_out }
                }
                Gate::Not { .. } => Gate::Not { a, out: new_out },
                Gate::Const { value, .. } => Gate::Const {
                    value,
                    out: new_out,
                },
            });
        }
        Circuit {
            garbler_inputs: self.garbler_inputs,
            evaluator_inputs: self.evaluator_inputs,
            wires: wires as usize,
            gates,
            outputs: outputs.iter().map(|&o| map[o as usize]).collect(),
            and_count,
        }
    }
}

fn gate_io(g: &Gate) -> ([Option<WireId>; 2], WireId) {
    match *g {
        Gate::Xor { a, b, out } | Gate::And { a, b, out } => ([Some(a), Some(b)], out),
        Gate::Not { a, out } => ([Some(a), None], out),
        Gate::Const { out, .. } => ([None, None], out),
    }
}

impl BinaryGates for CircuitBuilder {
    type Bit = BuildBit;

    fn xor(&mut self, a: &BuildBit, b: &BuildBit) -> BuildBit {
        match (*a, *b) {
            (BuildBit::Const(x), BuildBit::Const(y)) => BuildBit::Const(x ^ y),
            (BuildBit::Const(false), w) | (w, BuildBit::Const(false)) => w,
            (BuildBit::Const(true), w) | (w, BuildBit::Const(true)) => self.not(&w),
            (BuildBit::Wire(x), BuildBit::Wire(y)) if x == y => BuildBit::Const(false),
            (BuildBit::Wire(a), BuildBit::Wire(b)) => self.gate(|out| Gate::Xor { a, b, out }),
        }
    }

    fn and(&mut self, a: &BuildBit, b: &BuildBit) -> BuildBit {
        match (*a, *b) {
            (BuildBit::Const(x), BuildBit::Const(y)) => BuildBit::Const(x & y),
            (BuildBit::Const(false), _) | (_, BuildBit::Const(false)) => BuildBit::Const(false),
            (BuildBit::Const(true), w) | (w, BuildBit::Const(true)) => w,
            (BuildBit::Wire(x), BuildBit::Wire(y)) if x == y => BuildBit::Wire(x),
            (BuildBit::Wire(a), BuildBit::Wire(b)) => self.gate(|out| Gate::And { a, b, out }),
        }
    }

    fn not(&mut self, a: &BuildBit) -> BuildBit {
        match *a {
            BuildBit::Const(x) => BuildBit::Const(!x),
            BuildBit::Wire(a) => self.gate(|out| Gate::Not { a, out }),
        }
    }

    fn constant(&mut self, value: bool) -> BuildBit {
        BuildBit::Const(value)
    }
}

/// Counts the AND gates a gadget asks for without recording anything. Constants are folded as
/// the builder does, but dead gates are not removed, so this is an upper bound on
/// [`Circuit::and_count`] of the recorded gadget.
#[derive(Clone, Copy, Debug, Default)]
pub struct AndCounter {
    /// AND gates seen so far.
    pub ands: usize,
}

impl BinaryGates for AndCounter {
    /// `Some(v)` for a known constant, `None` for a value that depends on an input.
    type Bit = Option<bool>;
    fn xor(&mut self, a: &Option<bool>, b: &Option<bool>) -> Option<bool> {
        Some((*a)? ^ (*b)?)
    }
    fn and(&mut self, a: &Option<bool>, b: &Option<bool>) -> Option<bool> {
        match (*a, *b) {
            (Some(x), Some(y)) => Some(x & y),
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), w) | (w, Some(true)) => w,
            (None, None) => {
                self.ands += 1;
                None
            }
        }
    }
    fn not(&mut self, a: &Option<bool>) -> Option<bool> {
        a.map(|x| !x)
    }
    fn constant(&mut self, value: bool) -> Option<bool> {
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packing eight bits at a time gives each bit its place, for every width and for words
    /// whose bits are all set, none set or mixed.
    #[test]
    fn bits_to_words_packs_every_width() {
        let words = [
            0u64,
            u64::MAX,
            0x8000_0000_0000_0001,
            0x0123_4567_89ab_cdef,
            0xfedc_ba98_7654_3210,
        ];
        for ell in 1..=64 {
            let want: Vec<u64> = words
                .iter()
                .map(|&w| if ell == 64 { w } else { w & ((1 << ell) - 1) })
                .collect();
            let bits = words_to_bits(&words, ell);
            assert_eq!(bits_to_words(&bits, ell).unwrap(), want, "ell {ell}");
        }
        assert!(bits_to_words(&[true; 7], 3).is_err());
        assert!(bits_to_words(&[true; 65], 65).is_err());
    }

    /// A ripple-carry adder written once; used to compare the recorder with the plain interpreter.
    fn add<F: BinaryGates>(f: &mut F, x: &[F::Bit], y: &[F::Bit]) -> Vec<F::Bit> {
        let mut carry = f.constant(false);
        let mut out = Vec::new();
        for (a, b) in x.iter().zip(y) {
            let t = f.xor(a, b);
            out.push(f.xor(&t, &carry));
            let ac = f.xor(a, &carry);
            let bc = f.xor(b, &carry);
            let m = f.and(&ac, &bc);
            carry = f.xor(&carry, &m);
        }
        out
    }

    fn bits(v: u64, n: usize) -> Vec<bool> {
        (0..n).map(|i| (v >> i) & 1 == 1).collect()
    }

    #[test]
    fn recorded_adder_matches_plain_and_integer_addition() {
        let n = 9;
        let mut b = CircuitBuilder::new();
        let x = b.garbler_inputs(n).unwrap();
        let y = b.evaluator_inputs(n).unwrap();
        let s = add(&mut b, &x, &y);
        for o in &s {
            b.output(o);
        }
        let c = b.finish();
        // Carry into bit 0 is constant zero, and the carry out of the top bit is dead.
        assert_eq!(c.and_count(), n - 1);
        assert!(c.wires() < 2 * n + 5 * n, "wires are reused");
        for (x, y) in [(0u64, 0u64), (1, 511), (300, 300), (511, 511), (123, 45)] {
            let got = c.eval_plain(&bits(x, n), &bits(y, n)).unwrap();
            assert_eq!(got, bits((x + y) & 511, n));
            let plain = add(&mut PlainGates, &bits(x, n), &bits(y, n));
            assert_eq!(got, plain);
        }
    }

    #[test]
    fn constants_fold_and_constant_outputs_work() {
        let mut b = CircuitBuilder::new();
        let x = b.garbler_input().unwrap();
        let one = b.constant(true);
        let zero = b.constant(false);
        let nx = b.xor(&x, &one);
        let a = b.and(&nx, &one);
        let z = b.and(&x, &zero);
        let xx = b.xor(&x, &x);
        b.output(&a);
        b.output(&z);
        b.output(&one);
        b.output(&xx);
        let c = b.finish();
        assert_eq!(c.and_count(), 0);
        assert_eq!(
            c.eval_plain(&[false], &[]).unwrap(),
            vec![true, false, true, false]
        );
        assert_eq!(
            c.eval_plain(&[true], &[]).unwrap(),
            vec![false, false, true, false]
        );
    }

    #[test]
    fn bad_lengths_and_input_order_are_errors() {
        let mut b = CircuitBuilder::new();
        let x = b.evaluator_input().unwrap();
        assert!(matches!(b.garbler_input(), Err(GcError::InputOrder)));
        let y = b.not(&x);
        assert!(matches!(b.evaluator_input(), Err(GcError::InputOrder)));
        b.output(&y);
        let c = b.finish();
        assert!(matches!(
            c.eval_plain(&[true], &[true]),
            Err(GcError::Length { .. })
        ));
        assert_eq!(c.eval_plain(&[], &[true]).unwrap(), vec![false]);
    }

    #[test]
    fn dead_gates_are_dropped() {
        let mut b = CircuitBuilder::new();
        let x = b.garbler_input().unwrap();
        let y = b.evaluator_input().unwrap();
        let _dead = b.and(&x, &y);
        let live = b.xor(&x, &y);
        b.output(&live);
        let c = b.finish();
        assert_eq!(c.and_count(), 0);
        assert_eq!(c.gates().len(), 1);
    }

    #[test]
    fn and_counter_agrees_with_builder() {
        let n = 13;
        let mut counter = AndCounter::default();
        let x = vec![None; n];
        let _ = add(&mut counter, &x, &x.clone());
        // The counter does no dead-gate removal: the dead carry out of the top bit counts.
        assert_eq!(counter.ands, n);
    }
}
