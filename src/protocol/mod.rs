//! The two parties of Delphi-class private inference — server and client, offline and online,
//! layer by layer — and the linear preprocessing backends.
