//! Model bundles: the on-disk format, its validation, the network graph (ops, public shapes,
//! masks, private weights), batch-norm folding, the dual-BN path choice, mask allocation and
//! synthetic-model generation.
