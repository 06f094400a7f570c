//! Image references: a parsed reference prints (fully qualified) back to one that parses to
//! the same. (The familiar form need not: `docker.io/a.b/c` is familiar `a.b/c`, which names
//! the registry `a.b`, in Docker as here.)
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = berth_image::reference::Reference::parse(s) {
        let again = berth_image::reference::Reference::parse(&r.to_string())
            .expect("a reference's full form parses");
        assert_eq!(again.to_string(), r.to_string());
        let _ = (r.familiar(), r.familiar_name(), r.name());
    }
});
