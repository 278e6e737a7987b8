//! The fast engine: garble and evaluate many instances of one circuit at once, interleaved,
//! parallel and streamed.
//!
//! # How it goes fast
//!
//! Instances are processed in groups of `GROUP` (16): the engine walks the gate list once per group
//! and applies each gate to every instance of the group, with the labels stored wire-major (one
//! 64-byte-aligned `Lanes` value per wire holding that wire's label in every instance of the
//! group). XOR and NOT gates are then a few vector instructions per group; the per-gate dispatch
//! is paid once per group, nothing is allocated per gate, and nothing touches a channel per gate.
//! Every AND gate's hashes for the whole group (4 per instance for the garbler, 2 for the
//! evaluator) are computed together by the AND-gate kernel (`gc::kernel`: `vaes` on x86-64 with
//! VAES and AVX-512, else `portable`), chosen once per [`Garbler`] / [`Evaluator`]. Both
//! produce identical tables (tested). Groups are spread over cores with rayon (`*_par`), and
//! the streaming calls garble a bounded chunk of instances at a time while a helper thread moves
//! the previous chunk over the channel.
//!
//! # Table layout (what is stored and what goes on the wire)
//!
//! The garbled tables of `n` instances are one contiguous `[Block]` of
//! `n · 2 · and_count` blocks, instance-major: instance `i` (counted from the first instance of
//! the call) owns blocks `[i · 2A, (i + 1) · 2A)` with `A = and_count`, and within it the `k`-th
//! AND gate of the gate list owns `[2k] = T_G` (garbler half) and `[2k + 1] = T_E` (evaluator
//! half). On the wire each block is its 16 little-endian bytes
//! ([`BlockChannel::send_blocks`](crate::crypto::BlockChannel::send_blocks)). The layout does not depend on `GROUP`, on the number of
//! threads or on chunk sizes, so tables garbled in one way can be evaluated in any other.
//!
//! # Instance numbers
//!
//! Each call names the global number `first_instance` of its first instance; instance `i` of the
//! call is `first_instance + i`, and its AND gates are hashed with
//! [`and_tweaks`](super::halfgates::and_tweaks)`(first_instance + i, k)`. Within one Δ, every
//! instance number must be used at most once (across all calls and circuits) and the evaluator
//! must use the same numbers as the garbler.
//!
//! # Label arrays
//!
//! Garbler zero-labels `gb_zero[i · gi + w]` and evaluator zero-labels `ev_zero[i · ei + w]`
//! (`gi`, `ei` the circuit's input counts) for instance `i`; the evaluator's actual labels use
//! the same layout. Outputs `out[i · no + o]` (`no` outputs per instance): the colour of each
//! output label (`bool`) or the label itself (`Block`), as the caller asks ([`OutputWire`]).

use std::sync::mpsc;

use rayon::prelude::*;

use crate::crypto::block::{blocks_as_bytes_mut, zeroed_blocks};
use crate::crypto::buffer::BlockBuf;

use super::circuit::{check_len, Circuit};
use super::halfgates::Delta;
use super::kernel::{Kernel, Lanes, GROUP};
use super::GcError;
use crate::crypto::{Block, Prg};
use crate::net::channel::Channel;

/// Instances per rayon task in the parallel calls.
pub(super) const PAR_INSTANCES: usize = 8 * GROUP;

/// A reasonable chunk for the streaming calls: tables and output ciphertexts of 2048 64-bit
/// ReLUs are 4.2 MB with three-halves (5.2 MB with half gates). Half of session 12's 4096:
/// the garbler's first chunk and the client's last, which nothing overlaps, take half as long
/// (relu-bench: 5.85 µs against 6.20 µs on average over 10 alternating runs; 1024 was slower).
/// The protocol's ReLU sites stream with it and the client expects a site's silent-OT messages
/// at its chunk boundaries (`protocol::site`), so changing it changes the wire format: bump
/// `protocol::PROTOCOL_VERSION` with it.
pub const DEFAULT_STREAM_CHUNK: usize = 2048;

/// Number of table blocks for `n` instances of `circuit`: `n · 2 · and_count`.
pub fn table_blocks(circuit: &Circuit, n: usize) -> usize {
    n * 2 * circuit.and_count()
}

/// Number of bytes the tables of `n` instances of `circuit` take on the wire and in storage.
pub fn table_bytes(circuit: &Circuit, n: usize) -> u64 {
    16 * table_blocks(circuit, n) as u64
}

/// Per-group working memory, allocated once per call (or per rayon task), never per gate.
struct Workspace {
    labels: Vec<Lanes>,
    /// The scheme's per-group scratch (three-halves: the group's control randomness).
    scratch: Vec<Block>,
    /// A group's garbler zero-labels when they are drawn group by group ([`GroupLabels`]).
    drawn: Vec<Block>,
}

impl Workspace {
    fn new(circuit: &Circuit) -> Self {
        Workspace {
            labels: vec![Lanes::ZERO; circuit.wires()],
            scratch: Vec::new(),
            drawn: Vec::new(),
        }
    }
}

impl Drop for Workspace {
    // A garbler's workspace ends holding its last group's zero-labels (with the evaluator's
    // labels they would give Δ) and control randomness.
    fn drop(&mut self) {
        for l in &mut self.labels {
            zeroize::Zeroize::zeroize(&mut l.0);
        }
        crate::crypto::block::wipe(&mut self.scratch);
        crate::crypto::block::wipe(&mut self.drawn);
    }
}

