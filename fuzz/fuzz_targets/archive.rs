//! A `docker save` / OCI archive loaded into an empty store: never a panic, and a refused
//! archive records no image.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let store = berth_image::store::ImageStore::open(dir.path()).unwrap();
    if store.load(data).is_err() {
        assert!(store.images().unwrap().is_empty());
        assert!(store.tags().unwrap().is_empty());
    }
});
