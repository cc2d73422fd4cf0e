//! What Redis holds, for the soak: memory (`INFO memory`), the key count and whether keys
//! expire, and the memory by key kind (a SCAN over every key, `MEMORY USAGE` of a sample
//! of each kind, times its count).
//!
//! Kinds are told apart by a part of the key name (`:token:`, `:account:`, `:idem:`,
//! `pending`, `:nonce:`), not by the whole layout, so that a change of the key layout
//! (a prefix, a hash tag) keeps them apart without a change here.

use redis::aio::ConnectionManager;
use serde::Serialize;

use super::probe::{info, info_field};

/// Keys checked for an expiry at each sample (SCAN batches); enough to catch a key kind
/// that never expires, as every kind is written for every token.
pub const TTL_SAMPLE: usize = 2_000;

/// Keys of each kind whose `MEMORY USAGE` is read.
pub const USAGE_SAMPLE: usize = 200;

/// The kinds, in the order a key is matched against them, and the part that marks each.
const KINDS: [(&str, &str); 5] = [
    ("idempotent replies", ":idem:"),
    ("token records", ":token:"),
    ("account indexes", ":account:"),
    ("pending set", "pending"),
    ("nonces", ":nonce:"),
];
const OTHER: &str = "other";

/// `INFO memory`'s `used_memory` and `used_memory_rss`, in bytes.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct RedisMemory {
    pub used: u64,
    pub rss: u64,
}

pub async fn memory(redis: &mut ConnectionManager) -> anyhow::Result<RedisMemory> {
    let text = info(redis, "memory")
        .await
        .ok_or_else(|| anyhow::anyhow!("redis INFO memory did not answer"))?;
    Ok(RedisMemory {
        used: info_field(&text, "used_memory").unwrap_or(0),
        rss: info_field(&text, "used_memory_rss").unwrap_or(0),
    })
}

/// One kind of key at the end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct KindUsage {
    pub kind: &'static str,
    pub keys: u64,
    /// How many of them `MEMORY USAGE` was read for.
    pub sampled: usize,
    pub mean_bytes: f64,
    /// `keys x mean_bytes`.
    pub estimated_bytes: f64,
}

fn kind_of(key: &[u8]) -> usize {
    let key = String::from_utf8_lossy(key);
    KINDS
        .iter()
        .position(|(_, part)| key.contains(part))
        .unwrap_or(KINDS.len())
}

/// Every key counted by kind, [`USAGE_SAMPLE`] of each measured.
pub async fn by_kind(redis: &mut ConnectionManager) -> anyhow::Result<Vec<KindUsage>> {
    let n = KINDS.len() + 1;
    let mut counts = vec![0u64; n];
    let mut samples: Vec<Vec<Vec<u8>>> = vec![Vec::new(); n];
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(redis)
            .await?;
        for k in keys {
            let i = kind_of(&k);
            counts[i] += 1;
            if samples[i].len() < USAGE_SAMPLE {
                samples[i].push(k);
            }
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let mut out = Vec::new();
    for (i, keys) in samples.iter().enumerate() {
        if counts[i] == 0 {
            continue;
        }
        let mut pipe = redis::pipe();
        for k in keys {
            pipe.cmd("MEMORY").arg("USAGE").arg(k);
        }
        // A key that expired since the scan answers nil.
        let usage: Vec<Option<u64>> = pipe.query_async(redis).await?;
        let found: Vec<u64> = usage.into_iter().flatten().collect();
        let mean = if found.is_empty() {
            0.0
        } else {
            found.iter().sum::<u64>() as f64 / found.len() as f64
        };
        out.push(KindUsage {
            kind: KINDS.get(i).map_or(OTHER, |(name, _)| name),
            keys: counts[i],
            sampled: found.len(),
            mean_bytes: mean,
            estimated_bytes: mean * counts[i] as f64,
        });
    }
    Ok(out)
}

/// The key count, and how many of up to [`TTL_SAMPLE`] scanned keys have no expiry.
pub async fn keys_and_expiry(redis: &mut ConnectionManager) -> anyhow::Result<(u64, u64)> {
    let total: u64 = redis::cmd("DBSIZE").query_async(redis).await?;
    let mut cursor = 0u64;
    let mut checked = 0usize;
    let mut without_expiry = 0u64;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(500)
            .query_async(redis)
            .await?;
        if !keys.is_empty() {
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("PTTL").arg(k);
            }
            let ttls: Vec<i64> = pipe.query_async(redis).await?;
            // -1: no expiry; -2: gone since the scan (expired), which is fine.
            without_expiry += ttls.iter().filter(|&&t| t == -1).count() as u64;
            checked += keys.len();
        }
        cursor = next;
        if cursor == 0 || checked >= TTL_SAMPLE {
            return Ok((total, without_expiry));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_told_apart_by_a_part_of_the_name_whatever_the_layout() {
        let kind = |k: &str| KINDS.get(kind_of(k.as_bytes())).map_or(OTHER, |(n, _)| *n);
        assert_eq!(kind("tessera:token:abc"), "token records");
        assert_eq!(kind("tessera:{7}:token:abc"), "token records");
        assert_eq!(kind("tessera:account:a1:tokens"), "account indexes");
        assert_eq!(kind("tessera:{7}:account:a1:tokens"), "account indexes");
        assert_eq!(kind("tessera:idem:0af3"), "idempotent replies");
        assert_eq!(kind("tessera:pending"), "pending set");
        assert_eq!(kind("tessera:{3}:pending"), "pending set");
        assert_eq!(kind("tessera:nonce:app:n1"), "nonces");
        assert_eq!(kind("floor:set"), OTHER);
    }
}
