//! The covenant parser, validator and compiler on arbitrary input: errors are fine, panics,
//! hangs and out-of-range line/column rendering are not. Also the path the gateway takes for
//! drafts: `file:` keys resolved (here to a fixed text, or refused by path).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else { return };
    match policy::compile_toml(src) {
        Ok(cc) => {
            // A valid covenant must also explain and tabulate without panicking.
            let _ = cc.matrix();
        }
        Err(diags) => {
            let _ = diags.render("fuzz.toml", src);
        }
    }
    let resolved = policy::compile_toml_resolving(src, &mut |path| {
        if path.len() % 2 == 0 {
            Ok("age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq".into())
        } else {
            Err("not in the key directory".into())
        }
    });
    if let Err(diags) = resolved {
        let _ = diags.render("fuzz.toml", src);
    }
});
