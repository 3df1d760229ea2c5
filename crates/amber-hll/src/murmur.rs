//! MurmurHash2, 64-bit version (`MurmurHash64A`), read little-endian on every platform as
//! Redis's copy does.

const M: u64 = 0xc6a4a7935bd1e995;
const R: u32 = 47;

/// The 64-bit MurmurHash2 of `data` with `seed`.
pub(crate) fn murmur64a(data: &[u8], seed: u64) -> u64 {
    // Redis multiplies the length as an int by the 64-bit constant.
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let mut k = u64::from_le_bytes(bytes);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &byte) in tail.iter().enumerate() {
            h ^= u64::from(byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}
