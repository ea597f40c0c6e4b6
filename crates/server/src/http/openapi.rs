//! `GET /openapi.json`: the OpenAPI 3.1 document of every endpoint, generated at build
//! time by utoipa from the `#[utoipa::path]` attribute on each handler. Response bodies are
//! described by the very types the handlers serialize; the shapes below describe only
//! requests the handlers read as form fields, and the JWK Set (a `tessera-token` type).
//! Tests check that every route of the router is documented and that the documented
//! metadata schema names every member the server sends.

use std::sync::LazyLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi, ToSchema};

use crate::http::error::OAuthErrorBody;
use crate::http::{authorize, feed, introspect, logout, meta, revoke, token, userinfo};

/// Path of the OpenAPI document.
pub const OPENAPI_PATH: &str = "/openapi.json";

/// Name of the HTTP Basic client authentication scheme (RFC 6749 section 2.3.1).
pub(crate) const CLIENT_BASIC: &str = "client_basic";

/// Name of the bearer-token scheme (RFC 6750) of `/userinfo`.
pub(crate) const BEARER: &str = "bearer";

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tessera authorization server",
        description = "OAuth 2 authorization server. Errors follow RFC 6749 section 5.2."
    ),
    paths(
        token::token,
        revoke::revoke,
        introspect::introspect,
        feed::feed,
        meta::jwks,
        meta::discovery,
        meta::openid_configuration,
        meta::healthz,
        crate::http::pages::passkey_js,
        meta::readyz,
        crate::http::scrape::scrape,
        openapi_json,
        authorize::get,
        authorize::post,
        logout::get,
        logout::post,
        userinfo::userinfo,
    ),
    components(schemas(OAuthErrorBody<'static>)),
    modifiers(&SecuritySchemes)
)]
pub(crate) struct ApiDoc;

/// Adds the security schemes the operations refer to.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            CLIENT_BASIC,
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document, serialized once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
});

/// The OpenAPI document of this server.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub(crate) async fn openapi_json() -> Response {
    let mut r = (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
        .into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

// Description-only types: never built, only their schemas are used.

/// The errors of a client-authenticated form endpoint.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(crate) enum ClientErrors {
    /// Malformed request or refused grant.
    #[response(status = 400)]
    BadRequest(OAuthErrorBody<'static>),
    /// Client authentication failed (`invalid_client`).
    #[response(status = 401, headers(("WWW-Authenticate" = String, description = "`Basic realm=\"tessera\"`, whichever authentication method was tried")))]
    Unauthorized(OAuthErrorBody<'static>),
    /// Too many failed attempts (`slow_down`-style throttling).
    #[response(status = 429, headers(("Retry-After" = u64, description = "Seconds to wait")))]
    TooManyRequests(OAuthErrorBody<'static>),
    /// `temporarily_unavailable`: the store is unreachable, a key is not active yet, or
    /// too many password checks are waiting (`password_hash_queue`).
    #[response(status = 503, headers(("Retry-After" = u64, description = "Seconds to wait")))]
    Unavailable(OAuthErrorBody<'static>),
}

/// `POST /token` form parameters (RFC 6749 sections 4.1.3, 4.3.2, 4.4.2 and 6).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct TokenRequest {
    grant_type: GrantTypeName,
    /// Authorization code (`authorization_code`).
    code: Option<String>,
    /// Redirect URI of the authorization request (`authorization_code`).
    redirect_uri: Option<String>,
    /// PKCE verifier (`authorization_code`).
    code_verifier: Option<String>,
    /// Refresh token (`refresh_token`).
    refresh_token: Option<String>,
    /// Resource owner's name (`password`).
    username: Option<String>,
    /// Resource owner's password (`password`).
    password: Option<String>,
    /// Space-separated scopes.
    scope: Option<String>,
    /// Client id (`client_secret_post` or a public client).
    client_id: Option<String>,
    /// Client secret (`client_secret_post`).
    client_secret: Option<String>,
}

/// The grant types this server supports.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub(crate) enum GrantTypeName {
    AuthorizationCode,
    RefreshToken,
    Password,
    ClientCredentials,
}

/// `POST /revoke` and `POST /introspect` form parameters (RFC 7009, RFC 7662).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct TokenOperationRequest {
    /// The token.
    token: String,
    /// `access_token` or `refresh_token` (a hint only).
    token_type_hint: Option<String>,
    /// Client id (`client_secret_post` or a public client).
    client_id: Option<String>,
    /// Client secret (`client_secret_post`).
    client_secret: Option<String>,
}

/// RFC 7517 JWK Set.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct JwkSet {
    keys: Vec<serde_json::Value>,
}

