//! A token's claims read in one pass over the decoded payload: each member goes straight
//! to its [`Claims`] field (registered names) or into `extra`, with no map of the whole
//! set built first. The answer is the one `json::parse_object` then `Claims::from_object`
//! give for the same bytes, refusals included (property-tested below).

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;

use super::{Claims, Registered};
use crate::Error;
use crate::json::{self, NameSeed, StrictValue};

const WHAT: &str = "claims are not a JSON object";

/// Reads `payload` as a token's claims set.
pub(crate) fn claims(payload: &[u8]) -> Result<Claims, Error> {
    let mut de = serde_json::Deserializer::from_slice(payload);
    let read = de
        .deserialize_any(ClaimsVisitor)
        .map_err(|e| json::classify(&e, WHAT))?;
    de.end().map_err(|_| Error::Malformed(WHAT))?;
    match read.wrong_type {
        // The refusal names the wrong-typed claim of least name (in name order, as
        // `from_object` walked a sorted map before this reader), not the first one sent.
        Some(claim) => Err(Error::InvalidClaim(claim.name())),
        None => Ok(read.claims),
    }
}

struct Read {
    claims: Claims,
    /// The registered claim of least name whose value was refused. Kept rather than
    /// returned at once, so a document that is not strict JSON (a repeated name later
    /// on, trailing data) is refused as such first, as `parse_object` would.
    wrong_type: Option<Registered>,
}

struct ClaimsVisitor;

impl<'de> Visitor<'de> for ClaimsVisitor {
    type Value = Read;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    /// Not an object, but read to its end as `json::parse_object` reads it, so a
    /// repeated member inside is refused as such.
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Read, A::Error> {
        StrictValue.visit_seq(seq)?;
        Err(de::Error::custom("not an object"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Read, A::Error> {
        let mut read = Read {
            claims: Claims::default(),
            wrong_type: None,
        };
        let mut seen = [false; Registered::ALL.len()];
        while let Some(name) = access.next_key_seed(NameSeed)? {
            // As `json::parse_object`: a repeated name is refused before its value is read.
            let Some(claim) = Registered::named(&name) else {
                let Entry::Vacant(slot) = read.claims.extra.entry(name.into_owned()) else {
                    return Err(de::Error::custom(json::DUPLICATE));
                };
                slot.insert(access.next_value_seed(StrictValue)?);
                continue;
            };
            let seen = &mut seen[claim as usize];
            if *seen {
                return Err(de::Error::custom(json::DUPLICATE));
            }
            *seen = true;
            let value = access.next_value_seed(StrictValue)?;
            if read.claims.set(claim, value).is_err()
                && read.wrong_type.is_none_or(|w| claim.name() < w.name())
            {
                read.wrong_type = Some(claim);
            }
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Registered names (some escaped), names that are not, and one that differs from a
    /// registered one only in case.
    const NAMES: [&str; 14] = [
        "iss",
        "aud",
        "exp",
        "scope",
        "cnf",
        "jti",
        "sid",
        "client_id",
        "auth_time",
        r"\u0065xp",
        "other",
        r"o\u0074her",
        "Exp",
        "acr",
    ];
    const VALUES: [&str; 16] = [
        r#""x""#,
        r#""a\"b""#,
        r#""notes:read notes:write""#,
        r#""bad  scope""#,
        "1800000000",
        "-3",
        "1.5",
        "1e300",
        "18446744073709551616",
        "null",
        "true",
        r#"["a","b"]"#,
        r#"["a",1]"#,
        r#"{"jkt":"t","x":[1]}"#,
        r#"{"a":1,"a":2}"#,
        r#"[{"b":1},{"b":2,"b":3}]"#,
    ];

    /// The same answer as the map it replaces, refusals included.
    fn agrees(text: &str) {
        let by_map = json::parse_object(text.as_bytes(), WHAT).and_then(Claims::from_object);
        assert_eq!(claims(text.as_bytes()), by_map, "{text}");
    }

    #[test]
    fn reads_what_the_map_reads() {
        for text in [
            r#"{"iss":"a","iss":"b"}"#,
            r#"{"exp":1,"\u0065xp":2}"#,
            r#"{"x":1,"\u0078":2}"#,
            r#"{"cnf":{"jkt":"a","jkt":"b"}}"#,
            r#"{"x":[{"a":1,"a":2}]}"#,
            r#"{"exp":"soon","aud":7}"#,
            r#"{"sub":1,"exp":1,"sub":2}"#,
            r#"{"sub":1} {}"#,
            r#"{"sub":"a"}x"#,
            r#"{"sub":"a","sub":"b""#,
            r#"["sub"]"#,
            r#"[{"a":1,"a":2}]"#,
            r#"[{"a":1,"a":2}"#,
            r#"[1,{"sub":"a","sub":"b"}] {}"#,
            r#"[]"#,
            r#""sub""#,
            "",
            "{",
            "null",
            " {\"sub\":\"\\u00e9\",\"exp\":1e3,\"nonce\":null}\r\n",
            r#"{"scope":"a b a","aud":["x","y"],"cnf":{"jkt":"t"},"extra":{"n":[1]}}"#,
        ] {
            agrees(text);
        }
    }

    proptest! {
        #[test]
        fn agrees_with_the_map(
            members in prop::collection::vec((0..NAMES.len(), 0..VALUES.len()), 0..8),
            tail in prop::sample::select(vec!["", " ", "}", ",", " {}", "x"]),
            in_array: bool,
        ) {
            let body: Vec<String> = members
                .iter()
                .map(|&(n, v)| format!(r#""{}":{}"#, NAMES[n], VALUES[v]))
                .collect();
            let object = format!("{{{}}}", body.join(","));
            if in_array {
                agrees(&format!("[{object}]{tail}"));
            } else {
                agrees(&format!("{object}{tail}"));
            }
        }
    }
}
