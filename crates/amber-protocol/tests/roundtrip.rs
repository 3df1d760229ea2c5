//! Property tests: frames survive an encode/parse round trip, and a pipelined request stream
//! parses to the same requests however it is cut into reads.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use amber_protocol::{Frame, Limits, RequestParser};
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

fn leaf() -> impl Strategy<Value = Frame> {
    let line = proptest::collection::vec(
        any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
        0..20,
    );
    prop_oneof![
        line.clone().prop_map(Frame::Simple),
        line.clone().prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Frame::Bulk),
        Just(Frame::NullBulk),
        Just(Frame::NullArray),
        Just(Frame::Null),
        any::<bool>().prop_map(Frame::Boolean),
        any::<f64>()
            .prop_filter("NaN never equals itself", |f| !f.is_nan())
            .prop_map(Frame::Double),
        "-?[1-9][0-9]{0,40}".prop_map(|d| Frame::BigNumber(d.into_bytes())),
        proptest::collection::vec(any::<u8>(), 0..32).prop_map(Frame::BulkError),
        ("[a-z]{3}", proptest::collection::vec(any::<u8>(), 0..32)).prop_map(|(f, t)| {
            let f = f.as_bytes();
            Frame::Verbatim([f[0], f[1], f[2]], t)
        }),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    leaf().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Frame::Array),
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Frame::Set),
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Frame::Push),
            proptest::collection::vec((inner.clone(), inner), 0..4).prop_map(Frame::Map),
        ]
    })
}

fn requests() -> impl Strategy<Value = Vec<Vec<Vec<u8>>>> {
    let arg = proptest::collection::vec(any::<u8>(), 0..40);
    let request = proptest::collection::vec(arg, 1..6);
    proptest::collection::vec(request, 1..12)
}

proptest! {
    #[test]
    fn frames_round_trip(frame in frame()) {
        let mut out = BytesMut::new();
        frame.encode(&mut out);
        let parsed = Frame::parse(&out).unwrap();
        prop_assert_eq!(parsed, Some((frame, out.len())));
    }

    #[test]
    fn every_prefix_of_a_frame_is_incomplete(frame in frame()) {
        let mut out = BytesMut::new();
        frame.encode(&mut out);
        for cut in 0..out.len() {
            prop_assert_eq!(Frame::parse(&out[..cut]), Ok(None));
        }
    }

    #[test]
    fn pipelines_parse_the_same_however_split(reqs in requests(), cuts in proptest::collection::vec(1usize..50, 0..40)) {
        let mut wire = BytesMut::new();
        for req in &reqs {
            Frame::command(req).encode(&mut wire);
        }
        let mut parser = RequestParser::new();
        let mut buf = BytesMut::new();
        let mut got: Vec<Vec<Bytes>> = Vec::new();
        let mut rest = &wire[..];
        let mut cuts = cuts.into_iter();
        while !rest.is_empty() {
            let take = cuts.next().unwrap_or(rest.len()).min(rest.len());
            buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            while let Some(req) = parser.next_request(&mut buf, &Limits::default()).unwrap() {
                got.push(req);
            }
        }
        let want: Vec<Vec<Bytes>> = reqs.iter().map(|r| r.iter().map(|a| Bytes::from(a.clone())).collect()).collect();
        prop_assert_eq!(got, want);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Frame::parse(&input);
        let mut parser = RequestParser::new();
        let mut buf = BytesMut::from(&input[..]);
        for limits in [Limits::default(), Limits { authenticated: false, ..Limits::default() }] {
            while let Ok(Some(_)) = parser.next_request(&mut buf, &limits) {}
        }
    }
}
