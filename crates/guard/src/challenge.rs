//! RFC 6750 section 3 and RFC 9449 section 7.1 responses: the one place that turns a
//! [`GuardError`] into a status, `WWW-Authenticate` challenges (`Bearer`, `DPoP`, with
//! RFC 9728 `resource_metadata`) with escaped quoted strings, and an optional JSON body.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};

use tessera_token::dpop::PROOF_ALGS;

use crate::GuardError;
use crate::dpop::{DPOP_NONCE, DPOP_REQUIRED, DpopPolicy};

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

/// How the guard's challenges are shaped: fixed when the guard is built, shared by every
/// refusal (the layer's responses and the extractors' [`crate::AuthRejection`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenges {
    /// The `realm` of the `Bearer` challenge.
    pub(crate) realm: String,
    /// Whether refusals carry a JSON body.
    pub(crate) json_body: bool,
    /// Which schemes the guard accepts, hence which challenges it sends.
    pub(crate) policy: DpopPolicy,
    /// The RFC 9728 metadata URL, sent as `resource_metadata` in every challenge.
    pub(crate) resource_metadata: Option<String>,
}

impl Default for Challenges {
    fn default() -> Self {
        Challenges {
            realm: "api".into(),
            json_body: true,
            policy: DpopPolicy::default(),
            resource_metadata: None,
        }
    }
}

/// The authentication scheme a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// `Authorization: Bearer` (or a cookie or form token).
    Bearer,
    /// `Authorization: DPoP` (RFC 9449 section 7.1).
    Dpop,
}

impl Scheme {
    /// The scheme of the request's `Authorization` header (`Bearer` when there is none).
    pub(crate) fn of(headers: &http::HeaderMap) -> Scheme {
        match headers.get(header::AUTHORIZATION) {
            Some(v)
                if v.as_bytes().len() > 5 && v.as_bytes()[..5].eq_ignore_ascii_case(b"dpop ") =>
            {
                Scheme::Dpop
            }
            _ => Scheme::Bearer,
        }
    }
}

/// The `WWW-Authenticate` values for `err` (one per accepted scheme), empty when the
/// status carries no challenge. The error goes on the `DPoP` challenge when the request
/// used DPoP or only DPoP can fix it, else on the `Bearer` one.
pub(crate) fn challenges(c: &Challenges, scheme: Scheme, err: &GuardError) -> Vec<String> {
    if matches!(err, GuardError::Unavailable(_) | GuardError::NotConfigured) {
        return Vec::new();
    }
    let dpop_only =
        c.policy == DpopPolicy::Required || err == &GuardError::TokenBinding(DPOP_REQUIRED);
    let bearer = c.policy != DpopPolicy::Required && !dpop_only;
    // A route requiring DPoP under a guard that refuses it still says what it needs.
    let dpop = c.policy != DpopPolicy::Disabled || dpop_only;
    let error_on_dpop = dpop && (!bearer || scheme == Scheme::Dpop || err.concerns_dpop());
    let mut out = Vec::with_capacity(2);
    if bearer {
        let mut v = String::from("Bearer realm=");
        push_quoted(&mut v, &c.realm);
        if !error_on_dpop {
            push_error(&mut v, err);
        }
        push_metadata(&mut v, c);
        out.push(v);
    }
    if dpop {
        let mut v = String::from("DPoP algs=");
        push_quoted(&mut v, &PROOF_ALGS.join(" "));
        if error_on_dpop {
            push_error(&mut v, err);
        }
        push_metadata(&mut v, c);
        out.push(v);
    }
    out
}

fn push_error(v: &mut String, err: &GuardError) {
    if let Some(code) = err.code() {
        v.push_str(", error=");
        push_quoted(v, code);
        if let Some(desc) = err.description() {
            v.push_str(", error_description=");
            push_quoted(v, &desc);
        }
    }
    if let GuardError::InsufficientScope { scope } = err {
        v.push_str(", scope=");
        push_quoted(v, scope);
    }
    if let GuardError::InsufficientUserAuthentication {
        acr_values,
        max_age,
    } = err
    {
        // RFC 9470 section 3.
        if let Some(acr) = acr_values {
            v.push_str(", acr_values=");
            push_quoted(v, acr);
        }
        if let Some(secs) = max_age {
            v.push_str(&format!(", max_age={secs}"));
        }
    }
}

fn push_metadata(v: &mut String, c: &Challenges) {
    if let Some(url) = &c.resource_metadata {
        v.push_str(", resource_metadata=");
        push_quoted(v, url);
    }
}

