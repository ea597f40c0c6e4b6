//! A small notes API protected by tessera-guard: the FastAPI-tutorial equivalent.
//!
//! `GET /me` needs any valid token; `GET /notes` needs scope `notes:read`; `POST /notes`
//! needs `notes:write`; `DELETE /notes/{id}` (the caller's note at that position) needs a
//! sign-in with a second factor (`acr` `urn:tessera:acr:mfa` or higher) within the last
//! `--step-up-max-age` seconds (default 300), else 401 with the RFC 9470 step-up
//! challenge the SPA follows; `GET /notes/export` needs `notes:read` and a DPoP-bound token
//! with its proof (RFC 9449); `GET /healthz` is public; `GET /ping` answers like `/healthz`
//! but needs any valid token (the benchmark's protected twin of the public route). Every
//! route takes DPoP-bound tokens (with their proofs) as well as bearer tokens, and the API
//! describes itself at `/.well-known/oauth-protected-resource` (RFC 9728). Keys come from the issuer's discovery
//! metadata and JWKS; with feed credentials, revocations reach it as they are committed (a push subscription; polls while it is down). With
//! introspection credentials it checks every token at the issuer's RFC 7662 endpoint
//! instead (a confidential client of its own; only access tokens are accepted).
//! `--spa-client-id` serves the example SPA at `/spa/` (tokens in the page's memory);
//! `--spa-cookie-client-id` serves cookie mode at `/spa-cookie/` (token in an HttpOnly
//! cookie, CSRF-checked; see `resource_server/cookie_mode.rs`).
//!
//! ```sh
//! cargo run -p tessera-guard --example resource_server -- \
//!     --issuer http://127.0.0.1:8080 --audience notes-api --listen 127.0.0.1:3000
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_guard::{
    Auth, FetchError, Guard, Introspection, RemoteIssuer, RequireAcr, RequireDpop, RequireScope,
    ResourceMetadata, RevocationFeed, Scoped, SystemClock, Verifier, discover,
};
use tessera_token::{SecretString, Validation};

#[path = "resource_server/bench_control.rs"]
mod bench_control;
#[path = "resource_server/cookie_mode.rs"]
mod cookie_mode;

