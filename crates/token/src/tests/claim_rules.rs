//! Issue 2 item 2: every claim rule of the validation policy, each broken on its own.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::*;
use crate::{Error, RequiredClaim, VerifiedClaims};

fn check(claims: &Value, policy: &Validation) -> Result<VerifiedClaims, Error> {
    check_at(claims, policy, NOW)
}

fn check_at(claims: &Value, policy: &Validation, now: UnixTime) -> Result<VerifiedClaims, Error> {
    let k = key(Algorithm::EdDsa);
    let token = forge(&k, &header_for(&k), claims);
    keyset(&[&k]).verify(&token, policy, now)
}

fn with(name: &str, value: Value) -> Value {
    let mut c = good_claims();
    c[name] = value;
    c
}

fn without(name: &str) -> Value {
    let mut c = good_claims();
    c.as_object_mut().unwrap().remove(name);
    c
}

#[test]
fn good_claims_pass_and_are_typed() {
    let v = check(&good_claims(), &policy()).unwrap();
    assert_eq!(v.iss.as_deref(), Some(ISS));
    assert_eq!(v.sub.as_deref(), Some("alice"));
    assert!(v.aud.contains(AUD));
    assert_eq!(v.client_id.as_deref(), Some("c-1"));
    assert!(v.scope.as_ref().unwrap().contains("notes:read"));
    assert_eq!(v.exp, Some(UnixTime::from_secs(NOW.secs() + 600)));
}

#[test]
fn exp_is_required_and_checked_with_leeway() {
    assert_eq!(
        check(&without("exp"), &policy()).unwrap_err(),
        Error::MissingClaim("exp")
    );
    // Expired 31 s ago: beyond the default 30 s leeway.
    assert_eq!(
        check(&with("exp", json!(NOW.secs() - 31)), &policy()).unwrap_err(),
        Error::Expired
    );
    // Exactly at exp + leeway: RFC 7519 says "on or after" exp is invalid.
    assert_eq!(
        check(&with("exp", json!(NOW.secs() - 30)), &policy()).unwrap_err(),
        Error::Expired
    );
    // Within leeway: accepted.
    assert!(check(&with("exp", json!(NOW.secs() - 29)), &policy()).is_ok());
    // With no leeway, exp == now is expired.
    let strict = policy().leeway(Duration::ZERO);
    assert_eq!(
        check(&with("exp", json!(NOW.secs())), &strict).unwrap_err(),
        Error::Expired
    );
    assert!(check(&with("exp", json!(NOW.secs() + 1)), &strict).is_ok());
}

#[test]
fn nbf_in_the_future_is_refused_beyond_leeway() {
    assert_eq!(
        check(&with("nbf", json!(NOW.secs() + 31)), &policy()).unwrap_err(),
        Error::NotYetValid
    );
    assert!(check(&with("nbf", json!(NOW.secs() + 30)), &policy()).is_ok());
    assert!(check(&with("nbf", json!(NOW.secs() - 100)), &policy()).is_ok());
}

#[test]
fn iat_in_the_future_is_refused_beyond_leeway() {
    assert_eq!(
        check(&with("iat", json!(NOW.secs() + 31)), &policy()).unwrap_err(),
        Error::IssuedInFuture
    );
    assert!(check(&with("iat", json!(NOW.secs() + 30)), &policy()).is_ok());
}

#[test]
fn auth_time_in_the_future_is_refused() {
    assert_eq!(
        check(&with("auth_time", json!(NOW.secs() + 3600)), &policy()).unwrap_err(),
        Error::InvalidClaim("auth_time")
    );
    assert!(check(&with("auth_time", json!(NOW.secs() - 3600)), &policy()).is_ok());
}

#[test]
fn issuer_must_be_present_and_accepted() {
    assert_eq!(
        check(&without("iss"), &policy()).unwrap_err(),
        Error::MissingClaim("iss")
    );
    assert_eq!(
        check(&with("iss", json!("https://evil.example")), &policy()).unwrap_err(),
        Error::WrongIssuer
    );
    // Exact comparison: no trailing-slash or case folding.
    assert_eq!(
        check(&with("iss", json!(format!("{ISS}/"))), &policy()).unwrap_err(),
        Error::WrongIssuer
    );
    assert_eq!(
        check(&with("iss", json!(ISS.to_uppercase())), &policy()).unwrap_err(),
        Error::WrongIssuer
    );
    let two = policy().also_issuer("https://other.example");
    assert!(check(&with("iss", json!("https://other.example")), &two).is_ok());
}

#[test]
fn audience_must_be_present_and_accepted() {
    assert_eq!(
        check(&without("aud"), &policy()).unwrap_err(),
        Error::MissingClaim("aud")
    );
    assert_eq!(
        check(&with("aud", json!([])), &policy()).unwrap_err(),
        Error::MissingClaim("aud")
    );
    assert_eq!(
        check(&with("aud", json!("billing-api")), &policy()).unwrap_err(),
        Error::WrongAudience
    );
    assert_eq!(
        check(&with("aud", json!(["a", "b"])), &policy()).unwrap_err(),
        Error::WrongAudience
    );
    assert!(check(&with("aud", json!(["billing-api", AUD])), &policy()).is_ok());
    let two = policy().also_audience("billing-api");
    assert!(check(&with("aud", json!("billing-api")), &two).is_ok());
}