/// The garbler's zero-labels of a batch: held by the caller, or drawn from a stream whose next
/// blocks are the batch's, `gi` per instance in order ([`GarblerLabels::Drawn`]).
#[derive(Clone, Copy)]
enum BatchLabels<'a> {
    Held(&'a [Block]),
    Drawn(&'a Prg),
}

/// The garbler's zero-labels of a range of instances, handed out group by group: a slice of
/// held ones, or drawn from a cursor on the stream at the range's first label, into the
/// workspace just before the group is loaded, so that they come from L1 instead of a
/// chunk-sized buffer filled beforehand.
enum GroupLabels<'a> {
    Held(&'a [Block]),
    Drawn(Box<Prg>),
}

/// The checked shape of a batch call.
#[derive(Clone, Copy)]
struct Shape {
    n: usize,
    gi: usize,
    ei: usize,
    no: usize,
    /// Table elements (blocks, or words for three-halves) per instance.
    tb: usize,
}

mod sealed {
    use super::{Block, Circuit, GcError, Kernel, Lanes};

    /// What a garbling scheme plugs into the shared engine ([`BatchGarbler`](super::BatchGarbler),
    /// [`BatchEvaluator`](super::BatchEvaluator)): its table element and per-instance table
    /// size, its instance-number limits and its per-group gate loops. Everything else (length
    /// checks, groups, rayon, streaming) is the engine's. Sealed: implemented by
    /// [`HalfGates`](super::HalfGates) and [`ThreeHalves`](crate::gc::thbatch::ThreeHalves).
    pub trait TableScheme: Send + Sync + 'static {
        /// The table element: a block (half gates) or a 64-bit word (three-halves).
        type Elem: Copy + Send + Sync + 'static;
        /// The garbler's secret besides Δ.
        type Keys: Clone + Send + Sync;
        /// How the tables are named in length errors, and the same as a multiple of instances.
        const TABLES: [&'static str; 2];
        /// Table elements per instance.
        fn instance_elems(c: &Circuit) -> usize;
        /// Refuses instance numbers (beyond the shared half-gates limits) the scheme cannot use.
        fn check_instances(first: u64, n: usize, ands: usize) -> Result<(), GcError>;
        /// The wire image of tables (each element's little-endian bytes).
        fn as_bytes_mut(t: &mut [Self::Elem]) -> &mut [u8];
        /// A block buffer seen as table elements.
        fn elems(buf: &[Block]) -> &[Self::Elem];
        /// [`TableScheme::elems`], mutable.
        fn elems_mut(buf: &mut [Block]) -> &mut [Self::Elem];
        /// Garbles one group of `g` instances whose zero-labels are loaded in `labels`; lane
        /// `j`'s tables go to `tables[j · instance_elems..]`.
        #[allow(clippy::too_many_arguments)]
        fn garble_group(
            kernel: &Kernel,
            keys: &Self::Keys,
            c: &Circuit,
            d: Block,
            labels: &mut [Lanes],
            scratch: &mut Vec<Block>,
            g: usize,
            first: u64,
            tables: &mut [Self::Elem],
        );
        /// Evaluates one group of `g` instances whose labels are loaded in `labels`.
        fn eval_group(
            kernel: &Kernel,
            c: &Circuit,
            labels: &mut [Lanes],
            g: usize,
            first: u64,
            tables: &[Self::Elem],
        );
    }
}
pub(super) use sealed::TableScheme;

/// The half-gates scheme ([`halfgates`](super::halfgates)) in the batched engine.
#[derive(Clone, Copy, Debug)]
pub struct HalfGates;

impl TableScheme for HalfGates {
    type Elem = Block;
    type Keys = ();
    const TABLES: [&'static str; 2] = [
        "garbled tables",
        "garbled tables (a multiple of 2·and_count)",
    ];

    fn instance_elems(c: &Circuit) -> usize {
        2 * c.and_count()
    }

    fn check_instances(_first: u64, _n: usize, _ands: usize) -> Result<(), GcError> {
        Ok(())
    }

    fn as_bytes_mut(t: &mut [Block]) -> &mut [u8] {
        crate::crypto::block::blocks_as_bytes_mut(t)
    }

    fn elems(buf: &[Block]) -> &[Block] {
        buf
    }

    fn elems_mut(buf: &mut [Block]) -> &mut [Block] {
        buf
    }

    #[inline(always)]
    fn garble_group(
        kernel: &Kernel,
        _keys: &(),
        c: &Circuit,
        d: Block,
        labels: &mut [Lanes],
        _scratch: &mut Vec<Block>,
        g: usize,
        first: u64,
        tables: &mut [Block],
    ) {
        kernel.garble_group(c, d, labels, g, first, tables)
    }

    #[inline(always)]
    fn eval_group(
        kernel: &Kernel,
        c: &Circuit,
        labels: &mut [Lanes],
        g: usize,
        first: u64,
        tables: &[Block],
    ) {
        kernel.eval_group(c, labels, g, first, tables)
    }
}

/// Garbles many half-gates instances of one circuit under one Δ (see the module docs for every
/// layout).
pub type Garbler<'a> = BatchGarbler<'a, HalfGates>;

/// Evaluates many half-gates instances of one circuit (see the module docs for every layout).
pub type Evaluator<'a> = BatchEvaluator<'a, HalfGates>;

/// Infers `n` from the output slice and checks every other slice against it, for tables of
/// `tb` elements per instance.
fn shape_with(
    circuit: &Circuit,
    gb_len: usize,
    ev_len: usize,
    tables_len: Option<usize>,
    first_instance: u64,
    out_len: usize,
    tb: usize,
) -> Result<Shape, GcError> {
    let no = circuit.outputs().len();
    if no == 0 {
        return Err(GcError::Params(
            "a circuit without outputs cannot be batched".into(),
        ));
    }
    if !out_len.is_multiple_of(no) {
        return Err(GcError::Length {
            what: "outputs (a multiple of the circuit's outputs)",
            expected: no,
            got: out_len,
        });
    }
    let n = out_len / no;
    let (gi, ei) = (circuit.garbler_inputs(), circuit.evaluator_inputs());
    check_len("garbler labels", n * gi, gb_len)?;
    check_len("evaluator labels", n * ei, ev_len)?;
    if let Some(t) = tables_len {
        check_len("garbled tables", n * tb, t)?;
    }
    super::halfgates::check_instances(first_instance, n, circuit.and_count())?;
    Ok(Shape { n, gi, ei, no, tb })
}

/// Splits a batch into rayon jobs of at most [`PAR_INSTANCES`] instances:
/// `(first instance within the call, count, its tables, its outputs)`.
fn jobs<'t, 'l, T, O>(
    s: Shape,
    mut tables: &'t mut [T],
    mut out: &'l mut [O],
) -> Vec<(usize, usize, &'t mut [T], &'l mut [O])> {
    let mut v = Vec::with_capacity(s.n.div_ceil(PAR_INSTANCES));
    let mut i0 = 0;
    while i0 < s.n {
        let m = PAR_INSTANCES.min(s.n - i0);
        let (t, tr) = std::mem::take(&mut tables).split_at_mut(m * s.tb);
        let (l, lr) = std::mem::take(&mut out).split_at_mut(m * s.no);
        v.push((i0, m, t, l));
        (tables, out) = (tr, lr);
        i0 += m;
    }
    v
}

/// Loads the labels of `g` instances into the wire-major workspace.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn load_inputs(
    kernel: &Kernel,
    labels: &mut [Lanes],
    g: usize,
    gb: &[Block],
    gi: usize,
    ev: &[Block],
    ei: usize,
) {
    let (gb_lanes, ev_lanes) = labels.split_at_mut(gi);
    kernel.load_lanes(gb_lanes, g, gb, gi);
    kernel.load_lanes(ev_lanes, g, ev, ei);
}

/// Asks the caches for `data`, one hint per 64-byte line: what the group after the one about
/// to run reads, its input labels and, when evaluating, its tables (the evaluator's come from
/// storage written long before, so from memory). A group reads 16 instances' labels and
/// tables scattered over tens of KB that the hardware prefetcher does not anticipate, and its
/// gate loop is long enough to hide their fetch. Into L2, so the running group's working set
/// keeps L1. A hint only: no effect on results.
#[inline(always)]
fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
        let p = data.as_ptr().cast::<i8>();
        for offset in (0..std::mem::size_of_val(data)).step_by(64) {
            // SAFETY: prefetching never faults and reads nothing the program sees; the address
            // lies inside `data`. SSE is part of the x86-64 baseline.
            #[allow(unused_unsafe)]
            unsafe {
                _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(offset))
            };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// What a batch call writes for each output wire of each instance.
///
/// Decoding needs only the colour of each output label (`bool`): the garbler's zero-label
/// colours and the evaluator's label colours give the bits. Turning outputs into additive
/// shares (`gc::arith`) needs the labels themselves (`Block`): the garbler's zero-labels, the
/// evaluator's labels. Zero-labels are secret to the garbler (with the evaluator's labels they
/// give Δ).
pub trait OutputWire: Copy + Send + Sync + 'static {
    /// What is kept of an output label.
    fn of_label(label: Block) -> Self;
    /// Overwrites `out` where it may hold secrets (zero-labels).
    fn wipe(out: &mut [Self]);
}

impl OutputWire for bool {
    #[inline(always)]
    fn of_label(label: Block) -> bool {
        label.lsb()
    }
    // A colour alone reveals nothing once the labels are gone.
    fn wipe(_: &mut [bool]) {}
}

