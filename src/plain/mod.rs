//! Reference inference in the clear: f32, and fixed point on the ring with exactly the semantics
//! of the secure protocol (the oracle for every secure test).
