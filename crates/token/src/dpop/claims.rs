//! A proof's claims read in one pass over the decoded payload, the claims a proof has
//! borrowed where they lie, with `json::parse_object`'s refusals (not one object, trailing
//! data, a repeated member name at any depth, escapes included) and without building a
//! map of the whole set.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::Error;
use crate::json::{self, NameSeed, StrictValue};

const WHAT: &str = "claims are not a JSON object";

/// One claim as sent: a string (borrowed unless it had escapes), or any other value.
pub(super) enum Member<'a> {
    Str(Cow<'a, str>),
    Other(Value),
}

/// The claims [`super::verify_proof`] reads; `None` when absent (a `null` is present).
#[derive(Default)]
pub(super) struct ProofClaims<'a> {
    pub(super) jti: Option<Member<'a>>,
    pub(super) htm: Option<Member<'a>>,
    pub(super) htu: Option<Member<'a>>,
    pub(super) iat: Option<Member<'a>>,
    pub(super) nonce: Option<Member<'a>>,
    pub(super) ath: Option<Member<'a>>,
}

impl<'a> ProofClaims<'a> {
    /// Reads `payload`, refusing exactly what `json::parse_object` refuses.
    pub(super) fn parse(payload: &'a [u8]) -> Result<Self, Error> {
        let mut de = serde_json::Deserializer::from_slice(payload);
        let claims = de
            .deserialize_any(ClaimsVisitor)
            .map_err(|e| json::classify(&e, WHAT))?;
        de.end().map_err(|_| Error::Malformed(WHAT))?;
        Ok(claims)
    }
}

struct ClaimsVisitor;

impl<'de> Visitor<'de> for ClaimsVisitor {
    type Value = ProofClaims<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut claims = ProofClaims::default();
        // Names of members not read, to refuse their repetition too (allocated only
        // when a proof has such members).
        let mut others: BTreeSet<Cow<'de, str>> = BTreeSet::new();
        while let Some(name) = access.next_key_seed(NameSeed)? {
            // As `json::parse_object`: a repeated name is refused before its value is read.
            let slot = match name.as_ref() {
                "jti" => &mut claims.jti,
                "htm" => &mut claims.htm,
                "htu" => &mut claims.htu,
                "iat" => &mut claims.iat,
                "nonce" => &mut claims.nonce,
                "ath" => &mut claims.ath,
                _ => {
                    if !others.insert(name) {
                        return Err(de::Error::custom(json::DUPLICATE));
                    }
                    access.next_value_seed(StrictValue)?;
                    continue;
                }
            };
            if slot.is_some() {
                return Err(de::Error::custom(json::DUPLICATE));
            }
            *slot = Some(access.next_value_seed(MemberSeed)?);
        }
        Ok(claims)
    }
}

/// A claim's value: strings kept as they lie, anything else read by [`StrictValue`].
struct MemberSeed;

impl<'de> DeserializeSeed<'de> for MemberSeed {
    type Value = Member<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MemberSeed {
    type Value = Member<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Member::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Member::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Member::Str(Cow::Owned(v)))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        StrictValue.visit_bool(v).map(Member::Other)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        StrictValue.visit_i64(v).map(Member::Other)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        StrictValue.visit_u64(v).map(Member::Other)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        StrictValue.visit_f64(v).map(Member::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        StrictValue.visit_unit().map(Member::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        StrictValue.visit_seq(seq).map(Member::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, access: A) -> Result<Self::Value, A::Error> {
        StrictValue.visit_map(access).map(Member::Other)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const NAMES: [&str; 9] = [
        "jti",
        "htm",
        "htu",
        "iat",
        "nonce",
        "ath",
        "other",
        r"\u006ati",
        r"o\u0074her",
    ];
    const VALUES: [&str; 10] = [
        r#""x""#,
        r#""a\"b""#,
        "1",
        "-3",
        "1.5",
        "null",
        "true",
        r#"{"a":1,"a":2}"#,
        r#"[{"b":1},{"b":2,"b":3}]"#,
        r#"{"a":{"c":[1,"d"]}}"#,
    ];

    fn value(m: &Member<'_>) -> Value {
        match m {
            Member::Str(s) => Value::String(s.to_string()),
            Member::Other(v) => v.clone(),
        }
    }

    /// Same refusal as `json::parse_object`, and on success the same claims.
    fn agrees(text: &str) {
        let map = json::parse_object(text.as_bytes(), WHAT);
        let claims = ProofClaims::parse(text.as_bytes());
        match (map, claims) {
            (Ok(map), Ok(c)) => {
                let read = [
                    ("jti", &c.jti),
                    ("htm", &c.htm),
                    ("htu", &c.htu),
                    ("iat", &c.iat),
                    ("nonce", &c.nonce),
                    ("ath", &c.ath),
                ];
                for (name, member) in read {
                    assert_eq!(map.get(name).cloned(), member.as_ref().map(value), "{text}");
                }
            }
            (Err(a), Err(b)) => assert_eq!(a, b, "{text}"),
            (a, b) => panic!("{text}: map {:?}, claims {:?}", a.err(), b.err()),
        }
    }

    #[test]
    fn refuses_what_parse_object_refuses() {
        for text in [
            r#"{"jti":"a","jti":"b"}"#,
            r#"{"jti":"a","\u006ati":"b"}"#,
            r#"{"x":1,"x":2}"#,
            r#"{"x":1,"\u0078":2}"#,
            r#"{"jti":{"a":1,"a":2}}"#,
            r#"{"x":[{"a":1,"a":2}]}"#,
            r#"{"jti":"a"} {}"#,
            r#"{"jti":"a"}x"#,
            r#"{"jti":"a","jti":"b""#,
            r#"["jti"]"#,
            r#""jti""#,
            "",
            "{",
            "null",
            " {\"jti\":\"\\u00e9\",\"iat\":1e3,\"nonce\":null}\r\n",
            r#"{"iat":18446744073709551616,"htm":"G\u0045T"}"#,
        ] {
            agrees(text);
        }
    }

    proptest! {
        #[test]
        fn agrees_with_parse_object(
            members in prop::collection::vec((0..NAMES.len(), 0..VALUES.len()), 0..7),
            tail in prop::sample::select(vec!["", " ", "}", ",", " {}", "x"]),
        ) {
            let body: Vec<String> = members
                .iter()
                .map(|&(n, v)| format!(r#""{}":{}"#, NAMES[n], VALUES[v]))
                .collect();
            agrees(&format!("{{{}}}{tail}", body.join(",")));
        }
    }
}
