//! What another approach's register sends the gateway: a published set's body and an
//! evaluation (element and proof). Parsing never panics; a parsed set writes back to exactly
//! the bytes it came from (one spelling per set); arbitrary bytes never finish as a proven
//! evaluation under a pinned key.
#![no_main]

use gateway::oprf::{Blinded, PublishedSet, RegisterKey, SystemRng, info};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(set) = PublishedSet::parse(text, 1 << 12) {
            assert_eq!(set.body(), text, "one spelling per set");
        }
    }
    if data.len() >= 96 {
        let key = RegisterKey::from_seed(&[7u8; 32]).unwrap();
        let i = info("top600", &gateway::oprf::Epoch::parse("2026-12").unwrap());
        let b = Blinded::new(b"999993331", &mut SystemRng).unwrap();
        let (e, p) = data.split_at(32);
        assert!(b.finish(b"999993331", e, &p[..64], &key.public(), &i).is_err());
    }
});