#[test]
fn required_claims_must_be_present() {
    let cases = [
        (RequiredClaim::Sub, "sub"),
        (RequiredClaim::Iat, "iat"),
        (RequiredClaim::Nbf, "nbf"),
        (RequiredClaim::Jti, "jti"),
        (RequiredClaim::ClientId, "client_id"),
        (RequiredClaim::Scope, "scope"),
        (RequiredClaim::Sid, "sid"),
        (RequiredClaim::AuthTime, "auth_time"),
        (RequiredClaim::Acr, "acr"),
    ];
    for (claim, name) in cases {
        let p = policy().require(claim);
        assert_eq!(
            check(&without(name), &p).unwrap_err(),
            Error::MissingClaim(name),
            "{name}"
        );
    }
    let mut all = good_claims();
    all["nbf"] = json!(NOW.secs());
    all["sid"] = json!("g-1");
    all["auth_time"] = json!(NOW.secs() - 10);
    all["acr"] = json!("urn:example:pwd");
    let p = cases.iter().fold(policy(), |p, (c, _)| p.require(*c));
    assert!(check(&all, &p).is_ok());
}

#[test]
fn access_token_profile_requires_typ_and_rfc9068_claims() {
    let p = Validation::access_token(ISS, AUD);
    assert!(check(&good_claims(), &p).is_ok());
    for name in ["sub", "client_id", "iat", "jti"] {
        assert_eq!(
            check(&without(name), &p).unwrap_err(),
            Error::MissingClaim(name),
            "{name}"
        );
    }
    let k = key(Algorithm::EdDsa);
    let keys = keyset(&[&k]);
    for (typ, ok) in [
        (json!("at+jwt"), true),
        (json!("application/at+jwt"), true),
        (json!("AT+JWT"), true),
        (json!("JWT"), false),
        (json!("jwt"), false),
        (Value::Null, false),
    ] {
        let mut header = json!({"alg": "EdDSA", "kid": k.kid()});
        if !typ.is_null() {
            header["typ"] = typ.clone();
        }
        let token = forge(&k, &header, &good_claims());
        let result = keys.verify(&token, &p, NOW);
        assert_eq!(result.is_ok(), ok, "typ {typ}");
        if !ok {
            assert_eq!(result.unwrap_err(), Error::WrongType);
        }
    }
}

#[test]
fn claims_of_the_wrong_type_are_refused() {
    let cases = [
        ("exp", json!("1800000600")),
        ("exp", json!(null)),
        ("nbf", json!(true)),
        ("iat", json!({})),
        ("iss", json!(1)),
        ("sub", json!(42)),
        ("aud", json!(7)),
        ("aud", json!([AUD, 7])),
        ("jti", json!([])),
        ("client_id", json!(false)),
        ("scope", json!(["notes:read"])),
        ("scope", json!("notes:read  notes:write")),
        ("scope", json!("")),
        ("sid", json!(1)),
        ("acr", json!(1)),
        ("auth_time", json!("yesterday")),
        ("cnf", json!("jkt")),
        ("cnf", json!({"jkt": 5})),
    ];
    for (name, value) in cases {
        let err = check(&with(name, value.clone()), &policy()).unwrap_err();
        assert_eq!(err, Error::InvalidClaim(name), "{name} = {value}");
    }
}

#[test]
fn custom_claims_are_typed_extras_and_cnf_is_kept() {
    #[derive(Deserialize, PartialEq, Debug)]
    struct Tenant {
        tenant: String,
        roles: Vec<String>,
    }
    let mut c = good_claims();
    c["tenant"] = json!("acme");
    c["roles"] = json!(["admin"]);
    c["cnf"] = json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"});
    let v = check(&c, &policy()).unwrap();
    assert_eq!(
        v.extra::<Tenant>().unwrap(),
        Tenant {
            tenant: "acme".into(),
            roles: vec!["admin".into()]
        }
    );
    assert_eq!(
        v.cnf.as_ref().unwrap().jkt.as_deref(),
        Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
    );
    // Registered claims are not duplicated into extras.
    assert!(!v.extra.contains_key("sub"));
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct NeedsMissing {
        missing: String,
    }
    assert_eq!(
        v.extra::<NeedsMissing>().unwrap_err(),
        Error::InvalidClaim("custom claims")
    );
}

#[test]
fn signature_is_checked_before_claims() {
    // An expired token with a bad signature reports the signature, so claim errors never
    // leak information about tokens nobody trusted.
    let k = key(Algorithm::EdDsa);
    let other = SigningKey::generate(Algorithm::EdDsa)
        .unwrap()
        .with_kid(k.kid().unwrap());
    let token = forge(&other, &header_for(&other), &with("exp", json!(1)));
    assert_eq!(
        keyset(&[&k]).verify(&token, &policy(), NOW).unwrap_err(),
        Error::BadSignature
    );
}

#[test]
fn time_is_only_what_the_caller_passes() {
    let c = good_claims();
    let later = NOW.saturating_add(Duration::from_secs(3600));
    assert_eq!(check_at(&c, &policy(), later).unwrap_err(), Error::Expired);
    let earlier = NOW.saturating_sub(Duration::from_secs(3600));
    assert_eq!(
        check_at(&c, &policy(), earlier).unwrap_err(),
        Error::IssuedInFuture
    );
}