/// `GET /authorize` query parameters (RFC 6749 4.1.1, RFC 7636, OpenID Connect Core 3.1.2.1).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct AuthorizeParams {
    /// `code`.
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    /// PKCE challenge (required).
    code_challenge: Option<String>,
    /// `S256`.
    code_challenge_method: Option<String>,
    nonce: Option<String>,
    /// `none`, `login` (a fresh password even with a live session), or absent.
    prompt: Option<String>,
    /// Space-separated `acr` values, treated as essential (the lowest known one is the
    /// minimum); none known: `unmet_authentication_requirements`.
    acr_values: Option<String>,
    /// Seconds: a sign-in older than this asks for the password again (`0` = `prompt=login`).
    max_age: Option<String>,
    /// OpenID Connect claims request (JSON); an essential `acr` counts like `acr_values`.
    claims: Option<String>,
    /// RFC 9449 section 10: the JWK thumbprint of the DPoP key the code is bound to.
    dpop_jkt: Option<String>,
}

/// `POST /authorize` form: the login (`action=login`), second-factor (`mfa`, `enrol`,
/// `continue`) or consent (`approve`, `deny`) form, with the authorization request's
/// parameters carried along.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct AuthorizeForm {
    /// CSRF token from the page (must match its cookie).
    csrf: String,
    /// `login`, `mfa`, `enrol`, `continue`, `approve` or `deny`.
    action: String,
    username: Option<String>,
    password: Option<String>,
    /// `login` with `mfa = "optional"`: `1` to set up a second factor after the password.
    enrol: Option<String>,
    /// `mfa`: a TOTP code or a recovery code; `enrol`: the first TOTP code.
    code: Option<String>,
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    nonce: Option<String>,
    dpop_jkt: Option<String>,
    /// The minimum `acr` the request asked for (sealed by `authz_mac`).
    acr: Option<String>,
    /// The oldest sign-in the request accepts, in Unix seconds (sealed by `authz_mac`).
    auth_after: Option<String>,
    /// A tag of the session a `prompt=login` request found, which never counts (sealed).
    stale: Option<String>,
    /// HMAC over every hidden field above: a changed form is refused with a 400 page.
    authz_mac: String,
}

/// `GET /logout` query parameters (OpenID Connect RP-Initiated Logout 1.0).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct LogoutParams {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

