//! Fuzzes the RFC 6750 `Authorization` header grammar (`parse_authorization`) on arbitrary
//! bytes: it must never panic, and a token it returns must be one the grammar allows.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_token::{BearerToken, parse_authorization};

fuzz_target!(|data: &[u8]| {
    let Ok(Some(token)) = parse_authorization(data) else {
        return;
    };
    let t = token.expose();
    assert!(!t.is_empty(), "empty bearer token accepted");
    assert!(
        !t.contains([' ', ',']),
        "bearer token with a space or comma accepted"
    );
    assert!(t.is_ascii(), "non-ASCII bearer token accepted");
    // The token is a piece of the header, taken as-is.
    assert!(
        data.windows(t.len()).any(|w| w == t.as_bytes()),
        "token is not a substring of the header"
    );
    // What the header parser accepts, the cookie path accepts too, and it round-trips.
    assert!(BearerToken::new(t).is_ok(), "BearerToken::new refuses it");
    let again = parse_authorization(format!("Bearer {t}").as_bytes());
    assert_eq!(again, Ok(Some(token.clone())), "does not round-trip");
});