impl OutputWire for Block {
    #[inline(always)]
    fn of_label(label: Block) -> Block {
        label
    }
    fn wipe(out: &mut [Block]) {
        crate::crypto::block::wipe(out);
    }
}

/// Writes the outputs of `g` instances.
#[inline(always)]
fn store_outputs<O: OutputWire>(labels: &[Lanes], g: usize, outputs: &[u32], out: &mut [O]) {
    let no = outputs.len();
    for j in 0..g {
        for (o, &w) in outputs.iter().enumerate() {
            out[j * no + o] = O::of_label(labels[w as usize].lane(j));
        }
    }
}

/// Where a streaming garbler's own zero-labels come from (see [`BatchGarbler::garble_stream`]).
pub enum GarblerLabels<'g> {
    /// All `n · garbler_inputs` of them, held by the caller.
    Held(&'g [Block]),
    /// Drawn from this stream group by group as they are garbled: the same tables as
    /// [`GarblerLabels::Held`] given the stream's next `n · garbler_inputs` blocks, without ever
    /// holding them all (for 100,000 64-bit ReLUs, 102 MB the process need not fault in).
    Drawn(&'g mut Prg),
}

/// A source of evaluator zero-labels for [`EvaluatorLabels::Expanded`]: fills its first
/// argument with the next labels and may append blocks to send ahead of them to its second.
pub type ExpandLabels<'g> = dyn FnMut(&mut [Block], &mut Vec<Block>) -> Result<(), GcError> + 'g;

/// Where a streaming garbler's zero-labels of the evaluator's inputs come from (see
/// [`BatchGarbler::garble_stream`]).
pub enum EvaluatorLabels<'g> {
    /// All `n · evaluator_inputs` of them, held by the caller.
    Held(&'g [Block]),
    /// Computed chunk by chunk as they are garbled: each call fills the next labels in order
    /// (the OT's outputs expanded a piece at a time, without ever holding them all: for
    /// 100,000 64-bit ReLUs, 205 MB the process need not fault in), and may append blocks to
    /// its second argument (silent OT's chunk messages), which go on the wire just before
    /// the tables garbled with those labels.
    Expanded(&'g mut ExpandLabels<'g>),
}

/// Garbles many instances of one circuit under one Δ with scheme `S`: the engine shared by
/// [`Garbler`] and [`ThGarbler`](super::ThGarbler).
pub struct BatchGarbler<'a, S: TableScheme> {
    circuit: &'a Circuit,
    delta: Delta,
    keys: S::Keys,
    kernel: Kernel,
}

impl<'a> Garbler<'a> {
    /// A garbler of `circuit` under `delta`.
    pub fn new(circuit: &'a Circuit, delta: &Delta) -> Self {
        BatchGarbler::with_keys(circuit, delta, ())
    }
}

impl<'a, S: TableScheme> BatchGarbler<'a, S> {
    pub(super) fn with_keys(circuit: &'a Circuit, delta: &Delta, keys: S::Keys) -> Self {
        BatchGarbler {
            circuit,
            delta: delta.clone(),
            keys,
            kernel: Kernel::detect(),
        }
    }

    /// The same garbler on the portable AND-gate kernel (for comparison and tests; the tables
    /// are identical).
    pub fn portable(self) -> Self {
        BatchGarbler {
            kernel: Kernel::Portable,
            ..self
        }
    }