/// `POST /logout` form: the confirmation page's fields.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct LogoutForm {
    /// CSRF token from the page (must match its cookie).
    csrf: String,
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    /// The paths of the real router, read from its `Debug` output (axum has no route
    /// listing); fails loudly if that output stops naming them.
    fn router_paths(router: &axum::Router) -> Vec<String> {
        let debug = format!("{router:?}");
        // The fallback router comes after the path router and names internal paths.
        let routes = debug.split("fallback_router").next().unwrap_or_default();
        let mut paths = Vec::new();
        for part in routes.split("RouteId(").skip(1) {
            if let Some((_, rest)) = part.split_once("): \"")
                && let Some((path, _)) = rest.split_once('"')
            {
                paths.push(path.to_owned());
            }
        }
        assert!(
            paths.iter().any(|p| p == crate::http::TOKEN_PATH),
            "cannot read the routes from the router's Debug output: {debug}"
        );
        paths
    }

    /// Every (method, path) the router answers, found by asking it: a method the path
    /// does not serve is 405.
    async fn routed(router: &axum::Router) -> BTreeSet<(String, String)> {
        let mut routed = BTreeSet::new();
        for path in router_paths(router) {
            for method in [
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::PATCH,
            ] {
                let req = Request::builder()
                    .method(method.clone())
                    .uri(&path)
                    .body(Body::empty())
                    .unwrap();
                let status = router.clone().oneshot(req).await.unwrap().status();
                if status != StatusCode::METHOD_NOT_ALLOWED {
                    assert_ne!(status, StatusCode::NOT_FOUND, "{method} {path}");
                    routed.insert((method.as_str().to_owned(), path.clone()));
                }
            }
        }
        routed
    }

    fn documented() -> BTreeSet<(String, String)> {
        let doc: serde_json::Value = serde_json::from_str(&DOCUMENT).unwrap();
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
        out
    }

    #[tokio::test]
    async fn every_route_is_documented_and_every_documented_route_exists() {
        let (state, _dir) = crate::http::tests::state().await;
        let router = crate::http::router(state);
        let routed = routed(&router).await;
        let documented = documented();
        let missing: Vec<_> = routed.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "routes without #[utoipa::path] (see docs/server.md): {missing:?}"
        );
        let stale: Vec<_> = documented.difference(&routed).collect();
        assert!(stale.is_empty(), "documented but not routed: {stale:?}");
    }

    #[tokio::test]
    async fn the_document_is_openapi_3_1_served_without_authentication() {
        let (state, _dir) = crate::http::tests::state().await;
        let req = Request::get(OPENAPI_PATH).body(Body::empty()).unwrap();
        let resp = crate::http::router(state).oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        assert!(
            resp.headers()[header::CACHE_CONTROL]
                .to_str()
                .unwrap()
                .starts_with("public")
        );
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let token = &doc["paths"]["/token"]["post"];
        assert!(token["requestBody"]["content"]["application/x-www-form-urlencoded"].is_object());
        for status in ["200", "400", "401", "503"] {
            assert!(token["responses"][status].is_object(), "{status}");
        }
        assert!(token["responses"]["503"]["headers"]["Retry-After"].is_object());
        assert!(doc["components"]["schemas"]["OAuthErrorBody"].is_object());
        assert_eq!(
            doc["components"]["securitySchemes"][CLIENT_BASIC]["scheme"],
            "basic"
        );
    }

    /// The schema of a 200 response of `GET path`, with its `$ref` resolved.
    fn response_schema<'a>(doc: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
        let schema =
            &doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
        let name = schema["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .unwrap_or_else(|| panic!("{path}: the 200 body is not a named schema: {schema}"));
        &doc["components"]["schemas"][name]
    }

    #[tokio::test]
    async fn the_metadata_schema_names_every_member_the_server_sends() {
        let (state, _dir) = crate::http::tests::state().await;
        let doc: serde_json::Value = serde_json::from_str(&DOCUMENT).unwrap();
        for path in [
            "/.well-known/oauth-authorization-server",
            "/.well-known/openid-configuration",
        ] {
            let req = Request::get(path).body(Body::empty()).unwrap();
            let resp = crate::http::router(state.clone())
                .oneshot(req)
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            let served: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&bytes).unwrap();
            let schema = response_schema(&doc, path);
            let documented: BTreeSet<&str> = schema["properties"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let sent: BTreeSet<&str> = served.keys().map(String::as_str).collect();
            assert_eq!(sent, documented, "{path}: served members vs. schema");
            let required: BTreeSet<&str> = schema["required"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|v| v.as_str())
                .collect();
            assert_eq!(required, documented, "{path}: every member is always sent");
            assert!(served.len() >= 23, "{path}: {served:?}");
            // Members in alphabetical order: the bytes a `json!` object (a sorted map) made.
            assert_eq!(
                bytes,
                serde_json::to_vec(&serde_json::Value::Object(served)).unwrap()
            );
        }
    }
}
