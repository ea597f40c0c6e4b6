//! Benchmark controls (hidden flag `--bench-control`): unauthenticated routes whose handler
//! verifies one fixed signature with aws-lc-rs directly, over a 600-byte input (the size of
//! an access token's `header.payload`), with the key parsed once. `bench/run.sh` loads them
//! beside the guarded routes of the same server, so "the floor plus one raw verification"
//! is measured over HTTP under the same conditions as the guard, kernel wake-ups included.
//! Never enable them in a deployment: they spend a signature check on any anonymous request.

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, ParsedPublicKey,
};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;

/// One fixed signature and the parsed key that verifies it.
struct Fixed {
    key: ParsedPublicKey,
    signature: Vec<u8>,
}

impl Fixed {
    fn verify(&self, input: &[u8]) -> StatusCode {
        match self.key.verify_sig(input, &self.signature) {
            Ok(()) => StatusCode::OK,
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// `GET /bench/raw-eddsa` and `GET /bench/raw-es256`.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>()
-> Result<Router<S>, Box<dyn std::error::Error>> {
    let rng = SystemRandom::new();
    let input: Arc<[u8]> = vec![b'e'; 600].into();
    let ed = Ed25519KeyPair::generate()?;
    let eddsa = Arc::new(Fixed {
        key: ParsedPublicKey::new(&signature::ED25519, ed.public_key().as_ref())?,
        signature: ed.sign(&input).as_ref().to_vec(),
    });
    let es_doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)?;
    let es = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, es_doc.as_ref())?;
    let es256 = Arc::new(Fixed {
        key: ParsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            es.public_key().as_ref(),
        )?,
        signature: es.sign(&rng, &input)?.as_ref().to_vec(),
    });
    let (ed_input, es_input) = (Arc::clone(&input), input);
    Ok(Router::new()
        .route(
            "/bench/raw-eddsa",
            get(move || async move { eddsa.verify(&ed_input) }),
        )
        .route(
            "/bench/raw-es256",
            get(move || async move { es256.verify(&es_input) }),
        ))
}
