//! The authorization request (RFC 6749 section 4.1.1, RFC 7636 section 4.3, OpenID
//! Connect Core section 3.1.2.1): its parameters, the checks that identify the client and
//! the redirect URI (errors shown as a page), then [`CHECKS`], the list of checks whose
//! failures go back to that redirect URI, run in order, first failure wins.

use std::collections::BTreeMap;

use tessera_token::Scope;
use tessera_token::pkce::{self, ChallengeMethod};
use zeroize::Zeroizing;

use super::AuthTarget;
use super::assurance::{self, Assurance};
use super::seal;
use crate::grants::authorization_code::CodeRequest;
use crate::grants::resolve_scope;
use crate::http::AppState;
use crate::http::form::has_nul;
use crate::http::pages::Hidden;
use crate::store::{ClientRecord, GrantType};

/// Parameters carried from the request into the forms and back.
pub(super) const CARRIED: [&str; 9] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "dpop_jkt",
];

/// Raw parameters: each name at most once (repeats are remembered, then refused), no
/// NUL byte (the name of the first such parameter is remembered, then refused).
pub(super) struct Raw {
    map: BTreeMap<String, Zeroizing<String>>,
    repeated: Option<String>,
    nul: Option<String>,
}

impl Raw {
    pub(super) fn parse(bytes: &[u8]) -> Self {
        let mut map = BTreeMap::new();
        let mut repeated = None;
        let mut nul = None;
        for (k, v) in form_urlencoded::parse(bytes) {
            if map.contains_key(k.as_ref()) {
                repeated.get_or_insert_with(|| k.clone().into_owned());
            }
            if has_nul(&k) || has_nul(&v) {
                nul.get_or_insert_with(|| k.clone().into_owned());
            }
            map.insert(k.into_owned(), Zeroizing::new(v.into_owned()));
        }
        Raw { map, repeated, nul }
    }

    /// The parameter's value; an empty one counts as absent.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.map
            .get(name)
            .map(|v| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// A validated authorization request.
pub(super) struct AuthRequest {
    pub(super) client: ClientRecord,
    pub(super) target: AuthTarget,
    pub(super) scope: Scope,
    pub(super) code_challenge: String,
    pub(super) nonce: Option<String>,
    /// RFC 9449 section 10: the thumbprint of the DPoP key the code is bound to.
    pub(super) dpop_jkt: Option<String>,
    pub(super) prompt_none: bool,
    /// What the sign-in must be (`acr_values`, `claims`, `max_age`, `prompt=login`).
    pub(super) assurance: Assurance,
}

impl AuthRequest {
    /// The parameters to carry through the login and consent forms: the request's,
    /// the assurance it asks for, and the MAC over both ([`seal`]).
    pub(super) fn hidden(&self, state: &AppState, raw: &Raw) -> Hidden {
        let mut out: Hidden = CARRIED
            .iter()
            .filter_map(|&n| raw.get(n).map(|v| (n, v.to_owned())))
            .collect();
        out.extend(self.assurance.fields());
        let mac = seal::form_mac(
            state,
            &seal::fields(|n| out.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str())),
        );
        out.push((seal::FIELD, mac));
        out
    }

    /// What a code issued for this request is bound to.
    pub(super) fn code_request(&self) -> CodeRequest<'_> {
        CodeRequest {
            client_id: &self.client.id,
            redirect_uri: &self.target.redirect_uri,
            code_challenge: &self.code_challenge,
            scope: &self.scope,
            nonce: self.nonce.as_deref(),
            dpop_jkt: self.dpop_jkt.as_deref(),
        }
    }
}

/// An error sent back to the client's redirect URI (RFC 6749 section 4.1.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct AuthzError {
    pub(super) error: &'static str,
    pub(super) description: &'static str,
}

pub(super) const fn authz_error(error: &'static str, description: &'static str) -> AuthzError {
    AuthzError { error, description }
}