/// The HTTP status for `err`.
pub(crate) fn status(err: &GuardError) -> StatusCode {
    match err {
        GuardError::MissingToken
        | GuardError::InvalidToken(_)
        | GuardError::Inactive
        | GuardError::Revoked
        | GuardError::TokenBinding(_)
        | GuardError::InvalidDpopProof(_)
        | GuardError::UseDpopNonce(_)
        | GuardError::InsufficientUserAuthentication { .. } => StatusCode::UNAUTHORIZED,
        GuardError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
        GuardError::InsufficientScope { .. } => StatusCode::FORBIDDEN,
        GuardError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        GuardError::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Builds the whole response. With `json`, the body is `{"error", "error_description"}`
/// carrying exactly what the challenge carries (503 uses `temporarily_unavailable`);
/// a 401 without error code and a 500 have an empty body.
pub(crate) fn response(c: &Challenges, scheme: Scheme, err: &GuardError) -> Response {
    metrics::counter!(crate::REFUSALS_METRIC, "reason" => err.reason()).increment(1);
    let json = c.json_body;
    let mut builder = Response::builder()
        .status(status(err))
        .header(header::CACHE_CONTROL, "no-store");
    for value in challenges(c, scheme, err) {
        if let Ok(v) = HeaderValue::from_str(&value) {
            builder = builder.header(header::WWW_AUTHENTICATE, v);
        }
    }
    if let GuardError::UseDpopNonce(nonce) = err
        && let Ok(v) = HeaderValue::from_str(nonce)
    {
        builder = builder.header(DPOP_NONCE, v);
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

    fn one(c: &Challenges, scheme: Scheme, err: &GuardError) -> Vec<String> {
        challenges(c, scheme, err)
    }

    #[test]
    fn challenges_per_rfc6750() {
        let bearer_only = Challenges {
            policy: DpopPolicy::Disabled,
            ..Challenges::default()
        };
        assert_eq!(
            one(&bearer_only, Scheme::Bearer, &GuardError::MissingToken),
            [r#"Bearer realm="api""#]
        );
        assert_eq!(
            one(&bearer_only, Scheme::Bearer, &GuardError::Revoked),
            [r#"Bearer realm="api", error="invalid_token", error_description="token revoked""#]
        );
        let scope = GuardError::InsufficientScope {
            scope: "notes:read".into(),
        };
        let quoted = Challenges {
            realm: "a\"pi".into(),
            ..bearer_only.clone()
        };
        assert_eq!(
            one(&quoted, Scheme::Bearer, &scope),
            [
                r#"Bearer realm="a\"pi", error="insufficient_scope", error_description="the token lacks the required scope", scope="notes:read""#
            ]
        );
        assert!(one(&bearer_only, Scheme::Bearer, &GuardError::Unavailable("x")).is_empty());
    }

    #[test]
    fn both_challenges_by_default_with_the_error_on_the_scheme_used() {
        let c = Challenges::default();
        assert_eq!(
            one(&c, Scheme::Bearer, &GuardError::MissingToken),
            [
                r#"Bearer realm="api""#,
                r#"DPoP algs="EdDSA ES256 RS256 PS256""#
            ]
        );
        assert_eq!(
            one(&c, Scheme::Dpop, &GuardError::Revoked),
            [
                r#"Bearer realm="api""#,
                r#"DPoP algs="EdDSA ES256 RS256 PS256", error="invalid_token", error_description="token revoked""#
            ]
        );
        let proof = GuardError::InvalidDpopProof("proof replayed".into());
        assert_eq!(
            one(&c, Scheme::Bearer, &proof)[1],
            r#"DPoP algs="EdDSA ES256 RS256 PS256", error="invalid_dpop_proof", error_description="proof replayed""#
        );
    }

    #[test]
    fn step_up_goes_on_the_scheme_used_and_keeps_resource_metadata() {
        let c = Challenges {
            resource_metadata: Some(
                "https://api.example/.well-known/oauth-protected-resource".into(),
            ),
            ..Challenges::default()
        };
        let e = GuardError::InsufficientUserAuthentication {
            acr_values: Some("urn:tessera:acr:mfa".into()),
            max_age: Some(300),
        };
        let step_up = r#"error="insufficient_user_authentication", error_description="a stronger and more recent authentication is required", acr_values="urn:tessera:acr:mfa", max_age=300, resource_metadata="https://api.example/.well-known/oauth-protected-resource""#;
        let bearer = one(&c, Scheme::Bearer, &e);
        assert_eq!(bearer[0], format!(r#"Bearer realm="api", {step_up}"#));
        assert!(!bearer[1].contains("error="));
        let dpop = one(&c, Scheme::Dpop, &e);
        assert!(!dpop[0].contains("error="));
        assert_eq!(
            dpop[1],
            format!(r#"DPoP algs="EdDSA ES256 RS256 PS256", {step_up}"#)
        );
        assert_eq!(status(&e), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn dpop_only_routes_and_resource_metadata() {
        let c = Challenges {
            policy: DpopPolicy::Required,
            resource_metadata: Some(
                "https://api.example/.well-known/oauth-protected-resource".into(),
            ),
            ..Challenges::default()
        };
        assert_eq!(
            one(&c, Scheme::Bearer, &GuardError::MissingToken),
            [
                r#"DPoP algs="EdDSA ES256 RS256 PS256", resource_metadata="https://api.example/.well-known/oauth-protected-resource""#
            ]
        );
        let route = Challenges::default();
        let required = GuardError::TokenBinding(DPOP_REQUIRED);
        let values = one(&route, Scheme::Bearer, &required);
        assert_eq!(values.len(), 1);
        let refused = Challenges {
            policy: DpopPolicy::Disabled,
            ..Challenges::default()
        };
        let misconfigured = one(&refused, Scheme::Bearer, &required);
        assert_eq!(
            misconfigured.len(),
            1,
            "RequireDpop under Disabled still challenges"
        );
        assert!(misconfigured[0].starts_with("DPoP "));
        assert!(
            values[0].starts_with(r#"DPoP algs="EdDSA ES256 RS256 PS256", error="invalid_token""#)
        );
    }
}
