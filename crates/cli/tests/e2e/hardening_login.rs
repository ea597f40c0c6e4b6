//! Hardening (issue 14): see docs/security.md, "What was hardened and how it is tested".
