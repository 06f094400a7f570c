//! `unpack LAYER.tar DIR`: unpacks one layer with berth's extractor, for the benchmark that
//! compares it with `tar -x` (bench/image-save-load.sh).

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(layer), Some(dir)) = (args.next(), args.next()) else {
        eprintln!("usage: unpack LAYER.tar DIR");
        std::process::exit(2);
    };
    let file = std::fs::File::open(&layer).expect("open layer");
    let opts = berth_image::layer::UnpackOptions::for_image_layers();
    match berth_image::layer::unpack(
        std::io::BufReader::with_capacity(1 << 20, file),
        dir.as_ref(),
        &opts,
    ) {
        Ok(stats) => println!("{} entries, {} bytes", stats.entries, stats.bytes),
        Err(e) => {
            eprintln!("unpack: {e}");
            std::process::exit(1);
        }
    }
}
