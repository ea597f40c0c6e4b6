//! RFC 6750 section 3 responses: the one place that turns a [`GuardError`] into a status,
//! a `WWW-Authenticate` challenge with escaped quoted strings, and an optional JSON body.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};

use crate::GuardError;

/// Writes a quoted-string (RFC 9110 section 5.6.4): `"` and `\` are escaped; control and
/// non-ASCII characters, which a header cannot carry, become `?`.
pub(crate) fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
}

/// The `WWW-Authenticate` value for `err`, or `None` when the status carries no challenge.
pub(crate) fn challenge(realm: &str, err: &GuardError) -> Option<String> {
    if matches!(err, GuardError::Unavailable(_) | GuardError::NotConfigured) {
        return None;
    }
    let mut v = String::from("Bearer realm=");
    push_quoted(&mut v, realm);
    if let Some(code) = err.code() {
        v.push_str(", error=");
        push_quoted(&mut v, code);
        if let Some(desc) = err.description() {
            v.push_str(", error_description=");
            push_quoted(&mut v, &desc);
        }
    }
    if let GuardError::InsufficientScope { scope } = err {
        v.push_str(", scope=");
        push_quoted(&mut v, scope);
    }
    Some(v)
}

/// The HTTP status for `err`.
pub(crate) fn status(err: &GuardError) -> StatusCode {
    match err {
        GuardError::MissingToken
        | GuardError::InvalidToken(_)
        | GuardError::Inactive
        | GuardError::Revoked => StatusCode::UNAUTHORIZED,
        GuardError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
        GuardError::InsufficientScope { .. } => StatusCode::FORBIDDEN,
        GuardError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        GuardError::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Builds the whole response. With `json`, the body is `{"error", "error_description"}`
/// carrying exactly what the challenge carries (503 uses `temporarily_unavailable`);
/// a 401 without error code and a 500 have an empty body.
pub(crate) fn response(realm: &str, json: bool, err: &GuardError) -> Response {
    metrics::counter!(crate::REFUSALS_METRIC, "reason" => err.reason()).increment(1);
    let mut builder = Response::builder()
        .status(status(err))
        .header(header::CACHE_CONTROL, "no-store");
    if let Some(c) = challenge(realm, err)
        && let Ok(v) = HeaderValue::from_str(&c)
    {
        builder = builder.header(header::WWW_AUTHENTICATE, v);
    }
    if matches!(err, GuardError::Unavailable(_)) {
        builder = builder.header(header::RETRY_AFTER, "5");
    }
    let code = match err {
        GuardError::Unavailable(_) => Some("temporarily_unavailable"),
        other => other.code(),
    };
    let body = match (json, code) {
        (true, Some(code)) => {
            let mut obj = serde_json::Map::new();
            obj.insert("error".into(), code.into());
            if let Some(desc) = err.description() {
                obj.insert("error_description".into(), desc.into_owned().into());
            }
            builder = builder.header(header::CONTENT_TYPE, "application/json");
            Body::from(serde_json::Value::Object(obj).to_string())
        }
        _ => Body::empty(),
    };
    // Every header above is a valid static or checked value, so this cannot fail; an
    // empty 500 is the safe answer if it ever did.
    builder.body(body).unwrap_or_else(|_| {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_strings_are_escaped() {
        let mut s = String::new();
        push_quoted(&mut s, "a\"b\\c\r\nd\u{e9}");
        assert_eq!(s, r#""a\"b\\c??d?""#);
    }

    #[test]
    fn challenges_per_rfc6750() {
        assert_eq!(
            challenge("api", &GuardError::MissingToken).as_deref(),
            Some(r#"Bearer realm="api""#)
        );
        assert_eq!(
            challenge("api", &GuardError::Revoked).as_deref(),
            Some(r#"Bearer realm="api", error="invalid_token", error_description="token revoked""#)
        );
        let scope = GuardError::InsufficientScope {
            scope: "notes:read".into(),
        };
        assert_eq!(
            challenge("a\"pi", &scope).as_deref(),
            Some(
                r#"Bearer realm="a\"pi", error="insufficient_scope", error_description="the token lacks the required scope", scope="notes:read""#
            )
        );
        assert_eq!(challenge("api", &GuardError::Unavailable("x")), None);
    }
}
