use proptest::prelude::*;

use super::*;

/// `PFADD h a b c` in Redis 7.0.15, read back with `GET h` before any `PFCOUNT`.
const REDIS_A_B_C: &[u8] =
    b"HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80`\xf3\x80P\xb1\x84K\xfb\x80BZ";

fn filled(elements: impl IntoIterator<Item = String>) -> Vec<u8> {
    let mut hll = new();
    for element in elements {
        add(&mut hll, element.as_bytes(), DEFAULT_SPARSE_MAX_BYTES).expect("valid");
    }
    hll
}

#[test]
fn three_elements_leave_redis_bytes() {
    let mut hll = new();
    assert_eq!(hll.len(), HDR_SIZE + 2);
    for element in ["a", "b", "c"] {
        assert!(add(&mut hll, element.as_bytes(), DEFAULT_SPARSE_MAX_BYTES).expect("valid"));
    }
    assert_eq!(hll, REDIS_A_B_C);
    assert_eq!(count(&mut hll), Ok((3, true)));
    assert_eq!(count(&mut hll), Ok((3, false)));
}

#[test]
fn counts_equal_redis_counts() {
    // Redis 7.0.15: PFADD g e0 ... e<n-1>, one element per command, then PFCOUNT g.
    let hll = filled((0..1000).map(|i| format!("e{i}")));
    assert_eq!(encoding_of(&hll), Encoding::Sparse);
    assert_eq!(cardinality(&hll), Ok(1008));
    let hll = filled((0..100_000).map(|i| format!("e{i}")));
    assert_eq!(encoding_of(&hll), Encoding::Dense);
    assert_eq!(cardinality(&hll), Ok(100_853));
}

#[test]
fn self_test_passes() {
    assert_eq!(self_test(7, DEFAULT_SPARSE_MAX_BYTES), Ok(()));
}

#[test]
fn headers_are_checked_as_redis_checks_them() {
    assert_eq!(check(b"HYLL"), Err(HllError::NotHll));
    assert_eq!(check(&new()), Ok(Encoding::Sparse));
    let mut bad_magic = new();
    bad_magic[0] = b'0';
    assert_eq!(check(&bad_magic), Err(HllError::NotHll));
    let mut dense_header_sparse_length = new();
    dense_header_sparse_length[4] = 0;
    assert_eq!(check(&dense_header_sparse_length), Err(HllError::NotHll));
    let mut tail = filled(["a".into()]);
    tail.extend_from_slice(b"hello");
    assert_eq!(check(&tail), Ok(Encoding::Sparse));
    assert_eq!(cardinality(&tail), Err(HllError::Corrupt));
}

proptest! {
    #[test]
    fn sparse_and_dense_agree(elements in prop::collection::vec(any::<u32>(), 0..400)) {
        let mut sparse = new();
        let mut dense = new();
        to_dense(&mut dense).expect("valid");
        for element in &elements {
            let bytes = element.to_le_bytes();
            let a = add(&mut sparse, &bytes, DEFAULT_SPARSE_MAX_BYTES).expect("valid");
            let b = add(&mut dense, &bytes, DEFAULT_SPARSE_MAX_BYTES).expect("valid");
            prop_assert_eq!(a, b);
        }
        prop_assert_eq!(cardinality(&sparse), cardinality(&dense));
        let registers = Registers::of(&sparse).expect("valid");
        let dense_registers = Registers::of(&dense).expect("valid");
        prop_assert_eq!(registers.values(), dense_registers.values());
        prop_assert_eq!(Ok(registers.cardinality()), cardinality(&dense));
        let mut converted = sparse.clone();
        to_dense(&mut converted).expect("valid");
        prop_assert_eq!(&converted[HDR_SIZE..], &dense[HDR_SIZE..]);
    }

    #[test]
    fn merged_registers_rebuild_the_same_sketch(
        elements in prop::collection::vec(any::<u16>(), 0..300),
        max_bytes in 20usize..4000,
    ) {
        let mut direct = new();
        for element in &elements {
            add(&mut direct, &element.to_le_bytes(), max_bytes).expect("valid");
        }
        let mut rebuilt = new();
        Registers::of(&direct).expect("valid").store_into(&mut rebuilt, false, max_bytes).expect("valid");
        let (rebuilt, direct) = (Registers::of(&rebuilt).expect("valid"), Registers::of(&direct).expect("valid"));
        prop_assert_eq!(rebuilt.values(), direct.values());
    }

    #[test]
    fn corrupted_values_never_panic(
        elements in prop::collection::vec(any::<u16>(), 0..200),
        damage in prop::collection::vec((any::<usize>(), any::<u8>()), 1..5),
        truncate in any::<Option<usize>>(),
        more in prop::collection::vec(any::<u16>(), 0..50),
    ) {
        let mut hll = new();
        for element in &elements {
            add(&mut hll, &element.to_le_bytes(), DEFAULT_SPARSE_MAX_BYTES).expect("valid");
        }
        for (at, byte) in damage {
            let at = at % hll.len();
            hll[at] = byte;
        }
        if let Some(len) = truncate {
            hll.truncate(len % (hll.len() + 1));
        }
        if check(&hll).is_err() {
            return Ok(());
        }
        let _ = cardinality(&hll);
        let _ = Registers::of(&hll);
        let _ = decode_sparse(&hll);
        let _ = count(&mut hll);
        for element in &more {
            if add(&mut hll, &element.to_le_bytes(), DEFAULT_SPARSE_MAX_BYTES).is_err() {
                break;
            }
        }
        let _ = to_dense(&mut hll);
    }
}
