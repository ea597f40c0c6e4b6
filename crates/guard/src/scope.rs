//! Scope requirements of a route: all of a list, or any of a list (RFC 6750 section 3.1
//! `insufficient_scope`).

use tessera_token::Scope;

use crate::GuardError;

/// What scope a route needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeRequirement {
    all: bool,
    scopes: Vec<String>,
}

impl ScopeRequirement {
    /// Every one of `scopes` must be granted.
    pub fn all<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Self {
        ScopeRequirement {
            all: true,
            scopes: scopes.into_iter().map(Into::into).collect(),
        }
    }

    /// At least one of `scopes` must be granted.
    pub fn any<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Self {
        ScopeRequirement {
            all: false,
            scopes: scopes.into_iter().map(Into::into).collect(),
        }
    }

    /// Checks a granted scope; the error names the needed scope for the challenge.
    pub fn check(&self, granted: Option<&Scope>) -> Result<(), GuardError> {
        let has = |s: &String| granted.is_some_and(|g| g.contains(s));
        let ok = if self.all {
            self.scopes.iter().all(has)
        } else {
            self.scopes.iter().any(has)
        };
        if ok {
            Ok(())
        } else {
            Err(GuardError::InsufficientScope {
                scope: self.scopes.join(" "),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_and_any() {
        let g: Scope = "a b".parse().unwrap();
        assert!(ScopeRequirement::all(["a", "b"]).check(Some(&g)).is_ok());
        assert!(ScopeRequirement::all(["a", "c"]).check(Some(&g)).is_err());
        assert!(ScopeRequirement::any(["c", "b"]).check(Some(&g)).is_ok());
        assert_eq!(
            ScopeRequirement::any(["c", "d"]).check(Some(&g)),
            Err(GuardError::InsufficientScope {
                scope: "c d".into()
            })
        );
        assert!(ScopeRequirement::any(["a"]).check(None).is_err());
    }
}
