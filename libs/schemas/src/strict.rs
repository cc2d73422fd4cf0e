//! Strict field decoders for request bodies: each field arrives as the MessagePack type
//! docs/protocol.md §1 gives it, or the body is refused (`bad_request`).
//!
//! serde's own visitors are lenient in ways a wire contract must not be: a `String`
//! accepts `bin` holding UTF-8 (its visitor takes bytes), a `serde_bytes` buffer accepts a
//! `str`, and a derived struct accepts an array of its fields in declaration order (rmp-serde
//! hands an array to the visitor's `visit_seq`). A peer that relies on any of those works
//! with this build only, and a reader in another language would refuse what we accepted.
//! Used with `#[serde(deserialize_with = "...")]`, so the structs keep their plain `String`,
//! `Vec<u8>` and struct fields; serialising is unchanged (we always write `str`, `bin` and
//! maps). The top-level body is checked for a map by [`crate::codec::decode`] itself.
//!
//! One limit is rmp-serde's, not ours: a `str` whose bytes are not UTF-8 is handed to the
//! visitor as bytes, so [`bytes`] cannot tell it from a `bin` (such a `str` is malformed
//! MessagePack; every `str` field refuses it).

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Upper bound on capacity reserved from a length the peer announced (the body itself is
/// at most 64 KiB, so a longer list fails while being read, never while reserving).
const MAX_PREALLOCATE: usize = 256;

struct Text;

impl Visitor<'_> for Text {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string (MessagePack str)")
    }

    // `visit_borrowed_str` and `visit_string` forward here; `visit_bytes` (a `bin`) keeps
    // serde's default: an invalid-type error.
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
}

/// A `String` field that must be a `str` (not `bin`, not anything else).
pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_string(Text)
}

struct OptText;

impl<'de> Visitor<'de> for OptText {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string (MessagePack str) or nil")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        text(d).map(Some)
    }
}

/// An `Option<String>` field: `str` or `nil` (absent: use it with `#[serde(default)]`).
pub fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_option(OptText)
}

struct Bytes;

impl Visitor<'_> for Bytes {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("bytes (MessagePack bin)")
    }

    // `visit_borrowed_bytes` forwards here; `visit_str` (a `str`) keeps serde's default.
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }
}

/// A `Vec<u8>` field that must be a `bin` (not `str`, not an array of integers). Write it
/// with `serialize_with = "serde_bytes::serialize"`.
pub fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    d.deserialize_byte_buf(Bytes)
}

struct TextMap;

impl<'de> Visitor<'de> for TextMap {
    type Value = BTreeMap<String, String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of strings to strings (MessagePack str)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some((k, v)) = map.next_entry_seed(TextSeed, TextSeed)? {
            out.insert(k, v);
        }
        Ok(out)
    }
}

struct TextSeed;

impl<'de> DeserializeSeed<'de> for TextSeed {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        text(d)
    }
}

/// A `BTreeMap<String, String>` field: a map whose keys and values are all `str`.
pub fn text_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    d.deserialize_map(TextMap)
}

struct MapOnly<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for MapOnly<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map with named fields")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        // The struct reads its fields from the map itself: nothing is buffered or copied.
        T::deserialize(de::value::MapAccessDeserializer::new(map))
    }
}

/// A struct-typed field that must be a map with named fields, not an array of its fields.
pub fn map<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_map(MapOnly(PhantomData))
}

struct MapSeed<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for MapSeed<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        map(d)
    }
}

struct Maps<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for Maps<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of maps with named fields")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_PREALLOCATE));
        while let Some(v) = seq.next_element_seed(MapSeed(PhantomData))? {
            out.push(v);
        }
        Ok(out)
    }
}

/// A `Vec` of structs: an array whose every element is a map with named fields.
pub fn maps<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    d.deserialize_seq(Maps(PhantomData))
}

#[cfg(test)]
mod tests;
