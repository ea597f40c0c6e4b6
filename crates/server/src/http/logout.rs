//! OpenID Connect RP-initiated logout (`end_session_endpoint`, RP-Initiated Logout 1.0):
//! `GET /logout` asks the user to confirm (a cross-site link alone never signs anyone
//! out); `POST /logout` (CSRF-checked) ends the browser session and returns to the
//! client's registered `post_logout_redirect_uri`, or shows a signed-out page.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tessera_token::decode_unverified;

use crate::http::AppState;
use crate::http::browser::{csrf_ok, csrf_token, end_session, session};
use crate::http::form::has_nul;
use crate::http::openapi::{LogoutForm, LogoutParams};
use crate::http::pages::{Hidden, Logout, Message, error_page, render};

/// The logout parameters that matter: where to go afterwards, for which client.
struct LogoutRequest {
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

impl LogoutRequest {
    fn parse(bytes: &[u8]) -> (Self, Option<String>) {
        let mut r = LogoutRequest {
            client_id: None,
            post_logout_redirect_uri: None,
            state: None,
        };
        let mut csrf = None;
        let mut hint_aud = None;
        for (k, v) in form_urlencoded::parse(bytes) {
            // A value with a NUL byte counts as absent: it never reaches the store.
            let v = Some(v.into_owned()).filter(|v| !v.is_empty() && !has_nul(v));
            match k.as_ref() {
                "client_id" => r.client_id = v,
                "post_logout_redirect_uri" => r.post_logout_redirect_uri = v,
                "state" => r.state = v,
                "csrf" => csrf = v,
                // The hint only names the client; the redirect must still be registered
                // for that client, so an unverified (even expired) hint is enough.
                "id_token_hint" => {
                    hint_aud = v
                        .and_then(|t| decode_unverified(&t).ok())
                        .and_then(|u| u.claims.aud.iter().next().map(str::to_owned));
                }
                _ => {}
            }
        }
        if r.client_id.is_none() {
            r.client_id = hint_aud;
        }
        (r, csrf)
    }

    fn hidden(&self) -> Hidden {
        [
            ("client_id", &self.client_id),
            ("post_logout_redirect_uri", &self.post_logout_redirect_uri),
            ("state", &self.state),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.clone().map(|v| (n, v)))
        .collect()
    }

    /// The redirect target, when it is registered for the named client.
    async fn target(&self, state: &AppState) -> Result<Option<String>, &'static str> {
        let Some(uri) = &self.post_logout_redirect_uri else {
            return Ok(None);
        };
        let Some(client_id) = &self.client_id else {
            return Err("post_logout_redirect_uri needs client_id or id_token_hint.");
        };
        let client = state
            .store
            .client(client_id)
            .await
            .map_err(|_| "The sign-in service is temporarily unavailable; try again.")?
            .ok_or("The application is not registered here (unknown client_id).")?;
        if !client.post_logout_redirect_uris.iter().any(|u| u == uri) {
            return Err("The post-logout redirect URI is not registered for this application.");
        }
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(s) = &self.state {
            query.append_pair("state", s);
        }
        let query = query.finish();
        Ok(Some(if query.is_empty() {
            uri.clone()
        } else {
            let sep = if uri.contains('?') { '&' } else { '?' };
            format!("{uri}{sep}{query}")
        }))
    }
}

/// `GET /logout`: the confirmation page.
#[utoipa::path(
    get,
    path = "/logout",
    tag = "browser",
    params(LogoutParams),
    responses(
        (status = 200, description = "Confirmation page", content_type = "text/html", body = String),
        (status = 400, description = "Unknown client or unregistered post-logout URI", content_type = "text/html", body = String),
    )
)]
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let (req, _) = LogoutRequest::parse(query.unwrap_or_default().as_bytes());
    if let Err(m) = req.target(&state).await {
        return error_page(StatusCode::BAD_REQUEST, m);
    }
    let signed_in = matches!(session(&state, &headers).await, Ok(Some(_)));
    let mut out = HeaderMap::new();
    let csrf = match csrf_token(&state, &headers, &mut out) {
        Ok(c) => c,
        Err(_) => return error_page(StatusCode::SERVICE_UNAVAILABLE, "Try again."),
    };
    let hidden = req.hidden();
    render(
        StatusCode::OK,
        &Logout {
            signed_in,
            csrf: &csrf,
            hidden: &hidden,
        },
        out,
    )
}

/// `POST /logout`: ends the session, then redirects or shows the signed-out page.
#[utoipa::path(
    post,
    path = "/logout",
    tag = "browser",
    request_body(content = LogoutForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Signed-out page", content_type = "text/html", body = String),
        (status = 303, description = "To the registered post-logout redirect URI", headers(("Location" = String))),
        (status = 400, description = "Unknown client or unregistered post-logout URI", content_type = "text/html", body = String),
        (status = 403, description = "Missing or wrong CSRF token", content_type = "text/html", body = String),
    )
)]
pub(crate) async fn post(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (req, csrf) = LogoutRequest::parse(&body);
    if !csrf_ok(&state, &headers, csrf.as_deref()) {
        return error_page(
            StatusCode::FORBIDDEN,
            "This form expired or was sent from another site. Go back, reload the page and try again.",
        );
    }
    let target = match req.target(&state).await {
        Ok(t) => t,
        Err(m) => return error_page(StatusCode::BAD_REQUEST, m),
    };
    let mut out = HeaderMap::new();
    if let Err(e) = end_session(&state, &headers, &mut out).await {
        tracing::error!(error = %e, "logout failed");
        return error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The sign-in service is temporarily unavailable; try again.",
        );
    }
    match target.and_then(|t| HeaderValue::from_str(&t).ok()) {
        Some(location) => {
            let mut response = StatusCode::SEE_OTHER.into_response();
            let headers = response.headers_mut();
            headers.extend(out);
            headers.insert(header::LOCATION, location);
            response
        }
        None => render(
            StatusCode::OK,
            &Message {
                title: "Signed out",
                message: "You are signed out. You can close this window.",
            },
            out,
        ),
    }
}