/// Why a request was refused.
pub(super) enum Refusal {
    /// Shown as a page: the redirect URI cannot be trusted.
    Page(&'static str),
    /// Sent back to the client's redirect URI.
    Redirect(AuthTarget, AuthzError),
}

/// One check of a request whose client and redirect URI are known.
type Check = fn(&ClientRecord, &Raw) -> Result<(), AuthzError>;

/// The checks after the redirect URI is known, in the order they run. Their failures go
/// back to the client; the first one wins.
const CHECKS: &[(&str, Check)] = &[
    ("no_repeated_parameter", reject_repeated_parameter),
    ("no_nul_byte", reject_nul_byte),
    ("response_type", check_response_type),
    ("client_grant_type", check_client_grant_type),
    ("scope", check_scope),
    ("code_challenge", check_code_challenge),
    ("code_challenge_method", check_code_challenge_method),
    ("code_challenge_format", check_code_challenge_format),
    ("no_request_object", reject_request_object),
    ("nonce_and_state_length", check_nonce_and_state_length),
    ("dpop_jkt_format", check_dpop_jkt_format),
    ("prompt", check_prompt),
    ("max_age", check_max_age),
    ("acr_values", check_acr_values),
    ("claims", check_claims),
];

/// Where the request's parameters come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// `GET /authorize`: the client's query.
    Query,
    /// `POST /authorize`: a form this server rendered, sealed ([`seal`]).
    Form,
}

/// Validates the request: first the client and redirect URI (refused as a page, section
/// 4.1.2.1: never redirect to an unverified URI), then [`CHECKS`].
pub(super) async fn validate(
    state: &AppState,
    raw: &Raw,
    source: Source,
) -> Result<AuthRequest, Refusal> {
    let (client, target) = client_and_target(state, raw).await?;
    let refuse = |e| Refusal::Redirect(target.clone(), e);
    for (_, check) in CHECKS {
        check(&client, raw).map_err(refuse)?;
    }
    let assurance = match source {
        Source::Query => Assurance::asked(
            raw,
            state.clock.now(),
            state.config.login.authorize_clock_leeway,
        )
        .map_err(refuse)?,
        Source::Form => seal::open(state, raw)?,
    };
    // The checks passed, so these cannot fail; they are read through the checks' own
    // functions all the same.
    let scope = scope_of(&client, raw).map_err(refuse)?;
    let code_challenge = challenge_of(raw).map_err(refuse)?.to_owned();
    let prompt_none = assurance::prompt(raw).map_err(refuse)?.none;
    Ok(AuthRequest {
        client,
        target,
        scope,
        code_challenge,
        nonce: raw.get("nonce").map(str::to_owned),
        dpop_jkt: raw.get("dpop_jkt").map(str::to_owned),
        prompt_none,
        assurance,
    })
}

