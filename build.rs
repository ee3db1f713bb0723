//! Rebuilds when a template or migration is added, not only when one changes: both directories
//! are embedded in the binary (`include_dir!`, `sqlx::migrate!`).

fn main() {
    println!("cargo:rerun-if-changed=templates");
    println!("cargo:rerun-if-changed=migrations");
}
