//! Redis's `DEBUG DIGEST` and `DEBUG DIGEST-VALUE`: SHA-1 mixing of keys, values and expiry
//! flags, computed exactly as Redis's `debug.c` does, so a dataset in Amber and the same
//! dataset in Redis give the same hex string.

use crate::db::{Entry, Keyspace};
use crate::value::Value;

/// SHA-1 of `data` (RustCrypto's `sha1`, which uses the CPU's SHA instructions when it has
/// them).
pub fn sha1(data: &[u8]) -> [u8; 20] {
    use sha1::Digest as _;
    sha1::Sha1::digest(data).into()
}

/// A 20-byte digest being built with Redis's two operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Digest(pub [u8; 20]);

impl Digest {
    /// `xorDigest`: XOR the SHA-1 of `data` into the digest (order-independent).
    pub fn xor(&mut self, data: &[u8]) {
        for (byte, hashed) in self.0.iter_mut().zip(sha1(data)) {
            *byte ^= hashed;
        }
    }

    /// `mixDigest`: XOR in the SHA-1 of `data`, then replace the digest by its own SHA-1
    /// (order-dependent).
    pub fn mix(&mut self, data: &[u8]) {
        self.xor(data);
        self.0 = sha1(&self.0);
    }

    /// Lower-case hex, as `DEBUG DIGEST` replies it.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Redis's object type numbers, mixed into each value's digest.
fn type_code(value: &Value) -> u32 {
    match value {
        Value::Str(_) => 0,
        Value::Hash(_) => 4,
        Value::Set(_) => 2,
        Value::List(_) => 1,
        Value::Zset(_) => 3,
        Value::Stream(_) => 6,
    }
}

/// Mixes one value, and its expiry flag, into `digest` (Redis's `xorObjectDigest`).
fn mix_value(digest: &mut Digest, entry: &Entry) {
    digest.mix(&type_code(&entry.value).to_be_bytes());
    match &entry.value {
        Value::Str(value) => digest.mix(&value.as_bytes()),
        Value::Zset(zset) => {
            for (member, score) in zset.iter() {
                let mut element = Digest::default();
                element.mix(member);
                element.mix(amber_protocol::format_double(score).as_bytes());
                digest.xor(&element.0);
            }
        }
        Value::List(items) => items.iter().for_each(|item| digest.mix(item)),
        Value::Set(set) => {
            for member in set.members() {
                digest.xor(&member);
            }
        }
        Value::Hash(hash) => {
            for (field, value) in hash.iter() {
                let mut element = Digest::default();
                element.mix(field);
                element.mix(value);
                digest.xor(&element.0);
            }
        }
        Value::Stream(stream) => mix_stream(digest, &stream.log),
    }
    if entry.expire_at().is_some() {
        digest.xor(b"!!expire!!");
    }
}

/// Mixes a stream's live entries in order: `ms.seq`, then each field and value (consumer
/// groups are not part of Redis's digest).
fn mix_stream(digest: &mut Digest, log: &crate::StreamLog) {
    let mut text = Vec::new();
    for entry in log.range(crate::StreamId::MIN, crate::StreamId::MAX, false) {
        digest.mix(format!("{}.{}", entry.id.ms, entry.id.seq).as_bytes());
        for (field, value) in entry.pairs() {
            text.clear();
            field.write_to(&mut text);
            digest.mix(&text);
            text.clear();
            value.write_to(&mut text);
            digest.mix(&text);
        }
    }
}

/// The digest of one value with its expiry flag (`DEBUG DIGEST-VALUE`).
pub fn value_digest(entry: &Entry) -> Digest {
    let mut digest = Digest::default();
    mix_value(&mut digest, entry);
    digest
}

/// The digest of the whole dataset (`DEBUG DIGEST`): all zeros when it is empty. Each key's
/// digest (key, then value) is folded in with `xor`, so key order does not matter; databases
/// are told apart by mixing in their index.
pub fn dataset_digest(keyspace: &Keyspace) -> Digest {
    let mut total = Digest::default();
    for (index, db) in keyspace.dbs().iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        total.mix(&(index as u32).to_be_bytes());
        for (key, entry) in db.iter() {
            let mut digest = Digest::default();
            digest.mix(key);
            mix_value(&mut digest, entry);
            total.xor(&digest.0);
        }
    }
    total
}

/// [`dataset_digest`] built one key at a time, in any order and from any thread: what a
/// forkless snapshot's writer computes from the entries a capture hands it.
#[derive(Debug, Default, Clone)]
pub struct DigestBuilder {
    /// Per database, the XOR of its keys' hashed digests.
    dbs: std::collections::BTreeMap<usize, [u8; 20]>,
}

impl DigestBuilder {
    /// Folds in key `key` of database `db` with its entry.
    pub fn add(&mut self, db: usize, key: &[u8], entry: &Entry) {
        let mut digest = Digest::default();
        digest.mix(key);
        mix_value(&mut digest, entry);
        let folded = self.dbs.entry(db).or_default();
        for (byte, hashed) in folded.iter_mut().zip(sha1(&digest.0)) {
            *byte ^= hashed;
        }
    }

    /// The dataset's digest, as [`dataset_digest`] computes it: each database's index mixed
    /// in, in order, then its keys XORed in (which commutes, so the keys' order never
    /// mattered).
    pub fn finish(&self) -> Digest {
        let mut total = Digest::default();
        for (index, folded) in &self.dbs {
            total.mix(&(*index as u32).to_be_bytes());
            for (byte, key) in total.0.iter_mut().zip(folded) {
                *byte ^= key;
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: [u8; 20]) -> String {
        Digest(bytes).hex()
    }

    #[test]
    fn sha1_known_vectors() {
        assert_eq!(
            hex(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(hex(sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        let long = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(hex(sha1(long)), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
        assert_eq!(
            hex(sha1(&[b'a'; 1000])),
            "291e9a6c66994949b57ba5e650361e98fc36b1ba"
        );
    }

    #[test]
    fn a_digest_built_key_by_key_equals_the_dataset_digest() {
        let mut keyspace = Keyspace::new(4);
        for (db, count) in [(0usize, 50u32), (2, 7), (3, 1)] {
            for i in 0..count {
                let value =
                    crate::Value::Str(crate::StrValue::from_bytes(format!("v{i}").as_bytes()));
                let mut entry = Entry::new(value, 0);
                if i % 3 == 0 {
                    entry.set_expire_at(Some(1_000 + i64::from(i)));
                }
                keyspace.db(db).insert(format!("k{i}").as_bytes(), entry);
            }
        }
        let mut builder = DigestBuilder::default();
        let mut all: Vec<(usize, Vec<u8>, Entry)> = Vec::new();
        for (db, table) in keyspace.dbs().iter().enumerate() {
            for (key, entry) in table.iter() {
                all.push((db, key.to_vec(), entry.clone()));
            }
        }
        all.reverse();
        for (db, key, entry) in &all {
            builder.add(*db, key, entry);
        }
        assert_eq!(builder.finish(), dataset_digest(&keyspace));
        assert_eq!(DigestBuilder::default().finish(), Digest::default());
    }
}
