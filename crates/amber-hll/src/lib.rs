//! Redis's HyperLogLog, byte for byte.
//!
//! A HyperLogLog is an ordinary string value that starts with a 16-byte header: `HYLL`, an
//! encoding byte (0 dense, 1 sparse), three reserved bytes and a cached cardinality (8 bytes,
//! little endian, its top bit set when stale). 16384 registers follow, either packed 6 bits
//! each (dense, always 12304 bytes in all) or as run-length opcodes (sparse, promoted to dense
//! past `hll-sparse-max-bytes` or when a register exceeds 32).
//!
//! Elements are hashed with MurmurHash64A (seed `0xadc83b19`), registers are updated, split
//! and merged as Redis 7.0 does, and the estimate is Ertl's, computed with Redis's own
//! floating-point steps. Values therefore move between Amber and Redis through RDB files,
//! `DUMP`/`RESTORE` and replication unchanged, and count the same on both.
//!
//! The functions work on the value's bytes; a caller checks a value with [`check`] before
//! it passes it to the others.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod dense;
mod estimate;
mod murmur;
mod sparse;

/// The number of registers (`2^14`).
pub const REGISTERS: usize = 1 << P;
/// The size of the header before the registers.
pub const HDR_SIZE: usize = 16;
/// The size of a dense value, header included.
pub const DENSE_SIZE: usize = HDR_SIZE + DENSE_REGISTER_BYTES;
/// Redis's default `hll-sparse-max-bytes`.
pub const DEFAULT_SPARSE_MAX_BYTES: usize = 3000;

/// Bits of the hash that choose the register.
const P: usize = 14;
/// Bits of the hash left for the run of zeros.
const Q: usize = 64 - P;
const REGISTER_MAX: u8 = 63;
const DENSE_REGISTER_BYTES: usize = (REGISTERS * 6).div_ceil(8);
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
const SEED: u64 = 0xadc8_3b19;

/// Why a value cannot be used as a HyperLogLog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HllError {
    /// The string is not a HyperLogLog at all (bad magic, encoding or dense length).
    #[error("Key is not a valid HyperLogLog string value.")]
    NotHll,
    /// The header is valid but the registers are not (a sparse form that does not cover
    /// exactly 16384 registers).
    #[error("Corrupted HLL object detected")]
    Corrupt,
}

/// How a HyperLogLog's registers are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// 6 bits per register.
    Dense,
    /// Run-length opcodes.
    Sparse,
}

impl Encoding {
    /// The name `PFDEBUG ENCODING` prints.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Dense => "dense",
            Encoding::Sparse => "sparse",
        }
    }
}

/// A new empty HyperLogLog, in the sparse encoding, as `PFADD` creates it.
pub fn new() -> Vec<u8> {
    let mut hll = Vec::with_capacity(HDR_SIZE + 2);
    hll.extend_from_slice(b"HYLL");
    hll.push(SPARSE);
    hll.extend_from_slice(&[0; 11]);
    hll.extend_from_slice(&sparse::empty_ops());
    hll
}

/// Checks the header as Redis does before using a string as a HyperLogLog.
pub fn check(value: &[u8]) -> Result<Encoding, HllError> {
    if value.len() < HDR_SIZE || &value[..4] != b"HYLL" {
        return Err(HllError::NotHll);
    }
    match value[4] {
        DENSE if value.len() == DENSE_SIZE => Ok(Encoding::Dense),
        SPARSE => Ok(Encoding::Sparse),
        _ => Err(HllError::NotHll),
    }
}

fn encoding(hll: &[u8]) -> Encoding {
    if hll[4] == DENSE {
        Encoding::Dense
    } else {
        Encoding::Sparse
    }
}

