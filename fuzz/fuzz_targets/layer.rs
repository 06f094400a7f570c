//! A layer tarball (any compression) unpacked into a fresh directory: never a panic, and
//! nothing appears beside the target directory, whatever the entries say.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    std::fs::create_dir(&target).unwrap();
    let opts = berth_image::layer::UnpackOptions::for_image_layers();
    let _ = berth_image::layer::unpack(data, &target, &opts);
    let beside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, ["target"], "an entry escaped the layer's directory");
});
