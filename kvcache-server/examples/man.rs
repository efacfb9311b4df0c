//! Prints the manual page made from the `-h` text:
//! `cargo run -p kvcache-server --example man > contrib/kvcache-server.1`.

fn main() {
    print!("{}", kvcache_server::config::man_page());
}
