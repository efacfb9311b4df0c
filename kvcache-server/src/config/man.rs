//! The manual page (`contrib/kvcache-server.1`), made from the `-h` text so that the two
//! list the same options: `cargo run -p kvcache-server --example man >
//! contrib/kvcache-server.1` writes it, and a unit test fails when the file is stale.

use super::usage;

/// Escapes a line for roff.
fn roff(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

/// The manual page, in roff (`man -l`).
pub fn man_page() -> String {
    let text = usage();
    let mut lines = text.lines();
    let title = lines.next().unwrap_or("kvcache-server");
    let mut out = String::new();
    out.push_str(".TH KVCACHE-SERVER 1 \"\" \"kvcache-server\" \"User Commands\"\n");
    out.push_str(".SH NAME\nkvcache\\-server \\- a memcached 1.6 compatible cache server\n");
    out.push_str(".SH SYNOPSIS\n.B kvcache-server\n[\\fIoptions\\fR]\n");
    out.push_str(".SH DESCRIPTION\n");
    out.push_str(&roff(title));
    out.push_str(
        "\n.PP\nIt speaks memcached's text, meta and binary protocols on one port and takes \
         memcached's flags with their meaning. Items live in slab\\-core chunks and memory \
         goes back to the OS when demand falls.\n.SH OPTIONS\n",
    );
    for line in lines {
        let (flag, rest) = line.split_at(line.len().min(34));
        let flag = flag.trim();
        let rest = rest.trim();
        if flag.is_empty() {
            out.push_str(&roff(rest));
            out.push('\n');
        } else {
            out.push_str(".TP\n.B ");
            out.push_str(&roff(flag));
            out.push('\n');
            out.push_str(&roff(rest));
            out.push('\n');
        }
    }
    out.push_str(
        ".SH SIGNALS\nSIGTERM and SIGINT stop the server after the replies to what it has \
         read.\n.SH FILES\n.TP\n.B /etc/default/kvcache-server\nthe options of the systemd \
         unit (contrib/kvcache-server.service)\n.SH SEE ALSO\n.BR memcached (1)\n",
    );
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn contrib_man_page_is_up_to_date() {
        let file = include_str!("../../../contrib/kvcache-server.1");
        assert!(
            file == super::man_page(),
            "contrib/kvcache-server.1 is stale: cargo run -p kvcache-server --example man > contrib/kvcache-server.1"
        );
    }
}