#[derive(Parser, Debug)]
#[command(about = "Notes API protected by tessera-guard")]
struct Args {
    /// Issuer URL (https, or http on loopback); discovery and JWKS are fetched from it.
    #[arg(long, env = "TESSERA_ISSUER")]
    issuer: String,
    /// The audience this API accepts (the `aud` its tokens must name).
    #[arg(long, env = "TESSERA_AUDIENCE")]
    audience: String,
    /// Address to listen on.
    #[arg(long, env = "LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Client id for the revocation feed (optional; with the secret, enables the feed).
    #[arg(long, env = "TESSERA_FEED_CLIENT_ID")]
    feed_client_id: Option<String>,
    /// Client secret for the revocation feed (prefer the environment variable).
    /// A secret may start with `-`: it is still taken as the value.
    #[arg(
        long,
        env = "TESSERA_FEED_CLIENT_SECRET",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    feed_client_secret: Option<String>,
    /// Verified-token cache capacity in tokens; 0 verifies every request's signature
    /// (what the benchmark's "verify every request" rows use).
    #[arg(long, env = "TESSERA_CACHE_CAPACITY", default_value_t = 10_000)]
    cache_capacity: usize,
    /// Also serve the single-page app of `examples/spa/` at `/spa/`, signing in as this
    /// public client (registered with redirect URI `http://LISTEN/spa/`).
    #[arg(long, env = "TESSERA_SPA_CLIENT_ID")]
    spa_client_id: Option<String>,
    /// Also serve the cookie-mode page at `/spa-cookie/`, signing in as this public client
    /// (registered with redirect URI `http://LISTEN/spa-cookie/callback`): the token
    /// stays in an HttpOnly cookie and the API accepts it with a double-submit CSRF header.
    #[arg(long, env = "TESSERA_SPA_COOKIE_CLIENT_ID")]
    spa_cookie_client_id: Option<String>,
    /// Scope the cookie-mode page asks for.
    #[arg(long, default_value = "openid notes:read notes:write")]
    spa_cookie_scope: String,
    /// Scope the single-page app asks for.
    #[arg(long, default_value = "openid profile notes:read notes:write")]
    spa_scope: String,
    /// Client id for RFC 7662 introspection (optional; with the secret, tokens are checked
    /// at the issuer's introspection endpoint instead of by signature).
    #[arg(long, env = "TESSERA_INTROSPECTION_CLIENT_ID")]
    introspection_client_id: Option<String>,
    /// Client secret for introspection (prefer the environment variable).
    /// A secret may start with `-`: it is still taken as the value.
    #[arg(
        long,
        env = "TESSERA_INTROSPECTION_CLIENT_SECRET",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    introspection_client_secret: Option<String>,
    /// The URL clients reach this API at (DPoP proofs name it in `htu`; it is also the
    /// RFC 9728 resource identifier); default `http://LISTEN`.
    #[arg(long, env = "TESSERA_PUBLIC_URL")]
    public_url: Option<String>,
    /// Require guard-issued DPoP nonces, derived from this secret (at least 32 bytes;
    /// every instance given the same secret accepts the others' nonces).
    #[arg(
        long,
        env = "TESSERA_DPOP_NONCE_SECRET",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    dpop_nonce_secret: Option<String>,
    /// DPoP proofs remembered against replay (a proof is remembered for its `iat` window,
    /// about a minute; one proof key may hold a quarter). The guard's default suits
    /// deployments; a load test that spends more than 25,000 proofs of one key a minute
    /// raises it.
    #[arg(long, env = "TESSERA_DPOP_REPLAY_CAPACITY")]
    dpop_replay_capacity: Option<usize>,
    /// How recent (seconds) the second-factor sign-in behind `DELETE /notes/{id}` must be.
    #[arg(long, default_value_t = 300)]
    step_up_max_age: u64,
    /// Benchmark controls for bench/run.sh (never in a deployment: unauthenticated
    /// routes that each verify a signature).
    #[arg(long, hide = true)]
    bench_control: bool,
}

/// The single-page app (static HTML and a few lines of JavaScript).
const SPA_PAGE: &str = include_str!("spa/index.html");

tessera_guard::scope_requirement!(NotesRead = all["notes:read"]);
tessera_guard::scope_requirement!(NotesWrite = all["notes:write"]);

type Notes = Arc<Mutex<Vec<(String, String)>>>;

#[derive(Deserialize)]
struct NewNote {
    text: String,
}

async fn me(auth: Auth) -> Json<Value> {
    Json(json!({
        "sub": auth.sub,
        "scope": auth.scope.as_ref().map(ToString::to_string),
        "client_id": auth.client_id,
    }))
}

async fn list_notes(State(notes): State<Notes>, caller: Scoped<NotesRead>) -> Json<Value> {
    let sub = caller.auth.sub.clone().unwrap_or_default();
    let notes = notes.lock().unwrap_or_else(|e| e.into_inner());
    let mine: Vec<&str> = notes
        .iter()
        .filter(|(owner, _)| *owner == sub)
        .map(|(_, text)| text.as_str())
        .collect();
    Json(json!({ "notes": mine }))
}

async fn create_note(
    State(notes): State<Notes>,
    caller: Scoped<NotesWrite>,
    Json(note): Json<NewNote>,
) -> (StatusCode, Json<Value>) {
    let sub = caller.auth.sub.clone().unwrap_or_default();
    notes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((sub, note.text.clone()));
    (StatusCode::CREATED, Json(json!({ "text": note.text })))
}

