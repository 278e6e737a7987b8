//! Boolean circuits and their half-gates garbling and evaluation with free XOR, the ReLU gadget on
//! additive shares, batched and parallel over many instances.
