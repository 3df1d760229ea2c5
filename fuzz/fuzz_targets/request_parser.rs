//! Feeds arbitrary bytes, cut at an arbitrary point, to the request parser: it must never
//! panic, loop forever or allocate without bound, authenticated or not.
#![no_main]

use amber_protocol::{Limits, RequestParser};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, input)) = data.split_first() else { return };
    let cut = usize::from(cut).min(input.len());
    for authenticated in [true, false] {
        let limits = Limits { max_bulk_len: 1024 * 1024, authenticated };
        let mut parser = RequestParser::new();
        let mut buf = BytesMut::new();
        for part in [&input[..cut], &input[cut..]] {
            buf.extend_from_slice(part);
            while let Ok(Some(args)) = parser.next_request(&mut buf, &limits) {
                assert!(!args.is_empty());
            }
        }
    }
});
