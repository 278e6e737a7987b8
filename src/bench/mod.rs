//! One measured run, sweeps, and the results schema that every report is redrawn from.
