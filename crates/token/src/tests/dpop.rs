//! DPoP proofs (RFC 9449): every key type accepted, every refusal named.

use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, KeyPair, RsaKeyPair};
use serde_json::{Value, json};

use super::NOW;
use crate::dpop::{ProofCheck, access_token_hash, normalize_htu, sign_proof, verify_proof};
use crate::{Algorithm, Error, SigningKey, b64};

const URL: &str = "https://auth.example/token";
const TOKEN: &str = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhIn0.c2ln";

fn jwk_json(key: &SigningKey) -> Value {
    serde_json::to_value(key.public_jwk().unwrap()).unwrap()
}

fn claims() -> Value {
    json!({"jti": "id-1", "htm": "POST", "htu": URL, "iat": NOW.secs()})
}

fn header(key: &SigningKey) -> Value {
    json!({"typ": "dpop+jwt", "alg": key.algorithm().name(), "jwk": jwk_json(key)})
}

/// A proof with this header and these claims, signed by `key`.
fn sign(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64::encode(header.to_string()),
        b64::encode(claims.to_string())
    );
    let sig = key.sign_bytes(input.as_bytes()).unwrap();
    format!("{input}.{}", b64::encode(sig))
}

fn proof(key: &SigningKey) -> String {
    sign(key, &header(key), &claims())
}

fn check() -> ProofCheck<'static> {
    ProofCheck::new("POST", URL, NOW)
}

fn refusal(proof: &str) -> Error {
    verify_proof(proof, &check()).unwrap_err()
}

#[test]
fn eddsa_es256_and_rs256_proofs_verify_and_name_their_key() {
    for alg in [Algorithm::EdDsa, Algorithm::Es256, Algorithm::Rs256] {
        let key = SigningKey::generate(alg).unwrap();
        let verified = verify_proof(&proof(&key), &check()).unwrap();
        assert_eq!(
            verified.jkt,
            key.public_jwk().unwrap().thumbprint().unwrap()
        );
        assert_eq!(verified.jti, "id-1");
        assert_eq!(verified.iat, NOW);
        assert_eq!(verified.alg, alg.name());
        assert_eq!(verified.nonce, None);
    }
}

#[test]
fn ps256_proofs_verify_and_an_rs256_signature_does_not_pass_as_ps256() {
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let public = pair.public_key();
    let jwk = json!({
        "kty": "RSA",
        "n": b64::encode(public.modulus().big_endian_without_leading_zero()),
        "e": b64::encode(public.exponent().big_endian_without_leading_zero()),
    });
    let sign_with = |padding: &'static dyn signature::RsaEncoding, alg: &str| {
        let header = json!({"typ": "dpop+jwt", "alg": alg, "jwk": jwk});
        let input = format!(
            "{}.{}",
            b64::encode(header.to_string()),
            b64::encode(claims().to_string())
        );
        let mut sig = vec![0u8; pair.public_modulus_len()];
        pair.sign(padding, &SystemRandom::new(), input.as_bytes(), &mut sig)
            .unwrap();
        format!("{input}.{}", b64::encode(sig))
    };
    let verified = verify_proof(&sign_with(&signature::RSA_PSS_SHA256, "PS256"), &check()).unwrap();
    assert_eq!(verified.alg, "PS256");
    assert_eq!(
        refusal(&sign_with(&signature::RSA_PKCS1_SHA256, "PS256")),
        Error::BadSignature
    );
    assert_eq!(
        refusal(&sign_with(&signature::RSA_PSS_SHA256, "RS256")),
        Error::BadSignature
    );
}