    /// The AND-gate kernel in use: `"vaes"` or `"portable"`.
    pub fn kernel(&self) -> &'static str {
        self.kernel.name()
    }

    /// The circuit being garbled.
    pub fn circuit(&self) -> &Circuit {
        self.circuit
    }

    /// Garbles `n = out.len() / outputs` instances on the calling thread.
    ///
    /// Instance `i` uses garbler zero-labels `gb_zero[i·gi..]` and evaluator zero-labels
    /// `ev_zero[i·ei..]`; writes its tables to `tables[i·W..]` (`W` table elements per
    /// instance: `2 · and_count` blocks for half gates) and its output zero-labels, or their
    /// colours (what [`decode`](super::halfgates::decode) needs), to `out[i·no..]`
    /// ([`OutputWire`]). `first_instance` is the global number of instance 0 in the session.
    pub fn garble_batch<O: OutputWire>(
        &self,
        gb_zero: &[Block],
        ev_zero: &[Block],
        first_instance: u64,
        tables: &mut [S::Elem],
        out: &mut [O],
    ) -> Result<(), GcError> {
        self.garble_on(
            false,
            BatchLabels::Held(gb_zero),
            ev_zero,
            first_instance,
            tables,
            out,
        )
    }

    /// [`BatchGarbler::garble_batch`] spread over the rayon thread pool; same inputs, same
    /// outputs.
    pub fn garble_batch_par<O: OutputWire>(
        &self,
        gb_zero: &[Block],
        ev_zero: &[Block],
        first_instance: u64,
        tables: &mut [S::Elem],
        out: &mut [O],
    ) -> Result<(), GcError> {
        self.garble_on(
            true,
            BatchLabels::Held(gb_zero),
            ev_zero,
            first_instance,
            tables,
            out,
        )
    }

    /// [`BatchGarbler::garble_batch`] on the calling thread or (`par`) over the rayon pool.
    fn garble_on<O: OutputWire>(
        &self,
        par: bool,
        gb_zero: BatchLabels<'_>,
        ev_zero: &[Block],
        first_instance: u64,
        tables: &mut [S::Elem],
        out: &mut [O],
    ) -> Result<(), GcError> {
        let gb_len = match gb_zero {
            BatchLabels::Held(g) => g.len(),
            // As many as the outputs ask for (`shape` checks those).
            BatchLabels::Drawn(_) => {
                out.len() / self.circuit.outputs().len().max(1) * self.circuit.garbler_inputs()
            }
        };
        let s = shape::<S>(
            self.circuit,
            gb_len,
            ev_zero.len(),
            Some(tables.len()),
            first_instance,
            out.len(),
        )?;
        let job = |ws: &mut Workspace,
                   (i0, m, tab, lsb): (usize, usize, &mut [S::Elem], &mut [O])| {
            let sub = Shape { n: m, ..s };
            let gb = match gb_zero {
                BatchLabels::Held(g) => GroupLabels::Held(&g[i0 * s.gi..(i0 + m) * s.gi]),
                BatchLabels::Drawn(prg) => {
                    GroupLabels::Drawn(Box::new(prg.ahead((i0 * s.gi) as u128)))
                }
            };
            let ev = &ev_zero[i0 * s.ei..(i0 + m) * s.ei];
            self.garble_range(ws, sub, gb, ev, first_instance + i0 as u64, tab, lsb);
        };
        if par {
            jobs(s, tables, out)
                .into_par_iter()
                .for_each_init(|| Workspace::new(self.circuit), job);
        } else {
            job(&mut Workspace::new(self.circuit), (0, s.n, tables, out));
        }
        Ok(())
    }

    /// Garbles in chunks of `chunk` instances (in parallel) and writes each chunk's tables to
    /// `chan` in order; flushes at the end. A helper thread sends chunk `i` while chunk `i + 1`
    /// is garbled, so memory stays bounded by two chunks whatever `n` is. Arguments as for
    /// [`BatchGarbler::garble_batch`], without the tables, and with the garbler's zero-labels
    /// held or drawn ([`GarblerLabels`]) and the evaluator's held or expanded
    /// ([`EvaluatorLabels`]), whose expansion may send blocks ahead of each chunk's tables.
    /// Returns the table bytes sent (the scheme's
    /// `table_bytes(circuit, n)`).
    pub fn garble_stream<C: Channel + ?Sized, O: OutputWire>(
        &self,
        chan: &mut C,
        gb: GarblerLabels<'_>,
        ev: EvaluatorLabels<'_>,
        first_instance: u64,
        out: &mut [O],
        chunk: usize,
    ) -> Result<u64, GcError> {
        let no = self.circuit.outputs().len().max(1);
        let n = out.len() / no;
        if out.len() != n * no {
            // `shape` words the error.
            shape::<S>(self.circuit, 0, 0, None, first_instance, out.len())?;
        }
        self.garble_stream_with(chan, gb, ev, first_instance, n, chunk, 0, |i0, o, _| {
            out[i0 * no..i0 * no + o.len()].copy_from_slice(o);
            Ok(())
        })
    }

    /// [`BatchGarbler::garble_stream`] for `n` instances, handing each chunk's outputs to
    /// `outputs(first instance of the chunk within the call, its outputs, trailer)` as soon as
    /// the chunk is garbled, instead of keeping all of them: what is derived from a chunk's
    /// outputs is computed beside the stream, and only it is kept. `trailer` is
    /// `trailer_bytes` per instance of the chunk, sent right after the chunk's tables (the
    /// output ciphertexts of [`ArithOutputs`](super::arith::ArithOutputs), so that they travel
    /// with their chunk instead of in one tail after the last). The chunk's outputs are wiped
    /// afterwards (zero-labels are secret). Returns the table bytes sent, trailers not counted.
    #[allow(clippy::too_many_arguments)]
    pub fn garble_stream_with<C: Channel + ?Sized, O: OutputWire>(
        &self,
        chan: &mut C,
        mut gb: GarblerLabels<'_>,
        mut ev: EvaluatorLabels<'_>,
        first_instance: u64,
        n: usize,
        chunk: usize,
        trailer_bytes: usize,
        mut outputs: impl FnMut(usize, &[O], &mut [u8]) -> Result<(), GcError>,
    ) -> Result<u64, GcError> {
        let (gi, ei) = (
            self.circuit.garbler_inputs(),
            self.circuit.evaluator_inputs(),
        );
        let no = self.circuit.outputs().len();
        let gb_len = match &gb {
            GarblerLabels::Held(g) => g.len(),
            GarblerLabels::Drawn(_) => n * gi,
        };
        let ev_len = match &ev {
            EvaluatorLabels::Held(e) => e.len(),
            EvaluatorLabels::Expanded(_) => n * ei,
        };
        let s = shape::<S>(self.circuit, gb_len, ev_len, None, first_instance, n * no)?;
        let unit = std::mem::size_of::<S::Elem>() * s.tb;
        // Reused chunk after chunk; zeroed by the allocator, first touched when filled.
        let m_max = chunk.max(1).min(s.n);
        let mut out: Vec<O> = (0..m_max * s.no)
            .map(|_| O::of_label(Block::ZERO))
            .collect();
        let mut ev_drawn = match ev {
            EvaluatorLabels::Expanded(_) => zeroed_blocks(m_max * s.ei),
            EvaluatorLabels::Held(_) => Vec::new(),
        };
        let sent = send_chunks(
            chan,
            s.n,
            unit + trailer_bytes,
            chunk,
            |i0, m, buf, ahead| {
                let gb_chunk = match &gb {
                    GarblerLabels::Held(g) => BatchLabels::Held(&g[i0 * s.gi..(i0 + m) * s.gi]),
                    GarblerLabels::Drawn(prg) => BatchLabels::Drawn(prg),
                };
                let ev_chunk: &[Block] = match &mut ev {
                    EvaluatorLabels::Held(e) => &e[i0 * s.ei..(i0 + m) * s.ei],
                    EvaluatorLabels::Expanded(fill) => {
                        let e = &mut ev_drawn[..m * s.ei];
                        let mut msg = Vec::new();
                        fill(e, &mut msg)?;
                        ahead(msg)?;
                        e
                    }
                };
                let o = &mut out[..m * s.no];
                self.garble_on(
                    true,
                    gb_chunk,
                    ev_chunk,
                    first_instance + i0 as u64,
                    &mut S::elems_mut(buf)[..m * s.tb],
                    o,
                )?;
                if let GarblerLabels::Drawn(prg) = &mut gb {
                    // The chunk's tasks drew from cursors ahead of this one; it moves past them.
                    **prg = prg.ahead((m * s.gi) as u128);
                }
                let trailer = &mut blocks_as_bytes_mut(buf)[m * unit..m * (unit + trailer_bytes)];
                outputs(i0, o, trailer)
            },
        );
        // Zero-labels: with the evaluator's labels they would give Δ.
        for b in ev_drawn.iter_mut() {
            zeroize::Zeroize::zeroize(&mut b.0);
        }
        O::wipe(&mut out);
        sent.map(|b| b - (s.n * trailer_bytes) as u64)
    }

    /// Garbles `s.n` instances, group by group. Lengths are already checked.
    #[allow(clippy::too_many_arguments)]
    fn garble_range<O: OutputWire>(
        &self,
        ws: &mut Workspace,
        s: Shape,
        mut gb_zero: GroupLabels<'_>,
        ev_zero: &[Block],
        first: u64,
        tables: &mut [S::Elem],
        out: &mut [O],
    ) {
        let c = self.circuit;
        let d = self.delta.block();
        let mut i0 = 0;
        while i0 < s.n {
            let g = GROUP.min(s.n - i0);
            let next = (i0 + g..(i0 + 2 * g).min(s.n)).len();
            if let GroupLabels::Held(gb) = gb_zero {
                prefetch(&gb[(i0 + g) * s.gi..(i0 + g + next) * s.gi]);
            }
            prefetch(&ev_zero[(i0 + g) * s.ei..(i0 + g + next) * s.ei]);
            let gb: &[Block] = match &mut gb_zero {
                GroupLabels::Held(gb) => &gb[i0 * s.gi..(i0 + g) * s.gi],
                GroupLabels::Drawn(prg) => {
                    ws.drawn.resize(GROUP * s.gi, Block::ZERO);
                    let drawn = &mut ws.drawn[..g * s.gi];
                    prg.fill_blocks(drawn);
                    drawn
                }
            };
            // One group of `g ≤ GROUP` instances, interleaved gate by gate.
            let labels = &mut ws.labels[..];
            load_inputs(
                &self.kernel,
                labels,
                g,
                gb,
                c.garbler_inputs(),
                &ev_zero[i0 * s.ei..(i0 + g) * s.ei],
                c.evaluator_inputs(),
            );
            S::garble_group(
                &self.kernel,
                &self.keys,
                c,
                d,
                labels,
                &mut ws.scratch,
                g,
                first.wrapping_add(i0 as u64),
                &mut tables[i0 * s.tb..(i0 + g) * s.tb],
            );
            store_outputs(labels, g, c.outputs(), &mut out[i0 * s.no..(i0 + g) * s.no]);
            i0 += g;
        }
    }
}

/// Evaluates many instances of one circuit garbled with scheme `S`: the engine shared by
/// [`Evaluator`] and [`ThEvaluator`](super::ThEvaluator).
pub struct BatchEvaluator<'a, S: TableScheme> {
    circuit: &'a Circuit,
    kernel: Kernel,
    scheme: std::marker::PhantomData<S>,
}

