//! The export reader (`gateway audit verify --export`) on arbitrary bytes: an export is
//! untrusted input; every line is checked, nothing panics.
#![no_main]

use gateway::log::checkpoint::{KeySet, LogKey};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn keys() -> &'static KeySet {
    static K: OnceLock<KeySet> = OnceLock::new();
    K.get_or_init(|| {
        let k = LogKey::from_seed("fuzz.example/disclosures", &[1; 32]).unwrap();
        KeySet::parse(&k.vkey()).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = gateway::log::verify::verify_export(std::io::Cursor::new(data), keys(), false) {
        // A clean report needs entries that chain from the genesis hash: with fuzzed bytes,
        // only an export without entries and with a zero head can be clean.
        if report.first_bad.is_none() {
            assert!(report.entries == 0 || report.checkpoints == 0 || report.proofs <= report.entries as usize);
        }
    }
});
