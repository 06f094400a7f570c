//! Manifests, indexes and image configs as a registry or an archive would hand them over.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = berth_image::manifest::parse_manifest("fuzz", data);
    let _ = berth_image::manifest::parse_config("fuzz", data);
});
