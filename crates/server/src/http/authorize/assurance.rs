//! What an authorization request asks of the sign-in (OpenID Connect Core section
//! 3.1.2.1 `acr_values`, `max_age`, `prompt=login`; section 5.5.1.1 `claims` for `acr`):
//! parsed from the query once, carried through the forms under the form MAC
//! ([`super::seal`]), and compared with a session by [`Assurance::shortfall`].
//!
//! `acr_values` is treated as essential: a code is issued only for a session at least as
//! high on the ladder ([`crate::oidc::ACR_VALUES`]) as the lowest known value asked.

use serde_json::{Map, Value};
use tessera_token::UnixTime;

use super::request::{AuthzError, Raw, authz_error};
use crate::oidc::{ACR_VALUES, acr_meets, acr_rank};
use crate::store::SessionRecord;

/// No known `acr` asked, or one the user cannot reach (OpenID Connect Core 3.1.2.6).
pub(super) const UNMET: AuthzError = authz_error(
    "unmet_authentication_requirements",
    "the requested authentication level cannot be met",
);
/// Longest `acr_values` accepted (bytes).
const MAX_ACR_VALUES_LEN: usize = 1024;
/// Most values in `acr_values`.
const MAX_ACR_VALUES: usize = 10;
/// Longest `claims` accepted (bytes).
const MAX_CLAIMS_LEN: usize = 4096;
/// Most digits of `max_age` (up to about 317 years).
const MAX_AGE_DIGITS: usize = 10;

/// The form fields that carry an [`Assurance`] across posts (sealed with the rest).
pub(super) const FIELDS: [&str; 3] = ["acr", "auth_after", "stale"];

/// The `prompt` values Tessera acts on (OpenID Connect Core 3.1.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Prompt {
    pub(super) none: bool,
    pub(super) login: bool,
}

/// `prompt`: `none` with any other value is refused; values other than `none` and
/// `login` (`consent`, `select_account`, extensions) are accepted and have no effect.
pub(super) fn prompt(raw: &Raw) -> Result<Prompt, AuthzError> {
    let values: Vec<&str> = raw
        .get("prompt")
        .unwrap_or_default()
        .split(' ')
        .filter(|v| !v.is_empty())
        .collect();
    let none = values.contains(&"none");
    if none && values.iter().any(|v| *v != "none") {
        return Err(authz_error(
            "invalid_request",
            "prompt=none cannot be combined with other values",
        ));
    }
    Ok(Prompt {
        none,
        login: values.contains(&"login"),
    })
}

/// `max_age` in seconds: 1 to 10 decimal digits.
pub(super) fn max_age(raw: &Raw) -> Result<Option<u64>, AuthzError> {
    let Some(v) = raw.get("max_age") else {
        return Ok(None);
    };
    if v.len() > MAX_AGE_DIGITS || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(authz_error(
            "invalid_request",
            "max_age must be a number of seconds (at most 10 digits)",
        ));
    }
    v.parse()
        .map(Some)
        .map_err(|_| authz_error("invalid_request", "max_age is malformed"))
}

/// The lowest rung `acr_values` accepts; blank (only spaces) is omitted. Malformed (too
/// long, too many values, a repeated value, a character outside visible ASCII):
/// `invalid_request`. Unknown values are skipped (the list is an order of preference);
/// none known: [`UNMET`].
pub(super) fn acr_values(raw: &Raw) -> Result<Option<&'static str>, AuthzError> {
    let Some(list) = raw.get("acr_values") else {
        return Ok(None);
    };
    let malformed = |d| Err(authz_error("invalid_request", d));
    if list.len() > MAX_ACR_VALUES_LEN {
        return malformed("acr_values is too long");
    }
    let values: Vec<&str> = list.split(' ').filter(|v| !v.is_empty()).collect();
    if values.is_empty() {
        // Only spaces: a parameter without a value, treated as omitted (RFC 6749 3.1).
        return Ok(None);
    }
    if values.len() > MAX_ACR_VALUES {
        return malformed("acr_values has too many values");
    }
    if values
        .iter()
        .any(|v| !v.bytes().all(|b| (0x21..=0x7e).contains(&b)))
    {
        return malformed("acr_values has a character outside visible ASCII");
    }
    if values
        .iter()
        .enumerate()
        .any(|(i, v)| values[..i].contains(v))
    {
        return malformed("acr_values repeats a value");
    }
    lowest_known(values.into_iter()).map(Some)
}

