//! One walk over a network's steps in forward order, for every evaluator: the f32 reference, the
//! fixed-point oracle and both parties of the protocol, each with its own value type (`Vec<f32>`,
//! a party's shares as `Vec<u64>`, or a batch of images).
//!
//! A program is anything that is a [`StepGraph`] (the network, its fixed-point lowering): steps in forward order, each reading the input
//! or earlier steps' outputs ([`ValueId`]). The [`ValueStore`] holds the values that are still
//! live and frees each one after the last step that reads it, so memory follows the live set;
//! [`walk`] visits the steps in order, hands each its input values, stores its output and returns
//! the program's output.

use serde::{Deserialize, Serialize};

use super::graph::{StepGraph, ValueId};

/// A position in a party's run over the steps: the input transfer, one step, or the output
/// transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StepRef {
    /// Before the first step: the input is sent or received.
    Input,
    /// Step `i` (computing `ValueId::Layer(i)`).
    Step(usize),
    /// After the last step: the output is sent or received.
    Output,
}

impl std::fmt::Display for StepRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepRef::Input => f.write_str("the input"),
            StepRef::Step(i) => write!(f, "step {i}"),
            StepRef::Output => f.write_str("the output"),
        }
    }
}

/// For each value of `graph` ([`slot`] order), its last reader: a step,
/// [`StepRef::Output`] for the program's output, or `None` when nothing reads it.
pub fn last_uses<G: StepGraph + ?Sized>(graph: &G) -> Vec<Option<StepRef>> {
    let mut last = vec![None; graph.step_count() + 1];
    for i in 0..graph.step_count() {
        for &v in graph.step_inputs(i) {
            last[slot(v)] = Some(StepRef::Step(i));
        }
    }
    last[slot(graph.output())] = Some(StepRef::Output);
    last
}

/// The position of a value in a table of every value: 0 for the input, `i + 1` for step `i`.
pub fn slot(v: ValueId) -> usize {
    match v {
        ValueId::Input => 0,
        ValueId::Layer(i) => i + 1,
    }
}

/// A step read a value that is not there: the program reads a value before the step that
/// computes it (or after its last reader freed it). Loading and lowering rule this out, so it is
/// a bug in pibench or a hand-built program.
#[derive(Debug, thiserror::Error)]
#[error("{step} reads {value:?}, which is not computed yet or was already freed")]
pub struct WalkError {
    /// The reading step ([`StepRef::Output`] when the program's output is collected).
    pub step: StepRef,
    /// The value it wanted.
    pub value: ValueId,
}

/// The live values of one walk, freed after their last reader.
#[derive(Clone, Debug)]
pub struct ValueStore<V> {
    values: Vec<Option<V>>,
    /// Per value, its last reader (`None`: nothing reads it); `None` for a store that frees
    /// nothing.
    last_use: Option<Vec<Option<StepRef>>>,
}

impl<V> ValueStore<V> {
    /// A store for `graph` holding `input`, which frees every value after its last reader.
    pub fn new<G: StepGraph + ?Sized>(graph: &G, input: V) -> Self {
        Self::with_policy(graph, input, Some(last_uses(graph)))
    }

    /// A store for `graph` holding `input` that frees nothing (to inspect every value).
    pub fn keeping_all<G: StepGraph + ?Sized>(graph: &G, input: V) -> Self {
        Self::with_policy(graph, input, None)
    }

    fn with_policy<G: StepGraph + ?Sized>(
        graph: &G,
        input: V,
        last_use: Option<Vec<Option<StepRef>>>,
    ) -> Self {
        let mut values: Vec<Option<V>> = (0..=graph.step_count()).map(|_| None).collect();
        values[0] = Some(input);
        ValueStore { values, last_use }
    }

    /// The value `v`, if it is live.
    pub fn get(&self, v: ValueId) -> Option<&V> {
        self.values.get(slot(v)).and_then(Option::as_ref)
    }

    /// The values step `step` of `graph` reads, in operand order.
    pub fn inputs<G: StepGraph + ?Sized>(
        &self,
        graph: &G,
        step: usize,
    ) -> Result<Vec<&V>, WalkError> {
        graph
            .step_inputs(step)
            .iter()
            .map(|&v| {
                self.get(v).ok_or(WalkError {
                    step: StepRef::Step(step),
                    value: v,
                })
            })
            .collect()
    }

    /// Store the output of step `step`, then free every value whose last reader was `step`
    /// (the output itself too, when nothing reads it). A step the graph does not have is
    /// ignored.
    pub fn put(&mut self, step: usize, value: V) {
        let Some(out) = self.values.get_mut(step + 1) else {
            return;
        };
        *out = Some(value);
        let Some(last_use) = &self.last_use else {
            return;
        };
        if last_use[step + 1].is_none() {
            self.values[step + 1] = None;
        }
        let done = Some(StepRef::Step(step));
        for (v, last) in self.values.iter_mut().zip(last_use) {
            if *last == done {
                *v = None;
            }
        }
    }

