//! Redis's RDB snapshot format: reading every version Redis has written and writing Redis 7 files.
//!
//! Only the checksum exists so far; the reader and writer arrive with the RDB issue.

/// Redis's RDB checksum: CRC-64 with the Jones polynomial, reflected, initial value 0.
pub fn crc64(data: &[u8]) -> u64 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Redis, data)
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc64_matches_redis() {
        assert_eq!(super::crc64(b"123456789"), 0xe9c6d914c4b8d9ca);
    }
}
