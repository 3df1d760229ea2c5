//! Arbitrary bytes after a valid header into the RDB reader: it must return an error or items,
//! never panic, hang, or allocate far beyond the input's size.
#![no_main]

use amber_rdb::RdbReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut file = b"REDIS0011".to_vec();
    file.extend_from_slice(data);
    let Ok(mut reader) = RdbReader::new(file.as_slice()) else { return };
    while let Ok(Some(_)) = reader.next_item() {}
});
