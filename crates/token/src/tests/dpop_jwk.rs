//! The proof header's `jwk` as an attacker shapes it: extra, repeated, oversized,
//! mistyped, null or reordered members. Each is accepted or refused exactly as the serde
//! `Jwk` parse did before the header was read in place, and the thumbprint depends only
//! on the key (not on member order, extra members, whitespace or escapes).

use serde_json::{Value, json};

use super::NOW;
use crate::dpop::{ProofCheck, access_token_hash, verify_proof};
use crate::{Algorithm, Error, SigningKey, TokenHash, b64};

const URL: &str = "https://auth.example/token";
const TOKEN: &str = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhIn0.c2ln";
const NOT_A_JWK: Error = Error::InvalidDpopProof("jwk is not a JSON Web Key");

fn claims() -> Value {
    json!({"jti": "id-1", "htm": "POST", "htu": URL, "iat": NOW.secs()})
}

/// A proof whose header is `{"typ","alg",` + `"jwk":` + `jwk` (raw JSON text) + `}`,
/// signed by `key`.
fn proof_with_jwk(key: &SigningKey, jwk: &str) -> String {
    let header = format!(
        r#"{{"typ":"dpop+jwt","alg":"{}","jwk":{jwk}}}"#,
        key.algorithm().name()
    );
    let input = format!(
        "{}.{}",
        b64::encode(header),
        b64::encode(claims().to_string())
    );
    let sig = key.sign_bytes(input.as_bytes()).unwrap();
    format!("{input}.{}", b64::encode(sig))
}

fn verify(proof: &str) -> Result<String, Error> {
    verify_proof(proof, &ProofCheck::new("POST", URL, NOW)).map(|v| v.jkt)
}

fn thumbprint(key: &SigningKey) -> String {
    key.public_jwk().unwrap().thumbprint().unwrap()
}

fn ed25519() -> (SigningKey, String) {
    let key = SigningKey::generate(Algorithm::EdDsa).unwrap();
    let x = key.public_jwk().unwrap().x.unwrap();
    (key, x)
}

#[test]
fn member_order_whitespace_escapes_and_extra_members_do_not_change_the_thumbprint() {
    let (key, x) = ed25519();
    let jkt = thumbprint(&key);
    for jwk in [
        format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}"}}"#),
        format!(r#"{{"x":"{x}","crv":"Ed25519","kty":"OKP"}}"#),
        format!(
            r#"{{ "crv" : "Ed25519" ,
            "x" : "{x}" , "kty" : "OKP" }}"#
        ),
        // `\u0032` is '2': the same member value, spelled with an escape.
        format!(r#"{{"kty":"OKP","crv":"Ed\u00325519","x":"{x}"}}"#),
        format!(
            r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"k1","use":"sig","alg":"EdDSA",
            "key_ops":["verify","sign"],"ext":true,"x5t":"abc","n":"ignored","e":"AQAB",
            "y":"ignored","nested":{{"a":[1,{{"b":null}}]}},"kid2":7}}"#
        ),
        // Null is what serde reads as an absent optional member.
        format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":null,"d":null,"k":null}}"#),
    ] {
        assert_eq!(
            verify(&proof_with_jwk(&key, &jwk)),
            Ok(jkt.clone()),
            "{jwk}"
        );
    }

    let key = SigningKey::generate(Algorithm::Es256).unwrap();
    let public = key.public_jwk().unwrap();
    let (x, y) = (public.x.unwrap(), public.y.unwrap());
    let jwk = format!(r#"{{"y":"{y}","x":"{x}","kty":"EC","crv":"P-256","alg":"ES256"}}"#);
    assert_eq!(verify(&proof_with_jwk(&key, &jwk)), Ok(thumbprint(&key)));
}

#[test]
fn repeated_members_anywhere_in_the_jwk_are_refused() {
    let (key, x) = ed25519();
    for jwk in [
        format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}","x":"{x}"}}"#),
        format!(r#"{{"kty":"OKP","kty":"OKP","crv":"Ed25519","x":"{x}"}}"#),
        format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}","\u0078":"{x}"}}"#),
        format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}","other":{{"a":1,"a":2}}}}"#),
    ] {
        assert_eq!(
            verify(&proof_with_jwk(&key, &jwk)),
            Err(Error::DuplicateMember),
            "{jwk}"
        );
    }
}