/// The registered client and the redirect URI to answer it at.
async fn client_and_target(
    state: &AppState,
    raw: &Raw,
) -> Result<(ClientRecord, AuthTarget), Refusal> {
    if matches!(raw.repeated.as_deref(), Some("client_id" | "redirect_uri")) {
        return Err(Refusal::Page(
            "The request repeats client_id or redirect_uri.",
        ));
    }
    if matches!(raw.nul.as_deref(), Some("client_id" | "redirect_uri")) {
        return Err(Refusal::Page(
            "The request has a NUL byte in client_id or redirect_uri.",
        ));
    }
    let Some(client_id) = raw.get("client_id") else {
        return Err(Refusal::Page("The request has no client_id."));
    };
    let client = state
        .store
        .client(client_id)
        .await
        .map_err(|_| Refusal::Page("The sign-in service is temporarily unavailable; try again."))?
        .ok_or(Refusal::Page(
            "The application is not registered here (unknown client_id).",
        ))?;
    let redirect_uri = match raw.get("redirect_uri") {
        Some(u) if client.redirect_uris.iter().any(|r| r == u) => u.to_owned(),
        Some(_) => {
            return Err(Refusal::Page(
                "The redirect URI is not registered for this application; nothing was sent to it.",
            ));
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => return Err(Refusal::Page("The request has no redirect_uri.")),
    };
    let target = AuthTarget {
        redirect_uri,
        state: raw.get("state").map(str::to_owned),
    };
    Ok((client, target))
}

fn reject_repeated_parameter(_: &ClientRecord, raw: &Raw) -> Result<(), AuthzError> {
    match raw.repeated {
        Some(_) => Err(authz_error("invalid_request", "a parameter is repeated")),
        None => Ok(()),
    }
}

fn reject_nul_byte(_: &ClientRecord, raw: &Raw) -> Result<(), AuthzError> {
    match raw.nul {
        Some(_) => Err(authz_error("invalid_request", "a parameter has a NUL byte")),
        None => Ok(()),
    }
}

fn check_response_type(_: &ClientRecord, raw: &Raw) -> Result<(), AuthzError> {
    match raw.get("response_type") {
        Some("code") => Ok(()),
        None => Err(authz_error("invalid_request", "response_type is missing")),
        Some(_) => Err(authz_error(
            "unsupported_response_type",
            "only response_type=code is supported",
        )),
    }
}

fn check_client_grant_type(client: &ClientRecord, _: &Raw) -> Result<(), AuthzError> {
    if client.allows(GrantType::AuthorizationCode) {
        Ok(())
    } else {
        Err(authz_error(
            "unauthorized_client",
            "this client is not registered for the authorization code flow",
        ))
    }
}

fn check_scope(client: &ClientRecord, raw: &Raw) -> Result<(), AuthzError> {
    scope_of(client, raw).map(drop)
}

/// The requested scope (the client's whole scope when none is asked for).
fn scope_of(client: &ClientRecord, raw: &Raw) -> Result<Scope, AuthzError> {
    resolve_scope(raw.get("scope"), &client.scope).map_err(|_| {
        authz_error(
            "invalid_scope",
            "scope is malformed or not allowed for this client",
        )
    })
}

fn check_code_challenge(_: &ClientRecord, raw: &Raw) -> Result<(), AuthzError> {
    challenge_of(raw).map(drop)
}

/// The PKCE challenge, which every request must carry.
fn challenge_of(raw: &Raw) -> Result<&str, AuthzError> {
    raw.get("code_challenge").ok_or(authz_error(
        "invalid_request",
        "code_challenge is required (PKCE with S256)",
    ))
}

fn check_code_challenge_method(_: &ClientRecord, raw: &Raw) -> Result<(), AuthzError> {
    match raw.get("code_challenge_method") {
        Some("S256") => Ok(()),
        None | Some("plain") => Err(authz_error(
            "invalid_request",
            "code_challenge_method must be S256",
        )),
        Some(_) => Err(authz_error(
            "invalid_request",
            "code_challenge_method is unknown; use S256",
        )),
    }
}

fn check_code_challenge_format(_: &ClientRecord, raw: &Raw) -> Result<(), AuthzError> {
    let challenge = challenge_of(raw)?;
    pkce::check_challenge(ChallengeMethod::S256, challenge).map_err(|_| {
        authz_error(
            "invalid_request",
            "code_challenge must be 43 base64url characters (S256)",
        )
    })
}

/// RFC 9449 section 10: `dpop_jkt` is an RFC 7638 SHA-256 thumbprint, 43 base64url
/// characters.
fn check_dpop_jkt_format(_: &ClientRecord, raw: &Raw) -> Result<(), AuthzError> {
    match raw.get("dpop_jkt") {
        Some(jkt)
            if jkt.len() != 43
                || !jkt
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Err(authz_error(
                "invalid_request",
                "dpop_jkt must be a JWK SHA-256 thumbprint (43 base64url characters)",
            ))
        }
        _ => Ok(()),
    }
}

fn reject_request_object(_: &ClientRecord, raw: &Raw) -> Result<(), AuthzError> {
    if raw.get("request").is_some() || raw.get("request_uri").is_some() {
        Err(authz_error(
            "request_not_supported",
            "request objects are not supported",
        ))
    } else {
        Ok(())
    }
}

fn check_nonce_and_state_length(_: &ClientRecord, raw: &Raw) -> Result<(), AuthzError> {
    if raw.get("nonce").is_some_and(|n| n.len() > 255)
        || raw.get("state").is_some_and(|s| s.len() > 1024)
    {
        Err(authz_error("invalid_request", "nonce or state is too long"))
    } else {
        Ok(())
    }
}

fn check_prompt(_: &ClientRecord, raw: &Raw) -> Result<(), AuthzError> {
    assurance::prompt(raw).map(drop)
}

fn check_max_age(_: &ClientRecord, raw: &Raw) -> Result<(), AuthzError> {
    assurance::max_age(raw).map(drop)
}

fn check_acr_values(_: &ClientRecord, raw: &Raw) -> Result<(), AuthzError> {
    assurance::acr_values(raw).map(drop)
}

fn check_claims(_: &ClientRecord, raw: &Raw) -> Result<(), AuthzError> {
    assurance::claims_acr(raw).map(drop)
}

#[cfg(test)]
mod tests {
    use tessera_token::UnixTime;

    use super::*;