/// Deletes the caller's note at position `id` among theirs (204 whether it was there or
/// not: a repeated DELETE changes nothing). The route's layers let through only a token
/// with `notes:write` ([`RequireScope`]) from a recent second-factor sign-in
/// ([`RequireAcr`]).
async fn delete_note(
    State(notes): State<Notes>,
    caller: Auth,
    Path(id): Path<usize>,
) -> StatusCode {
    let sub = caller.sub.clone().unwrap_or_default();
    let mut notes = notes.lock().unwrap_or_else(|e| e.into_inner());
    let position = notes
        .iter()
        .enumerate()
        .filter(|(_, (owner, _))| *owner == sub)
        .nth(id)
        .map(|(i, _)| i);
    if let Some(i) = position {
        notes.remove(i);
    }
    StatusCode::NO_CONTENT
}

/// A client id and secret given together, or neither; one without the other fails the
/// start naming the missing one (it used to be ignored silently, and the API then checked
/// tokens another way than the operator meant).
fn credentials<'a>(
    id: &'a Option<String>,
    secret: &'a Option<String>,
    id_var: &str,
    secret_var: &str,
) -> Result<Option<(&'a String, &'a String)>, String> {
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(Some((id, secret))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(format!(
            "{id_var} is set but {secret_var} is not: set both, or neither"
        )),
        (None, Some(_)) => Err(format!(
            "{secret_var} is set but {id_var} is not: set both, or neither"
        )),
    }
}

/// Fails the start when the issuer's discovery metadata names another issuer: every
/// token would be refused (503) until someone read the log, and it will not fix itself.
/// Both values are logged, since the difference is often one character (`localhost`
/// against `127.0.0.1`, a trailing `/`). An unreachable issuer is only a warning: the
/// guard retries, and the API answers 503 until it can reach it.
async fn check_issuer(issuer: &str) -> Result<(), Box<dyn std::error::Error>> {
    match discover(issuer).await {
        Ok(_) => Ok(()),
        Err(FetchError::IssuerMismatch) => {
            let advertised = advertised_issuer(issuer)
                .await
                .unwrap_or_else(|| "(unreadable)".to_owned());
            tracing::error!(
                configured = %issuer,
                advertised = %advertised,
                "the issuer's discovery metadata names another issuer; tokens would never verify"
            );
            Err(format!(
                "--issuer is {issuer:?} but the discovery metadata at that address names issuer \
                 {advertised:?}; they must be equal character for character (RFC 8414 section \
                 3.3): pass --issuer {advertised:?} if that is the server, or fix the server's \
                 issuer setting"
            )
            .into())
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the issuer's discovery metadata yet; will retry");
            Ok(())
        }
    }
}

