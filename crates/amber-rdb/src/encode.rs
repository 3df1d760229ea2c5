//! Encoders for the compact blobs Redis 7.0 writes: listpack and intset.

/// Parses a string that Redis would store as an integer (`string2ll` rules: canonical decimal,
/// no sign but `-`, no leading zeros).
pub(crate) fn canonical_int(bytes: &[u8]) -> Option<i64> {
    amber_protocol::parse_i64(bytes)
}

/// Builds a listpack from its elements, storing integer-looking strings as integers as Redis does.
#[cfg(test)]
pub(crate) fn listpack<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut blob = Vec::new();
    listpack_into(&mut blob, items);
    blob
}

/// Builds a listpack into `blob` (emptied first).
pub(crate) fn listpack_into<'a>(blob: &mut Vec<u8>, items: impl IntoIterator<Item = &'a [u8]>) {
    blob.clear();
    blob.extend_from_slice(&[0; 6]);
    let mut count = 0usize;
    for item in items {
        let start = blob.len();
        match canonical_int(item) {
            Some(number) => push_int(blob, number),
            None => push_str(blob, item),
        }
        let entry_len = blob.len() - start;
        push_backlen(blob, entry_len);
        count += 1;
    }
    blob.push(0xff);
    let total = blob.len() as u32;
    blob[..4].copy_from_slice(&total.to_le_bytes());
    let declared = count.min(usize::from(u16::MAX)) as u16;
    blob[4..6].copy_from_slice(&declared.to_le_bytes());
}

/// Builds a ziplist (the compact encoding of RDB 9 and older) into `blob` (emptied first),
/// storing integer-looking strings as integers as Redis does.
pub(crate) fn ziplist_into<'a>(blob: &mut Vec<u8>, items: impl IntoIterator<Item = &'a [u8]>) {
    blob.clear();
    blob.extend_from_slice(&[0; 10]);
    let mut count = 0usize;
    let mut previous_len = 0usize;
    let mut last_start = 10usize;
    for item in items {
        let start = blob.len();
        last_start = start;
        if previous_len < 254 {
            blob.push(previous_len as u8);
        } else {
            blob.push(0xfe);
            blob.extend_from_slice(&(previous_len as u32).to_le_bytes());
        }
        match canonical_int(item) {
            Some(number) => push_ziplist_int(blob, number),
            None => push_ziplist_str(blob, item),
        }
        previous_len = blob.len() - start;
        count += 1;
    }
    blob.push(0xff);
    let total = blob.len() as u32;
    blob[..4].copy_from_slice(&total.to_le_bytes());
    blob[4..8].copy_from_slice(&(last_start as u32).to_le_bytes());
    let declared = count.min(usize::from(u16::MAX)) as u16;
    blob[8..10].copy_from_slice(&declared.to_le_bytes());
}

/// Bytes a ziplist entry for `item` takes after an entry of `previous_len` bytes.
pub(crate) fn ziplist_entry_len(previous_len: usize, item: &[u8]) -> usize {
    let prevlen = if previous_len < 254 { 1 } else { 5 };
    let body = match canonical_int(item) {
        Some(v) if (0..=12).contains(&v) => 1,
        Some(v) if i8::try_from(v).is_ok() => 2,
        Some(v) if i16::try_from(v).is_ok() => 3,
        Some(v) if (-8_388_608..=8_388_607).contains(&v) => 4,
        Some(v) if i32::try_from(v).is_ok() => 5,
        Some(_) => 9,
        None if item.len() < 64 => 1 + item.len(),
        None if item.len() < 16384 => 2 + item.len(),
        None => 5 + item.len(),
    };
    prevlen + body
}

