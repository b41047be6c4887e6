//! Benchmark helpers: baselines that ironlb is measured against, in the same run.

pub mod linear_cursor;