/// The register an element updates and the value it offers (the length of its hash's run
/// of zeros, plus one).
fn register_and_count(element: &[u8]) -> (usize, u8) {
    let hash = murmur::murmur64a(element, SEED);
    let index = (hash as usize) & (REGISTERS - 1);
    // The marker bit bounds the count at Q + 1.
    let rest = (hash >> P) | (1 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// Marks the cached cardinality stale.
pub fn invalidate_cache(hll: &mut [u8]) {
    hll[15] |= 0x80;
}

/// Adds `element`; true if a register changed. A sparse value grows by opcodes, and turns
/// dense when it would pass `sparse_max_bytes` or needs a register above 32. The cached
/// cardinality is left to the caller ([`invalidate_cache`]), as in Redis.
pub fn add(hll: &mut Vec<u8>, element: &[u8], sparse_max_bytes: usize) -> Result<bool, HllError> {
    let (index, count) = register_and_count(element);
    raise(hll, index, count, sparse_max_bytes)
}

fn raise(
    hll: &mut Vec<u8>,
    index: usize,
    count: u8,
    sparse_max_bytes: usize,
) -> Result<bool, HllError> {
    if encoding(hll) == Encoding::Dense {
        return Ok(dense::raise(&mut hll[HDR_SIZE..], index, count));
    }
    let outcome = sparse::raise(hll, index, count, sparse_max_bytes)?;
    match outcome {
        sparse::SetOutcome::Unchanged => Ok(false),
        sparse::SetOutcome::Raised => {
            invalidate_cache(hll);
            Ok(true)
        }
        sparse::SetOutcome::Promote => {
            *hll = sparse::to_dense(hll)?;
            Ok(dense::raise(&mut hll[HDR_SIZE..], index, count))
        }
    }
}

/// The cached cardinality, if it is current.
pub fn cached_cardinality(hll: &[u8]) -> Option<u64> {
    let mut card = [0u8; 8];
    card.copy_from_slice(&hll[8..16]);
    (hll[15] & 0x80 == 0).then(|| u64::from_le_bytes(card))
}

/// The estimated cardinality, from the registers (the cache is not consulted).
pub fn cardinality(hll: &[u8]) -> Result<u64, HllError> {
    let mut histogram = [0u32; 64];
    match encoding(hll) {
        Encoding::Dense => dense::histogram(&hll[HDR_SIZE..], &mut histogram),
        Encoding::Sparse => {
            if !sparse::histogram(hll, &mut histogram) {
                return Err(HllError::Corrupt);
            }
        }
    }
    Ok(estimate::cardinality(&histogram))
}

/// `PFCOUNT` of one key: the cached cardinality, or a fresh estimate stored in the cache.
/// The flag says whether the value changed (Redis then counts it as a write).
pub fn count(hll: &mut [u8]) -> Result<(u64, bool), HllError> {
    if let Some(card) = cached_cardinality(hll) {
        return Ok((card, false));
    }
    let card = cardinality(hll)?;
    hll[8..16].copy_from_slice(&card.to_le_bytes());
    Ok((card, true))
}

/// Converts a sparse value to dense; true if it was sparse.
pub fn to_dense(hll: &mut Vec<u8>) -> Result<bool, HllError> {
    if encoding(hll) == Encoding::Dense {
        return Ok(false);
    }
    *hll = sparse::to_dense(hll)?;
    Ok(true)
}

/// The encoding of a checked value.
pub fn encoding_of(hll: &[u8]) -> Encoding {
    encoding(hll)
}

/// `PFDEBUG DECODE`: the sparse opcodes as `z:len`, `Z:len` and `v:value,len`, or `None`
/// for a dense value.
pub fn decode_sparse(hll: &[u8]) -> Option<String> {
    if encoding(hll) != Encoding::Sparse {
        return None;
    }
    let words: Vec<String> = sparse::ops(hll)
        .map(|op| match op {
            sparse::Op::Zero(len) => format!("z:{len}"),
            sparse::Op::XZero(len) => format!("Z:{len}"),
            sparse::Op::Val { value, len } => format!("v:{value},{len}"),
        })
        .collect();
    Some(words.join(" "))
}

/// One byte per register: what `PFCOUNT` of several keys and `PFMERGE` work on.
#[derive(Clone)]
pub struct Registers(Box<[u8; REGISTERS]>);

impl Default for Registers {
    fn default() -> Self {
        Registers(Box::new([0; REGISTERS]))
    }
}

impl Registers {
    /// All registers zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The registers of a checked value.
    pub fn of(hll: &[u8]) -> Result<Self, HllError> {
        let mut registers = Self::new();
        registers.merge(hll)?;
        Ok(registers)
    }

    /// Raises each register to the value's where that is higher.
    pub fn merge(&mut self, hll: &[u8]) -> Result<(), HllError> {
        match encoding(hll) {
            Encoding::Dense => {
                dense::merge_into(&hll[HDR_SIZE..], &mut self.0);
                Ok(())
            }
            Encoding::Sparse => {
                let max = &mut self.0;
                sparse::for_each_set(hll, |index, value| {
                    max[index] = max[index].max(value);
                })
            }
        }
    }

    /// The register values, in order.
    pub fn values(&self) -> &[u8; REGISTERS] {
        &self.0
    }

    /// The estimated cardinality of these registers.
    pub fn cardinality(&self) -> u64 {
        let mut histogram = [0u32; 64];
        for &value in self.0.iter() {
            histogram[usize::from(value & 63)] += 1;
        }
        estimate::cardinality(&histogram)
    }

    /// Raises `hll`'s registers to these (`PFMERGE` into an existing or new value), and
    /// marks its cache stale. A sparse target turns dense first when `dense` is set (one of
    /// the sources was dense), or when it outgrows `sparse_max_bytes` on the way.
    pub fn store_into(
        &self,
        hll: &mut Vec<u8>,
        dense: bool,
        sparse_max_bytes: usize,
    ) -> Result<(), HllError> {
        if dense {
            to_dense(hll)?;
        }
        for (index, &value) in self.0.iter().enumerate() {
            if value != 0 {
                // Redis ignores a failure here: the target was checked as a source.
                let _ = raise(hll, index, value, sparse_max_bytes);
            }
        }
        invalidate_cache(hll);
        Ok(())
    }
}

/// `PFSELFTEST`: checks register access and the estimate's error against 1.04/sqrt(m) for
/// dense and sparse values side by side, as Redis's self test does. `seed` varies the
/// elements.
pub fn self_test(seed: u64, sparse_max_bytes: usize) -> Result<(), String> {
    let mut registers = vec![0u8; DENSE_REGISTER_BYTES];
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut expected = vec![0u8; REGISTERS];
    for _ in 0..1000 {
        for (index, slot) in expected.iter_mut().enumerate() {
            let value = (next() as u8) & REGISTER_MAX;
            *slot = value;
            dense::set(&mut registers, index, value);
        }
        for (index, &value) in expected.iter().enumerate() {
            let got = dense::get(&registers, index);
            if got != value {
                return Err(format!(
                    "TESTFAILED Register {index} should be {value} but is {got}"
                ));
            }
        }
    }
    let mut dense_hll = new();
    to_dense(&mut dense_hll).map_err(|e| e.to_string())?;
    let mut sparse_hll = new();
    let relative_error = 1.04 / (REGISTERS as f64).sqrt();
    let element_seed = next();
    let mut checkpoint: u64 = 1;
    for j in 1..=10_000_000u64 {
        let element = (j ^ element_seed).to_le_bytes();
        add(&mut dense_hll, &element, sparse_max_bytes).map_err(|e| e.to_string())?;
        add(&mut sparse_hll, &element, sparse_max_bytes).map_err(|e| e.to_string())?;
        if j != checkpoint {
            continue;
        }
        if j < (sparse_max_bytes / 2) as u64 && encoding(&sparse_hll) != Encoding::Sparse {
            return Err("TESTFAILED sparse encoding not used".into());
        }
        let dense_card = cardinality(&dense_hll).map_err(|e| e.to_string())?;
        if cardinality(&sparse_hll).map_err(|e| e.to_string())? != dense_card {
            return Err("TESTFAILED dense/sparse disagree".into());
        }
        let max_error = if j == 10 {
            1
        } else {
            (relative_error * 6.0 * checkpoint as f64).ceil() as u64
        };
        let error = checkpoint.abs_diff(dense_card);
        if error > max_error {
            return Err(format!(
                "TESTFAILED Too big error. card:{checkpoint} abserr:{error}"
            ));
        }
        checkpoint *= 10;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