impl<'a, S: TableScheme> BatchEvaluator<'a, S> {
    /// An evaluator of `circuit`.
    pub fn new(circuit: &'a Circuit) -> Self {
        BatchEvaluator {
            circuit,
            kernel: Kernel::detect(),
            scheme: std::marker::PhantomData,
        }
    }

    /// The same evaluator on the portable AND-gate kernel (for comparison and tests).
    pub fn portable(self) -> Self {
        BatchEvaluator {
            kernel: Kernel::Portable,
            ..self
        }
    }

    /// The AND-gate kernel in use: `"vaes"` or `"portable"`.
    pub fn kernel(&self) -> &'static str {
        self.kernel.name()
    }

    /// The circuit being evaluated.
    pub fn circuit(&self) -> &Circuit {
        self.circuit
    }

    /// Evaluates `n = out.len() / outputs` instances on the calling thread, from the
    /// garbler's input labels `gb_labels[i·gi..]`, the evaluator's `ev_labels[i·ei..]` and the
    /// tables `tables[i·W..]`; writes each output label, or its colour (what the garbler
    /// needs to decode), to `out[i·no..]` ([`OutputWire`]). `first_instance` must be the
    /// garbler's.
    pub fn eval_batch<O: OutputWire>(
        &self,
        gb_labels: &[Block],
        ev_labels: &[Block],
        tables: &[S::Elem],
        first_instance: u64,
        out: &mut [O],
    ) -> Result<(), GcError> {
        self.eval_on(false, gb_labels, ev_labels, tables, first_instance, out)
    }

    /// [`BatchEvaluator::eval_batch`] spread over the rayon thread pool; same inputs, same
    /// outputs.
    pub fn eval_batch_par<O: OutputWire>(
        &self,
        gb_labels: &[Block],
        ev_labels: &[Block],
        tables: &[S::Elem],
        first_instance: u64,
        out: &mut [O],
    ) -> Result<(), GcError> {
        self.eval_on(true, gb_labels, ev_labels, tables, first_instance, out)
    }

    /// [`BatchEvaluator::eval_batch`] on the calling thread or (`par`) over the rayon pool.
    fn eval_on<O: OutputWire>(
        &self,
        par: bool,
        gb_labels: &[Block],
        ev_labels: &[Block],
        tables: &[S::Elem],
        first_instance: u64,
        out: &mut [O],
    ) -> Result<(), GcError> {
        let s = shape::<S>(
            self.circuit,
            gb_labels.len(),
            ev_labels.len(),
            Some(tables.len()),
            first_instance,
            out.len(),
        )?;
        let job = |ws: &mut Workspace, (i0, m, lsb): (usize, usize, &mut [O])| {
            let sub = Shape { n: m, ..s };
            let gb = &gb_labels[i0 * s.gi..(i0 + m) * s.gi];
            let ev = &ev_labels[i0 * s.ei..(i0 + m) * s.ei];
            let tab = &tables[i0 * s.tb..(i0 + m) * s.tb];
            self.eval_range(ws, sub, gb, ev, tab, first_instance + i0 as u64, lsb);
        };
        if par {
            let mut empty: [S::Elem; 0] = [];
            // Only the outputs are split mutably; tables are read through the job's range.
            jobs(Shape { tb: 0, ..s }, &mut empty[..], out)
                .into_par_iter()
                .for_each_init(
                    || Workspace::new(self.circuit),
                    |ws, (i0, m, _, lsb)| job(ws, (i0, m, lsb)),
                );
        } else {
            job(&mut Workspace::new(self.circuit), (0, s.n, out));
        }
        Ok(())
    }

    /// Receives the tables of `n = tables.len() / W` instances into `tables` (the protocol's
    /// offline step: the client stores them to evaluate online). Returns the bytes received.
    pub fn recv_tables<C: Channel + ?Sized>(
        &self,
        chan: &mut C,
        tables: &mut [S::Elem],
    ) -> Result<u64, GcError> {
        instances::<S>(self.circuit, tables.len())?;
        let bytes = S::as_bytes_mut(tables);
        chan.recv(bytes)?;
        Ok(bytes.len() as u64)
    }

    /// Receives tables from `chan` chunk by chunk and evaluates each chunk (in parallel) as it
    /// arrives: the counterpart of [`BatchGarbler::garble_stream`], whatever chunk size the
    /// garbler used (when nothing was sent ahead of its chunks). A helper thread receives chunk
    /// `i + 1` while chunk `i` is evaluated, so
    /// memory stays bounded by two chunks. Arguments as for [`BatchEvaluator::eval_batch`],
    /// without the tables. Returns the bytes received.
    pub fn eval_stream<C: Channel + ?Sized, O: OutputWire>(
        &self,
        chan: &mut C,
        gb_labels: &[Block],
        ev_labels: &[Block],
        first_instance: u64,
        out: &mut [O],
        chunk: usize,
    ) -> Result<u64, GcError> {
        let s = shape::<S>(
            self.circuit,
            gb_labels.len(),
            ev_labels.len(),
            None,
            first_instance,
            out.len(),
        )?;
        let unit = std::mem::size_of::<S::Elem>() * s.tb;
        recv_chunks(chan, s.n, unit, chunk, |i0, m, buf| {
            self.eval_batch_par(
                &gb_labels[i0 * s.gi..(i0 + m) * s.gi],
                &ev_labels[i0 * s.ei..(i0 + m) * s.ei],
                &S::elems(buf)[..m * s.tb],
                first_instance + i0 as u64,
                &mut out[i0 * s.no..(i0 + m) * s.no],
            )
        })
    }

    /// Evaluates `s.n` instances, group by group; mirrors [`BatchGarbler::garble_range`].
    #[allow(clippy::too_many_arguments)]
    fn eval_range<O: OutputWire>(
        &self,
        ws: &mut Workspace,
        s: Shape,
        gb: &[Block],
        ev: &[Block],
        tables: &[S::Elem],
        first: u64,
        out: &mut [O],
    ) {
        let c = self.circuit;
        let mut i0 = 0;
        while i0 < s.n {
            let g = GROUP.min(s.n - i0);
            let next = (i0 + g..(i0 + 2 * g).min(s.n)).len();
            prefetch(&gb[(i0 + g) * s.gi..(i0 + g + next) * s.gi]);
            prefetch(&ev[(i0 + g) * s.ei..(i0 + g + next) * s.ei]);
            prefetch(&tables[(i0 + g) * s.tb..(i0 + g + next) * s.tb]);
            let labels = &mut ws.labels[..];
            load_inputs(
                &self.kernel,
                labels,
                g,
                &gb[i0 * s.gi..(i0 + g) * s.gi],
                c.garbler_inputs(),
                &ev[i0 * s.ei..(i0 + g) * s.ei],
                c.evaluator_inputs(),
            );
            S::eval_group(
                &self.kernel,
                c,
                labels,
                g,
                first.wrapping_add(i0 as u64),
                &tables[i0 * s.tb..(i0 + g) * s.tb],
            );
            store_outputs(labels, g, c.outputs(), &mut out[i0 * s.no..(i0 + g) * s.no]);
            i0 += g;
        }
    }
}

