//! Plots (plotters), tables, Markdown, CSV and JSON drawn from measured results.
