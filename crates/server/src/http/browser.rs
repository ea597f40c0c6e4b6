//! What the browser-facing pages share: cookies (the sign-in session and the CSRF
//! cookie), CSRF tokens, sessions looked up in the store, and the security headers of
//! every HTML page.
//!
//! Cookies are `HttpOnly; SameSite=Lax; Path=/`. With an `https` issuer they are also
//! `Secure` and named with the `__Host-` prefix (so no subdomain can set them); on a
//! loopback `http` issuer (development) neither is possible and both are left out.
//!
//! CSRF: signed double submit. The CSRF cookie holds 256 random bits; every form carries
//! HMAC-SHA256(server key, cookie value). A cross-site page can neither read the cookie
//! nor compute the MAC of one it planted, so a post without the matching pair is refused.

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use axum::http::header::{self, HeaderMap, HeaderValue};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tessera_token::{OpaqueToken, TokenHash, TokenKind, UnixTime};

use crate::http::AppState;
use crate::oauth::OAuthError;
use crate::store::{Amr, PendingPurpose, PendingSignIn, SessionRecord, UserRecord};

/// Name of the session cookie (without prefix).
const SESSION: &str = "tessera_session";
/// Name of the CSRF cookie (without prefix).
const CSRF: &str = "tessera_csrf";
/// Name of the cookie of a sign-in waiting for its second factor (without prefix).
const PENDING: &str = "tessera_mfa";
/// How long a sign-in waits for its second factor (or enrolment) after the password.
pub(crate) const PENDING_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// True when cookies can be `Secure` (an `https` issuer).
fn secure(state: &AppState) -> bool {
    state.issuer.starts_with("https://")
}

/// A cookie's full name: `__Host-` prefixed when `Secure` is possible.
fn cookie_name(state: &AppState, base: &str) -> String {
    if secure(state) {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

/// The value of cookie `name` in the request, if sent once.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut found = None;
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=')
                && k == name
            {
                if found.is_some() {
                    return None;
                }
                found = Some(v.to_owned());
            }
        }
    }
    found
}

/// A `Set-Cookie` value with the attributes above; `max_age` 0 deletes it.
fn set_cookie(state: &AppState, base: &str, value: &str, max_age: u64) -> Option<HeaderValue> {
    let secure = if secure(state) { "; Secure" } else { "" };
    let name = cookie_name(state, base);
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .ok()
}