/// The lowest known rung among `values`, or [`UNMET`] when none is known.
fn lowest_known<'a>(values: impl Iterator<Item = &'a str>) -> Result<&'static str, AuthzError> {
    values
        .filter_map(acr_rank)
        .min()
        .map(|rank| ACR_VALUES[rank])
        .ok_or(UNMET)
}

/// The rung an essential `acr` claim request (OpenID Connect Core 5.5.1.1) in `id_token`
/// needs: the lowest of its `value`/`values` we know. A voluntary request (`essential`
/// absent or false) is answered by the `acr` every ID token carries and asks nothing
/// more. An `acr` request under `userinfo` is checked for shape and otherwise ignored:
/// `/userinfo` does not return `acr`, so it cannot promise one (the ID token's `acr` is
/// the answer to ask for).
pub(super) fn claims_acr(raw: &Raw) -> Result<Option<&'static str>, AuthzError> {
    let Some(text) = raw.get("claims") else {
        return Ok(None);
    };
    let malformed = || authz_error("invalid_request", "claims is not a valid claims request");
    if text.len() > MAX_CLAIMS_LEN {
        return Err(authz_error("invalid_request", "claims is too long"));
    }
    let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(text) else {
        return Err(malformed());
    };
    let mut needed: Option<&'static str> = None;
    for member in ["id_token", "userinfo"] {
        let acr = match doc.get(member) {
            None | Some(Value::Null) => continue,
            Some(Value::Object(m)) => m.get("acr"),
            Some(_) => return Err(malformed()),
        };
        let request = match acr {
            None | Some(Value::Null) => continue,
            Some(Value::Object(r)) => r,
            Some(_) => return Err(malformed()),
        };
        let rung = essential_acr(request);
        if member == "userinfo" {
            // Malformed is still refused; unknown values ask nothing here.
            match rung {
                Err(e) if e.error == "invalid_request" => return Err(e),
                _ => continue,
            }
        }
        if let Some(rung) = rung? {
            needed = Some(higher(needed, rung));
        }
    }
    Ok(needed)
}

/// One `acr` claim request: the rung it needs when essential and with values (checked
/// like `acr_values`': none known is [`UNMET`]).
fn essential_acr(request: &Map<String, Value>) -> Result<Option<&'static str>, AuthzError> {
    let malformed = || authz_error("invalid_request", "claims is not a valid claims request");
    let essential = match request.get("essential") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(malformed()),
    };
    let mut values: Vec<&str> = Vec::new();
    match request.get("value") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => values.push(s),
        Some(_) => return Err(malformed()),
    }
    match request.get("values") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) if a.len() <= MAX_ACR_VALUES => {
            for v in a {
                values.push(v.as_str().ok_or_else(malformed)?);
            }
        }
        Some(_) => return Err(malformed()),
    }
    if !essential || values.is_empty() {
        return Ok(None);
    }
    lowest_known(values.into_iter()).map(Some)
}

/// The higher of two rungs (`b` when `a` is absent).
fn higher(a: Option<&'static str>, b: &'static str) -> &'static str {
    match a {
        Some(a) if acr_meets(a, b) => a,
        _ => b,
    }
}