    /// Take the value `v` out of the store.
    pub fn take(&mut self, v: ValueId) -> Result<V, WalkError> {
        self.values
            .get_mut(slot(v))
            .and_then(Option::take)
            .ok_or(WalkError {
                step: StepRef::Output,
                value: v,
            })
    }

    /// Every value in [`slot`] order (`None` where freed or never computed).
    pub fn into_values(self) -> Vec<Option<V>> {
        self.values
    }
}

/// Run a program: visit the steps of `graph` in order, hand `step` each step's index and input
/// values, store what it returns and free values after their last reader. Returns the store,
/// which then holds the program's output (and every value, for a [`ValueStore::keeping_all`]
/// store).
pub fn walk_with<G, V, E>(
    graph: &G,
    mut store: ValueStore<V>,
    mut step: impl FnMut(usize, &[&V]) -> Result<V, E>,
) -> Result<ValueStore<V>, E>
where
    G: StepGraph + ?Sized,
    E: From<WalkError>,
{
    for i in 0..graph.step_count() {
        let out = {
            let inputs = store.inputs(graph, i)?;
            step(i, &inputs)?
        };
        store.put(i, out);
    }
    Ok(store)
}

/// [`walk_with`] from `input` in a store that frees every value after its last reader; returns
/// the program's output.
pub fn walk<G, V, E>(
    graph: &G,
    input: V,
    step: impl FnMut(usize, &[&V]) -> Result<V, E>,
) -> Result<V, E>
where
    G: StepGraph + ?Sized,
    E: From<WalkError>,
{
    let mut store = walk_with(graph, ValueStore::new(graph, input), step)?;
    Ok(store.take(graph.output())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Shape;

    /// input → a → b; c = a + b; output c. `d` reads the input and nothing reads it.
    struct Chain {
        inputs: Vec<Vec<ValueId>>,
    }

    impl StepGraph for Chain {
        fn input_shape(&self) -> Shape {
            Shape::Flat(1)
        }
        fn step_count(&self) -> usize {
            self.inputs.len()
        }
        fn step_inputs(&self, step: usize) -> &[ValueId] {
            &self.inputs[step]
        }
        fn step_shape(&self, step: usize) -> Shape {
            Shape::Flat(step + 2)
        }
        fn output(&self) -> ValueId {
            ValueId::Layer(2)
        }
    }

    fn chain() -> Chain {
        use ValueId::*;
        Chain {
            inputs: vec![
                vec![Input],
                vec![Layer(0)],
                vec![Layer(0), Layer(1)],
                vec![Input],
            ],
        }
    }

    #[test]
    fn values_are_freed_after_their_last_reader_and_the_output_is_kept() {
        let g = chain();
        assert_eq!(
            last_uses(&g),
            vec![
                Some(StepRef::Step(3)),
                Some(StepRef::Step(2)),
                Some(StepRef::Step(2)),
                Some(StepRef::Output),
                None
            ]
        );
        let mut live = Vec::new();
        let mut store = ValueStore::new(&g, 1i64);
        for i in 0..g.step_count() {
            let ins = store.inputs(&g, i).unwrap();
            let out = ins.iter().copied().sum::<i64>() * 10;
            store.put(i, out);
            live.push((0..=4).filter(|&s| store.values[s].is_some()).count());
        }
        // After step 2 only the input (read by step 3) and the output are live; step 3's
        // output is read by nothing and dropped at once.
        assert_eq!(live, vec![2, 3, 2, 1]);
        assert_eq!(store.take(ValueId::Layer(2)).unwrap(), 10 * (10 + 100));
        assert!(store.take(ValueId::Layer(2)).is_err());
    }

    #[test]
    fn walk_returns_the_output_and_keeping_all_keeps_everything() {
        let g = chain();
        let add = |_: usize, ins: &[&i64]| -> Result<i64, WalkError> {
            Ok(ins.iter().copied().sum::<i64>() + 1)
        };
        assert_eq!(walk(&g, 1i64, add).unwrap(), (2 + 3) + 1);
        let all = walk_with(&g, ValueStore::keeping_all(&g, 1i64), add)
            .unwrap()
            .into_values();
        assert_eq!(all, vec![Some(1), Some(2), Some(3), Some(6), Some(2)]);
        assert_eq!(g.shape_of(ValueId::Input), Shape::Flat(1));
        assert_eq!(g.shape_of(ValueId::Layer(1)), Shape::Flat(3));
    }

    #[test]
    fn a_read_of_a_later_value_is_an_error_not_a_panic() {
        let g = Chain {
            inputs: vec![vec![ValueId::Layer(1)], vec![ValueId::Input], vec![]],
        };
        let err = walk(&g, 0i64, |_, ins: &[&i64]| -> Result<i64, WalkError> {
            Ok(ins.len() as i64)
        })
        .unwrap_err();
        assert_eq!(err.step, StepRef::Step(0));
        assert_eq!(err.value, ValueId::Layer(1));
    }
}
