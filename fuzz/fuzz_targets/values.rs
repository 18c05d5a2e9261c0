//! The value parsers (BSN, dates, postcodes, field types) and the transforms on arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use policy::covenant::{District, Generalization};
use policy::domain::{FieldType, parse_date, postcode_area};
use policy::transform::{generalize, mask};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = policy::Bsn::parse(s);
    let _ = parse_date(s);
    let _ = postcode_area(s);
    let v = serde_json::Value::String(s.to_owned());
    for ty in FieldType::ALL {
        let _ = ty.accepts(&v);
    }
    let today = time::Date::MIN;
    let districts = [District { name: "Centrum".into(), areas: vec![(1011, 1018)] }];
    for g in Generalization::ALL {
        if let Ok(out) = generalize(s, *g, 10, &districts, today) {
            assert!(out.len() <= 16 || *g == Generalization::District);
        }
    }
    let m = mask(s, 4);
    assert_eq!(m.chars().count(), s.chars().count());
});
