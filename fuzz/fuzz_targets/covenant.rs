//! The covenant parser, validator and compiler on arbitrary input: errors are fine, panics,
//! hangs and out-of-range line/column rendering are not.
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
});
