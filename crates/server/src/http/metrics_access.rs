//! Who may read `/metrics`: anyone, or, with `metrics_token_file`, only a request with
//! `Authorization: Bearer <that token>` (RFC 6750). Only the token's SHA-256 is kept, and
//! the comparison is constant-time.

use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{self, SHA256};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::Error;
use crate::http::AppState;

/// Shortest token accepted from `metrics_token_file`.
const MIN_TOKEN_LEN: usize = 16;

/// The digest of the bearer token `/metrics` requires.
pub struct MetricsToken(digest::Digest);

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(..)")
    }
}

impl MetricsToken {
    /// Reads the token from `path` (surrounding whitespace ignored); refuses a missing,
    /// unreadable, group- or world-readable file and a short token or one that is not
    /// token68 (RFC 6750 section 2.1), naming the file but never its content.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let shown = path.display();
        private(path)?;
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!(
                "config: metrics_token_file = {shown:?} cannot be read: {e}"
            ))
        })?);
        let token = text.trim();
        if token.len() < MIN_TOKEN_LEN || !is_token68(token) {
            return Err(Error::Config(format!(
                "config: metrics_token_file = {shown:?} must hold one token of at least {MIN_TOKEN_LEN} characters: ASCII letters, digits and - . _ ~ + / (then = padding), as a Bearer token (RFC 6750)"
            )));
        }
        Ok(MetricsToken(digest::digest(&SHA256, token.as_bytes())))
    }

    /// Whether `headers` carry `Authorization: Bearer <the token>`.
    fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(presented) = bearer(headers) else {
            return false;
        };
        let seen = digest::digest(&SHA256, presented.as_bytes());
        verify_slices_are_equal(seen.as_ref(), self.0.as_ref()).is_ok()
    }
}

/// Whether `t` is token68 (RFC 7235): `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" /
/// "/" ) *"="`, the only form a client can send in `Authorization: Bearer`.
fn is_token68(t: &str) -> bool {
    let body = t.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// Refuses a token file other users may read (as `master.key` is refused).
#[cfg(unix)]
fn private(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let mode = std::fs::metadata(path)
        .map_err(|e| {
            Error::Config(format!(
                "config: metrics_token_file = {shown:?} cannot be read: {e}"
            ))
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(Error::Config(format!(
            "config: metrics_token_file = {shown:?} is readable by other users (mode {:o}); run `chmod 600 {shown}`",
            mode & 0o777
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn private(_: &Path) -> Result<(), Error> {
    Ok(())
}

/// The credentials of an `Authorization: Bearer` header (scheme case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Middleware on `/metrics`: 401 with a Bearer challenge unless the token matches (or
/// none is configured).
pub(crate) async fn require(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(token) = &state.metrics_token else {
        return next.run(req).await;
    };
    if token.admits(req.headers()) {
        return next.run(req).await;
    }
    let challenge = if req.headers().contains_key(header::AUTHORIZATION) {
        r#"Bearer realm="tessera-metrics", error="invalid_token""#
    } else {
        r#"Bearer realm="tessera-metrics""#
    };
    let mut response = StatusCode::UNAUTHORIZED.into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(text: &str) -> Result<MetricsToken, Error> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.token");
        std::fs::write(&path, text).unwrap();
        chmod(&path, 0o600);
        MetricsToken::load(&path)
    }

    fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn with(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn only_the_exact_bearer_token_is_admitted() {
        let t = token("  s3cret-metrics-token-0123\n").unwrap();
        assert!(t.admits(&with("Bearer s3cret-metrics-token-0123")));
        assert!(t.admits(&with("bearer s3cret-metrics-token-0123")));
        for wrong in [
            "Bearer s3cret-metrics-token-012",
            "Bearer s3cret-metrics-token-01234",
            "Basic s3cret-metrics-token-0123",
            "Bearer ",
            "s3cret-metrics-token-0123",
        ] {
            assert!(!t.admits(&with(wrong)), "{wrong}");
        }
        assert!(!t.admits(&HeaderMap::new()));
        assert_eq!(format!("{t:?}"), "MetricsToken(..)");
    }

    #[test]
    fn a_missing_short_or_spaced_token_file_is_refused_without_its_content() {
        let e = token("short").unwrap_err().to_string();
        assert!(
            e.contains("metrics_token_file") && !e.contains("short\""),
            "{e}"
        );
        assert!(token("two words are not a token").is_err());
        assert!(MetricsToken::load(Path::new("/no/such/metrics.token")).is_err());
    }

    /// Review of item 5: a token a client cannot send in `Authorization: Bearer`
    /// (non-ASCII, quotes, `=` inside) is refused at start, not left to never match.
    #[test]
    fn a_token_that_is_not_token68_is_refused() {
        for bad in [
            "métrique-token-0123456789",
            "token\"with-quote-0123456",
            "abc=def0123456789abcdef",
            "================",
            "tab\there0123456789abc",
        ] {
            let e = token(bad).unwrap_err().to_string();
            assert!(e.contains("RFC 6750") && !e.contains(bad), "{bad}: {e}");
        }
        for good in [
            "AZaz09-._~+/AZaz09",
            "dG9rZW4tdG9rZW4tdG9rZW4=",
            "dG9rZW4tdG9rZW4tdG9rZW4tdA==",
        ] {
            assert!(token(good).is_ok(), "{good}");
        }
    }

    /// Review of item 7: like master.key, a token file group or others may read is
    /// refused, naming the file and the fix.
    #[test]
    fn a_token_file_others_may_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.token");
        std::fs::write(&path, "s3cret-metrics-token-0123").unwrap();
        for mode in [0o644, 0o640, 0o604] {
            chmod(&path, mode);
            let e = MetricsToken::load(&path).unwrap_err().to_string();
            assert!(e.contains("chmod 600") && !e.contains("s3cret"), "{e}");
        }
        chmod(&path, 0o400);
        assert!(MetricsToken::load(&path).is_ok());
    }
}
