//! JSON objects parsed strictly: a repeated member name anywhere is an error.
//!
//! `serde_json` keeps the last of duplicate members silently; two parsers that disagree on
//! which one wins are a classic JWT bypass, so header, claims and JWKs go through here.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::Error;

pub(crate) const DUPLICATE: &str = "tessera: duplicate member";

/// Parses `bytes` as one JSON object, refusing duplicate member names at any depth.
pub(crate) fn parse_object(bytes: &[u8], what: &'static str) -> Result<Map<String, Value>, Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue
        .deserialize(&mut de)
        .map_err(|e| classify(&e, what))?;
    de.end().map_err(|_| Error::Malformed(what))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(Error::Malformed(what)),
    }
}

pub(crate) fn classify(e: &serde_json::Error, what: &'static str) -> Error {
    if e.to_string().starts_with(DUPLICATE) {
        Error::DuplicateMember
    } else {
        Error::Malformed(what)
    }
}

/// A JSON value with duplicate member names refused at any depth.
pub(crate) struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            // One lookup per member: the vacant slot is filled once the value is parsed.
            let serde_json::map::Entry::Vacant(slot) = map.entry(key) else {
                return Err(de::Error::custom(DUPLICATE));
            };
            slot.insert(access.next_value_seed(StrictValue)?);
        }
        Ok(Value::Object(map))
    }
}

/// A member name, borrowed unless it had escapes.
pub(crate) struct NameSeed;

impl<'de> DeserializeSeed<'de> for NameSeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for NameSeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_refused_at_any_depth() {
        assert_eq!(
            parse_object(br#"{"a":1,"a":2}"#, "x"),
            Err(Error::DuplicateMember)
        );
        assert_eq!(
            parse_object(br#"{"a":{"b":1,"b":1}}"#, "x"),
            Err(Error::DuplicateMember)
        );
        assert_eq!(
            parse_object(br#"{"a":[{"b":1,"b":1}]}"#, "x"),
            Err(Error::DuplicateMember)
        );
        // The same name spelled with an escape is the same member.
        assert_eq!(
            parse_object(br#"{"alg":1,"\u0061lg":2}"#, "x"),
            Err(Error::DuplicateMember)
        );
    }

    #[test]
    fn non_objects_and_trailing_data_refused() {
        assert_eq!(parse_object(b"[1]", "x"), Err(Error::Malformed("x")));
        assert_eq!(parse_object(b"{} {}", "x"), Err(Error::Malformed("x")));
        assert_eq!(parse_object(b"{", "x"), Err(Error::Malformed("x")));
        assert!(parse_object(b" {\"a\":{\"b\":[1,2]}}\r\n", "x").is_ok());
    }
}