    fn client(grant_types: Vec<GrantType>) -> ClientRecord {
        ClientRecord {
            id: "c".into(),
            name: "c".into(),
            secret_hash: None,
            grant_types,
            scope: "openid profile".parse().unwrap(),
            audience: vec![],
            redirect_uris: vec!["https://app.example/cb".into()],
            post_logout_redirect_uris: vec![],
            first_party: false,
            signing_alg: None,
            id_token_alg: None,
            dpop_bound_access_tokens: false,
            created_at: UnixTime::from_secs(0),
        }
    }

    /// A good request with `changes` made (a value replaced, or added); `tail` is
    /// appended as it is.
    fn query(changes: &[(&str, &str)], tail: &str) -> String {
        let mut pairs = vec![
            ("response_type", "code"),
            ("scope", "openid"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWBzbbJ0J3aNo",
            ),
            ("code_challenge_method", "S256"),
            ("state", "s"),
            ("nonce", "n"),
        ];
        for &(name, value) in changes {
            match pairs.iter_mut().find(|(n, _)| *n == name) {
                Some(pair) => pair.1 = value,
                None => pairs.push((name, value)),
            }
        }
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.extend_pairs(pairs);
        q.finish() + tail
    }

    /// Parameters to replace or add.
    type Changes<'a> = &'a [(&'a str, &'a str)];

    /// The first check that fails: its name and error code.
    fn first_failure(client: &ClientRecord, query: &str) -> Option<(&'static str, &'static str)> {
        let raw = Raw::parse(query.as_bytes());
        CHECKS
            .iter()
            .find_map(|(name, check)| check(client, &raw).err().map(|e| (*name, e.error)))
    }

    #[test]
    fn a_good_request_passes_every_check() {
        let c = client(vec![GrantType::AuthorizationCode]);
        assert_eq!(first_failure(&c, &query(&[], "")), None);
        let jkt = [("dpop_jkt", "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")];
        assert_eq!(first_failure(&c, &query(&jkt, "")), None);
    }

    #[test]
    fn each_fault_is_named_by_its_check_and_the_first_check_wins() {
        let c = client(vec![GrantType::AuthorizationCode]);
        let long_nonce = "n".repeat(256);
        let long_state = "s".repeat(1025);
        let cases: &[(Changes, &str, (&str, &str))] = &[
            (
                &[],
                "&state=t",
                ("no_repeated_parameter", "invalid_request"),
            ),
            (&[], "&x=%00", ("no_nul_byte", "invalid_request")),
            (
                &[("response_type", "")],
                "",
                ("response_type", "invalid_request"),
            ),
            (
                &[("response_type", "token"), ("scope", "admin")],
                "",
                ("response_type", "unsupported_response_type"),
            ),
            (
                &[("scope", "admin"), ("code_challenge", "")],
                "",
                ("scope", "invalid_scope"),
            ),
            (
                &[("code_challenge", ""), ("code_challenge_method", "plain")],
                "",
                ("code_challenge", "invalid_request"),
            ),
            (
                &[
                    ("code_challenge", "short"),
                    ("code_challenge_method", "plain"),
                ],
                "",
                ("code_challenge_method", "invalid_request"),
            ),
            (
                &[("code_challenge", "short"), ("request", "x")],
                "",
                ("code_challenge_format", "invalid_request"),
            ),
            (
                &[("request_uri", "urn:x"), ("nonce", &long_nonce)],
                "",
                ("no_request_object", "request_not_supported"),
            ),
            (
                &[("nonce", &long_nonce)],
                "",
                ("nonce_and_state_length", "invalid_request"),
            ),
            (
                &[("state", &long_state)],
                "",
                ("nonce_and_state_length", "invalid_request"),
            ),
            (
                &[("dpop_jkt", "short")],
                "",
                ("dpop_jkt_format", "invalid_request"),
            ),
            (
                &[("dpop_jkt", "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4=")],
                "",
                ("dpop_jkt_format", "invalid_request"),
            ),
        ];
        for (changes, tail, expected) in cases {
            let q = query(changes, tail);
            assert_eq!(first_failure(&c, &q), Some(*expected), "{q}");
        }
        let not_for_code = client(vec![GrantType::ClientCredentials]);
        assert_eq!(
            first_failure(&not_for_code, &query(&[("scope", "admin")], "")),
            Some(("client_grant_type", "unauthorized_client"))
        );
    }
}