/// The `issuer` member of the discovery document served for `issuer` (RFC 8414, then
/// OpenID Connect's location), for the mismatch message.
async fn advertised_issuer(issuer: &str) -> Option<String> {
    let base = issuer.trim_end_matches('/');
    let url = reqwest::Url::parse(base).ok()?;
    let path = url.path().trim_end_matches('/').to_owned();
    let mut rfc8414 = url.clone();
    rfc8414.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    let oidc = format!("{base}/.well-known/openid-configuration");
    for candidate in [rfc8414.to_string(), oidc] {
        let Ok(resp) = reqwest::get(&candidate).await else {
            continue;
        };
        let Ok(body) = resp.bytes().await else {
            continue;
        };
        if let Some(found) = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("issuer")?.as_str().map(str::to_owned))
        {
            return Some(found);
        }
    }
    None
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let introspection = credentials(
        &args.introspection_client_id,
        &args.introspection_client_secret,
        "TESSERA_INTROSPECTION_CLIENT_ID (--introspection-client-id)",
        "TESSERA_INTROSPECTION_CLIENT_SECRET (--introspection-client-secret)",
    )?;
    let feed_client = credentials(
        &args.feed_client_id,
        &args.feed_client_secret,
        "TESSERA_FEED_CLIENT_ID (--feed-client-id)",
        "TESSERA_FEED_CLIENT_SECRET (--feed-client-secret)",
    )?;
    check_issuer(&args.issuer).await?;

    let verifier = match introspection {
        Some((id, secret)) => {
            let endpoint = discover(&args.issuer)
                .await?
                .introspection_endpoint
                .ok_or("the issuer publishes no introspection endpoint")?;
            tracing::info!(%endpoint, "checking tokens by introspection");
            Verifier::introspection(Introspection::new(
                &endpoint,
                id.clone(),
                SecretString::new(secret.clone()),
            )?)
        }
        None => Verifier::remote(RemoteIssuer::new(&args.issuer))?,
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let metadata = ResourceMetadata::new(public_url.clone())
        .authorization_server(args.issuer.clone())
        .scopes(["notes:read", "notes:write"])
        .resource_name("Notes API");
    let mut builder = Guard::builder(
        verifier,
        Validation::access_token(&args.issuer, &args.audience),
    )
    .realm("notes")
    .cache_capacity(args.cache_capacity)
    .public_base_url(public_url)
    .resource_metadata(metadata);
    if let Some(secret) = &args.dpop_nonce_secret {
        builder = builder.dpop_nonce(secret.as_bytes(), Duration::from_secs(60));
    }
    if let Some(capacity) = args.dpop_replay_capacity {
        builder = builder.dpop_replay_capacity(capacity);
    }
    if args.spa_cookie_client_id.is_some() {
        builder = builder.sources(cookie_mode::token_sources());
    }
    if let Some((id, secret)) = feed_client {
        let meta = discover(&args.issuer).await?;
        match meta.tessera_revocation_feed_endpoint {
            Some(endpoint) => {
                let feed = Arc::new(RevocationFeed::new(
                    &endpoint,
                    id.clone(),
                    SecretString::new(secret.clone()),
                )?);
                builder = builder.revocation(feed.list());
                feed.spawn(Arc::new(SystemClock));
                tracing::info!(%endpoint, "following the revocation feed (push, polling while the subscription is down)");
            }
            None => tracing::warn!("issuer publishes no revocation feed"),
        }
    }
    let guard = builder.build()?;
    if let Err(e) = guard.warm_up().await {
        // Not fatal: the guard retries on the first request and answers 503 meanwhile.
        tracing::warn!(error = %e, "could not fetch the issuer's keys yet");
    }

    let notes: Notes = Arc::default();
    let mut app = Router::new()
        .route("/me", get(me))
        .route("/notes", get(list_notes).post(create_note))
        .route("/notes/export", get(list_notes).route_layer(RequireDpop))
        .route(
            "/notes/{id}",
            // The scope first (outermost): a token that may not write is refused 403
            // before anyone is asked to step up for nothing.
            axum::routing::delete(delete_note)
                .route_layer(
                    RequireAcr::new("urn:tessera:acr:mfa")
                        .within(Duration::from_secs(args.step_up_max_age)),
                )
                .route_layer(RequireScope::all(["notes:write"])),
        )
        .route("/ping", get(|_: Auth| async { "ok" }))
        .layer(guard.layer())
        .route("/healthz", get(|| async { "ok" }))
        .merge(guard.metadata_router())
        .with_state(notes);
    if args.bench_control {
        app = app.merge(bench_control::routes()?);
    }
    if let Some(client_id) = &args.spa_client_id {
        let config = json!({
            "issuer": args.issuer,
            "client_id": client_id,
            "scope": args.spa_scope,
        });
        app = app
            .route("/spa/", get(|| async { Html(SPA_PAGE) }))
            .route("/spa/config.json", get(move || async move { Json(config) }));
    }

    if let Some(client_id) = &args.spa_cookie_client_id {
        let base = format!("http://{addr}");
        let mode = cookie_mode::CookieMode::discover(
            &args.issuer,
            client_id,
            &args.spa_cookie_scope,
            &base,
        )
        .await?;
        app = app.merge(cookie_mode::routes(mode));
    }
    tracing::info!(listen = %addr, issuer = %args.issuer, "notes API up");
    eprintln!("listening on http://{addr}");
    axum::serve(listener, app).await?;
    Ok(())
}
