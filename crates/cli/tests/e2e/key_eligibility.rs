//! A server signs with a new key only after it has itself published the key for a JWKS
//! cache lifetime, however late its reload learnt of the key. Here it reloads every 3 s
//! with a 1 s cache lifetime; a rotated key activates 1 + 3 + 1 s after publication
//! (`Timings::activation_lead`), so a server that reloads on time sees it before that, and
//! the late-reload path (a key first seen already active) is exercised by the unit tests
//! `keys::refresh_tests::*`. Either way, a relying party that caches the JWKS for its
//! lifetime must never meet an unknown kid.

use std::time::{Duration, Instant};

use crate::harness::Server;

const SLOW_RELOADS: &str = "jwks_cache_ttl_secs = 1\nkey_refresh_interval_secs = 3\n";
/// `jwks_cache_ttl_secs` of [`SLOW_RELOADS`].
const CACHE_LIFE: Duration = Duration::from_secs(1);

fn kid_of(token: &str) -> String {
    tessera_token::decode_unverified(token)
        .unwrap()
        .header
        .kid
        .unwrap()
}

/// A relying party's copy of the JWKS, its age counted from the request.
struct Cached {
    fetched: Instant,
    kids: Vec<String>,
}

impl Cached {
    async fn fetch(s: &Server) -> Cached {
        let fetched = Instant::now();
        let r = s.get("/jwks.json", None).await;
        assert_eq!(r.status, 200);
        let kids = r.json["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect();
        Cached { fetched, kids }
    }

    fn fresh(&self) -> bool {
        self.fetched.elapsed() < CACHE_LIFE
    }
}

#[tokio::test]
async fn key_eligibility_a_server_reloading_less_often_than_the_cache_life_signs_only_cached_kids()
{
    let s = Server::start_with(SLOW_RELOADS, &[]);
    let (id, secret) = s.add_client("svc", "client_credentials", "", &[]);
    let secret = secret.unwrap();
    let mut cache = Cached::fetch(&s).await;
    let mut checked = 0;
    for round in 0..3 {
        let out = s.cli_ok(&["keys", "rotate", "--alg", "EdDSA"], None);
        assert!(out.starts_with("published "), "{out}");
        let new = out.split_whitespace().nth(1).unwrap().to_owned();
        let start = Instant::now();
        loop {
            if !cache.fresh() {
                cache = Cached::fetch(&s).await;
            }
            let r = s
                .token(
                    &[("grant_type", "client_credentials")],
                    Some((&id, &secret)),
                )
                .await;
            assert_eq!(r.status, 200, "{:?}", r.json);
            let kid = kid_of(&r.str("access_token"));
            // A copy still fresh when the token arrived is the one the relying party
            // verifies it with (an older one it would have refetched).
            if cache.fresh() {
                assert!(
                    cache.kids.contains(&kid),
                    "round {round}: unknown kid {kid}; the JWKS fetched {:?} earlier has {:?}",
                    cache.fetched.elapsed(),
                    cache.kids
                );
                checked += 1;
            }
            if kid == new {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "round {round}: the new key never signed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(checked > 0, "no token arrived while a JWKS copy was fresh");
}
