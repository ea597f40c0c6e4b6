//! Authentication requirements of a route (RFC 9470, OAuth 2.0 Step-Up Authentication
//! Challenge): a minimum `acr` on an ordered ladder and/or a maximum age of `auth_time`.
//! A token that does not meet them is refused with `insufficient_user_authentication`,
//! naming what would (`acr_values`, `max_age`), so the client can send the user back to
//! the authorization server.

use std::time::Duration;

use tessera_token::{Claims, UnixTime};

use crate::GuardError;

/// Tessera's ladder, lowest first: a password; a password and a second factor; a
/// phishing-resistant sign-in (passkey).
pub const TESSERA_ACR_VALUES: [&str; 3] = [
    "urn:tessera:acr:pwd",
    "urn:tessera:acr:mfa",
    "urn:tessera:acr:phr",
];

/// The ordered `acr` values of an issuer, lowest first: a token meets a minimum when its
/// `acr` stands at or above it. A value not on the ladder never meets anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcrLadder(Vec<String>);

impl Default for AcrLadder {
    /// [`TESSERA_ACR_VALUES`].
    fn default() -> Self {
        AcrLadder::new(TESSERA_ACR_VALUES)
    }
}

impl AcrLadder {
    /// The ladder `values`, lowest first (another issuer's).
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(values: I) -> Self {
        AcrLadder(values.into_iter().map(Into::into).collect())
    }

    fn rank(&self, acr: &str) -> Option<usize> {
        self.0.iter().position(|v| v == acr)
    }

    /// True when `acr` stands at or above `minimum`; false when either is off the ladder.
    pub fn meets(&self, acr: &str, minimum: &str) -> bool {
        match (self.rank(acr), self.rank(minimum)) {
            (Some(a), Some(m)) => a >= m,
            _ => false,
        }
    }
}

/// What a route asks of the user's authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthRequirement {
    acr: Option<String>,
    max_age: Option<Duration>,
}

impl AuthRequirement {
    /// At least `acr` on the guard's ladder.
    pub fn acr(acr: impl Into<String>) -> Self {
        AuthRequirement {
            acr: Some(acr.into()),
            max_age: None,
        }
    }

    /// An authentication at most `max_age` old (whole seconds).
    pub fn max_age(max_age: Duration) -> Self {
        AuthRequirement {
            acr: None,
            max_age: Some(max_age),
        }
    }

    /// This requirement, and an authentication at most `max_age` old.
    pub fn within(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// The oldest sign-in this requirement accepts (`max_age`), if it sets one.
    pub fn age_limit(&self) -> Option<Duration> {
        self.max_age
    }

    /// This requirement, and at least `acr`.
    pub fn at_least(mut self, acr: impl Into<String>) -> Self {
        self.acr = Some(acr.into());
        self
    }

    /// Checks a token's claims at `now`: its `acr` on `ladder`, its `auth_time` no older
    /// than the maximum age and not after `now + leeway` (a future `auth_time` is never
    /// fresh). A missing claim does not meet a requirement on it. The error names the
    /// whole requirement (RFC 9470 section 3), so one new sign-in meets both.
    pub fn check(
        &self,
        claims: &Claims,
        ladder: &AcrLadder,
        now: UnixTime,
        leeway: Duration,
    ) -> Result<(), GuardError> {
        let acr_ok = self.acr.as_deref().is_none_or(|minimum| {
            claims
                .acr
                .as_deref()
                .is_some_and(|acr| ladder.meets(acr, minimum))
        });
        let age_ok = self.max_age.is_none_or(|max_age| {
            claims.auth_time.is_some_and(|t| {
                t <= now.saturating_add(leeway) && t >= now.saturating_sub(max_age)
            })
        });
        if acr_ok && age_ok {
            return Ok(());
        }
        Err(GuardError::InsufficientUserAuthentication {
            acr_values: self.acr.clone(),
            max_age: self.max_age.map(|d| d.as_secs()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PWD: &str = "urn:tessera:acr:pwd";
    const MFA: &str = "urn:tessera:acr:mfa";
    const NOW: UnixTime = UnixTime::from_secs(10_000);
    const LEEWAY: Duration = Duration::from_secs(30);

    fn claims(acr: Option<&str>, auth_time: Option<i64>) -> Claims {
        Claims {
            acr: acr.map(str::to_owned),
            auth_time: auth_time.map(UnixTime::from_secs),
            ..Claims::default()
        }
    }

    fn check(r: &AuthRequirement, c: &Claims) -> bool {
        r.check(c, &AcrLadder::default(), NOW, LEEWAY).is_ok()
    }

    #[test]
    fn acr_is_compared_on_the_ladder_and_a_missing_or_unknown_one_fails() {
        let mfa = AuthRequirement::acr(MFA);
        assert!(check(&mfa, &claims(Some(MFA), None)));
        assert!(check(&mfa, &claims(Some("urn:tessera:acr:phr"), None)));
        assert!(!check(&mfa, &claims(Some(PWD), None)));
        assert!(!check(&mfa, &claims(None, Some(10_000))));
        assert!(!check(&mfa, &claims(Some("urn:other:gold"), None)));
        // Another issuer's ladder, configured.
        let other = AcrLadder::new(["bronze", "silver", "gold"]);
        let silver = AuthRequirement::acr("silver");
        assert!(
            silver
                .check(&claims(Some("gold"), None), &other, NOW, LEEWAY)
                .is_ok()
        );
        assert!(
            silver
                .check(&claims(Some(MFA), None), &other, NOW, LEEWAY)
                .is_err()
        );
    }

    #[test]
    fn auth_age_needs_a_recent_past_auth_time() {
        let recent = AuthRequirement::max_age(Duration::from_secs(300));
        assert!(check(&recent, &claims(None, Some(9_700))));
        assert!(check(&recent, &claims(None, Some(10_030))), "within leeway");
        assert!(!check(&recent, &claims(None, Some(9_699))), "too old");
        assert!(
            !check(&recent, &claims(None, Some(10_031))),
            "in the future"
        );
        assert!(!check(&recent, &claims(None, Some(i64::MAX))));
        assert!(!check(&recent, &claims(Some(MFA), None)), "no auth_time");
    }

    #[test]
    fn the_refusal_names_the_whole_requirement() {
        let both = AuthRequirement::acr(MFA).within(Duration::from_secs(300));
        assert!(check(&both, &claims(Some(MFA), Some(9_900))));
        let e = both
            .check(
                &claims(Some(MFA), Some(1)),
                &AcrLadder::default(),
                NOW,
                LEEWAY,
            )
            .unwrap_err();
        assert_eq!(
            e,
            GuardError::InsufficientUserAuthentication {
                acr_values: Some(MFA.into()),
                max_age: Some(300),
            }
        );
        assert_eq!(e.code(), Some("insufficient_user_authentication"));
    }
}
