//! The introspection verifier: opaque tokens checked through RFC 7662 with HTTP Basic
//! client authentication; positive answers cached no longer than `exp` and a maximum.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use serde_json::{Map, Value};
use tessera_token::{
    Audience, Claims, Confirmation, Error as TokenError, OpaqueToken, SecretString, UnixTime,
    Validation,
};
use url::Url;

use super::{Inner, Verified, Verifier};
use crate::net::{basic_auth, config_url, default_client, read_body, transport};
use crate::{BuildError, FetchError, GuardError, Identity};

/// An RFC 7662 introspection endpoint and the resource server's client credentials.
/// `Debug` never shows the secret.
#[derive(Clone)]
pub struct Introspection {
    endpoint: Url,
    client_id: String,
    secret: SecretString,
    max_ttl: Duration,
    client: reqwest::Client,
    /// The [`REQUIRED`] members already reported missing at WARN (one bit each).
    warned: Arc<AtomicU8>,
}

impl Introspection {
    /// Introspects at `endpoint` (https, or http on loopback), authenticating as
    /// `client_id` with `secret` (HTTP Basic, RFC 6749 section 2.3.1).
    pub fn new(
        endpoint: &str,
        client_id: impl Into<String>,
        secret: SecretString,
    ) -> Result<Self, BuildError> {
        Ok(Introspection {
            endpoint: config_url(endpoint, "introspection_endpoint")?,
            client_id: client_id.into(),
            secret,
            max_ttl: Duration::from_secs(60),
            client: default_client()?,
            warned: Arc::default(),
        })
    }

    /// Longest time a positive answer is reused (default 60 s; never past `exp`).
    /// Revocation at the server takes effect within this delay.
    pub fn max_cache_ttl(mut self, d: Duration) -> Self {
        self.max_ttl = d;
        self
    }

    /// Uses this HTTP client.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = client;
        self
    }

    pub(super) async fn verify(
        &self,
        token: &str,
        validation: &Validation,
        now: UnixTime,
    ) -> Result<Verified, GuardError> {
        // Tessera's own opaque tokens carry a checksum: garbage never reaches the network.
        if token.starts_with("tsr_") && OpaqueToken::parse(token).is_err() {
            return Err(GuardError::InvalidToken(TokenError::MalformedOpaque(
                "bad checksum",
            )));
        }
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .append_pair("token_type_hint", "access_token")
            .finish();
        let result = async {
            let resp = self
                .client
                .post(self.endpoint.clone())
                .header(
                    reqwest::header::AUTHORIZATION,
                    basic_auth(&self.client_id, self.secret.expose()),
                )
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .header(reqwest::header::ACCEPT, "application/json")
                .body(body)
                .send()
                .await
                .map_err(|e| transport(&e))?;
            let bytes = read_body(resp).await?;
            serde_json::from_slice::<Map<String, Value>>(&bytes)
                .map_err(|_| FetchError::Invalid("introspection answer is not a JSON object"))
        }
        .await;
        let answer = result.map_err(|e| {
            tracing::warn!(endpoint = %self.endpoint, error = %e, "introspection failed");
            GuardError::Unavailable("introspection unavailable")
        })?;
        self.report_missing(missing_members(&answer));
        let claims = claims_from_answer(answer, validation, now)?;
        let cap = now.saturating_add(self.max_ttl);
        Ok(Verified {
            identity: Identity::from_introspection(claims),
            cache_until: Some(cap),
        })
    }
}

/// The members of an active answer that RFC 7662 makes optional and this guard requires
/// (issue 14, item 6): without them every token is refused.
const REQUIRED: [&str; 3] = ["token_use (or token_type Bearer)", "iss", "aud"];

/// Which of [`REQUIRED`] an active answer lacks (absent, `null`, or an empty `aud`), as
/// one bit each; 0 for an inactive answer or a complete one.
fn missing_members(m: &Map<String, Value>) -> u8 {
    if m.get("active") != Some(&Value::Bool(true)) {
        return 0;
    }
    let absent = |name: &str| matches!(m.get(name), None | Some(Value::Null));
    let mut bits = 0;
    if absent("token_use") && absent("token_type") {
        bits |= 1;
    }
    if absent("iss") {
        bits |= 2;
    }
    if absent("aud")
        || m.get("aud")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
    {
        bits |= 4;
    }
    bits
}

impl Introspection {
    /// Logs the [`REQUIRED`] members an active answer lacked, so the operator of an
    /// authorization server that omits them sees why every token is refused: at WARN the
    /// first time each member is missed (per verifier), at DEBUG afterwards (a flood of
    /// tokens is not a flood of warnings). Never the token.
    fn report_missing(&self, missing: u8) {
        if missing == 0 {
            return;
        }
        let names = |bits: u8| {
            REQUIRED
                .iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .map(|(_, name)| *name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let new = missing & !self.warned.fetch_or(missing, Ordering::Relaxed);
        if new != 0 {
            tracing::warn!(
                endpoint = %self.endpoint,
                missing = %names(new),
                "the introspection answer lacks members this guard requires (RFC 7662 makes \
                 them optional); every such token is refused: have the authorization server \
                 return them"
            );
        } else {
            tracing::debug!(
                endpoint = %self.endpoint,
                missing = %names(missing),
                "introspection answer lacks required members; token refused"
            );
        }
    }
}

impl Verifier {
    /// Verifies opaque tokens by RFC 7662 introspection.
    pub fn introspection(config: Introspection) -> Self {
        Verifier {
            inner: Inner::Introspection(config),
        }
    }
}

impl fmt::Debug for Introspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Introspection")
            .field("endpoint", &self.endpoint.as_str())
            .field("client_id", &self.client_id)
            .field("secret", &"<redacted>")
            .field("max_ttl", &self.max_ttl)
            .finish()
    }
}

