//! The identity headers the upstream reads (`X-Auth-Subject`, `X-Auth-Scope`,
//! `X-Auth-Client-Id`, `X-Auth-Claim-<name>`): removing every incoming copy (any header with
//! the configured prefix, whoever sent it) and building the gateway's own from a verified
//! identity. Values that are not plain visible ASCII are percent-encoded, and so is `%`
//! itself, so one decoding rule reads every value.

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use tessera_guard::Identity;
use tessera_token::Claims;

use crate::config::IdentityConfig;

/// Builds and strips identity headers.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    prefix: String,
    subject: HeaderName,
    scope: HeaderName,
    client_id: HeaderName,
    claims: Vec<(String, HeaderName)>,
    forward_token: bool,
}

impl IdentityHeaders {
    /// From the `[identity]` section (its prefix and claim names already checked).
    pub fn new(config: &IdentityConfig) -> Result<IdentityHeaders, String> {
        let name = |suffix: &str| {
            HeaderName::from_bytes(format!("{}{suffix}", config.header_prefix).as_bytes())
                .map_err(|_| format!("{}{suffix} is not a header name", config.header_prefix))
        };
        let claims = config
            .claims
            .iter()
            .map(|c| Ok((c.clone(), name(&format!("Claim-{c}"))?)))
            .collect::<Result<_, String>>()?;
        Ok(IdentityHeaders {
            prefix: underscores_as_dashes(&config.header_prefix),
            subject: name("Subject")?,
            scope: name("Scope")?,
            client_id: name("Client-Id")?,
            claims,
            forward_token: config.forward_token,
        })
    }

    /// Removes every header with the identity prefix, and the caller's credentials unless
    /// `forward_token` is set. Run on every request before anything is added. A name with
    /// `_` where the prefix has `-` (`X_Auth_Subject`) is removed too: WSGI and CGI servers
    /// read both spellings as `HTTP_X_AUTH_SUBJECT`.
    pub fn strip_incoming(&self, headers: &mut HeaderMap) {
        let spoofed: Vec<HeaderName> = headers
            .keys()
            .filter(|k| underscores_as_dashes(k.as_str()).starts_with(&self.prefix))
            .cloned()
            .collect();
        for name in spoofed {
            headers.remove(&name);
        }
        if !self.forward_token {
            headers.remove(http::header::AUTHORIZATION);
            headers.remove("dpop");
        }
    }

    /// Every header name [`Self::for_identity`] may set.
    pub fn names(&self) -> impl Iterator<Item = &HeaderName> {
        [&self.subject, &self.scope, &self.client_id]
            .into_iter()
            .chain(self.claims.iter().map(|(_, n)| n))
    }

    /// The headers describing `identity`.
    pub fn for_identity(&self, identity: &Identity) -> HeaderMap {
        let mut out = HeaderMap::new();
        let mut put = |name: &HeaderName, value: &str| {
            if let Ok(v) = HeaderValue::from_str(&encode(value)) {
                out.insert(name.clone(), v);
            }
        };
        if let Some(sub) = &identity.sub {
            put(&self.subject, sub);
        }
        if let Some(scope) = &identity.scope {
            put(&self.scope, &scope.to_string());
        }
        if let Some(client_id) = &identity.client_id {
            put(&self.client_id, client_id);
        }
        for (claim, name) in &self.claims {
            match claim_value(identity, claim) {
                Some(Value::String(s)) => put(name, &s),
                Some(Value::Number(n)) => put(name, &n.to_string()),
                Some(Value::Bool(b)) => put(name, if b { "true" } else { "false" }),
                _ => {}
            }
        }
        out
    }
}

/// The claim `name` of `claims`, registered (`acr`, `auth_time`, `sid`, ...: typed fields
/// of [`Claims`]) or not (`extra`).
pub(crate) fn claim_value(claims: &Claims, name: &str) -> Option<Value> {
    if let Some(v) = claims.extra.get(name) {
        return Some(v.clone());
    }
    match serde_json::to_value(claims) {
        Ok(Value::Object(mut all)) => all.remove(name),
        _ => None,
    }
}

/// `name` in lower case with `_` read as `-`, the way CGI-style servers merge them.
fn underscores_as_dashes(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// Percent-encodes every byte outside visible ASCII and space, and `%`.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if (b == b' ' || b.is_ascii_graphic()) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_sent_as_one_header_line_with_one_decoding_rule() {
        assert_eq!(encode("alice"), "alice");
        assert_eq!(
            encode("a\r\nX-Auth-Subject: admin"),
            "a%0D%0AX-Auth-Subject: admin"
        );
        assert_eq!(encode("100%"), "100%25");
        assert_eq!(encode("zoë"), "zo%C3%AB");
    }

    #[test]
    fn registered_and_custom_claims_are_forwarded() {
        let config = IdentityConfig {
            claims: vec!["acr".into(), "tenant".into(), "missing".into()],
            ..IdentityConfig::default()
        };
        let h = IdentityHeaders::new(&config).unwrap();
        let mut claims = Claims {
            sub: Some("alice".into()),
            acr: Some("urn:tessera:acr:phr".into()),
            ..Claims::default()
        };
        claims.extra.insert("tenant".into(), Value::from(7));
        assert_eq!(
            claim_value(&claims, "acr"),
            Some(Value::from("urn:tessera:acr:phr"))
        );
        assert_eq!(claim_value(&claims, "tenant"), Some(Value::from(7)));
        assert_eq!(claim_value(&claims, "missing"), None);
        assert!(
            h.claims
                .iter()
                .any(|(c, n)| c == "acr" && n == "x-auth-claim-acr")
        );
    }

    #[test]
    fn every_incoming_copy_of_the_prefix_is_removed() {
        let h = IdentityHeaders::new(&IdentityConfig::default()).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-auth-subject", HeaderValue::from_static("admin"));
        headers.append("X-AUTH-Claim-role", HeaderValue::from_static("root"));
        headers.insert("x-auth-anything", HeaderValue::from_static("1"));
        headers.insert("x_auth_subject", HeaderValue::from_static("admin"));
        headers.insert("X_AUTH-Claim_role", HeaderValue::from_static("root"));
        headers.insert("x-auth_scope", HeaderValue::from_static("admin"));
        headers.insert("authorization", HeaderValue::from_static("Bearer t"));
        headers.insert("accept", HeaderValue::from_static("*/*"));
        h.strip_incoming(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key("accept"));
    }
}
