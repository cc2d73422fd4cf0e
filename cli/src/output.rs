//! Printing replies: JSON for structured ones, MessagePack shown as JSON.

/// MessagePack as JSON for display: binary shown as text when it is UTF-8.
pub fn to_json(v: rmpv::Value) -> serde_json::Value {
    use rmpv::Value as M;
    use serde_json::Value as J;
    match v {
        M::Nil => J::Null,
        M::Boolean(b) => J::Bool(b),
        M::Integer(i) => i
            .as_i64()
            .map(J::from)
            .or_else(|| i.as_u64().map(J::from))
            .unwrap_or(J::Null),
        M::F32(f) => J::from(f64::from(f)),
        M::F64(f) => J::from(f),
        M::String(s) => J::String(s.into_str().unwrap_or_default()),
        M::Binary(b) => match String::from_utf8(b) {
            Ok(s) => J::String(s),
            Err(e) => J::Array(e.into_bytes().into_iter().map(J::from).collect()),
        },
        M::Array(a) => J::Array(a.into_iter().map(to_json).collect()),
        M::Map(m) => J::Object(
            m.into_iter()
                .map(|(k, v)| {
                    (
                        k.as_str().map_or_else(|| k.to_string(), str::to_owned),
                        to_json(v),
                    )
                })
                .collect(),
        ),
        M::Ext(_, b) => J::Array(b.into_iter().map(J::from).collect()),
    }
}

pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