/// Proofs are verified before the client is authenticated: a key whose verification costs
/// more than an RSA-4096 one is refused before any signature is checked.
#[test]
fn an_rsa_key_over_4096_bits_is_refused_before_its_signature_is_checked() {
    let mut n = vec![0xffu8; 4096 / 8 + 1];
    n[0] = 0x01;
    for alg in ["RS256", "PS256"] {
        let h = json!({"typ": "dpop+jwt", "alg": alg,
            "jwk": {"kty": "RSA", "n": b64::encode(&n), "e": "AQAB"}});
        let input = format!(
            "{}.{}",
            b64::encode(h.to_string()),
            b64::encode(claims().to_string())
        );
        let proof = format!("{input}.{}", b64::encode([0u8; 513]));
        assert_eq!(
            refusal(&proof),
            Error::InvalidDpopProof("RSA keys in DPoP proofs must be at most 4096 bits"),
            "{alg}"
        );
    }
    // RSA-4096 itself is accepted.
    let pair = RsaKeyPair::generate(KeySize::Rsa4096).unwrap();
    let public = pair.public_key();
    let h = json!({"typ": "dpop+jwt", "alg": "PS256", "jwk": {
        "kty": "RSA",
        "n": b64::encode(public.modulus().big_endian_without_leading_zero()),
        "e": b64::encode(public.exponent().big_endian_without_leading_zero()),
    }});
    let input = format!(
        "{}.{}",
        b64::encode(h.to_string()),
        b64::encode(claims().to_string())
    );
    let mut sig = vec![0u8; pair.public_modulus_len()];
    pair.sign(
        &signature::RSA_PSS_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    verify_proof(&format!("{input}.{}", b64::encode(sig)), &check()).unwrap();
}

#[test]
fn a_private_or_symmetric_key_in_the_header_is_refused() {
    let key = SigningKey::generate(Algorithm::EdDsa).unwrap();
    let mut h = header(&key);
    h["jwk"]["d"] = json!(b64::encode([7u8; 32]));
    assert_eq!(
        refusal(&sign(&key, &h, &claims())),
        Error::InvalidDpopProof("jwk is not a public key")
    );
    let hmac = SigningKey::generate(Algorithm::Hs256).unwrap();
    let h = json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": b64::encode([1u8; 32])}});
    assert_eq!(
        refusal(&sign(&hmac, &h, &claims())),
        Error::InvalidDpopProof("jwk is not a public key")
    );
    let h = json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": jwk_json(&key)});
    assert_eq!(
        refusal(&sign(&hmac, &h, &claims())),
        Error::InvalidDpopProof("alg is not supported for proofs")
    );
}

#[test]
fn alg_none_and_an_alg_the_key_cannot_verify_are_refused() {
    let key = SigningKey::generate(Algorithm::EdDsa).unwrap();
    let mut h = header(&key);
    h["alg"] = json!("none");
    let unsigned = format!(
        "{}.{}.",
        b64::encode(h.to_string()),
        b64::encode(claims().to_string())
    );
    assert_eq!(refusal(&unsigned), Error::AlgNone);
    h["alg"] = json!("ES256");
    assert_eq!(refusal(&sign(&key, &h, &claims())), Error::AlgMismatch);
}

#[test]
fn the_header_must_say_dpop_jwt_carry_a_jwk_and_nothing_that_points_elsewhere() {
    let key = SigningKey::generate(Algorithm::Es256).unwrap();
    for typ in [json!("JWT"), json!("at+jwt"), Value::Null] {
        let mut h = header(&key);
        if typ.is_null() {
            h.as_object_mut().unwrap().remove("typ");
        } else {
            h["typ"] = typ;
        }
        assert_eq!(
            refusal(&sign(&key, &h, &claims())),
            Error::InvalidDpopProof("typ is not dpop+jwt")
        );
    }
    let mut h = header(&key);
    h["typ"] = json!("DPoP+JWT");
    verify_proof(&sign(&key, &h, &claims()), &check()).expect("media types ignore case");
    let mut h = header(&key);
    h.as_object_mut().unwrap().remove("jwk");
    assert_eq!(
        refusal(&sign(&key, &h, &claims())),
        Error::InvalidDpopProof("missing jwk")
    );
    for member in ["jku", "x5u", "x5c"] {
        let mut h = header(&key);
        h[member] = json!("https://evil.example/k");
        assert_eq!(
            refusal(&sign(&key, &h, &claims())),
            Error::ForbiddenHeader(member)
        );
    }
    let mut h = header(&key);
    h["crit"] = json!(["exp"]);
    assert_eq!(refusal(&sign(&key, &h, &claims())), Error::UnknownCrit);
}

#[test]
fn a_proof_signed_by_another_key_than_its_jwk_is_refused() {
    let key = SigningKey::generate(Algorithm::EdDsa).unwrap();
    let other = SigningKey::generate(Algorithm::EdDsa).unwrap();
    assert_eq!(
        refusal(&sign(&other, &header(&key), &claims())),
        Error::BadSignature
    );
}

#[test]
fn every_required_claim_is_required() {
    let key = SigningKey::generate(Algorithm::EdDsa).unwrap();
    for (claim, reason) in [
        ("jti", "missing jti"),
        ("htm", "missing htm"),
        ("htu", "missing htu"),
        ("iat", "missing iat"),
    ] {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(claim);
        assert_eq!(
            refusal(&sign(&key, &header(&key), &c)),
            Error::InvalidDpopProof(reason)
        );
    }
    let mut c = claims();
    c["iat"] = json!("1800000000");
    assert_eq!(
        refusal(&sign(&key, &header(&key), &c)),
        Error::InvalidDpopProof("iat is not a number")
    );
    let mut c = claims();
    c["jti"] = json!("x".repeat(257));
    assert_eq!(
        refusal(&sign(&key, &header(&key), &c)),
        Error::InvalidDpopProof("jti is empty or too long")
    );
}

#[test]
fn method_and_url_must_be_the_requests() {
    let key = SigningKey::generate(Algorithm::EdDsa).unwrap();
    let p = proof(&key);
    let wrong_method = ProofCheck::new("post", URL, NOW);
    assert_eq!(
        verify_proof(&p, &wrong_method).unwrap_err(),
        Error::InvalidDpopProof("htm does not match the request method")
    );
    for other in [
        "https://auth.example/introspect",
        "http://auth.example/token",
        "https://auth.example:8443/token",
        "https://other.example/token",
    ] {
        assert_eq!(
            verify_proof(&p, &ProofCheck::new("POST", other, NOW)).unwrap_err(),
            Error::InvalidDpopProof("htu does not match the request URL"),
            "{other}"
        );
    }
    // Query and fragment are ignored, case and default port normalised (RFC 9449 §4.3).
    for same in [
        "https://auth.example/token?x=1",
        "HTTPS://Auth.Example:443/token#f",
        "https://auth.example/%74oken",
    ] {
        verify_proof(&p, &ProofCheck::new("POST", same, NOW)).expect(same);
    }
}

#[test]
fn iat_must_be_within_the_window_and_the_leeway() {
    let key = SigningKey::generate(Algorithm::EdDsa).unwrap();
    let at = |secs: i64| {
        let mut c = claims();
        c["iat"] = json!(NOW.secs() + secs);
        sign(&key, &header(&key), &c)
    };
    verify_proof(&at(-60), &check()).expect("60 s old");
    verify_proof(&at(60), &check()).expect("60 s ahead");
    for stale in [-61, 61, -86_400, i64::from(i32::MAX)] {
        assert_eq!(
            refusal(&at(stale)),
            Error::InvalidDpopProof("iat is outside the accepted window")
        );
    }
    let lenient = check().with_window(Duration::from_secs(60), Duration::from_secs(30));
    verify_proof(&at(-90), &lenient).expect("within window plus leeway");
}

#[test]
fn ath_must_be_the_hash_of_the_presented_token() {
    let key = SigningKey::generate(Algorithm::EdDsa).unwrap();
    let with_token = check().with_access_token(TOKEN);
    assert_eq!(
        verify_proof(&proof(&key), &with_token).unwrap_err(),
        Error::InvalidDpopProof("missing ath")
    );
    let mut c = claims();
    c["ath"] = json!(access_token_hash("another token"));
    assert_eq!(
        verify_proof(&sign(&key, &header(&key), &c), &with_token).unwrap_err(),
        Error::InvalidDpopProof("ath does not match the access token")
    );
    c["ath"] = json!(access_token_hash(TOKEN));
    verify_proof(&sign(&key, &header(&key), &c), &with_token).unwrap();
}

#[test]
fn the_ath_of_the_rfc_example() {
    // RFC 9449 section 7.1: the access token and its `ath`.
    assert_eq!(
        access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
        "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    );
}

#[test]
fn a_nonce_is_handed_back_for_the_caller_to_check() {
    let key = SigningKey::generate(Algorithm::EdDsa).unwrap();
    let mut c = claims();
    c["nonce"] = json!("n-1");
    let verified = verify_proof(&sign(&key, &header(&key), &c), &check()).unwrap();
    assert_eq!(verified.nonce.as_deref(), Some("n-1"));
    c["nonce"] = json!(7);
    assert_eq!(
        refusal(&sign(&key, &header(&key), &c)),
        Error::InvalidDpopProof("nonce is not a short string")
    );
}

#[test]
fn oversized_and_duplicate_member_proofs_are_refused() {
    let key = SigningKey::generate(Algorithm::EdDsa).unwrap();
    let mut c = claims();
    c["pad"] = json!("x".repeat(9000));
    assert!(matches!(
        refusal(&sign(&key, &header(&key), &c)),
        Error::TooLarge { .. }
    ));
    let h = b64::encode(header(&key).to_string());
    let dup = b64::encode(
        r#"{"jti":"a","jti":"b","htm":"POST","htu":"https://auth.example/token","iat":1800000000}"#,
    );
    let input = format!("{h}.{dup}");
    let sig = b64::encode(key.sign_bytes(input.as_bytes()).unwrap());
    assert_eq!(refusal(&format!("{input}.{sig}")), Error::DuplicateMember);
}

#[test]
fn htu_normalisation() {
    assert_eq!(
        normalize_htu("HTTPS://Server.Example.COM:443").as_deref(),
        Some("https://server.example.com/")
    );
    assert_eq!(
        normalize_htu("http://[::1]:80/a%2fb%7E?q").as_deref(),
        Some("http://[::1]/a%2Fb~")
    );
    assert_eq!(
        normalize_htu("http://[::1]:8080/").as_deref(),
        Some("http://[::1]:8080/")
    );
    for bad in [
        "ftp://x/",
        "/token",
        "https://user@host/",
        "https:///x",
        "https://h:x/",
        "https://h/%zz",
        "https://h/a b",
    ] {
        assert_eq!(normalize_htu(bad), None, "{bad}");
    }
}

#[test]
fn sign_proof_makes_proofs_that_verify_and_refuses_hmac() {
    for alg in [Algorithm::EdDsa, Algorithm::Es256, Algorithm::Rs256] {
        let key = SigningKey::generate(alg).unwrap().with_kid("k");
        let mut c = claims();
        c["ath"] = json!(access_token_hash(TOKEN));
        let proof = sign_proof(&key, &c).unwrap();
        let verified = verify_proof(&proof, &check().with_access_token(TOKEN)).unwrap();
        assert_eq!(
            verified.jkt,
            key.public_jwk().unwrap().thumbprint().unwrap()
        );
        let header = b64::decode(proof.split('.').next().unwrap(), "header").unwrap();
        let header: Value = serde_json::from_slice(&header).unwrap();
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["jwk"].get("kid"), None, "the proof key names no kid");
    }
    let hmac = SigningKey::from_hmac_secret(&[7u8; 32]).unwrap();
    assert_eq!(sign_proof(&hmac, &claims()), Err(Error::Unsupported));
}

#[test]
fn the_expected_key_is_checked_and_cheap_checks_come_before_the_signature() {
    let key = SigningKey::generate(Algorithm::Es256).unwrap();
    let other = SigningKey::generate(Algorithm::Es256).unwrap();
    let jkt = key.public_jwk().unwrap().thumbprint().unwrap();
    let other_jkt = other.public_jwk().unwrap().thumbprint().unwrap();
    let p = proof(&key);
    assert!(verify_proof(&p, &check().with_jkt(&jkt)).is_ok());
    assert_eq!(
        verify_proof(&p, &check().with_jkt(&other_jkt)).unwrap_err(),
        Error::InvalidDpopProof("the proof key is not the key the token is bound to")
    );
    // A proof with a broken signature that also fails a cheap check is refused for the
    // cheap check: the signature was never verified.
    let mut broken = p.clone();
    broken.truncate(broken.rfind('.').unwrap() + 1);
    broken.push_str(&b64::encode([0u8; 64]));
    assert_eq!(
        verify_proof(&broken, &check()).unwrap_err(),
        Error::BadSignature
    );
    assert_eq!(
        verify_proof(&broken, &check().with_jkt(&other_jkt)).unwrap_err(),
        Error::InvalidDpopProof("the proof key is not the key the token is bound to")
    );
    assert!(matches!(
        verify_proof(&broken, &ProofCheck::new("GET", URL, NOW)).unwrap_err(),
        Error::InvalidDpopProof(_)
    ));
}

#[test]
fn a_huge_window_does_not_overflow() {
    let key = SigningKey::generate(Algorithm::Es256).unwrap();
    let wide = check().with_window(Duration::MAX, Duration::MAX);
    assert!(verify_proof(&proof(&key), &wide).is_ok());
}
