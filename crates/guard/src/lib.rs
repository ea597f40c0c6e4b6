//! Resource-server guard for axum/tower: not yet built (see the guard issue).
