//! Guard benchmarks (placeholder).
fn main() {}
