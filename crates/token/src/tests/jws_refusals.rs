//! Issue 2 item 1: every JWS refusal, each tried against an otherwise valid token.

use serde_json::json;

use super::*;
use crate::{Error, b64};

fn verify(keys: &KeySet, token: &str) -> Result<(), Error> {
    keys.verify(token, &policy(), NOW).map(|_| ())
}

#[test]
fn a_valid_token_of_every_algorithm_verifies() {
    for alg in Algorithm::ALL {
        let k = key(alg);
        let token = forge(&k, &header_for(&k), &good_claims());
        let v = keyset(&[&k]).verify(&token, &policy(), NOW).unwrap();
        assert_eq!(v.algorithm(), alg);
        assert_eq!(v.kid(), k.kid());
    }
}

#[test]
fn alg_none_in_any_casing_is_refused() {
    let k = key(Algorithm::EdDsa);
    let keys = keyset(&[&k]);
    let claims = b64::encode(serde_json::to_vec(&good_claims()).unwrap());
    for none in ["none", "None", "NONE", "nOnE"] {
        let header =
            b64::encode(serde_json::to_vec(&json!({"alg": none, "kid": k.kid()})).unwrap());
        // Unsigned form (empty signature) and with a junk signature.
        let unsigned = format!("{header}.{claims}.");
        assert_eq!(
            verify(&keys, &unsigned),
            Err(Error::AlgNone),
            "{none} unsigned"
        );
        let junk = format!("{header}.{claims}.AAAA");
        assert_eq!(verify(&keys, &junk), Err(Error::AlgNone), "{none}");
    }
}

#[test]
fn header_alg_that_does_not_match_the_key_is_refused() {
    let ed = key(Algorithm::EdDsa);
    // Classic confusion: HMAC keyed with the public key bytes, claiming HS256 and the Ed25519 kid.
    let public_x = crate::b64::decode(ed.public_jwk().unwrap().x.as_deref().unwrap(), "x").unwrap();
    let hmac = SigningKey::from_hmac_secret(&public_x).unwrap();
    let forged = forge(
        &hmac,
        &json!({"alg": "HS256", "kid": ed.kid()}),
        &good_claims(),
    );
    assert_eq!(verify(&keyset(&[&ed]), &forged), Err(Error::AlgMismatch));

    // Every other pairing of header alg and key.
    for key_alg in Algorithm::ALL {
        for header_alg in Algorithm::ALL {
            if key_alg == header_alg {
                continue;
            }
            let k = key(key_alg);
            let token = forge(
                &k,
                &json!({"alg": header_alg.name(), "kid": k.kid()}),
                &good_claims(),
            );
            assert_eq!(
                verify(&keyset(&[&k]), &token),
                Err(Error::AlgMismatch),
                "{key_alg} key, {header_alg} header"
            );
        }
    }
    // Algorithms Tessera does not implement are mismatches too, never a fallback.
    let k = key(Algorithm::Rs256);
    for other in ["PS256", "RS512", "ES512", "HS512", "rs256", ""] {
        let token = forge(&k, &json!({"alg": other, "kid": k.kid()}), &good_claims());
        assert_eq!(
            verify(&keyset(&[&k]), &token),
            Err(Error::AlgMismatch),
            "{other}"
        );
    }
}

#[test]
fn key_carrying_header_members_are_refused() {
    let k = key(Algorithm::EdDsa);
    let keys = keyset(&[&k]);
    let attacker = key(Algorithm::EdDsa);
    let cases = [
        ("jwk", json!(attacker.public_jwk())),
        ("jku", json!("https://attacker.example/jwks.json")),
        ("x5u", json!("https://attacker.example/cert.pem")),
        ("x5c", json!(["MIIBszCCAVmgAwIBAgIUQ"])),
    ];
    for (name, value) in cases {
        let mut header = header_for(&k);
        header[name] = value;
        let token = forge(&k, &header, &good_claims());
        assert_eq!(
            verify(&keys, &token),
            Err(Error::ForbiddenHeader(name)),
            "{name}"
        );
    }
}

#[test]
fn any_crit_is_refused() {
    let k = key(Algorithm::EdDsa);
    let keys = keyset(&[&k]);
    for crit in [
        json!(["exp"]),
        json!(["b64"]),
        json!(["http://example.com/ext"]),
        json!([]),
        json!("x"),
    ] {
        let mut header = header_for(&k);
        header["crit"] = crit.clone();
        header["b64"] = json!(false);
        let token = forge(&k, &header, &good_claims());
        assert_eq!(verify(&keys, &token), Err(Error::UnknownCrit), "{crit}");
    }
}