/// The checked shape of a batch call of scheme `S`.
fn shape<S: TableScheme>(
    circuit: &Circuit,
    gb_len: usize,
    ev_len: usize,
    tables_len: Option<usize>,
    first_instance: u64,
    out_len: usize,
) -> Result<Shape, GcError> {
    let tb = S::instance_elems(circuit);
    let s = shape_with(
        circuit,
        gb_len,
        ev_len,
        tables_len,
        first_instance,
        out_len,
        tb,
    )?;
    S::check_instances(first_instance, s.n, circuit.and_count())?;
    Ok(s)
}

/// Checks that `len` table elements are whole instances of `circuit` under scheme `S` and
/// returns how many.
pub(super) fn instances<S: TableScheme>(circuit: &Circuit, len: usize) -> Result<usize, GcError> {
    let tb = S::instance_elems(circuit);
    if tb == 0 {
        check_len(S::TABLES[0], 0, len)?;
        return Ok(0);
    }
    if !len.is_multiple_of(tb) {
        return Err(GcError::Length {
            what: S::TABLES[1],
            expected: tb,
            got: len,
        });
    }
    Ok(len / tb)
}

/// Joins a streaming helper thread, passing its panic on unchanged.
fn join<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    match h.join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Sends colour bits packed eight to a byte (bit `i` of the stream in bit `i % 8` of byte
/// `i / 8`): how the evaluator returns output colours. Returns the bytes sent.
pub fn send_bits<C: Channel + ?Sized>(chan: &mut C, bits: &[bool]) -> Result<u64, GcError> {
    let bytes = pack_bits(bits);
    chan.send(&bytes)?;
    Ok(bytes.len() as u64)
}

/// Receives `bits.len()` colour bits sent by [`send_bits`]. Returns the bytes received.
pub fn recv_bits<C: Channel + ?Sized>(chan: &mut C, bits: &mut [bool]) -> Result<u64, GcError> {
    let mut bytes = vec![0u8; bits.len().div_ceil(8)];
    chan.recv(&mut bytes)?;
    for (i, b) in bits.iter_mut().enumerate() {
        *b = (bytes[i / 8] >> (i % 8)) & 1 == 1;
    }
    Ok(bytes.len() as u64)
}

/// Packs bits eight to a byte, bit `i` in bit `i % 8` of byte `i / 8`.
pub fn pack_bits(bits: &[bool]) -> Vec<u8> {
    let mut bytes = vec![0u8; bits.len().div_ceil(8)];
    for (i, &b) in bits.iter().enumerate() {
        bytes[i / 8] |= u8::from(b) << (i % 8);
    }
    bytes
}

/// Queues of a double-buffered table stream: `full` carries what the other thread sends or has
/// received (`T`: filled chunk buffers with their used length in bytes, and for the garbler the
/// blocks that go ahead of them), `free` brings the buffers back; at most two chunks exist.
/// `full` holds two items, so that blocks sent ahead of a chunk never wait for the chunk before
/// it to leave.
fn table_ring<T>(
    n: usize,
    unit_bytes: usize,
    chunk: usize,
) -> (
    mpsc::SyncSender<T>,
    mpsc::Receiver<T>,
    mpsc::Sender<BlockBuf>,
    mpsc::Receiver<BlockBuf>,
) {
    let (full_tx, full_rx) = mpsc::sync_channel(2);
    let (free_tx, free_rx) = mpsc::channel();
    for _ in 0..2.min(n.div_ceil(chunk)) {
        // Cannot fail: the receiving end is alive, returned below.
        let _ = free_tx.send(BlockBuf::with_len((chunk.min(n) * unit_bytes).div_ceil(16)));
    }
    (full_tx, full_rx, free_tx, free_rx)
}

/// What the garbling thread of [`send_chunks`] hands its sending thread, in wire order.
enum Outgoing {
    /// Blocks that go ahead of a chunk's tables, sent as soon as they are handed over.
    Ahead(Vec<Block>),
    /// A chunk's tables (and per-instance trailers): the buffer and the bytes of it to send.
    Tables(BlockBuf, usize),
}

/// The streaming garbler of every scheme: `fill(i0, m, buf, ahead)` garbles instances
/// `i0..i0 + m` into the first `m · unit_bytes` bytes of `buf` (a block buffer, viewed as the
/// scheme's table elements; `unit_bytes` counts an instance's tables and whatever the caller
/// sends after the chunk's tables per instance, such as output ciphertexts), in chunks of
/// `chunk` instances, and may first pass to `ahead`
/// blocks that go on the wire before those tables (silent OT's chunk messages): they are sent
/// at once, so the evaluator can work on them while the chunk is garbled. A helper thread sends
/// chunk `i` while chunk `i + 1` is garbled, so memory stays bounded by two chunks whatever `n`
/// is. Flushes at the end and returns the bytes of chunks sent, `n · unit_bytes`.
fn send_chunks<C, F>(
    chan: &mut C,
    n: usize,
    unit_bytes: usize,
    chunk: usize,
    mut fill: F,
) -> Result<u64, GcError>
where
    C: Channel + ?Sized,
    F: FnMut(
        usize,
        usize,
        &mut [Block],
        &mut dyn FnMut(Vec<Block>) -> Result<(), GcError>,
    ) -> Result<(), GcError>,
{
    let chunk = chunk.max(1);
    let (full_tx, full_rx, free_tx, free_rx) = table_ring::<Outgoing>(n, unit_bytes, chunk);
    std::thread::scope(|scope| {
        let sending = move || -> Result<u64, GcError> {
            let mut sent = 0u64;
            for out in full_rx {
                match out {
                    Outgoing::Ahead(blocks) => {
                        chan.send(crate::crypto::block::blocks_as_bytes(&blocks))?;
                        chan.flush()?;
                    }
                    Outgoing::Tables(buf, len) => {
                        chan.send(&crate::crypto::block::blocks_as_bytes(&buf)[..len])?;
                        sent += len as u64;
                        // The garbler may already be done and gone; then the buffer is just
                        // freed.
                        let _ = free_tx.send(buf);
                    }
                }
            }
            chan.flush()?;
            Ok(sent)
        };
        let sender = std::thread::Builder::new()
            .name("pibench-send".into())
            .spawn_scoped(scope, sending)
            .expect("failed to spawn thread");
        let mut garbled = Ok(());
        let mut i0 = 0;
        while i0 < n {
            let m = chunk.min(n - i0);
            // A closed queue means the sender failed: its error is reported below.
            let Ok(mut buf) = free_rx.recv() else { break };
            let len = m * unit_bytes;
            let mut ahead = |blocks: Vec<Block>| {
                if !blocks.is_empty() && full_tx.send(Outgoing::Ahead(blocks)).is_err() {
                    return Err(GcError::Params("the sending thread stopped".into()));
                }
                Ok(())
            };
            garbled = fill(i0, m, &mut buf[..len.div_ceil(16)], &mut ahead);
            if garbled.is_err() || full_tx.send(Outgoing::Tables(buf, len)).is_err() {
                break;
            }
            i0 += m;
        }
        drop(full_tx);
        let sent = join(sender)?;
        garbled.map(|()| sent)
    })
}

/// The streaming evaluator of every scheme, the counterpart of [`send_chunks`] whatever chunk
/// size the garbler used (when nothing was sent ahead of its chunks): a helper thread receives
/// chunk `i + 1` (`m · unit_bytes` bytes) while `consume(i0, m, buf)` evaluates chunk `i`.
/// Returns the bytes received.
pub(crate) fn recv_chunks<C, F>(
    chan: &mut C,
    n: usize,
    unit_bytes: usize,
    chunk: usize,
    mut consume: F,
) -> Result<u64, GcError>
where
    C: Channel + ?Sized,
    F: FnMut(usize, usize, &[Block]) -> Result<(), GcError>,
{
    let chunk = chunk.max(1);
    let (full_tx, full_rx, free_tx, free_rx) =
        table_ring::<(BlockBuf, usize)>(n, unit_bytes, chunk);
    std::thread::scope(|scope| {
        let receiving = move || -> Result<u64, GcError> {
            let mut received = 0u64;
            let mut i0 = 0;
            while i0 < n {
                let m = chunk.min(n - i0);
                // A closed queue means the evaluator stopped; nothing more is needed.
                let Ok(mut buf) = free_rx.recv() else { break };
                let len = m * unit_bytes;
                chan.recv(&mut crate::crypto::block::blocks_as_bytes_mut(&mut buf)[..len])?;
                received += len as u64;
                if full_tx.send((buf, len)).is_err() {
                    break;
                }
                i0 += m;
            }
            Ok(received)
        };
        let receiver = std::thread::Builder::new()
            .name("pibench-recv".into())
            .spawn_scoped(scope, receiving)
            .expect("failed to spawn thread");
        let mut evaluated = Ok(());
        let mut i0 = 0;
        // A closed queue before the end means the receiver failed: its error is reported below.
        while i0 < n {
            let Ok((buf, len)) = full_rx.recv() else {
                break;
            };
            let m = chunk.min(n - i0);
            evaluated = consume(i0, m, &buf[..len.div_ceil(16)]);
            if evaluated.is_err() {
                break;
            }
            let _ = free_tx.send(buf);
            i0 += m;
        }
        drop(full_rx);
        drop(free_tx);
        let received = join(receiver)?;
        evaluated.map(|()| received)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::BlockChannel;
    use crate::gc::halfgates::{eval_reference, garble_reference};
    use crate::gc::relu::relu_circuit;
    use crate::gc::test_support::{
        self, batch, check_decoded, engine_equals_reference_and_decodes, labels,
        relu_batch_decodes, relu_engine_matches_plain, streaming_and_stored_tables, ways_agree,
        Case, Way,
    };
    use crate::net::channel::mem_pair;
    use rand::SeedableRng;
    use rand_chacha::ChaCha12Rng;

    #[test]
    fn garbled_relu_batch_decodes_to_reference() {
        // Not a multiple of GROUP, so the tail group is exercised.
        relu_batch_decodes::<HalfGates>(42, (64, 12), 3 * GROUP + 5, 1000);
    }

    #[test]
    fn batch_engine_equals_reference_garbler() {
        engine_equals_reference_and_decodes::<HalfGates>((
            |c, d, _, gz, ez, i| garble_reference(c, d, gz, ez, i),
            eval_reference,
        ));
    }

    #[test]
    fn several_batches_with_distinct_instance_numbers() {
        let (ell, frac) = (32, 8);
        let circ = relu_circuit(ell, frac).unwrap();
        let mut rng = ChaCha12Rng::seed_from_u64(5);
        let delta = Delta::random(&mut rng);
        let g = Garbler::new(&circ, &delta);
        let e = Evaluator::new(&circ);
        let mut first = 0u64;
        let mut all_tables = Vec::new();
        for n in [1usize, GROUP, 2 * GROUP + 1, 300] {
            let b = batch(&mut rng, n, ell);
            let mut tables = vec![Block::ZERO; table_blocks(&circ, n)];
            let mut zero_lsb = vec![false; n * ell];
            g.garble_batch_par(&b.gb_zero, &b.ev_zero, first, &mut tables, &mut zero_lsb)
                .unwrap();
            let (gl, el) = labels(&b, ell, &delta);
            let mut eval_lsb = vec![false; n * ell];
            e.eval_batch_par(&gl, &el, &tables, first, &mut eval_lsb)
                .unwrap();
            check_decoded(&b, ell, frac, &zero_lsb, &eval_lsb);
            // Evaluating under the wrong instance numbers must not decode (tweaks are bound).
            let mut wrong = vec![false; n * ell];
            e.eval_batch(&gl, &el, &tables, first + 1, &mut wrong)
                .unwrap();
            assert_ne!(wrong, eval_lsb);
            first += n as u64;
            all_tables.push(tables);
        }
        // Same zero-labels, different instance numbers: different tables.
        let b = batch(&mut rng, 2, ell);
        let mut t1 = vec![Block::ZERO; table_blocks(&circ, 2)];
        let mut t2 = t1.clone();
        let mut lsb = vec![false; 2 * ell];
        g.garble_batch(&b.gb_zero, &b.ev_zero, 10, &mut t1, &mut lsb)
            .unwrap();
        g.garble_batch(&b.gb_zero, &b.ev_zero, 12, &mut t2, &mut lsb)
            .unwrap();
        assert!(t1.iter().zip(&t2).all(|(x, y)| x != y));
    }

    #[test]
    fn parallel_equals_sequential() {
        ways_agree::<HalfGates>(9, 2 * PAR_INSTANCES + 7, 5, [Way::SEQ, Way::PAR]);
    }

    #[test]
    fn streaming_and_stored_tables_over_a_channel() {
        streaming_and_stored_tables::<HalfGates>(1000);
    }

    /// The per-chunk outputs of `garble_stream_with` are the zero-labels `garble_batch`
    /// computes, handed over in order, chunk by chunk, whatever the chunk size; each chunk's
    /// trailer goes on the wire right after that chunk's tables, and the count returned is
    /// the tables' alone.
    #[test]
    fn streamed_output_labels_come_chunk_by_chunk() {
        const TRAILER: usize = 3;
        let c = Case::new(12, 64, 12, 333);
        let (n, no) = (c.n(), c.circ.outputs().len());
        let b = &c.b;
        let g = Garbler::new(&c.circ, &c.delta);
        let mut tables = vec![Block::ZERO; table_blocks(&c.circ, n)];
        let mut want = vec![Block::ZERO; n * no];
        g.garble_batch(&b.gb_zero, &b.ev_zero, 3, &mut tables, &mut want)
            .unwrap();
        let table_bytes = crate::crypto::block::blocks_as_bytes(&tables).to_vec();
        let per = table_bytes.len() / n;
        let trailer_of = |i: usize| [i as u8, (i >> 8) as u8, 0xa5];
        for chunk in [1, 7, 100, n] {
            let (mut cg, mut ce) = mem_pair(std::time::Duration::from_secs(30));
            let expect_wire: Vec<u8> = (0..n)
                .step_by(chunk)
                .flat_map(|i0| {
                    let m = chunk.min(n - i0);
                    let mut v = table_bytes[i0 * per..(i0 + m) * per].to_vec();
                    (i0..i0 + m).for_each(|i| v.extend(trailer_of(i)));
                    v
                })
                .collect();
            let reader = std::thread::spawn(move || {
                let mut wire = vec![0u8; n * (per + TRAILER)];
                ce.recv(&mut wire).unwrap();
                wire
            });
            let mut got = Vec::new();
            let mut firsts = Vec::new();
            let sent = g
                .garble_stream_with(
                    &mut cg,
                    GarblerLabels::Held(&b.gb_zero),
                    EvaluatorLabels::Held(&b.ev_zero),
                    3,
                    n,
                    chunk,
                    TRAILER,
                    |i0, o: &[Block], trailer: &mut [u8]| {
                        firsts.push(i0);
                        got.extend_from_slice(o);
                        assert_eq!(trailer.len(), o.len() / no * TRAILER);
                        for (j, t) in trailer.chunks_exact_mut(TRAILER).enumerate() {
                            t.copy_from_slice(&trailer_of(i0 + j));
                        }
                        Ok(())
                    },
                )
                .unwrap();
            assert_eq!(sent, table_bytes.len() as u64, "chunk {chunk}");
            assert_eq!(got, want, "chunk {chunk}");
            let expect: Vec<usize> = (0..n).step_by(chunk).collect();
            assert_eq!(firsts, expect, "chunk {chunk}");
            assert!(reader.join().unwrap() == expect_wire, "chunk {chunk}");
        }
    }

    #[test]
    fn drawn_and_expanded_labels_stream_the_same_tables_as_held_ones() {
        let c = Case::new(12, 64, 12, 333);
        let (n, ell) = (c.n(), c.ell);
        let b = &c.b;
        let g = Garbler::new(&c.circ, &c.delta);
        let seed = Block(99);
        let mut gz = vec![Block::ZERO; n * ell];
        Prg::from_seed(seed).fill_blocks(&mut gz);
        // The evaluator's labels handed out in order, as an OT expanding its outputs would;
        // the second source also sends a numbered block ahead of each chunk.
        let mut at = 0;
        let mut expand = |out: &mut [Block], _: &mut Vec<Block>| -> Result<(), GcError> {
            out.copy_from_slice(&b.ev_zero[at..at + out.len()]);
            at += out.len();
            Ok(())
        };
        let (mut at2, mut calls) = (0, 0u128);
        let mut expand_ahead = |out: &mut [Block], msg: &mut Vec<Block>| -> Result<(), GcError> {
            out.copy_from_slice(&b.ev_zero[at2..at2 + out.len()]);
            at2 += out.len();
            msg.push(Block(0xabc0 + calls));
            calls += 1;
            Ok(())
        };
        let mut got = Vec::new();
        for (drawn, ev_way) in [(false, 0), (true, 0), (false, 1), (true, 2)] {
            let (mut cg, mut ce) = mem_pair(std::time::Duration::from_secs(30));
            let mut lsb = vec![false; n * ell];
            let mut prg = Prg::from_seed(seed);
            let gb = if drawn {
                GarblerLabels::Drawn(&mut prg)
            } else {
                GarblerLabels::Held(&gz)
            };
            let ev = match ev_way {
                0 => EvaluatorLabels::Held(&b.ev_zero),
                1 => EvaluatorLabels::Expanded(&mut expand),
                _ => EvaluatorLabels::Expanded(&mut expand_ahead),
            };
            let sent = g.garble_stream(&mut cg, gb, ev, 3, &mut lsb, 100).unwrap() as usize;
            let mut tables = vec![0u8; sent];
            if ev_way == 2 {
                // Chunks of 100, 100, 100 and 33 instances, each after its block.
                let per = sent / n;
                let mut t0 = 0;
                for (k, m) in [100, 100, 100, 33].into_iter().enumerate() {
                    let mut mark = [Block::ZERO];
                    ce.recv_blocks(&mut mark).unwrap();
                    assert_eq!(mark[0], Block(0xabc0 + k as u128));
                    ce.recv(&mut tables[t0..t0 + m * per]).unwrap();
                    t0 += m * per;
                }
            } else {
                ce.recv(&mut tables).unwrap();
            }
            got.push((tables, lsb));
        }
        assert!(got.iter().all(|x| *x == got[0]));
        assert_eq!((at, at2), (b.ev_zero.len(), b.ev_zero.len()));
        let mut short = vec![false; n * ell - 1];
        assert!(g
            .garble_stream(
                &mut mem_pair(std::time::Duration::from_secs(1)).0,
                GarblerLabels::Drawn(&mut Prg::from_seed(seed)),
                EvaluatorLabels::Held(&b.ev_zero),
                0,
                &mut short,
                100
            )
            .is_err());
        // A failing source stops the stream with its error.
        let mut failing = |_: &mut [Block], _: &mut Vec<Block>| -> Result<(), GcError> {
            Err(GcError::Params("no labels".into()))
        };
        let mut lsb = vec![false; n * ell];
        let r = g.garble_stream(
            &mut mem_pair(std::time::Duration::from_secs(1)).0,
            GarblerLabels::Held(&gz),
            EvaluatorLabels::Expanded(&mut failing),
            0,
            &mut lsb,
            100,
        );
        assert!(matches!(r, Err(GcError::Params(_))), "{r:?}");
    }

    #[test]
    fn bad_lengths_are_errors_not_panics() {
        test_support::bad_lengths_are_errors_not_panics::<HalfGates>();
    }

    #[test]
    fn portable_and_detected_kernels_agree() {
        ways_agree::<HalfGates>(13, GROUP + 9, 1 << 40, [Way::SEQ, Way::PORTABLE]);
    }

    #[test]
    fn streams_report_a_vanished_peer_and_handle_empty_batches() {
        let c = Case::new(17, 16, 4, 100);
        let g = Garbler::new(&c.circ, &c.delta);
        let e = Evaluator::new(&c.circ);
        let mut lsb = vec![false; c.n() * c.ell];
        let timeout = std::time::Duration::from_millis(300);
        // The evaluator is gone before anything is sent.
        let (mut cg, ce) = mem_pair(timeout);
        drop(ce);
        let r = g.garble_stream(
            &mut cg,
            GarblerLabels::Held(&c.b.gb_zero),
            EvaluatorLabels::Held(&c.b.ev_zero),
            0,
            &mut lsb,
            16,
        );
        assert!(matches!(r, Err(GcError::Net(_))), "{r:?}");
        // The garbler sends a third of the tables, then disappears.
        let (tables, _) = c.garble::<HalfGates>(Way::SEQ, 0);
        let (mut cg, mut ce) = mem_pair(timeout);
        cg.send_blocks(&tables[..tables.len() / 3]).unwrap();
        cg.flush().unwrap();
        drop(cg);
        let r = e.eval_stream(&mut ce, &c.gl, &c.el, 0, &mut lsb, 16);
        assert!(matches!(r, Err(GcError::Net(_))), "{r:?}");
        // Nothing to do is not an error, and sends nothing.
        let (mut cg, mut ce) = mem_pair(timeout);
        assert_eq!(
            g.garble_stream(
                &mut cg,
                GarblerLabels::Held(&[]),
                EvaluatorLabels::Held(&[]),
                0,
                &mut [] as &mut [bool],
                16
            )
            .unwrap(),
            0
        );
        assert_eq!(
            e.eval_stream(&mut ce, &[], &[], 0, &mut [] as &mut [bool], 16)
                .unwrap(),
            0
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// The whole engine against `relu_plain`, for random (ℓ, f), batch sizes and instance
        /// numbers.
        #[test]
        fn engine_matches_reference(
            ell in 1usize..=64,
            frac_seed in 0usize..64,
            n in 1usize..40,
            first in proptest::prelude::any::<u64>(),
            seed in proptest::prelude::any::<u64>(),
        ) {
            // Instance numbers stay below 2^63 (garbling and OT tweaks apart).
            let first = first.min(crate::gc::halfgates::INSTANCE_LIMIT - n as u64);
            relu_engine_matches_plain::<HalfGates>((ell, frac_seed % ell), n, first, seed)?;
        }
    }

    #[test]
    fn bits_pack_little_endian() {
        let bits = [
            true, false, false, false, false, false, false, false, true, true,
        ];
        assert_eq!(pack_bits(&bits), vec![1, 3]);
    }
}
