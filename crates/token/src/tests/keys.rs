//! Issue 2 item 3: key generation, PKCS#8/PEM, JWK import/export, thumbprints, key sets.

use serde_json::json;

use super::*;
use crate::{Error, Jwk, JwkSet, VerifyingKey};

#[test]
fn generated_keys_round_trip_through_pkcs8_pem() {
    for alg in [Algorithm::EdDsa, Algorithm::Es256, Algorithm::Rs256] {
        let original = key(alg);
        let pem = original.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{alg}");
        let back = SigningKey::from_pkcs8_pem(&pem)
            .unwrap()
            .with_kid(original.kid().unwrap());
        assert_eq!(back.algorithm(), alg);
        assert_eq!(back.public_jwk(), original.public_jwk(), "{alg}");
        // A token signed by the re-imported key verifies with the original public key.
        let token = forge(&back, &header_for(&back), &good_claims());
        assert!(
            keyset(&[&original]).verify(&token, &policy(), NOW).is_ok(),
            "{alg}"
        );
        // DER too.
        let der = original.to_pkcs8_der().unwrap();
        assert_eq!(SigningKey::from_pkcs8_der(&der).unwrap().algorithm(), alg);
    }
}

#[test]
fn hmac_keys_have_no_public_or_pkcs8_form() {
    let k = key(Algorithm::Hs256);
    assert!(k.public_jwk().is_none());
    assert_eq!(k.to_pkcs8_der().unwrap_err(), Error::Unsupported);
}

#[test]
fn weak_and_unsupported_keys_are_refused() {
    assert!(matches!(
        SigningKey::from_hmac_secret(&[7u8; 31]),
        Err(Error::WeakKey(_))
    ));
    assert!(SigningKey::from_hmac_secret(&[7u8; 32]).is_ok());
    assert!(matches!(
        VerifyingKey::from_hmac_secret(&[1u8; 16]),
        Err(Error::WeakKey(_))
    ));
    let short_oct = Jwk {
        kty: "oct".into(),
        k: Some(crate::b64::encode([1u8; 16]).into()),
        ..Jwk::default()
    };
    assert!(matches!(
        VerifyingKey::from_jwk(&short_oct),
        Err(Error::WeakKey(_))
    ));

    // A 1024-bit RSA key, as PKCS#8 and as a JWK modulus.
    let weak_pem = include_str!("../../testdata/weak-rsa-1024.pkcs8.pem");
    assert!(SigningKey::from_pkcs8_pem(weak_pem).is_err());
    let weak_jwk = Jwk {
        kty: "RSA".into(),
        n: Some(crate::b64::encode([0xc3u8; 128])),
        e: Some("AQAB".into()),
        ..Jwk::default()
    };
    assert!(matches!(
        VerifyingKey::from_jwk(&weak_jwk),
        Err(Error::WeakKey(_))
    ));
    // 2047 bits: one bit short.
    let mut n = vec![0xffu8; 256];
    n[0] = 0x7f;
    let almost = Jwk {
        n: Some(crate::b64::encode(&n)),
        ..weak_jwk.clone()
    };
    assert!(matches!(
        VerifyingKey::from_jwk(&almost),
        Err(Error::WeakKey(_))
    ));

    // Ed448 and anything not PKCS#8.
    assert!(matches!(
        SigningKey::from_pkcs8_pem(include_str!("../../testdata/ed448.pkcs8.pem")),
        Err(Error::InvalidKey(_))
    ));
    assert!(matches!(
        SigningKey::from_pkcs8_pem("not a pem"),
        Err(Error::InvalidKey(_))
    ));
    let pkcs1 = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n";
    assert!(
        matches!(SigningKey::from_pkcs8_pem(pkcs1), Err(Error::InvalidKey(msg)) if msg.contains("PKCS#8"))
    );
    for (kty, crv) in [
        ("OKP", "X25519"),
        ("OKP", "Ed448"),
        ("EC", "P-384"),
        ("EC", "secp256k1"),
        ("XYZ", ""),
    ] {
        let jwk = Jwk {
            kty: kty.into(),
            crv: Some(crv.into()),
            x: Some("AA".into()),
            y: Some("AA".into()),
            ..Jwk::default()
        };
        assert_eq!(
            VerifyingKey::from_jwk(&jwk).unwrap_err(),
            Error::Unsupported,
            "{kty} {crv}"
        );
    }
}