#[test]
fn mistyped_members_are_refused_as_not_a_jwk() {
    let (key, x) = ed25519();
    for (member, value) in [
        ("kty", "1"),
        ("kty", "null"),
        ("crv", r#"["Ed25519"]"#),
        ("x", "5"),
        ("kid", "7"),
        ("alg", "{}"),
        ("use", "true"),
        ("key_ops", r#""verify""#),
        ("key_ops", "[1]"),
        ("key_ops", r#"["verify",null]"#),
        ("d", "1"),
        ("k", "{}"),
        ("n", "1"),
        ("e", "[]"),
        ("y", "false"),
    ] {
        // The mistyped member replaces the good one (or is added) as the last member.
        let mut members = vec![
            ("kty", r#""OKP""#.to_owned()),
            ("crv", r#""Ed25519""#.to_owned()),
            ("x", format!(r#""{x}""#)),
        ];
        members.retain(|(m, _)| *m != member);
        members.push((member, value.to_owned()));
        let jwk = format!(
            "{{{}}}",
            members
                .iter()
                .map(|(m, v)| format!(r#""{m}":{v}"#))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(verify(&proof_with_jwk(&key, &jwk)), Err(NOT_A_JWK), "{jwk}");
    }
    for jwk in ["5", "null", r#""a string""#, "[]"] {
        assert_eq!(
            verify(&proof_with_jwk(&key, jwk)),
            Err(Error::InvalidDpopProof("jwk is not an object")),
            "{jwk}"
        );
    }
}

#[test]
fn missing_wrong_and_oversized_members_are_refused_as_before() {
    let (key, x) = ed25519();
    let cases = [
        (format!(r#"{{"crv":"Ed25519","x":"{x}"}}"#), NOT_A_JWK),
        (
            format!(r#"{{"kty":"OKP","crv":null,"x":"{x}"}}"#),
            Error::Unsupported,
        ),
        (
            format!(r#"{{"kty":"OKP","crv":"Ed448","x":"{x}"}}"#),
            Error::Unsupported,
        ),
        (
            format!(r#"{{"kty":"Foo","crv":"Ed25519","x":"{x}"}}"#),
            Error::Unsupported,
        ),
        (
            r#"{"kty":"OKP","crv":"Ed25519","x":null}"#.to_owned(),
            Error::InvalidKey("JWK lacks x"),
        ),
        (
            r#"{"kty":"OKP","crv":"Ed25519","x":"!!!"}"#.to_owned(),
            Error::InvalidKey("JWK member is not base64url"),
        ),
        (
            format!(
                r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#,
                "A".repeat(5000)
            ),
            Error::InvalidKey("Ed25519 x must be 32 bytes"),
        ),
        (
            format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}","use":"enc"}}"#),
            Error::InvalidKey("key is not for signatures (use)"),
        ),
        (
            format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}","key_ops":["sign"]}}"#),
            Error::InvalidKey("key_ops does not allow verify"),
        ),
        (
            format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}","alg":"ES256"}}"#),
            Error::Unsupported,
        ),
        (
            format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}","d":"AAAA"}}"#),
            Error::InvalidDpopProof("jwk is not a public key"),
        ),
        (
            format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}","k":""}}"#),
            Error::InvalidDpopProof("jwk is not a public key"),
        ),
        (
            r#"{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}"#.to_owned(),
            Error::InvalidDpopProof("jwk is not a public key"),
        ),
    ];
    for (jwk, expected) in cases {
        assert_eq!(verify(&proof_with_jwk(&key, &jwk)), Err(expected), "{jwk}");
    }
    // Past the proof size limit the proof is refused before its header is read.
    let huge = format!(
        r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#,
        "A".repeat(9000)
    );
    assert!(matches!(
        verify(&proof_with_jwk(&key, &huge)),
        Err(Error::TooLarge { .. })
    ));
    // An EC key whose point is not on the curve, and one with a short coordinate.
    let es = SigningKey::generate(Algorithm::Es256).unwrap();
    let public = es.public_jwk().unwrap();
    let (ex, ey) = (public.x.unwrap(), public.y.unwrap());
    let off_curve = format!(r#"{{"kty":"EC","crv":"P-256","x":"{ex}","y":"{ex}"}}"#);
    assert_eq!(
        verify(&proof_with_jwk(&es, &off_curve)),
        Err(Error::InvalidKey("public key is not a valid point"))
    );
    let short = format!(
        r#"{{"kty":"EC","crv":"P-256","x":"{ex}","y":"{}"}}"#,
        &ey[..40]
    );
    assert_eq!(
        verify(&proof_with_jwk(&es, &short)),
        Err(Error::InvalidKey("P-256 coordinates must be 32 bytes"))
    );
}

#[test]
fn ath_over_another_token_is_refused_whether_the_token_or_its_hash_is_given() {
    let (key, x) = ed25519();
    let jwk = format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}"}}"#);
    let with_ath = |ath: &str| {
        let mut c = claims();
        c["ath"] = json!(ath);
        let header = format!(r#"{{"typ":"dpop+jwt","alg":"EdDSA","jwk":{jwk}}}"#);
        let input = format!("{}.{}", b64::encode(header), b64::encode(c.to_string()));
        let sig = key.sign_bytes(input.as_bytes()).unwrap();
        format!("{input}.{}", b64::encode(sig))
    };
    let check = ProofCheck::new("POST", URL, NOW);
    let hash = TokenHash::of(TOKEN.as_bytes());
    let good = with_ath(&access_token_hash(TOKEN));
    assert!(verify_proof(&good, &check.with_access_token(TOKEN)).is_ok());
    assert!(verify_proof(&good, &check.with_access_token_hash(&hash)).is_ok());
    let other = TokenHash::of(b"another token");
    for bad in [
        with_ath(&access_token_hash("another token")),
        // The right hash in another encoding (padded, standard alphabet, hex).
        format!("{}=", access_token_hash(TOKEN)),
        hash.to_hex(),
        String::new(),
    ] {
        let p = if bad.contains('.') {
            bad
        } else {
            with_ath(&bad)
        };
        for c in [
            check.with_access_token(TOKEN),
            check.with_access_token_hash(&hash),
        ] {
            assert_eq!(
                verify_proof(&p, &c).unwrap_err(),
                Error::InvalidDpopProof("ath does not match the access token")
            );
        }
    }
    assert_eq!(
        verify_proof(&good, &check.with_access_token_hash(&other)).unwrap_err(),
        Error::InvalidDpopProof("ath does not match the access token")
    );
}
