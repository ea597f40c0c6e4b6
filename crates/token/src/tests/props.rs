//! Property tests: the header parser, the opaque-token checksum, and the `htu` fast path.

use proptest::prelude::*;

use crate::dpop::{is_normal, normalize_htu};
use crate::{OpaqueToken, TokenKind, parse_authorization};

const B64TOKEN_CHARS: &str = "[A-Za-z0-9._~+/-]{1,200}={0,2}";

proptest! {
    #[test]
    fn a_url_taken_as_normal_is_its_own_normal_form(
        scheme in "(https?|HTTPS?|Http|ftp)",
        sep in "(://|:/|//)",
        rest in "[a-zA-Z0-9.:@/?#%~ \\[\\]\\t-]{0,40}",
    ) {
        let url = format!("{scheme}{sep}{rest}");
        if is_normal(&url) {
            let normal = normalize_htu(&url);
            prop_assert_eq!(normal.as_deref(), Some(url.as_str()));
        }
    }

    #[test]
    fn typical_urls_are_taken_as_normal_when_they_are(
        host in "[a-z0-9.-]{1,20}",
        port in "(:[0-9]{1,5})?",
        path in "(/[a-zA-Z0-9._~-]{0,10}){1,3}",
    ) {
        let url = format!("https://{host}{port}{path}");
        let normal = normalize_htu(&url);
        prop_assert_eq!(is_normal(&url), normal.as_deref() == Some(url.as_str()));
    }

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
