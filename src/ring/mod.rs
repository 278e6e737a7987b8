//! Arithmetic in the ring Z_2^ℓ: fixed-point encoding, truncation, additive shares, and the fast
//! integer matrix and convolution kernels the server runs online.