fn push_ziplist_int(blob: &mut Vec<u8>, v: i64) {
    if (0..=12).contains(&v) {
        blob.push(0xf1 + v as u8);
    } else if let Ok(small) = i8::try_from(v) {
        blob.push(0xfe);
        blob.push(small as u8);
    } else if let Ok(medium) = i16::try_from(v) {
        blob.push(0xc0);
        blob.extend_from_slice(&medium.to_le_bytes());
    } else if (-8_388_608..=8_388_607).contains(&v) {
        blob.push(0xf0);
        blob.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
    } else if let Ok(large) = i32::try_from(v) {
        blob.push(0xd0);
        blob.extend_from_slice(&large.to_le_bytes());
    } else {
        blob.push(0xe0);
        blob.extend_from_slice(&v.to_le_bytes());
    }
}

fn push_ziplist_str(blob: &mut Vec<u8>, item: &[u8]) {
    let len = item.len();
    if len < 64 {
        blob.push(len as u8);
    } else if len < 16384 {
        blob.push(0x40 | (len >> 8) as u8);
        blob.push(len as u8);
    } else {
        blob.push(0x80);
        blob.extend_from_slice(&(len as u32).to_be_bytes());
    }
    blob.extend_from_slice(item);
}

/// Bytes a listpack entry for `item` takes, back-length included (to size quicklist nodes).
pub(crate) fn listpack_entry_size(item: &[u8]) -> usize {
    let body = match canonical_int(item) {
        Some(v) if (0..=127).contains(&v) => 1,
        Some(v) if (-4096..=4095).contains(&v) => 2,
        Some(v) if (-32768..=32767).contains(&v) => 3,
        Some(v) if (-8_388_608..=8_388_607).contains(&v) => 4,
        Some(v) if i32::try_from(v).is_ok() => 5,
        Some(_) => 9,
        None if item.len() < 64 => 1 + item.len(),
        None if item.len() < 4096 => 2 + item.len(),
        None => 5 + item.len(),
    };
    body + backlen_bytes(body)
}

fn push_int(blob: &mut Vec<u8>, v: i64) {
    if (0..=127).contains(&v) {
        blob.push(v as u8);
    } else if (-4096..=4095).contains(&v) {
        let raw = (v as u64) & 0x1fff;
        blob.push(0xc0 | (raw >> 8) as u8);
        blob.push(raw as u8);
    } else if (-32768..=32767).contains(&v) {
        blob.push(0xf1);
        blob.extend_from_slice(&(v as i16).to_le_bytes());
    } else if (-8_388_608..=8_388_607).contains(&v) {
        blob.push(0xf2);
        blob.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
    } else if (i64::from(i32::MIN)..=i64::from(i32::MAX)).contains(&v) {
        blob.push(0xf3);
        blob.extend_from_slice(&(v as i32).to_le_bytes());
    } else {
        blob.push(0xf4);
        blob.extend_from_slice(&v.to_le_bytes());
    }
}

fn push_str_header(blob: &mut Vec<u8>, len: usize) {
    if len < 64 {
        blob.push(0x80 | len as u8);
    } else if len < 4096 {
        blob.push(0xe0 | (len >> 8) as u8);
        blob.push(len as u8);
    } else {
        blob.push(0xf0);
        blob.extend_from_slice(&(len as u32).to_le_bytes());
    }
}

fn push_str(blob: &mut Vec<u8>, item: &[u8]) {
    push_str_header(blob, item.len());
    blob.extend_from_slice(item);
}

/// Bytes the back-length of a listpack entry of `len` bytes takes.
pub(crate) fn backlen_bytes(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    }
}

/// The back-length: the entry size in 7-bit groups, most significant first, every byte after
/// the first flagged with the high bit, so it can be read from right to left.
fn push_backlen(blob: &mut Vec<u8>, len: usize) {
    let bytes = backlen_bytes(len);
    for i in (0..bytes).rev() {
        let group = ((len >> (7 * i)) & 0x7f) as u8;
        blob.push(if i == bytes - 1 { group } else { group | 0x80 });
    }
}

