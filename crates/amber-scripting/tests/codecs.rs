//! Properties of the bundled libraries' codecs, through Lua as scripts use them: cmsgpack and
//! cjson round-trip what they encode, and decoding arbitrary bytes never panics or hangs.

use amber_protocol::{Frame, Protocol, ReplyWriter};
use amber_scripting::{Engine, Host};
use bytes::Bytes;
use proptest::prelude::*;

/// A host for scripts that call no command.
struct NoCommands;

impl Host for NoCommands {
    fn call(&mut self, _args: Vec<Bytes>, _resp3: bool) -> Result<Frame, String> {
        Err("no commands here".into())
    }
    fn set_replication(&mut self, _aof: bool, _replicas: bool) {}
    fn interrupt(&mut self) -> bool {
        false
    }

    fn permitted(&mut self, _args: Vec<bytes::Bytes>) -> Result<bool, String> {
        Ok(true)
    }
}

/// Runs `body` with `args` as ARGV; the reply, or the error text.
fn run(engine: &mut Engine, body: &str, args: &[Vec<u8>]) -> Result<Frame, String> {
    let sha = engine.load_script(body.as_bytes()).map_err(|e| e.message)?;
    let args: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
    let mut out = ReplyWriter::new(Protocol::Resp2);
    engine
        .eval(&mut NoCommands, sha.as_bytes(), &[], &args, &mut out)
        .map_err(|e| e.message)?;
    let bytes = out.buffer().to_vec();
    Ok(Frame::parse(&bytes)
        .ok()
        .flatten()
        .map(|(f, _)| f)
        .unwrap_or(Frame::Null))
}

fn engine() -> Engine {
    Engine::new(Box::new(|_, _| {})).unwrap_or_else(|e| panic!("{e}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Strings and integers packed by cmsgpack come back equal.
    #[test]
    fn cmsgpack_round_trips(strings in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8), number in any::<i32>()) {
        let mut engine = engine();
        let body = format!(
            "local t = {{}} for i = 1, #ARGV do t[i] = ARGV[i] end t[#t + 1] = {number} \
             local back = cmsgpack.unpack(cmsgpack.pack(t)) \
             for i = 1, #t do if back[i] ~= t[i] then return 0 end end return 1"
        );
        prop_assert_eq!(run(&mut engine, &body, &strings), Ok(Frame::Integer(1)));
    }

    /// Arbitrary bytes given to cmsgpack.unpack and cjson.decode give a value or a Lua error,
    /// never a crash.
    #[test]
    fn decoders_survive_garbage(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut engine = engine();
        // Through a Lua function: Lua 5.1's own `pcall` pushes its status past the frame's
        // stack limit when the callee returns many values (cmsgpack.unpack returns one per
        // value found, as Redis's does), which the debug build's API checks abort on.
        for body in [
            "local ok = pcall(function() return select('#', cmsgpack.unpack(ARGV[1])) end) return 1",
            "local ok = pcall(function() return cjson.decode(ARGV[1]) end) return 1",
            "local ok = pcall(function() return select('#', struct.unpack('>i4i2c3', ARGV[1])) end) return 1",
        ] {
            prop_assert_eq!(run(&mut engine, body, std::slice::from_ref(&data)), Ok(Frame::Integer(1)));
        }
    }

    /// Text cjson encodes, it decodes to the same strings and numbers.
    #[test]
    fn cjson_round_trips(words in proptest::collection::vec("[ -~]{0,20}", 0..6), number in -1_000_000i64..1_000_000) {
        let mut engine = engine();
        let args: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
        let body = format!(
            "local t = {{n = {number}, list = {{}}}} for i = 1, #ARGV do t.list[i] = ARGV[i] end \
             local back = cjson.decode(cjson.encode(t)) \
             if back.n ~= t.n then return 0 end \
             for i = 1, #ARGV do if back.list[i] ~= ARGV[i] then return 0 end end return 1"
        );
        prop_assert_eq!(run(&mut engine, &body, &args), Ok(Frame::Integer(1)));
    }
}

/// A buffer of 300 small integers unpacks to 300 values (one per value found).
#[test]
fn cmsgpack_unpacks_many_values_at_once() {
    let mut engine = engine();
    let body = "return select('#', cmsgpack.unpack(ARGV[1]))";
    assert_eq!(
        run(&mut engine, body, &[vec![1u8; 300]]),
        Ok(Frame::Integer(300))
    );
}
