//! Property tests: the header parser and the opaque-token checksum.

use proptest::prelude::*;

use crate::{OpaqueToken, TokenKind, parse_authorization};

const B64TOKEN_CHARS: &str = "[A-Za-z0-9._~+/-]{1,200}={0,2}";

proptest! {
    #[test]
    fn any_b64token_round_trips(token in B64TOKEN_CHARS, scheme in "(?i:bearer)", spaces in 1usize..4) {
        let header = format!("{scheme}{}{token}", " ".repeat(spaces));
        let parsed = parse_authorization(header.as_bytes()).unwrap().unwrap();
        prop_assert_eq!(parsed.expose(), token.as_str());
    }

    #[test]
    fn two_tokens_are_always_refused(a in B64TOKEN_CHARS, b in B64TOKEN_CHARS, sep in "( |, |,| , )") {
        let header = format!("Bearer {a}{sep}{b}");
        prop_assert!(parse_authorization(header.as_bytes()).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_accepted_tokens_are_b64tokens(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(Some(t)) = parse_authorization(&bytes) {
            prop_assert!(crate::bearer::is_b64token(t.expose().as_bytes()));
        }
    }

    #[test]
    fn any_single_character_change_breaks_the_checksum(pos in 7usize..55, replacement in "[A-Za-z0-9_-]", kind in 0usize..4) {
        let kind = [TokenKind::AccessToken, TokenKind::RefreshToken, TokenKind::AuthorizationCode, TokenKind::ClientSecret][kind];
        let token = OpaqueToken::generate(kind).unwrap();
        let original = token.expose();
        let mut changed = original.to_owned();
        changed.replace_range(pos..=pos, &replacement);
        prop_assume!(changed != original);
        prop_assert!(OpaqueToken::parse(&changed).is_err());
    }

    #[test]
    fn random_strings_are_not_tokens(body in "[A-Za-z0-9_-]{48}", prefix in "tsr_(at|rt|ac|cs)_") {
        // A random body passes only with probability 2^-32 per try.
        let candidate = format!("{prefix}{body}");
        prop_assert!(OpaqueToken::parse(&candidate).is_err());
    }
}
