//! The parsers of the small identifiers partners send: `traceparent` and path/body identifiers.
//! Never a panic; what parses prints back exactly (nothing is trimmed or normalised).
#![no_main]

use gateway::service::Ident;
use gateway::trace::TraceParent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(t) = TraceParent::parse(s) {
        assert_eq!(t.to_string(), s);
    }
    if let Ok(id) = Ident::parse("id", s) {
        assert_eq!(id.as_str(), s);
    }
});