#[test]
fn jwk_import_checks_use_ops_alg_and_points() {
    let ed = key(Algorithm::EdDsa).public_jwk().unwrap();
    assert!(VerifyingKey::from_jwk(&ed).is_ok());

    let enc = Jwk {
        use_: Some("enc".into()),
        ..ed.clone()
    };
    assert!(matches!(
        VerifyingKey::from_jwk(&enc),
        Err(Error::InvalidKey(_))
    ));
    let sign_only = Jwk {
        key_ops: Some(vec!["sign".into()]),
        ..ed.clone()
    };
    assert!(matches!(
        VerifyingKey::from_jwk(&sign_only),
        Err(Error::InvalidKey(_))
    ));
    let verify_op = Jwk {
        key_ops: Some(vec!["verify".into()]),
        ..ed.clone()
    };
    assert!(VerifyingKey::from_jwk(&verify_op).is_ok());
    // `alg` in the JWK must match the key type.
    let wrong_alg = Jwk {
        alg: Some("HS256".into()),
        ..ed.clone()
    };
    assert_eq!(
        VerifyingKey::from_jwk(&wrong_alg).unwrap_err(),
        Error::Unsupported
    );

    let es = key(Algorithm::Es256).public_jwk().unwrap();
    let short_x = Jwk {
        x: Some(crate::b64::encode([1u8; 31])),
        ..es.clone()
    };
    assert!(matches!(
        VerifyingKey::from_jwk(&short_x),
        Err(Error::InvalidKey(_))
    ));
    let off_curve = Jwk {
        y: Some(crate::b64::encode([1u8; 32])),
        ..es.clone()
    };
    assert!(matches!(
        VerifyingKey::from_jwk(&off_curve),
        Err(Error::InvalidKey(_))
    ));
    let not_b64 = Jwk {
        x: Some("a+b/".into()),
        ..es
    };
    assert!(matches!(
        VerifyingKey::from_jwk(&not_b64),
        Err(Error::InvalidKey(_))
    ));
    let missing = Jwk { x: None, ..ed };
    assert!(matches!(
        VerifyingKey::from_jwk(&missing),
        Err(Error::InvalidKey(_))
    ));
}

#[test]
fn public_export_carries_no_private_material() {
    for alg in [Algorithm::EdDsa, Algorithm::Es256, Algorithm::Rs256] {
        let k = key(alg);
        let jwk = k.public_jwk().unwrap();
        assert!(!jwk.is_private());
        assert_eq!(jwk.kid.as_deref(), k.kid());
        assert_eq!(jwk.alg.as_deref(), Some(alg.name()));
        assert_eq!(jwk.use_.as_deref(), Some("sig"));
        let text = jwk.to_json();
        assert!(!text.contains("\"d\"") && !text.contains("\"k\""), "{text}");
        // Debug of the signing key shows neither the PEM body nor the private scalar.
        let pem = k.to_pkcs8_pem().unwrap();
        let body: String = pem.lines().nth(1).unwrap().chars().take(20).collect();
        assert!(!format!("{k:?}").contains(&body));
        // The thumbprint is stable and ignores kid/alg/use.
        let bare = Jwk {
            kid: None,
            alg: None,
            use_: None,
            ..jwk.clone()
        };
        assert_eq!(jwk.thumbprint().unwrap(), bare.thumbprint().unwrap());
        assert_eq!(jwk.thumbprint().unwrap().len(), 43);
    }
}

#[test]
fn key_sets_from_jwks_skip_non_signature_keys_and_refuse_duplicate_kids() {
    let a = key(Algorithm::EdDsa);
    let b = key(Algorithm::Es256);
    let doc = json!({"keys": [
        a.public_jwk(),
        b.public_jwk(),
        {"kty": "RSA", "use": "enc", "kid": "enc-1", "n": "AQAB", "e": "AQAB"},
        {"kty": "OKP", "crv": "X25519", "kid": "x", "x": "AAAA"},
        {"kty": "EC", "crv": "P-521", "kid": "p521", "x": "AA", "y": "AA"},
    ]});
    let jwks = JwkSet::from_json(doc.to_string().as_bytes()).unwrap();
    let set = KeySet::from_jwks(&jwks).unwrap();
    assert_eq!(set.keys().len(), 2);
    assert!(set.contains_kid(a.kid().unwrap()) && set.contains_kid(b.kid().unwrap()));
    let token = forge(&b, &header_for(&b), &good_claims());
    assert!(set.verify(&token, &policy(), NOW).is_ok());

    // A malformed signature key is an error, not silently skipped.
    let bad = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": "short"}]});
    assert!(KeySet::from_jwks(&JwkSet::from_json(bad.to_string().as_bytes()).unwrap()).is_err());

    let dup = vec![
        a.verifying_key().unwrap(),
        key(Algorithm::EdDsa).verifying_key().unwrap(),
    ];
    assert!(matches!(KeySet::new(dup), Err(Error::InvalidKey(_))));
}

#[test]
fn private_jwk_import_needs_matching_halves() {
    let rfc: Jwk = Jwk::from_json(include_bytes!(
        "../../testdata/rfc8037-a.1-private.jwk.json"
    ))
    .unwrap();
    assert!(SigningKey::from_jwk(&rfc).is_ok());
    let other_x = key(Algorithm::EdDsa).public_jwk().unwrap().x;
    let mismatched = Jwk {
        x: other_x,
        ..rfc.clone()
    };
    assert!(matches!(
        SigningKey::from_jwk(&mismatched),
        Err(Error::InvalidKey(_))
    ));
    let public_only = rfc.to_public();
    assert!(matches!(
        SigningKey::from_jwk(&public_only),
        Err(Error::InvalidKey(_))
    ));
    let rsa = Jwk {
        kty: "RSA".into(),
        ..Jwk::default()
    };
    assert!(matches!(
        SigningKey::from_jwk(&rsa),
        Err(Error::InvalidKey(_))
    ));
}
