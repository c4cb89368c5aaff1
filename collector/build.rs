//! The migrations are embedded at compile time (`sqlx::migrate!`); a file added to or changed in
//! `migrations/` must rebuild the collector, which cargo does not know without this.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