fn random_value() -> Result<String, OAuthError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| OAuthError::Server("system random generator failed".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The CSRF token for the request's CSRF cookie, creating the cookie (added to `out`)
/// when the request has none.
pub(crate) fn csrf_token(
    state: &AppState,
    headers: &HeaderMap,
    out: &mut HeaderMap,
) -> Result<String, OAuthError> {
    let value = match cookie(headers, &cookie_name(state, CSRF)).filter(|v| v.len() == 43) {
        Some(v) => v,
        None => {
            let v = random_value()?;
            if let Some(c) = set_cookie(state, CSRF, &v, state.config.browser.session_ttl.as_secs())
            {
                out.append(header::SET_COOKIE, c);
            }
            v
        }
    };
    Ok(URL_SAFE_NO_PAD.encode(hmac::sign(&state.csrf_key, value.as_bytes())))
}

/// True when the form's `csrf` field is the MAC of the request's CSRF cookie.
pub(crate) fn csrf_ok(state: &AppState, headers: &HeaderMap, field: Option<&str>) -> bool {
    let (Some(value), Some(field)) = (cookie(headers, &cookie_name(state, CSRF)), field) else {
        return false;
    };
    let Ok(tag) = URL_SAFE_NO_PAD.decode(field) else {
        return false;
    };
    hmac::verify(&state.csrf_key, value.as_bytes(), &tag).is_ok()
}

/// The hash of the request's session cookie, if it carries one of the right shape.
fn session_hash(state: &AppState, headers: &HeaderMap) -> Option<TokenHash> {
    let value = cookie(headers, &cookie_name(state, SESSION))?;
    OpaqueToken::parse_kind(&value, TokenKind::AccessToken)
        .ok()
        .map(|t| t.hash())
}

/// The request's live session, if any.
pub(crate) async fn session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<SessionRecord>, OAuthError> {
    let Some(hash) = session_hash(state, headers) else {
        return Ok(None);
    };
    Ok(state.store.live_session(&hash, state.clock.now()).await?)
}

/// Starts a session for `user` (stamped with the generation read with their credentials
/// and how they signed in):
/// stores its hash and adds the cookie to `out`.
pub(crate) async fn start_session(
    state: &AppState,
    user: &UserRecord,
    amr: Amr,
    out: &mut HeaderMap,
) -> Result<SessionRecord, OAuthError> {
    let now = state.clock.now();
    let ttl = state.config.browser.session_ttl;
    open_session(state, user, amr, (now, now.saturating_add(ttl)), out).await
}

/// Replaces `session` with a new one under a new cookie, for `user` as they are now (a
/// new generation), after something that is not a sign-in (adding a passkey): the same
/// `amr`, sign-in time (`auth_time`) and end, so it can be made fresher by nothing but
/// signing in again.
pub(crate) async fn continue_session(
    state: &AppState,
    user: &UserRecord,
    session: &SessionRecord,
    out: &mut HeaderMap,
) -> Result<SessionRecord, OAuthError> {
    let span = (session.created_at, session.expires_at);
    open_session(state, user, session.amr.clone(), span, out).await
}

/// Stores a session signed in and ending at `span` and sets its cookie for what is left.
async fn open_session(
    state: &AppState,
    user: &UserRecord,
    amr: Amr,
    (created_at, expires_at): (UnixTime, UnixTime),
    out: &mut HeaderMap,
) -> Result<SessionRecord, OAuthError> {
    // The opaque-token format gives 256 random bits and a checksum; the `tsr_at_` kind
    // is only a container here, the value is never accepted as an access token (those
    // are JWTs, and opaque ones are looked up nowhere).
    let token = OpaqueToken::generate(TokenKind::AccessToken)
        .map_err(|e| OAuthError::Server(e.to_string()))?;
    let record = SessionRecord {
        hash: token.hash(),
        user_id: user.id.clone(),
        created_at,
        expires_at,
        revoked_at: None,
        generation: user.generation,
        amr,
    };
    state.store.insert_session(&record).await?;
    let left = expires_at
        .secs()
        .saturating_sub(state.clock.now().secs())
        .max(0);
    if let Some(c) = set_cookie(state, SESSION, token.expose(), left.unsigned_abs()) {
        out.append(header::SET_COOKIE, c);
    }
    Ok(record)
}

/// Records that `user`'s password was accepted and a second factor (or enrolment) is due:
/// a short-lived pending sign-in in the store, by the hash of a new cookie added to `out`
/// (so it is bound to this browser). It holds no password and no secret.
pub(crate) async fn start_pending(
    state: &AppState,
    user: &UserRecord,
    purpose: PendingPurpose,
    out: &mut HeaderMap,
) -> Result<TokenHash, OAuthError> {
    let token = OpaqueToken::generate(TokenKind::AccessToken)
        .map_err(|e| OAuthError::Server(e.to_string()))?;
    let now = state.clock.now();
    let record = PendingSignIn {
        hash: token.hash(),
        user_id: user.id.clone(),
        generation: user.generation,
        auth_time: now,
        expires_at: now.saturating_add(PENDING_TTL),
        purpose,
    };
    state.store.insert_pending(&record).await?;
    if let Some(c) = set_cookie(state, PENDING, token.expose(), PENDING_TTL.as_secs()) {
        out.append(header::SET_COOKIE, c);
    }
    Ok(record.hash)
}

/// The request's live pending sign-in, if any.
pub(crate) async fn pending(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<PendingSignIn>, OAuthError> {
    let Some(value) = cookie(headers, &cookie_name(state, PENDING)) else {
        return Ok(None);
    };
    let Ok(token) = OpaqueToken::parse_kind(&value, TokenKind::AccessToken) else {
        return Ok(None);
    };
    Ok(state
        .store
        .pending(&token.hash(), state.clock.now())
        .await?)
}

/// Takes the pending sign-in (single use: true for the one caller that took it) and
/// deletes its cookie.
pub(crate) async fn take_pending(
    state: &AppState,
    pending: &PendingSignIn,
    out: &mut HeaderMap,
) -> Result<bool, OAuthError> {
    let taken = state.store.take_pending(&pending.hash).await?;
    if let Some(c) = set_cookie(state, PENDING, "", 0) {
        out.append(header::SET_COOKIE, c);
    }
    Ok(taken)
}

/// Ends the request's session (if any) and deletes the cookie.
pub(crate) async fn end_session(
    state: &AppState,
    headers: &HeaderMap,
    out: &mut HeaderMap,
) -> Result<(), OAuthError> {
    if let Some(hash) = session_hash(state, headers) {
        state.store.end_session(&hash, state.clock.now()).await?;
    }
    if let Some(c) = set_cookie(state, SESSION, "", 0) {
        out.append(header::SET_COOKIE, c);
    }
    Ok(())
}

/// The pages' policy: nothing but inline styles, never framed.
const CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'";
/// The policy of a page with a passkey form: the same, and this origin's scripts (the
/// server serves one: `/passkey.js`; no inline script).
const CSP_PASSKEY: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'";

/// Headers of every HTML page: never cached, never framed, no referrer, and no script
/// at all, but for a page with a passkey form (`scripts`): this origin's files.
pub(crate) fn page_headers(out: &mut HeaderMap, scripts: bool) {
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    out.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(if scripts { CSP_PASSKEY } else { CSP }),
    );
    out.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    out.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_once_and_exactly() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; tessera_csrf=xyz; b=2"),
        );
        assert_eq!(cookie(&h, "tessera_csrf").as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "tessera"), None);
        h.append(header::COOKIE, HeaderValue::from_static("tessera_csrf=abc"));
        assert_eq!(
            cookie(&h, "tessera_csrf"),
            None,
            "two values: neither is trusted"
        );
    }
}