#[test]
fn duplicate_member_names_are_refused_in_header_and_claims() {
    let k = key(Algorithm::EdDsa);
    let keys = keyset(&[&k]);
    let kid = k.kid().unwrap();
    let claims = serde_json::to_vec(&good_claims()).unwrap();
    let header = format!(r#"{{"alg":"EdDSA","kid":"{kid}","alg":"EdDSA"}}"#);
    let token = k.sign_raw(header.as_bytes(), &claims).unwrap();
    assert_eq!(verify(&keys, &token), Err(Error::DuplicateMember));

    let header = serde_json::to_vec(&header_for(&k)).unwrap();
    for dup in [
        format!(
            r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"sub":"alice","sub":"admin"}}"#,
            NOW.secs() + 60
        ),
        format!(
            r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"aud":"other"}}"#,
            NOW.secs() + 60
        ),
        format!(
            r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"cnf":{{"jkt":"a","jkt":"b"}}}}"#,
            NOW.secs() + 60
        ),
    ] {
        let token = k.sign_raw(&header, dup.as_bytes()).unwrap();
        assert_eq!(verify(&keys, &token), Err(Error::DuplicateMember), "{dup}");
    }
}

#[test]
fn tokens_over_the_size_limit_are_refused_before_parsing() {
    let k = key(Algorithm::EdDsa);
    let keys = keyset(&[&k]);
    let mut claims = good_claims();
    claims["padding"] = json!("x".repeat(9000));
    let big = forge(&k, &header_for(&k), &claims);
    assert!(big.len() > 8192);
    assert_eq!(
        verify(&keys, &big),
        Err(Error::TooLarge {
            len: big.len(),
            limit: 8192
        })
    );
    // The limit is configurable both ways.
    assert!(
        keys.verify(&big, &policy().max_token_len(16 * 1024), NOW)
            .is_ok()
    );
    let small = forge(&k, &header_for(&k), &good_claims());
    assert!(matches!(
        keys.verify(&small, &policy().max_token_len(100), NOW),
        Err(Error::TooLarge { limit: 100, .. })
    ));
    // Garbage over the limit is refused by size alone.
    assert!(matches!(
        verify(&keys, &"a".repeat(10_000)),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn whitespace_and_non_base64url_characters_are_refused() {
    let k = key(Algorithm::EdDsa);
    let keys = keyset(&[&k]);
    let token = forge(&k, &header_for(&k), &good_claims());
    assert!(verify(&keys, &token).is_ok());
    let dot1 = token.find('.').unwrap();
    let dot2 = token.rfind('.').unwrap();
    for pos in [0, 5, dot1 + 3, dot2 + 3, token.len()] {
        for bad in [" ", "\n", "\t", "\r\n", "+", "/", "=", "%", "\u{e9}", "\0"] {
            let mut t = token.clone();
            t.insert_str(pos, bad);
            let err = verify(&keys, &t).unwrap_err();
            assert!(
                matches!(err, Error::Malformed(_)),
                "{bad:?} at {pos}: {err:?}"
            );
        }
    }
    // Standard base64 with padding is not base64url.
    let padded = format!("{token}==");
    assert!(matches!(verify(&keys, &padded), Err(Error::Malformed(_))));
}

#[test]
fn jwe_and_wrong_segment_counts_are_refused() {
    let k = key(Algorithm::EdDsa);
    let keys = keyset(&[&k]);
    let jwe = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.OKOawDo13gRp2ojaHV7LFpZcgV7T6DVZKTyKOMTYUmKoTCVJRgckCL9kiMT03JGeipsEdY3mx_etLbbWSrFr05kLzcSr4qKAq7YN7e9jwQRb23nfa6c9d-StnImGyFDbSv04uVuxIp5Zms1gNxKKK2Da14B8S4rzVRltdYwam_lDp5XnZAYpQdb76FdIKLaVmqgfwX7XWRxv2322i-vDxRfqNzo_tETKzpVLzfiwQyeyPGLBIO56YJ7eObdv0je81860ppamavo35UgoRdbYaBcoh9QcfylQr66oc6vFWXRcZ_ZT2LawVCWTIy3brGPi6UklfCpIMfIjf7iGdXKHzg.48V1_ALb6US04U3b.5eym8TW_c8SuK0ltJ3rpYIzOeDQz7TALvtu6UG9oMo4vpzs9tX_EFShS8iB7j6jiSdiwkIr3ajwQzaBtQD_A.XFBoMYUZodetZdvTiFvSkQ";
    assert_eq!(verify(&keys, jwe), Err(Error::Encrypted));
    for bad in ["", ".", "..", "a.b", "a.b.c.d", "a.b.c.d.e.f", "abc"] {
        assert!(
            matches!(verify(&keys, bad), Err(Error::Malformed(_))),
            "{bad:?}"
        );
    }
    let token = forge(&k, &header_for(&k), &good_claims());
    let (h, rest) = token.split_once('.').unwrap();
    let (p, _) = rest.split_once('.').unwrap();
    assert!(matches!(
        verify(&keys, &format!("{h}.{p}.")),
        Err(Error::Malformed(_))
    ));
    assert!(matches!(
        verify(&keys, &format!(".{p}.AAAA")),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn header_that_is_not_a_json_object_is_refused() {
    let k = key(Algorithm::EdDsa);
    let keys = keyset(&[&k]);
    let claims = serde_json::to_vec(&good_claims()).unwrap();
    for header in [
        &b"[\"EdDSA\"]"[..],
        b"not json",
        b"{\"alg\":1}",
        b"{}",
        b"{\"alg\":\"EdDSA\",\"kid\":7}",
    ] {
        let token = k.sign_raw(header, &claims).unwrap();
        assert!(
            matches!(verify(&keys, &token), Err(Error::Malformed(_))),
            "{:?}",
            String::from_utf8_lossy(header)
        );
    }
    let header = serde_json::to_vec(&header_for(&k)).unwrap();
    for payload in [&b"[1]"[..], b"nope", b"{\"exp\":1} trailing"] {
        let token = k.sign_raw(&header, payload).unwrap();
        assert!(matches!(verify(&keys, &token), Err(Error::Malformed(_))));
    }
}

#[test]
fn tampered_or_foreign_signatures_are_refused() {
    let k = key(Algorithm::EdDsa);
    let keys = keyset(&[&k]);
    let token = forge(&k, &header_for(&k), &good_claims());

    let mut claims = good_claims();
    claims["sub"] = json!("admin");
    let (h, rest) = token.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let swapped = format!(
        "{h}.{}.{sig}",
        b64::encode(serde_json::to_vec(&claims).unwrap())
    );
    assert_eq!(verify(&keys, &swapped), Err(Error::BadSignature));

    let mut flipped = token.clone().into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        verify(&keys, &String::from_utf8(flipped).unwrap()),
        Err(Error::BadSignature)
    );

    // Same kid, different key.
    let impostor = SigningKey::generate(Algorithm::EdDsa)
        .unwrap()
        .with_kid(k.kid().unwrap());
    let forged = forge(&impostor, &header_for(&impostor), &good_claims());
    assert_eq!(verify(&keys, &forged), Err(Error::BadSignature));

    // Truncated ECDSA signature (re-encoded, so it is valid base64url).
    let es = key(Algorithm::Es256);
    let t = forge(&es, &header_for(&es), &good_claims());
    let (input, sig) = t.rsplit_once('.').unwrap();
    let sig = b64::decode(sig, "sig").unwrap();
    let truncated = format!("{input}.{}", b64::encode(&sig[..sig.len() - 6]));
    assert_eq!(
        verify(&keyset(&[&es]), &truncated),
        Err(Error::BadSignature)
    );
}

#[test]
fn key_selection_by_kid() {
    let a = key(Algorithm::EdDsa);
    let b = SigningKey::generate(Algorithm::EdDsa)
        .unwrap()
        .with_kid("second");
    let es = key(Algorithm::Es256);
    let keys = keyset(&[&a, &b, &es]);

    let by_b = forge(&b, &header_for(&b), &good_claims());
    assert_eq!(
        keys.verify(&by_b, &policy(), NOW).unwrap().kid(),
        Some("second")
    );

    let unknown = forge(&a, &json!({"alg": "EdDSA", "kid": "nope"}), &good_claims());
    assert_eq!(verify(&keys, &unknown), Err(Error::UnknownKid));

    // No kid, two EdDSA keys could match: refused rather than trying each.
    let no_kid = forge(&a, &json!({"alg": "EdDSA"}), &good_claims());
    assert_eq!(verify(&keys, &no_kid), Err(Error::AmbiguousKey));

    // No kid, one key of the header's algorithm: that key, and it must verify.
    let no_kid_es = forge(&es, &json!({"alg": "ES256"}), &good_claims());
    assert!(verify(&keys, &no_kid_es).is_ok());

    // No kid and a single key in the set.
    assert!(verify(&keyset(&[&a]), &no_kid).is_ok());
    // Empty set.
    assert_eq!(verify(&KeySet::default(), &no_kid), Err(Error::UnknownKid));
}
