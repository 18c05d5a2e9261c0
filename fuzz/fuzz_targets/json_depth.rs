//! The JSON depth scan that refuses deeply nested bodies before they are parsed: never a panic,
//! and on every document serde_json can read it counts the same nesting.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let scanned = gateway::http::pipeline::json_depth(data);
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        assert_eq!(scanned, depth(&v), "{:?}", String::from_utf8_lossy(data));
    }
});
