//! The distribution stream split into shards: which stream and subject carry one plugin
//! server's distributions when `TESSERA_DIST_SHARDS` is N.
//!
//! At high issuance rates the one stream's Raft leader is the busiest member of the NATS
//! cluster (every publish is acknowledged by it), so the distribution may be spread over N
//! streams, each with a leader of its own. A plugin server id belongs to shard
//! [`dist_shard`]`(id, N)`; shard 0 is the original stream and subjects (`<P>.dist.<id>` in
//! `<P>_DIST`), so N = 1 is exactly the single-stream layout, and shard `k` > 0 is
//! `<P>.dist-<k>.<id>` in `<P>_DIST_<k>`. The subjects of different shards never overlap
//! (a stream's subjects may not overlap another's), so the streams of two layouts can live
//! side by side while a change of N drains (docs/reliability.md).
//!
//! Only the broker computes a shard: it publishes there and answers
//! `distribution.open.<id>` with a consumer on the right stream, so plugin servers never
//! need N. The function is in docs/protocol.md ("Distribution") for other brokers.

use crate::Subjects;

/// The most shards a deployment may use. The bus configuration (nats.conf) names every
/// shard stream the broker may create and plugin servers may pull from, so the bound is
/// fixed there rather than following the setting: a nats.conf rendered before N changed
/// still allows every stream.
pub const MAX_DIST_SHARDS: u32 = 8;

/// Key of the distribution layout in the metadata of shard 0's stream (`<P>_DIST`): the
/// number of shards the brokers publish to. Absent on a stream made before shards existed,
/// which means 1. Brokers refuse to start with another N (`tessera dist-shards set` changes
/// it, only while no broker runs), so all replicas always agree.
pub const DIST_SHARDS_METADATA: &str = "tessera_dist_shards";

/// The shard of plugin server `server_id` among `shards` (1 ..= [`MAX_DIST_SHARDS`]):
/// 64-bit FNV-1a of the id's UTF-8 bytes, modulo `shards`. Stable across builds and
/// platforms (std's hasher is neither), and spreads short ids well enough for a handful of
/// shards.
pub fn dist_shard(server_id: &str, shards: u32) -> u32 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = server_id
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    (hash % u64::from(shards.max(1))) as u32
}

impl Subjects {
    /// Shard `shard`'s subject for plugin server `server_id` (shard 0: [`Subjects::dist`]).
    pub fn dist_in(&self, shard: u32, server_id: &str) -> String {
        match shard {
            0 => self.dist(server_id),
            k => format!("{}.dist-{k}.{server_id}", self.prefix()),
        }
    }
    /// Every subject of shard `shard` (its stream's subjects; shard 0: [`Subjects::dist_all`]).
    pub fn dist_all_in(&self, shard: u32) -> String {
        match shard {
            0 => self.dist_all(),
            k => format!("{}.dist-{k}.>", self.prefix()),
        }
    }
    /// Shard `shard`'s stream (shard 0: [`Subjects::dist_stream`]).
    pub fn dist_stream_in(&self, shard: u32) -> String {
        match shard {
            0 => self.dist_stream(),
            k => format!("{}_{k}", self.dist_stream()),
        }
    }
    /// Every stream a shard may live in, up to [`MAX_DIST_SHARDS`] (for permissions).
    pub fn dist_streams_possible(&self) -> Vec<String> {
        (0..MAX_DIST_SHARDS)
            .map(|k| self.dist_stream_in(k))
            .collect()
    }
    /// Where plugin server `server_id`'s distributions go with `shards` shards:
    /// (stream, subject).
    pub fn dist_route(&self, server_id: &str, shards: u32) -> (String, String) {
        let k = dist_shard(server_id, shards);
        (self.dist_stream_in(k), self.dist_in(k, server_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shard_is_the_single_stream_layout() {
        let s = Subjects::default();
        for id in ["ps1", "ps2", "weather-eu", "x"] {
            assert_eq!(dist_shard(id, 1), 0);
            assert_eq!(s.dist_route(id, 1), (s.dist_stream(), s.dist(id)), "{id}");
        }
    }

    #[test]
    fn the_shard_function_is_fixed() {
        // These values are in docs/protocol.md: other brokers must compute the same.
        assert_eq!(dist_shard("", 3), (0xcbf2_9ce4_8422_2325u64 % 3) as u32);
        let got: Vec<u32> = ["ps1", "ps2", "ps3", "ps4", "ps5", "ps6"]
            .iter()
            .map(|id| dist_shard(id, 3))
            .collect();
        // Computed independently (FNV-1a 64 in Python), as another implementation would.
        assert_eq!(got, [2, 0, 1, 0, 1, 2]);
        assert!(
            (0..100)
                .map(|i| dist_shard(&format!("server-{i}"), 8))
                .all(|k| k < 8)
        );
    }

    #[test]
    fn shard_names_never_overlap() {
        let s = Subjects::new("acme.dev");
        assert_eq!(s.dist_in(2, "ps1"), "acme.dev.dist-2.ps1");
        assert_eq!(s.dist_all_in(2), "acme.dev.dist-2.>");
        assert_eq!(s.dist_stream_in(2), "ACME_DEV_DIST_2");
        assert_eq!(s.dist_stream_in(0), "ACME_DEV_DIST");
        let all = s.dist_streams_possible();
        assert_eq!(all.len(), MAX_DIST_SHARDS as usize);
        for (i, a) in (0..MAX_DIST_SHARDS).map(|k| s.dist_all_in(k)).enumerate() {
            for b in (0..MAX_DIST_SHARDS).map(|k| s.dist_all_in(k)).skip(i + 1) {
                assert_ne!(a.split('.').nth(2), b.split('.').nth(2), "{a} {b}");
            }
        }
    }
}