/// Whether `bytes` is the back-length [`push_backlen`] writes for an entry of `len` bytes.
#[inline]
pub(crate) fn backlen_matches(bytes: &[u8], len: usize) -> bool {
    // Entries under 128 bytes (nearly all) have a one-byte back-length: the length itself.
    if let [only] = bytes {
        return usize::from(*only) == len;
    }
    let count = bytes.len();
    bytes.iter().enumerate().all(|(index, &byte)| {
        let group_index = count - 1 - index;
        let group = ((len >> (7 * group_index)) & 0x7f) as u8;
        byte == if group_index == count - 1 {
            group
        } else {
            group | 0x80
        }
    })
}

/// Builds an intset from integers (sorted and deduplicated here), with the narrowest width.
#[cfg(test)]
pub(crate) fn intset(values: &[i64]) -> Vec<u8> {
    let mut sorted = values.to_vec();
    let mut blob = Vec::new();
    intset_into(&mut blob, &mut sorted);
    blob
}

/// Builds an intset into `blob` (emptied first) from `values`, which it sorts and deduplicates.
pub(crate) fn intset_into(blob: &mut Vec<u8>, values: &mut Vec<i64>) {
    values.sort_unstable();
    values.dedup();
    let sorted = values;
    let width: usize = if sorted.iter().all(|v| i16::try_from(*v).is_ok()) {
        2
    } else if sorted.iter().all(|v| i32::try_from(*v).is_ok()) {
        4
    } else {
        8
    };
    blob.clear();
    blob.reserve(8 + width * sorted.len());
    blob.extend_from_slice(&(width as u32).to_le_bytes());
    blob.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    for v in sorted.iter() {
        blob.extend_from_slice(&v.to_le_bytes()[..width]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encodings;
    use proptest::prelude::*;

    #[test]
    fn canonical_ints_follow_string2ll() {
        assert_eq!(canonical_int(b"0"), Some(0));
        assert_eq!(canonical_int(b"-12"), Some(-12));
        assert_eq!(canonical_int(b"007"), None);
        assert_eq!(canonical_int(b"-0"), None);
        assert_eq!(canonical_int(b"+1"), None);
        assert_eq!(canonical_int(b"9223372036854775808"), None);
    }

    fn item() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string().into_bytes()),
            (-5000i64..5000).prop_map(|n| n.to_string().into_bytes()),
            proptest::collection::vec(any::<u8>(), 0..100),
            proptest::collection::vec(any::<u8>(), 4000..5000),
        ]
    }

    proptest! {
        #[test]
        fn listpacks_round_trip(items in proptest::collection::vec(item(), 0..40)) {
            let blob = listpack(items.iter().map(Vec::as_slice));
            prop_assert_eq!(encodings::listpack(&blob).unwrap(), items.clone());
            let entries: usize = items.iter().map(|i| listpack_entry_size(i)).sum();
            prop_assert_eq!(blob.len(), 7 + entries);
        }

        #[test]
        fn ziplists_round_trip(items in proptest::collection::vec(item(), 0..40)) {
            let mut blob = Vec::new();
            ziplist_into(&mut blob, items.iter().map(Vec::as_slice));
            prop_assert_eq!(encodings::ziplist(&blob).unwrap(), items.clone());
            let mut previous = 0;
            let mut size = 11;
            for item in &items {
                previous = ziplist_entry_len(previous, item);
                size += previous;
            }
            prop_assert_eq!(blob.len(), size);
        }

        #[test]
        fn intsets_round_trip(values in proptest::collection::vec(any::<i64>(), 0..50)) {
            let blob = intset(&values);
            let mut want: Vec<i64> = values.clone();
            want.sort_unstable();
            want.dedup();
            let got: Vec<i64> = encodings::intset(&blob).unwrap().iter()
                .map(|b| std::str::from_utf8(b).unwrap().parse().unwrap()).collect();
            prop_assert_eq!(got, want);
        }
    }
}
