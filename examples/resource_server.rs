//! Example resource server (placeholder).
fn main() {}
