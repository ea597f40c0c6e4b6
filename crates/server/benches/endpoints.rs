//! What the authorization server's endpoints cost without sockets: the real router
//! (`tessera_server::http::router`, observation middleware and all) over a SQLite file,
//! called in-process with `tower::ServiceExt::oneshot`, with a log subscriber at INFO
//! writing to a sink, as `tessera serve` logs by default.
//!
//! - `healthz`: the unauthenticated route, the in-process floor.
//! - `client_credentials`: `POST /token`, client credentials (HTTP Basic), an EdDSA JWT.
//! - `introspect`: `POST /introspect` of a refresh token (one store read).
//! - `sign`: the raw aws-lc-rs Ed25519 signature over a token-sized input.
//!
//! Before criterion runs, `interleaved` times the three routes and the raw signature in
//! turn, round after round, and prints medians and what each endpoint costs above the
//! floor: the part of a request no HTTP stack, kernel or load generator adds.
//! `docs/benchmarks.md` divides the HTTP floor by (HTTP floor + that cost) to get the best
//! ratio to the floor an endpoint can reach.

// A bench whose fixture cannot be built should fail loudly, not be skipped.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::signature::Ed25519KeyPair;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use criterion::{Criterion, criterion_group};
use tessera_server::admin::{Admin, NewClient};
use tessera_server::keys::{self, Keys};
use tessera_server::password::Passwords;
use tessera_server::secrets::MasterKey;
use tessera_server::store::{self, GrantType};
use tessera_server::{AppState, Clock, FileConfig, Overrides, ServerConfig, SystemClock};
use tessera_token::SecretString;
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery staple";

struct Fixture {
    rt: tokio::runtime::Runtime,
    app: Router,
    basic: String,
    refresh_token: String,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = FileConfig {
        data_dir: Some(dir.path().to_owned()),
        ..FileConfig::default()
    };
    let config = ServerConfig::resolve(file, Overrides::default()).unwrap();
    let (app, basic) = rt.block_on(async {
        let admin = Admin::init(&config).await.unwrap();
        let (client, secret) = admin
            .add_client(NewClient {
                name: "bench".into(),
                grant_types: vec![
                    GrantType::ClientCredentials,
                    GrantType::Password,
                    GrantType::RefreshToken,
                ],
                scope: "notes:read notes:write".into(),
                audience: vec!["notes-api".into()],
                ..NewClient::default()
            })
            .await
            .unwrap();
        admin
            .add_user("alice", SecretString::new(PASSWORD))
            .await
            .unwrap();
        let basic = STANDARD.encode(format!("{}:{}", client.id, secret.unwrap().expose()));

        let store = store::open(None, dir.path()).await.unwrap();
        let master = MasterKey::load(dir.path()).unwrap();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let ring = keys::load_or_create(
            &*store,
            &master.sealer().unwrap(),
            config.signing.signing_alg,
            keys::Timings::of(&config),
            clock.now(),
        )
        .await
        .unwrap();
        let state = AppState::new(
            "http://127.0.0.1:8080".into(),
            config,
            store,
            Arc::new(Keys::new(ring)),
            clock,
            Passwords::new(1, Default::default()).await.unwrap(),
            master.refresh_key(),
        );
        (tessera_server::http::router(Arc::new(state)), basic)
    });
    let mut f = Fixture {
        rt,
        app,
        basic,
        refresh_token: String::new(),
        _dir: dir,
    };
    let login = f.post(
        "/token",
        "grant_type=password&username=alice&password=correct%20horse%20battery%20staple",
    );
    let login: serde_json::Value = serde_json::from_slice(&login).unwrap();
    f.refresh_token = login["refresh_token"].as_str().unwrap().to_owned();
    f
}

impl Fixture {
    fn call(&self, req: Request<Body>) -> axum::body::Bytes {
        self.rt.block_on(async {
            let resp = self.app.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            axum::body::to_bytes(resp.into_body(), 1 << 16)
                .await
                .unwrap()
        })
    }

    fn get(&self, path: &str) -> axum::body::Bytes {
        self.call(Request::get(path).body(Body::empty()).unwrap())
    }

    fn post(&self, path: &str, form: &str) -> axum::body::Bytes {
        self.call(
            Request::post(path)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::AUTHORIZATION, format!("Basic {}", self.basic))
                .body(Body::from(form.to_owned()))
                .unwrap(),
        )
    }

    fn healthz(&self) {
        black_box(self.get("/healthz"));
    }

    fn client_credentials(&self) {
        black_box(self.post("/token", "grant_type=client_credentials&scope=notes:read"));
    }

    fn introspect(&self) {
        let form = format!("token={}&token_type_hint=refresh_token", self.refresh_token);
        black_box(self.post("/introspect", &form));
    }
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e6
}

fn timed(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

/// The routes and the raw signature timed in turn: the same load hits all of them.
fn interleaved(f: &Fixture) {
    const ROUNDS: usize = 4000;
    let key = Ed25519KeyPair::generate().unwrap();
    let input = vec![b'e'; 600];
    let (mut floor, mut cc, mut intro, mut sign) = (vec![], vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        floor.push(timed(|| f.healthz()));
        cc.push(timed(|| f.client_credentials()));
        intro.push(timed(|| f.introspect()));
        sign.push(timed(|| {
            black_box(key.sign(black_box(&input)));
        }));
    }
    let (floor, cc, intro, sign) = (median(floor), median(cc), median(intro), median(sign));
    println!(
        "interleaved endpoints: median healthz {floor:.2} us, client_credentials {cc:.2} us \
         ({:.2} us above the floor; raw Ed25519 sign {sign:.2} us), introspect {intro:.2} us \
         ({:.2} us above the floor)",
        cc - floor,
        intro - floor
    );
}

fn bench_endpoints(c: &mut Criterion) {
    let f = fixture();
    interleaved(&f);
    let mut g = c.benchmark_group("endpoints");
    g.bench_function("healthz", |b| b.iter(|| f.healthz()));
    g.bench_function("client_credentials", |b| b.iter(|| f.client_credentials()));
    g.bench_function("introspect", |b| b.iter(|| f.introspect()));
    g.finish();
}

criterion_group!(benches, bench_endpoints);

fn main() {
    // As `tessera serve` logs by default: one line per request at INFO, here into a sink.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::sink)
        .with_ansi(false)
        .init();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
