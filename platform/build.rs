//! Makes sure `dashboards/dist` exists so `rust-embed` compiles even when the
//! dashboards have not been built (the server then shows a placeholder page).

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let dist = std::path::Path::new(&manifest).join("../dashboards/dist");
    if !dist.exists() {
        let _ = std::fs::create_dir_all(&dist);
    }
    println!("cargo:rerun-if-changed=../dashboards/dist");
    println!("cargo:rerun-if-changed=migrations");
}
