//! Build script: generates the route-language parser from `grammar/route.lalrpop`
//! into `OUT_DIR`, so the generated table never lives in the source tree.

fn main() {
    println!("cargo:rerun-if-changed=grammar");
    println!("cargo:rerun-if-changed=build.rs");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    lalrpop::Configuration::new()
        .set_in_dir("grammar")
        .set_out_dir(out_dir)
        .emit_rerun_directives(true)
        .process()
        .expect("lalrpop failed on grammar/route.lalrpop");
}
