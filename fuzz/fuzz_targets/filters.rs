//! The `filters` query parameter of every list, prune and `/events` (the JSON a client
//! sends): parsing never panics, and what parses answers every question asked of it
//! (validation, matching, `until`, booleans) without panicking, with regular expressions
//! of the client's own making included.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(args) = berth_engine::filters::Args::from_json(s) else {
        return;
    };
    let _ = args.validate(&["label", "name", "id", "until", "dangling"]);
    let labels: HashMap<String, String> =
        [("a".to_string(), "1".to_string()), ("b".into(), String::new())].into();
    let _ = args.match_kv_list("label", &labels);
    let _ = args.match_labels(&labels);
    let _ = args.matches("name", "/web");
    let _ = args.fuzzy_match("id", "0123456789abcdef");
    let _ = args.exact_match("name", "web");
    let _ = args.unique_exact_match("name", "web");
    let _ = args.get_bool_or_default("dangling", false);
    let _ = args.until();
});
