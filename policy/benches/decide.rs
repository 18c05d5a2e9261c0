//! Deciding and transforming a full 20-field record (goal: under 2 µs per record).
//!
//! Run: `cargo bench -p policy --bench decide`.

use criterion::{Criterion, criterion_group, criterion_main};
use policy::{Audience, PseudonymKey, TransformContext, compile_toml};
use serde_json::{Map, Value, json};
use std::hint::black_box;

fn record() -> Map<String, Value> {
    let v = json!({
        "bsn": "111222333",
        "naam": "Fictief Persoon",
        "geboortedatum": "1999-04-17",
        "adres": "Voorbeeldstraat 1",
        "postcode": "1012 AB",
        "telefoon": "0612345678",
        "risicogroep": "4",
        "risicoprofiel": "Radicaliseert; geen geweldsbereidheid vastgesteld",
        "ideologie": "rechts-extremistisch",
        "status": "uitvoering",
        "regisseur": "oov/r.regisseur",
        "datum_melding": "2026-01-12",
        "datum_besluit": "2026-03-02",
        "leefgebieden": ["inkomen", "dagbesteding"],
        "plandoelen": ["werk", "contact met familie"],
        "interventies": ["mentor", "schuldhulp"],
        "netwerk": ["contact A"],
        "diagnose": "fictief",
        "in_zorg": true,
        "bedrag": 1200
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn bench(c: &mut Criterion) {
    let cc = match compile_toml(include_str!("bench20.toml")) {
        Ok(cc) => cc,
        Err(d) => {
            // A fixture that no longer compiles is a failed run, not an empty one.
            eprintln!("bench20.toml: {d}");
            std::process::exit(1);
        }
    };
    let cov = cc.covenant();
    let (Some(partner), Some(role), Some(purpose), Some(product)) = (
        cov.partner("politie"),
        cov.role("regisseur"),
        cov.purpose("regie"),
        cov.product("oov.dossier"),
    ) else {
        eprintln!("bench20.toml lacks politie, regisseur, regie or oov.dossier");
        std::process::exit(1);
    };
    let audience = Audience {
        partner,
        role,
        purpose,
    };
    let key = PseudonymKey::derive(b"benchmark master secret", "politie");
    let today =
        time::Date::from_calendar_date(2026, time::Month::November, 22).unwrap_or(time::Date::MIN);
    let cx = TransformContext {
        today,
        pseudonym_key: &key,
    };
    let rec = record();
    c.bench_function("decide+transform 20-field record", |b| {
        b.iter(|| cc.apply_record(black_box(audience), product, black_box(&rec), &cx))
    });
    c.bench_function("decide+transform+serialize 20-field record", |b| {
        b.iter(|| {
            cc.apply_record(black_box(audience), product, black_box(&rec), &cx)
                .ok()
                .and_then(|r| serde_json::to_vec(&r).ok())
        })
    });
    let fields: Vec<_> = cov.product_fields(product).map(|(f, _)| f).collect();
    c.bench_function("decide only, 20 fields", |b| {
        b.iter(|| {
            fields
                .iter()
                .map(|f| cc.decision_ref(partner, role, purpose, *f).0 as u32)
                .sum::<u32>()
        })
    });
    c.bench_function("compile example covenant", |b| {
        b.iter(|| compile_toml(black_box(include_str!("../../ops/covenant/ipga-r.toml"))).is_ok())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