/// What a session must be to stand for this request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Assurance {
    /// The lowest `acr` that will do, when the request asks for one.
    pub(super) acr: Option<&'static str>,
    /// A session must have signed in at or after this time (`max_age`, `prompt=login`).
    pub(super) auth_after: Option<UnixTime>,
    /// The tag ([`super::seal::session_tag`]) of the session the request found when it
    /// asked for a fresh sign-in: that session never stands for it, even within the same
    /// second.
    pub(super) stale: Option<String>,
    /// A fresh sign-in is asked (`prompt=login` or `max_age=0`); used on the query only.
    pub(super) fresh: bool,
}

/// How a session falls short of an [`Assurance`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shortfall {
    /// It will do.
    None,
    /// Too old, or the one the request asked to replace: sign in again.
    Fresh,
    /// Recent enough, but below the `acr` asked: a (further) factor.
    Level,
}

impl Assurance {
    /// What the query asks, at `now` (the checks in [`super::request`] ran already). A
    /// fresh sign-in is one made at most `leeway` before `now`: the password may be checked
    /// by a replica whose clock is behind this one's, and the session found now is ruled
    /// out by its tag ([`Assurance::stale`]), not by its time.
    pub(super) fn asked(
        raw: &Raw,
        now: UnixTime,
        leeway: std::time::Duration,
    ) -> Result<Assurance, AuthzError> {
        let acr = match (acr_values(raw)?, claims_acr(raw)?) {
            (Some(a), Some(c)) => Some(higher(Some(a), c)),
            (a, c) => a.or(c),
        };
        let max_age = max_age(raw)?;
        let fresh = prompt(raw)?.login || max_age == Some(0);
        let auth_after = if fresh {
            Some(now.saturating_sub(leeway))
        } else {
            max_age.map(|secs| now.saturating_sub(std::time::Duration::from_secs(secs)))
        };
        Ok(Assurance {
            acr,
            auth_after,
            stale: None,
            fresh,
        })
    }

    /// What a sealed form carries; `None` when a field is not what this server writes.
    pub(super) fn carried(raw: &Raw) -> Option<Assurance> {
        let acr = match raw.get("acr") {
            None => None,
            Some(a) => Some(ACR_VALUES[acr_rank(a)?]),
        };
        let auth_after = match raw.get("auth_after") {
            None => None,
            Some(t) => Some(UnixTime::from_secs(t.parse().ok()?)),
        };
        Some(Assurance {
            acr,
            auth_after,
            stale: raw.get("stale").map(str::to_owned),
            fresh: false,
        })
    }

    /// The form fields carrying this assurance.
    pub(super) fn fields(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(a) = self.acr {
            out.push(("acr", a.to_owned()));
        }
        if let Some(t) = self.auth_after {
            out.push(("auth_after", t.secs().to_string()));
        }
        if let Some(s) = &self.stale {
            out.push(("stale", s.clone()));
        }
        out
    }

    /// How `session` (whose tag is `tag`) falls short; its `acr` is the one its `amr`
    /// earns.
    pub(super) fn shortfall(&self, session: &SessionRecord, tag: &str) -> Shortfall {
        let too_old = self.auth_after.is_some_and(|t| session.created_at < t);
        if too_old || self.stale.as_deref() == Some(tag) {
            return Shortfall::Fresh;
        }
        if self.beyond(crate::oidc::acr(&session.amr)) {
            return Shortfall::Level;
        }
        Shortfall::None
    }

