//! Issue 2 items 4, 6 and 7: opaque tokens, PKCE and redaction.

use crate::pkce::{self, ChallengeMethod};
use crate::{Error, OpaqueToken, SecretString, TokenHash, TokenKind};

const KINDS: [(TokenKind, &str); 4] = [
    (TokenKind::AccessToken, "tsr_at_"),
    (TokenKind::RefreshToken, "tsr_rt_"),
    (TokenKind::AuthorizationCode, "tsr_ac_"),
    (TokenKind::ClientSecret, "tsr_cs_"),
];

#[test]
fn generated_tokens_parse_back_with_their_kind() {
    for (kind, prefix) in KINDS {
        let t = OpaqueToken::generate(kind).unwrap();
        assert!(t.expose().starts_with(prefix));
        assert_eq!(t.expose().len(), 55);
        let back = OpaqueToken::parse(t.expose()).unwrap();
        assert_eq!(back.kind(), kind);
        assert_eq!(back.hash(), t.hash());
        assert!(OpaqueToken::parse_kind(t.expose(), kind).is_ok());
    }
    let a = OpaqueToken::generate(TokenKind::RefreshToken).unwrap();
    let b = OpaqueToken::generate(TokenKind::RefreshToken).unwrap();
    assert_ne!(a.expose(), b.expose());
    assert_ne!(a.hash(), b.hash());
}

#[test]
fn tokens_from_given_bytes_are_deterministic_and_valid() {
    let a = OpaqueToken::from_secret_bytes(TokenKind::RefreshToken, &[7u8; 32]);
    assert_eq!(
        a,
        OpaqueToken::from_secret_bytes(TokenKind::RefreshToken, &[7u8; 32])
    );
    assert_eq!(OpaqueToken::parse(a.expose()).unwrap(), a);
    let other_kind = OpaqueToken::from_secret_bytes(TokenKind::AccessToken, &[7u8; 32]);
    assert_ne!(other_kind.hash(), a.hash());
    assert_ne!(
        OpaqueToken::from_secret_bytes(TokenKind::RefreshToken, &[8u8; 32]),
        a
    );
}

#[test]
fn mistyped_truncated_or_reprefixed_tokens_are_refused() {
    let t = OpaqueToken::generate(TokenKind::RefreshToken).unwrap();
    let s = t.expose();
    assert!(matches!(
        OpaqueToken::parse(&s[..54]),
        Err(Error::MalformedOpaque(_))
    ));
    assert!(matches!(
        OpaqueToken::parse(&format!("{s}A")),
        Err(Error::MalformedOpaque(_))
    ));
    let reprefixed = s.replacen("tsr_rt_", "tsr_at_", 1);
    assert_eq!(
        OpaqueToken::parse(&reprefixed).unwrap_err(),
        Error::MalformedOpaque("checksum mismatch")
    );
    assert!(matches!(
        OpaqueToken::parse_kind(s, TokenKind::AccessToken),
        Err(Error::MalformedOpaque("wrong kind of token"))
    ));
    for bad in [
        "",
        "tsr_",
        "tsr_xx_AAAA",
        "eyJhbGciOiJFZERTQSJ9.e30.AAAA",
        &format!("TSR_RT_{}", &s[7..]),
    ] {
        assert!(
            matches!(OpaqueToken::parse(bad), Err(Error::MalformedOpaque(_))),
            "{bad}"
        );
    }
    let spaced = format!("{} {}", &s[..20], &s[21..]);
    assert!(matches!(
        OpaqueToken::parse(&spaced),
        Err(Error::MalformedOpaque(_))
    ));
}

#[test]
fn hashes_compare_and_encode() {
    let h = TokenHash::of(b"abc");
    assert_eq!(
        h.to_hex(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(TokenHash::from_bytes(*h.as_bytes()), h);
    assert_ne!(TokenHash::of(b"abd"), h);
}

#[test]
fn secrets_are_redacted_in_debug() {
    let t = OpaqueToken::generate(TokenKind::ClientSecret).unwrap();
    let dbg = format!("{t:?}");
    assert!(dbg.contains("tsr_cs_") && !dbg.contains(&t.expose()[7..]));
    let s = SecretString::new("hunter2-password");
    assert_eq!(format!("{s:?}"), "<redacted>");
    let b = crate::BearerToken::new("abc.def.ghi").unwrap();
    assert!(!format!("{b:?}").contains("abc"));
}

#[test]
fn pkce_s256_and_refusals() {
    let verifier = pkce::generate_verifier().unwrap();
    assert_eq!(verifier.len(), 43);
    let challenge = pkce::s256_challenge(&verifier);
    pkce::check_challenge(ChallengeMethod::S256, &challenge).unwrap();
    pkce::verify(ChallengeMethod::S256, &challenge, &verifier, false).unwrap();

    let other = pkce::generate_verifier().unwrap();
    assert_eq!(
        pkce::verify(ChallengeMethod::S256, &challenge, &other, false),
        Err(Error::PkceMismatch)
    );
    // The challenge itself is not a valid verifier for it.
    assert!(pkce::verify(ChallengeMethod::S256, &challenge, &challenge, false).is_err());

    // plain: refused unless explicitly enabled.
    assert!(matches!(
        pkce::verify(ChallengeMethod::Plain, &verifier, &verifier, false),
        Err(Error::InvalidPkce(_))
    ));
    pkce::verify(ChallengeMethod::Plain, &verifier, &verifier, true).unwrap();
    assert_eq!(
        "plain".parse::<ChallengeMethod>(),
        Ok(ChallengeMethod::Plain)
    );
    assert!("PLAIN".parse::<ChallengeMethod>().is_err());
    assert!("s256".parse::<ChallengeMethod>().is_err());

    // Verifier grammar: 43..=128 unreserved characters.
    for bad in [
        "short".to_owned(),
        "a".repeat(42),
        "a".repeat(129),
        format!("{}+", "a".repeat(43)),
        format!("{} ", "a".repeat(43)),
    ] {
        assert!(
            matches!(pkce::check_verifier(&bad), Err(Error::InvalidPkce(_))),
            "{bad}"
        );
    }
    pkce::check_verifier(&"a~._-".repeat(20)).unwrap();
    // Challenge grammar.
    for bad in [
        "",
        "abc",
        &"A".repeat(44),
        &format!("{}=", &challenge[..42]),
    ] {
        assert!(
            pkce::check_challenge(ChallengeMethod::S256, bad).is_err(),
            "{bad}"
        );
    }
}
