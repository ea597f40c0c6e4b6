//! The authorization server: not yet built (see the server issue).
