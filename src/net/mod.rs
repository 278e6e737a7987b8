//! The channel between the two parties: TCP and in-memory, counting bytes per direction, phase
//! and layer, and rounds; time-outs; link emulation.