    /// True when the request asks for more than `reached`.
    pub(super) fn beyond(&self, reached: &str) -> bool {
        self.acr.is_some_and(|asked| !acr_meets(reached, asked))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::{ACR_MFA, ACR_PWD};
    use crate::store::Amr;
    use tessera_token::TokenHash;

    const LEEWAY: std::time::Duration = std::time::Duration::from_secs(5);

    fn raw(query: &[(&str, &str)]) -> Raw {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.extend_pairs(query);
        Raw::parse(q.finish().as_bytes())
    }

    fn acr_of(query: &[(&str, &str)]) -> Result<Option<&'static str>, &'static str> {
        let r = raw(query);
        Assurance::asked(&r, UnixTime::from_secs(1000), LEEWAY)
            .map(|a| a.acr)
            .map_err(|e| e.error)
    }

    #[test]
    fn acr_values_take_the_lowest_known_and_refuse_the_malformed() {
        let both = format!("{ACR_MFA} {ACR_PWD}");
        assert_eq!(acr_of(&[("acr_values", &both)]), Ok(Some(ACR_PWD)));
        let with_unknown = format!("urn:x:gold {ACR_MFA}");
        assert_eq!(acr_of(&[("acr_values", &with_unknown)]), Ok(Some(ACR_MFA)));
        let unmet = Err("unmet_authentication_requirements");
        assert_eq!(acr_of(&[("acr_values", "urn:x:gold urn:x:silver")]), unmet);
        let invalid = Err("invalid_request");
        let repeated = format!("{ACR_MFA} {ACR_MFA}");
        assert_eq!(acr_of(&[("acr_values", &repeated)]), invalid);
        let oversized = format!("{ACR_MFA} {}", "x".repeat(1100));
        assert_eq!(acr_of(&[("acr_values", &oversized)]), invalid);
        let many = ["a"; 11].join(" ");
        assert_eq!(acr_of(&[("acr_values", &many)]), invalid);
        assert_eq!(acr_of(&[("acr_values", "urn:\u{e9}")]), invalid);
        assert_eq!(acr_of(&[("acr_values", "a\"b")]), unmet);
        // Blank, or only spaces: omitted (RFC 6749 section 3.1), not an unknown value.
        for blank in ["", " ", "   "] {
            assert_eq!(acr_of(&[("acr_values", blank)]), Ok(None), "{blank:?}");
        }
    }

    #[test]
    fn essential_acr_claims_count_and_voluntary_ones_do_not() {
        let essential =
            format!(r#"{{"id_token":{{"acr":{{"essential":true,"values":["{ACR_MFA}"]}}}}}}"#);
        assert_eq!(acr_of(&[("claims", &essential)]), Ok(Some(ACR_MFA)));
        let voluntary = format!(r#"{{"id_token":{{"acr":{{"value":"{ACR_MFA}"}}}}}}"#);
        assert_eq!(acr_of(&[("claims", &voluntary)]), Ok(None));
        // The stricter of acr_values and claims.
        assert_eq!(
            acr_of(&[("claims", &essential), ("acr_values", ACR_PWD)]),
            Ok(Some(ACR_MFA))
        );
        let unknown = r#"{"id_token":{"acr":{"essential":true,"value":"urn:x"}}}"#;
        assert_eq!(
            acr_of(&[("claims", unknown)]),
            Err("unmet_authentication_requirements")
        );
        // Review finding 8: /userinfo never returns acr, so an acr request there is
        // ignored (only its shape is checked), whatever it asks.
        for ignored in [
            format!(r#"{{"userinfo":{{"acr":{{"essential":true,"value":"{ACR_MFA}"}}}}}}"#),
            r#"{"userinfo":{"acr":{"essential":true,"value":"urn:x"}}}"#.to_owned(),
        ] {
            assert_eq!(acr_of(&[("claims", &ignored)]), Ok(None), "{ignored}");
        }
        let malformed = r#"{"userinfo":{"acr":{"essential":"yes"}}}"#;
        assert_eq!(acr_of(&[("claims", malformed)]), Err("invalid_request"));
        for bad in [
            "[]",
            "not json",
            r#"{"id_token":3}"#,
            r#"{"id_token":{"acr":{"essential":"yes"}}}"#,
            r#"{"id_token":{"acr":{"essential":true,"values":[1]}}}"#,
        ] {
            assert_eq!(acr_of(&[("claims", bad)]), Err("invalid_request"), "{bad}");
        }
        let long = format!(r#"{{"x":"{}"}}"#, "a".repeat(5000));
        assert_eq!(acr_of(&[("claims", &long)]), Err("invalid_request"));
    }

    #[test]
    fn max_age_and_prompt_login_set_the_oldest_sign_in_accepted() {
        let now = UnixTime::from_secs(1000);
        let at = |q: &[(&str, &str)]| Assurance::asked(&raw(q), now, LEEWAY).map_err(|e| e.error);
        assert_eq!(
            at(&[("max_age", "60")]).unwrap().auth_after,
            Some(UnixTime::from_secs(940))
        );
        for fresh in [&[("max_age", "0")][..], &[("prompt", "login consent")]] {
            let a = at(fresh).unwrap();
            assert_eq!(
                (a.auth_after, a.fresh),
                (Some(UnixTime::from_secs(995)), true)
            );
        }
        let huge = at(&[("max_age", "9999999999")]).unwrap();
        assert!(huge.auth_after.unwrap() < now);
        for bad in ["-1", "1.5", "ten", "99999999999", " 5"] {
            assert_eq!(at(&[("max_age", bad)]), Err("invalid_request"), "{bad}");
        }
        assert_eq!(at(&[("prompt", "none login")]), Err("invalid_request"));
        assert_eq!(
            at(&[("prompt", "select_account")]).unwrap(),
            Assurance::default()
        );
    }

    #[test]
    fn a_session_falls_short_by_age_by_being_the_stale_one_or_by_level() {
        let session = |created, amr| SessionRecord {
            hash: TokenHash::of(b"s"),
            user_id: "u".into(),
            created_at: UnixTime::from_secs(created),
            expires_at: UnixTime::from_secs(10_000),
            revoked_at: None,
            generation: 0,
            amr,
        };
        let a = Assurance {
            acr: Some(ACR_MFA),
            auth_after: Some(UnixTime::from_secs(100)),
            stale: Some("old".into()),
            fresh: false,
        };
        let fresh_mfa = session(100, Amr::password_and_otp());
        assert_eq!(a.shortfall(&fresh_mfa, "new"), Shortfall::None);
        assert_eq!(a.shortfall(&fresh_mfa, "old"), Shortfall::Fresh);
        assert_eq!(
            a.shortfall(&session(99, Amr::password_and_otp()), "new"),
            Shortfall::Fresh
        );
        assert_eq!(
            a.shortfall(&session(100, Amr::password()), "new"),
            Shortfall::Level
        );
        // What the form carries comes back as it went out.
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.extend_pairs(a.fields());
        let back = Assurance::carried(&Raw::parse(q.finish().as_bytes())).unwrap();
        assert_eq!(back, a);
        assert_eq!(Assurance::carried(&raw(&[("acr", "urn:x")])), None);
        assert_eq!(Assurance::carried(&raw(&[("auth_after", "x")])), None);
    }

    /// Review finding 6: `prompt=login` rendered by a replica whose clock is ahead of the
    /// one that checks the password. The new session (stamped by the slower clock) stands;
    /// the one the request found never does, however recent.
    #[test]
    fn a_fresh_sign_in_on_a_replica_a_little_behind_stands_and_the_found_one_never() {
        let now = UnixTime::from_secs(1000);
        let mut a = Assurance::asked(&raw(&[("prompt", "login")]), now, LEEWAY).unwrap();
        a.stale = Some("found".into());
        let session = |created| SessionRecord {
            hash: TokenHash::of(b"s"),
            user_id: "u".into(),
            created_at: UnixTime::from_secs(created),
            expires_at: UnixTime::from_secs(10_000),
            revoked_at: None,
            generation: 0,
            amr: Amr::password(),
        };
        // Signed in on a replica 3 s behind.
        assert_eq!(a.shortfall(&session(997), "new"), Shortfall::None);
        assert_eq!(a.shortfall(&session(1001), "found"), Shortfall::Fresh);
        // Beyond the leeway: too old.
        assert_eq!(a.shortfall(&session(994), "new"), Shortfall::Fresh);
    }
}