/// Whether the answer is about an access token. `token_use` (Tessera, Ory Hydra) must be
/// `access_token`; without it (other servers), `token_type` must be `Bearer`, which RFC
/// 7662 reserves for access tokens. Anything else (a refresh token, or an answer that says
/// neither, as Tessera before issue 14 did for refresh tokens) is refused.
fn is_access_token(extra: &Map<String, Value>) -> bool {
    match extra.get("token_use") {
        Some(use_) => use_.as_str() == Some("access_token"),
        None => extra
            .get("token_type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
    }
}

/// Turns an RFC 7662 section 2.2 answer into claims: `active` must be `true`; it must be
/// about an access token (see [`is_access_token`]); `exp` must not have passed; `iss` and
/// `aud` must be present and pass the policy (a missing one is refused, never skipped).
fn claims_from_answer(
    mut m: Map<String, Value>,
    validation: &Validation,
    now: UnixTime,
) -> Result<Claims, GuardError> {
    if m.remove("active") != Some(Value::Bool(true)) {
        return Err(GuardError::Inactive);
    }
    let bad = |name: &'static str| GuardError::InvalidToken(TokenError::InvalidClaim(name));
    let string = |m: &mut Map<String, Value>, name: &'static str| match m.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(name)),
    };
    let time = |m: &mut Map<String, Value>, name: &'static str| match m.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 1e15)
                    .map(|f| f as i64)
            })
            .map(|s| Some(UnixTime::from_secs(s)))
            .ok_or_else(|| bad(name)),
        Some(_) => Err(bad(name)),
    };
    let aud = match m.remove("aud") {
        None | Some(Value::Null) => Audience::default(),
        Some(Value::String(s)) => Audience::new([s]),
        Some(Value::Array(items)) => Audience::new(
            items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(bad("aud")),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => return Err(bad("aud")),
    };
    let claims = Claims {
        iss: string(&mut m, "iss")?,
        sub: string(&mut m, "sub")?,
        aud,
        exp: time(&mut m, "exp")?,
        nbf: time(&mut m, "nbf")?,
        iat: time(&mut m, "iat")?,
        jti: string(&mut m, "jti")?,
        client_id: string(&mut m, "client_id")?,
        scope: string(&mut m, "scope")?
            .map(|s| s.parse().map_err(|_| bad("scope")))
            .transpose()?,
        sid: string(&mut m, "sid")?,
        auth_time: time(&mut m, "auth_time")?,
        acr: string(&mut m, "acr")?,
        cnf: match m.remove("cnf") {
            None | Some(Value::Null) => None,
            Some(v) => Some(Confirmation::from_value(v).map_err(|_| bad("cnf"))?),
        },
        extra: m,
    };
    if !is_access_token(&claims.extra) {
        return Err(bad("token_use"));
    }
    if claims.exp.is_some_and(|exp| exp <= now) {
        return Err(GuardError::InvalidToken(TokenError::Expired));
    }
    let Some(iss) = &claims.iss else {
        return Err(GuardError::InvalidToken(TokenError::MissingClaim("iss")));
    };
    if !validation.issuers().iter().any(|i| i == iss) {
        return Err(GuardError::InvalidToken(TokenError::WrongIssuer));
    }
    if claims.aud.is_empty() {
        return Err(GuardError::InvalidToken(TokenError::MissingClaim("aud")));
    }
    if !validation
        .audiences()
        .iter()
        .any(|a| claims.aud.contains(a))
    {
        return Err(GuardError::InvalidToken(TokenError::WrongAudience));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    /// An in-memory log writer for the capture below.
    #[derive(Clone, Default)]
    struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Review of issue 14, item 6: an answer without a member the guard requires is
    /// refused and the log names the member (at WARN once per member, DEBUG after), so the
    /// operator of another authorization server can see why; a complete answer, an
    /// inactive one and a refresh token's log nothing of the kind.
    #[test]
    fn a_missing_required_member_is_named_in_the_log_once() {
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let config = Introspection::new(
            "http://127.0.0.1:1/introspect",
            "rs",
            SecretString::new("s"),
        )
        .unwrap();
        let complete = json!({"active": true, "token_use": "access_token", "iss": "https://as",
                              "aud": ["api"], "exp": 2000});
        let mut no_iss = complete.clone();
        no_iss["iss"] = Value::Null;
        let mut bare = complete.clone();
        for name in ["token_use", "iss", "aud"] {
            bare.as_object_mut().unwrap().remove(name);
        }
        let mut refresh = complete.clone();
        refresh["token_use"] = "refresh_token".into();
        tracing::subscriber::with_default(subscriber, || {
            tracing::callsite::rebuild_interest_cache();
            for v in [&complete, &json!({"active": false}), &refresh] {
                config.report_missing(missing_members(&answer(v.clone())));
            }
            assert!(buf.0.lock().unwrap().is_empty());
            for v in [&no_iss, &no_iss, &bare, &bare] {
                config.report_missing(missing_members(&answer(v.clone())));
            }
        });
        let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<_> = logs.lines().collect();
        assert_eq!(lines.len(), 2, "{logs}");
        assert!(lines[0].ends_with("missing=iss"), "{logs}");
        assert!(
            lines[1].ends_with("missing=token_use (or token_type Bearer), aud"),
            "{logs}"
        );
        assert!(lines.iter().all(|l| l.contains("WARN")), "{logs}");
    }

    #[test]
    fn answers_are_checked() {
        let pol = Validation::new("https://as", "api");
        let now = UnixTime::from_secs(1000);
        let ok = claims_from_answer(
            answer(
                json!({"active": true, "sub": "alice", "scope": "a b", "exp": 2000,
                          "iss": "https://as", "aud": ["api"], "tenant": "t1",
                          "token_use": "access_token", "token_type": "Bearer"}),
            ),
            &pol,
            now,
        )
        .unwrap();
        assert_eq!(ok.sub.as_deref(), Some("alice"));
        assert!(ok.scope.as_ref().unwrap().contains("b"));
        assert_eq!(ok.extra.get("tenant"), Some(&json!("t1")));
        let refuse = |v: Value| claims_from_answer(answer(v), &pol, now).unwrap_err();
        assert_eq!(refuse(json!({"active": false})), GuardError::Inactive);
        assert_eq!(refuse(json!({"active": "true"})), GuardError::Inactive);
        let at = |extra: Value| {
            let mut v = json!({"active": true, "token_use": "access_token",
                               "iss": "https://as", "aud": "api", "exp": 2000});
            for (k, x) in answer(extra) {
                if x.is_null() {
                    v.as_object_mut().unwrap().remove(&k);
                } else {
                    v[k] = x;
                }
            }
            v
        };
        assert!(claims_from_answer(answer(at(json!({}))), &pol, now).is_ok());
        assert_eq!(
            refuse(at(json!({"exp": 999}))),
            GuardError::InvalidToken(TokenError::Expired)
        );
        assert_eq!(
            refuse(at(json!({"iss": "https://evil"}))),
            GuardError::InvalidToken(TokenError::WrongIssuer)
        );
        assert_eq!(
            refuse(at(json!({"aud": "other"}))),
            GuardError::InvalidToken(TokenError::WrongAudience)
        );
        // Issue 14, item 6: a missing iss or aud is refused, not skipped.
        assert_eq!(
            refuse(at(json!({"iss": null}))),
            GuardError::InvalidToken(TokenError::MissingClaim("iss"))
        );
        assert_eq!(
            refuse(at(json!({"aud": null}))),
            GuardError::InvalidToken(TokenError::MissingClaim("aud"))
        );
        assert_eq!(
            refuse(at(json!({"aud": []}))),
            GuardError::InvalidToken(TokenError::MissingClaim("aud"))
        );
    }

    #[test]
    fn only_access_tokens_are_accepted() {
        let pol = Validation::new("https://as", "api");
        let now = UnixTime::from_secs(1000);
        let check = |v: Value| claims_from_answer(answer(v), &pol, now);
        let base = |use_: Value, typ: Value| {
            let mut v = json!({"active": true, "iss": "https://as", "aud": ["api"], "exp": 2000});
            if !use_.is_null() {
                v["token_use"] = use_;
            }
            if !typ.is_null() {
                v["token_type"] = typ;
            }
            v
        };
        let wrong_use = GuardError::InvalidToken(TokenError::InvalidClaim("token_use"));
        // Tessera's own answers.
        assert!(check(base(json!("access_token"), json!("Bearer"))).is_ok());
        assert_eq!(
            check(base(json!("refresh_token"), Value::Null)).unwrap_err(),
            wrong_use
        );
        // token_use wins over a Bearer token_type.
        assert_eq!(
            check(base(json!("refresh_token"), json!("Bearer"))).unwrap_err(),
            wrong_use
        );
        assert_eq!(check(base(json!(""), Value::Null)).unwrap_err(), wrong_use);
        assert_eq!(check(base(json!(1), Value::Null)).unwrap_err(), wrong_use);
        // Servers without token_use: Bearer (any case) only.
        assert!(check(base(Value::Null, json!("bearer"))).is_ok());
        assert_eq!(
            check(base(Value::Null, json!("refresh_token"))).unwrap_err(),
            wrong_use
        );
        assert_eq!(
            check(base(Value::Null, Value::Null)).unwrap_err(),
            wrong_use,
            "an answer that says neither (Tessera's old refresh-token answer) is refused"
        );
    }
}
